//! Parity with the original Python pipeline on its own golden values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use spoken_digits::model::{Classifier, argmax};
use spoken_digits::{FeatureConfig, Mfcc, audio};
use tch::{Device, Tensor};

#[test]
fn mfcc_matches_torchaudio_within_1e_3_db() {
    let cfg = FeatureConfig::default();
    let mut mfcc = Mfcc::new(&cfg).unwrap();
    let mut worst = (0.0f32, String::new());
    for item in common::items() {
        let samples = audio::load(&common::recordings().join(&item.file), cfg.sample_rate, 60.0).unwrap();
        assert_eq!(samples.len(), item.samples, "{}", item.file);
        let ours = mfcc.compute(&samples);
        assert_eq!(item.mfcc.len(), cfg.n_mfcc);
        for (c, row) in item.mfcc.iter().enumerate() {
            assert_eq!(row.len(), cfg.n_frames());
            for (t, &expected) in row.iter().enumerate() {
                let err = (ours[c * cfg.n_frames() + t] - expected).abs();
                if err > worst.0 {
                    worst = (err, format!("{} c{c} t{t}", item.file));
                }
            }
        }
    }
    eprintln!("largest MFCC difference: {:.2e} dB at {}", worst.0, worst.1);
    assert!(worst.0 <= 1e-3, "MFCC differs by {} dB at {}", worst.0, worst.1);
}

fn seed_model() -> Classifier {
    Classifier::load(&common::reference().join("seed_cnn.safetensors"), Device::Cpu).unwrap()
}

fn logits(model: &Classifier, mfcc: &[Vec<f32>]) -> Vec<f32> {
    let flat: Vec<f32> = mfcc.iter().flatten().copied().collect();
    let xs = Tensor::from_slice(&flat).view([1, 1, 13, 63]);
    let out = tch::no_grad(|| model.forward(&xs, false));
    Vec::<f32>::try_from(&out.flatten(0, -1)).unwrap()
}

#[test]
fn original_weights_give_the_reference_logits() {
    let model = seed_model();
    for item in common::items() {
        let ours = logits(&model, &item.mfcc);
        for (a, b) in ours.iter().zip(&item.logits) {
            assert!((a - b).abs() <= 1e-3, "{}: logits {ours:?} vs {:?}", item.file, item.logits);
        }
        let ours_max = ours.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let ref_max = item.logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(ours_max, ref_max, "{}", item.file);
    }
}

#[test]
fn full_pipeline_on_files_agrees_with_the_reference_argmax() {
    // Our own front end feeding the original weights: the same digit as the Python pipeline.
    let model = seed_model();
    let paths: Vec<_> = common::items().iter().map(|i| common::recordings().join(&i.file)).collect();
    let preds = spoken_digits::predict::predict_files(&model, &paths, 60.0, 2).unwrap();
    for (item, p) in common::items().iter().zip(preds) {
        let p = p.unwrap();
        let ref_max = item.logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(usize::from(p.digit), ref_max, "{}", item.file);
        assert_eq!(argmax(&p.probabilities).0, p.digit);
    }
}

#[test]
fn weights_survive_a_save_and_reload() {
    let model = seed_model();
    let dir = std::env::temp_dir().join(format!("golden-roundtrip-{}", std::process::id()));
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    assert!(path.with_extension("json").is_file());
    let again = Classifier::load(&path, Device::Cpu).unwrap();
    let item = &common::items()[0];
    assert_eq!(logits(&model, &item.mfcc), logits(&again, &item.mfcc));
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
fn mismatched_weights_are_refused_with_the_tensor_named() {
    let dir = std::env::temp_dir().join(format!("golden-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    let t = Tensor::zeros([8, 1, 3, 3], (tch::Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("conv_stack.0.weight", &t)], &path).unwrap();
    let err = Classifier::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("conv_stack.0.weight has shape [8, 1, 3, 3]"), "{err}");
    assert!(err.contains("missing tensor linear_stack.3.bias"), "{err}");
    std::fs::write(&path, b"not a model").unwrap();
    let err = Classifier::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("not a readable safetensors file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
