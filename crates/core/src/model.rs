// Weights and configs come from files: no indexing on them that could panic. The forward pass
// indexes its own buffers, whose shapes `check_parameters` validated at load (allowed there).
#![deny(clippy::indexing_slicing)]
//! The CNN's architectures, its files, and a pure-Rust forward pass for prediction.
//!
//! Prediction ([`Model`]) needs no libtorch: the networks are small (about 2 M multiply-adds per
//! clip), and loading libtorch alone costs a process about 0.45 s, ten times the work of
//! predicting a handful of files. Training uses the same layers in libtorch (`spoken_digits_torch::cnn`);
//! both read and write the same safetensors files, with the same parameter names.
//!
//! `--arch original` is the original project's network with the same parameter names, so weights
//! move between the PyTorch module and this project as safetensors, both ways:
//!
//! ```text
//! input            [B, 1, 13, 63]  MFCC map
//! conv_stack.0     conv 3x3 1->16, pad 1, ReLU, max-pool 2   -> [B, 16, 6, 31]
//! conv_stack.3     conv 3x3 16->32, pad 1, ReLU, max-pool 2  -> [B, 32, 3, 15]
//! conv_stack.6     conv 3x3 32->64, pad 1, ReLU, max-pool 2  -> [B, 64, 1, 7]
//! flatten                                                    -> [B, 448]
//! linear_stack.0   linear 448->128, ReLU, dropout 0.5
//! linear_stack.3   linear 128->10                             -> [B, 10] logits
//! ```
//!
//! `--arch compact`:
//!
//! ```text
//! input                 [B, 1, 13, 63]
//! blocks.{0,1,2}        conv 3x3 (16, 32, 64), batch norm, ReLU; max-pool 2 after the first two
//!                       -> [B, 64, 3, 15]
//! pool                  mean and max over (coefficient, frame) -> [B, 128]
//! head                  dropout 0.3, linear 128 -> 10
//! ```
//!
//! `--arch wide` (the shipped model) is `compact` with twice the channels: (32, 64, 128), then
//! mean and max -> [B, 256], linear 256 -> 10.
//!
//! `--arch ds` (depthwise-separable, as in the DS-CNN keyword spotters) has the wide network's
//! channels at about a seventh of its multiply-adds (1.8 M against 12 M per clip): the first
//! block is a full 3x3 convolution with stride 2 (one input channel, so it is cheap), the other
//! two are each a depthwise 3x3 convolution (one filter per channel) with batch norm and ReLU,
//! then a pointwise 1x1 convolution that mixes the channels, with batch norm and ReLU:
//!
//! ```text
//! input                      [B, 1, 23, 63]
//! blocks.0.conv/norm         conv 3x3 stride 2 1->32, batch norm, ReLU      -> [B, 32, 12, 32]
//! blocks.1.depthwise/dnorm   depthwise 3x3 (32), batch norm, ReLU
//! blocks.1.conv/norm         pointwise 32->64, batch norm, max-pool 2, ReLU -> [B, 64, 6, 16]
//! blocks.2.depthwise/dnorm   depthwise 3x3 (64), batch norm, ReLU
//! blocks.2.conv/norm         pointwise 64->128, batch norm, ReLU            -> [B, 128, 6, 16]
//! pool, head                 mean and max -> [B, 256], dropout 0.3, linear 256 -> 10
//! ```
//!
//! `--arch tcn` is the string model's network (head `ctc`, see [`crate::ctc`]): it reads a
//! whole utterance and emits a digit string; [`Model`] refuses it (load it with
//! [`crate::ctc::StringModel`]).
//!
//! A model is `name.safetensors` plus `name.json` ([`ModelConfig`]: architecture, head and
//! feature config). A weights file without its JSON (such as the original's) is taken as the original
//! architecture with the default features.

use crate::features::FeatureConfig;
use crate::{Error, NUM_CLASSES, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Network architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The original project's CNN.
    Original,
    /// Batch-normalised conv blocks and global average + max pooling: the prediction does not
    /// depend on where in the window the word sits.
    Compact,
    /// The compact network with twice the channels (32, 64, 128): about four times the
    /// compute, and better on voices it never heard.
    Wide,
    /// The wide network's channels with depthwise-separable convolutions in its last two blocks:
    /// about a sixth of the multiply-adds, for training speed.
    Ds,
    /// The string model's network over a whole utterance (layers in [`crate::ctc`]).
    Tcn,
    /// The string network with a wider and deeper 1-D part ([`crate::ctc::Shape`]).
    #[serde(rename = "tcn-wide")]
    TcnWide,
}

