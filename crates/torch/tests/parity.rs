//! The libtorch network and the pure-Rust forward pass that prediction uses are the same
//! function: the original weights give the Python pipeline's logits in both, the shipped (wide)
//! model gives the same logits in both, and weights written here load in both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../core/tests/common/mod.rs"]
mod common;

use spoken_digits::model::Model;
use spoken_digits::{FeatureConfig, FrontEnd, audio};
use spoken_digits_torch::cnn::Classifier;
use std::path::Path;
use tch::{Device, Tensor};

fn torch_logits(model: &Classifier, features: &[f32]) -> Vec<f32> {
    let f = &model.config().features;
    let n = (features.len() / f.feature_len()) as i64;
    let xs = Tensor::from_slice(features).view([n, 1, f.n_mfcc as i64, f.n_frames() as i64]);
    let out = tch::no_grad(|| model.forward(&xs, false));
    Vec::<f32>::try_from(&out.flatten(0, -1)).unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tolerance, "{what}: {a:?} vs {b:?}");
    }
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn original_weights_give_the_reference_logits_in_libtorch_and_in_rust() {
    let path = common::reference().join("seed_cnn.safetensors");
    let torch = Classifier::load(&path, Device::Cpu).unwrap();
    let rust = Model::load(&path).unwrap();
    for (item, expected) in common::items().iter().zip(common::reference_logits()) {
        let flat: Vec<f32> = item.mfcc.iter().flatten().copied().collect();
        let t = torch_logits(&torch, &flat);
        assert_close(&t, &expected, 1e-3, &item.file);
        assert_close(&rust.logits(&flat, 1).unwrap(), &t, 1e-4, &item.file);
    }
}

#[test]
fn the_shipped_model_gives_the_same_logits_in_libtorch_and_in_rust() {
    // The shipped model: batch norm (folded into the convolutions in Rust) and global pooling, on
    // real recordings.
    let path = common::root().join("models/digits.safetensors");
    let torch = Classifier::load(&path, Device::Cpu).unwrap();
    let rust = Model::load(&path).unwrap();
    let cfg: FeatureConfig = rust.config().features.clone();
    let mut mfcc = FrontEnd::new(&cfg).unwrap();
    let features: Vec<f32> = common::items()
        .iter()
        .flat_map(|item| {
            let samples = audio::load(&common::recordings().join(&item.file), cfg.sample_rate, 60.0).unwrap();
            mfcc.compute(&samples)
        })
        .collect();
    assert_close(&rust.logits(&features, 2).unwrap(), &torch_logits(&torch, &features), 1e-3, "shipped");
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn weights_survive_a_save_and_reload() {
    let torch = Classifier::load(&common::reference().join("seed_cnn.safetensors"), Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("parity-roundtrip-{}", std::process::id()));
    let path = dir.join("m.safetensors");
    torch.save(&path).unwrap();
    assert!(path.with_extension("json").is_file());
    let again = Classifier::load(&path, Device::Cpu).unwrap();
    let rust = Model::load(&path).unwrap();
    let item = &common::items()[0];
    let flat: Vec<f32> = item.mfcc.iter().flatten().copied().collect();
    assert_eq!(torch_logits(&torch, &flat), torch_logits(&again, &flat));
    assert_close(&rust.logits(&flat, 1).unwrap(), &torch_logits(&torch, &flat), 1e-4, "reloaded");
    // Parameter names are the PyTorch module's.
    let names: Vec<String> = Tensor::read_safetensors(&path).unwrap().into_iter().map(|(n, _)| n).collect();
    for n in [
        "conv_stack.0.weight",
        "conv_stack.3.bias",
        "conv_stack.6.weight",
        "linear_stack.0.weight",
        "linear_stack.3.bias",
    ] {
        assert!(names.iter().any(|m| m == n), "{n} missing from {names:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn both_refuse_weights_of_another_architecture_naming_the_tensors() {
    let original = common::reference().join("seed_cnn.safetensors");
    let dir = std::env::temp_dir().join(format!("parity-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    std::fs::copy(&original, &path).unwrap();
    // The original weights under the shipped (wide) model's config.
    std::fs::copy(common::root().join("models/digits.json"), path.with_extension("json")).unwrap();
    let rust = Model::load(&path).unwrap_err().to_string();
    let torch = Classifier::load(&path, Device::Cpu).unwrap_err().to_string();
    for err in [&rust, &torch] {
        assert!(err.contains("does not fit the wide architecture"), "{err}");
        assert!(err.contains("unexpected tensor conv_stack.0.weight"), "{err}");
        assert!(err.contains("missing tensor head.weight"), "{err}");
    }
    assert!(Path::new(&dir).is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_depthwise_separable_model_gives_the_same_logits_in_libtorch_and_in_rust() {
    // The ds network with every weight and batch-norm statistic drawn at random (the running
    // variances positive), so that the stride-2 first convolution, the depthwise filters and the
    // folded norms all count, on real recordings through the shipped front end.
    let features_cfg: FeatureConfig =
        Model::load(&common::root().join("models/digits.safetensors")).unwrap().config().features.clone();
    let config = spoken_digits::model::ModelConfig {
        arch: spoken_digits::model::Arch::Ds,
        features: features_cfg.clone(),
        ..Default::default()
    };
    tch::manual_seed(7);
    let torch = Classifier::new(config, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (name, var) in torch.vs.variables() {
            let random = Tensor::randn(var.size(), (tch::Kind::Float, Device::Cpu)) * 0.5;
            let value = if name.ends_with("running_var") { random.abs() + 0.5 } else { random };
            var.shallow_clone().copy_(&value);
        }
    });
    let dir = std::env::temp_dir().join(format!("parity-ds-{}", std::process::id()));
    let path = dir.join("ds.safetensors");
    torch.save(&path).unwrap();
    let again = Classifier::load(&path, Device::Cpu).unwrap();
    let rust = Model::load(&path).unwrap();
    let mut mfcc = FrontEnd::new(&features_cfg).unwrap();
    let features: Vec<f32> = common::items()
        .iter()
        .flat_map(|item| {
            let samples =
                audio::load(&common::recordings().join(&item.file), features_cfg.sample_rate, 60.0).unwrap();
            mfcc.compute(&samples)
        })
        .collect();
    let t = torch_logits(&torch, &features);
    assert_eq!(t, torch_logits(&again, &features), "reloaded in libtorch");
    // Logits here are tens of units (random weights); the tolerance is relative to them.
    let scale = t.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    assert_close(&rust.logits(&features, 2).unwrap(), &t, 1e-4 * scale, "ds");
    // The clips' logits differ from each other: the network is not constant.
    assert!(t.chunks(10).any(|c| c != &t[..10]), "{t:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
