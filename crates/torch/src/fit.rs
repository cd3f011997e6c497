//! The training loop in libtorch: batches from [`spoken_digits::train::produce`] (augmented in
//! a worker thread), Adam/AdamW with the recipe's schedule, the weights the recipe chooses kept
//! (best validation epoch, last, or a mean of the last few);
//! leave-one-speaker-out; and the pure model-compute floor the benchmarks compare against.

use crate::Tch;
use crate::cnn::Classifier;
use rand::SeedableRng;
use rand::rngs::StdRng;
use spoken_digits::dataset::{Recording, Sets, Split};
use spoken_digits::metrics::Scores;
use spoken_digits::model::{Head, ModelConfig, argmax};
use spoken_digits::train::{
    Batch, EpochStats, Featurised, FoldResult, Keep, LosoReport, Progress, TrainConfig, TrainReport, labels,
    load_set, produce,
};
use spoken_digits::{Error, FeatureConfig, NUM_CLASSES, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

fn to_input(features: &[f32], cfg: &FeatureConfig, device: Device) -> Result<Tensor> {
    let n = (features.len() / cfg.feature_len()) as i64;
    Tensor::f_from_slice(features)
        .and_then(|t| t.f_view([n, 1, cfg.n_mfcc as i64, cfg.n_frames() as i64]))
        .and_then(|t| t.f_to_device(device))
        .tch()
}

/// Examples per forward pass when evaluating: the recipes' training batch size, so that the
/// activations of an evaluation take no more memory than a default training step's (512 at a
/// time added 50 MB to the peak).
const EVAL_BATCH: usize = 64;

/// Loss and accuracy of `model` on a set (eval mode), and its predictions.
fn evaluate(model: &Classifier, set: &Featurised) -> Result<(f64, f64, Vec<u8>)> {
    if set.is_empty() {
        return Ok((0.0, 0.0, vec![]));
    }
    let probs = model.probabilities(&set.features, EVAL_BATCH)?;
    let mut loss = 0.0;
    let mut predicted = Vec::with_capacity(set.len());
    for (p, &y) in probs.iter().zip(&set.labels) {
        loss -= f64::from(p[y as usize % NUM_CLASSES].max(1e-12)).ln();
        predicted.push(argmax(p).0);
    }
    let correct = predicted.iter().zip(&set.labels).filter(|(p, y)| i64::from(**p) == **y).count();
    Ok((loss / set.len() as f64, correct as f64 / set.len() as f64, predicted))
}

/// The training loss of a batch: cross-entropy against `ys` (with mixup, blended with the
/// partners' labels by `lambda`), and with label smoothing `e`, (1 - e) of it plus e times the
/// mean negative log-probability of the ten digits (the target's share spread evenly).
fn training_loss(logits: &Tensor, ys: &Tensor, mix: Option<(f64, &Tensor)>, e: f64) -> Result<Tensor> {
    let loss = match mix {
        None => logits.cross_entropy_for_logits(ys),
        Some((lambda, partners)) => {
            (logits.cross_entropy_for_logits(ys) * lambda)
                + (logits.cross_entropy_for_logits(partners) * (1.0 - lambda))
        }
    };
    if e <= 0.0 {
        return Ok(loss);
    }
    let spread = logits.f_log_softmax(-1, Kind::Float).tch()?.f_mean(Kind::Float).tch()?;
    Ok(loss * (1.0 - e) - spread * e)
}

/// A copy of a model's variables by name.
type Snapshot = Vec<(String, Tensor)>;

/// The best epoch so far: validation accuracy and loss, epoch, and a copy of its weights.
type Best = (f64, f64, usize, Snapshot);

/// A deep copy of the weights (not a reference to the live tensors), in name order.
fn snapshot(model: &Classifier) -> Snapshot {
    let mut snap: Snapshot =
        tch::no_grad(|| model.vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect());
    snap.sort_by(|a, b| a.0.cmp(&b.0));
    snap
}

/// Running sum of snapshots for [`Keep::Average`], and how many it holds. Every variable of the
/// networks is floating point: weights, biases and batch-norm statistics.
fn accumulate(sum: Option<(usize, Snapshot)>, snap: Snapshot) -> (usize, Snapshot) {
    match sum {
        None => (1, snap),
        Some((k, acc)) => {
            let summed =
                tch::no_grad(|| acc.into_iter().zip(snap).map(|((name, a), (_, b))| (name, a + b)).collect());
            (k + 1, summed)
        }
    }
}

/// The mean of an [`accumulate`]d sum.
fn mean((k, sum): (usize, Snapshot)) -> Snapshot {
    tch::no_grad(|| sum.into_iter().map(|(name, t)| (name, t / k as f64)).collect())
}

fn restore(model: &Classifier, snap: &[(String, Tensor)]) -> Result<()> {
    let vars = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in snap {
            if let Some(var) = vars.get(name) {
                var.shallow_clone().f_copy_(t).tch()?;
            }
        }
        Ok(())
    })
}

