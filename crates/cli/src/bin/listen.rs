//! `listen`: recognises spoken digits live, from the microphone or a recording fed like one.
//! Flags, work and output are in `spoken_digits_cli::cmd::listen`.

use clap::Parser;
use spoken_digits_cli::cmd::listen::{ListenArgs, listen};
use spoken_digits_cli::run;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = ListenArgs::parse();
    args.verbosity.init_logging();
    run(|| listen(args))
}
