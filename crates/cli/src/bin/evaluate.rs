//! `evaluate`: a model's accuracy on a test split of FSDD, clean or with white noise added.

use anyhow::Context;
use clap::Parser;
use spoken_digits::dataset::{self, Split};
use spoken_digits::model::{self, Classifier};
use spoken_digits::predict;
use spoken_digits_cli::{
    DEFAULT_HOLDOUT, DEFAULT_MODEL, DEFAULT_RECORDINGS, default_path, default_threads, run,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Score a model on FSDD's test recordings of a split, clean or with white noise at a given SNR.
///
/// Prints the report (accuracy, per-class precision/recall/F1, confusion matrix); `--json`
/// prints it as JSON instead.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Model weights (.safetensors) [default: the shipped model].
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
    #[arg(long, allow_hyphen_values = true)]
    noise_snr: Option<f32>,
    /// Seed for the split and the noise.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    run(|| {
        let args = Args::parse();
        let model_path = args.model.clone().unwrap_or_else(|| default_path(DEFAULT_MODEL));
        let model = Classifier::load(&model_path, spoken_digits::Device::Cpu).context("loading the model")?;
        model::set_threads(1);
        let holdout =
            dataset::read_holdout(&args.holdout.clone().unwrap_or_else(|| default_path(DEFAULT_HOLDOUT)))?;
        let data = args.data.clone().unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
        let scan = dataset::scan(&data, &holdout)?;
        let sets = dataset::split(&scan.recordings, &args.split, 0.1, args.seed)?;
        let scores = predict::evaluate(&model, &sets.test, args.noise_snr, args.seed, args.threads)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&scores)?);
        } else {
            let noise = args.noise_snr.map(|s| format!(", white noise at {s} dB SNR")).unwrap_or_default();
            println!("{} on the {} test set{noise}:", model_path.display(), args.split);
            print!("{scores}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
