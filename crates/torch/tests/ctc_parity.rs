//! The string model's libtorch network and the pure-Rust forward pass that prediction uses are
//! the same function: on real recordings joined into a string, with batch-norm statistics that
//! are not the identity, and for the shipped string model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use spoken_digits::audio;
use spoken_digits::ctc::{self, CTC_CLASSES, StringModel};
use spoken_digits::model::{Arch, ModelConfig};
use spoken_digits_torch::ctc::StringNet;
use std::path::Path;
use tch::{Device, Tensor};

/// Three FSDD words end to end, an odd number of frames long.
fn utterance() -> Vec<f32> {
    let mut samples = vec![];
    for name in ["4_george_3.wav", "1_jackson_7.wav", "9_theo_12.wav"] {
        samples.extend(audio::load(&common::recordings().join(name), 8000, 60.0).unwrap());
    }
    samples.truncate(samples.len() / 128 * 128 + 64);
    samples
}

/// libtorch's logits, time-major like the Rust model's.
fn torch_logits(net: &StringNet, input: &[f32], frames: usize) -> Vec<f32> {
    let bands = net.config().features.n_mels as i64;
    let xs = Tensor::from_slice(input).view([1, 1, bands, frames as i64]);
    let out = tch::no_grad(|| net.forward(&xs, false)).squeeze_dim(0).transpose(0, 1).contiguous();
    Vec::<f32>::try_from(&out.flatten(0, -1)).unwrap()
}

fn assert_same(path: &Path, net: &StringNet) {
    let rust = StringModel::load(path).unwrap();
    let samples = utterance();
    let (input, frames) = ctc::utterance_features(&rust.config().features, &samples).unwrap();
    let (r, t) = (rust.logits(&input, frames).unwrap(), torch_logits(net, &input, frames));
    assert_eq!(r.len(), ctc::output_frames(frames) * CTC_CLASSES);
    assert_eq!(r.len(), t.len());
    let worst = r.iter().zip(&t).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let scale = t.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(worst <= 1e-3 * scale.max(1.0), "{}: differs by {worst} (logits up to {scale})", path.display());
}

#[test]
fn a_trained_looking_string_net_gives_the_same_logits_in_libtorch_and_in_rust() {
    for arch in [Arch::Tcn, Arch::TcnWide] {
        trained_looking_net_round_trips(ModelConfig { arch, ..ctc::default_config() });
    }
}

fn trained_looking_net_round_trips(config: ModelConfig) {
    tch::manual_seed(5);
    let net = StringNet::new(config, Device::Cpu).unwrap();
    // Train-mode passes move the batch-norm statistics away from 0 and 1.
    let bands = net.config().features.n_mels as i64;
    for _ in 0..3 {
        let xs = Tensor::rand([4, 1, bands, 101], (tch::Kind::Float, Device::Cpu)) * 4.0;
        let _ = net.forward(&xs, true);
    }
    let dir = std::env::temp_dir().join(format!("ctc-parity-{}", std::process::id()));
    let path = dir.join("s.safetensors");
    net.save(&path).unwrap();
    assert_same(&path, &net);
    // And back into libtorch: the same logits.
    let again = StringNet::load(&path, Device::Cpu).unwrap();
    let samples = utterance();
    let (input, frames) = ctc::utterance_features(&net.config().features, &samples).unwrap();
    assert_eq!(torch_logits(&net, &input, frames), torch_logits(&again, &input, frames));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shipped_string_model_gives_the_same_logits_in_libtorch_and_in_rust() {
    let path = common::root().join("models/strings.safetensors");
    let net = StringNet::load(&path, Device::Cpu).unwrap();
    assert_same(&path, &net);
}

#[test]
fn a_string_model_is_refused_as_a_classifier_and_back() {
    let strings = common::root().join("models/strings.safetensors");
    let err = spoken_digits::model::Model::load(&strings).unwrap_err().to_string();
    assert!(err.contains("a string model"), "{err}");
    let classifier = common::root().join("models/digits.safetensors");
    let err = StringModel::load(&classifier).unwrap_err().to_string();
    assert!(err.contains("not a string model"), "{err}");
}
