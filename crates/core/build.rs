//! Embeds the font the plots are labelled with.
//!
//! Plots must render text on a headless machine with no fontconfig, and from a binary installed
//! anywhere, so the font is compiled in: DejaVu Sans from the system (Debian's
//! `fonts-dejavu-core`, which `scripts/setup` installs), or `SPOKEN_DIGITS_FONT=<file.ttf>`.
//! No font file is kept in the repository.

use std::path::{Path, PathBuf};

/// Where distributions put DejaVu Sans.
const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/opt/homebrew/share/fonts/DejaVuSans.ttf",
];

fn main() -> Result<(), String> {
    build_support::test_gates();
    println!("cargo:rerun-if-env-changed=SPOKEN_DIGITS_FONT");
    let font = match std::env::var_os("SPOKEN_DIGITS_FONT") {
        Some(p) => PathBuf::from(p),
        None => CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
            "no DejaVu Sans font found for the plots: run scripts/setup (it installs fonts-dejavu-core), \
             or set SPOKEN_DIGITS_FONT=<a .ttf file>"
                .to_string()
        })?,
    };
    println!("cargo:rerun-if-changed={}", font.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?).join("plot-font.ttf");
    copy(&font, &out)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = std::fs::read(from).map_err(|e| format!("reading the plot font {}: {e}", from.display()))?;
    std::fs::write(to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))
}
