//! Paths shared by the integration tests. Missing data fails the test with a message saying how
//! to get it; nothing is skipped silently.
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

/// Golden values from the original Python pipeline: $SPOKEN_DIGITS_REFERENCE, or
/// `../shared/reference` beside the repository.
pub fn reference() -> PathBuf {
    let dir = std::env::var_os("SPOKEN_DIGITS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference"));
    assert!(
        dir.join("mfcc_reference.json").is_file(),
        "golden reference data not found in {}; set SPOKEN_DIGITS_REFERENCE to the folder holding \
         mfcc_reference.json and seed_cnn.safetensors",
        dir.display()
    );
    dir
}

#[derive(serde::Deserialize)]
pub struct Item {
    pub file: String,
    pub samples: usize,
    pub mfcc: Vec<Vec<f32>>,
    pub logits: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<Item>,
}

/// The 26 reference items.
pub fn items() -> Vec<Item> {
    let text = std::fs::read_to_string(reference().join("mfcc_reference.json")).unwrap();
    let r: Reference = serde_json::from_str(&text).unwrap();
    assert_eq!(r.items.len(), 26);
    r.items
}
