//! `listen`: recognises spoken digits live, from the microphone or a recording fed like one.

use crate::enroll::{End, print_summary, record};
use crate::live::{OutputFormat, Render};
use crate::mic::{self, DeviceChoice, Request};
use crate::{StringsArgs, Verbosity, load_model};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use spoken_digits::live::{Command, Feeder, Listener, Source};
use spoken_digits::recogniser::{MIN_CONFIDENCE, Recogniser};
use spoken_digits::takes::{self, TakeFolder};
use spoken_digits::vad::VadKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

/// Seconds of audio the microphone's ring buffer holds.
const RING_SECONDS: f64 = 4.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Vad {
    /// Frame energy above an adaptive noise floor.
    Energy,
    /// The earshot neural VAD.
    Earshot,
}

/// Recognise spoken digits (0-9) live.
///
/// Hands-free by default: speak digits with short pauses ("four ... one ... five"); each is
/// printed with its confidence as soon as you stop, and after a longer pause (--gap) the whole
/// sequence is printed on one line. `--input` feeds a wav file (or raw 16-bit PCM on stdin)
/// through the very same pipeline instead of the microphone. Ctrl-C stops.
///
/// `--enroll DIR` records your own voice instead: it asks for each digit in turn, saves every
/// take as an FSDD-named wav in DIR and shows what the current model heard; `train
/// --extra-data DIR` then trains a model that knows your voice.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct ListenArgs {
    /// Model weights (.safetensors; its .json config is read from beside it).
    #[arg(long, short, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Input device: its index or name as listed by `check-mic --no-record` [default: the
    /// system's default input].
    #[arg(long, short, value_name = "NAME|INDEX")]
    pub device: Option<DeviceChoice>,
    /// Read an audio file (wav, FLAC, Ogg Vorbis/Opus, MP3, M4A/AAC, WebM), or raw signed
    /// 16-bit little-endian mono PCM from stdin with `-`, instead of the microphone.
    #[arg(long, short, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Sample rate of raw PCM on stdin (`--input -`).
    #[arg(long, default_value_t = 8000, value_name = "HZ")]
    pub rate: u32,
    /// With --input: process as fast as possible instead of in real time.
    #[arg(long)]
    pub no_realtime: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Voice activity detector.
    #[arg(long, value_enum, default_value_t = Vad::Energy)]
    pub vad: Vad,
    /// Silence (seconds) that ends a sequence of digits.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub gap: f64,
    /// Utterances classified with less confidence print `?`.
    #[arg(long, default_value_t = MIN_CONFIDENCE, value_name = "0..1")]
    pub min_confidence: f32,
    /// Press Enter to record 1.5 s; the loudest second is classified (the original behaviour).
    #[arg(long, conflicts_with = "input")]
    pub push_to_talk: bool,
    /// Capture at this rate instead of asking the device for the model's rate (tests the
    /// resampling path; real microphones often only offer 44100 or 48000).
    #[arg(long, value_name = "HZ")]
    pub capture_rate: Option<u32>,
    /// Capture this many channels instead of asking for mono.
    #[arg(long, value_name = "N")]
    pub capture_channels: Option<u16>,
    /// When the input device is lost (unplugged, or the audio server restarted), keep trying to
    /// open it again every second (the same --device, or the default input) until it comes
    /// back or Ctrl-C, instead of exiting.
    #[arg(long, conflicts_with = "input")]
    pub reconnect: bool,
    /// Enrollment: say each digit when asked ("say 7"); every take is saved at once in DIR
    /// (created if missing) as an FSDD-named 8 kHz mono wav, <digit>_<speaker>_<n>.wav, and
    /// the current model's guess is shown. n continues after the takes already in DIR, so a
    /// second run adds takes. Then train on them with `train --extra-data DIR`.
    #[arg(long, value_name = "DIR", conflicts_with = "push_to_talk")]
    pub enroll: Option<PathBuf>,
    /// With --enroll: takes of each digit, asked in rounds of 0-9.
    #[arg(long, default_value_t = 3, value_name = "N", requires = "enroll",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub takes: u32,
    /// With --enroll: the speaker name in the file names; only its letters and digits are kept,
    /// lower-cased [default: $USER].
    #[arg(long, value_name = "NAME", requires = "enroll")]
    pub speaker: Option<String>,
    /// Digits said without pauses ("four one five nine") are read by the string model; each of
    /// them is printed with its own span. Not with --push-to-talk or --enroll, which take one
    /// digit at a time.
    #[command(flatten)]
    pub strings: StringsArgs,
    /// -q: no status messages or summary on stderr; -v: log what happens.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The whole command: what `listen` does with its flags.
