//! `train`'s flags, the data they name, and its reports. The options become an
//! [`Overrides`] that the library lays over the recipe and checks; the recipe's values in
//! `--help` (`[recipe: ...]`) come from [`TrainConfig::recipe`] itself. The training loop stays
//! in the binary, the only place that links libtorch.

use crate::{
    DEFAULT_HOLDOUT, DEFAULT_PHRASES, DEFAULT_RECORDINGS, DEFAULT_SYNTHETIC, EpochBars, Verbosity,
    default_path, default_threads, paint, warn,
};
use anyhow::{Context, bail};
use spoken_digits::augment::{FREQ_MASK_WIDTH, TIME_MASK_WIDTH};
use spoken_digits::conditions::Condition;
use spoken_digits::dataset::{self, Recording, Sets};
use spoken_digits::model::{self, Arch, Head};
use spoken_digits::overrides::{Overrides, TrainSplit, number, pair, recipe_setting, recipe_values};
use spoken_digits::strings::{self, Labelled, SpliceConfig, StringTrainConfig, StringTrainReport, WordBank};
use spoken_digits::train::{
    self, Keep, LosoReport, Progress as _, Recipe, Schedule, TrainConfig, TrainReport,
};
use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `HELP [recipe: VALUES]`, the values read from the recipes.
fn recipe_help(help: &str, value: impl Fn(&TrainConfig) -> String) -> String {
    format!("{help} [recipe: {}]", recipe_setting(value))
}