/// What a model's output means: the kind of recogniser it is. Saved in the config (absent in
/// a classifier's, so every model file made before string models loads unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// One digit per 1 s clip: ten logits.
    #[default]
    Classifier,
    /// A digit string per utterance: per-frame logits over blank and the ten digits, decoded
    /// by [`crate::ctc`].
    Ctc,
}

impl Head {
    pub fn is_classifier(&self) -> bool {
        *self == Head::Classifier
    }

    pub fn name(self) -> &'static str {
        match self {
            Head::Classifier => "classifier",
            Head::Ctc => "ctc",
        }
    }
}

impl std::str::FromStr for Head {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "classifier" => Ok(Head::Classifier),
            "ctc" => Ok(Head::Ctc),
            _ => Err(Error::Config(format!("unknown head '{s}' (classifier, ctc)"))),
        }
    }
}

impl Arch {
    /// Its name on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Original => "original",
            Arch::Compact => "compact",
            Arch::Wide => "wide",
            Arch::Ds => "ds",
            Arch::Tcn => "tcn",
            Arch::TcnWide => "tcn-wide",
        }
    }

    /// How many 2x2 max-poolings (rounding down) shrink the feature map.
    pub fn pools(self) -> u32 {
        match self {
            Arch::Original => 3,
            Arch::Compact | Arch::Wide | Arch::Ds => 2,
            // One stride-2 convolution; an utterance is at least one frame.
            Arch::Tcn | Arch::TcnWide => 0,
        }
    }

    /// Input and output channels of its three 3x3 convolutions.
    pub fn channels(self) -> [(usize, usize); 3] {
        match self {
            Arch::Original | Arch::Compact => [(1, 16), (16, 32), (32, 64)],
            // Not a CNN of three convolutions: see `crate::ctc` for its layers.
            Arch::Tcn | Arch::TcnWide => [(0, 0); 3],
            Arch::Wide | Arch::Ds => [(1, 32), (32, 64), (64, 128)],
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "original" => Ok(Arch::Original),
            "compact" => Ok(Arch::Compact),
            "wide" => Ok(Arch::Wide),
            "ds" => Ok(Arch::Ds),
            "tcn" => Ok(Arch::Tcn),
            "tcn-wide" => Ok(Arch::TcnWide),
            _ => Err(Error::Config(format!(
                "unknown architecture '{s}' (original, compact, wide, ds, tcn, tcn-wide)"
            ))),
        }
    }
}

/// What is saved beside the weights: enough to rebuild the model and its front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    pub num_classes: usize,
    pub features: FeatureConfig,
    /// The kind of recogniser (the classifier unless the file says otherwise).
    #[serde(default, skip_serializing_if = "Head::is_classifier")]
    pub head: Head,
    /// String models: each utterance is also read with the voice's pitch and formants moved by
    /// these factors at the same tempo ([`crate::strings::voice_shifted_features`]; below 1:
    /// lower, as a man's voice), and every frame's probabilities are the mean of the readings.
    /// Chosen by measurement for a trained model (its model card); empty: one plain reading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voice_shifts: Vec<f32>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Original,
            num_classes: NUM_CLASSES,
            features: FeatureConfig::default(),
            head: Head::Classifier,
            voice_shifts: vec![],
        }
    }
}

