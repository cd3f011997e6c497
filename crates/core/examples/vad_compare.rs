//! Compares the energy VAD with earshot on synthetic sequences of FSDD test recordings
//! (index 0-4, 300 clips) joined by pauses, clean and with white noise at 20, 10 and 5 dB SNR.
//! Recordings are levelled to -26 dBFS RMS first (see `spoken_digits_testkit::Layout`). Prints a markdown
//! table.
//!
//!     cargo run --release --example vad_compare [-- RECORDINGS_DIR MODEL]
//!
//! "isolated" is the model alone on each noisy clip, cut perfectly: the ceiling any VAD can
//! reach at that SNR.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use spoken_digits::model::Model;
use spoken_digits::recogniser::{Heard, Recogniser};
use spoken_digits::stream::SegmenterConfig;
use spoken_digits::vad::VadKind;
use spoken_digits::{FrontEnd, audio, dataset};
use spoken_digits_testkit::{self as testkit, Layout, Score};
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let recordings =
        args.next().map_or_else(|| root.join("free-spoken-digit-dataset/recordings"), PathBuf::from);
    let model_path = args.next().map_or_else(|| root.join("models/digits.safetensors"), PathBuf::from);
    let model = Model::load(&model_path)?;
    let rate = model.config().features.sample_rate;

    let mut clips: Vec<(u8, Vec<f32>)> = vec![];
    let mut names: Vec<_> =
        std::fs::read_dir(&recordings)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for path in names {
        let Some((digit, _, index)) = path.file_name().and_then(|n| n.to_str()).and_then(dataset::parse_name)
        else {
            continue;
        };
        if index < 5 {
            clips.push((digit, audio::load(&path, rate, 60.0)?));
        }
    }
    eprintln!("{} test recordings", clips.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    clips.shuffle(&mut rng);
    // Groups of 2-5 digits.
    let mut groups: Vec<Vec<(u8, &[f32])>> = vec![];
    let mut rest = &clips[..];
    while !rest.is_empty() {
        let n = rng.random_range(2..=5usize).min(rest.len());
        groups.push(rest[..n].iter().map(|(d, s)| (*d, s.as_slice())).collect());
        rest = &rest[n..];
    }

    println!("| VAD | SNR | segmented | digits right | false alarms | missed | sequences exact | time (s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for snr in [None, Some(20.0), Some(10.0), Some(5.0)] {
        let layout = Layout { snr_db: snr, ..Layout::default() };
        let stream = testkit::build(&groups, rate, &layout, &mut rand::rngs::StdRng::seed_from_u64(7));
        let snr_name = snr.map_or("clean".to_string(), |s| format!("{s} dB"));
        let audio_s = stream.samples.len() as f64 / f64::from(rate);
        for kind in [VadKind::Energy, VadKind::Earshot] {
            let t = Instant::now();
            let mut cfg = SegmenterConfig::for_front_end(kind, &model.config().features);
            // Tuning knobs: VAD_START / VAD_STAY override the thresholds of both kinds.
            let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
            let (start, stay) = (env(&format!("{kind}_START")), env(&format!("{kind}_STAY")));
            cfg.vad.start_threshold = start.unwrap_or(cfg.vad.start_threshold);
            cfg.vad.stay_threshold = stay.unwrap_or(cfg.vad.stay_threshold);
            let mut rec = Recogniser::new(&model, &cfg, 0.0)?;
            let mut heard: Vec<Heard> = vec![];
            for chunk in stream.samples.chunks(160) {
                rec.push(chunk, Instant::now(), &mut heard)?;
            }
            rec.finish(&mut heard)?;
            let s = testkit::score(&stream, &heard);
            if std::env::var_os("VAD_COMPARE_DEBUG").is_some() {
                let got: Vec<_> = heard
                    .iter()
                    .filter_map(|h| match h {
                        Heard::Sequence(s) => Some(s.clone()),
                        Heard::Digit(_) => None,
                    })
                    .collect();
                eprintln!(
                    "{kind} {snr_name}: got {:?}\nexpected {:?}",
                    &got[..got.len().min(12)],
                    &stream.expected_sequences()[..12]
                );
            }
            row(&kind.to_string(), &snr_name, &s, t.elapsed().as_secs_f64(), audio_s);
        }
        // The ceiling: each recording alone, with the same noise, cut exactly.
        let mut mfcc = FrontEnd::new(&model.config().features)?;
        let mut right = 0;
        for p in stream.groups.iter().flatten() {
            let a = (p.start_s * f64::from(rate)).round() as usize;
            let b = (p.end_s * f64::from(rate)).round() as usize;
            let probs = model.probabilities(&mfcc.compute(&stream.samples[a..b]), 1)?;
            right += probs
                .into_iter()
                .map(spoken_digits::prediction::Prediction::from_probabilities)
                .filter(|q| q.digit == p.digit)
                .count();
        }
        println!("| isolated | {snr_name} | - | {right}/{} | - | - | - | - |", clips.len());
    }
    Ok(())
}

fn row(vad: &str, snr: &str, s: &Score, secs: f64, audio_s: f64) {
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "| {vad} | {snr} | {}/{} ({:.1}%) | {}/{} ({:.1}%) | {} | {} | {}/{} ({:.1}%) | {secs:.2} for {audio_s:.0} s |",
        s.segmented,
        s.recordings,
        pct(s.segmented, s.recordings),
        s.correct,
        s.recordings,
        pct(s.correct, s.recordings),
        s.false_alarms,
        s.missed,
        s.groups_exact,
        s.groups,
        pct(s.groups_exact, s.groups),
    );
}
