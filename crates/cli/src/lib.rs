//! Glue shared by the binaries: default paths, error reporting and exit codes, progress bars.
//! The work itself lives in the `spoken-digits` crate; [`mic`] and [`live`] hold the audio
//! device and the live loop that `listen` and `check-mic` share.

pub mod live;
pub mod mic;

use indicatif::{ProgressBar, ProgressStyle};
use spoken_digits::train::{EpochStats, FoldResult, Progress};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the shipped model lives, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/digits.safetensors";
/// The hold-out recordings folder.
pub const DEFAULT_INFERENCE_DIR: &str = "free-spoken-digit-dataset/inference_audio";
/// The FSDD recordings folder.
pub const DEFAULT_RECORDINGS: &str = "free-spoken-digit-dataset/recordings";
/// The hold-out manifest.
pub const DEFAULT_HOLDOUT: &str = "free-spoken-digit-dataset/holdout.txt";

/// A default path: relative to the current folder when it exists there, else relative to the
/// repository these binaries were built from (so `cargo run` works from any sub-folder).
pub fn default_path(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    if repo.exists() { repo } else { here }
}

/// Runs a binary's body: errors print as `error: <cause chain>` (no backtrace) and exit 1.
pub fn run(body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Number of worker threads to use by default: all cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Training progress as one indicatif bar per epoch, on stderr.
pub struct EpochBars {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl EpochBars {
    pub fn new(quiet: bool) -> Self {
        EpochBars { bar: None, quiet }
    }
}

impl Progress for EpochBars {
    fn stage(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    fn fold_start(&mut self, fold: usize, folds: usize, speaker: &str) {
        if !self.quiet {
            eprintln!("fold {}/{folds}: testing on speaker {speaker}", fold + 1);
        }
    }

    fn fold_end(&mut self, r: &FoldResult) {
        if !self.quiet {
            eprintln!(
                "speaker {}: {:.1}% ({}/{}) in {:.0} s",
                r.speaker,
                100.0 * r.accuracy,
                r.correct,
                r.total,
                r.seconds
            );
        }
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        let style = ProgressStyle::with_template(
            "epoch {prefix:>5} [{bar:30.cyan/blue}] {pos:>3}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn batch(&mut self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4} acc {:.1}%", 100.0 * accuracy));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, s: &EpochStats) {
        let Some(bar) = self.bar.take() else { return };
        let summary = format!(
            "loss {:.4} acc {:.1}% | val loss {:.4} acc {:.1}%",
            s.train_loss,
            100.0 * s.train_accuracy,
            s.val_loss,
            100.0 * s.val_accuracy
        );
        if bar.is_hidden() {
            // Not a terminal (a log file, CI): one plain line per epoch instead of a bar.
            eprintln!("epoch {:>3}: {summary} ({:.1} s)", s.epoch, s.seconds);
        }
        bar.finish_with_message(summary);
    }
}
