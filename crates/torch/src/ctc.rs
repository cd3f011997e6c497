//! The string model in libtorch: its network (layers and names of [`spoken_digits::ctc`],
//! whose pure-Rust forward pass serves prediction) and its training with CTC on strings made
//! afresh for every step ([`spoken_digits::strings::produce_strings`], in a worker thread).

use crate::Tch;
use spoken_digits::ctc::{self, CTC_CLASSES, KERNEL, Shape};
use spoken_digits::model::{Head, ModelConfig, read_model_files, read_weights};
use spoken_digits::strings::{
    Labelled, SequenceScores, StringBatch, StringTrainConfig, StringTrainReport, WordBank, batch_of,
    produce_strings,
};
use spoken_digits::train::{EpochStats, Progress, Schedule};
use spoken_digits::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

/// Reports per run: the history has this many entries.
const ROUNDS: usize = 10;

/// The string model's layers in libtorch.
#[derive(Debug)]
pub struct StringNet {
    pub vs: nn::VarStore,
    front: Vec<(nn::Conv2D, nn::BatchNorm)>,
    proj: (nn::Conv1D, nn::BatchNorm),
    blocks: Vec<(nn::Conv1D, nn::Conv1D, nn::BatchNorm)>,
    out: nn::Conv1D,
    config: ModelConfig,
    /// Dropout while training (none when reading).
    dropout: f64,
}

/// PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)), as the CNN uses.
fn init(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

impl StringNet {
    /// A freshly initialised network (seed with `tch::manual_seed` first).
    pub fn new(config: ModelConfig, device: Device) -> Result<Self> {
        config.validate()?;
        if config.head != Head::Ctc {
            return Err(Error::Config("not a string model's config (head ctc)".into()));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut front = vec![];
        let mut bands = config.features.n_mels;
        let shape = Shape::of(config.arch);
        for (i, &(cin, cout, stride)) in shape.front.iter().enumerate() {
            let p = &root / "front" / i.to_string();
            let (cin, cout) = (cin as i64, cout as i64);
            let cfg = nn::ConvConfig {
                stride: stride as i64,
                padding: 1,
                bias: false,
                ws_init: init(cin * 9),
                ..Default::default()
            };
            front.push((
                nn::conv2d(&p / "conv", cin, cout, 3, cfg),
                nn::batch_norm2d(&p / "norm", cout, Default::default()),
            ));
            bands = ctc::reduced(bands, stride);
        }
        let flat = (shape.front[1].1 * bands) as i64;
        let w = shape.width as i64;
        let pointwise =
            |fan_in: i64| nn::ConvConfig { bias: false, ws_init: init(fan_in), ..Default::default() };
        let proj = (
            nn::conv1d(&root / "proj" / "conv", flat, w, 1, pointwise(flat)),
            nn::batch_norm1d(&root / "proj" / "norm", w, Default::default()),
        );
        let blocks = (0..shape.blocks)
            .map(|b| {
                let p = &root / "blocks" / b.to_string();
                let dw = nn::ConvConfig {
                    padding: (KERNEL / 2) as i64,
                    groups: w,
                    bias: false,
                    ws_init: init(KERNEL as i64),
                    ..Default::default()
                };
                (
                    nn::conv1d(&p / "depthwise", w, w, KERNEL as i64, dw),
                    nn::conv1d(&p / "pointwise", w, w, 1, pointwise(w)),
                    nn::batch_norm1d(&p / "norm", w, Default::default()),
                )
            })
            .collect();
        let out_cfg = nn::ConvConfig { ws_init: init(w), bs_init: init(w), ..Default::default() };
        let out = nn::conv1d(&root / "out", w, CTC_CLASSES as i64, 1, out_cfg);
        Ok(StringNet { vs, front, proj, blocks, out, config, dropout: 0.0 })
    }

    /// Loads `path` and its config, checking every tensor's name and shape.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let (config, bytes) = read_model_files(path)?;
        let tensors = read_weights(&bytes, &config, path)?;
        let net = StringNet::new(config, device)?;
        crate::copy_weights(&net.vs, &tensors)?;
        Ok(net)
    }

    /// Writes the weights and the config, each atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::save_weights(&self.vs, &self.config, path)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits `[B, 11, T']` for inputs `[B, 1, n_mels, T]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (conv, norm) in &self.front {
            x = conv.forward(&x).apply_t(norm, train).relu();
        }
        let size = x.size();
        let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
        x = x.reshape([b, c * h, w]);
        x = self.proj.0.forward(&x).apply_t(&self.proj.1, train).relu().dropout(self.dropout, train);
        for (dw, pw, norm) in &self.blocks {
            let y = pw.forward(&dw.forward(&x)).apply_t(norm, train).relu().dropout(self.dropout, train);
            // Not `x += y`: in place, it would overwrite the ReLU output autograd keeps.
            #[allow(clippy::assign_op_pattern)]
            {
                x = x + y;
            }
        }
        self.out.forward(&x)
    }
}

