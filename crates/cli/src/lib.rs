//! Glue shared by the binaries: default paths and the built-in model, `-q`/`-v` and logging,
//! colours, error reporting and exit codes, progress bars. The work itself lives in the
//! `spoken-digits` crate; [`cmd`] holds each binary's flags, calls and rendering (the binaries
//! in `src/bin` only parse and call), [`mic`] and [`live`] the audio device and the rendering of
//! the live loop that `listen` and `check-mic` share, and [`enroll`] the prompts and reports of
//! `listen --enroll`.

pub mod cmd;
pub mod enroll;
pub mod live;
pub mod mic;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use spoken_digits::ctc::StringModel;
use spoken_digits::model::{Model, ModelConfig};
use spoken_digits::train::{EpochStats, FoldResult, Progress};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the shipped model lives, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/digits.safetensors";
/// The hold-out recordings folder.
pub const DEFAULT_INFERENCE_DIR: &str = "free-spoken-digit-dataset/inference_audio";
/// The FSDD recordings folder.
pub const DEFAULT_RECORDINGS: &str = "free-spoken-digit-dataset/recordings";
/// The synthetic voices `scripts/setup` generates for the robust recipe.
pub const DEFAULT_SYNTHETIC: &str = "free-spoken-digit-dataset/synthetic";
/// The string model (`train --head ctc` writes it; `evaluate --sequences` reads it).
pub const DEFAULT_STRING_MODEL: &str = "models/strings.safetensors";
/// The shipped string models, read together (`scripts/train-strings`): `train --head ctc`
/// seed 42, and the same with dropout 0.2 seeds 42 and 1.
pub const DEFAULT_STRING_MODELS: [&str; 3] =
    [DEFAULT_STRING_MODEL, "models/strings-2.safetensors", "models/strings-3.safetensors"];
/// The spoken digit strings `scripts/setup` generates (`scripts/synthesize-phrases`).
pub const DEFAULT_PHRASES: &str = "free-spoken-digit-dataset/phrases";
/// The held-out voices' phrases said fast (`scripts/synthesize-phrases --fast`).
pub const DEFAULT_FAST_PHRASES: &str = "free-spoken-digit-dataset/phrases-fast";
/// The hold-out manifest.
pub const DEFAULT_HOLDOUT: &str = "free-spoken-digit-dataset/holdout.txt";

/// Names the repository the defaults are found in, instead of the one the binary was built from.
pub const ROOT_VAR: &str = "SPOKEN_DIGITS_ROOT";

/// The shipped model's weights, compiled in so an installed binary works without the repository.
pub static BUILT_IN_WEIGHTS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/digits.safetensors"));
/// The shipped model's config (`models/digits.json`), compiled in with its weights.
pub static BUILT_IN_CONFIG: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/digits.json"));
/// How the built-in model is named in messages.
pub const BUILT_IN_NAME: &str = "the built-in model (models/digits.safetensors at build time)";
/// The shipped string models, compiled in like the classifier: (weights, config), in the order
/// of [`DEFAULT_STRING_MODELS`].
pub static BUILT_IN_STRING_MODELS: [(&[u8], &str); 3] = [
    (
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings.safetensors")),
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings.json")),
    ),
    (
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings-2.safetensors")),
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings-2.json")),
    ),
    (
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings-3.safetensors")),
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/strings-3.json")),
    ),
];

/// The repository the defaults are relative to: `$SPOKEN_DIGITS_ROOT`, else the one these
/// binaries were built from.
pub fn repository() -> PathBuf {
    match std::env::var_os(ROOT_VAR) {
        Some(root) => PathBuf::from(root),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

/// A default path: relative to the current folder when it exists there, else relative to the
/// [`repository`] (so `cargo run` works from any sub-folder).
pub fn default_path(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    let repo = repository().join(relative);
    if repo.exists() { repo } else { here }
}

/// Loads `--model`, or by default the shipped model: `models/digits.safetensors` when found
/// ([`default_path`]), else the copy compiled into the binary. Returns the model and its name.
pub fn load_model(explicit: Option<&Path>) -> anyhow::Result<(Model, String)> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = default_path(DEFAULT_MODEL);
            if !p.is_file() {
                tracing::info!(
                    "{DEFAULT_MODEL} not found here or in {}: using {BUILT_IN_NAME}",
                    repository().display()
                );
                let origin = Path::new("<built-in model>");
                let config = ModelConfig::parse(BUILT_IN_CONFIG, origin)?;
                let model = Model::from_bytes(BUILT_IN_WEIGHTS, config, origin)
                    .context("loading the built-in model")?;
                return Ok((model, BUILT_IN_NAME.to_string()));
            }
            p
        }
    };
    let model = Model::load(&path).context("loading the model")?;
    tracing::info!("model: {}", path.display());
    Ok((model, path.display().to_string()))
}

