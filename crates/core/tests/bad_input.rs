//! Every kind of bad wav a user may hand us ends in an error naming the file and the reason, or
//! in finite features: never a panic, never a NaN. The wavs are generated here; the fuzz run
//! also mutates FLAC, Ogg Vorbis/Opus, MP3, M4A and WebM copies that ffmpeg encodes at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use spoken_digits::audio::{read_audio_bytes, read_wav_bytes};
use spoken_digits::{FeatureConfig, FrontEnd};
use std::path::Path;

/// A wav file from its parts: `fmt ` fields as given, then a data chunk.
struct Wav {
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    block_align: Option<u16>,
    data: Vec<u8>,
    data_len: Option<u32>,
    riff_len: Option<u32>,
}

impl Wav {
    fn pcm16(samples: &[i16]) -> Self {
        Wav {
            format: 1,
            channels: 1,
            rate: 8000,
            bits: 16,
            block_align: None,
            data: samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            data_len: None,
            riff_len: None,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let align = self.block_align.unwrap_or(self.channels * self.bits.div_ceil(8));
        // Encodings other than PCM and float add a cbSize field (0) to `fmt `, as the format says.
        let extra: &[u8] = if matches!(self.format, 1 | 3) { &[] } else { &[0, 0] };
        let fmt_len = 16 + extra.len() as u32;
        let mut v = b"RIFF".to_vec();
        v.extend(self.riff_len.unwrap_or(20 + fmt_len + self.data.len() as u32).to_le_bytes());
        v.extend(b"WAVEfmt ");
        v.extend(fmt_len.to_le_bytes());
        v.extend(self.format.to_le_bytes());
        v.extend(self.channels.to_le_bytes());
        v.extend(self.rate.to_le_bytes());
        v.extend((self.rate.wrapping_mul(u32::from(align))).to_le_bytes());
        v.extend(align.to_le_bytes());
        v.extend(self.bits.to_le_bytes());
        v.extend(extra);
        v.extend(b"data");
        v.extend(self.data_len.unwrap_or(self.data.len() as u32).to_le_bytes());
        v.extend(&self.data);
        v
    }
}

fn refused(name: &str, bytes: &[u8], why: &str) {
    match read_wav_bytes(Path::new(name), bytes, 600.0) {
        Ok(clip) => panic!("{name}: accepted {} samples, expected an error about {why}", clip.samples.len()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{name}: message does not name the file: {msg}");
            assert!(msg.to_lowercase().contains(why), "{name}: expected '{why}' in: {msg}");
        }
    }
}

fn accepted_with_finite_features(name: &str, bytes: &[u8]) {
    let clip = read_wav_bytes(Path::new(name), bytes, 600.0).unwrap_or_else(|e| panic!("{name}: {e}"));
    for cfg in [FeatureConfig::default(), FeatureConfig::robust()] {
        let feats = FrontEnd::new(&cfg).unwrap().compute(&clip.samples);
        assert!(feats.iter().all(|v| v.is_finite()), "{name}: non-finite features");
    }
}

fn speech_like() -> Vec<i16> {
    (0..4000).map(|i| ((i as f32 * 0.2).sin() * 8000.0 * (i as f32 / 4000.0)) as i16).collect()
}

#[test]
fn empty_and_header_only_files_are_refused() {
    refused("empty.wav", b"", "truncated or empty");
    refused("header-only.wav", &Wav::pcm16(&[]).bytes(), "no samples");
}

#[test]
fn truncated_data_and_lying_sizes() {
    let full = Wav::pcm16(&speech_like()).bytes();
    // The data chunk claims more than the file holds.
    refused("truncated.wav", &full[..full.len() - 1001], "truncated");
    // RIFF size that lies (too big, too small): the data chunk still reads right, or an error.
    for riff in [0u32, 12, u32::MAX] {
        let w = Wav { riff_len: Some(riff), ..Wav::pcm16(&speech_like()) };
        if let Ok(clip) = read_wav_bytes(Path::new("riff.wav"), &w.bytes(), 600.0) {
            assert_eq!(clip.samples.len(), 4000);
        }
    }
    let w = Wav { data_len: Some(u32::MAX), ..Wav::pcm16(&speech_like()) };
    refused("data-len.wav", &w.bytes(), "malformed");
}

#[test]
fn not_a_wav_and_impossible_headers() {
    refused("text.wav", b"this is not a wav file at all, just text", "malformed");
    refused("zero-channels.wav", &Wav { channels: 0, ..Wav::pcm16(&speech_like()) }.bytes(), "");
    refused("rate-0.wav", &Wav { rate: 0, ..Wav::pcm16(&speech_like()) }.bytes(), "");
    refused("rate-10mhz.wav", &Wav { rate: 10_000_000, ..Wav::pcm16(&speech_like()) }.bytes(), "sample rate");
    let w = Wav { block_align: Some(3), ..Wav::pcm16(&speech_like()) };
    refused("block-align.wav", &w.bytes(), "");
}

/// Telephone recordings' mu-law and A-law (G.711) are read through symphonia, to the values the
/// standard gives; ADPCM and 64-bit float are refused, not misread.
#[test]
fn telephone_encodings_are_read_to_their_values() {
    // mu-law 0x80 is +32124/32768, 0x00 its negative, 0xff zero; A-law 0xaa is +32256/32768.
    let tail: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    for (name, format, head, expected) in [
        ("mulaw.wav", 7u16, [0x80u8, 0x00, 0xff], [32124.0f32, -32124.0, 0.0]),
        ("alaw.wav", 6, [0xaa, 0x2a, 0xd5], [32256.0, -32256.0, 8.0]),
    ] {
        let data: Vec<u8> = head.iter().copied().chain(tail.iter().copied()).collect();
        let bytes = Wav { format, bits: 8, data, ..Wav::pcm16(&[]) }.bytes();
        accepted_with_finite_features(name, &bytes);
        let clip = read_wav_bytes(Path::new(name), &bytes, 600.0).unwrap();
        assert_eq!(clip.samples.len(), 4003, "{name}");
        for (got, want) in clip.samples.iter().zip(expected) {
            assert!((got - want / 32768.0).abs() < 1e-4, "{name}: {got} against {}", want / 32768.0);
        }
    }
    let f64s: Vec<u8> = (0..1000).flat_map(|i| (f64::from(i) / 1000.0).to_le_bytes()).collect();
    refused("float64.wav", &Wav { format: 3, bits: 64, data: f64s, ..Wav::pcm16(&[]) }.bytes(), "");
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    refused("adpcm.wav", &Wav { format: 2, bits: 4, data, ..Wav::pcm16(&[]) }.bytes(), "");
}

#[test]
fn float_nan_and_infinity_are_refused() {
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::INFINITY)] {
        let data: Vec<u8> = [0.1f32, bad, 0.2].iter().flat_map(|s| s.to_le_bytes()).collect();
        let w = Wav { format: 3, bits: 32, data, ..Wav::pcm16(&[]) };
        refused(name, &w.bytes(), "nan or infinity");
    }
}