/// A batch's inputs and CTC targets on `device`.
struct Inputs {
    xs: Tensor,
    targets: Tensor,
    input_lengths: Vec<i64>,
    target_lengths: Vec<i64>,
}

fn inputs(batch: &StringBatch, bands: usize, device: Device) -> Result<Inputs> {
    let n = batch.lengths.len() as i64;
    let xs = Tensor::f_from_slice(&batch.features)
        .and_then(|t| t.f_view([n, 1, bands as i64, batch.frames as i64]))
        .and_then(|t| t.f_to_device(device))
        .tch()?;
    let labels: Vec<i64> = batch.digits.iter().map(|&d| i64::from(d) + 1).collect();
    Ok(Inputs {
        xs,
        targets: Tensor::f_from_slice(&labels).and_then(|t| t.f_to_device(device)).tch()?,
        input_lengths: batch.lengths.iter().map(|&f| ctc::output_frames(f) as i64).collect(),
        target_lengths: batch.digit_counts.iter().map(|&c| c as i64).collect(),
    })
}

/// CTC loss (mean over the batch of each string's loss per target digit) and the greedy
/// readings of a batch's logits `[B, 11, T']`.
fn loss_and_readings(logits: &Tensor, x: &Inputs) -> Result<(Tensor, Vec<Vec<u8>>)> {
    let log_probs = logits.f_log_softmax(1, Kind::Float).tch()?.f_permute([2, 0, 1]).tch()?;
    let loss = Tensor::f_ctc_loss(
        &log_probs,
        &x.targets,
        x.input_lengths.as_slice(),
        x.target_lengths.as_slice(),
        ctc::BLANK as i64,
        Reduction::Mean,
        true,
    )
    .tch()?;
    let best = logits.f_argmax(1, false).tch()?.f_to_device(Device::Cpu).tch()?;
    let frames = best.size().get(1).copied().unwrap_or(0) as usize;
    let flat = Vec::<i64>::try_from(&best.f_flatten(0, -1).tch()?).tch()?;
    let readings = flat
        .chunks(frames.max(1))
        .zip(&x.input_lengths)
        .map(|(row, &len)| {
            let mut out = vec![];
            let mut previous = ctc::BLANK as i64;
            for &c in row.iter().take(len as usize) {
                if c != ctc::BLANK as i64 && c != previous {
                    out.push((c - 1) as u8);
                }
                previous = c;
            }
            out
        })
        .collect();
    Ok((loss, readings))
}

/// Mean CTC loss and greedy scores of `net` on `set` (eval mode), in batches of `batch`.
fn evaluate(net: &StringNet, set: &[Labelled], batch: usize) -> Result<(f64, SequenceScores)> {
    let mut scores = SequenceScores::default();
    let mut loss = 0.0;
    let f = &net.config.features;
    tch::no_grad(|| -> Result<()> {
        for chunk in set.chunks(batch.max(1)) {
            let b = batch_of(chunk, f)?;
            let x = inputs(&b, f.n_mels, net.vs.device())?;
            let (l, readings) = loss_and_readings(&net.forward(&x.xs, false), &x)?;
            loss += l.double_value(&[]) * chunk.len() as f64;
            for ((_, reference), read) in chunk.iter().zip(&readings) {
                scores.add(reference, read);
            }
        }
        Ok(())
    })?;
    Ok((loss / set.len().max(1) as f64, scores))
}