impl ModelConfig {
    /// Reads a config from its JSON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::model(origin, format!("not a model config this version understands: {e}")))
    }

    /// The config saved beside `weights` (`x.json`); the original architecture with the default
    /// features when there is none (the original project's weights come without one).
    pub fn for_weights(weights: &Path) -> Result<Self> {
        let path = config_path(weights);
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            ModelConfig::parse(&text, &path)
        } else {
            Ok(ModelConfig::default())
        }
    }

    /// Checks the config itself: a valid front end and ten classes (a string model: the tcn
    /// network, blank and the ten digits).
    pub fn validate(&self) -> Result<()> {
        self.features.validate()?;
        match (self.head, self.arch) {
            (Head::Ctc, Arch::Tcn | Arch::TcnWide) => return crate::ctc::validate(self),
            (Head::Ctc, _) | (Head::Classifier, Arch::Tcn | Arch::TcnWide) => {
                return Err(Error::Config(
                    "the ctc head goes with the tcn network, and only with it".to_string(),
                ));
            }
            (Head::Classifier, _) => {}
        }
        if self.num_classes != NUM_CLASSES {
            return Err(Error::Config(format!("num_classes must be {NUM_CLASSES}")));
        }
        // Each 2x2 pooling halves the map (rounding down); none may be pooled away.
        let pools = self.arch.pools();
        let min = 1usize << pools;
        let (rows, frames) = (self.features.n_mfcc, self.features.n_frames());
        if rows < min || frames < min {
            return Err(Error::Config(format!(
                "the {} network pools {pools} times and needs at least {min} coefficients and \
                 {min} frames; this front end gives {rows} x {frames}",
                self.arch.name()
            )));
        }
        Ok(())
    }

    /// Every parameter tensor of the architecture: name and shape, sorted by name.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = vec![];
        match self.arch {
            Arch::Original => {
                for (i, (cin, cout)) in self.arch.channels().into_iter().enumerate() {
                    let name = format!("conv_stack.{}", 3 * i);
                    out.push((format!("{name}.weight"), vec![cout, cin, 3, 3]));
                    out.push((format!("{name}.bias"), vec![cout]));
                }
                let flat = original_flat_len(&self.features);
                out.push(("linear_stack.0.weight".into(), vec![128, flat]));
                out.push(("linear_stack.0.bias".into(), vec![128]));
                out.push(("linear_stack.3.weight".into(), vec![self.num_classes, 128]));
                out.push(("linear_stack.3.bias".into(), vec![self.num_classes]));
            }
            Arch::Compact | Arch::Wide | Arch::Ds => {
                let channels = self.arch.channels();
                let norm = |out: &mut Vec<(String, Vec<usize>)>, name: String, n: usize| {
                    for part in ["weight", "bias", "running_mean", "running_var"] {
                        out.push((format!("{name}.{part}"), vec![n]));
                    }
                };
                for (i, (cin, cout)) in channels.into_iter().enumerate() {
                    if self.arch == Arch::Ds && i > 0 {
                        // Depthwise 3x3 (one filter per input channel), then pointwise 1x1.
                        out.push((format!("blocks.{i}.depthwise.weight"), vec![cin, 1, 3, 3]));
                        norm(&mut out, format!("blocks.{i}.dnorm"), cin);
                        out.push((format!("blocks.{i}.conv.weight"), vec![cout, cin, 1, 1]));
                    } else {
                        out.push((format!("blocks.{i}.conv.weight"), vec![cout, cin, 3, 3]));
                    }
                    norm(&mut out, format!("blocks.{i}.norm"), cout);
                }
                // Mean and max of the last block's channels.
                out.push(("head.weight".into(), vec![self.num_classes, 2 * channels[2].1]));
                out.push(("head.bias".into(), vec![self.num_classes]));
            }
            Arch::Tcn | Arch::TcnWide => out = crate::ctc::parameters(self),
        }
        out.sort();
        out
    }
}

/// Inputs to the original network's first linear layer: 64 channels after three 2x2 max-pools.
pub fn original_flat_len(features: &FeatureConfig) -> usize {
    let shrink = 1usize << Arch::Original.pools();
    let [.., (_, last)] = Arch::Original.channels();
    last * (features.n_mfcc / shrink) * (features.n_frames() / shrink)
}

/// The config file that belongs to a weights file: `x.safetensors` -> `x.json`.
pub fn config_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// The metrics file that belongs to a weights file: `x.safetensors` -> `x.metrics.json`.
pub fn metrics_path(weights: &Path) -> PathBuf {
    weights.with_extension("metrics.json")
}

/// Index and value of the largest probability.
pub fn argmax(p: &[f32; NUM_CLASSES]) -> (u8, f32) {
    let mut best = (0u8, f32::NEG_INFINITY);
    for (i, &v) in p.iter().enumerate() {
        if v > best.1 {
            best = (i as u8, v);
        }
    }
    best
}

