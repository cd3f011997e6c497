//! `check-mic`: is there a microphone `listen` can use, and how loud is it?
//! Flags, work and output are in `spoken_digits_cli::cmd::check_mic`.

use clap::Parser;
use spoken_digits_cli::cmd::check_mic::{CheckMicArgs, check_mic};
use spoken_digits_cli::run;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = CheckMicArgs::parse();
    args.verbosity.init_logging();
    run(|| check_mic(args))
}
