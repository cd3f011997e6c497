//! Build-script helper shared by the crates that link libtorch.
//!
//! tch links libtorch but leaves finding it at run time to the user (`LD_LIBRARY_PATH`). We embed
//! an rpath instead, so `cargo run`, `cargo test` and installed binaries work with no environment
//! set by hand. The rpath points at the *real* folder of `libtorch_cpu.so` (links resolved):
//! libtorch's own `$ORIGIN`-relative RPATH, which finds the CUDA runtime stubs of the PyPI wheel,
//! only works when the library is loaded from its real location.

use std::path::PathBuf;

/// Emits `cargo:rustc-link-arg=-Wl,-rpath,<dir>` for the libtorch named by `LIBTORCH`.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup first");
        return;
    };
    let lib = PathBuf::from(libtorch).join("lib");
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
