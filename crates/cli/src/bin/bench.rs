//! `bench`: times the pieces that `scripts/bench` compares against the targets of the speed
//! issue. Not a user tool: `scripts/bench` runs it and prints every figure beside its target.

use clap::{Parser, Subcommand};
use spoken_digits::FeatureConfig;
use spoken_digits::train::{Recipe, TrainConfig};
use spoken_digits_cli::cmd::bench as cmd;
use spoken_digits_cli::run;
use spoken_digits_torch::Device;
use std::path::PathBuf;
use std::process::ExitCode;

/// Micro-benchmarks behind scripts/bench (prints one JSON object).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Read + resample + MFCC of every file: per clip on one thread, and all files on all threads.
    Frontend {
        /// Folder of wav files.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Which front end: the original's MFCCs (default), the robust recipe's (trim), or the
        /// robust recipe's with the word finder (find-word).
        #[arg(long, default_value = "default", value_parser = ["default", "trim", "find-word"])]
        front_end: String,
    },
    /// Model compute alone for a recipe: same model and batch count, features in memory.
    TrainCompute {
        #[arg(long, default_value = "original")]
        recipe: Recipe,
        /// Training examples per epoch (clean + augmented).
        #[arg(long)]
        examples: usize,
        /// Validation examples evaluated after each epoch.
        #[arg(long)]
        val: usize,
        /// libtorch CPU threads (as `train --torch-threads`).
        #[arg(long, default_value_t = 1)]
        torch_threads: usize,
        /// Network, instead of the recipe's.
        #[arg(long)]
        arch: Option<spoken_digits::model::Arch>,
        /// Epochs, instead of the recipe's.
        #[arg(long)]
        epochs: Option<usize>,
        /// Batch size, instead of the recipe's.
        #[arg(long)]
        batch_size: Option<usize>,
    },
    /// The string model's reading speed on one thread: the held-out voices' phrases read whole
    /// (features, network, greedy decoding), alone and with each digit read again by the
    /// classifier, as multiples of real time.
    Strings {
        /// String models, a comma list read together [default: the three shipped ones].
        #[arg(long, value_name = "FILE,...", value_delimiter = ',')]
        model: Vec<PathBuf>,
        /// Classifier that reads each digit again [default: models/digits.safetensors].
        #[arg(long)]
        classifier: Option<PathBuf>,
        /// Phrases folder [default: free-spoken-digit-dataset/phrases].
        #[arg(long)]
        phrases: Option<PathBuf>,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

fn main() -> ExitCode {
    run(|| {
        match Args::parse().what {
            What::Frontend { data, repeat, front_end } => {
                let cfg = match front_end.as_str() {
                    "default" => FeatureConfig::default(),
                    robust => FeatureConfig {
                        find_word: robust == "find-word",
                        ..TrainConfig::recipe(Recipe::Robust).features
                    },
                };
                cmd::frontend(data, repeat, &cfg)?
            }
            What::TrainCompute { recipe, examples, val, torch_threads, arch, epochs, batch_size } => {
                spoken_digits_torch::cnn::set_threads(torch_threads);
                let mut cfg = TrainConfig::recipe(recipe);
                cfg.arch = arch.unwrap_or(cfg.arch);
                cfg.epochs = epochs.unwrap_or(cfg.epochs);
                cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
                let seconds = spoken_digits_torch::fit::compute_only(&cfg, examples, val, Device::Cpu)?;
                println!("{}", serde_json::json!({"train_compute_s": seconds, "epochs": cfg.epochs}));
            }
            What::Strings { model, classifier, phrases, repeat } => {
                cmd::strings(&model, classifier, phrases, repeat)?
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
