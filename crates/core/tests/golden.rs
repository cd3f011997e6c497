//! Parity with the original Python pipeline on its own golden values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use spoken_digits::model::{Model, ModelConfig, argmax};
use spoken_digits::{FeatureConfig, FrontEnd, audio};

#[test]
fn mfcc_matches_torchaudio_within_1e_3_db() {
    let cfg = FeatureConfig::default();
    let mut mfcc = FrontEnd::new(&cfg).unwrap();
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

fn seed_model() -> Model {
    Model::load(&common::reference().join("seed_cnn.safetensors")).unwrap()
}

fn logits(model: &Model, mfcc: &[Vec<f32>]) -> Vec<f32> {
    let flat: Vec<f32> = mfcc.iter().flatten().copied().collect();
    model.logits(&flat, 1).unwrap()
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn original_weights_give_the_reference_logits() {
    let model = seed_model();
    for (item, expected) in common::items().iter().zip(common::reference_logits()) {
        let ours = logits(&model, &item.mfcc);
        for (a, b) in ours.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-3, "{}: logits {ours:?} vs {expected:?}", item.file);
        }
        let ours_max = ours.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let ref_max = expected.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(ours_max, ref_max, "{}", item.file);
    }
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn full_pipeline_on_files_agrees_with_the_reference_argmax() {
    // Our own front end feeding the original weights: the same digit as the Python pipeline.
    let model = seed_model();
    let paths: Vec<_> = common::items().iter().map(|i| common::recordings().join(&i.file)).collect();
    let preds = spoken_digits::predict::predict_files(&model, &paths, 60.0, 2).unwrap();
    for ((item, expected), p) in common::items().iter().zip(common::reference_logits()).zip(preds) {
        let p = p.unwrap();
        let ref_max = expected.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(usize::from(p.digit), ref_max, "{}", item.file);
        assert_eq!(argmax(&p.probabilities).0, p.digit);
    }
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn a_batch_gives_each_clip_its_own_logits() {
    // Batching (and threads) must not mix clips: all 26 at once equal one at a time.
    let model = seed_model();
    let items = common::items();
    let flat: Vec<f32> = items.iter().flat_map(|i| i.mfcc.iter().flatten().copied()).collect();
    let together = model.logits(&flat, 2).unwrap();
    for (item, row) in items.iter().zip(together.chunks_exact(10)) {
        assert_eq!(row, logits(&model, &item.mfcc).as_slice(), "{}", item.file);
    }
}

#[test]
fn mismatched_weights_are_refused_with_the_tensor_named() {
    let dir = std::env::temp_dir().join(format!("golden-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    let zeros = vec![0u8; 8 * 9 * 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8, 1, 3, 3], &zeros).unwrap();
    safetensors::serialize_to_file([("conv_stack.0.weight", view)], &None, &path).unwrap();
    let err = Model::load(&path).unwrap_err().to_string();
    assert!(err.contains("conv_stack.0.weight has shape [8, 1, 3, 3]"), "{err}");
    assert!(err.contains("missing tensor linear_stack.3.bias"), "{err}");
    std::fs::write(&path, b"not a model").unwrap();
    let err = Model::load(&path).unwrap_err().to_string();
    assert!(err.contains("not a readable safetensors file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(has_reference_weights),
    ignore = "needs the original weights: ../shared/reference or SPOKEN_DIGITS_REFERENCE"
)]
fn truncated_weights_and_foreign_configs_are_refused_saying_what_differs() {
    let seed = common::reference().join("seed_cnn.safetensors");
    let bytes = std::fs::read(&seed).unwrap();
    let origin = std::path::Path::new("cut.safetensors");
    let cut = Model::from_bytes(&bytes[..bytes.len() / 2], ModelConfig::default(), origin).unwrap_err();
    assert!(cut.to_string().contains("not a readable safetensors file"), "{cut}");

    let dir = std::env::temp_dir().join(format!("golden-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    std::fs::copy(&seed, &path).unwrap();
    // The same weights with a config whose front end makes 20 coefficients instead of 13.
    let mut config = ModelConfig::default();
    config.features.n_mfcc = 20;
    config.features.n_mels = 40;
    std::fs::write(path.with_extension("json"), serde_json::to_string(&config).unwrap()).unwrap();
    let err = Model::load(&path).unwrap_err().to_string();
    assert!(err.contains("linear_stack.0.weight has shape [128, 448]"), "{err}");
    assert!(err.contains("n_mfcc 20 x 63 frames"), "{err}");
    // A config from another version (an unknown field) is named as such.
    std::fs::write(path.with_extension("json"), r#"{"arch":"original","num_classes":10,"colour":"red"}"#)
        .unwrap();
    let err = Model::load(&path).unwrap_err().to_string();
    assert!(err.contains("not a model config this version understands") && err.contains("colour"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