fn lower(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

/// Train the spoken-digit CNN on the Free Spoken Digit Dataset.
///
/// `--recipe robust` (default) is the shipped model's recipe, built for voices it never heard:
/// FSDD plus 1,980 synthetic digits in 102 voices (female, male, accented; made by `scripts/setup`
/// with flite and espeak-ng), silence trimmed, the log-mel spectrogram, three augmented copies
/// (speed, shift, random equalisation, gain, noise, a random lead-in and end cut, SpecAugment
/// masks), the wide network, AdamW at 3e-3 with a cosine schedule, 15 epochs (about two minutes
/// on two cores), keeping the mean of the last five epochs' weights.
/// `--recipe original` is the original project's recipe: one augmented copy of the training set
/// (shift, gain, noise; each p = 0.5), Adam lr 1e-3, batch 64, 10 epochs, keeping the best
/// validation epoch's weights.
/// Every flag below overrides the recipe. Writes OUT (.safetensors), its config (.json) and
/// metrics (.metrics.json), and beside them two pictures: the confusion matrix (.confusion.png)
/// and the loss and accuracy curves (.curves.png). `--split loso` writes the metrics, the
/// accuracy per speaker (.speakers.png) and the pooled confusion matrix.
///
/// `--extra-data DIR` adds your own recordings (from `listen --enroll`) to the training set.
///
/// `--head ctc` trains the string model instead (it reads a whole utterance and emits a digit
/// string): CTC on strings of 1-12 digits spliced afresh every step from the split's training
/// words (FSDD and the synthetic voices but the held-out ones) and on the training voices'
/// phrases (`--phrases`), AdamW with a cosine schedule. Of the flags below it takes --data,
/// --synthetic/--no-synthetic, --holdout, --out [default: models/strings.safetensors],
/// --split (not loso), --seed, --steps, --tempo, --phrase-share, --dropout, --bucket, --batch-size, --lr,
/// --weight-decay, --device, --threads and --torch-threads.
#[derive(clap::Parser, Debug)]
#[command(version, about, long_about)]
pub struct TrainArgs {
    /// Folder of FSDD recordings ({digit}_{speaker}_{index}.wav, or .flac, .ogg, .opus, .mp3,
    /// .m4a, ...).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A folder of extra FSDD-named recordings, such as your own takes from `listen --enroll
    /// DIR`, added to the training set only (never validation or test) in every split, and
    /// augmented like FSDD. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub extra_data: Vec<PathBuf>,
    #[arg(long, value_name = "DIR", conflicts_with = "no_synthetic", help = format!(
        "Synthetic voices added to the training set like --extra-data (`scripts/setup` makes them with flite and espeak-ng) [recipe: {}]",
        recipe_values(|r| if r.uses_synthetic() { DEFAULT_SYNTHETIC } else { "none" }.to_string())))]
    pub synthetic: Option<PathBuf>,
    /// Train without synthetic voices.
    #[arg(long)]
    pub no_synthetic: bool,
    /// Hold-out manifest: files never used for training, validation or test.
    #[arg(long, value_name = "FILE")]
    pub holdout: Option<PathBuf>,
    /// Where to write the model (.safetensors); config and metrics go beside it
    /// [default: models/digits.safetensors; with --split loso: models/loso-<recipe>.metrics.json].
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The kind of model: classifier (one digit per utterance) or ctc (the string model).
    #[arg(long, default_value = "classifier")]
    pub head: Head,
    /// Natural phrases for the string model [default: free-spoken-digit-dataset/phrases].
    #[arg(long, value_name = "DIR")]
    pub phrases: Option<PathBuf>,
    #[arg(long, help = format!(
        "Optimiser steps of the string model, each a batch of fresh strings [default: {}]",
        StringTrainConfig::default().steps))]
    pub steps: Option<usize>,
    #[arg(long, value_name = "MIN,MAX|none", value_parser = parse_tempo, help = format!(
        "With --head ctc: half the training strings said faster or slower at the same pitch, by a factor drawn from MIN,MAX; none: off [default: {},{}]",
        StringTrainConfig::default().augment.tempo.0, StringTrainConfig::default().augment.tempo.1))]
    pub tempo: Option<(f32, f32)>,
    #[arg(long, value_name = "SHARE", value_parser = parse_share, help = format!(
        "With --head ctc: the share of each batch taken from the natural phrases (the rest spliced from single words) [default: {}]",
        StringTrainConfig::default().phrase_share))]
    pub phrase_share: Option<f64>,
    #[arg(long, value_name = "P", value_parser = parse_dropout, help = format!(
        "With --head ctc: dropout on the projection's and each block's output while training [default: {}]",
        StringTrainConfig::default().dropout))]
    pub dropout: Option<f64>,
    #[arg(long, value_name = "N", help = format!(
        "With --head ctc: batches made together and sorted by length, so that each pads little; 1: each batch as drawn [default: {}]",
        StringTrainConfig::default().bucket))]
    pub bucket: Option<usize>,
    /// Starting point for every setting below: original or robust.
    #[arg(long, default_value = "robust")]
    pub recipe: Recipe,
    /// official (FSDD's index 0-4 test), random (shuffled 80/10/10), speaker:<name> (one speaker
    /// held out), or loso (all leave-one-speaker-out folds, per-speaker accuracy).
    #[arg(long, default_value = "official")]
    pub split: TrainSplit,
    /// Seed for the split, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, help = recipe_help("Epochs", |c| c.epochs.to_string()))]
    pub epochs: Option<usize>,
    #[arg(long, help = recipe_help("Batch size", |c| c.batch_size.to_string()))]
    pub batch_size: Option<usize>,
    #[arg(long, help = recipe_help("Learning rate", |c| number(c.learning_rate)))]
    pub lr: Option<f64>,
    #[arg(long, help = recipe_help("Learning-rate schedule: constant or cosine", |c| lower(c.schedule)))]
    pub schedule: Option<Schedule>,
    #[arg(long, help = recipe_help("AdamW weight decay; 0 is Adam", |c| number(c.weight_decay)))]
    pub weight_decay: Option<f64>,
    #[arg(long, value_name = "ALPHA", help = recipe_help(
        "Mixup: blend each batch with a shuffled copy of itself by a weight drawn from Beta(ALPHA, ALPHA); 0 is off",
        |c| number(c.mixup)))]
    pub mixup: Option<f64>,
    #[arg(long, value_name = "SHARE", help = recipe_help(
        "Label smoothing: this share of each target spread evenly over the ten digits; 0 is off",
        |c| number(c.label_smoothing)))]
    pub label_smoothing: Option<f64>,
    #[arg(long, value_name = "CHOICE", help = recipe_help(
        "Which weights to keep: best (the best validation epoch's), last, or average:N (the mean of the last N epochs' weights)",
        |c| c.keep.to_string()))]
    pub keep: Option<Keep>,
    #[arg(long, help = recipe_help("Fraction of the non-test recordings used for validation", |c| number(c.val_fraction)))]
    pub val_fraction: Option<f64>,
    #[arg(long, help = recipe_help(
        "Augmented copies of the training set per epoch; 0 disables augmentation",
        |c| c.augmented_copies.to_string()))]
    pub augmented_copies: Option<usize>,
    #[arg(long, help = recipe_help("Probability of each augmentation", |c| number(c.augment.p)))]
    pub aug_prob: Option<f64>,
    #[arg(long, help = recipe_help(
        "Largest circular time shift, as a fraction of the clip", |c| number(c.augment.max_shift)))]
    pub max_shift: Option<f64>,
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true,
          help = recipe_help("Gain range in dB, MIN,MAX", |c| pair(c.augment.gain_db)))]
    pub gain_db: Option<(f32, f32)>,
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true,
          help = recipe_help("White-noise SNR range in dB, MIN,MAX", |c| pair(c.augment.snr_db)))]
    pub snr_db: Option<(f32, f32)>,
    #[arg(long, value_parser = parse_range,
          help = recipe_help("Speed perturbation range, MIN,MAX; 1,1 is off", |c| pair(c.augment.speed)))]
    pub speed: Option<(f32, f32)>,
    #[arg(long, value_parser = parse_range, help = recipe_help(
        "Vocal tract length perturbation range, MIN,MAX; 1,1 is off", |c| pair(c.augment.vtlp)))]
    pub vtlp: Option<(f32, f32)>,
    #[arg(long, value_name = "DB", help = recipe_help(
        "Random equalisation: three peaking filters of up to +-DB each (microphone variety); 0 is off",
        |c| number(c.augment.eq_db)))]
    pub eq_db: Option<f32>,
    #[arg(long, value_name = "P,DB", value_parser = parse_treble_cut, help = recipe_help(
        "Random treble cut: with this probability, a high shelf of down to -DB from a corner at 1-3 kHz (a microphone that rolls off the highs), as P,DB; 0,0 is off",
        |c| format!("{},{}", number(c.augment.treble_cut), number(c.augment.treble_cut_db))))]
    pub treble_cut: Option<(f64, f32)>,
    #[arg(long, value_name = "P", help = recipe_help(
        "Recording-condition augmentation: with this probability an augmented example also gets one of the condition suite's kinds (long, click, hum, dc, pink, babble, reverb, clip, phone, quiet) at a random strength; 0 is off",
        |c| number(c.augment.conditions)))]
    pub conditions: Option<f64>,
    #[arg(long, value_name = "NAME=W,...", value_parser = parse_condition_weights, help = recipe_help(
        "How often each recording condition is drawn, against weight 1 for those not named (e.g. babble=2,clip=2: those two twice as often)",
        |c| condition_weights(&c.augment.condition_weights)))]
    pub condition_weights: Option<ConditionWeights>,
    #[arg(long, help = recipe_help(
        "Find the word in the recording (a noise-adaptive detector that ignores clicks, DC and hum, and keeps the region with the most speech) instead of trimming from the first loud sample",
        |c| c.features.find_word.to_string()))]
    pub find_word: Option<bool>,
    #[arg(long, help = recipe_help(
        "Redraw the flat tops of clipped recordings before the front end (training and reading alike)",
        |c| c.features.declip.to_string()))]
    pub declip: Option<bool>,
    #[arg(long, value_name = "FRACTION", help = recipe_help(
        "Random lead-in: up to this fraction of the clip of silence before the trimmed word, with probability --aug-prob; 0 is off",
        |c| number(c.augment.lead_in)))]
    pub lead_in: Option<f64>,
    #[arg(long, value_name = "FRACTION", help = recipe_help(
        "Random end cut: up to this fraction of the trimmed word cut from its end, with probability --aug-prob; 0 is off",
        |c| number(c.augment.end_cut)))]
    pub end_cut: Option<f32>,
    #[arg(long, help = recipe_help(
        &format!("SpecAugment time masks per example, each up to {TIME_MASK_WIDTH} frames"),
        |c| c.augment.time_masks.to_string()))]
    pub time_masks: Option<usize>,
    #[arg(long, help = recipe_help(
        &format!("SpecAugment coefficient masks per example, each up to {FREQ_MASK_WIDTH} rows"),
        |c| c.augment.freq_masks.to_string()))]
    pub freq_masks: Option<usize>,
    #[arg(long, help = recipe_help(
        "Network: original, compact, wide (compact with twice the channels), or ds (wide's channels, depthwise-separable: a seventh of the compute); with --head ctc, tcn or tcn-wide", |c| lower(c.arch)))]
    pub arch: Option<Arch>,
    #[arg(long, help = recipe_help(
        "Trim silence quieter than this many dB below the loudest part before the features; 0 disables",
        |c| c.features.trim_db.map_or("off".to_string(), number)))]
    pub trim_db: Option<f32>,
    #[arg(long, help = recipe_help("Per-utterance feature normalisation", |c| c.features.normalize.to_string()))]
    pub normalize: Option<bool>,
    #[arg(long, help = recipe_help("Mel bands of the front end", |c| c.features.n_mels.to_string()))]
    pub n_mels: Option<usize>,
    #[arg(long, help = recipe_help(
        "MFCC coefficients kept, at most --n-mels; with --log-mel the rows, --n-mels",
        |c| c.features.n_mfcc.to_string()))]
    pub n_mfcc: Option<usize>,
    #[arg(long, help = recipe_help(
        "The network sees the log-mel spectrogram (--n-mels rows of decibels, the MFCCs before their DCT) instead of the MFCCs",
        |c| c.features.log_mel.to_string()))]
    pub log_mel: Option<bool>,
    /// cpu, cuda, cuda:N or auto (CUDA when this libtorch has it).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    /// libtorch CPU threads [default: 1 for the classifier, whose augmentation worker needs
    /// the other core (libtorch's spinning thread pool slows down several-fold when it must
    /// share cores); every core for --head ctc, whose string worker needs a tenth of one (500
    /// steps 148 -> 106 s with two threads on the idle 2-core machine)]. On a machine shared
    /// with other work, 1.
    #[arg(long, value_name = "N")]
    pub torch_threads: Option<usize>,
    /// Replace an existing model even when it scored better on the same split.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Two comma-separated numbers, as `expected` (e.g. "MIN,MAX") names them.
