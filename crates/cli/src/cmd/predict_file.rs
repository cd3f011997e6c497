//! `predict-file`: predicts the spoken digit of audio files and folders of audio files.

use crate::{
    DEFAULT_INFERENCE_DIR, StringsArgs, Verbosity, default_path, default_threads, load_model, paint,
};
use clap::{Parser, ValueEnum};
use spoken_digits::audio::{self, DEFAULT_MAX_SECONDS};
use spoken_digits::dataset::label_from_name;
use spoken_digits::predict::predict_files_with;
use spoken_digits::prediction::Prediction;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON Lines: one object per file.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Predict the spoken digit (0-9) in audio files.
///
/// Reads wav (PCM, float, telephone mu-law and A-law), FLAC, Ogg Vorbis, Ogg Opus, MP3, M4A/AAC
/// and WebM/Opus, at any sample rate and channel count; the format is found from the content,
/// not the name. Folders are searched
/// recursively for files with those extensions (.wav .wave .flac .ogg .oga .opus .mp3 .m4a .mp4 .aac
/// .webm .mka, any case). Files named `<digit>_...` are scored, and a summary line gives the
/// accuracy over them. A file that cannot be used is reported with its
/// reason and the others are still predicted; the exit status is then 1.
///
/// The string model also reads each whole file: a file that holds several digits ("four one
/// five nine") is reported as `digits 4159` in the table and `"digits": "4159"` (with each digit's
/// confidence and time span in `"digit_spans"`) in JSON, beside the classifier's `digit`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct PredictFileArgs {
    /// Audio files and/or folders [default: free-spoken-digit-dataset/inference_audio].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Model weights (.safetensors; its .json config is read from beside it)
    /// [default: models/digits.safetensors, else the copy built into this binary].
    #[arg(long, short, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Refuse files longer than this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_SECONDS)]
    pub max_seconds: f64,
    /// Worker threads for reading and featurising audio.
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    #[command(flatten)]
    pub strings: StringsArgs,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The whole command: what `predict-file` does with its flags.