#[test]
fn digital_silence_is_refused() {
    refused("silence.wav", &Wav::pcm16(&[0; 8000]).bytes(), "silence");
}

#[test]
fn odd_but_valid_audio_gives_finite_features() {
    accepted_with_finite_features("clipping.wav", &Wav::pcm16(&[i16::MAX, i16::MIN].repeat(4000)).bytes());
    accepted_with_finite_features("tiny.wav", &Wav::pcm16(&[1000, -1000, 500]).bytes());
    accepted_with_finite_features("dc.wav", &Wav::pcm16(&[3; 8000]).bytes());
    let w = Wav {
        bits: 8,
        data: (0..8000u32).map(|i| (128 + (i % 50) as i32 - 25) as u8).collect(),
        ..Wav::pcm16(&[])
    };
    accepted_with_finite_features("u8.wav", &w.bytes());
    let stereo = Wav { channels: 2, ..Wav::pcm16(&speech_like()) };
    accepted_with_finite_features("stereo.wav", &stereo.bytes());
    let fast = Wav { rate: 44_100, ..Wav::pcm16(&speech_like()) };
    accepted_with_finite_features("44k.wav", &fast.bytes());
}

/// A bounded, seeded fuzz run: mutated valid files (wav, and a FLAC, Ogg Vorbis, Ogg Opus, MP3,
/// M4A and WebM copy of a hold-out recording) and random bytes never panic, and whatever is
/// accepted gives finite features. Each case is read under its format's name and, one time in
/// four, under a wrong one (the content decides). `SPOKEN_DIGITS_FUZZ_SECONDS` sets the duration (default 3) and
/// `SPOKEN_DIGITS_FUZZ_SEED` the seed (default 2026), so a long local run can explore new inputs.
#[test]
fn fuzz_wav_bytes_to_features() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let seconds: f64 =
        std::env::var("SPOKEN_DIGITS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let seed: u64 =
        std::env::var("SPOKEN_DIGITS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seeds = vec![
        ("wav", Wav::pcm16(&speech_like()).bytes()),
        ("wav", Wav { channels: 2, bits: 8, ..Wav::pcm16(&speech_like()) }.bytes()),
        ("wav", Wav { format: 3, bits: 32, data: vec![0x3f; 400], ..Wav::pcm16(&[]) }.bytes()),
    ];
    let dir = common::temp_dir("fuzz");
    let source = &common::holdout()[2];
    for (ext, args) in [
        ("flac", &[][..]),
        ("ogg", &["-c:a", "libvorbis"][..]),
        ("opus", &["-c:a", "libopus"][..]),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "32k"][..]),
        ("m4a", &["-c:a", "aac"][..]),
        ("webm", &["-c:a", "libopus"][..]),
        // Stereo 44.1 kHz: another decoder path (two channels, other frame sizes).
        ("m4a", &["-c:a", "aac", "-ac", "2", "-ar", "44100"][..]),
    ] {
        let copy = dir.join(format!("seed-{}.{ext}", seeds.len()));
        common::ffmpeg(source, &copy, args);
        seeds.push((ext, std::fs::read(&copy).unwrap()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let names = ["fuzz.wav", "fuzz.flac", "fuzz.ogg", "fuzz.opus", "fuzz.mp3", "fuzz.m4a", "fuzz.webm"];
    let mut mfcc = FrontEnd::new(&FeatureConfig::robust()).unwrap();
    let started = std::time::Instant::now();
    let (mut cases, mut caught_panics) = (0u64, 0u64);
    while started.elapsed().as_secs_f64() < seconds {
        let (ext, seed) = &seeds[rng.random_range(0..seeds.len())];
        let mut bytes = seed.clone();
        let name = if rng.random_bool(0.25) {
            names[rng.random_range(0..names.len())].to_string()
        } else {
            format!("fuzz.{ext}")
        };
        match rng.random_range(0..4) {
            0 => {
                // Flip bytes, mostly in the header.
                for _ in 0..rng.random_range(1..8) {
                    let limit = if rng.random_bool(0.8) { 48.min(bytes.len()) } else { bytes.len() };
                    let i = rng.random_range(0..limit);
                    bytes[i] = rng.random();
                }
            }
            1 => bytes.truncate(rng.random_range(0..bytes.len())),
            2 => {
                let i = rng.random_range(0..bytes.len());
                let extra: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(i..i, extra);
            }
            _ => bytes = (0..rng.random_range(0..200)).map(|_| rng.random()).collect(),
        }
        match read_audio_bytes(Path::new(&name), &bytes, 600.0) {
            Ok(clip) => {
                let samples =
                    spoken_digits::resample::resample(&clip.samples, clip.sample_rate, 8000).unwrap();
                assert!(
                    mfcc.compute(&samples).iter().all(|v| v.is_finite()),
                    "{name}: non-finite features: {bytes:?}"
                );
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
                // A decoder panic caught by the guard: counted, so a long run shows what it found.
                caught_panics += u64::from(msg.contains("panicked"));
            }
        }
        cases += 1;
    }
    eprintln!(
        "fuzz: {cases} cases in {seconds} s (seed {seed}), no panic ({caught_panics} decoder panics caught)"
    );
    assert!(cases > 100);
}