/// A trained model ready to predict, in plain Rust: weights, network and config.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    net: Net,
}

/// The layers, batch norm folded into the convolutions.
#[derive(Debug, Clone)]
enum Net {
    Original {
        convs: [Conv; 3],
        fc1: Dense,
        fc2: Dense,
    },
    Compact {
        convs: [Conv; 3],
        head: Dense,
    },
    /// The first block a full convolution, the others depthwise then pointwise.
    Separable {
        first: Conv,
        blocks: [(Depthwise, Dense); 2],
        head: Dense,
    },
}

/// A depthwise 3x3 convolution with padding 1 (one filter per channel), batch norm folded in:
/// weights `[channel, 9]`, one bias per channel.
#[derive(Debug, Clone)]
struct Depthwise {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A 3x3 convolution with padding 1: weights `[out, in * 9]`, one bias per output channel.
#[derive(Debug, Clone)]
struct Conv {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A linear layer: weights `[out, in]` as PyTorch stores them.
#[derive(Debug, Clone)]
struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Batch norm's epsilon (PyTorch's and tch's default).
const BN_EPS: f32 = 1e-5;
/// Clips per forward batch: large enough for efficient matrix products, small enough to stay in
/// cache.
const BATCH: usize = 32;

impl Model {
    /// Loads `path` (safetensors) and its config (`path` with `.json`), checking every tensor's
    /// name and shape against the architecture.
    pub fn load(path: &Path) -> Result<Self> {
        let (config, bytes) = read_model_files(path)?;
        let model = Model::from_bytes(&bytes, config, path)?;
        tracing::debug!(path = %path.display(), arch = ?model.config.arch, "loaded model");
        Ok(model)
    }

    /// Builds the model for `config` from the bytes of a safetensors file (such as weights
    /// embedded in a binary); `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, origin: &Path) -> Result<Self> {
        let mut tensors = read_weights(bytes, &config, origin)?;
        let mut take = |name: &str| tensors.remove(name).map(|(_, values)| values).unwrap_or_default();
        let net = match config.arch {
            Arch::Original => {
                let convs = [0, 3, 6].map(|i| {
                    let weight = take(&format!("conv_stack.{i}.weight"));
                    Conv::new(weight, take(&format!("conv_stack.{i}.bias")))
                });
                let fc1 = Dense::new(take("linear_stack.0.weight"), take("linear_stack.0.bias"));
                let fc2 = Dense::new(take("linear_stack.3.weight"), take("linear_stack.3.bias"));
                Net::Original { convs, fc1, fc2 }
            }
            Arch::Compact | Arch::Wide => {
                let convs = [0, 1, 2].map(|i| {
                    let part = |p: &str| format!("blocks.{i}.norm.{p}");
                    let weight = take(&format!("blocks.{i}.conv.weight"));
                    let (gamma, beta) = (take(&part("weight")), take(&part("bias")));
                    let (mean, var) = (take(&part("running_mean")), take(&part("running_var")));
                    Conv::folded(weight, &gamma, &beta, &mean, &var)
                });
                Net::Compact { convs, head: Dense::new(take("head.weight"), take("head.bias")) }
            }
            Arch::Ds => {
                let mut folded = |conv: String, norm: &str| {
                    let part = |p: &str| format!("{norm}.{p}");
                    let weight = take(&conv);
                    let (gamma, beta) = (take(&part("weight")), take(&part("bias")));
                    let (mean, var) = (take(&part("running_mean")), take(&part("running_var")));
                    Conv::folded(weight, &gamma, &beta, &mean, &var)
                };
                let first = folded("blocks.0.conv.weight".into(), "blocks.0.norm");
                let blocks = [1, 2].map(|i| {
                    let dw = folded(format!("blocks.{i}.depthwise.weight"), &format!("blocks.{i}.dnorm"));
                    let pw = folded(format!("blocks.{i}.conv.weight"), &format!("blocks.{i}.norm"));
                    // A 1x1 convolution over `[channel][pixel]` maps is a linear layer.
                    (Depthwise { weight: dw.weight, bias: dw.bias }, Dense::new(pw.weight, pw.bias))
                });
                Net::Separable { first, blocks, head: Dense::new(take("head.weight"), take("head.bias")) }
            }
            Arch::Tcn | Arch::TcnWide => {
                return Err(Error::model(
                    origin,
                    "a string model (head ctc): it reads whole utterances, not 1 s clips (load it as one)",
                ));
            }
        };
        Ok(Model { config, net })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits for `n` feature maps laid end to end (`n * n_mfcc * n_frames` values), `n * 10`
    /// values, computed on up to `threads` threads.
    pub fn logits(&self, features: &[f32], threads: usize) -> Result<Vec<f32>> {
        let len = self.config.features.feature_len();
        if len == 0 || !features.len().is_multiple_of(len) {
            return Err(Error::Config(format!(
                "feature buffer of {} values is not a multiple of {len}",
                features.len()
            )));
        }
        let clips = features.len() / len;
        let mut out = vec![0.0; clips * NUM_CLASSES];
        let batches = clips.div_ceil(BATCH);
        if threads <= 1 || batches <= 1 {
            // One batch (a single utterance in `listen`): no thread to start.
            let mut scratch = vec![];
            for (x, y) in features.chunks(BATCH * len).zip(out.chunks_mut(BATCH * NUM_CLASSES)) {
                y.copy_from_slice(&self.forward(x, &mut scratch));
            }
            return Ok(out);
        }
        // Batches of BATCH clips on the pool; a clip's logits do not depend on its batch.
        use rayon::prelude::*;
        crate::parallel::on_threads(threads.min(batches), || {
            features
                .par_chunks(BATCH * len)
                .zip(out.par_chunks_mut(BATCH * NUM_CLASSES))
                .for_each_init(Vec::new, |scratch, (x, y)| y.copy_from_slice(&self.forward(x, scratch)))
        })?;
        Ok(out)
    }

