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

/// Encodes `src` into `dst` with ffmpeg (`args` between input and output). Audio files are
/// never committed: the format tests make them here. A missing ffmpeg fails the test.
pub fn ffmpeg(src: &std::path::Path, dst: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args(args)
        .arg(dst)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): run scripts/setup, which installs it"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?} {}: {}",
        dst.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
