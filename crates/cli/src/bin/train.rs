//! `train`: trains the digit CNN on FSDD and writes the model, its config and its metrics.

use anyhow::{Context, bail};
use clap::Parser;
use spoken_digits::augment::AugmentConfig;
use spoken_digits::dataset::{self, Split};
use spoken_digits::model::{self, Arch};
use spoken_digits::train::{self, TrainConfig};
use spoken_digits_cli::{
    DEFAULT_HOLDOUT, DEFAULT_MODEL, DEFAULT_RECORDINGS, EpochBars, default_path, default_threads, run,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Train the spoken-digit CNN on the Free Spoken Digit Dataset.
///
/// Defaults reproduce the original project's recipe: one augmented copy of the training set
/// (shift, gain, noise; each p = 0.5), Adam lr 1e-3, batch 64, 10 epochs, best validation
/// weights kept. Writes OUT (.safetensors), its config (.json) and metrics (.metrics.json).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Folder of FSDD recordings ({digit}_{speaker}_{index}.wav).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Hold-out manifest: files never used for training, validation or test.
    #[arg(long, value_name = "FILE")]
    holdout: Option<PathBuf>,
    /// Where to write the model (.safetensors); config and metrics go beside it.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// official (FSDD's index 0-4 test), random (shuffled 80/10/10) or speaker:<name>.
    #[arg(long, default_value = "official")]
    split: Split,
    /// Seed for the split, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Fraction of the non-test recordings used for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Augmented copies of the training set per epoch (0 disables augmentation).
    #[arg(long, default_value_t = 1)]
    augmented_copies: usize,
    /// Probability of each augmentation (shift, gain, noise).
    #[arg(long, default_value_t = 0.5)]
    aug_prob: f64,
    /// Largest circular time shift, as a fraction of the clip.
    #[arg(long, default_value_t = 0.1)]
    max_shift: f64,
    #[arg(long, default_value_t = -10.0, allow_hyphen_values = true)]
    gain_min_db: f32,
    #[arg(long, default_value_t = 5.0, allow_hyphen_values = true)]
    gain_max_db: f32,
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    snr_min_db: f32,
    #[arg(long, default_value_t = 15.0, allow_hyphen_values = true)]
    snr_max_db: f32,
    /// Network architecture.
    #[arg(long, default_value = "original")]
    arch: Arch,
    /// cpu, cuda, cuda:N or auto (CUDA when this libtorch has it).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Replace an existing model even when it scored better on the same split.
    #[arg(long)]
    force: bool,
    /// Print only the final results.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    run(|| {
        let args = Args::parse();
        train_main(args)
    })
}

fn train_main(args: Args) -> anyhow::Result<ExitCode> {
    let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let holdout_path = args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT));
    let out = args.out.clone().unwrap_or_else(|| default_path(DEFAULT_MODEL));
    if !(0.0..1.0).contains(&args.val_fraction) {
        bail!("--val-fraction must be in [0, 1)");
    }
    if args.gain_min_db > args.gain_max_db
        || args.snr_min_db > args.snr_max_db
        || !(0.0..=1.0).contains(&args.aug_prob)
    {
        bail!("augmentation ranges must be min <= max and --aug-prob in [0, 1]");
    }
    let device = model::parse_device(&args.device)?;
    let cfg = TrainConfig {
        split: args.split.clone(),
        seed: args.seed,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        val_fraction: args.val_fraction,
        augmented_copies: args.augmented_copies,
        augment: AugmentConfig {
            p: args.aug_prob,
            max_shift: args.max_shift,
            gain_db: (args.gain_min_db, args.gain_max_db),
            snr_db: (args.snr_min_db, args.snr_max_db),
        },
        arch: args.arch,
        ..TrainConfig::default()
    };

    let holdout =
        dataset::read_holdout(&holdout_path).context("reading the hold-out manifest (run scripts/setup)")?;
    let scan = dataset::scan(&data, &holdout)
        .with_context(|| format!("reading recordings from {}", data.display()))?;
    if !scan.ignored.is_empty() {
        eprintln!(
            "warning: ignored {} file(s) in {} whose names are not <digit>_<speaker>_<index>.wav (e.g. {})",
            scan.ignored.len(),
            data.display(),
            scan.ignored[0].display()
        );
    }
    let sets = dataset::split(&scan.recordings, &cfg.split, cfg.val_fraction, cfg.seed)?;
    if !args.quiet {
        eprintln!(
            "{} recordings ({} held out), split {}, device {:?}",
            scan.recordings.len(),
            scan.held_out,
            cfg.split,
            device
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this batch and saving the best weights so far (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;

    let mut progress = EpochBars::new(args.quiet);
    let (model, report) = train::train(&cfg, &sets, device, args.threads, &mut progress, &stop)?;
    if report.best_epoch == 0 {
        bail!("interrupted before the first epoch finished; nothing was written");
    }

    let target = choose_output(&out, &report, args.force)?;
    train::save(&model, &report, &target).with_context(|| format!("writing {}", target.display()))?;

    println!("\ntest set ({} split), best validation epoch {}:", cfg.split, report.best_epoch);
    print!("{}", report.test);
    println!("\nwrote {} (+ .json config, .metrics.json) in {:.1} s", target.display(), report.seconds);
    Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
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
        eprintln!("interrupted run: keeping {} and writing {}", out.display(), alt.display());
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
        eprintln!(
            "{} scored {:.2}% on this split, better than this run's {:.2}%: keeping it and writing {} (--force replaces it)",
            out.display(),
            100.0 * old.test.accuracy,
            100.0 * report.test.accuracy,
            alt.display()
        );
        return Ok(alt);
    }
    Ok(out.to_path_buf())
}