fn parse_pair<A: FromStr, B: FromStr>(s: &str, expected: &str) -> Result<(A, B), String>
where
    A::Err: Display,
    B::Err: Display,
{
    let (a, b) = s.split_once(',').ok_or(format!("expected {expected}"))?;
    let parsed_a = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let parsed_b = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    Ok((parsed_a, parsed_b))
}

/// `MIN,MAX`, finite and in order.
pub fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let (a, b): (f32, f32) = parse_pair(s, "MIN,MAX")?;
    if a.is_finite() && b.is_finite() && a <= b { Ok((a, b)) } else { Err("need finite MIN <= MAX".into()) }
}

/// `--phrase-share`: a share in 0-1.
fn parse_share(s: &str) -> Result<f64, String> {
    let share: f64 = s.trim().parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.0..=1.0).contains(&share) { Ok(share) } else { Err("the share must lie in 0-1".into()) }
}

fn parse_dropout(s: &str) -> Result<f64, String> {
    let p: f64 = s.trim().parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.0..1.0).contains(&p) { Ok(p) } else { Err("dropout must lie in [0, 1)".into()) }
}

/// `--tempo`: `MIN,MAX` (each factor in 0.5-2), or `none` (1,1: off).
fn parse_tempo(s: &str) -> Result<(f32, f32), String> {
    if s == "none" {
        return Ok((1.0, 1.0));
    }
    let (a, b) = parse_range(s)?;
    if a >= 0.5 && b <= 2.0 { Ok((a, b)) } else { Err("tempo factors must lie in 0.5-2".into()) }
}

