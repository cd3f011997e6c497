//! The pictures: each is a PNG of its documented pixel size, drawn from a real training report
//! (the shipped model's metrics), a synthetic leave-one-speaker-out report, and a synthetic
//! recording. Set `SPOKEN_DIGITS_KEEP_PLOTS=<dir>` to keep them (one sub-folder per test) for a look.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use spoken_digits::analysis::Analysis;
use spoken_digits::metrics::Scores;
use spoken_digits::train::{FoldResult, LosoReport, Recipe, TrainConfig, TrainReport};
use spoken_digits::{FeatureConfig, NUM_CLASSES};
use spoken_digits_report as plot;
use std::path::{Path, PathBuf};

fn out_dir(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SPOKEN_DIGITS_KEEP_PLOTS") {
        Some(d) => PathBuf::from(d).join(name),
        None => std::env::temp_dir().join(format!("spoken-digits-plots-{name}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn training_report_gives_confusion_and_curves_of_the_right_size() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("models/digits.metrics.json")).unwrap();
    let report: TrainReport = serde_json::from_str(&text).unwrap();
    let dir = out_dir("train");
    let written = plot::train_plots(&report, &dir.join("digits.metrics.json")).unwrap();
    assert_eq!(written, vec![dir.join("digits.confusion.png"), dir.join("digits.curves.png")]);
    assert_eq!(png_size(&written[0]), plot::CONFUSION_SIZE);
    assert_eq!(png_size(&written[1]), plot::CURVES_SIZE);
    // Atomic writes leave no temp file.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn loso_report_gives_a_speaker_chart_and_pooled_confusion() {
    let fold = |speaker: &str, correct: usize| FoldResult {
        speaker: speaker.into(),
        correct,
        total: 500,
        accuracy: correct as f64 / 500.0,
        best_epoch: 10,
        history: vec![],
        seconds: 1.0,
    };
    let folds = vec![fold("george", 470), fold("jackson", 455), fold("lucas", 430), fold("theo", 488)];
    let pairs = (0..1843u32)
        .map(|i| ((i % 10) as u8, if i % 13 == 0 { ((i + 3) % 10) as u8 } else { (i % 10) as u8 }));
    let accuracies: Vec<f64> = folds.iter().map(|f| f.accuracy).collect();
    let report = LosoReport {
        config: TrainConfig::recipe(Recipe::Original),
        mean_accuracy: accuracies.iter().sum::<f64>() / 4.0,
        min_accuracy: accuracies.iter().copied().fold(1.0, f64::min),
        folds,
        pooled: Scores::from_pairs(pairs),
        interrupted: false,
        seconds: 4.0,
        machine: None,
    };
    let dir = out_dir("loso");
    let written = plot::loso_plots(&report, &dir.join("loso-original.metrics.json")).unwrap();
    assert_eq!(
        written,
        vec![dir.join("loso-original.speakers.png"), dir.join("loso-original.confusion.png")]
    );
    assert_eq!(png_size(&written[0]), plot::SPEAKERS_SIZE);
    assert_eq!(png_size(&written[1]), plot::CONFUSION_SIZE);
}

#[test]
fn analysis_picture_has_the_right_size_with_and_without_a_model() {
    // 0.2 s silence, 0.4 s of a gliding tone with a little noise, 0.3 s silence, at 8 kHz.
    let mut x = vec![0.0f32; 1600];
    let mut phase = 0.0f32;
    for i in 0..3200 {
        phase += 2.0 * std::f32::consts::PI * (300.0 + i as f32 * 0.5) / 8000.0;
        x.push(0.4 * phase.sin() + 0.01 * ((i * 7919 % 101) as f32 / 50.0 - 1.0));
    }
    x.extend(vec![0.0f32; 2400]);
    let dir = out_dir("analysis");
    let log_mel =
        FeatureConfig { n_mfcc: 23, log_mel: true, trim_db: Some(40.0), ..FeatureConfig::default() };
    for (name, config) in
        [("plain", FeatureConfig::default()), ("robust", FeatureConfig::robust()), ("log-mel", log_mel)]
    {
        let mut a = Analysis::new(format!("glide ({name} front end)"), x.clone(), &config).unwrap();
        let path = dir.join(format!("glide-{name}.analysis.png"));
        plot::analysis(&path, &a).unwrap();
        assert_eq!(png_size(&path), plot::ANALYSIS_SIZE);
        let mut p = [0.01f32; NUM_CLASSES];
        p[7] = 0.91;
        a.probabilities = Some(p);
        plot::analysis(&path, &a).unwrap();
        assert_eq!(png_size(&path), plot::ANALYSIS_SIZE);
    }
}