/// Trains a model on `sets`. Returns the model holding the best validation weights and its
/// report. Setting `stop` ends training at the next batch with the best weights so far.
/// The recipe's classifier, freshly initialised from its seed. Called once the data is loaded:
/// from here on the allocator keeps freed memory (before, the data's buffers grow by realloc,
/// which for blocks above the mmap threshold moves pages (mremap) where the heap would copy them,
/// doubling the peak).
fn fresh_classifier(cfg: &TrainConfig, device: Device) -> Result<Classifier> {
    crate::keep_freed_memory();
    tch::manual_seed(cfg.seed as i64);
    let config = ModelConfig {
        arch: cfg.arch,
        num_classes: NUM_CLASSES,
        features: cfg.features.clone(),
        head: Head::Classifier,
        voice_shifts: vec![],
    };
    Classifier::new(config, device)
}

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

    let mut model = fresh_classifier(cfg, device)?;
    let mut opt = if cfg.weight_decay > 0.0 {
        nn::AdamW { wd: cfg.weight_decay, ..Default::default() }.build(&model.vs, cfg.learning_rate).tch()?
    } else {
        nn::Adam::default().build(&model.vs, cfg.learning_rate).tch()?
    };
    let examples = train.len() * (1 + cfg.augmented_copies);
    let batches = examples.div_ceil(cfg.batch_size);

    let mut history = vec![];
    let mut best: Option<Best> = None;
    let average_from = match cfg.keep {
        Keep::Average(n) => cfg.epochs.saturating_sub(n) + 1,
        Keep::Best | Keep::Last => usize::MAX,
    };
    let mut sum = None;
    let mut interrupted = false;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(8);
        let producer = s.spawn(|| produce(cfg, &train, &clips, tx));
        'epochs: for epoch in 1..=cfg.epochs {
            let t0 = Instant::now();
            progress.epoch_start(epoch, cfg.epochs, batches);
            let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
            // Time spent waiting for the augmentation worker: above zero, the data side and not
            // the network is what limits an epoch (logged with the epoch's figures).
            let mut waited = 0.0;
            for b in 0..batches {
                let step = (epoch - 1) * batches + b;
                opt.set_lr(cfg.schedule.rate(cfg.learning_rate, step, batches * cfg.epochs, batches));
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'epochs;
                }
                let t_wait = Instant::now();
                let Ok(batch) = rx.recv() else { break 'epochs };
                waited += t_wait.elapsed().as_secs_f64();
                let xs = to_input(&batch.features, fc, device)?;
                let ys = Tensor::f_from_slice(&batch.labels).tch()?.f_to_device(device).tch()?;
                let logits = model.forward(&xs, true);
                let mix = match &batch.mix {
                    Some((lambda, partners)) => {
                        Some((*lambda, Tensor::f_from_slice(partners).tch()?.f_to_device(device).tch()?))
                    }
                    None => None,
                };
                let loss =
                    training_loss(&logits, &ys, mix.as_ref().map(|(l, t)| (*l, t)), cfg.label_smoothing)?;
                opt.backward_step(&loss);
                let n = batch.labels.len();
                let hits = logits
                    .f_argmax(-1, false)
                    .tch()?
                    .f_eq_tensor(&ys)
                    .tch()?
                    .f_sum(Kind::Int64)
                    .tch()?
                    .int64_value(&[]);
                loss_sum += loss.double_value(&[]) * n as f64;
                correct += hits as usize;
                seen += n;
                progress.batch(loss_sum / seen as f64, correct as f64 / seen as f64);
            }
            let (val_loss, val_accuracy, _) = evaluate(&model, &val)?;
            let test_accuracy = if test.is_empty() { None } else { Some(evaluate(&model, &test)?.1) };
            let stats = EpochStats {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss,
                val_accuracy,
                test_accuracy,
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
                waited_for_batches = waited,
                "epoch finished"
            );
            let better = best.as_ref().is_none_or(|(acc, loss, _, _)| {
                val_accuracy > *acc || (val_accuracy == *acc && val_loss < *loss)
            });
            if better {
                best = Some((val_accuracy, val_loss, epoch, snapshot(&model)));
            }
            if epoch >= average_from {
                sum = Some(accumulate(sum.take(), snapshot(&model)));
            }
            history.push(stats);
        }
        drop(rx);
        producer.join().map_err(|_| Error::Config("the augmentation worker panicked".into()))?
    })?;

    // An interrupted run keeps the best epoch whatever the choice: the last may be unfinished.
    let best_epoch = match (cfg.keep, interrupted, sum, &best) {
        (Keep::Last, false, _, _) => history.len(),
        (Keep::Average(_), false, Some(sum), _) => {
            restore(&model, &mean(sum))?;
            history.len()
        }
        (_, _, _, Some((_, _, epoch, snap))) => {
            restore(&model, snap)?;
            *epoch
        }
        (_, _, _, None) => 0,
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
        machine: Some(machine(device)),
    };
    Ok((model, report))
}