fn parse_treble_cut(s: &str) -> Result<(f64, f32), String> {
    let (p, db) = parse_pair(s, "P,DB")?;
    if (0.0..=1.0).contains(&p) && (0.0..=40.0).contains(&db) {
        Ok((p, db))
    } else {
        Err("need a probability P in [0, 1] and a cut DB of 0 to 40".into())
    }
}

/// `--condition-weights`: (condition, weight) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionWeights(pub Vec<(Condition, f64)>);

fn parse_condition_weights(s: &str) -> Result<ConditionWeights, String> {
    s.split(',')
        .map(|item| {
            let (name, weight) = item.split_once('=').ok_or("need NAME=W pairs, e.g. babble=2,clip=2")?;
            let condition: Condition =
                name.trim().parse().map_err(|e: spoken_digits::Error| e.to_string())?;
            match weight.trim().parse::<f64>() {
                Ok(w) if w >= 0.0 && w.is_finite() => Ok((condition, w)),
                _ => Err(format!("{name}'s weight must be a number of 0 or more")),
            }
        })
        .collect::<Result<_, String>>()
        .map(ConditionWeights)
}

fn condition_weights(weights: &[(Condition, f64)]) -> String {
    if weights.is_empty() {
        return "all 1".into();
    }
    weights.iter().map(|(c, w)| format!("{}={}", c.name(), number(*w))).collect::<Vec<_>>().join(",")
}