    /// Class probabilities (softmax of the logits) for `n` feature maps laid end to end.
    pub fn probabilities(&self, features: &[f32], threads: usize) -> Result<Vec<[f32; NUM_CLASSES]>> {
        let logits = self.logits(features, threads)?;
        Ok(logits.chunks_exact(NUM_CLASSES).map(softmax).collect())
    }

    /// One batch: `x` holds whole feature maps; returns their logits.
    fn forward(&self, x: &[f32], scratch: &mut Vec<f32>) -> Vec<f32> {
        let f = &self.config.features;
        let batch = x.len() / f.feature_len();
        let mut maps = Maps::from_batch(x, batch, f.n_mfcc, f.n_frames());
        match &self.net {
            Net::Original { convs, fc1, fc2 } => {
                for conv in convs {
                    maps = conv.forward(&maps, scratch).relu_pool();
                }
                let hidden = fc1.forward(&maps.per_clip(), batch);
                let hidden: Vec<f32> = hidden.into_iter().map(|v| v.max(0.0)).collect();
                fc2.forward(&hidden, batch)
            }
            Net::Compact { convs, head } => {
                for (i, conv) in convs.iter().enumerate() {
                    maps = conv.forward(&maps, scratch);
                    maps = if i < 2 { maps.relu_pool() } else { maps.relu() };
                }
                head.forward(&maps.mean_max(), batch)
            }
            Net::Separable { first, blocks, head } => {
                // Stride 2: the full-resolution output at even rows and columns.
                maps = first.forward(&maps, scratch).every_other().relu();
                for (i, (dw, pw)) in blocks.iter().enumerate() {
                    maps = pw.pointwise(&dw.forward(&maps).relu());
                    maps = if i == 0 { maps.relu_pool() } else { maps.relu() };
                }
                head.forward(&maps.mean_max(), batch)
            }
        }
    }
}

fn softmax(logits: &[f32]) -> [f32; NUM_CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0.0; NUM_CLASSES];
    for (p, &l) in p.iter_mut().zip(logits) {
        *p = (l - max).exp();
    }
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// Tensors by name: shape and values.
pub type Tensors = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

/// A model's two files: its config (see [`ModelConfig::for_weights`]) and the weights' bytes.
pub fn read_model_files(path: &Path) -> Result<(ModelConfig, Vec<u8>)> {
    if !path.is_file() {
        return Err(Error::model(path, "model file not found (train one with `train`, or pass --model)"));
    }
    let config = ModelConfig::for_weights(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok((config, bytes))
}

/// The tensors of a safetensors file, checked against `config`'s architecture: every tensor
/// that is missing, unexpected or of the wrong shape is named in the error. Both forward passes
/// (this one and libtorch's) load their weights through it.
pub fn read_weights(bytes: &[u8], config: &ModelConfig, origin: &Path) -> Result<Tensors> {
    config.validate()?;
    let tensors = read_tensors(bytes, origin)?;
    check_parameters(config, &tensors, origin)?;
    Ok(tensors)
}

/// Reads every tensor of a safetensors file as f32 (f32 and f64 files are accepted).
fn read_tensors(bytes: &[u8], origin: &Path) -> Result<Tensors> {
    use safetensors::Dtype;
    let unreadable =
        |e: &dyn std::fmt::Display| Error::model(origin, format!("not a readable safetensors file: {e}"));
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| unreadable(&e))?;
    let mut out = std::collections::HashMap::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => {
                data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4]))).collect()
            }
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            other => {
                return Err(Error::model(
                    origin,
                    format!("{name} is {other:?}; only F32 and F64 weights are read"),
                ));
            }
        };
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Names every tensor that is missing, unexpected or of the wrong shape.
fn check_parameters(config: &ModelConfig, tensors: &Tensors, origin: &Path) -> Result<()> {
    let expected = config.parameters();
    let mut problems = vec![];
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!("unexpected tensor {name}"));
        }
    }
    for (name, shape) in &expected {
        match tensors.get(name) {
            None => problems.push(format!("missing tensor {name}")),
            Some((got, _)) if got != shape => {
                let mut problem =
                    format!("{name} has shape {got:?}, the {:?} model expects {shape:?}", config.arch);
                if name == "linear_stack.0.weight" {
                    // Its width follows the feature map's size, which the config sets.
                    let f = &config.features;
                    problem.push_str(&format!(
                        " (from the config's front end: n_mfcc {} x {} frames; the weights were trained \
                         on another feature config)",
                        f.n_mfcc,
                        f.n_frames()
                    ));
                }
                problems.push(problem);
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::model(
            origin,
            format!("does not fit the {} architecture: {}", config.arch.name(), problems.join("; ")),
        ))
    }
}

