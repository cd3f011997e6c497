//! Compressed formats read like the wav they were made from. The copies are encoded here with
//! ffmpeg from the hold-out recordings (no audio is committed); a missing ffmpeg fails the tests
//! with a message saying to run scripts/setup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use spoken_digits::audio::{read_audio, read_audio_bytes, read_wav};
use std::path::{Path, PathBuf};

/// (extension, ffmpeg encoder arguments) of each lossy format under test. MP3 gets 32 kb/s:
/// LAME's default at 8 kHz is 8 kb/s, which no recorder uses.
const LOSSY: &[(&str, &[&str])] = &[
    ("ogg", &["-c:a", "libvorbis"]),
    ("opus", &["-c:a", "libopus"]),
    ("mp3", &["-c:a", "libmp3lame", "-b:a", "32k"]),
    ("m4a", &["-c:a", "aac"]),
    ("webm", &["-c:a", "libopus"]),
];

/// AAC's encoder priming, which ffmpeg writes in the M4A's edit list: symphonia 0.6 does not
/// read edit lists, so these samples stay at the start of what we decode.
const AAC_PRIMING: isize = 1024;

/// Cross-correlation of `a` and `b` (b shifted by the lag) at the best lag within `max_lag`
/// samples, normalised by the energy of the whole signals, so a lag that overlaps little scores
/// little.
fn best_correlation(a: &[f32], b: &[f32], max_lag: isize) -> (f64, isize) {
    let energy = |x: &[f32]| x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
    let norm = (energy(a) * energy(b)).sqrt().max(1e-12);
    let mut best = (f64::MIN, 0);
    for lag in -max_lag..=max_lag {
        let mut ab = 0f64;
        for (i, &x) in a.iter().enumerate() {
            let j = i as isize + lag;
            if j >= 0 && (j as usize) < b.len() {
                ab += f64::from(x) * f64::from(b[j as usize]);
            }
        }
        if ab / norm > best.0 {
            best = (ab / norm, lag);
        }
    }
    best
}

fn encode(dir: &Path, wav: &Path, suffix: &str, ext: &str, args: &[&str]) -> PathBuf {
    let stem = wav.file_stem().unwrap().to_str().unwrap();
    let copy = dir.join(format!("{stem}{suffix}.{ext}"));
    common::ffmpeg(wav, &copy, args);
    copy
}

