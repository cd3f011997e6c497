//! End-to-end runs of the real binaries on real files, in temp folders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{reference_weights, root, temp_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn recordings() -> PathBuf {
    let dir = root().join("free-spoken-digit-dataset/recordings");
    assert!(dir.join("0_george_0.wav").is_file(), "run scripts/setup first");
    dir
}

fn run(bin: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap()
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const PREDICT: &str = env!("CARGO_BIN_EXE_predict-file");
const TRAIN: &str = env!("CARGO_BIN_EXE_train");
const ANALYZE: &str = env!("CARGO_BIN_EXE_analyze");
const EVALUATE: &str = env!("CARGO_BIN_EXE_evaluate");

/// FSDD's official test split (index 0-4) as links in a temp folder.
fn official_test_dir() -> PathBuf {
    let dir = temp_dir("official");
    for entry in std::fs::read_dir(recordings()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (_, _, index) = spoken_digits::dataset::parse_name(&name).unwrap();
        if index < 5 {
            std::os::unix::fs::symlink(&path, dir.join(&name)).unwrap();
        }
    }
    dir
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn original_weights_score_299_of_300_on_the_official_test_split() {
    let dir = official_test_dir();
    let out =
        run(PREDICT, &["--model", reference_weights().to_str().unwrap(), dir.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert_eq!(text.lines().filter(|l| l.contains(".wav")).count(), 300);
    assert!(text.contains("accuracy on labelled files: 299/300"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_run_predicts_the_hold_out_folder_with_the_shipped_model() {
    // From another folder too: defaults are found relative to the repository.
    let out = run(PREDICT, &["--format", "json"], &std::env::temp_dir());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10);
    let mut correct = 0;
    for row in &rows {
        let file = row["file"].as_str().unwrap();
        let digit = row["digit"].as_u64().unwrap();
        let probs: Vec<f64> =
            row["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert_eq!(row["confidence"].as_f64().unwrap(), probs[digit as usize]);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        correct += usize::from(name.starts_with(&digit.to_string()));
    }
    assert!(correct >= 9, "only {correct}/10 hold-out files right");
}

#[test]
fn silence_or_quiet_noise_before_a_word_does_not_change_its_reading() {
    // The shipped model trims its input: zeros before a hold-out word give exactly the same
    // probabilities, and quiet noise before it (-65 dBFS) the same digit.
    let dir = temp_dir("lead-in");
    let holdout = root().join("free-spoken-digit-dataset/inference_audio");
    let mut seed = 12345u32;
    let mut noise = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (f64::from(seed) / f64::from(u32::MAX) - 0.5) as f32 * 0.002
            })
            .collect()
    };
    for entry in std::fs::read_dir(&holdout).unwrap() {
        let path = entry.unwrap().path();
        let samples = spoken_digits::audio::load(&path, 8000, 10.0).unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        for (kind, ms) in
            [("zeros", 0), ("zeros", 8), ("zeros", 24), ("zeros", 100), ("noise", 50), ("noise", 300)]
        {
            let mut lead = if kind == "zeros" { vec![0.0; ms * 8] } else { noise(ms * 8) };
            lead.extend(&samples);
            spoken_digits::audio::write_wav(&dir.join(format!("{stem}_{kind}{ms}.wav")), &lead, 8000)
                .unwrap();
        }
    }
    let out = run(PREDICT, &["--format", "csv", dir.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let rows: Vec<(String, &str)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (file, rest) = l.split_once(',').unwrap();
            (Path::new(file).file_name().unwrap().to_str().unwrap().to_string(), rest)
        })
        .collect();
    assert_eq!(rows.len(), 60);
    let wrong: Vec<_> = rows.iter().filter(|(name, rest)| !rest.starts_with(&name[..1])).collect();
    // 3_nicolas_37 is a borderline 3/2 for the shipped model (61%, see the model card): one of
    // its noisy versions may tip. Everything else must be read right.
    assert!(
        wrong.iter().all(|(name, _)| name.starts_with("3_nicolas_37_noise")) && wrong.len() <= 1,
        "misread after a lead-in: {wrong:?}"
    );
    for (name, rest) in &rows {
        if let Some(stem) = name.split_once("_zeros").map(|(stem, _)| stem) {
            let plain = &rows.iter().find(|(n, _)| n == &format!("{stem}_zeros0.wav")).unwrap().1;
            assert_eq!(rest, plain, "{name}: zeros before the word changed its probabilities");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// (extension, ffmpeg arguments) of each compressed copy predict-file must read like its wav.
/// MP3 gets 32 kb/s: LAME's default at 8 kHz is 8 kb/s, which no recorder uses (and which turns
/// george's "six" into an "eight").
const COPIES: &[(&str, &[&str])] = &[
    ("flac", &[]),
    ("ogg", &["-c:a", "libvorbis"]),
    ("opus", &["-c:a", "libopus"]),
    ("mp3", &["-c:a", "libmp3lame", "-b:a", "32k"]),
    ("M4A", &["-c:a", "aac"]),
    ("webm", &["-c:a", "libopus"]),
    // What a phone or a browser records: stereo at 44.1 kHz.
    ("stereo.m4a", &["-c:a", "aac", "-ac", "2", "-ar", "44100"]),
    ("stereo.flac", &["-ac", "2", "-ar", "44100"]),
    // Telephone recordings: G.711 mu-law and A-law in wav.
    ("mulaw.wav", &["-c:a", "pcm_mulaw"]),
    ("alaw.wav", &["-c:a", "pcm_alaw"]),
];

/// Largest difference allowed between a copy's probability of a digit and its wav's. Measured
/// (shipped model, the 10 hold-out files): mono FLAC 0, the others up to 0.16, except george's
/// hesitant "six" (0.66 in its wav) in M4A at 8 kHz, 0.32: the AAC encoder's 1024 priming
/// samples (128 ms at 8 kHz) stay at its start, as symphonia 0.6 does not read the MP4 edit list
/// that says to drop them (ffmpeg's own decoding of that file, which drops them, is 0.14 off).
const COPY_TOLERANCE: f64 = 0.2;
const M4A_8K_TOLERANCE: f64 = 0.35;

#[test]
fn compressed_copies_are_predicted_like_their_wavs() {
    let dir = temp_dir("formats");
    let holdout = root().join("free-spoken-digit-dataset/inference_audio");
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&holdout)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup", holdout.display()))
        .map(|e| e.unwrap().path())
        .collect();
    wavs.sort();
    assert_eq!(wavs.len(), 10, "{}: run scripts/setup", holdout.display());
    for wav in &wavs {
        let stem = wav.file_stem().unwrap().to_str().unwrap();
        std::fs::copy(wav, dir.join(format!("{stem}.wav"))).unwrap();
        for (ext, args) in COPIES {
            common::ffmpeg(wav, &dir.join(format!("{stem}.{ext}")), args);
        }
    }
    let started = std::time::Instant::now();
    let out = run(PREDICT, &["--format", "json", dir.to_str().unwrap()], &root());
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10 * (1 + COPIES.len()), "the folder scan missed files: {rows:?}");
    let by_name: std::collections::HashMap<String, &serde_json::Value> = rows
        .iter()
        .map(|r| {
            (Path::new(r["file"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string(), r)
        })
        .collect();
    let probabilities = |r: &serde_json::Value| -> Vec<f64> {
        r["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect()
    };
    let mut worst = (0.0f64, String::new());
    for wav in &wavs {
        let stem = wav.file_stem().unwrap().to_str().unwrap();
        let reference = by_name[&format!("{stem}.wav")];
        assert_eq!(reference["digit"].as_u64(), Some(u64::from(stem.as_bytes()[0] - b'0')), "{reference}");
        for (ext, _) in COPIES {
            let name = format!("{stem}.{ext}");
            let row = by_name[&name];
            assert_eq!(row["digit"], reference["digit"], "{name}: {row} against {reference}");
            let diff = probabilities(row)
                .iter()
                .zip(probabilities(reference))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            if ext.contains("flac") && !ext.contains("stereo") {
                assert_eq!(diff, 0.0, "{name}: FLAC is lossless");
            }
            let tolerance = if *ext == "M4A" { M4A_8K_TOLERANCE } else { COPY_TOLERANCE };
            assert!(diff <= tolerance, "{name}: probabilities differ by {diff:.3} from the wav's");
            if diff > worst.0 {
                worst = (diff, name);
            }
        }
    }
    eprintln!(
        "{} files in {seconds:.2} s; largest probability difference {:.3} ({})",
        rows.len(),
        worst.0,
        worst.1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_and_corrupt_compressed_files_are_reported_and_the_rest_still_predicted() {
    let dir = temp_dir("bad-formats");
    let wav = root().join("free-spoken-digit-dataset/inference_audio/4_theo_46.wav");
    let mut expected_errors = vec![];
    for (ext, args) in COPIES.iter().filter(|(e, _)| !e.contains("stereo")) {
        let good = dir.join(format!("4_good_0.{ext}"));
        common::ffmpeg(&wav, &good, args);
        let bytes = std::fs::read(&good).unwrap();
        let cut = format!("4_cut_0.{ext}");
        std::fs::write(dir.join(&cut), &bytes[..bytes.len() / 2]).unwrap();
        let mut garbled = bytes.clone();
        garbled[..16].iter_mut().for_each(|b| *b ^= 0xa5);
        let bad = format!("4_garbled_0.{ext}");
        std::fs::write(dir.join(&bad), garbled).unwrap();
        expected_errors.push(cut);
        // MP3 resyncs on its next frame header; every other container is unreadable.
        if *ext != "mp3" {
            expected_errors.push(bad);
        }
    }
    std::fs::write(dir.join("4_text_0.mp3"), b"these are words, not sounds").unwrap();
    expected_errors.push("4_text_0.mp3".to_string());
    let out = run(PREDICT, &["--format", "json", dir.to_str().unwrap()], &root());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for name in &expected_errors {
        let row = rows.iter().find(|r| r["file"].as_str().unwrap().ends_with(&format!("/{name}"))).unwrap();
        let error = row["error"].as_str().unwrap_or_else(|| panic!("{name} was not refused: {row}"));
        assert!(error.contains(name.as_str()) && !error.contains('\n'), "{error}");
    }
    let good: Vec<_> = rows.iter().filter(|r| r["file"].as_str().unwrap().contains("4_good_0")).collect();
    assert_eq!(good.len(), COPIES.len() - 2);
    assert!(good.iter().all(|r| r["digit"].as_u64() == Some(4)), "{good:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_are_reported_and_the_rest_still_predicted() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("1_bad_0.wav"), b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
    std::fs::write(dir.join("2_empty_0.wav"), b"").unwrap();
    std::fs::copy(recordings().join("3_theo_0.wav"), dir.join("3_theo_0.wav")).unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored: not a wav").unwrap();
    let out = run(PREDICT, &["--format", "json", dir.to_str().unwrap()], &root());
    assert_eq!(out.status.code(), Some(1));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0]["error"].as_str().unwrap().contains("1_bad_0.wav"));
    assert!(rows[1]["error"].as_str().unwrap().contains("2_empty_0.wav"));
    assert_eq!(rows[2]["digit"].as_u64(), Some(3));
    let csv = run(PREDICT, &["--format", "csv", dir.to_str().unwrap()], &root());
    let text = stdout(&csv);
    assert!(text.starts_with("file,digit,confidence,p0,"));
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| l.split(',').count() == 14 || l.contains('"')), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_files_are_reported_and_the_rest_still_predicted() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = temp_dir("unreadable");
    std::fs::copy(recordings().join("3_theo_0.wav"), dir.join("3_theo_0.wav")).unwrap();
    let locked = dir.join("4_locked_0.wav");
    std::fs::copy(recordings().join("4_theo_0.wav"), &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = Command::new(PREDICT);
    cmd.args(["--format", "json", dir.to_str().unwrap()]).current_dir(root());
    // Root reads any file whatever its mode, so as root the binary runs as `nobody` (predict-file
    // needs no libtorch, and the repository and temp folder are world-readable).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["digit"].as_u64(), Some(3), "{rows:?}");
    let error = rows[1]["error"].as_str().unwrap();
    assert!(error.contains("4_locked_0.wav") && error.contains("ermission denied"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2_and_model_errors_are_clear() {
    let out = run(PREDICT, &["--format", "yaml"], &root());
    assert_eq!(out.status.code(), Some(2));
    let out = run(PREDICT, &["--model", "/nonexistent/m.safetensors"], &root());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model file not found") && !err.contains("panicked"), "{err}");
}

#[test]
#[ignore = "full suite (scripts/test --full): trains the default recipe, about two minutes"]
fn default_recipe_trains_as_well_as_the_shipped_model_and_writes_everything() {
    let dir = temp_dir("train");
    let model = dir.join("m.safetensors");
    let out = run(TRAIN, &["--quiet", "--out", model.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read_json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    };
    let metrics = read_json(&dir.join("m.metrics.json"));
    let shipped = read_json(&root().join("models/digits.metrics.json"));
    // The same recipe on another CPU gives other bytes (libtorch's kernels add in another order
    // there), so the retrained model is held to the shipped one's figures instead: the official
    // split within half a point, and the hold-out folder all right (below).
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    let shipped_acc = shipped["test"]["accuracy"].as_f64().unwrap();
    assert!(acc >= shipped_acc - 0.005, "official-split accuracy {acc}, the shipped model's {shipped_acc}");
    assert_eq!(metrics["test_size"].as_u64(), Some(300));
    // The same recipe as the shipped model's (but for where the synthetic voices lie).
    let recipe = |m: &serde_json::Value| {
        let mut config = m["config"].clone();
        config.as_object_mut().unwrap().remove("extra_data");
        config
    };
    assert_eq!(recipe(&metrics), recipe(&shipped), "the default recipe is no longer the shipped model's");
    assert_eq!(metrics["config"]["arch"], "wide");
    // The mean of the last five epochs' weights is kept.
    assert_eq!(metrics["config"]["keep"], serde_json::json!({ "average": 5 }));
    assert_eq!(metrics["best_epoch"].as_u64(), Some(15));
    // The synthetic voices of scripts/setup are in its training set, and nothing else extra.
    let extra = metrics["config"]["extra_data"].as_array().unwrap();
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert!(extra[0]["dir"].as_str().unwrap().ends_with("free-spoken-digit-dataset/synthetic"), "{extra:?}");
    assert_eq!(extra[0]["recordings"].as_u64(), Some(1980));
    // The metrics say what trained it, so that two files' bytes can be told apart.
    let machine = &metrics["machine"];
    assert!(machine["libtorch"].as_str().unwrap().starts_with("2.13"), "{machine}");
    assert!(machine["cpu_features"].is_array() && machine["torch_threads"].as_u64() >= Some(1), "{machine}");
    assert_eq!(metrics["history"].as_array().unwrap().len(), 15);
    assert_eq!(metrics["test"]["confusion"].as_array().unwrap().len(), 10);
    assert!(dir.join("m.json").is_file());
    assert_eq!(png_size(&dir.join("m.confusion.png")), spoken_digits_report::CONFUSION_SIZE);
    assert_eq!(png_size(&dir.join("m.curves.png")), spoken_digits_report::CURVES_SIZE);
    // Only the five files: no temp file left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
    // The new model reads the whole hold-out folder right, as the shipped one does.
    let pred = run(PREDICT, &["--model", model.to_str().unwrap(), "--quiet", "--format", "json"], &root());
    assert!(pred.status.success(), "{}", String::from_utf8_lossy(&pred.stderr));
    let rows: Vec<serde_json::Value> =
        stdout(&pred).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let file = row["file"].as_str().unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let label = spoken_digits::dataset::parse_name(name).unwrap().0;
        assert_eq!(row["digit"].as_u64(), Some(u64::from(label)), "{row}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_synthetic_voices_are_a_clear_error() {
    let out = run(TRAIN, &["--synthetic", "/nonexistent/synthetic", "--epochs", "1"], &root());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("synthetic voices are missing")
            && err.contains("scripts/setup")
            && !err.contains("panicked"),
        "{err}"
    );
    let out = run(TRAIN, &["--synthetic", "/tmp", "--no-synthetic"], &root());
    assert_eq!(out.status.code(), Some(2), "the two flags conflict");
}

#[test]
fn an_unknown_choice_of_weights_is_a_usage_error() {
    let out = run(TRAIN, &["--keep", "average:0"], &root());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("average:N with N >= 1") && !err.contains("panicked"), "{err}");
    // A treble cut needs a probability and a cut in dB.
    for bad in ["1.5,20", "0.5,-3", "0.5"] {
        let out = run(TRAIN, &["--treble-cut", bad], &root());
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--treble-cut") && !err.contains("panicked"), "{err}");
    }
    let out = run(TRAIN, &["--speed", "1.2,0.9"], &root());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need finite MIN <= MAX"));
    // Label smoothing is a share of the target, below 1; refused before any data is read.
    let out = run(TRAIN, &["--label-smoothing", "1", "--data", "/nonexistent"], &root());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--label-smoothing must be in [0, 1)") && !err.contains("panicked"), "{err}");
    // Condition weights name conditions with weights of 0 or more, and dropout lies in [0, 1).
    for (flag, bad, says) in [
        ("--condition-weights", "loud=2", "unknown condition"),
        ("--condition-weights", "babble=-1", "babble's weight"),
        ("--condition-weights", "babble", "NAME=W"),
        ("--dropout", "1", "dropout must lie in [0, 1)"),
    ] {
        let out = run(TRAIN, &[flag, bad], &root());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {bad}: {err}");
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
    }
    // Good values parse (the data is then missing: a clear error, not a panic).
    for args in [&["--condition-weights", "babble=2,clip=1.5"][..], &["--head", "ctc", "--dropout", "0.2"]] {
        let mut args = args.to_vec();
        args.extend(["--data", "/nonexistent"]);
        let out = run(TRAIN, &args, &root());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn loso_scores_every_speaker_and_writes_the_metrics_where_asked() {
    // One quick epoch of the original recipe per fold: the folds, the file names and the
    // figures' consistency, not the accuracy.
    let dir = temp_dir("loso");
    let metrics = dir.join("folds.metrics.json");
    let out = run(
        TRAIN,
        &[
            "--quiet",
            "--recipe",
            "original",
            "--epochs",
            "1",
            "--augmented-copies",
            "0",
            "--split",
            "loso",
            "--device",
            "cpu",
            "--out",
            metrics.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&metrics).unwrap()).unwrap();
    let folds = report["folds"].as_array().unwrap();
    let speakers: Vec<&str> = folds.iter().map(|f| f["speaker"].as_str().unwrap()).collect();
    assert_eq!(speakers, ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]);
    let accuracies: Vec<f64> = folds.iter().map(|f| f["accuracy"].as_f64().unwrap()).collect();
    let mean = accuracies.iter().sum::<f64>() / 6.0;
    assert!((report["mean_accuracy"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(accuracies.iter().all(|a| (0.1..=1.0).contains(a)), "{accuracies:?}");
    for f in folds {
        // Each speaker's 500 recordings less the hold-out files, all of them tested.
        let total = f["total"].as_u64().unwrap();
        assert!((490..=500).contains(&total), "{f}");
        // Its one epoch, the one kept, recorded with the held-out speaker's accuracy.
        let history = f["history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "{f}");
        assert_eq!(history[0]["test_accuracy"], f["accuracy"], "{f}");
    }
    for picture in ["folds.speakers.png", "folds.confusion.png"] {
        assert!(png_size(&dir.join(picture)).0 > 100, "{picture}");
    }
    assert!(stdout(&out).contains("mean"), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One quick epoch with theo held out, on the CPU, written to `out`; `extra` adds flags.
fn train_one_epoch_on_theo(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--quiet", "--epochs", "1", "--split", "speaker:theo", "--device", "cpu"];
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(TRAIN, &args, &root())
}

#[test]
fn log_mel_flag_chooses_the_feature_map_and_its_rows() {
    // --log-mel false on the robust recipe gives the original's 13 MFCCs, --log-mel true on the
    // original recipe one row per mel band; the config beside the weights records which, and
    // predict-file reads each with its own front end.
    let dir = temp_dir("front-end");
    for (recipe, log_mel, rows) in [("robust", false, 13), ("original", true, 23)] {
        let m = dir.join(format!("{recipe}.safetensors"));
        let log_mel_flag = log_mel.to_string();
        let extra =
            ["--recipe", recipe, "--log-mel", &log_mel_flag, "--no-synthetic", "--augmented-copies", "0"];
        let out = train_one_epoch_on_theo(&m, &extra);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(m.with_extension("json")).unwrap()).unwrap();
        let features = &config["features"];
        assert_eq!(features["n_mfcc"], rows, "{config}");
        assert_eq!(features["log_mel"].as_bool().unwrap_or(false), log_mel, "{config}");
        let out = run(PREDICT, &["--model", m.to_str().unwrap(), "--format", "json"], &root());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout(&out).lines().filter(|l| l.contains("\"digit\"")).count(), 10);
    }
    // A log-mel map has one row per band: refused before any data is read.
    let out = run(TRAIN, &["--log-mel", "true", "--n-mfcc", "13", "--data", "/nonexistent"], &root());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log_mel needs n_mfcc equal to n_mels") && !err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_reproducible_with_a_seed_and_refuses_bad_splits() {
    let dir = temp_dir("seed");
    let go = |name: &str| {
        let m = dir.join(name);
        let out = train_one_epoch_on_theo(&m, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(&m).unwrap()
    };
    assert_eq!(go("a.safetensors"), go("b.safetensors"));
    let out = run(TRAIN, &["--split", "speaker:nobody"], &root());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no speaker 'nobody'"));
    // A front end too small for the network's poolings is refused before training, not a
    // libtorch exception.
    let out = run(
        TRAIN,
        &["--recipe", "original", "--n-mfcc", "4", "--out", "/nonexistent/m.safetensors"],
        &root(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs at least 8 coefficients") && !err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn symlink_loops_and_non_utf8_names_do_not_stop_a_folder_run() {
    use std::os::unix::ffi::OsStrExt;
    let dir = temp_dir("loops");
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::os::unix::fs::symlink(&dir, sub.join("back-to-top")).unwrap();
    std::fs::copy(recordings().join("4_theo_0.wav"), sub.join("4_theo_0.wav")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"5_caf\xe9_0.wav");
    std::fs::copy(recordings().join("5_theo_0.wav"), sub.join(odd)).unwrap();
    let out = run(PREDICT, &["--format", "json", dir.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["digit"].is_u64()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_during_training_saves_the_best_weights_marked_interrupted() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("interrupt");
    let model = dir.join("m.safetensors");
    let mut child = Command::new(TRAIN)
        .args(["--epochs", "200", "--device", "cpu", "--out", model.to_str().unwrap()])
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first finished epoch (one plain line per epoch when not on a terminal).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().trim_start().starts_with("epoch") {
            break;
        }
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["interrupted"], serde_json::Value::Bool(true));
    assert!(metrics["best_epoch"].as_u64().unwrap() >= 1);
    assert!(model.is_file() && dir.join("m.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn analyze_draws_one_picture_per_file_and_reports_bad_ones() {
    let dir = temp_dir("analyze");
    let good = recordings().join("7_jackson_3.wav");
    std::fs::write(dir.join("junk.wav"), b"not a wav").unwrap();
    let out_dir = dir.join("pictures");
    let out = run(
        ANALYZE,
        &[
            good.to_str().unwrap(),
            dir.join("junk.wav").to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("7_jackson_3.wav  7 ") && lines[0].contains("7_jackson_3.analysis.png"),
        "{text}"
    );
    // The string model's reading, with the word's span inside the recording (0.434 s).
    let span = lines[0].split("digits 7 (7 ").nth(1).and_then(|rest| rest.split(')').next());
    let (start, end) = span.and_then(|s| s.split_once('-')).expect(&text);
    let (start, end): (f64, f64) = (start.parse().unwrap(), end.parse().unwrap());
    assert!(0.0 <= start && start < end && end <= 0.44, "{text}");
    assert!(lines[1].contains("junk.wav") && lines[1].contains("error:"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in piped output: {text:?}");
    assert_eq!(png_size(&out_dir.join("7_jackson_3.analysis.png")), spoken_digits_report::ANALYSIS_SIZE);
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn colours_only_on_request_and_never_with_no_color() {
    let file = recordings().join("3_theo_0.wav");
    let args = [file.to_str().unwrap()];
    let forced =
        Command::new(PREDICT).args(args).env("CLICOLOR_FORCE", "1").env_remove("NO_COLOR").output().unwrap();
    assert!(stdout(&forced).contains("\x1b[32mok"), "{:?}", stdout(&forced));
    let plain =
        Command::new(PREDICT).args(args).env("CLICOLOR_FORCE", "1").env("NO_COLOR", "1").output().unwrap();
    assert!(plain.status.success());
    assert!(!stdout(&plain).contains('\x1b') && stdout(&plain).contains("  ok"), "{:?}", stdout(&plain));
}

#[test]
fn quiet_and_verbose_are_accepted_everywhere_and_rust_log_is_honoured() {
    let file = recordings().join("3_theo_0.wav");
    let f = file.to_str().unwrap();
    let quiet = run(PREDICT, &["-q", f], &root());
    assert!(quiet.status.success());
    assert_eq!(stdout(&quiet).lines().count(), 1, "{}", stdout(&quiet));
    let verbose = run(PREDICT, &["-v", f], &root());
    assert!(
        String::from_utf8_lossy(&verbose.stderr).contains("INFO"),
        "{}",
        String::from_utf8_lossy(&verbose.stderr)
    );
    let logged = Command::new(PREDICT).arg(f).env("RUST_LOG", "debug").output().unwrap();
    assert!(String::from_utf8_lossy(&logged.stderr).contains("DEBUG"));
    for bin in [PREDICT, TRAIN, ANALYZE, EVALUATE] {
        let help = stdout(&run(bin, &["--help"], &root()));
        assert!(help.contains("--quiet") && help.contains("--verbose"), "{bin}: {help}");
        assert_eq!(run(bin, &["-q", "-v", "x"], &root()).status.code(), Some(2), "{bin}: -q and -v together");
    }
}

/// Runs `bin` (a copy outside the repository) in `dir` with the repository hidden
/// (`SPOKEN_DIGITS_ROOT` is `dir`, which has no models/): the defaults must come from inside it.
fn run_installed(bin: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(bin).args(args).current_dir(dir).env("SPOKEN_DIGITS_ROOT", dir).output().unwrap()
}

#[test]
fn installed_binary_uses_the_built_in_model_without_the_repository() {
    // A copy of the binary in a folder with no models/, and the repository it was built from
    // hidden: the default model must come from inside the binary, and predict as the file does.
    let dir = temp_dir("installed");
    let bin = dir.join("predict-file");
    std::fs::copy(PREDICT, &bin).unwrap();
    let wav = dir.join("9_lucas_2.wav");
    std::fs::copy(recordings().join("9_lucas_2.wav"), &wav).unwrap();
    let out = run_installed(&bin, &["--format", "json", "-v", "9_lucas_2.wav"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("built-in model"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_file = run(
        PREDICT,
        &[
            "--format",
            "json",
            "--model",
            root().join("models/digits.safetensors").to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
        &root(),
    );
    let probs = |o: &Output| {
        let v: serde_json::Value = serde_json::from_str(stdout(o).trim()).unwrap();
        v["probabilities"].clone()
    };
    assert_eq!(probs(&out), probs(&from_file));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shared libraries `ldd` says a binary loads.
fn loaded_libraries(bin: &str) -> String {
    let out = Command::new("ldd").arg(bin).output().expect("ldd (libc-bin) runs");
    assert!(out.status.success(), "ldd {bin}: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

#[test]
fn prediction_binaries_do_not_load_libtorch() {
    // Loading libtorch costs ~0.45 s per process; prediction uses the pure-Rust forward pass.
    let check_mic = env!("CARGO_BIN_EXE_check-mic");
    let listen = env!("CARGO_BIN_EXE_listen");
    for bin in [PREDICT, EVALUATE, ANALYZE, listen, check_mic] {
        let libs = loaded_libraries(bin);
        assert!(!libs.contains("libtorch"), "{bin} loads libtorch:\n{libs}");
    }
    // The check itself works: train does need it.
    assert!(loaded_libraries(TRAIN).contains("libtorch_cpu"));
}

#[test]
fn extra_data_is_trained_on_and_never_tested_on() {
    use spoken_digits::dataset;
    let dir = temp_dir("extra");
    let extra = dir.join("voice");
    std::fs::create_dir_all(&extra).unwrap();
    // Ten takes under a new speaker's name (the hold-out recordings, in no split), and two files
    // whose names do not parse.
    let holdout_dir = root().join("free-spoken-digit-dataset/inference_audio");
    for entry in std::fs::read_dir(&holdout_dir).unwrap() {
        let path = entry.unwrap().path();
        let digit = dataset::label_from_name(&path).unwrap();
        std::fs::copy(&path, extra.join(format!("{digit}_newvoice_0.wav"))).unwrap();
    }
    std::fs::write(extra.join("notes.txt"), "x").unwrap();
    std::fs::write(extra.join("take one.wav"), "x").unwrap();
    let model = dir.join("m.safetensors");
    // FSDD and this folder only (--no-synthetic), so that the sizes below are exact.
    let args = [
        "--quiet",
        "--epochs",
        "1",
        "--augmented-copies",
        "0",
        "--split",
        "speaker:theo",
        "--device",
        "cpu",
        "--no-synthetic",
    ];
    let out = run(
        TRAIN,
        &[&args[..], &["--extra-data", extra.to_str().unwrap(), "--out", model.to_str().unwrap()]].concat(),
        &root(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("ignored 2 file(s)").count(), 1, "{err}");
    // The same split without the extra data, from the library.
    let holdout = dataset::read_holdout(&root().join("free-spoken-digit-dataset/holdout.txt")).unwrap();
    let fsdd = dataset::scan(&recordings(), &holdout).unwrap().recordings;
    let plain = dataset::split(&fsdd, &"speaker:theo".parse().unwrap(), 0.1, 42).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["train_size"].as_u64(), Some(plain.train.len() as u64 + 10));
    assert_eq!(metrics["val_size"].as_u64(), Some(plain.val.len() as u64));
    assert_eq!(metrics["test_size"].as_u64(), Some(plain.test.len() as u64));
    let recorded = &metrics["config"]["extra_data"];
    assert_eq!(recorded.as_array().unwrap().len(), 1, "{recorded}");
    assert_eq!(recorded[0]["recordings"].as_u64(), Some(10));
    assert_eq!(Path::new(recorded[0]["dir"].as_str().unwrap()), std::fs::canonicalize(&extra).unwrap());
    // The FSDD folder itself is refused as extra data: its test recordings would be trained on.
    let out = run(TRAIN, &[&args[..], &["--extra-data", recordings().to_str().unwrap()]].concat(), &root());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the --data folder"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluate_by_condition_gives_one_row_per_condition() {
    // theo's 499 recordings (one is in the hold-out folder) under every condition of the suite: the table's rows in order, the
    // clean row equal to the plain evaluation of the same split, the JSON with the same figures.
    let args = ["--split", "speaker:theo", "--condition", "all"];
    let table = run(EVALUATE, &args, &root());
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let text = stdout(&table);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("condition"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        names,
        ["clean", "long", "click", "hum", "dc", "pink", "babble", "reverb", "clip", "phone", "quiet"],
        "{text}"
    );
    for r in &rows {
        // theo's 500 less the one in the hold-out folder.
        assert!(r[2].ends_with("/499"), "{text}");
        let accuracy: f64 = r[1].trim_end_matches('%').parse().unwrap();
        assert!((0.0..=100.0).contains(&accuracy), "{text}");
    }
    let plain = stdout(&run(EVALUATE, &["--split", "speaker:theo", "-q"], &root()));
    let clean = plain.lines().next().unwrap();
    assert!(clean.contains(&format!("({})", rows[0][2])), "{clean} vs {text}");
    // The conditions change what the model hears: not every row can equal the clean one.
    assert!(rows.iter().any(|r| r[2] != rows[0][2]), "{text}");

    let json = run(
        EVALUATE,
        &["--split", "speaker:theo", "--condition", "click,hum", "--condition", "click", "--json"],
        &root(),
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let list = value.as_array().unwrap();
    let got: Vec<(&str, u64)> =
        list.iter().map(|v| (v["condition"].as_str().unwrap(), v["correct"].as_u64().unwrap())).collect();
    let expected: Vec<(&str, u64)> = ["clean", "click", "hum"]
        .iter()
        .map(|n| {
            let row = rows.iter().find(|r| r[0] == *n).unwrap();
            (*n, row[2].split('/').next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(got, expected);

    let bad = run(EVALUATE, &["--condition", "loud"], &root());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown condition 'loud'"));
}

/// `--second-opinion W` (measured, not the default): the classifier with the string models'
/// opinion of each word. On the official split words under babble read better with weight 0.3
/// (measured BOTH against ALONE of 300); weight 0 is the classifier alone; the shipped string
/// models are refused beside another model, as they heard every FSDD speaker.
#[test]
fn evaluate_measures_the_string_models_second_opinion() {
    let correct = |args: &[&str]| -> Vec<u64> {
        let out = run(EVALUATE, &[args, &["--condition", "babble", "--json"]].concat(), &root());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        value.as_array().unwrap().iter().map(|v| v["correct"].as_u64().unwrap()).collect()
    };
    let (alone, both) = (correct(&[]), correct(&["--second-opinion", "0.3"]));
    assert_eq!((alone[0], both[0]), (300, 300), "clean: {alone:?} {both:?}");
    assert!(both[1] > alone[1], "words under babble: {both:?} with the string models, {alone:?} alone");
    assert_eq!(correct(&["--second-opinion", "0"]), alone);
    let out = run(EVALUATE, &["-m", "models/digits.safetensors", "--second-opinion", "0.3"], &root());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs --strings") && err.lines().count() == 1, "{err}");
}

#[test]
fn predict_file_warns_when_a_file_holds_two_words() {
    // The shipped weights with the word finder on (a config beside a copy), and a file of two
    // FSDD words a second apart: predict-file reads the louder and says there were two.
    let dir = temp_dir("two-words");
    std::fs::copy(root().join("models/digits.safetensors"), dir.join("m.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("models/digits.json")).unwrap()).unwrap();
    config["features"]["find_word"] = serde_json::Value::Bool(true);
    std::fs::write(dir.join("m.json"), config.to_string()).unwrap();
    let read = |name: &str| spoken_digits::audio::load(&recordings().join(name), 8000, 60.0).unwrap();
    let (three, seven) = (read("3_theo_1.wav"), read("7_theo_2.wav"));
    let mut both: Vec<f32> = three.iter().map(|s| s * 0.5).collect();
    both.extend(std::iter::repeat_n(0.0, 8000));
    both.extend(&seven);
    spoken_digits::audio::write_wav(&dir.join("7_two.wav"), &both, 8000).unwrap();
    spoken_digits::audio::write_wav(&dir.join("7_one.wav"), &seven, 8000).unwrap();
    let out = run(PREDICT, &["--model", "m.safetensors", "7_two.wav", "7_one.wav"], &dir);
    let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{text}{err}");
    assert!(text.contains("accuracy on labelled files: 2/2"), "{text}");
    assert!(err.contains("7_two.wav: 2 separate speech regions"), "{err}");
    assert!(!err.contains("7_one.wav"), "{err}");
}

#[test]
fn the_string_models_read_together_by_default_and_one_alone_on_request() {
    // "3 7 1" said by theo, his recordings joined end to end: the shipped string models read it whole; the
    // default is the three of them together, the same as naming them; the installed binary
    // without the repository reads with its built-in copies of all three.
    let dir = temp_dir("string-models");
    let read = |name: &str| spoken_digits::audio::load(&recordings().join(name), 8000, 60.0).unwrap();
    let mut string = vec![];
    for name in ["3_theo_1.wav", "7_theo_2.wav", "1_theo_3.wav"] {
        string.extend(read(name));
    }
    spoken_digits::audio::write_wav(&dir.join("371.wav"), &string, 8000).unwrap();
    let digits = |o: &Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout(o).trim()).unwrap();
        v["digits"].clone()
    };
    let models = ["strings.safetensors", "strings-2.safetensors", "strings-3.safetensors"]
        .map(|m| root().join("models").join(m).display().to_string());
    let default = run(PREDICT, &["--format", "json", "371.wav"], &dir);
    assert_eq!(digits(&default), "371");
    let named = run(PREDICT, &["--format", "json", "--strings", &models.join(","), "371.wav"], &dir);
    assert_eq!(digits(&named), digits(&default));
    let one = run(PREDICT, &["--format", "json", "--strings", &models[0], "371.wav"], &dir);
    assert!(digits(&one).is_string(), "{}", stdout(&one));
    let bin = dir.join("predict-file");
    std::fs::copy(PREDICT, &bin).unwrap();
    let installed = run_installed(&bin, &["--format", "json", "-v", "371.wav"], &dir);
    let err = String::from_utf8_lossy(&installed.stderr).into_owned();
    assert!(err.contains("built-in copy of models/strings-3.safetensors"), "{err}");
    assert_eq!(digits(&installed), digits(&default));
    // A classifier named as a string model: one clear line.
    let bad = run(
        PREDICT,
        &[
            "--strings",
            &format!("{},{}", models[0], root().join("models/digits.safetensors").display()),
            "371.wav",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(!bad.status.success() && err.contains("not a string model") && err.lines().count() == 1, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_string_model_trains_on_every_core_by_default_and_records_it() {
    // Two steps of four strings: the files, the report's steps and the libtorch threads it
    // trained with (every core by default for --head ctc, whose string worker needs a tenth of
    // one; --torch-threads overrides).
    let dir = temp_dir("strings-threads");
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    for (extra, threads) in [(&[][..], cores), (&["--torch-threads", "1"][..], 1)] {
        let out_path = dir.join("s.safetensors");
        let mut args = vec!["--head", "ctc", "--steps", "2", "--batch-size", "4", "-q", "--out"];
        args.push(out_path.to_str().unwrap());
        args.extend(extra);
        let out = run(TRAIN, &args, &root());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("s.metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics["steps_done"], 2);
        assert_eq!(metrics["machine"]["torch_threads"].as_u64(), Some(threads), "{extra:?}");
        assert!(dir.join("s.json").is_file());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
