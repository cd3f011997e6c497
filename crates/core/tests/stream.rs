//! The streaming recogniser on synthetic sequences of FSDD test recordings joined by pauses,
//! with and without noise: it must report exactly the spoken digits, grouped as spoken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use rand::SeedableRng;
use rand::rngs::StdRng;
use spoken_digits::model::Model;
use spoken_digits::recogniser::{Heard, Recogniser};
use spoken_digits::stream::SegmenterConfig;
use spoken_digits::vad::VadKind;
use spoken_digits::{FrontEnd, audio};
use spoken_digits_testkit::{self as testkit, Layout};
use std::time::Instant;

fn model() -> Model {
    Model::load(&common::root().join("models/digits.safetensors")).unwrap()
}

/// Twelve test-split recordings (index < 5) over all six speakers and ten digits, each checked
/// to be recognised alone, so a failure below is the segmenter's, not the model's.
fn clips(model: &Model) -> Vec<(u8, Vec<f32>)> {
    let picks: [(u8, &str, u32); 12] = [
        (4, "george", 0),
        (1, "jackson", 1),
        (5, "lucas", 2),
        (9, "nicolas", 3),
        (0, "theo", 4),
        (2, "yweweler", 0),
        (7, "george", 1),
        (3, "jackson", 2),
        (8, "nicolas", 0),
        (6, "theo", 3),
        (4, "yweweler", 4),
        (2, "lucas", 1),
    ];
    let rate = model.config().features.sample_rate;
    let mut mfcc = FrontEnd::new(&model.config().features).unwrap();
    picks
        .into_iter()
        .map(|(d, speaker, index)| {
            let path = common::recordings().join(format!("{d}_{speaker}_{index}.wav"));
            let samples = audio::load(&path, rate, 10.0).unwrap();
            let p = model.probabilities(&mfcc.compute(&samples), 1).unwrap()[0];
            let best = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            assert_eq!(
                best,
                usize::from(d),
                "the model misreads {} alone; pick another clip",
                path.display()
            );
            (d, samples)
        })
        .collect()
}

fn heard(model: &Model, kind: VadKind, samples: &[f32], piece: usize) -> Vec<Heard> {
    let stream = SegmenterConfig::for_front_end(kind, &model.config().features);
    let mut rec = Recogniser::new(model, &stream, 0.0).unwrap();
    let mut out = vec![];
    for chunk in samples.chunks(piece) {
        rec.push(chunk, Instant::now(), &mut out).unwrap();
    }
    rec.finish(&mut out).unwrap();
    out
}

fn sequences(heard: &[Heard]) -> Vec<String> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Sequence(s) => Some(s.clone()),
            Heard::Digit(_) => None,
        })
        .collect()
}

fn check(kind: VadKind, snrs: &[Option<f32>]) {
    let model = model();
    let clips = clips(&model);
    // Groups of 3, 4, 2 and 3 digits.
    let mut groups = vec![];
    let mut rest = &clips[..];
    for n in [3, 4, 2, 3] {
        groups.push(rest[..n].iter().map(|(d, s)| (*d, s.as_slice())).collect::<Vec<_>>());
        rest = &rest[n..];
    }
    for &snr in snrs {
        let layout = Layout { snr_db: snr, ..Layout::default() };
        let stream = testkit::build(&groups, 8000, &layout, &mut StdRng::seed_from_u64(11));
        assert_eq!(stream.expected_sequences(), vec!["415", "9027", "38", "642"]);
        // Odd push sizes, as a sound card would deliver.
        let got = heard(&model, kind, &stream.samples, 333);
        assert_eq!(sequences(&got), stream.expected_sequences(), "{kind} VAD at SNR {snr:?}");
        let score = testkit::score(&stream, &got);
        assert_eq!(
            (score.segmented, score.correct, score.false_alarms),
            (12, 12, 0),
            "{kind} at {snr:?}: {score:?}"
        );
    }
}

#[test]
fn energy_vad_hears_exactly_the_spoken_sequences_clean_and_at_20_db_snr() {
    check(VadKind::Energy, &[None, Some(20.0)]);
}

#[test]
fn earshot_vad_hears_exactly_the_spoken_sequences_when_clean() {
    // Clean only: earshot mistakes band-limited noise for voice (see the README's VAD table).
    check(VadKind::Earshot, &[None]);
}