#[test]
fn flac_gives_the_wavs_samples_exactly_mono_and_stereo_44k() {
    let dir = common::temp_dir("flac");
    for wav in common::holdout() {
        let flac = encode(&dir, &wav, "", "flac", &[]);
        assert_eq!(read_audio(&flac, 10.0).unwrap(), read_wav(&wav, 10.0).unwrap(), "{}", flac.display());
        // Stereo 44.1 kHz: the same samples as ffmpeg's stereo 44.1 kHz wav of the same file.
        let stereo = ["-ac", "2", "-ar", "44100"];
        let flac = encode(&dir, &wav, "-stereo", "flac", &stereo);
        let wav44 = encode(&dir, &wav, "-stereo", "wav", &stereo);
        let clip = read_audio(&flac, 10.0).unwrap();
        assert_eq!(clip.sample_rate, 44100);
        assert_eq!(clip, read_wav(&wav44, 10.0).unwrap(), "{}", flac.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each lossy copy decodes like ffmpeg decodes it (its own decoders, libopus for Opus): the same
/// rate, the waveform correlating above 0.999 at lag 0 (M4A: at the AAC priming, which we keep
/// and ffmpeg drops), and the same length within one codec frame (ffmpeg keeps Vorbis's final
/// padding, which we drop, and drops WebM's, which we keep).
#[test]
fn lossy_copies_decode_like_ffmpeg_decodes_them() {
    let dir = common::temp_dir("lossy");
    let mut worst = f64::MAX;
    for wav in common::holdout() {
        for (ext, args) in LOSSY {
            let copy = encode(&dir, &wav, "", ext, args);
            let ours = read_audio(&copy, 10.0).unwrap_or_else(|e| panic!("{e}"));
            let theirs = read_wav(
                &encode(&dir, &copy, &format!("-{ext}-ffmpeg"), "wav", &["-c:a", "pcm_f32le"]),
                10.0,
            )
            .unwrap();
            let name = copy.display();
            assert_eq!(ours.sample_rate, theirs.sample_rate, "{name}");
            let expected_lag = if *ext == "m4a" { AAC_PRIMING } else { 0 };
            // Over ffmpeg's length: it drops WebM's final padding (DiscardPadding, which
            // symphonia 0.6 does not expose), so ours runs up to a frame longer there.
            let overlap =
                &ours.samples[..ours.samples.len().min(theirs.samples.len() + expected_lag as usize)];
            let (r, lag) = best_correlation(&theirs.samples, overlap, 2 * AAC_PRIMING);
            assert_eq!(lag, expected_lag, "{name}: best lag {lag} (r {r:.5})");
            assert!(r > 0.999, "{name}: correlation {r:.5} with ffmpeg's decoding");
            let extra = ours.samples.len() as isize - theirs.samples.len() as isize - expected_lag;
            let frame = if ours.sample_rate == 48000 { 960 } else { 1024 };
            assert!(
                extra.abs() <= frame,
                "{name}: {} samples against ffmpeg's {}",
                ours.samples.len(),
                theirs.samples.len()
            );
            worst = worst.min(r);
        }
    }
    eprintln!("lowest correlation with ffmpeg's decoding: {worst:.5}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 30 s tone in each format: the containers that declare their length are refused from it
/// (the message gives the whole 30 s, not the 10 s decoded before a stop), WebM (no declared
/// length) once decoding passes the limit.
#[test]
fn long_files_are_refused_from_their_declared_length() {
    let dir = common::temp_dir("long");
    let tone = dir.join("tone.wav");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=30",
            "-ar",
            "8000",
        ])
        .arg(&tone)
        .status()
        .expect("cannot run ffmpeg: run scripts/setup, which installs it");
    assert!(out.success());
    for (ext, args) in [("flac", &[][..])].iter().chain(LOSSY) {
        let copy = encode(&dir, &tone, "", ext, args);
        let err = read_audio(&copy, 10.0).unwrap_err().to_string();
        assert!(err.contains(copy.to_str().unwrap()) && err.contains("above the 10 s limit"), "{err}");
        if *ext == "webm" {
            assert!(err.contains("longer, above"), "{err}");
        } else {
            // The whole length (M4A adds its 1024-sample priming: 30.1 s).
            let seconds: f64 =
                err.split(": ").last().unwrap().split(" s long").next().unwrap().parse().unwrap();
            assert!((30.0..30.2).contains(&seconds), "{err}");
        }
        assert!(read_audio(&copy, 40.0).is_ok(), "{}", copy.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Cut or damaged copies are refused with the file's name, never read as something else.
#[test]
fn truncated_and_damaged_copies_are_refused_naming_the_file() {
    let dir = common::temp_dir("damaged");
    let wav = &common::holdout()[0];
    for (ext, args) in [("flac", &[][..])].iter().chain(LOSSY) {
        let bytes = std::fs::read(encode(&dir, wav, "", ext, args)).unwrap();
        let name = PathBuf::from(format!("copy.{ext}"));
        let refused = |what: &str, bytes: &[u8]| {
            let err = read_audio_bytes(&name, bytes, 10.0).map(|c| c.samples.len()).unwrap_err().to_string();
            assert!(err.starts_with(&format!("copy.{ext}: not a usable audio file: ")), "{what}: {err}");
            eprintln!("{what}: {err}");
        };
        refused("half", &bytes[..bytes.len() / 2]);
        refused("empty", &[]);
        refused("header only", &bytes[..32.min(bytes.len())]);
        let mut garbled = bytes.clone();
        garbled[..16].iter_mut().for_each(|b| *b ^= 0xa5);
        if *ext == "mp3" {
            // MP3 is a run of self-synchronising frames: the reader skips to the next good one.
            let clip = read_audio_bytes(&name, &garbled, 10.0).unwrap();
            assert!(clip.samples.iter().all(|s| s.is_finite()));
        } else {
            refused("garbled start", &garbled);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The format comes from the content: an MP3 named .wav and a wav named .flac read as what they
/// are, and text named .mp3 is refused as no known format.
#[test]
fn files_are_read_by_content_not_name() {
    let dir = common::temp_dir("content");
    let wav = &common::holdout()[3];
    let mp3 = encode(&dir, wav, "", "mp3", LOSSY[2].1);
    let misnamed = dir.join("really-an-mp3.wav");
    std::fs::copy(&mp3, &misnamed).unwrap();
    assert_eq!(read_audio(&misnamed, 10.0).unwrap(), read_audio(&mp3, 10.0).unwrap());
    let misnamed = dir.join("really-a-wav.flac");
    std::fs::copy(wav, &misnamed).unwrap();
    assert_eq!(read_audio(&misnamed, 10.0).unwrap(), read_wav(wav, 10.0).unwrap());
    let err = read_audio_bytes(Path::new("notes.mp3"), b"these are not sounds, just words", 10.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.mp3") && err.contains("not a recognised audio format"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
