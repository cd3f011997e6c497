//! `train`: trains the digit CNN on FSDD and writes the model, its config and its metrics;
//! `--split loso` runs every leave-one-speaker-out fold instead.

use anyhow::{Context, bail};
use clap::Parser;
use spoken_digits::FeatureConfig;
use spoken_digits::dataset::{self, Recording};
use spoken_digits::model::{self, Arch, Head};
use spoken_digits::strings::{self, SpliceConfig, StringTrainConfig, WordBank};
use spoken_digits::train::{self, Keep, Recipe, Schedule, TrainConfig};
use spoken_digits_cli::{
    DEFAULT_HOLDOUT, DEFAULT_MODEL, DEFAULT_PHRASES, DEFAULT_RECORDINGS, DEFAULT_STRING_MODEL,
    DEFAULT_SYNTHETIC, EpochBars, Verbosity, default_path, default_threads, paint, run, warn,
};
use spoken_digits_report as plot;
use spoken_digits_torch::{Device, cnn, ctc as fit_strings, train as fit};
use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Train the spoken-digit CNN on the Free Spoken Digit Dataset.
///
/// `--recipe robust` (default) is the shipped model's recipe, built for voices it never heard:
/// FSDD plus 1,980 synthetic digits in 102 voices (female, male, accented; made by `scripts/setup`
/// with flite and espeak-ng), silence trimmed, the log-mel spectrogram, three augmented copies
/// (speed, shift, random equalisation, gain, noise, a random lead-in and end cut, SpecAugment
/// masks), the wide network, AdamW with a cosine schedule, 30 epochs, keeping the mean of the
/// last five epochs' weights.
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
/// --split (not loso), --seed, --steps, --batch-size, --lr, --weight-decay, --device,
/// --threads and --torch-threads.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Folder of FSDD recordings ({digit}_{speaker}_{index}.wav, or .flac, .ogg, .opus, .mp3,
    /// .m4a, ...).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A folder of extra FSDD-named recordings, such as your own takes from `listen --enroll
    /// DIR`, added to the training set only (never validation or test) in every split, and
    /// augmented like FSDD. Repeatable.
    #[arg(long, value_name = "DIR")]
    extra_data: Vec<PathBuf>,
    /// Synthetic voices added to the training set like --extra-data (`scripts/setup` makes them
    /// with flite and espeak-ng) [recipe: original none, robust
    /// free-spoken-digit-dataset/synthetic].
    #[arg(long, value_name = "DIR", conflicts_with = "no_synthetic")]
    synthetic: Option<PathBuf>,
    /// Train without synthetic voices.
    #[arg(long)]
    no_synthetic: bool,
    /// Hold-out manifest: files never used for training, validation or test.
    #[arg(long, value_name = "FILE")]
    holdout: Option<PathBuf>,
    /// Where to write the model (.safetensors); config and metrics go beside it
    /// [default: models/digits.safetensors; with --split loso: models/loso-<recipe>.metrics.json].
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The kind of model: classifier (one digit per utterance) or ctc (the string model).
    #[arg(long, default_value = "classifier")]
    head: Head,
    /// Natural phrases for the string model [default: free-spoken-digit-dataset/phrases].
    #[arg(long, value_name = "DIR")]
    phrases: Option<PathBuf>,
    /// Optimiser steps of the string model, each a batch of fresh strings [default: 3000].
    #[arg(long)]
    steps: Option<usize>,
    /// Starting point for every setting below: original or robust.
    #[arg(long, default_value = "robust")]
    recipe: Recipe,
    /// official (FSDD's index 0-4 test), random (shuffled 80/10/10), speaker:<name> (one speaker
    /// held out), or loso (all leave-one-speaker-out folds, per-speaker accuracy).
    #[arg(long, default_value = "official")]
    split: String,
    /// Seed for the split, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Epochs [recipe: original 10, robust 30].
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size [recipe: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate [recipe: 1e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule: constant or cosine [recipe: original constant, robust cosine].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// AdamW weight decay; 0 is Adam [recipe: original 0, robust 1e-3].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Mixup: blend each batch with a shuffled copy of itself by a weight drawn from
    /// Beta(ALPHA, ALPHA); 0 is off [recipe: 0].
    #[arg(long, value_name = "ALPHA")]
    mixup: Option<f64>,
    /// Label smoothing: this share of each target spread evenly over the ten digits; 0 is off
    /// [recipe: 0].
    #[arg(long, value_name = "SHARE")]
    label_smoothing: Option<f64>,
    /// Which weights to keep: best (the best validation epoch's), last, or average:N (the mean
    /// of the last N epochs' weights) [recipe: original best, robust average:5].
    #[arg(long, value_name = "CHOICE")]
    keep: Option<Keep>,
    /// Fraction of the non-test recordings used for validation [recipe: 0.1].
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Augmented copies of the training set per epoch; 0 disables augmentation
    /// [recipe: original 1, robust 3].
    #[arg(long)]
    augmented_copies: Option<usize>,
    /// Probability of each augmentation [recipe: 0.5].
    #[arg(long)]
    aug_prob: Option<f64>,
    /// Largest circular time shift, as a fraction of the clip [recipe: 0.1].
    #[arg(long)]
    max_shift: Option<f64>,
    /// Gain range in dB, MIN,MAX [recipe: -10,5].
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    gain_db: Option<(f32, f32)>,
    /// White-noise SNR range in dB, MIN,MAX [recipe: 0,15].
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    snr_db: Option<(f32, f32)>,
    /// Speed perturbation range, MIN,MAX; 1,1 is off [recipe: original 1,1, robust 0.85,1.15].
    #[arg(long, value_parser = parse_range)]
    speed: Option<(f32, f32)>,
    /// Vocal tract length perturbation range, MIN,MAX; 1,1 is off [recipe: 1,1].
    #[arg(long, value_parser = parse_range)]
    vtlp: Option<(f32, f32)>,
    /// Random equalisation: three peaking filters of up to +-DB each (microphone variety); 0 is
    /// off [recipe: original 0, robust 15].
    #[arg(long, value_name = "DB")]
    eq_db: Option<f32>,
    /// Random treble cut: with this probability, a high shelf of down to -DB from a corner at
    /// 1-3 kHz (a microphone that rolls off the highs), as P,DB; 0,0 is off [recipe: 0,0].
    #[arg(long, value_name = "P,DB", value_parser = parse_treble_cut)]
    treble_cut: Option<(f64, f32)>,
    /// Recording-condition augmentation: with this probability an augmented example also gets
    /// one of the condition suite's kinds (long, click, hum, dc, pink, babble, reverb, clip,
    /// phone, quiet) at a random strength; 0 is off [recipe: 0].
    #[arg(long, value_name = "P")]
    conditions: Option<f64>,
    /// Find the word in the recording (a noise-adaptive detector that ignores clicks, DC and
    /// hum, and keeps the region with the most speech) instead of trimming from the first loud
    /// sample [recipe: false].
    #[arg(long)]
    find_word: Option<bool>,
    /// Random lead-in: up to this fraction of the clip of silence before the trimmed word,
    /// with probability --aug-prob; 0 is off [recipe: original 0, robust 0.1].
    #[arg(long, value_name = "FRACTION")]
    lead_in: Option<f64>,
    /// Random end cut: up to this fraction of the trimmed word cut from its end, with
    /// probability --aug-prob; 0 is off [recipe: original 0, robust 0.3].
    #[arg(long, value_name = "FRACTION")]
    end_cut: Option<f32>,
    /// SpecAugment time masks per example, each up to 6 frames [recipe: original 0, robust 2].
    #[arg(long)]
    time_masks: Option<usize>,
    /// SpecAugment coefficient masks per example, each up to 2 rows [recipe: original 0, robust 1].
    #[arg(long)]
    freq_masks: Option<usize>,
    /// Network: original, compact, wide (compact with twice the channels), or ds (wide's
    /// channels, depthwise-separable: a seventh of the compute) [recipe: original original,
    /// robust wide].
    #[arg(long)]
    arch: Option<Arch>,
    /// Trim silence quieter than this many dB below the loudest part before the features;
    /// 0 disables [recipe: original off, robust 40].
    #[arg(long)]
    trim_db: Option<f32>,
    /// Per-utterance feature normalisation [recipe: false].
    #[arg(long)]
    normalize: Option<bool>,
    /// Mel bands of the front end [recipe: 23].
    #[arg(long)]
    n_mels: Option<usize>,
    /// MFCC coefficients kept, at most --n-mels; with --log-mel the rows, --n-mels [recipe:
    /// original 13, robust 23].
    #[arg(long)]
    n_mfcc: Option<usize>,
    /// The network sees the log-mel spectrogram (--n-mels rows of decibels, the MFCCs before
    /// their DCT) instead of the MFCCs [recipe: original false, robust true].
    #[arg(long)]
    log_mel: Option<bool>,
    /// cpu, cuda, cuda:N or auto (CUDA when this libtorch has it).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// libtorch CPU threads. One leaves the other core to the augmentation worker; libtorch's
    /// spinning thread pool slows down several-fold when it must share cores.
    #[arg(long, default_value_t = 1)]
    torch_threads: usize,
    /// Replace an existing model even when it scored better on the same split.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    verbosity: Verbosity,
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

fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let (a, b): (f32, f32) = parse_pair(s, "MIN,MAX")?;
    if a.is_finite() && b.is_finite() && a <= b { Ok((a, b)) } else { Err("need finite MIN <= MAX".into()) }
}

fn parse_treble_cut(s: &str) -> Result<(f64, f32), String> {
    let (p, db) = parse_pair(s, "P,DB")?;
    if (0.0..=1.0).contains(&p) && (0.0..=40.0).contains(&db) {
        Ok((p, db))
    } else {
        Err("need a probability P in [0, 1] and a cut DB of 0 to 40".into())
    }
}

/// The recipe with every given flag applied.
fn config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut c = TrainConfig::recipe(args.recipe);
    c.seed = args.seed;
    macro_rules! set {
        ($($field:expr => $flag:expr),* $(,)?) => { $( if let Some(v) = $flag { $field = v; } )* };
    }
    set!(c.augment.p => args.aug_prob, c.augment.max_shift => args.max_shift,
         c.augment.gain_db => args.gain_db, c.augment.snr_db => args.snr_db,
         c.augment.speed => args.speed, c.augment.vtlp => args.vtlp, c.augment.eq_db => args.eq_db, c.augment.lead_in => args.lead_in, c.augment.end_cut => args.end_cut, c.augment.time_masks => args.time_masks,
         c.augment.freq_masks => args.freq_masks, c.epochs => args.epochs,
         c.batch_size => args.batch_size, c.learning_rate => args.lr, c.schedule => args.schedule,
         c.weight_decay => args.weight_decay, c.mixup => args.mixup, c.label_smoothing => args.label_smoothing, c.keep => args.keep,
         c.val_fraction => args.val_fraction,
         c.augmented_copies => args.augmented_copies, c.arch => args.arch,
         c.features.normalize => args.normalize, c.features.n_mels => args.n_mels,
         c.features.n_mfcc => args.n_mfcc, c.features.log_mel => args.log_mel,
         c.augment.conditions => args.conditions, c.features.find_word => args.find_word);
    // Unless given, the rows follow the front end: every mel band of a log-mel map, else the
    // original's 13 MFCCs.
    if args.n_mfcc.is_none() {
        c.features.n_mfcc =
            if c.features.log_mel { c.features.n_mels } else { FeatureConfig::default().n_mfcc };
    }
    if c.augment.time_masks > 0 && c.augment.time_mask_width == 0 {
        c.augment.time_mask_width = 6;
    }
    if c.augment.freq_masks > 0 && c.augment.freq_mask_width == 0 {
        c.augment.freq_mask_width = 2;
    }
    if let Some(t) = args.trim_db {
        c.features.trim_db = (t > 0.0).then_some(t);
    }
    if !(0.0..1.0).contains(&c.val_fraction) {
        bail!("--val-fraction must be in [0, 1)");
    }
    if !(0.0..=1.0).contains(&c.augment.p) {
        bail!("--aug-prob must be in [0, 1]");
    }
    if c.augment.speed.0 <= 0.0 || c.augment.vtlp.0 <= 0.0 {
        bail!("--speed and --vtlp factors must be positive");
    }
    if !(0.0..1.0).contains(&c.label_smoothing) {
        bail!("--label-smoothing must be in [0, 1)");
    }
    if !(c.mixup >= 0.0 && c.mixup.is_finite()) {
        bail!("--mixup must be 0 (off) or a positive alpha");
    }
    if !(0.0..=0.5).contains(&c.augment.lead_in) {
        bail!("--lead-in must be between 0 and 0.5");
    }
    if !(0.0..=0.9).contains(&c.augment.end_cut) {
        bail!("--end-cut must be between 0 and 0.9");
    }
    if let Some((p, db)) = args.treble_cut {
        (c.augment.treble_cut, c.augment.treble_cut_db) = (p, db);
    }
    if !(0.0..=1.0).contains(&c.augment.conditions) {
        bail!("--conditions must be in [0, 1]");
    }
    if c.features.find_word && c.features.trim_db.is_none() {
        bail!("--find-word needs trimming (--trim-db)");
    }
    if !(0.0..=40.0).contains(&c.augment.eq_db) {
        bail!("--eq-db must be between 0 and 40");
    }
    c.features.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.verbosity.init_logging();
    run(|| train_main(args))
}

