//! Helpers shared by the end-to-end tests of the binaries.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spoken-digits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The original project's weights (`../shared/reference`, or `SPOKEN_DIGITS_REFERENCE`).
pub fn reference_weights() -> PathBuf {
    let dir = std::env::var_os("SPOKEN_DIGITS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference"));
    let path = dir.join("seed_cnn.safetensors");
    assert!(
        path.is_file(),
        "{} not found; set SPOKEN_DIGITS_REFERENCE to the folder holding it",
        path.display()
    );
    path
}

#[path = "../../../core/tests/common/ffmpeg.rs"]
mod ffmpeg;
#[allow(unused_imports)] // Not every test crate that shares this module encodes.
pub use ffmpeg::ffmpeg;
