//! Clipping repair on real recordings: a clipped FSDD word, repaired, is nearer its clean self
//! in what the model sees, whether it was clipped at the model's rate (the front end repairs
//! it) or at a recorder's 48 kHz (`audio::load` repairs it before resampling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use spoken_digits::{FeatureConfig, FrontEnd, audio, declip, resample};

/// Clipped at a quarter of the peak, at full scale (the condition suite's `clip`), in 16 bits.
fn clip_hard(x: &[f32]) -> Vec<f32> {
    let peak = x.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    x.iter().map(|s| ((s / (0.25 * peak)).clamp(-1.0, 1.0) * 32767.0).round() / 32768.0).collect()
}

/// The shipped classifier's front end, with or without the repair.
fn front(declip: bool) -> FrontEnd {
    let cfg = FeatureConfig {
        trim_db: Some(spoken_digits::features::TRIM_DB),
        n_mfcc: 23,
        log_mel: true,
        find_word: true,
        declip,
        ..FeatureConfig::default()
    };
    FrontEnd::new(&cfg).unwrap()
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / a.len() as f32).sqrt()
}

const WORDS: [&str; 4] = ["0_george_0.wav", "3_jackson_1.wav", "7_theo_2.wav", "9_yweweler_3.wav"];

#[test]
fn the_front_end_repairs_clipped_words_and_leaves_clean_ones_alone() {
    for name in WORDS {
        let clean = audio::load(&common::recordings().join(name), 8000, 10.0).unwrap();
        assert!(declip::clipped(&clean).is_none(), "{name} is clean");
        let cut = clip_hard(&clean);
        assert!(declip::clipped(&cut).is_some(), "{name} clipped");
        let (mut plain, mut repairing) = (front(false), front(true));
        let reference = plain.compute(&clean);
        assert_eq!(repairing.compute(&clean), reference, "{name}: a clean word's features change");
        let (before, after) =
            (distance(&plain.compute(&cut), &reference), distance(&repairing.compute(&cut), &reference));
        // Measured: 7-22% nearer (george's zero 5.3 -> 5.0 dB RMS, theo's seven 5.7 -> 4.5).
        assert!(after < 0.95 * before, "{name}: {after} dB from the clean map repaired, {before} dB clipped");
    }
}

#[test]
fn a_file_clipped_at_48k_is_repaired_before_it_is_resampled() {
    let dir = std::env::temp_dir().join(format!("declip-48k-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut plain = front(false);
    for name in WORDS {
        let clean = audio::load(&common::recordings().join(name), 8000, 10.0).unwrap();
        let cut = clip_hard(&resample::resample(&clean, 8000, 48000).unwrap());
        let path = dir.join(name);
        audio::write_wav(&path, &cut, 48000).unwrap();
        let loaded = audio::load(&path, 8000, 10.0).unwrap();
        // Resampled as it was, the flat tops are rounded: the model's rate no longer shows them.
        let unrepaired = resample::resample(&cut, 48000, 8000).unwrap();
        assert!(declip::clipped(&unrepaired).is_none(), "{name}");
        let reference = plain.compute(&clean);
        let (before, after) = (
            distance(&plain.compute(&unrepaired), &reference),
            distance(&plain.compute(&loaded), &reference),
        );
        // Measured: 12-73% nearer (more samples per flat top at 48 kHz: a closer curve).
        assert!(after < 0.9 * before, "{name}: {after} dB from the clean map loaded, {before} dB unrepaired");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
