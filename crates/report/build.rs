//! Embeds the font the plots are labelled with.
//!
//! Plots must render text on a headless machine with no fontconfig, and from a binary installed
//! anywhere, so the font is compiled in: DejaVu Sans from the system (Debian's
//! `fonts-dejavu-core`, which `scripts/setup` installs), or `SPOKEN_DIGITS_FONT=<file.ttf>`.
//! No font file is kept in the repository. Without a font the crate still builds (so does every
//! binary), with a warning, and drawing a plot returns an error saying how to get one.

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
    println!("cargo:rerun-if-env-changed=SPOKEN_DIGITS_FONT");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?).join("plot-font.ttf");
    let font = match std::env::var_os("SPOKEN_DIGITS_FONT") {
        Some(p) => PathBuf::from(p),
        None => match CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()) {
            Some(found) => found,
            None => {
                // Looked for again when a candidate appears.
                for candidate in CANDIDATES {
                    if let Some(dir) = Path::new(candidate).parent().filter(|d| d.is_dir()) {
                        println!("cargo:rerun-if-changed={}", dir.display());
                    }
                }
                println!(
                    "cargo:warning=no DejaVu Sans font found: train and analyze will not draw their plots \
                     (run scripts/setup, which installs fonts-dejavu-core, or set SPOKEN_DIGITS_FONT=<a .ttf file>)"
                );
                return std::fs::write(&out, []).map_err(|e| format!("writing {}: {e}", out.display()));
            }
        },
    };
    println!("cargo:rerun-if-changed={}", font.display());
    copy(&font, &out)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = std::fs::read(from).map_err(|e| format!("reading the plot font {}: {e}", from.display()))?;
    std::fs::write(to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))
}
