//! `bench`: times the pieces that `scripts/bench` compares against the targets of the speed
//! issue. Not a user tool: `scripts/bench` runs it and prints every figure beside its target.

use anyhow::Context;
use clap::{Parser, Subcommand};
use spoken_digits::predict::{featurise, featurise_files};
use spoken_digits::train::{Recipe, TrainConfig};
use spoken_digits::{FeatureConfig, FrontEnd, audio};
use spoken_digits_cli::{DEFAULT_PHRASES, DEFAULT_RECORDINGS, DEFAULT_STRING_MODEL, default_path, run};
use spoken_digits_torch::Device;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

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
    /// (features, network, greedy decoding), as a multiple of real time.
    Strings {
        /// String model [default: models/strings.safetensors].
        #[arg(long)]
        model: Option<PathBuf>,
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
                frontend(data, repeat, &cfg)?
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
            What::Strings { model, phrases, repeat } => strings(model, phrases, repeat)?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn strings(model: Option<PathBuf>, phrases: Option<PathBuf>, repeat: usize) -> anyhow::Result<()> {
    let model =
        spoken_digits::ctc::StringModel::load(&model.unwrap_or_else(|| default_path(DEFAULT_STRING_MODEL)))?;
    let rate = model.config().features.sample_rate;
    let dir = phrases.unwrap_or_else(|| default_path(DEFAULT_PHRASES));
    let files = spoken_digits::strings::scan_phrases(&dir, true)?;
    let audio = spoken_digits::strings::load_phrases(&files, rate, audio::DEFAULT_MAX_SECONDS, 1)?;
    let seconds: f64 = audio.iter().map(|(s, _)| s.len() as f64).sum::<f64>() / f64::from(rate);
    let mut times = vec![];
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        for (samples, _) in &audio {
            model.read(samples, None)?;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let compute = median(times);
    println!(
        "{}",
        serde_json::json!({
            "phrases": audio.len(),
            "audio_s": seconds,
            "read_s_1_thread": compute,
            "times_real_time": seconds / compute,
        })
    );
    Ok(())
}

fn frontend(data: Option<PathBuf>, repeat: usize, cfg: &FeatureConfig) -> anyhow::Result<()> {
    let dir = data.unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    let mut mfcc = FrontEnd::new(cfg)?;
    let mut out = vec![0.0f32; cfg.feature_len()];
    let (mut one_thread, mut all_threads, mut mfcc_only) = (vec![], vec![], vec![]);
    let clip = audio::load(&files[0], cfg.sample_rate, audio::DEFAULT_MAX_SECONDS)?;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        for f in &files {
            featurise(&mut mfcc, f, audio::DEFAULT_MAX_SECONDS)?;
        }
        one_thread.push(t.elapsed().as_secs_f64() * 1e3 / files.len() as f64);
        let t = Instant::now();
        for _ in 0..1000 {
            mfcc.compute_into(&clip, &mut out);
        }
        mfcc_only.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let results = featurise_files(&files, cfg, audio::DEFAULT_MAX_SECONDS, threads)?;
        all_threads.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(results.iter().all(|r| r.is_ok()), "some files failed");
    }
    println!(
        "{}",
        serde_json::json!({
            "files": files.len(),
            "frontend_ms_per_clip_1_thread": median(one_thread),
            "mfcc_only_ms_per_clip": median(mfcc_only),
            "frontend_all_files_all_threads_s": median(all_threads),
        })
    );
    Ok(())
}
