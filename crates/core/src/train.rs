//! Training: features of the clean set computed once, an augmented copy produced each epoch by a
//! worker thread ahead of the training step, Adam, and the best validation weights kept as a copy.

use crate::augment::{AugmentConfig, augment, mask_features};
use crate::dataset::{Recording, Sets, Split};
use crate::metrics::Scores;
use crate::model::{Arch, Classifier, ModelConfig, argmax};
use crate::{Error, FeatureConfig, Mfcc, NUM_CLASSES, Result, audio};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

/// Everything that defines a training run (saved in the metrics file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub split: Split,
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Fraction of the non-test recordings used for validation.
    pub val_fraction: f64,
    /// Augmented copies of the training set added each epoch (0: clean data only).
    pub augmented_copies: usize,
    pub augment: AugmentConfig,
    pub arch: Arch,
    pub features: FeatureConfig,
    /// Longest input file accepted (s).
    pub max_seconds: f64,
    /// Learning-rate schedule over the whole run.
    #[serde(default)]
    pub schedule: Schedule,
    /// Decoupled weight decay (AdamW); 0 is plain Adam as in the original.
    #[serde(default)]
    pub weight_decay: f64,
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout (the original).
    #[default]
    Constant,
    /// Linear warm-up over the first epoch, then cosine decay to zero.
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            _ => Err(Error::Config(format!("unknown schedule '{s}' (constant, cosine)"))),
        }
    }
}

impl Schedule {
    /// The rate at batch `step` of `total`, with `warmup` warm-up steps.
    fn rate(self, base: f64, step: usize, total: usize, warmup: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine if step < warmup => base * (step + 1) as f64 / warmup as f64,
            Schedule::Cosine => {
                let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Named recipes: starting points that every flag can adjust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The original project's recipe, as it was.
    Original,
    /// Built for voices the model never heard (see the model card).
    Robust,
}

impl std::str::FromStr for Recipe {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "original" => Ok(Recipe::Original),
            "robust" => Ok(Recipe::Robust),
            _ => Err(Error::Config(format!("unknown recipe '{s}' (original, robust)"))),
        }
    }
}

impl TrainConfig {
    /// The configuration of a recipe.
    pub fn recipe(recipe: Recipe) -> Self {
        match recipe {
            Recipe::Original => TrainConfig::default(),
            Recipe::Robust => TrainConfig {
                epochs: 30,
                augmented_copies: 1,
                augment: AugmentConfig {
                    speed: (0.85, 1.15),
                    time_masks: 2,
                    time_mask_width: 6,
                    freq_masks: 1,
                    freq_mask_width: 2,
                    ..AugmentConfig::default()
                },
                arch: Arch::Compact,
                // Trimming without per-utterance normalisation: on the hardest unseen speaker
                // (george) normalising cost 7 points (69% vs 76%), trimming gained 6.
                features: FeatureConfig { trim_db: Some(40.0), ..FeatureConfig::default() },
                schedule: Schedule::Cosine,
                weight_decay: 1e-3,
                ..TrainConfig::default()
            },
        }
    }
}

