//! Kernel micro-benchmarks: MFCC of one clip, resampling one second of 48 kHz audio, and one
//! forward pass of each architecture. `cargo bench -p spoken-digits`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use spoken_digits::model::{Arch, Classifier, ModelConfig};
use spoken_digits::resample::resample;
use spoken_digits::{Device, FeatureConfig, Mfcc};
use std::hint::black_box;

fn tone(rate: u32, n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.3).collect()
}

fn kernels(c: &mut Criterion) {
    let clip = tone(8000, 6000);
    for (name, cfg) in [("mfcc original", FeatureConfig::default()), ("mfcc robust", FeatureConfig::robust())]
    {
        let mut mfcc = Mfcc::new(&cfg).unwrap();
        let mut out = vec![0.0; cfg.feature_len()];
        c.bench_function(name, |b| b.iter(|| mfcc.compute_into(black_box(&clip), &mut out)));
    }
    let second = tone(48_000, 48_000);
    c.bench_function("resample 1 s 48k->8k", |b| {
        b.iter(|| resample(black_box(&second), 48_000, 8_000).unwrap())
    });
    for arch in [Arch::Original, Arch::Compact] {
        let cfg = ModelConfig { arch, ..ModelConfig::default() };
        let model = Classifier::new(cfg, Device::Cpu).unwrap();
        let feats = vec![0.1f32; FeatureConfig::default().feature_len()];
        c.bench_function(&format!("forward 1 clip {arch:?}"), |b| {
            b.iter(|| model.probabilities(black_box(&feats), 1).unwrap())
        });
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