impl TrainArgs {
    /// The options given, for [`Overrides::apply`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            schedule: self.schedule,
            weight_decay: self.weight_decay,
            mixup: self.mixup,
            label_smoothing: self.label_smoothing,
            keep: self.keep,
            val_fraction: self.val_fraction,
            augmented_copies: self.augmented_copies,
            aug_prob: self.aug_prob,
            max_shift: self.max_shift,
            gain_db: self.gain_db,
            snr_db: self.snr_db,
            speed: self.speed,
            vtlp: self.vtlp,
            eq_db: self.eq_db,
            treble_cut: self.treble_cut,
            conditions: self.conditions,
            condition_weights: self.condition_weights.clone().map(|w| w.0),
            find_word: self.find_word,
            declip: self.declip,
            lead_in: self.lead_in,
            end_cut: self.end_cut,
            time_masks: self.time_masks,
            freq_masks: self.freq_masks,
            arch: self.arch,
            trim_db: self.trim_db,
            normalize: self.normalize,
            n_mels: self.n_mels,
            n_mfcc: self.n_mfcc,
            log_mel: self.log_mel,
        }
    }

    fn data(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS))
    }

    fn holdout(&self) -> anyhow::Result<HashSet<String>> {
        let path = self.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT));
        dataset::read_holdout(&path).context("reading the hold-out manifest (run scripts/setup)")
    }

    /// `--synthetic`, else the recipe's choice (the string model always takes them), unless
    /// `--no-synthetic`.
    fn synthetic(&self, by_default: bool) -> Option<PathBuf> {
        match &self.synthetic {
            _ if self.no_synthetic => None,
            Some(dir) => Some(dir.clone()),
            None => by_default.then(|| default_path(DEFAULT_SYNTHETIC)),
        }
    }
}

/// A classifier run, ready to train: the checked config and the recordings.
pub struct Plan {
    pub config: TrainConfig,
    pub loso: bool,
    pub recordings: Vec<Recording>,
    /// Training-only recordings: `--extra-data` and the synthetic voices.
    pub extra: Vec<Recording>,
}

impl Plan {
    /// Checks the options (before any data is read), then reads the recordings and says what
    /// will be trained on (`device` as the trainer names it).
    pub fn new(args: &TrainArgs, device: &dyn std::fmt::Debug) -> anyhow::Result<Plan> {
        let mut config = args.overrides().apply(args.recipe, args.seed)?;
        let loso = args.split == TrainSplit::Loso;
        if let TrainSplit::One(split) = &args.split {
            config.split = split.clone();
        }
        let data = args.data();
        let holdout = args.holdout()?;
        let scan = scan_folder(&data, &holdout)?;
        let synthetic = args.synthetic(args.recipe.uses_synthetic());
        if let Some(dir) = &synthetic
            && !dir.is_dir()
        {
            bail!(
                "the synthetic voices are missing: {} is not a folder (scripts/setup makes it; --no-synthetic trains on FSDD alone)",
                dir.display()
            );
        }
        let mut extra = vec![];
        for dir in args.extra_data.iter().chain(&synthetic) {
            if same_folder(dir, &data) {
                bail!(
                    "{} is the --data folder: its test recordings would be trained on (--extra-data and --synthetic take other folders)",
                    dir.display()
                );
            }
            let found = scan_folder(dir, &holdout)?;
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            config.extra_data.push(train::ExtraData { dir, recordings: found.recordings.len() });
            extra.extend(found.recordings);
        }
        if !args.verbosity.quiet {
            let extra_note = if extra.is_empty() {
                String::new()
            } else {
                format!(" + {} extra for training only", extra.len())
            };
            eprintln!(
                "{} recordings ({} held out){extra_note}, recipe {:?}, split {}, device {:?}",
                scan.recordings.len(),
                scan.held_out,
                args.recipe,
                if loso { "loso".to_string() } else { config.split.to_string() },
                device
            );
        }
        Ok(Plan { config, loso, recordings: scan.recordings, extra })
    }

