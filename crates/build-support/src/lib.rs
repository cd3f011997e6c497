//! Build-script helpers shared by the workspace's crates.
//!
//! - [`torch_rpath`]: tch links libtorch but leaves finding it at run time to the user
//!   (`LD_LIBRARY_PATH`). We embed an rpath instead, so `cargo run`, `cargo test` and installed
//!   binaries work with no environment set by hand. The rpath points at the *real* folder of
//!   `libtorch_cpu.so` (links resolved): libtorch's own `$ORIGIN`-relative RPATH, which finds the
//!   CUDA runtime stubs of the PyPI wheel, only works when the library is loaded from its real
//!   location.
//! - [`test_gates`]: some tests need what a clone does not carry (the original project's weights,
//!   which have no licence to redistribute, and a virtual microphone). Rust's test harness cannot
//!   skip a test at run time, so the build script looks for them and sets a `cfg` that the tests
//!   turn into `#[ignore = "why"]`: `cargo test` then lists each such test as ignored with its
//!   reason and counts it in the summary, instead of passing it silently.

use std::path::{Path, PathBuf};

/// Emits `cargo:rustc-link-arg=-Wl,-rpath,<dir>` for the libtorch named by `LIBTORCH`, and its
/// version as the compile-time variable `SPOKEN_DIGITS_LIBTORCH_VERSION` (for the metrics).
pub fn torch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup first");
        println!("cargo:rustc-env=SPOKEN_DIGITS_LIBTORCH_VERSION=unknown");
        return;
    };
    let libtorch = PathBuf::from(libtorch);
    println!("cargo:rustc-env=SPOKEN_DIGITS_LIBTORCH_VERSION={}", libtorch_version(&libtorch));
    let lib = libtorch.join("lib");
    let mut dirs = vec![lib.clone()];
    // The real folder of the CPU library, where its own dependencies sit beside it.
    if let Ok(real) = std::fs::canonicalize(lib.join("libtorch_cpu.so"))
        && let Some(parent) = real.parent()
    {
        dirs.insert(0, parent.to_path_buf());
    }
    for dir in dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}

/// The version of a libtorch folder: `build-version` in an official libtorch archive, or the
/// `__version__` of the PyPI wheel whose `include/` it links to (as `scripts/setup` makes it).
fn libtorch_version(libtorch: &Path) -> String {
    if let Ok(v) = std::fs::read_to_string(libtorch.join("build-version")) {
        return v.trim().to_string();
    }
    let wheel =
        std::fs::canonicalize(libtorch.join("include")).ok().and_then(|i| i.parent().map(Path::to_path_buf));
    let text = wheel.and_then(|w| std::fs::read_to_string(w.join("version.py")).ok()).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("__version__"))
        .and_then(|rest| rest.split(['\'', '"']).nth(1))
        .unwrap_or("unknown")
        .to_string()
}

/// The folder of the original project's golden values and weights: `SPOKEN_DIGITS_REFERENCE`, or
/// `../shared/reference` beside the repository. The tests look in the same place.
pub fn reference_dir(repository: &Path) -> PathBuf {
    std::env::var_os("SPOKEN_DIGITS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository.join("../shared/reference"))
}

/// Sets `cfg(has_reference_weights)` when the original project's weights are there, and
/// `cfg(has_virtual_mic)` when `SPOKEN_DIGITS_VIRTUAL_MIC` names the virtual-microphone script.
///
/// Looked up when the build script runs: on the first build, and again whenever either variable
/// changes (so `SPOKEN_DIGITS_REFERENCE=<folder> cargo test` picks up weights that appeared later).
pub fn test_gates() {
    println!("cargo:rerun-if-env-changed=SPOKEN_DIGITS_REFERENCE");
    println!("cargo:rerun-if-env-changed=SPOKEN_DIGITS_VIRTUAL_MIC");
    println!("cargo::rustc-check-cfg=cfg(has_reference_weights)");
    println!("cargo::rustc-check-cfg=cfg(has_virtual_mic)");
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") else { return };
    let repository = PathBuf::from(manifest).join("../..");
    if reference_dir(&repository).join("seed_cnn.safetensors").is_file() {
        println!("cargo:rustc-cfg=has_reference_weights");
    }
    // Set but wrong is the user's intent to run them: the tests then fail saying what is wrong.
    if std::env::var_os("SPOKEN_DIGITS_VIRTUAL_MIC").is_some() {
        println!("cargo:rustc-cfg=has_virtual_mic");
    }
}
