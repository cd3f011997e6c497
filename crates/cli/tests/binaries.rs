//! End-to-end runs of the real binaries on real files, in temp folders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn recordings() -> PathBuf {
    let dir = root().join("free-spoken-digit-dataset/recordings");
    assert!(dir.join("0_george_0.wav").is_file(), "run scripts/setup first");
    dir
}

fn reference_weights() -> PathBuf {
    let dir = std::env::var_os("SPOKEN_DIGITS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference"));
    let path = dir.join("seed_cnn.safetensors");
    assert!(path.is_file(), "{} not found; set SPOKEN_DIGITS_REFERENCE", path.display());
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spoken-digits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(bin: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin).args(args).current_dir(cwd).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const PREDICT: &str = env!("CARGO_BIN_EXE_predict-file");
const TRAIN: &str = env!("CARGO_BIN_EXE_train");

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
fn usage_errors_exit_2_and_model_errors_are_clear() {
    let out = run(PREDICT, &["--format", "yaml"], &root());
    assert_eq!(out.status.code(), Some(2));
    let out = run(PREDICT, &["--model", "/nonexistent/m.safetensors"], &root());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model file not found") && !err.contains("panicked"), "{err}");
}

#[test]
fn default_recipe_trains_above_97_percent_and_writes_everything() {
    let dir = temp_dir("train");
    let model = dir.join("m.safetensors");
    let out = run(TRAIN, &["--quiet", "--out", model.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.metrics.json")).unwrap()).unwrap();
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "official-split accuracy {acc}");
    assert_eq!(metrics["test_size"].as_u64(), Some(300));
    assert_eq!(metrics["history"].as_array().unwrap().len(), 10);
    assert_eq!(metrics["test"]["confusion"].as_array().unwrap().len(), 10);
    assert!(dir.join("m.json").is_file());
    // Only the three files: no temp file left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    // The new model predicts through the other binary.
    let pred = run(PREDICT, &["--model", model.to_str().unwrap(), "--quiet"], &root());
    assert!(pred.status.success());
    assert_eq!(stdout(&pred).lines().count(), 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_reproducible_with_a_seed_and_refuses_bad_splits() {
    let dir = temp_dir("seed");
    let go = |name: &str| {
        let m = dir.join(name);
        let out = run(
            TRAIN,
            &[
                "--quiet",
                "--epochs",
                "1",
                "--split",
                "speaker:theo",
                "--device",
                "cpu",
                "--out",
                m.to_str().unwrap(),
            ],
            &root(),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(&m).unwrap()
    };
    assert_eq!(go("a.safetensors"), go("b.safetensors"));
    let out = run(TRAIN, &["--split", "speaker:nobody"], &root());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no speaker 'nobody'"));
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
