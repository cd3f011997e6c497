//! `evaluate`: a model's accuracy on a test split of FSDD, clean, with white noise added, or
//! under each recording condition of the suite (`--condition`).

use clap::Parser;
use spoken_digits::conditions::{self, Condition};
use spoken_digits::dataset::{self, Split};
use spoken_digits::predict;
use spoken_digits_cli::{
    DEFAULT_HOLDOUT, DEFAULT_RECORDINGS, Verbosity, default_path, default_threads, load_model, paint, run,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Score a model on FSDD's test recordings of a split, clean or with white noise at a given SNR.
///
/// Prints the report (accuracy, per-class precision/recall/F1, confusion matrix); `--json`
/// prints it as JSON instead. With `--condition`, a table of accuracy per condition (each
/// condition applied to every test clip, seeded per file), clean first.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Model weights (.safetensors) [default: models/digits.safetensors, else the copy built into
    /// this binary].
    #[arg(long, short, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Folder of FSDD recordings.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Hold-out manifest.
    #[arg(long, value_name = "FILE")]
    holdout: Option<PathBuf>,
    /// The split whose test set is scored: official, random or speaker:<name>.
    #[arg(long, default_value = "official")]
    split: Split,
    /// Add white noise at this signal-to-noise ratio (dB) to every clip.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "condition")]
    noise_snr: Option<f32>,
    /// Score under these recording conditions (repeatable, or a comma list; `all`: every one):
    /// clean, long, click, hum, dc, pink, babble, reverb, clip, phone, quiet. The clean score
    /// is always included. Babble's voices are other speakers' recordings of FSDD's official
    /// test part (index 0-4).
    #[arg(long, value_name = "NAME", value_parser = parse_conditions)]
    condition: Vec<Vec<Condition>>,
    /// Seed for the split and the noise.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn parse_conditions(text: &str) -> Result<Vec<Condition>, String> {
    Condition::parse_list(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.verbosity.init_logging();
    run(|| {
        let (model, model_name) = load_model(args.model.as_deref())?;
        let holdout =
            dataset::read_holdout(&args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT)))?;
        let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
        let scan = dataset::scan(&data, &holdout)?;
        let sets = dataset::split(&scan.recordings, &args.split, 0.1, args.seed)?;
        if !args.condition.is_empty() {
            let mut chosen = vec![Condition::Clean];
            for &c in args.condition.iter().flatten() {
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            let pool: Vec<_> = scan.recordings.iter().filter(|r| r.index < 5).cloned().collect();
            let table = conditions::evaluate(&model, &sets.test, &pool, &chosen, args.seed, args.threads)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&table)?);
                return Ok(ExitCode::SUCCESS);
            }
            if !args.verbosity.quiet {
                let s = paint::STRONG;
                anstream::println!("{s}{model_name} on the {} test set, by condition:{s:#}", args.split);
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
        let scores = predict::evaluate(&model, &sets.test, args.noise_snr, args.seed, args.threads)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&scores)?);
        } else {
            let noise = args.noise_snr.map(|s| format!(", white noise at {s} dB SNR")).unwrap_or_default();
            if !args.verbosity.quiet {
                let s = paint::STRONG;
                anstream::println!("{s}{model_name} on the {} test set{noise}:{s:#}", args.split);
            }
            print!("{scores}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
