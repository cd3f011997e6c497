//! The ffmpeg encoder the format tests make their compressed copies with (shared with the
//! cli's tests).

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