    /// The training, validation and test sets of the one split.
    pub fn sets(&self) -> anyhow::Result<Sets> {
        let c = &self.config;
        Ok(dataset::split_with_extra(&self.recordings, &self.extra, &c.split, c.val_fraction, c.seed)?)
    }
}

/// A string-model run, ready to train: the config, the words and phrases, the validation strings.
pub struct StringPlan {
    pub config: StringTrainConfig,
    pub bank: WordBank,
    pub phrases: Vec<Labelled>,
    pub val: Vec<Labelled>,
    pub val_words: usize,
}

impl StringPlan {
    /// `--head ctc`: checks the options, reads the words and phrases and says what will be
    /// trained on.
    pub fn new(args: &TrainArgs, progress: &mut EpochBars) -> anyhow::Result<StringPlan> {
        let mut cfg = StringTrainConfig { seed: args.seed, ..StringTrainConfig::default() };
        match &args.split {
            TrainSplit::Loso => bail!("--head ctc trains one split at a time (official or speaker:<name>)"),
            TrainSplit::One(split) => cfg.split = split.clone(),
        }
        fn set<T: Copy>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut cfg.steps, args.steps);
        set(&mut cfg.batch_size, args.batch_size);
        set(&mut cfg.learning_rate, args.lr);
        set(&mut cfg.weight_decay, args.weight_decay);
        set(&mut cfg.arch, args.arch);
        set(&mut cfg.augment.tempo, args.tempo);
        set(&mut cfg.phrase_share, args.phrase_share);
        set(&mut cfg.dropout, args.dropout);
        set(&mut cfg.bucket, args.bucket);
        if cfg.steps == 0 || cfg.batch_size == 0 || cfg.bucket == 0 {
            bail!("--steps, --batch-size and --bucket must be positive");
        }
        let data = args.data();
        let holdout = args.holdout()?;
        let fsdd = scan_folder(&data, &holdout)?;
        let synthetic = args.synthetic(true);
        let synthetic_words = match &synthetic {
            Some(dir) => scan_folder(dir, &holdout)?.recordings,
            None => vec![],
        };
        let phrases_dir = args.phrases.clone().unwrap_or_else(|| default_path(DEFAULT_PHRASES));
        let phrase_files = strings::scan_phrases(&phrases_dir, false)
            .with_context(|| format!("reading the training phrases in {}", phrases_dir.display()))?;
        let sets = strings::split_words(
            &fsdd.recordings,
            &synthetic_words,
            &cfg.split,
            dataset::DEFAULT_VAL_FRACTION,
            cfg.seed,
        )?;
        for (dir, n) in synthetic
            .iter()
            .map(|d| (d, sets.train.len() - sets.train.iter().filter(|r| r.path.starts_with(&data)).count()))
            .chain([(&phrases_dir, phrase_files.len())])
        {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            cfg.sources.push(train::ExtraData { dir, recordings: n });
        }
        progress.stage(&format!(
            "string model: {} training words, {} phrases of the training voices, {} validation words, split {}, {} steps of {}",
            sets.train.len(),
            phrase_files.len(),
            sets.val.len(),
            cfg.split,
            cfg.steps,
            cfg.batch_size
        ));
        let rate = cfg.features.sample_rate;
        let bank = WordBank::load(&sets.train, rate, cfg.max_seconds, args.threads)?;
        let val_bank = WordBank::load(&sets.val, rate, cfg.max_seconds, args.threads)?;
        let val: Vec<Labelled> = val_bank
            .strings(&SpliceConfig::test((1, strings::MAX_DIGITS), (0.0, 80.0)), cfg.val_strings, cfg.seed)?
            .into_iter()
            .map(|u| (u.samples, u.digits))
            .collect();
        let phrases = strings::load_phrases(&phrase_files, rate, cfg.max_seconds, args.threads)?;
        Ok(StringPlan { config: cfg, bank, phrases, val, val_words: val_bank.len() })
    }
}