pub fn listen(args: ListenArgs) -> anyhow::Result<ExitCode> {
    // The shipped model (or the one compiled in), as for every other binary.
    let (model, _) = load_model(args.model.as_deref())?;
    let rate = model.config().features.sample_rate;
    let kind = match args.vad {
        Vad::Energy => VadKind::Energy,
        Vad::Earshot => VadKind::Earshot,
    };
    let strings = if args.push_to_talk || args.enroll.is_some() { None } else { args.strings.load()? };
    let mut stream = Recogniser::stream_config(&model, kind, strings.is_some());
    stream.gap_seconds = args.gap;
    let mut recogniser = Recogniser::new(&model, &stream, args.min_confidence)?;
    if let Some(strings) = &strings {
        recogniser = recogniser.with_strings(strings)?.rereading(spoken_digits::recogniser::REREAD_DIP_DB);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    // Enrollment's folder first: a bad name or an unwritable folder fails before recording.
    let mut folder = match &args.enroll {
        Some(dir) => Some(take_folder(dir, args.speaker.as_deref())?),
        None => None,
    };

    let choice = args.device.clone().unwrap_or(DeviceChoice::Default);
    let request = Request { rate: args.capture_rate, channels: args.capture_channels };
    let mut render = Render::new(args.format, args.verbosity.quiet);
    let say = |m: &str| {
        if !args.verbosity.quiet {
            eprintln!("{m}");
        }
    };
    let source: Box<dyn Source> = match &args.input {
        Some(path) => {
            let realtime = !args.no_realtime;
            let feeder = if path.as_os_str() == "-" {
                if args.rate == 0 || args.rate > spoken_digits::audio::MAX_SAMPLE_RATE {
                    bail!("--rate {} is outside 1..={} Hz", args.rate, spoken_digits::audio::MAX_SAMPLE_RATE);
                }
                Feeder::pcm(std::io::stdin(), args.rate, realtime)?
            } else {
                Feeder::file(path, rate, realtime)?
            };
            say(&format!(
                "listening to {} ({} Hz{})",
                path.display(),
                feeder.rate(),
                if realtime { ", real time" } else { "" }
            ));
            Box::new(feeder)
        }
        None => {
            let (input, name) = mic::open(&choice, rate, request, RING_SECONDS)?;
            let capture = input.capture;
            say(&format!(
                "listening on '{name}' ({capture}{}); {}",
                if capture.config.sample_rate == rate && capture.config.channels == 1 {
                    String::new()
                } else {
                    format!(", mixed and resampled to {rate} Hz mono")
                },
                if args.push_to_talk {
                    "press Enter to speak, q to quit"
                } else if args.enroll.is_some() {
                    "say each digit when asked, Ctrl-C to stop"
                } else {
                    "speak digits, Ctrl-C to stop"
                }
            ));
            Box::new(input)
        }
    };
    let mut listener = Listener::new(source, recogniser, stop)?;
    if args.reconnect {
        listener.reconnect_with(Box::new(move || {
            let (input, name) = mic::open(&choice, rate, request, RING_SECONDS)
                .map_err(|e| spoken_digits::Error::Input(format!("{e:#}")))?;
            let what = format!("'{name}' ({})", input.capture);
            Ok((Box::new(input) as Box<dyn Source>, what))
        }));
    }
    if let Some(folder) = &mut folder {
        return enroll_main(&args, &mut listener, &mut render, folder);
    }
    let mut on = |e| render.event(e);
    let summary = if args.push_to_talk {
        listener.push_to_talk(&keyboard_commands(), &mut on)?
    } else {
        listener.hands_free(&mut on)?
    };
    if !args.verbosity.quiet {
        eprintln!("{summary}");
    }
    if summary.utterances == 0 && args.input.is_some() && summary.audio_seconds == 0.0 {
        bail!("the input held no audio");
    }
    Ok(ExitCode::SUCCESS)
}

/// Push-to-talk's keys: each line on stdin records, `q` quits (read on a thread of its own).
fn keyboard_commands() -> mpsc::Receiver<Command> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let command = if line.trim().eq_ignore_ascii_case("q") { Command::Quit } else { Command::Record };
            if tx.send(command).is_err() {
                break;
            }
        }
    });
    rx
}

/// `--enroll`: the folder for the takes of `--speaker` (or `$USER`).
fn take_folder(dir: &Path, speaker: Option<&str>) -> anyhow::Result<TakeFolder> {
    let raw = match speaker {
        Some(s) => s.to_string(),
        None => std::env::var("USER").unwrap_or_default(),
    };
    let name = takes::speaker_name(&raw);
    if name.is_empty() {
        bail!(
            "no speaker name for the file names ('{raw}' from {} has no letter or digit): give one with --speaker NAME",
            if speaker.is_some() { "--speaker" } else { "$USER" }
        );
    }
    TakeFolder::open(dir, &name).with_context(|| format!("opening the enrollment folder {}", dir.display()))
}

/// Records the takes, prints the summary and the next commands; a session that ended early
/// says how many takes were saved and where, and exits non-zero (130 on Ctrl-C).
fn enroll_main(
    args: &ListenArgs,
    session: &mut Listener,
    render: &mut Render,
    folder: &mut TakeFolder,
) -> anyhow::Result<ExitCode> {
    let prompts = takes::prompts(args.takes as usize);
    if !args.verbosity.quiet {
        eprintln!(
            "enrolling speaker '{}' into {}: {} take(s) of each digit, {} in all",
            folder.speaker(),
            folder.dir().display(),
            args.takes,
            prompts.len()
        );
    }
    let result = record(session, render, folder, &prompts, args.format);
    print_summary(&result, folder, args.format)?;
    let saved =
        format!("{} of {} takes, saved in {}", result.takes.len(), result.planned, folder.dir().display());
    match result.end {
        End::Complete => Ok(ExitCode::SUCCESS),
        End::Stopped => {
            eprintln!("stopped after {saved}");
            Ok(ExitCode::from(130))
        }
        End::InputEnded => bail!("the input ended after {saved}"),
        End::Failed(e) => Err(e.context(format!("enrollment stopped after {saved}"))),
    }
}
