//! `evaluate`: a model's accuracy on a test split of FSDD, clean, with white noise added, or
//! under each recording condition of the suite (`--condition`); `--sequences`: a string model's
//! digit error rate and exact strings.

use crate::{
    DEFAULT_FAST_PHRASES, DEFAULT_HOLDOUT, DEFAULT_PHRASES, DEFAULT_RECORDINGS, DEFAULT_STRING_MODEL,
    DEFAULT_STRING_MODELS, Verbosity, default_path, default_threads, load_model, load_string_model, paint,
};
use anyhow::{Context, bail};
use clap::Parser;
use spoken_digits::conditions::{self, Condition};
use spoken_digits::ctc::Lengths;
use spoken_digits::dataset::{self, Split};
use spoken_digits::predict;
use spoken_digits::recogniser;
use spoken_digits::rescore::{STRING_WEIGHT, StringReader};
use spoken_digits::strings::{self, Labelled, SequenceScores, SpliceConfig, WordBank};
use std::path::PathBuf;
use std::process::ExitCode;

/// Score a model on FSDD's test recordings of a split, clean or with white noise at a given SNR.
///
/// Prints the report (accuracy, per-class precision/recall/F1, confusion matrix); `--json`
/// prints it as JSON instead. With `--condition`, a table of accuracy per condition (each
/// condition applied to every test clip, seeded per file), clean first.
///
/// `--sequences` scores string models (`train --head ctc`; default the three shipped ones read
/// together, as listen reads; -m one of them, --ensemble others beside it)
/// four ways: strings spliced from the split's test words (a held-out speaker's own words with
/// `--split speaker:<name>`), seeded, of --lengths digits with --gap-ms between words; the
/// natural phrases of the voices held out of training (--phrases), and the same voices said
/// fast, 4-5 digits a second, as people say digit strings (--fast-phrases); and the split's
/// test recordings one by one (single digits). For each, the digit error rate (edits over
/// reference digits) and exact strings, by length.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct EvaluateArgs {
    /// Model weights (.safetensors) [default: models/digits.safetensors, else the copy built into
    /// this binary].
    #[arg(long, short, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Folder of FSDD recordings.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Hold-out manifest.
    #[arg(long, value_name = "FILE")]
    pub holdout: Option<PathBuf>,
    /// The split whose test set is scored: official, random or speaker:<name>.
    #[arg(long, default_value = "official")]
    pub split: Split,
    /// Add white noise at this signal-to-noise ratio (dB) to every clip.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "condition")]
    pub noise_snr: Option<f32>,
    /// Score under these recording conditions (repeatable, or a comma list; `all`: every one):
    /// clean, long, click, hum, dc, pink, babble, reverb, clip, phone, quiet. The clean score
    /// is always included. Babble's voices are other speakers' recordings of FSDD's official
    /// test part (index 0-4).
    #[arg(long, value_name = "NAME", value_parser = parse_conditions)]
    pub condition: Vec<Vec<Condition>>,
    /// Decide each word with the string models' second opinion: the classifier's probabilities
    /// times each string model's probability that the recording is that digit said alone, to
    /// the power W (measured, not what predict-file and listen do; see the model card).
    #[arg(long, value_name = "W", conflicts_with = "sequences")]
    pub second_opinion: Option<f64>,
    /// With --second-opinion: the string models (a comma list) [default: the three shipped
    /// ones, only for the default model on the official split: they heard every FSDD speaker,
    /// so a fold or another model needs string models trained like it].
    #[arg(long, value_name = "FILE,...", value_delimiter = ',', requires = "second_opinion")]
    pub strings: Vec<PathBuf>,
    /// Seed for the split and the noise.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    /// Score a string model on digit strings instead (see above).
    #[arg(long)]
    pub sequences: bool,
    /// With --sequences: digits per spliced string, N or MIN..MAX.
    #[arg(long, default_value = "3..10")]
    pub lengths: Lengths,
    /// With --sequences: gap between spliced words in ms, MIN,MAX (below 0: overlapped).
    #[arg(long, default_value = "0,80", value_parser = crate::cmd::train::parse_range, allow_hyphen_values = true)]
    pub gap_ms: (f32, f32),
    /// With --sequences: spliced strings to score.
    #[arg(long, default_value_t = 300)]
    pub count: usize,
    /// With --sequences: the phrases folder [default: free-spoken-digit-dataset/phrases].
    #[arg(long, value_name = "DIR")]
    pub phrases: Option<PathBuf>,
    /// With --sequences: the fast phrases folder [default:
    /// free-spoken-digit-dataset/phrases-fast; `scripts/synthesize-phrases --fast` makes it].
    #[arg(long, value_name = "DIR")]
    pub fast_phrases: Option<PathBuf>,
    /// With --sequences: decode with a length constraint: N, MIN..MAX, or `known` (each string's
    /// own length); greedy without it.
    #[arg(long, value_name = "N|MIN..MAX|known")]
    pub digits: Option<String>,
    /// With --sequences: read each digit of the string model's reading again with this
    /// classifier and decide it by both models' probabilities; `none`: the string model alone.
    #[arg(long, value_name = "FILE|none")]
    pub classifier: Option<PathBuf>,
    /// With --sequences: read each utterance also with the voice shifted by these factors
    /// (a comma list, e.g. 0.85,1.15; `none`: the plain reading alone) instead of the model's
    /// own `voice_shifts`.
    #[arg(long, value_name = "LIST|none", requires = "sequences")]
    pub voice_shifts: Option<VoiceShifts>,
    /// With --sequences: other string models reading beside the model (a comma list): each
    /// reads every utterance, and of their readings the one all the models together find
    /// likeliest wins.
    #[arg(long, value_name = "FILE,...", value_delimiter = ',', requires = "sequences")]
    pub ensemble: Vec<PathBuf>,
    /// With --sequences: score what `listen --input` prints for each recording instead of the
    /// string model's reading of it whole: cut by listen's VAD, each utterance read by the
    /// string model or by the default classifier (models/digits.safetensors) as listen picks.
    #[arg(long, requires = "sequences", conflicts_with_all = ["classifier", "digits"])]
    pub listen: bool,
    /// With --classifier: the exponent on the string model's probabilities beside the
    /// classifier's (0: the classifier alone decides each digit).
    #[arg(long, default_value_t = STRING_WEIGHT, value_name = "W")]
    pub string_weight: f32,
    /// With --classifier: cut each digit's stretch at the quietest moment between it and its
    /// neighbours, and read a digit again only where the level dips at least DB under the
    /// words at both its cuts (a pause); without it, stretches meet halfway and every digit
    /// is read again. With --listen: the digits listen reads again so (default: listen's own
    /// setting; `none`: the string model alone).
    #[arg(long, value_name = "DB|none", value_parser = parse_dip, requires = "sequences")]
    pub dip_db: Option<Dip>,
    /// Print the scores as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `--dip-db`: a depth in dB, or none.
