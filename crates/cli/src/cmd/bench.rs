//! `bench`'s measurements that need no libtorch: the front end's and the string model's speed
//! (`bench frontend`, `bench strings`).

use crate::{DEFAULT_PHRASES, DEFAULT_RECORDINGS, default_path};
use anyhow::Context;
use spoken_digits::predict::{featurise, featurise_files};
use spoken_digits::rescore::StringReader;
use spoken_digits::{FeatureConfig, FrontEnd, audio};
use std::path::PathBuf;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The string model's reading speed on the held-out phrases, on one thread: alone (as `listen`
/// and `predict-file` read) and with each digit read again by the classifier (`evaluate
/// --sequences --classifier`).
pub fn strings(
    models: &[PathBuf],
    classifier: Option<PathBuf>,
    phrases: Option<PathBuf>,
    repeat: usize,
) -> anyhow::Result<()> {
    let model = crate::load_string_model(models, false)?.context("no string model to read with")?;
    let first = model.clone().with_others(vec![])?;
    let (classifier, _) = crate::load_model(classifier.as_deref())?;
    let rate = model.config().features.sample_rate;
    let dir = phrases.unwrap_or_else(|| default_path(DEFAULT_PHRASES));
    let files = spoken_digits::strings::scan_phrases(&dir, true)?;
    let audio = spoken_digits::strings::load_phrases(&files, rate, audio::DEFAULT_MAX_SECONDS, 1)?;
    let seconds: f64 = audio.iter().map(|(s, _)| s.len() as f64).sum::<f64>() / f64::from(rate);
    let time = |reader: &StringReader<'_>| -> anyhow::Result<f64> {
        let mut front = reader.front_end()?;
        let mut times = vec![];
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            for (samples, _) in &audio {
                reader.read(&mut front, samples, None)?;
            }
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(median(times))
    };
    let alone = time(&StringReader::alone(&model))?;
    let one = if model.others().is_empty() { alone } else { time(&StringReader::alone(&first))? };
    let both = time(&StringReader::with_classifier(&model, &classifier)?)?;
    println!(
        "{}",
        serde_json::json!({
            "phrases": audio.len(),
            "audio_s": seconds,
            "models": 1 + model.others().len(),
            "read_s_1_thread": alone,
            "times_real_time": seconds / alone,
            "first_model_alone_times_real_time": seconds / one,
            "read_with_classifier_s_1_thread": both,
            "with_classifier_times_real_time": seconds / both,
        })
    );
    Ok(())
}

pub fn frontend(data: Option<PathBuf>, repeat: usize, cfg: &FeatureConfig) -> anyhow::Result<()> {
    let dir = data.unwrap_or_else(|| default_path(DEFAULT_RECORDINGS));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    let mut mfcc = FrontEnd::new(cfg)?;
    let mut out = vec![0.0f32; cfg.feature_len()];
    let (mut one_thread, mut all_threads, mut mfcc_only) = (vec![], vec![], vec![]);
    let clip = audio::load(&files[0], cfg.sample_rate, audio::DEFAULT_MAX_SECONDS)?;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        for f in &files {
            featurise(&mut mfcc, f, audio::DEFAULT_MAX_SECONDS)?;
        }
        one_thread.push(t.elapsed().as_secs_f64() * 1e3 / files.len() as f64);
        let t = Instant::now();
        for _ in 0..1000 {
            mfcc.compute_into(&clip, &mut out);
        }
        mfcc_only.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let results = featurise_files(&files, cfg, audio::DEFAULT_MAX_SECONDS, threads)?;
        all_threads.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(results.iter().all(|r| r.is_ok()), "some files failed");
    }
    println!(
        "{}",
        serde_json::json!({
            "files": files.len(),
            "frontend_ms_per_clip_1_thread": median(one_thread),
            "mfcc_only_ms_per_clip": median(mfcc_only),
            "frontend_all_files_all_threads_s": median(all_threads),
        })
    );
    Ok(())
}