impl Conv {
    /// From PyTorch's `[out, in, 3, 3]` weights and the bias.
    fn new(weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let outputs = bias.len();
        Conv { inputs: weight.len() / (9 * outputs.max(1)), outputs, weight, bias }
    }

    /// A bias-free convolution followed by batch norm (inference statistics), as one
    /// convolution: `gamma * (conv - mean) / sqrt(var + eps) + beta`.
    fn folded(weight: Vec<f32>, gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> Self {
        let outputs = gamma.len();
        let per_output = weight.len() / outputs.max(1);
        let mut conv = Conv::new(weight, vec![0.0; outputs]);
        let stats = gamma.iter().zip(beta).zip(mean.iter().zip(var));
        for ((row, bias), ((g, b), (m, v))) in
            conv.weight.chunks_exact_mut(per_output.max(1)).zip(&mut conv.bias).zip(stats)
        {
            let scale = g / (v + BN_EPS).sqrt();
            row.iter_mut().for_each(|w| *w *= scale);
            *bias = b - m * scale;
        }
        conv
    }

    /// Convolution as one matrix product: weights `[out, in*9]` times the unfolded input
    /// `[in*9, batch*h*w]` (im2col; `cols` is reused between calls).
    #[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
    fn forward(&self, x: &Maps, cols: &mut Vec<f32>) -> Maps {
        let (h, w) = (x.h, x.w);
        let n = x.batch * h * w;
        cols.clear();
        cols.resize(self.inputs * 9 * n, 0.0);
        for c in 0..self.inputs {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &mut cols[(c * 9 + ky * 3 + kx) * n..][..n];
                    for b in 0..x.batch {
                        for y in 0..h {
                            // Input row y + ky - 1; outside the map stays zero (padding).
                            let Some(sy) = (y + ky).checked_sub(1).filter(|&sy| sy < h) else { continue };
                            let src = &x.data[((c * x.batch + b) * h + sy) * w..][..w];
                            let dst = &mut row[(b * h + y) * w..][..w];
                            match kx {
                                0 => dst[1..].copy_from_slice(&src[..w - 1]),
                                1 => dst.copy_from_slice(src),
                                _ => dst[..w - 1].copy_from_slice(&src[1..]),
                            }
                        }
                    }
                }
            }
        }
        let mut data = Vec::with_capacity(self.outputs * n);
        for &b in &self.bias {
            data.extend(std::iter::repeat_n(b, n));
        }
        let k = self.inputs * 9;
        gemm(self.outputs, k, n, Mat::rows(&self.weight, k), Mat::rows(cols, n), &mut data);
        Maps { channels: self.outputs, batch: x.batch, h, w, data }
    }
}

