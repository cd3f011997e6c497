//! `evaluate`: a model's accuracy on a test split of FSDD, clean, with white noise added, or
//! Flags, work and output are in `spoken_digits_cli::cmd::evaluate`.

use clap::Parser;
use spoken_digits_cli::cmd::evaluate::{EvaluateArgs, evaluate};
use spoken_digits_cli::run;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = EvaluateArgs::parse();
    args.verbosity.init_logging();
    run(|| evaluate(&args))
}
