//! `predict-file`: predicts the spoken digit of audio files and folders of audio files.
//! Flags, work and output are in `spoken_digits_cli::cmd::predict_file`.

use clap::Parser;
use spoken_digits_cli::cmd::predict_file::{PredictFileArgs, predict_file};
use spoken_digits_cli::run;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = PredictFileArgs::parse();
    args.verbosity.init_logging();
    run(|| predict_file(args))
}