/// Ctrl-C stops training at the next batch (twice: at once); `keeping` says which weights are
/// then saved.
pub fn stop_flag(keeping: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping after this batch and saving {keeping} (Ctrl-C again to quit at once)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// The exit status of a run: 130 when it was interrupted.
pub fn status(interrupted: bool) -> ExitCode {
    if interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS }
}

/// Prints the test scores and the files written (`pictures` drawn beside the model).
pub fn print_trained(report: &TrainReport, target: &Path) {
    let pictures =
        spoken_digits_report::train_plots(report, &model::metrics_path(target)).unwrap_or_else(|e| {
            // The model is safe; a picture that cannot be drawn is only a warning.
            warn(format!("could not draw the plots: {e}"));
            vec![]
        });
    let s = paint::STRONG;
    anstream::println!("\n{s}test set ({} split), {}:{s:#}", report.config.split, report.kept());
    print!("{}", report.test);
    print_wrote(target, report.seconds);
    let n = paint::NOTE;
    for p in &pictures {
        anstream::println!("{n}wrote {}{n:#}", p.display());
    }
}

/// Where `--split loso` writes its metrics: `--out` when it names a metrics file (as the default
/// does), else the metrics file beside `--out`, else `models/loso-<recipe>.metrics.json`.
pub fn loso_output(args: &TrainArgs) -> PathBuf {
    match &args.out {
        Some(p) if p.to_string_lossy().ends_with(".metrics.json") => p.clone(),
        Some(p) => model::metrics_path(p),
        None => default_path("models").join(format!("loso-{}.metrics.json", args.recipe.name())),
    }
}

/// Writes the leave-one-speaker-out metrics and pictures and prints the table.
pub fn write_loso(report: &LosoReport, out: &Path) -> anyhow::Result<()> {
    spoken_digits::atomic::write_json(out, report).with_context(|| format!("writing {}", out.display()))?;
    let pictures = if report.folds.is_empty() {
        vec![]
    } else {
        spoken_digits_report::loso_plots(report, out).unwrap_or_else(|e| {
            warn(format!("could not draw the plots: {e}"));
            vec![]
        })
    };
    let note = if report.interrupted { ", interrupted" } else { "" };
    let s = paint::STRONG;
    anstream::println!("\n{s}leave-one-speaker-out ({} folds{note}):{s:#}", report.folds.len());
    println!("{:<10} {:>9} {:>9}", "speaker", "accuracy", "correct");
    for f in &report.folds {
        println!("{:<10} {:>8.1}% {:>5}/{}", f.speaker, 100.0 * f.accuracy, f.correct, f.total);
    }
    println!(
        "{:<10} {:>8.1}%  (lowest {:.1}%)",
        "mean",
        100.0 * report.mean_accuracy,
        100.0 * report.min_accuracy
    );
    let n = paint::NOTE;
    anstream::println!("\n{n}wrote {} in {:.0} s{n:#}", out.display(), report.seconds);
    for p in &pictures {
        anstream::println!("{n}wrote {}{n:#}", p.display());
    }
    Ok(())
}

/// Prints the string model's validation scores and the file written.
pub fn print_strings_trained(report: &StringTrainReport, out: &Path) {
    let s = paint::STRONG;
    anstream::println!(
        "\n{s}validation strings ({} split, 1-12 digits, 0-80 ms gaps):{s:#}",
        report.config.split
    );
    print!("{}", report.val);
    print_wrote(out, report.seconds);
}

/// The closing line of a training run: what it wrote and how long it took.
fn print_wrote(path: &Path, seconds: f64) {
    let n = paint::NOTE;
    anstream::println!(
        "\n{n}wrote {} (+ .json config, .metrics.json) in {seconds:.1} s{n:#}",
        path.display()
    );
}

/// The FSDD-named recordings of `dir`; names that do not parse are counted in one warning.
fn scan_folder(dir: &Path, holdout: &HashSet<String>) -> anyhow::Result<dataset::Scan> {
    let scan =
        dataset::scan(dir, holdout).with_context(|| format!("reading recordings from {}", dir.display()))?;
    if let Some(example) = scan.ignored.first() {
        warn(format!(
            "ignored {} file(s) in {} whose names are not <digit>_<speaker>_<index>.<wav, flac, mp3, ...> (e.g. {})",
            scan.ignored.len(),
            dir.display(),
            example.display()
        ));
    }
    Ok(scan)
}

/// Whether two paths name the same folder.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
