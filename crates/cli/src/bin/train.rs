//! `train`: trains the digit CNN on FSDD and writes the model, its config and its metrics;
//! `--split loso` runs every leave-one-speaker-out fold instead. The flags, the data and the
//! reports are in `spoken_digits_cli::cmd::train`; this is the part that links libtorch.

use anyhow::{Context, bail};
use clap::Parser;
use spoken_digits::model::Head;
use spoken_digits::overrides::choose_output;
use spoken_digits_cli::cmd::train::{self as cmd, Plan, StringPlan, TrainArgs};
use spoken_digits_cli::{DEFAULT_MODEL, DEFAULT_STRING_MODEL, EpochBars, default_path, run, warn};
use spoken_digits_torch::{Device, cnn, ctc as fit_strings, fit};
use std::process::ExitCode;

/// oneDNN keeps a compiled convolution for every input shape it has seen (1,024 by default);
/// each batch of strings has its own length, so the string model's training kept hundreds:
/// half of its memory (150 steps: peak 2.49 GB, 1.23 GB with 8 kept, the same time).
const STRING_ONEDNN_CACHE: &str = "8";

fn main() -> ExitCode {
    let args = TrainArgs::parse();
    if args.head == Head::Ctc && std::env::var_os("ONEDNN_PRIMITIVE_CACHE_CAPACITY").is_none() {
        // SAFETY: nothing else runs yet (no thread has started: logging, rayon and libtorch
        // start theirs later), so no other thread reads the environment meanwhile; oneDNN
        // reads it when its first primitive is made.
        unsafe { std::env::set_var("ONEDNN_PRIMITIVE_CACHE_CAPACITY", STRING_ONEDNN_CACHE) };
    }
    args.verbosity.init_logging();
    run(|| train_main(args))
}

fn train_main(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let device = cnn::parse_device(&args.device)?;
    let threads = match (args.torch_threads, args.head) {
        (Some(n), _) => n,
        (None, Head::Ctc) => spoken_digits_cli::default_threads(),
        (None, _) => 1,
    };
    cnn::set_threads(threads);
    if args.head == Head::Ctc {
        return train_strings(&args, device);
    }
    for (given, flag) in [
        (args.steps.is_some(), "--steps"),
        (args.tempo.is_some(), "--tempo"),
        (args.phrase_share.is_some(), "--phrase-share"),
        (args.phrases.is_some(), "--phrases"),
    ] {
        if given {
            bail!("{flag} is for the string model: add --head ctc");
        }
    }
    let plan = Plan::new(&args, &device)?;
    let stop = cmd::stop_flag("the best weights so far")?;
    let mut progress = EpochBars::new(args.verbosity.quiet);
    let cfg = &plan.config;
    if plan.loso {
        let report =
            fit::loso(cfg, &plan.recordings, &plan.extra, device, args.threads, &mut progress, &stop)?;
        cmd::write_loso(&report, &cmd::loso_output(&args))?;
        return Ok(cmd::status(report.interrupted));
    }
    let sets = plan.sets()?;
    let (model, report) = fit::train(cfg, &sets, device, args.threads, &mut progress, &stop)?;
    if report.best_epoch == 0 {
        bail!("interrupted before the first epoch finished; nothing was written");
    }
    let out = args.out.clone().unwrap_or_else(|| default_path(DEFAULT_MODEL));
    let target = choose_output(&out, &report, args.force);
    if let Some(warning) = &target.warning {
        warn(warning);
    }
    let target = target.path;
    fit::save(&model, &report, &target).with_context(|| format!("writing {}", target.display()))?;
    cmd::print_trained(&report, &target);
    Ok(cmd::status(report.interrupted))
}

/// `--head ctc`: trains the string model and writes it, its config and its metrics.
fn train_strings(args: &TrainArgs, device: Device) -> anyhow::Result<ExitCode> {
    let mut progress = EpochBars::new(args.verbosity.quiet);
    let plan = StringPlan::new(args, &mut progress)?;
    let stop = cmd::stop_flag("the weights so far")?;
    let (net, mut report) =
        fit_strings::train(&plan.config, &plan.bank, &plan.phrases, &plan.val, device, &mut progress, &stop)?;
    report.val_words = plan.val_words;
    if report.steps_done == 0 {
        bail!("interrupted before the first step finished; nothing was written");
    }
    let out = args.out.clone().unwrap_or_else(|| default_path(DEFAULT_STRING_MODEL));
    fit_strings::save(&net, &report, &out).with_context(|| format!("writing {}", out.display()))?;
    cmd::print_strings_trained(&report, &out);
    Ok(cmd::status(report.interrupted))
}