pub fn predict_file(args: PredictFileArgs) -> anyhow::Result<ExitCode> {
    let (model, _) = load_model(args.model.as_deref())?;
    let quiet = args.verbosity.quiet;
    let inputs =
        if args.paths.is_empty() { vec![default_path(DEFAULT_INFERENCE_DIR)] } else { args.paths.clone() };

    // Files to predict, plus inputs that could not even be listed.
    let mut files = vec![];
    let mut failures: Vec<(PathBuf, String)> = vec![];
    for input in &inputs {
        collect_audio(input, true, &mut files, &mut failures, &mut HashSet::new());
    }
    tracing::info!("{} file(s) to predict", files.len());
    let strings = args.strings.load()?;
    let results = predict_files_with(&model, strings.as_ref(), &files, args.max_seconds, args.threads)?;

    // Colours only when stdout is a terminal and NO_COLOR is not set.
    let mut out = anstream::stdout().lock();
    let mut scored = (0usize, 0usize);
    if args.format == Format::Csv {
        writeln!(
            out,
            "file,digit,confidence,{},error",
            (0..10).map(|d| format!("p{d}")).collect::<Vec<_>>().join(",")
        )?;
    }
    let rows: Vec<(&PathBuf, Result<Prediction, String>)> = files
        .iter()
        .zip(results.into_iter().map(|r| r.map_err(|e| e.to_string())))
        .chain(failures.iter().map(|(p, e)| (p, Err(e.clone()))))
        .collect();
    let width = rows.iter().map(|(p, _)| p.display().to_string().chars().count()).max().unwrap_or(0).min(80);
    let mut failed = 0;
    for (path, result) in rows {
        match &result {
            Ok(p) => {
                if p.utterances > 1 {
                    // A warning, not an error: the classifier reads the loudest region; the
                    // string model (when on) reads them all.
                    let all = match &p.digits {
                        Some(r) => format!("; the string model read them all as '{}'", r.sequence),
                        None => String::new(),
                    };
                    tracing::warn!(
                        "{}: {} separate speech regions; the classifier read the loudest{all}",
                        path.display(),
                        p.utterances
                    );
                }
                if let Some(label) = label_from_name(path) {
                    scored.0 += usize::from(label == p.digit);
                    scored.1 += 1;
                }
            }
            Err(_) => failed += 1,
        }
        write_row(&mut out, args.format, width, path, &result)?;
    }
    if !quiet && args.format == Format::Table {
        if scored.1 > 0 {
            let s = paint::STRONG;
            writeln!(
                out,
                "accuracy on labelled files: {s}{}/{} ({:.1}%){s:#}",
                scored.0,
                scored.1,
                100.0 * scored.0 as f64 / scored.1 as f64
            )?;
        }
        if failed > 0 {
            let b = paint::BAD;
            writeln!(out, "{b}{failed} file(s) could not be used{b:#}")?;
        }
    }
    if files.is_empty() && failures.is_empty() {
        anyhow::bail!(
            "no audio files ({}) found in {}",
            audio::EXTENSIONS.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(" "),
            inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if !quiet && args.format != Format::Table && scored.1 > 0 {
        eprintln!("accuracy on labelled files: {}/{}", scored.0, scored.1);
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Adds `path` (a file, or the audio files under a folder, sorted, symlink loops skipped).
fn collect_audio(
    path: &Path,
    explicit: bool,
    files: &mut Vec<PathBuf>,
    failures: &mut Vec<(PathBuf, String)>,
    seen: &mut HashSet<PathBuf>,
) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            if explicit {
                failures.push((path.to_path_buf(), e.to_string()));
            }
            return;
        }
    };
    if !meta.is_dir() {
        if explicit || audio::has_audio_extension(path) {
            files.push(path.to_path_buf());
        }
        return;
    }
    // Visit each real folder once, so symlink loops end.
    let Ok(real) = std::fs::canonicalize(path) else { return };
    if !seen.insert(real) {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            failures.push((path.to_path_buf(), format!("cannot list folder: {e}")));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        collect_audio(&entry, false, files, failures, seen);
    }
}

fn write_row(
    out: &mut impl Write,
    format: Format,
    width: usize,
    path: &Path,
    result: &Result<Prediction, String>,
) -> std::io::Result<()> {
    let file = path.display().to_string();
    match (format, result) {
        (Format::Table, Ok(p)) => {
            let (ok, bad) = (paint::OK, paint::BAD);
            let mark = match label_from_name(path) {
                Some(l) if l == p.digit => format!("  {ok}ok{ok:#}"),
                Some(l) => format!("  {bad}WRONG{bad:#} (expected {l})"),
                None => String::new(),
            };
            let digits = match &p.digits {
                Some(r) if r.digits.len() > 1 => format!("  digits {}", r.sequence),
                _ => String::new(),
            };
            writeln!(out, "{file:<width$}  {}  {:>5.1}%{mark}{digits}", p.digit, 100.0 * p.confidence)
        }
        (Format::Table, Err(e)) => {
            let bad = paint::BAD;
            writeln!(out, "{file:<width$}  {bad}error:{bad:#} {e}")
        }
        (Format::Json, Ok(p)) => {
            let mut row = serde_json::json!({"file": file, "digit": p.digit, "confidence": p.confidence, "probabilities": p.probabilities});
            if let (Some(r), Some(map)) = (&p.digits, row.as_object_mut()) {
                map.insert("digits".into(), r.sequence.clone().into());
                map.insert("digits_confidence".into(), r.confidence.into());
                map.insert("digit_spans".into(), serde_json::to_value(&r.digits).unwrap_or_default());
            }
            writeln!(out, "{row}")
        }
        (Format::Json, Err(e)) => writeln!(out, "{}", serde_json::json!({"file": file, "error": e})),
        (Format::Csv, Ok(p)) => writeln!(
            out,
            "{},{},{:.6},{},",
            csv(&file),
            p.digit,
            p.confidence,
            p.probabilities.iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>().join(",")
        ),
        (Format::Csv, Err(e)) => writeln!(out, "{},,,{},{}", csv(&file), ",".repeat(9), csv(e)),
    }
}

/// Quotes a CSV field when needed.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