fn train_main(args: Args) -> anyhow::Result<ExitCode> {
    let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let holdout_path = args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT));
    let device = cnn::parse_device(&args.device)?;
    cnn::set_threads(args.torch_threads);
    if args.head == Head::Ctc {
        return train_strings(&args, &data, &holdout_path, device);
    }
    let loso = args.split == "loso";
    let mut cfg = config(&args)?;
    if !loso {
        cfg.split = args.split.parse()?;
    }

    let holdout =
        dataset::read_holdout(&holdout_path).context("reading the hold-out manifest (run scripts/setup)")?;
    let scan = scan_folder(&data, &holdout)?;
    let synthetic = match (&args.synthetic, args.recipe) {
        _ if args.no_synthetic => None,
        (Some(dir), _) => Some(dir.clone()),
        (None, Recipe::Robust) => Some(default_path(DEFAULT_SYNTHETIC)),
        (None, Recipe::Original) => None,
    };
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
        cfg.extra_data.push(train::ExtraData { dir, recordings: found.recordings.len() });
        extra.extend(found.recordings);
    }
    let quiet = args.verbosity.quiet;
    if !quiet {
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
            if loso { "loso".to_string() } else { cfg.split.to_string() },
            device
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping after this batch and saving the best weights so far (Ctrl-C again to quit at once)"
        );
    })
    .context("installing the Ctrl-C handler")?;

    let mut progress = EpochBars::new(quiet);
    if loso {
        return run_loso(&args, &cfg, &scan.recordings, &extra, device, &mut progress, &stop);
    }
    let sets = dataset::split_with_extra(&scan.recordings, &extra, &cfg.split, cfg.val_fraction, cfg.seed)?;
    let (model, report) = fit::train(&cfg, &sets, device, args.threads, &mut progress, &stop)?;
    if report.best_epoch == 0 {
        bail!("interrupted before the first epoch finished; nothing was written");
    }

    let out = args.out.clone().unwrap_or_else(|| default_path(DEFAULT_MODEL));
    let target = choose_output(&out, &report, args.force)?;
    fit::save(&model, &report, &target).with_context(|| format!("writing {}", target.display()))?;
    // The model is safe; a picture that cannot be drawn is only a warning.
    let pictures = plot::train_plots(&report, &model::metrics_path(&target)).unwrap_or_else(|e| {
        warn(format!("could not draw the plots: {e}"));
        vec![]
    });

    let s = paint::STRONG;
    anstream::println!("\n{s}test set ({} split), {}:{s:#}", cfg.split, report.kept());
    print!("{}", report.test);
    let n = paint::NOTE;
    anstream::println!(
        "\n{n}wrote {} (+ .json config, .metrics.json) in {:.1} s{n:#}",
        target.display(),
        report.seconds
    );
    for p in &pictures {
        anstream::println!("{n}wrote {}{n:#}", p.display());
    }
    Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// Ctrl-C stops training at the next batch (twice: at once).
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this batch and saving the weights so far (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// `--head ctc`: trains the string model and writes it, its config and its metrics.
fn train_strings(args: &Args, data: &Path, holdout_path: &Path, device: Device) -> anyhow::Result<ExitCode> {
    let mut cfg = StringTrainConfig { seed: args.seed, ..StringTrainConfig::default() };
    if args.split == "loso" {
        bail!("--head ctc trains one split at a time (official or speaker:<name>)");
    }
    cfg.split = args.split.parse()?;
    if let Some(v) = args.steps {
        cfg.steps = v;
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.lr {
        cfg.learning_rate = v;
    }
    if let Some(v) = args.weight_decay {
        cfg.weight_decay = v;
    }
    if cfg.steps == 0 || cfg.batch_size == 0 {
        bail!("--steps and --batch-size must be positive");
    }
    let holdout =
        dataset::read_holdout(holdout_path).context("reading the hold-out manifest (run scripts/setup)")?;
    let fsdd = scan_folder(data, &holdout)?;
    let synthetic = match &args.synthetic {
        _ if args.no_synthetic => None,
        Some(dir) => Some(dir.clone()),
        None => Some(default_path(DEFAULT_SYNTHETIC)),
    };
    let synthetic_words = match &synthetic {
        Some(dir) => scan_folder(dir, &holdout)?.recordings,
        None => vec![],
    };
    let phrases_dir = args.phrases.clone().unwrap_or_else(|| default_path(DEFAULT_PHRASES));
    let phrase_files = strings::scan_phrases(&phrases_dir, false)
        .with_context(|| format!("reading the training phrases in {}", phrases_dir.display()))?;
    let sets = strings::split_words(&fsdd.recordings, &synthetic_words, &cfg.split, 0.1, cfg.seed)?;
    for (dir, n) in synthetic
        .iter()
        .map(|d| (d, sets.train.len() - sets.train.iter().filter(|r| r.path.starts_with(data)).count()))
        .chain([(&phrases_dir, phrase_files.len())])
    {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        cfg.sources.push(train::ExtraData { dir, recordings: n });
    }
    let quiet = args.verbosity.quiet;
    let mut progress = EpochBars::new(quiet);
    use spoken_digits::train::Progress as _;
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
    let val: Vec<strings::Labelled> = val_bank
        .strings(&SpliceConfig::test((1, strings::MAX_DIGITS), (0.0, 80.0)), cfg.val_strings, cfg.seed)?
        .into_iter()
        .map(|u| (u.samples, u.digits))
        .collect();
    let phrases = strings::load_phrases(&phrase_files, rate, cfg.max_seconds, args.threads)?;
    let stop = stop_flag()?;
    let (net, mut report) = fit_strings::train(&cfg, &bank, &phrases, &val, device, &mut progress, &stop)?;
    report.val_words = val_bank.len();
    if report.steps_done == 0 {
        bail!("interrupted before the first step finished; nothing was written");
    }
    let out = args.out.clone().unwrap_or_else(|| default_path(DEFAULT_STRING_MODEL));
    fit_strings::save(&net, &report, &out).with_context(|| format!("writing {}", out.display()))?;
    let s = paint::STRONG;
    anstream::println!("\n{s}validation strings ({} split, 1-12 digits, 0-80 ms gaps):{s:#}", cfg.split);
    print!("{}", report.val);
    let n = paint::NOTE;
    anstream::println!(
        "\n{n}wrote {} (+ .json config, .metrics.json) in {:.1} s{n:#}",
        out.display(),
        report.seconds
    );
    Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// All leave-one-speaker-out folds; writes only the metrics.
fn run_loso(
    args: &Args,
    cfg: &TrainConfig,
    recordings: &[Recording],
    extra: &[Recording],
    device: Device,
    progress: &mut EpochBars,
    stop: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let report = fit::loso(cfg, recordings, extra, device, args.threads, progress, stop)?;
    let recipe = format!("{:?}", args.recipe).to_lowercase();
    let out = match &args.out {
        // Taken as is when it already names a metrics file (as the default does).
        Some(p) if p.to_string_lossy().ends_with(".metrics.json") => p.clone(),
        Some(p) => model::metrics_path(p),
        None => default_path("models").join(format!("loso-{recipe}.metrics.json")),
    };
    spoken_digits::atomic::write_json(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    let pictures = if report.folds.is_empty() {
        vec![]
    } else {
        plot::loso_plots(&report, &out).unwrap_or_else(|e| {
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
    Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
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

/// Never replaces a model with a partial one, or with a worse one on the same split, unless
/// `--force`: such a model goes beside it as `<name>.new.safetensors` or
/// `<name>.interrupted.safetensors`.
fn choose_output(out: &Path, report: &train::TrainReport, force: bool) -> anyhow::Result<PathBuf> {
    if force || !out.exists() {
        return Ok(out.to_path_buf());
    }
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if report.interrupted {
        let alt = out.with_file_name(format!("{stem}.interrupted.safetensors"));
        warn(format!("interrupted run: keeping {} and writing {}", out.display(), alt.display()));
        return Ok(alt);
    }
    let existing = std::fs::read_to_string(model::metrics_path(out))
        .ok()
        .and_then(|t| serde_json::from_str::<train::TrainReport>(&t).ok());
    if let Some(old) = existing
        && old.config.split == report.config.split
        && old.test.accuracy > report.test.accuracy
    {
        let alt = out.with_file_name(format!("{stem}.new.safetensors"));
        warn(format!(
            "{} scored {:.2}% on this split, better than this run's {:.2}%: keeping it and writing {} (--force replaces it)",
            out.display(),
            100.0 * old.test.accuracy,
            100.0 * report.test.accuracy,
            alt.display()
        ));
        return Ok(alt);
    }
    Ok(out.to_path_buf())
}
