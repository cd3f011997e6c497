//! `analyze`: one picture per audio file of what the model hears: the waveform with the detected
//! speech segment, the spectrogram, the feature map the model is given, and its probabilities.

use anyhow::Context;
use clap::Parser;
use spoken_digits::analysis::analyze_file;
use spoken_digits::model::argmax;
use spoken_digits_cli::{StringsArgs, Verbosity, load_model, paint, run};
use spoken_digits_report as plot;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Draw what the model hears in audio files.
///
/// For each file, writes `<name>.analysis.png` into OUT_DIR: the waveform with the detected
/// speech segment (what the front end keeps when the model trims silence) and the 1 s window the
/// model sees, the spectrogram, the feature map given to the model (the shipped model's: 23 x 63
/// log-mel bands; the original's: 13 x 63 MFCCs), the probability of each digit, and the string
/// model's digits with each one's span over the whole recording. Prints one line per file. A file that cannot be used is reported and the others are still drawn; the
/// exit status is then 1.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Audio files: wav, FLAC, Ogg Vorbis/Opus, MP3, M4A/AAC, WebM (any sample rate and channel
    /// count; the format is read from the content).
    #[arg(required = true, value_name = "FILE")]
    wavs: Vec<PathBuf>,
    /// Model weights (.safetensors; its .json config is read from beside it)
    /// [default: models/digits.safetensors, else the copy built into this binary].
    #[arg(long, short, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Folder for the pictures (created when missing).
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Refuse files longer than this many seconds.
    #[arg(long, default_value_t = spoken_digits::analysis::MAX_SECONDS)]
    max_seconds: f64,
    #[command(flatten)]
    strings: StringsArgs,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.verbosity.init_logging();
    run(|| analyze_main(args))
}

fn analyze_main(args: Args) -> anyhow::Result<ExitCode> {
    let (model, model_name) = load_model(args.model.as_deref())?;
    let strings = args.strings.load()?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut used = HashSet::new();
    let mut failed = 0;
    let (ok, bad, note) = (paint::OK, paint::BAD, paint::NOTE);
    if !args.verbosity.quiet {
        anstream::eprintln!("{note}model: {model_name}{note:#}");
    }
    for wav in &args.wavs {
        let out = picture_path(&args.out_dir, wav, &mut used);
        let drawn = analyze_file(wav, &model, strings.as_ref(), args.max_seconds).and_then(|a| {
            plot::analysis(&out, &a)?;
            Ok(a)
        });
        match drawn {
            Ok(a) => {
                let heard =
                    a.probabilities.map(|p| argmax(&p)).map_or_else(String::new, |(digit, confidence)| {
                        format!("{ok}{digit}{ok:#} {:>5.1}%", 100.0 * confidence)
                    });
                let digits = a.reading.as_ref().map_or_else(String::new, |r| {
                    let spans: Vec<String> = r
                        .digits
                        .iter()
                        .map(|d| format!("{} {:.2}-{:.2}", d.digit, d.start_s, d.end_s))
                        .collect();
                    format!("  digits {ok}{}{ok:#} ({})", r.sequence, spans.join(", "))
                });
                anstream::println!(
                    "{}  {heard}{digits}  speech {:.2}-{:.2} s  {note}-> {}{note:#}",
                    wav.display(),
                    a.segment.start as f64 / f64::from(a.sample_rate),
                    a.segment.end as f64 / f64::from(a.sample_rate),
                    out.display()
                );
            }
            Err(e) => {
                failed += 1;
                anstream::println!("{}  {bad}error:{bad:#} {e}", wav.display());
            }
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `<out_dir>/<stem>.analysis.png`, numbered when two inputs share a name.
fn picture_path(out_dir: &Path, wav: &Path, used: &mut HashSet<PathBuf>) -> PathBuf {
    let stem = wav.file_stem().map_or_else(|| "recording".to_string(), |s| s.to_string_lossy().into_owned());
    let mut path = out_dir.join(format!("{stem}.analysis.png"));
    let mut n = 2;
    while !used.insert(path.clone()) {
        path = out_dir.join(format!("{stem}-{n}.analysis.png"));
        n += 1;
    }
    path
}
