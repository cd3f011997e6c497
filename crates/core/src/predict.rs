//! Predicting digits for wav files: load every file (in parallel), one batched forward pass.

use crate::audio;
use crate::model::{Classifier, argmax};
use crate::{FeatureConfig, Mfcc, NUM_CLASSES, Result};
use std::path::{Path, PathBuf};

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub digit: u8,
    pub confidence: f32,
    pub probabilities: [f32; NUM_CLASSES],
}

/// Reads, resamples and featurises each file, `threads` at a time. One result per file, in order.
pub fn featurise_files(
    paths: &[PathBuf],
    config: &FeatureConfig,
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Result<Vec<f32>>>> {
    let mfcc = Mfcc::new(config)?;
    let threads = threads.clamp(1, paths.len().max(1));
    let per = paths.len().div_ceil(threads).max(1);
    let mut out = Vec::with_capacity(paths.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                let mut mfcc = mfcc.clone();
                s.spawn(move || {
                    chunk.iter().map(|p| featurise(p, &mut mfcc, max_seconds)).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(results) => out.extend(results),
                Err(_) => out.push(Err(crate::Error::Config("a feature worker panicked".into()))),
            }
        }
    });
    Ok(out)
}

fn featurise(path: &Path, mfcc: &mut Mfcc, max_seconds: f64) -> Result<Vec<f32>> {
    let samples = audio::load(path, mfcc.config().sample_rate, max_seconds)?;
    Ok(mfcc.compute(&samples))
}

/// Predicts every file; unreadable files give their error and do not stop the others.
pub fn predict_files(
    model: &Classifier,
    paths: &[PathBuf],
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Result<Prediction>>> {
    let features = featurise_files(paths, &model.config().features, max_seconds, threads)?;
    let good: Vec<f32> = features.iter().filter_map(|r| r.as_ref().ok()).flatten().copied().collect();
    let mut probs = model.probabilities(&good, 256)?.into_iter();
    Ok(features
        .into_iter()
        .map(|r| {
            r.and_then(|_| {
                let p = probs.next().ok_or_else(|| crate::Error::Config("missing prediction".into()))?;
                Ok(to_prediction(p))
            })
        })
        .collect())
}

/// Wraps a probability vector.
pub fn to_prediction(probabilities: [f32; NUM_CLASSES]) -> Prediction {
    let (digit, confidence) = argmax(&probabilities);
    Prediction { digit, confidence, probabilities }
}