impl Default for TrainConfig {
    /// The original project's recipe.
    fn default() -> Self {
        TrainConfig {
            split: Split::Official,
            seed: 42,
            epochs: 10,
            batch_size: 64,
            learning_rate: 1e-3,
            val_fraction: 0.1,
            augmented_copies: 1,
            augment: AugmentConfig::default(),
            arch: Arch::Original,
            features: FeatureConfig::default(),
            max_seconds: audio::DEFAULT_MAX_SECONDS,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// What a training run reports; written as the metrics JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub config: TrainConfig,
    pub train_size: usize,
    pub val_size: usize,
    pub test_size: usize,
    pub history: Vec<EpochStats>,
    /// Epoch (1-based) whose weights were kept; 0 when none finished.
    pub best_epoch: usize,
    pub test: Scores,
    /// True when the run was stopped early (Ctrl-C): the weights are the best seen so far.
    pub interrupted: bool,
    pub seconds: f64,
}

/// Receives progress; the CLI draws bars with it, tests ignore it.
pub trait Progress {
    fn stage(&mut self, _message: &str) {}
    /// A leave-one-speaker-out fold starts (0-based `fold` of `folds`).
    fn fold_start(&mut self, _fold: usize, _folds: usize, _speaker: &str) {}
    /// A leave-one-speaker-out fold finished.
    fn fold_end(&mut self, _result: &FoldResult) {}
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch(&mut self, _loss: f64, _accuracy: f64) {}
    fn epoch_end(&mut self, _stats: &EpochStats) {}
}

/// A [`Progress`] that reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Reads and featurises recordings on all threads. Returns the flat features
/// (`len * feature_len`) and, when `keep_audio`, every clip padded/truncated to `clip_samples`.
pub fn load_set(
    recs: &[Recording],
    features: &FeatureConfig,
    max_seconds: f64,
    keep_audio: bool,
    threads: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let clip = features.clip_samples;
    let per_file =
        Mfcc::new(features)?.par_map(recs, threads, |mfcc, _, r| -> Result<(Vec<f32>, Vec<f32>)> {
            let mut samples = audio::load(&r.path, features.sample_rate, max_seconds)?;
            let feats = mfcc.compute(&samples);
            if keep_audio {
                samples.resize(clip, 0.0);
            } else {
                samples.clear();
            }
            Ok((feats, samples))
        })?;
    let mut feats = Vec::with_capacity(recs.len() * features.feature_len());
    let mut clips = Vec::with_capacity(if keep_audio { recs.len() * clip } else { 0 });
    for result in per_file {
        let (f, c) = result?;
        feats.extend(f);
        clips.extend(c);
    }
    Ok((feats, clips))
}

/// A labelled, featurised set.
struct Featurised {
    features: Vec<f32>,
    labels: Vec<i64>,
}

impl Featurised {
    fn len(&self) -> usize {
        self.labels.len()
    }
}

fn labels(recs: &[Recording]) -> Vec<i64> {
    recs.iter().map(|r| i64::from(r.digit)).collect()
}

/// A batch ready for the network.
struct Batch {
    features: Vec<f32>,
    labels: Vec<i64>,
}

/// Seed of one augmented example: a pure function of run seed, epoch and position, so results
/// do not depend on thread scheduling.
fn example_seed(seed: u64, epoch: usize, position: usize) -> u64 {
    let mut x = seed ^ ((epoch as u64) << 32) ^ (position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Produces every epoch's shuffled batches (clean copies from the cache, augmented ones computed
/// here) and sends them ahead of the training step; stops when the receiver goes away.
fn produce(cfg: &TrainConfig, train: &Featurised, clips: &[f32], tx: mpsc::SyncSender<Batch>) -> Result<()> {
    let flen = cfg.features.feature_len();
    let clip_len = cfg.features.clip_samples;
    let mut mfcc = Mfcc::new(&cfg.features)?;
    let mut wave = vec![0.0f32; clip_len];
    let n = train.len();
    // (example index, augmented copy number; 0 = clean)
    let mut order: Vec<(usize, usize)> =
        (0..=cfg.augmented_copies).flat_map(|copy| (0..n).map(move |i| (i, copy))).collect();
    for epoch in 0..cfg.epochs {
        order.sort_unstable();
        order.shuffle(&mut StdRng::seed_from_u64(example_seed(cfg.seed, epoch, usize::MAX)));
        for (b, chunk) in order.chunks(cfg.batch_size.max(1)).enumerate() {
            let mut batch =
                Batch { features: vec![0.0; chunk.len() * flen], labels: Vec::with_capacity(chunk.len()) };
            for (j, &(i, copy)) in chunk.iter().enumerate() {
                let out = &mut batch.features[j * flen..(j + 1) * flen];
                if copy == 0 {
                    out.copy_from_slice(&train.features[i * flen..(i + 1) * flen]);
                } else {
                    wave.copy_from_slice(&clips[i * clip_len..(i + 1) * clip_len]);
                    let position = b * cfg.batch_size + j;
                    let mut rng = StdRng::seed_from_u64(example_seed(cfg.seed, epoch, position));
                    augment(&mut wave, &cfg.augment, &mut rng);
                    mfcc.compute_into(&wave, out);
                    // Masked values take the map's mean (0 for normalised features).
                    let fill = out.iter().sum::<f32>() / out.len().max(1) as f32;
                    mask_features(out, cfg.features.n_mfcc, &cfg.augment, fill, &mut rng);
                }
                batch.labels.push(train.labels[i]);
            }
            if tx.send(batch).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn to_input(features: &[f32], cfg: &FeatureConfig, device: Device) -> Result<Tensor> {
    let n = (features.len() / cfg.feature_len()) as i64;
    Ok(Tensor::f_from_slice(features)?
        .f_view([n, 1, cfg.n_mfcc as i64, cfg.n_frames() as i64])?
        .f_to_device(device)?)
}

/// Loss and accuracy of `model` on a set (eval mode), and its predictions.
fn evaluate(model: &Classifier, set: &Featurised) -> Result<(f64, f64, Vec<u8>)> {
    if set.len() == 0 {
        return Ok((0.0, 0.0, vec![]));
    }
    let probs = model.probabilities(&set.features, 512)?;
    let mut loss = 0.0;
    let mut predicted = Vec::with_capacity(set.len());
    for (p, &y) in probs.iter().zip(&set.labels) {
        loss -= f64::from(p[y as usize % NUM_CLASSES].max(1e-12)).ln();
        predicted.push(argmax(p).0);
    }
    let correct = predicted.iter().zip(&set.labels).filter(|(p, y)| i64::from(**p) == **y).count();
    Ok((loss / set.len() as f64, correct as f64 / set.len() as f64, predicted))
}

/// The best epoch so far: validation accuracy and loss, epoch, and a copy of its weights.
type Best = (f64, f64, usize, Vec<(String, Tensor)>);

/// A deep copy of the weights (not a reference to the live tensors).
fn snapshot(model: &Classifier) -> Vec<(String, Tensor)> {
    tch::no_grad(|| model.vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect())
}

fn restore(model: &Classifier, snap: &[(String, Tensor)]) -> Result<()> {
    let vars = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in snap {
            if let Some(var) = vars.get(name) {
                var.shallow_clone().f_copy_(t)?;
            }
        }
        Ok(())
    })
}

/// Trains a model on `sets`. Returns the model holding the best validation weights and its
/// report. Setting `stop` ends training at the next batch with the best weights so far.
pub fn train(
    cfg: &TrainConfig,
    sets: &Sets,
    device: Device,
    threads: usize,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<(Classifier, TrainReport)> {
    let started = Instant::now();
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(Error::Config("epochs and batch size must be positive".into()));
    }
    let fc = &cfg.features;
    progress.stage(&format!(
        "computing features: {} train, {} validation, {} test recordings",
        sets.train.len(),
        sets.val.len(),
        sets.test.len()
    ));
    let keep_audio = cfg.augmented_copies > 0;
    let (train_feats, clips) = load_set(&sets.train, fc, cfg.max_seconds, keep_audio, threads)?;
    let train = Featurised { features: train_feats, labels: labels(&sets.train) };
    let val = Featurised {
        features: load_set(&sets.val, fc, cfg.max_seconds, false, threads)?.0,
        labels: labels(&sets.val),
    };
    let test = Featurised {
        features: load_set(&sets.test, fc, cfg.max_seconds, false, threads)?.0,
        labels: labels(&sets.test),
    };

    tch::manual_seed(cfg.seed as i64);
    let mut model = Classifier::new(
        ModelConfig { arch: cfg.arch, num_classes: NUM_CLASSES, features: fc.clone() },
        device,
    )?;
    let mut opt = if cfg.weight_decay > 0.0 {
        nn::AdamW { wd: cfg.weight_decay, ..Default::default() }.build(&model.vs, cfg.learning_rate)?
    } else {
        nn::Adam::default().build(&model.vs, cfg.learning_rate)?
    };
    let examples = train.len() * (1 + cfg.augmented_copies);
    let batches = examples.div_ceil(cfg.batch_size);

    let mut history = vec![];
    let mut best: Option<Best> = None;
    let mut interrupted = false;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(8);
        let producer = s.spawn(|| produce(cfg, &train, &clips, tx));
        'epochs: for epoch in 1..=cfg.epochs {
            let t0 = Instant::now();
            progress.epoch_start(epoch, cfg.epochs, batches);
            let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
            for b in 0..batches {
                let step = (epoch - 1) * batches + b;
                opt.set_lr(cfg.schedule.rate(cfg.learning_rate, step, batches * cfg.epochs, batches));
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'epochs;
                }
                let Ok(batch) = rx.recv() else { break 'epochs };
                let xs = to_input(&batch.features, fc, device)?;
                let ys = Tensor::f_from_slice(&batch.labels)?.f_to_device(device)?;
                let logits = model.forward(&xs, true);
                let loss = logits.cross_entropy_for_logits(&ys);
                opt.backward_step(&loss);
                let n = batch.labels.len();
                let hits = logits.f_argmax(-1, false)?.f_eq_tensor(&ys)?.f_sum(Kind::Int64)?.int64_value(&[]);
                loss_sum += loss.double_value(&[]) * n as f64;
                correct += hits as usize;
                seen += n;
                progress.batch(loss_sum / seen as f64, correct as f64 / seen as f64);
            }
            let (val_loss, val_accuracy, _) = evaluate(&model, &val)?;
            let stats = EpochStats {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss,
                val_accuracy,
                seconds: t0.elapsed().as_secs_f64(),
            };
            progress.epoch_end(&stats);
            tracing::info!(
                epoch,
                train_loss = stats.train_loss,
                train_accuracy = stats.train_accuracy,
                val_loss,
                val_accuracy,
                seconds = stats.seconds,
                "epoch finished"
            );
            let better = best.as_ref().is_none_or(|(acc, loss, _, _)| {
                val_accuracy > *acc || (val_accuracy == *acc && val_loss < *loss)
            });
            if better {
                best = Some((val_accuracy, val_loss, epoch, snapshot(&model)));
            }
            history.push(stats);
        }
        drop(rx);
        producer.join().map_err(|_| Error::Config("the augmentation worker panicked".into()))?
    })?;

    let best_epoch = match &best {
        Some((_, _, epoch, snap)) => {
            restore(&model, snap)?;
            *epoch
        }
        None => 0,
    };
    model.vs.freeze();
    let (_, _, predicted) = evaluate(&model, &test)?;
    let scores = Scores::from_pairs(sets.test.iter().map(|r| r.digit).zip(predicted));
    let report = TrainReport {
        config: cfg.clone(),
        train_size: train.len(),
        val_size: val.len(),
        test_size: test.len(),
        history,
        best_epoch,
        test: scores,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

/// Saves the model (weights + config) and the report beside it, each atomically.
pub fn save(model: &Classifier, report: &TrainReport, path: &std::path::Path) -> Result<()> {
    model.save(path)?;
    crate::atomic::write_json(&crate::model::metrics_path(path), report)
}

/// One leave-one-speaker-out fold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldResult {
    pub speaker: String,
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
    pub best_epoch: usize,
    pub seconds: f64,
}

/// Leave-one-speaker-out: per-speaker and mean accuracy on voices the model never heard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LosoReport {
    pub config: TrainConfig,
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    pub min_accuracy: f64,
    /// All folds' test predictions pooled.
    pub pooled: Scores,
    pub interrupted: bool,
    pub seconds: f64,
}

/// Trains one model per speaker with that speaker held out, and tests on them.
pub fn loso(
    cfg: &TrainConfig,
    recordings: &[Recording],
    device: Device,
    threads: usize,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<LosoReport> {
    let started = Instant::now();
    let mut speakers: Vec<String> = recordings.iter().map(|r| r.speaker.clone()).collect();
    speakers.sort();
    speakers.dedup();
    if speakers.len() < 2 {
        return Err(Error::Dataset("leave-one-speaker-out needs at least two speakers".into()));
    }
    let mut folds = vec![];
    let mut pairs = vec![];
    let mut interrupted = false;
    for (i, speaker) in speakers.iter().enumerate() {
        progress.fold_start(i, speakers.len(), speaker);
        let fold_cfg = TrainConfig { split: Split::Speaker(speaker.clone()), ..cfg.clone() };
        let sets = crate::dataset::split(recordings, &fold_cfg.split, cfg.val_fraction, cfg.seed)?;
        let (_, report) = train(&fold_cfg, &sets, device, threads, progress, stop)?;
        if report.interrupted {
            interrupted = true;
            break;
        }
        pairs.extend(report.test.confusion.iter().enumerate().flat_map(|(t, row)| {
            row.iter().enumerate().flat_map(move |(p, &n)| std::iter::repeat_n((t as u8, p as u8), n))
        }));
        tracing::info!(speaker = %speaker, accuracy = report.test.accuracy, "fold finished");
        let fold = FoldResult {
            speaker: speaker.clone(),
            correct: report.test.correct,
            total: report.test.total,
            accuracy: report.test.accuracy,
            best_epoch: report.best_epoch,
            seconds: report.seconds,
        };
        progress.fold_end(&fold);
        folds.push(fold);
    }
    let n = folds.len().max(1) as f64;
    Ok(LosoReport {
        config: cfg.clone(),
        mean_accuracy: folds.iter().map(|f| f.accuracy).sum::<f64>() / n,
        min_accuracy: folds.iter().map(|f| f.accuracy).fold(f64::INFINITY, f64::min),
        folds,
        pooled: Scores::from_pairs(pairs),
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The floor a real run is measured against: the same model, optimiser and batch count trained
/// on feature maps already in memory (random values), plus the same validation passes. Returns
/// the seconds taken.
pub fn compute_only(cfg: &TrainConfig, examples: usize, val_examples: usize, device: Device) -> Result<f64> {
    use rand::RngExt;
    let fc = &cfg.features;
    let flen = fc.feature_len();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let train_feats: Vec<f32> = (0..examples * flen).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let train_labels: Vec<i64> = (0..examples).map(|i| (i % NUM_CLASSES) as i64).collect();
    let val = Featurised {
        features: (0..val_examples * flen).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
        labels: (0..val_examples).map(|i| (i % NUM_CLASSES) as i64).collect(),
    };
    tch::manual_seed(cfg.seed as i64);
    let model = Classifier::new(
        ModelConfig { arch: cfg.arch, num_classes: NUM_CLASSES, features: fc.clone() },
        device,
    )?;
    let mut opt = nn::Adam::default().build(&model.vs, cfg.learning_rate)?;
    let started = Instant::now();
    for _ in 0..cfg.epochs {
        for start in (0..examples).step_by(cfg.batch_size.max(1)) {
            let end = (start + cfg.batch_size).min(examples);
            let xs = to_input(&train_feats[start * flen..end * flen], fc, device)?;
            let ys = Tensor::f_from_slice(&train_labels[start..end])?.f_to_device(device)?;
            let logits = model.forward(&xs, true);
            let loss = logits.cross_entropy_for_logits(&ys);
            opt.backward_step(&loss);
            // The same per-batch read-back as the real loop.
            let _ = loss.double_value(&[]);
        }
        evaluate(&model, &val)?;
    }
    Ok(started.elapsed().as_secs_f64())
}