/// This machine's CPU, the libtorch the trainer was built with, its threads and `device`.
pub fn machine(device: Device) -> spoken_digits::train::Machine {
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(0);
    spoken_digits::train::Machine::this(
        env!("SPOKEN_DIGITS_LIBTORCH_VERSION"),
        threads,
        &format!("{device:?}"),
    )
}

/// Saves the model (weights + config) and the report beside it, each atomically.
pub fn save(model: &Classifier, report: &TrainReport, path: &std::path::Path) -> Result<()> {
    model.save(path)?;
    spoken_digits::atomic::write_json(&spoken_digits::model::metrics_path(path), report)
}

/// Trains one model per speaker of `recordings` with that speaker held out, and tests on them;
/// `extra` recordings are added to every fold's training set.
pub fn loso(
    cfg: &TrainConfig,
    recordings: &[Recording],
    extra: &[Recording],
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
        let sets = spoken_digits::dataset::split_with_extra(
            recordings,
            extra,
            &fold_cfg.split,
            cfg.val_fraction,
            cfg.seed,
        )?;
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
            history: report.history,
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
        machine: Some(machine(device)),
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
    let model = fresh_classifier(cfg, device)?;
    let mut opt = nn::Adam::default().build(&model.vs, cfg.learning_rate).tch()?;
    let started = Instant::now();
    for _ in 0..cfg.epochs {
        for start in (0..examples).step_by(cfg.batch_size.max(1)) {
            let end = (start + cfg.batch_size).min(examples);
            let xs = to_input(&train_feats[start * flen..end * flen], fc, device)?;
            let ys = Tensor::f_from_slice(&train_labels[start..end]).tch()?.f_to_device(device).tch()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use spoken_digits::model::Arch;

    #[test]
    fn label_smoothing_spreads_a_share_of_the_target_over_the_ten_digits() {
        // Two examples, logits 0 except 2 on digit 3 (the first's label) and on digit 5.
        let mut raw = vec![0.0f32; 20];
        (raw[3], raw[15]) = (2.0, 2.0);
        let logits = Tensor::from_slice(&raw).view([2, 10]);
        let ys = Tensor::from_slice(&[3i64, 4]);
        let log_p = |hit: bool| (if hit { 2.0f64 } else { 0.0 }) - (2f64.exp() + 9.0).ln();
        let ce = -(log_p(true) + log_p(false)) / 2.0;
        // Each example's mean over the ten digits: (2 - 10 ln(e^2 + 9)) / 10.
        let spread = -(2.0 - 10.0 * (2f64.exp() + 9.0).ln()) / 10.0;
        let value = |e: f64| training_loss(&logits, &ys, None, e).unwrap().double_value(&[]);
        assert!((value(0.0) - ce).abs() < 1e-6);
        assert!((value(0.1) - (0.9 * ce + 0.1 * spread)).abs() < 1e-6, "{}", value(0.1));
        // Mixup blends the two labels' losses before the smoothing.
        let partners = Tensor::from_slice(&[5i64, 4]);
        let mixed = training_loss(&logits, &ys, Some((0.75, &partners)), 0.0).unwrap().double_value(&[]);
        let other = -(log_p(false) + log_p(false)) / 2.0;
        assert!((mixed - (0.75 * ce + 0.25 * other)).abs() < 1e-6);
    }

    #[test]
    fn averaging_weights_takes_the_mean_of_every_variable() {
        let cfg = ModelConfig {
            arch: Arch::Wide,
            num_classes: NUM_CLASSES,
            features: FeatureConfig::default(),
            head: spoken_digits::model::Head::Classifier,
            voice_shifts: vec![],
        };
        let model = Classifier::new(cfg, Device::Cpu).unwrap();
        let first = snapshot(&model);
        assert!(
            first.iter().any(|(n, _)| n.ends_with("running_var")),
            "batch-norm statistics are averaged too"
        );
        // The second "epoch": every variable tripled (its own copy, not the first snapshot's).
        let tripled: Snapshot = tch::no_grad(|| first.iter().map(|(n, t)| (n.clone(), t * 3.0)).collect());
        restore(&model, &tripled).unwrap();
        let averaged = mean(accumulate(Some(accumulate(None, first)), snapshot(&model)));
        restore(&model, &averaged).unwrap();
        for ((name, now), (_, three)) in snapshot(&model).iter().zip(&tripled) {
            assert!(now.allclose(&(three * (2.0 / 3.0)), 1e-5, 1e-6, false), "{name}");
        }
    }
}