impl Depthwise {
    /// Each channel convolved with its own 3x3 filter, zero padding 1.
    #[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
    fn forward(&self, x: &Maps) -> Maps {
        let (h, w) = (x.h, x.w);
        let mut data = vec![0.0; x.data.len()];
        for (c, (filter, &bias)) in self.weight.chunks_exact(9).zip(&self.bias).enumerate() {
            for b in 0..x.batch {
                let plane = (c * x.batch + b) * h * w;
                let (src, dst) = (&x.data[plane..][..h * w], &mut data[plane..][..h * w]);
                dst.iter_mut().for_each(|v| *v = bias);
                for ky in 0..3 {
                    for y in 0..h {
                        // Input row y + ky - 1; outside the map adds nothing (padding).
                        let Some(sy) = (y + ky).checked_sub(1).filter(|&sy| sy < h) else { continue };
                        let (s, d) = (&src[sy * w..][..w], &mut dst[y * w..][..w]);
                        let (k0, k1, k2) = (filter[ky * 3], filter[ky * 3 + 1], filter[ky * 3 + 2]);
                        for (o, &v) in d.iter_mut().zip(s) {
                            *o += k1 * v;
                        }
                        for (o, &v) in d[1..].iter_mut().zip(&s[..w - 1]) {
                            *o += k0 * v;
                        }
                        for (o, &v) in d[..w - 1].iter_mut().zip(&s[1..]) {
                            *o += k2 * v;
                        }
                    }
                }
            }
        }
        Maps { data, ..*x }
    }
}

impl Dense {
    /// As a 1x1 convolution: `[in][pixels]` maps to `[out][pixels]`, one matrix product.
    fn pointwise(&self, x: &Maps) -> Maps {
        let n = x.batch * x.h * x.w;
        let mut data = Vec::with_capacity(self.outputs * n);
        for &b in &self.bias {
            data.extend(std::iter::repeat_n(b, n));
        }
        gemm(
            self.outputs,
            self.inputs,
            n,
            Mat::rows(&self.weight, self.inputs),
            Mat::rows(&x.data, n),
            &mut data,
        );
        Maps { channels: self.outputs, batch: x.batch, h: x.h, w: x.w, data }
    }

    fn new(weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let outputs = bias.len();
        Dense { inputs: weight.len() / outputs.max(1), outputs, weight, bias }
    }

    /// `x` is `[batch, in]`; returns `[batch, out]`.
    fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut out: Vec<f32> = (0..batch).flat_map(|_| self.bias.iter().copied()).collect();
        // x [batch, in] times the transposed weights [in, out].
        let weight_t = Mat { data: &self.weight, row_stride: 1, col_stride: self.inputs };
        gemm(batch, self.inputs, self.outputs, Mat::rows(x, self.inputs), weight_t, &mut out);
        out
    }
}

/// Activations of a batch, laid out `[channel][clip][row][column]` so that a convolution is one
/// matrix product over the whole batch.
#[derive(Debug)]
struct Maps {
    channels: usize,
    batch: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

#[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
impl Maps {
    /// One input channel: the feature maps of `batch` clips as they come.
    fn from_batch(x: &[f32], batch: usize, h: usize, w: usize) -> Self {
        Maps { channels: 1, batch, h, w, data: x.to_vec() }
    }

