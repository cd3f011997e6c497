//! Paths and golden values shared by the integration tests. Missing data fails the test with a
//! message saying how to get it; nothing is skipped silently.
#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The FSDD recordings copied by scripts/setup.
pub fn recordings() -> PathBuf {
    let dir = root().join("free-spoken-digit-dataset/recordings");
    assert!(dir.join("0_george_0.wav").is_file(), "{} is missing: run scripts/setup first", dir.display());
    dir
}

/// The original project's golden values and weights: $SPOKEN_DIGITS_REFERENCE, or
/// `../shared/reference` beside the repository. Tests that need it are `#[ignore]`d when the
/// build script did not find it (`cfg(has_reference_weights)`); run on their own, they fail here.
pub fn reference() -> PathBuf {
    let dir = std::env::var_os("SPOKEN_DIGITS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference"));
    assert!(
        dir.join("mfcc_reference.json").is_file() && dir.join("seed_cnn.safetensors").is_file(),
        "the original project's reference data is not in {}; set SPOKEN_DIGITS_REFERENCE to the folder \
         holding mfcc_reference.json and seed_cnn.safetensors",
        dir.display()
    );
    dir
}

/// One golden recording: torchaudio's MFCCs of it (`tests/data/torchaudio_mfcc.json`).
#[derive(serde::Deserialize)]
pub struct Item {
    pub file: String,
    pub samples: usize,
    pub mfcc: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// The 26 golden recordings, committed with the tests.
pub fn items() -> Vec<Item> {
    let path = root().join("crates/core/tests/data/torchaudio_mfcc.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: Items<Item> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.items.len(), 26);
    r.items
}

#[derive(serde::Deserialize)]
struct Logits {
    file: String,
    logits: Vec<f32>,
}

/// The original model's logits on each golden recording's MFCCs, in the order of [`items`]
/// (from the reference folder: they are the original weights at work).
pub fn reference_logits() -> Vec<Vec<f32>> {
    let path = reference().join("mfcc_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: Items<Logits> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let items = items();
    assert_eq!(r.items.len(), items.len());
    r.items
        .into_iter()
        .zip(&items)
        .map(|(l, i)| {
            assert_eq!(l.file, i.file, "the reference and the committed golden values list other files");
            l.logits
        })
        .collect()
}

/// The ten hold-out recordings copied by scripts/setup, one per digit, sorted.
pub fn holdout() -> Vec<PathBuf> {
    let dir = root().join("free-spoken-digit-dataset/inference_audio");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup first", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "{} should hold 10 wavs: run scripts/setup", dir.display());
    files
}

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spoken-digits-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

mod ffmpeg;
#[allow(unused_imports)] // Not every test crate that shares this module encodes.
pub use ffmpeg::ffmpeg;
