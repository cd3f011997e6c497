//! Predicting digits for audio files: load every file (in parallel), one batched forward pass of
//! the classifier, and (with a string model) the digit string of each whole file. Each file's
//! outcome is a [`Prediction`] (in [`crate::prediction`], shared with the live path).

use crate::audio;
use crate::ctc::StringModel;
use crate::model::{Model, argmax};
use crate::prediction::Prediction;
use crate::{FeatureConfig, FrontEnd, Result};
use std::path::{Path, PathBuf};

/// One file as the model takes it.
#[derive(Debug, Clone)]
pub struct FileInput {
    /// The audio at the front end's rate, as read (not cut to the clip length).
    pub samples: Vec<f32>,
    /// The front end's feature map: the classifier's input.
    pub features: Vec<f32>,
    /// Speech regions the front end found (with `find_word`; 0 without it).
    pub utterances: usize,
}

/// The one path from an audio file to model input: read it (any format [`audio::load`]
/// knows), resample to the front end's rate, refuse it past `max_seconds`, and compute the
/// front end's features. Training, prediction, analysis and the benchmark all read files here.
pub fn featurise(front_end: &mut FrontEnd, path: &Path, max_seconds: f64) -> Result<FileInput> {
    let samples = audio::load(path, front_end.config().sample_rate, max_seconds)?;
    let features = front_end.compute(&samples);
    Ok(FileInput { samples, features, utterances: front_end.last_utterances() })
}

/// Reads, resamples and featurises each file, `threads` at a time. One result per file, in order.
pub fn featurise_files(
    paths: &[PathBuf],
    config: &FeatureConfig,
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Result<Vec<f32>>>> {
    let all = FrontEnd::new(config)?.par_map(paths, threads, |mfcc, _, p| featurise(mfcc, p, max_seconds))?;
    Ok(all.into_iter().map(|r| r.map(|input| input.features)).collect())
}

/// Predicts every file; unreadable files give their error and do not stop the others.
pub fn predict_files(
    model: &Model,
    paths: &[PathBuf],
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Result<Prediction>>> {
    predict_files_with(model, None, paths, max_seconds, threads)
}

/// [`predict_files`], and with `strings` each file's digit string too (the file read once for
/// both).
pub fn predict_files_with(
    model: &Model,
    strings: Option<&StringModel>,
    paths: &[PathBuf],
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Result<Prediction>>> {
    if let Some(s) = strings {
        crate::rescore::same_rate(s, model)?;
    }
    let features = FrontEnd::new(&model.config().features)?.par_map(paths, threads, |mfcc, _, p| {
        let input = featurise(mfcc, p, max_seconds)?;
        let digits = strings.map(|s| s.read(&input.samples, None)).transpose()?;
        Ok((input.features, input.utterances, digits))
    })?;
    let good: Vec<f32> = features
        .iter()
        .filter_map(|r: &Result<_>| r.as_ref().ok())
        .flat_map(|(f, _, _)| f)
        .copied()
        .collect();
    let mut probs = model.probabilities(&good, threads)?.into_iter();
    Ok(features
        .into_iter()
        .map(|r| {
            r.and_then(|(_, utterances, digits)| {
                let p = probs.next().ok_or_else(|| crate::Error::Config("missing prediction".into()))?;
                Ok(Prediction { utterances, digits, ..Prediction::from_probabilities(p) })
            })
        })
        .collect())
}

/// String models and the weight of their opinion of each word ([`read_words`]).
pub type SecondOpinion<'m> = Option<(&'m StringModel, f64)>;

/// One digit per clip at the model's rate: the classifier's probabilities for each, with the
/// string models' second opinion at its weight when asked for
/// ([`crate::rescore::with_second_opinion`]; measured, not the default: see the model card).
pub fn read_words(
    model: &Model,
    opinion: SecondOpinion<'_>,
    clips: &[Vec<f32>],
    threads: usize,
) -> Result<Vec<[f32; crate::NUM_CLASSES]>> {
    if let Some((s, _)) = opinion {
        crate::rescore::same_rate(s, model)?;
    }
    let front = FrontEnd::new(&model.config().features)?;
    let maps = front.par_map(clips, threads, |mfcc, _, clip| mfcc.compute(clip))?;
    let probs = model.probabilities(&maps.concat(), threads)?;
    let Some((s, weight)) = opinion else { return Ok(probs) };
    let opinions = crate::parallel::map(
        clips,
        threads,
        || (),
        |_, _, clip| s.all_posteriors(clip).map(|all| crate::rescore::one_digit_log_likelihoods(&all)),
    )?;
    probs.iter().zip(opinions).map(|(p, o)| Ok(crate::rescore::with_second_opinion(p, &o?, weight))).collect()
}

/// Scores a model on labelled recordings, optionally with white noise added to every clip at
/// `noise_snr_db` (seeded per file, so reruns give the same figure), and with the string
/// models' second opinion on each word when asked for ([`read_words`]).
pub fn evaluate(
    model: &Model,
    opinion: SecondOpinion<'_>,
    recordings: &[crate::dataset::Recording],
    noise_snr_db: Option<f32>,
    seed: u64,
    threads: usize,
) -> Result<crate::metrics::Scores> {
    use rand::SeedableRng;
    let rate = model.config().features.sample_rate;
    let clips = crate::parallel::map(
        recordings,
        threads,
        || (),
        |_, i, r| -> Result<Vec<f32>> {
            let mut samples = audio::load(&r.path, rate, audio::DEFAULT_MAX_SECONDS)?;
            if let Some(snr) = noise_snr_db {
                let file_seed = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = rand::rngs::StdRng::seed_from_u64(file_seed);
                crate::augment::add_noise(&mut samples, snr, &mut rng);
            }
            Ok(samples)
        },
    )?
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let probs = read_words(model, opinion, &clips, threads)?;
    Ok(crate::metrics::Scores::from_pairs(
        recordings.iter().map(|r| r.digit).zip(probs.iter().map(|p| argmax(p).0)),
    ))
}