    fn relu(mut self) -> Self {
        self.data.iter_mut().for_each(|v| *v = v.max(0.0));
        self
    }

    /// ReLU, then 2x2 max-pooling with stride 2 (an odd last row or column is dropped, as in
    /// PyTorch). The order does not matter: both are monotonic.
    fn relu_pool(self) -> Self {
        let (h2, w2) = (self.h / 2, self.w / 2);
        let mut data = Vec::with_capacity(self.channels * self.batch * h2 * w2);
        for plane in self.data.chunks_exact(self.h * self.w) {
            for y in 0..h2 {
                let (top, bottom) =
                    (&plane[2 * y * self.w..][..self.w], &plane[(2 * y + 1) * self.w..][..self.w]);
                for x in 0..w2 {
                    let m = top[2 * x].max(top[2 * x + 1]).max(bottom[2 * x]).max(bottom[2 * x + 1]);
                    data.push(m.max(0.0));
                }
            }
        }
        Maps { h: h2, w: w2, data, ..self }
    }

    /// Rows and columns 0, 2, 4, ...: a stride-2 convolution (padding 1) from its stride-1 output.
    fn every_other(self) -> Self {
        let (h2, w2) = (self.h.div_ceil(2), self.w.div_ceil(2));
        let mut data = Vec::with_capacity(self.channels * self.batch * h2 * w2);
        for plane in self.data.chunks_exact(self.h * self.w) {
            for row in plane.chunks_exact(self.w).step_by(2) {
                data.extend(row.iter().step_by(2));
            }
        }
        Maps { h: h2, w: w2, data, ..self }
    }

    /// Each clip's activations flattened as PyTorch does (`[channel][row][column]`).
    fn per_clip(&self) -> Vec<f32> {
        let plane = self.h * self.w;
        let mut out = Vec::with_capacity(self.data.len());
        for b in 0..self.batch {
            for c in 0..self.channels {
                out.extend_from_slice(&self.data[(c * self.batch + b) * plane..][..plane]);
            }
        }
        out
    }

    /// Global pooling: per clip, the mean of every channel, then the max of every channel.
    fn mean_max(&self) -> Vec<f32> {
        let plane = self.h * self.w;
        let mut out = vec![0.0; self.batch * 2 * self.channels];
        for c in 0..self.channels {
            for b in 0..self.batch {
                let values = &self.data[(c * self.batch + b) * plane..][..plane];
                let row = &mut out[b * 2 * self.channels..][..2 * self.channels];
                row[c] = values.iter().sum::<f32>() / plane as f32;
                row[self.channels + c] = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            }
        }
        out
    }
}

/// A read-only matrix view with explicit strides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub(crate) fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, row_stride: cols, col_stride: 1 }
    }

    /// Whether every element of an `r x c` matrix lies inside `data`.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.row_stride + (c - 1) * self.col_stride < self.data.len()
    }
}

/// `c[m, n] += a[m, k] * b[k, n]`, `c` row-major. Uses `matrixmultiply` (SIMD kernels picked at
/// run time) after checking that every index is in bounds.
#[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, c: &mut [f32]) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    if a.fits(m, k) && b.fits(k, n) && c.len() >= m * n {
        let stride = |s: usize| isize::try_from(s).ok();
        if let (Some(rsa), Some(csa), Some(rsb), Some(csb), Some(rsc)) = (
            stride(a.row_stride),
            stride(a.col_stride),
            stride(b.row_stride),
            stride(b.col_stride),
            stride(n),
        ) {
            // SAFETY: `fits` and the length check above guarantee that every element the product
            // reads (a: m x k, b: k x n) and writes (c: m x n, row stride n) is inside its slice,
            // and `c` is borrowed mutably, so it does not alias `a` or `b`.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.data.as_ptr(),
                    rsa,
                    csa,
                    b.data.as_ptr(),
                    rsb,
                    csb,
                    1.0,
                    c.as_mut_ptr(),
                    rsc,
                    1,
                );
            }
            return;
        }
    }
    // Unreachable for shapes checked at load time; a plain loop keeps this function total.
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum +=
                    a.data[i * a.row_stride + p * a.col_stride] * b.data[p * b.row_stride + j * b.col_stride];
            }
            c[i * n + j] += sum;
        }
    }
}