#[derive(Debug, Clone, Copy)]
pub struct Dip(pub Option<f32>);

fn parse_dip(s: &str) -> Result<Dip, String> {
    if s == "none" {
        return Ok(Dip(None));
    }
    match s.parse::<f32>() {
        Ok(db) if db.is_finite() => Ok(Dip(Some(db))),
        _ => Err("need a depth in dB, or none".into()),
    }
}

/// `--voice-shifts`: factors, or none.
#[derive(Debug, Clone)]
pub struct VoiceShifts(pub Vec<f32>);

impl std::str::FromStr for VoiceShifts {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "none" {
            return Ok(VoiceShifts(vec![]));
        }
        text.split(',')
            .map(|f| {
                f.trim().parse::<f32>().map_err(|_| format!("'{f}' is not a number (a comma list, or none)"))
            })
            .collect::<Result<_, _>>()
            .map(VoiceShifts)
    }
}

fn parse_conditions(text: &str) -> Result<Vec<Condition>, String> {
    Condition::parse_list(text).map_err(|e| e.to_string())
}

/// The whole command: what `evaluate` does with its flags.
pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    if args.sequences {
        return sequences(args);
    }
    let (model, model_name) = load_model(args.model.as_deref())?;
    let holdout =
        dataset::read_holdout(&args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT)))?;
    let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let scan = dataset::scan(&data, &holdout)?;
    let sets = dataset::split(&scan.recordings, &args.split, dataset::DEFAULT_VAL_FRACTION, args.seed)?;
    let strings = match args.second_opinion {
        None => None,
        Some(w) if !(w.is_finite() && w >= 0.0) => bail!("--second-opinion needs a weight of 0 or more"),
        Some(_) if args.strings.is_empty() && (args.model.is_some() || args.split != Split::Official) => {
            bail!(
                "--second-opinion with -m or a split other than the official one needs --strings: the shipped \
             string models heard every FSDD speaker"
            )
        }
        Some(_) => load_string_model(&args.strings, false)?,
    };
    let opinion = strings.as_ref().zip(args.second_opinion);
    let reader = match args.second_opinion {
        Some(w) => format!("{model_name} with the string models' second opinion (weight {w})"),
        None => model_name,
    };
    if !args.condition.is_empty() {
        let mut chosen = vec![Condition::Clean];
        for &c in args.condition.iter().flatten() {
            if !chosen.contains(&c) {
                chosen.push(c);
            }
        }
        let pool: Vec<_> = scan.recordings.iter().filter(|r| r.index < 5).cloned().collect();
        let table =
            conditions::evaluate(&model, opinion, &sets.test, &pool, &chosen, args.seed, args.threads)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&table)?);
            return Ok(ExitCode::SUCCESS);
        }
        if !args.verbosity.quiet {
            let s = paint::STRONG;
            anstream::println!("{s}{reader} on the {} test set, by condition:{s:#}", args.split);
        }
        println!("{:<9} {:>8} {:>9}  what", "condition", "accuracy", "correct");
        for row in &table {
            let correct = format!("{}/{}", row.scores.correct, row.scores.total);
            println!(
                "{:<9} {:>7.2}% {:>9}  {}",
                row.condition.name(),
                100.0 * row.scores.accuracy,
                correct,
                row.description
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let scores = predict::evaluate(&model, opinion, &sets.test, args.noise_snr, args.seed, args.threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
    } else {
        let noise = args.noise_snr.map(|s| format!(", white noise at {s} dB SNR")).unwrap_or_default();
        if !args.verbosity.quiet {
            let s = paint::STRONG;
            anstream::println!("{s}{reader} on the {} test set{noise}:{s:#}", args.split);
        }
        print!("{scores}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The scores of `--sequences`.
struct SequenceReport {
    model: String,
    split: String,
    decoding: String,
    spliced: SequenceScores,
    phrases: PhraseScores,
    fast: PhraseScores,
    single: SequenceScores,
}

/// The held-out voices' phrases in a folder: all of them, and each voice (its name prefix)
/// apart.
struct PhraseScores {
    all: SequenceScores,
    by_voice: Vec<(&'static str, SequenceScores)>,
}

impl PhraseScores {
    /// Reads the held-out voices' phrases in `dir` and scores them with `score`.
    fn of<F>(dir: &std::path::Path, rate: u32, threads: usize, score: F) -> anyhow::Result<Self>
    where
        F: Fn(&[Labelled]) -> anyhow::Result<SequenceScores>,
    {
        let files = strings::scan_phrases(dir, true)
            .with_context(|| format!("reading the held-out phrases in {}", dir.display()))?;
        let phrases =
            strings::load_phrases(&files, rate, spoken_digits::audio::DEFAULT_MAX_SECONDS, threads)?;
        let by_voice = strings::HELD_OUT_VOICES
            .into_iter()
            .map(|voice| {
                let mine: Vec<Labelled> = files
                    .iter()
                    .zip(&phrases)
                    .filter(|(f, _)| f.voice.starts_with(voice))
                    .map(|(_, p)| p.clone())
                    .collect();
                Ok((voice, score(&mine)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PhraseScores { all: score(&phrases)?, by_voice })
    }

    fn by_voice_json(&self) -> std::collections::BTreeMap<String, &SequenceScores> {
        self.by_voice.iter().map(|(v, s)| (v.to_string(), s)).collect()
    }

    /// The table, then a line per voice.
    fn print(&self) {
        print!("{}", self.all);
        for (voice, scores) in &self.by_voice {
            println!(
                "  {voice}: {} strings, digit error rate {:.2}%, exact strings {:.1}%",
                scores.strings,
                100.0 * scores.digit_error_rate(),
                100.0 * scores.exact_rate()
            );
        }
    }
}

/// How the strings were read: "greedy", "digits N" or through listen, the classifier that read
/// each digit again, and the voice shifts read beside the plain reading.
fn decoding(args: &EvaluateArgs, classifier: Option<&str>, voice_shifts: &[f32]) -> String {
    let reading = if args.listen {
        let listening = "as listen --input reads them: its VAD, the string model or the classifier";
        match args.dip_db.map_or(recogniser::REREAD_DIP_DB, |d| d.0) {
            None => listening.to_string(),
            Some(db) => format!("{listening}, a string's digits between pauses of {db} dB read again by it"),
        }
    } else {
        let constraint = args.digits.as_ref().map_or("greedy".to_string(), |d| format!("digits {d}"));
        match classifier {
            None => constraint,
            Some(name) => {
                let which = match args.dip_db.and_then(|d| d.0) {
                    None => "each digit".to_string(),
                    Some(db) => format!("each digit between pauses of {db} dB"),
                };
                format!("{constraint}, {which} read again by {name} (string weight {})", args.string_weight)
            }
        }
    };
    let reading = match args.ensemble.as_slice() {
        [] => reading,
        others => format!(
            "{reading}; with {} beside it, the reading all find likeliest",
            others.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    match voice_shifts {
        [] => reading,
        shifts => format!(
            "{reading}; also read with the voice shifted x{}, the readings averaged",
            shifts.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", x")
        ),
    }
}

fn sequences(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    // -m (else models/strings.safetensors) and --ensemble beside it; neither: the shipped ones,
    // read together as listen does.
    let named: Vec<PathBuf> = match (&args.model, args.ensemble.is_empty()) {
        (None, true) => vec![],
        (first, _) => std::iter::once(first.clone().unwrap_or_else(|| default_path(DEFAULT_STRING_MODEL)))
            .chain(args.ensemble.iter().cloned())
            .collect(),
    };
    let mut model = crate::load_string_model(&named, false)?.context("no string model")?;
    let name = named.first().map_or_else(|| DEFAULT_STRING_MODELS.join(", "), |p| p.display().to_string());
    if let Some(VoiceShifts(shifts)) = &args.voice_shifts {
        model = model.with_voice_shifts(shifts.clone())?;
    }
    let rate = model.config().features.sample_rate;
    let classifier = match args.classifier.as_deref() {
        Some(p) if p == std::path::Path::new("none") => None,
        Some(p) => Some(load_model(Some(p))?),
        None => None,
    };
    if args.dip_db.is_some() && classifier.is_none() && !args.listen {
        bail!("--dip-db needs --classifier FILE or --listen: only then is a digit read again");
    }
    let reader = match &classifier {
        None => StringReader::alone(&model),
        Some((c, _)) => StringReader {
            weight: args.string_weight,
            dip_db: args.dip_db.and_then(|d| d.0),
            ..StringReader::with_classifier(&model, c)?
        },
    };
    let constraint = match args.digits.as_deref() {
        None => None,
        Some("known") => Some(None),
        Some(text) => Some(Some(text.parse::<Lengths>()?)),
    };
    let lengths = |reference: &[u8]| match constraint {
        None => None,
        Some(None) => Some(Lengths { min: reference.len(), max: reference.len() }),
        Some(Some(l)) => Some(l),
    };
    let listening = if args.listen { Some(load_model(None)?.0) } else { None };
    let score = |items: &[Labelled]| -> anyhow::Result<SequenceScores> {
        Ok(match &listening {
            Some(classifier) => {
                let dip = args.dip_db.map_or(recogniser::REREAD_DIP_DB, |d| d.0);
                recogniser::score_listening(classifier, &model, dip, items, args.threads)?
            }
            None => strings::score_strings(&reader, items, lengths, args.threads)?,
        })
    };
    let holdout =
        dataset::read_holdout(&args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT)))?;
    let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let scan = dataset::scan(&data, &holdout)?;
    let sets = dataset::split(&scan.recordings, &args.split, dataset::DEFAULT_VAL_FRACTION, args.seed)?;
    let max_seconds = spoken_digits::audio::DEFAULT_MAX_SECONDS;
    let bank = WordBank::load(&sets.test, rate, max_seconds, args.threads)?;
    let cfg = SpliceConfig::test((args.lengths.min, args.lengths.max), args.gap_ms);
    let spliced: Vec<Labelled> =
        bank.strings(&cfg, args.count, args.seed)?.into_iter().map(|u| (u.samples, u.digits)).collect();
    let single: Vec<Labelled> = sets
        .test
        .iter()
        .map(|r| Ok((spoken_digits::audio::load(&r.path, rate, max_seconds)?, vec![r.digit])))
        .collect::<spoken_digits::Result<_>>()?;
    let phrases_dir = args.phrases.clone().unwrap_or_else(|| default_path(DEFAULT_PHRASES));
    let fast_dir = args.fast_phrases.clone().unwrap_or_else(|| default_path(DEFAULT_FAST_PHRASES));
    let report = SequenceReport {
        model: name,
        split: args.split.to_string(),
        decoding: decoding(
            args,
            classifier.as_ref().map(|(_, name)| name.as_str()),
            &model.config().voice_shifts,
        ),
        spliced: score(&spliced)?,
        phrases: PhraseScores::of(&phrases_dir, rate, args.threads, score)?,
        fast: PhraseScores::of(&fast_dir, rate, args.threads, score)?,
        single: score(&single)?,
    };
    if args.json {
        let json = serde_json::json!({
            "model": report.model,
            "split": report.split,
            "decoding": report.decoding,
            "spliced": report.spliced,
            "phrases": report.phrases.all,
            "phrases_by_voice": report.phrases.by_voice_json(),
            "fast_phrases": report.fast.all,
            "fast_phrases_by_voice": report.fast.by_voice_json(),
            "single": report.single,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = paint::STRONG;
    let (lo, hi) = (args.lengths.min, args.lengths.max);
    let (g0, g1) = args.gap_ms;
    anstream::println!(
        "{s}{} ({}) on strings spliced from the {} test words, {lo}-{hi} digits, gaps {g0}-{g1} ms:{s:#}",
        report.model,
        report.decoding,
        report.split
    );
    print!("{}", report.spliced);
    anstream::println!(
        "\n{s}natural phrases of the held-out voices ({}):{s:#}",
        strings::HELD_OUT_VOICES.join(", ")
    );
    report.phrases.print();
    anstream::println!("\n{s}the same voices said fast, 4-5 digits a second ({}):{s:#}", fast_dir.display());
    report.fast.print();
    anstream::println!("\n{s}single digits (the {} test recordings, each read whole):{s:#}", report.split);
    print!("{}", report.single);
    Ok(ExitCode::SUCCESS)
}