/// Loads `--strings` (the first model, the rest beside it as an ensemble), or by default the
/// shipped string models ([`DEFAULT_STRING_MODELS`]: each from the repository when found,
/// else the copy compiled in); `None` with `--no-strings`.
pub fn load_string_model(explicit: &[PathBuf], off: bool) -> anyhow::Result<Option<StringModel>> {
    if off {
        return Ok(None);
    }
    let load = |p: &Path| -> anyhow::Result<StringModel> {
        let model =
            StringModel::load(p).with_context(|| format!("loading the string model {}", p.display()))?;
        tracing::info!("string model: {}", p.display());
        Ok(model)
    };
    let mut models = vec![];
    if explicit.is_empty() {
        for (name, (weights, config)) in DEFAULT_STRING_MODELS.iter().zip(&BUILT_IN_STRING_MODELS) {
            let p = default_path(name);
            if p.is_file() {
                models.push(load(&p)?);
            } else {
                let origin = Path::new(name);
                let config = ModelConfig::parse(config, origin)?;
                let model = StringModel::from_bytes(weights, config, origin)
                    .with_context(|| format!("loading the built-in copy of {name}"))?;
                models.push(model);
                tracing::info!("string model: the built-in copy of {name}");
            }
        }
    } else {
        for p in explicit {
            models.push(load(p)?);
        }
    }
    let mut models = models.into_iter();
    let Some(first) = models.next() else { return Ok(None) };
    Ok(Some(first.with_others(models.collect())?))
}

/// `--strings FILE,...` and `--no-strings`, the same on every binary that reads digit strings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StringsArgs {
    /// The string models, which read digits said without pauses ("four one five nine"): one
    /// file, or a comma list read together (each reads the utterance; the reading all of them
    /// find likeliest wins) [default: the three shipped ones, models/strings.safetensors,
    /// models/strings-2.safetensors and models/strings-3.safetensors, else the copies built
    /// into this binary].
    #[arg(long, value_name = "FILE,...", value_delimiter = ',')]
    pub strings: Vec<PathBuf>,
    /// Read one digit per utterance only, without the string models.
    #[arg(long, conflicts_with = "strings")]
    pub no_strings: bool,
}

impl StringsArgs {
    pub fn load(&self) -> anyhow::Result<Option<StringModel>> {
        load_string_model(&self.strings, self.no_strings)
    }
}

/// `-q`/`--quiet` and `-v`/`--verbose`, the same on every binary.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// Print only the results: no progress, summaries or notes (errors still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,
    /// Log what happens to stderr: -v info, -vv debug, -vvv trace. RUST_LOG (e.g.
    /// RUST_LOG=spoken_digits=debug) overrides this.
    #[arg(long, short, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
}

impl Verbosity {
    /// Sets up logging to stderr: the level from `-q`/`-v`, unless `RUST_LOG` is set; coloured
    /// only when stderr is a terminal and `NO_COLOR` is not set.
    pub fn init_logging(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        let ansi = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
        // A second call (tests) keeps the first subscriber.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .try_init();
    }
}

/// Styles for human output. Print them with `anstream`'s `println!`/`stdout()`, which drops the
/// colours when the stream is not a terminal or `NO_COLOR` is set.
pub mod paint {
    use anstyle::{AnsiColor, Style};
    /// A right answer.
    pub const OK: Style = AnsiColor::Green.on_default();
    /// A wrong answer, or an error.
    pub const BAD: Style = AnsiColor::Red.on_default().bold();
    /// A warning.
    pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
    /// Headings and the numbers that matter.
    pub const STRONG: Style = Style::new().bold();
    /// Side notes, such as the files written.
    pub const NOTE: Style = Style::new().dimmed();
}

/// Prints `warning: <message>` to stderr (yellow on a terminal).
pub fn warn(message: impl std::fmt::Display) {
    let w = paint::WARN;
    anstream::eprintln!("{w}warning:{w:#} {message}");
}

/// Runs a binary's body: errors print as `error: <cause chain>` (no backtrace) and exit 1.
pub fn run(body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(e) => {
            let b = paint::BAD;
            anstream::eprintln!("{b}error:{b:#} {}", cause_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `: ` between them, leaving out a cause its error
/// already says (the library's I/O errors print their source after the path).
pub fn cause_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
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

#[cfg(test)]
mod tests {
    use super::cause_chain;
    use anyhow::Context;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e =
            Err::<(), _>(spoken_digits::Error::io("no/such", io)).context("reading the phrases").unwrap_err();
        assert_eq!(cause_chain(&e), "reading the phrases: no/such: No such file or directory");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(cause_chain(&e), "outer: inner");
    }
}
