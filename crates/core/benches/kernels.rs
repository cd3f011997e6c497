//! Kernel micro-benchmarks: MFCC of one clip, resampling one second of 48 kHz audio, voice
//! activity detection and segmentation of ten seconds of audio (energy and earshot), and one
//! forward pass of each architecture (the pure-Rust one prediction uses). `cargo bench -p spoken-digits`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use spoken_digits::model::{Arch, Model, ModelConfig};
use spoken_digits::resample::resample;
use spoken_digits::stream::{Segmenter, SegmenterConfig};
use spoken_digits::vad::VadKind;
use spoken_digits::{FeatureConfig, FrontEnd};
use std::hint::black_box;

fn tone(rate: u32, n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.3).collect()
}

fn kernels(c: &mut Criterion) {
    let clip = tone(8000, 6000);
    for (name, cfg) in [("mfcc original", FeatureConfig::default()), ("mfcc robust", FeatureConfig::robust())]
    {
        let mut mfcc = FrontEnd::new(&cfg).unwrap();
        let mut out = vec![0.0; cfg.feature_len()];
        c.bench_function(name, |b| b.iter(|| mfcc.compute_into(black_box(&clip), &mut out)));
    }
    let second = tone(48_000, 48_000);
    c.bench_function("resample 1 s 48k->8k", |b| {
        b.iter(|| resample(black_box(&second), 48_000, 8_000).unwrap())
    });
    // Ten seconds at 8 kHz: half a second of tone every second, quiet noise-free gaps between.
    let stream: Vec<f32> =
        (0..80_000).map(|i| if (i / 4000) % 2 == 0 { (i as f32 * 0.3).sin() * 0.3 } else { 0.0 }).collect();
    for kind in [VadKind::Energy, VadKind::Earshot] {
        c.bench_function(&format!("vad + segmenter 10 s {kind}"), |b| {
            b.iter(|| {
                let mut seg = Segmenter::new(&SegmenterConfig::new(kind), 8000).unwrap();
                let mut out = vec![];
                for chunk in stream.chunks(160) {
                    seg.push(black_box(chunk), &mut out);
                }
                seg.finish(&mut out);
                out
            })
        });
    }
    for arch in [Arch::Original, Arch::Compact] {
        let cfg = ModelConfig { arch, ..ModelConfig::default() };
        let weights = random_weights(&cfg);
        let model = Model::from_bytes(&weights, cfg, std::path::Path::new("random")).unwrap();
        let feats = vec![0.1f32; FeatureConfig::default().feature_len()];
        c.bench_function(&format!("forward 1 clip {arch:?}"), |b| {
            b.iter(|| model.probabilities(black_box(&feats), 1).unwrap())
        });
    }
}

/// A safetensors file with every parameter of `cfg`'s architecture, filled with small values.
fn random_weights(cfg: &ModelConfig) -> Vec<u8> {
    let params = cfg.parameters();
    let data: Vec<Vec<u8>> = params
        .iter()
        .map(|(_, shape)| {
            let n: usize = shape.iter().product();
            (0..n).flat_map(|i| ((i % 7) as f32 * 0.01 + 0.5).to_le_bytes()).collect()
        })
        .collect();
    let views = params.iter().zip(&data).map(|((name, shape), bytes)| {
        (
            name.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap(),
        )
    });
    safetensors::serialize(views, &None).unwrap()
}

criterion_group!(benches, kernels);
criterion_main!(benches);