/// Trains a string model on strings spliced from `bank` and on `phrases`, scored on `val`.
/// Setting `stop` ends training at the next step, keeping the weights so far.
#[allow(clippy::too_many_arguments)]
pub fn train(
    cfg: &StringTrainConfig,
    bank: &WordBank,
    phrases: &[Labelled],
    val: &[Labelled],
    device: Device,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<(StringNet, StringTrainReport)> {
    let started = Instant::now();
    if cfg.steps == 0 || cfg.batch_size == 0 {
        return Err(Error::Config("steps and batch size must be positive".into()));
    }
    cfg.splice.validate()?;
    // The words and phrases are loaded: from here on, keep freed memory for the next batch.
    crate::keep_freed_memory();
    tch::manual_seed(cfg.seed as i64);
    let config = ModelConfig { arch: cfg.arch, features: cfg.features.clone(), ..ctc::default_config() };
    let mut net = StringNet::new(config, device)?;
    net.dropout = cfg.dropout;
    let mut opt =
        nn::AdamW { wd: cfg.weight_decay, ..Default::default() }.build(&net.vs, cfg.learning_rate).tch()?;
    let per_round = cfg.steps.div_ceil(ROUNDS);
    let warmup = (cfg.steps / 20).max(1);
    let bands = cfg.features.n_mels;
    let mut history = vec![];
    let mut steps_done = 0;
    let mut interrupted = false;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<StringBatch>(4);
        let producer = s.spawn(|| produce_strings(cfg, bank, phrases, tx));
        'rounds: for round in 0..ROUNDS {
            let t0 = Instant::now();
            let steps = (round * per_round..((round + 1) * per_round).min(cfg.steps)).len();
            if steps == 0 {
                break;
            }
            progress.epoch_start(round + 1, ROUNDS, steps);
            let (mut loss_sum, mut exact, mut seen) = (0.0, 0usize, 0usize);
            let mut waited = 0.0;
            for _ in 0..steps {
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'rounds;
                }
                opt.set_lr(Schedule::Cosine.rate(cfg.learning_rate, steps_done, cfg.steps, warmup));
                let t_wait = Instant::now();
                let Ok(batch) = rx.recv() else { break 'rounds };
                waited += t_wait.elapsed().as_secs_f64();
                let x = inputs(&batch, bands, device)?;
                let (loss, readings) = loss_and_readings(&net.forward(&x.xs, true), &x)?;
                opt.backward_step(&loss);
                let mut offset = 0;
                for (read, &count) in readings.iter().zip(&batch.digit_counts) {
                    exact += usize::from(batch.digits.get(offset..offset + count) == Some(read.as_slice()));
                    offset += count;
                }
                let n = batch.lengths.len();
                loss_sum += loss.double_value(&[]) * n as f64;
                seen += n;
                steps_done += 1;
                progress.batch(loss_sum / seen as f64, exact as f64 / seen as f64);
            }
            let (val_loss, scores) = evaluate(&net, val, cfg.batch_size)?;
            let stats = EpochStats {
                epoch: round + 1,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: exact as f64 / seen.max(1) as f64,
                val_loss,
                val_accuracy: scores.exact_rate(),
                test_accuracy: None,
                seconds: t0.elapsed().as_secs_f64(),
            };
            progress.epoch_end(&stats);
            tracing::info!(
                round = round + 1,
                steps_done,
                train_loss = stats.train_loss,
                val_loss,
                val_der = scores.digit_error_rate(),
                val_exact = scores.exact_rate(),
                waited_for_batches = waited,
                "round finished"
            );
            history.push(stats);
        }
        drop(rx);
        producer.join().map_err(|_| Error::Config("the string worker panicked".into()))?
    })?;
    net.vs.freeze();
    let (_, val_scores) = evaluate(&net, val, cfg.batch_size)?;
    let report = StringTrainReport {
        config: cfg.clone(),
        train_words: bank.len(),
        train_phrases: phrases.len(),
        val_words: 0,
        history,
        val: val_scores,
        steps_done,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
        machine: Some(crate::fit::machine(device)),
    };
    Ok((net, report))
}

/// Saves the model (weights + config) and the report beside it, each atomically.
pub fn save(net: &StringNet, report: &StringTrainReport, path: &Path) -> Result<()> {
    net.save(path)?;
    spoken_digits::atomic::write_json(&spoken_digits::model::metrics_path(path), report)
}
