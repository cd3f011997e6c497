//! The CNN and its files.
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
//! A model is `name.safetensors` plus `name.json` ([`ModelConfig`]: architecture and feature
//! config). A weights file without its JSON (such as the original's) is taken as the original
//! architecture with the default features.

use crate::features::FeatureConfig;
use crate::{Error, NUM_CLASSES, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

/// Network architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The original project's CNN.
    Original,
    /// Batch-normalised conv blocks and global average + max pooling: the prediction does not
    /// depend on where in the window the word sits.
    Compact,
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "original" => Ok(Arch::Original),
            "compact" => Ok(Arch::Compact),
            _ => Err(Error::Config(format!("unknown architecture '{s}' (original, compact)"))),
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { arch: Arch::Original, num_classes: NUM_CLASSES, features: FeatureConfig::default() }
    }
}

impl ModelConfig {
    /// Reads a config from its JSON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::model(origin, format!("not a model config this version understands: {e}")))
    }
}

/// The config file that belongs to a weights file: `x.safetensors` -> `x.json`.
pub fn config_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// The metrics file that belongs to a weights file: `x.safetensors` -> `x.metrics.json`.
pub fn metrics_path(weights: &Path) -> PathBuf {
    weights.with_extension("metrics.json")
}

/// The original CNN's layers, named as in the PyTorch module.
#[derive(Debug)]
struct OriginalNet {
    convs: Vec<nn::Conv2D>,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl OriginalNet {
    fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let stack = root / "conv_stack";
        let channels = [1, 16, 32, 64];
        let convs = (0..3)
            .map(|i| {
                let init = torch_default_init(channels[i] * 9);
                let conv_cfg =
                    nn::ConvConfig { padding: 1, ws_init: init, bs_init: init, ..Default::default() };
                nn::conv2d(&stack / (3 * i).to_string(), channels[i], channels[i + 1], 3, conv_cfg)
            })
            .collect();
        // Three 2x2 max-pools (floor): 13 x 63 -> 1 x 7.
        let (mut h, mut w) = (cfg.features.n_mfcc as i64, cfg.features.n_frames() as i64);
        for _ in 0..3 {
            h /= 2;
            w /= 2;
        }
        let flat = 64 * h * w;
        let lin = root / "linear_stack";
        OriginalNet {
            convs,
            fc1: nn::linear(&lin / "0", flat, 128, linear_init(flat)),
            fc2: nn::linear(&lin / "3", 128, cfg.num_classes as i64, linear_init(128)),
        }
    }
}

/// PyTorch's default initialisation of conv and linear layers (weights and biases uniform in
/// +-1/sqrt(fan_in)). tch's own default (Kaiming with ReLU gain) is 2.4x wider, which on raw dB
/// features kills most ReLUs in the first steps; the original recipe was tuned on PyTorch's.
fn torch_default_init(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

fn linear_init(fan_in: i64) -> nn::LinearConfig {
    let init = torch_default_init(fan_in);
    nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true }
}

impl ModuleT for OriginalNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for conv in &self.convs {
            x = conv.forward(&x).relu().max_pool2d_default(2);
        }
        x.flatten(1, -1).apply(&self.fc1).relu().dropout(0.5, train).apply(&self.fc2)
    }
}

/// The compact CNN:
///
/// ```text
/// input                 [B, 1, 13, 63]
/// blocks.{0,1,2}        conv 3x3 (16, 32, 64), batch norm, ReLU; max-pool 2 after the first two
///                       -> [B, 64, 3, 15]
/// pool                  mean and max over (coefficient, frame) -> [B, 128]
/// head                  dropout 0.3, linear 128 -> 10
/// ```
#[derive(Debug)]
struct CompactNet {
    convs: Vec<nn::Conv2D>,
    norms: Vec<nn::BatchNorm>,
    head: nn::Linear,
}

impl CompactNet {
    fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let blocks = root / "blocks";
        let channels = [1, 16, 32, 64];
        let mut convs = vec![];
        let mut norms = vec![];
        for i in 0..3 {
            let p = &blocks / i.to_string();
            let init = torch_default_init(channels[i] * 9);
            let conv_cfg = nn::ConvConfig { padding: 1, ws_init: init, bias: false, ..Default::default() };
            convs.push(nn::conv2d(&p / "conv", channels[i], channels[i + 1], 3, conv_cfg));
            norms.push(nn::batch_norm2d(&p / "norm", channels[i + 1], Default::default()));
        }
        let head =
            nn::linear(root / "head", 2 * channels[3], cfg.num_classes as i64, linear_init(2 * channels[3]));
        CompactNet { convs, norms, head }
    }
}

impl ModuleT for CompactNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            x = conv.forward(&x).apply_t(norm, train).relu();
            if i < 2 {
                x = x.max_pool2d_default(2);
            }
        }
        let mean = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let max = x.amax(&[2i64, 3][..], false);
        Tensor::cat(&[mean, max], 1).dropout(0.3, train).apply(&self.head)
    }
}

/// The network of one architecture.
#[derive(Debug)]
enum Net {
    Original(OriginalNet),
    Compact(CompactNet),
}

/// A model ready to train or predict: weights, network and config.
#[derive(Debug)]
pub struct Classifier {
    pub vs: nn::VarStore,
    net: Net,
    config: ModelConfig,
}

impl Classifier {
    /// A freshly initialised model (seed with `tch::manual_seed` first for reproducibility).
    pub fn new(config: ModelConfig, device: Device) -> Result<Self> {
        config.features.validate()?;
        if config.num_classes != NUM_CLASSES {
            return Err(Error::Config(format!("num_classes must be {NUM_CLASSES}")));
        }
        let vs = nn::VarStore::new(device);
        let net = match config.arch {
            Arch::Original => Net::Original(OriginalNet::new(&vs.root(), &config)),
            Arch::Compact => Net::Compact(CompactNet::new(&vs.root(), &config)),
        };
        Ok(Classifier { vs, net, config })
    }

    /// Loads `path` (safetensors) and its config (`path` with `.json`), checking every tensor's
    /// name and shape against the architecture.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::model(path, "model file not found (train one with `train`, or pass --model)"));
        }
        let cfg_path = config_path(path);
        let config = if cfg_path.is_file() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
            ModelConfig::parse(&text, &cfg_path)?
        } else {
            ModelConfig::default()
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let model = Classifier::from_bytes(&bytes, config, device, path)?;
        tracing::debug!(path = %path.display(), arch = ?model.config.arch, "loaded model");
        Ok(model)
    }

    /// Builds the model for `config` from the bytes of a safetensors file (such as weights
    /// embedded in a binary); `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, device: Device, origin: &Path) -> Result<Self> {
        let model = Classifier::new(config, device)?;
        let unreadable =
            |e: &dyn std::fmt::Display| Error::model(origin, format!("not a readable safetensors file: {e}"));
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| unreadable(&e))?;
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(name, view)| Tensor::try_from(view).map(|t| (name, t)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        model.copy_from(origin, tensors)?;
        Ok(model)
    }

    fn copy_from(&self, path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
        let mut vars = self.vs.variables();
        let mut problems = vec![];
        let mut pending = vec![];
        for (name, tensor) in tensors {
            match vars.remove(&name) {
                None => problems.push(format!("unexpected tensor {name}")),
                Some(var) if var.size() != tensor.size() => problems.push(format!(
                    "{name} has shape {:?}, the {:?} model expects {:?}",
                    tensor.size(),
                    self.config.arch,
                    var.size()
                )),
                Some(var) => pending.push((var, tensor)),
            }
        }
        let mut missing: Vec<String> = vars.into_keys().collect();
        missing.sort();
        problems.extend(missing.into_iter().map(|n| format!("missing tensor {n}")));
        if !problems.is_empty() {
            return Err(Error::model(
                path,
                format!("does not fit the {:?} architecture: {}", self.config.arch, problems.join("; ")),
            ));
        }
        tch::no_grad(|| -> Result<()> {
            for (mut var, tensor) in pending {
                var.f_copy_(&tensor.f_to_kind(Kind::Float)?)?;
            }
            Ok(())
        })
    }

    /// Writes the weights and the config, each atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        crate::atomic::write_with(path, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))?;
        crate::atomic::write_json(&config_path(path), &self.config)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Logits `[B, 10]` for features `[B, 1, n_mfcc, n_frames]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        match &self.net {
            Net::Original(n) => n.forward_t(xs, train),
            Net::Compact(n) => n.forward_t(xs, train),
        }
    }

    /// Refuses a front end that is not the one this model was trained with.
    pub fn check_features(&self, features: &FeatureConfig) -> Result<()> {
        let diff = self.config.features.differences(features);
        if diff.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!("feature config differs from the model's: {}", diff.join(", "))))
        }
    }

    /// Class probabilities for `n` feature maps laid end to end, in batches of `batch` maps.
    pub fn probabilities(&self, features: &[f32], batch: usize) -> Result<Vec<[f32; NUM_CLASSES]>> {
        let f = &self.config.features;
        let len = f.feature_len();
        if len == 0 || !features.len().is_multiple_of(len) {
            return Err(Error::Config(format!(
                "feature buffer of {} values is not a multiple of {len}",
                features.len()
            )));
        }
        let mut out = Vec::with_capacity(features.len() / len);
        tch::no_grad(|| -> Result<()> {
            for chunk in features.chunks(len * batch.max(1)) {
                let n = (chunk.len() / len) as i64;
                let xs = Tensor::f_from_slice(chunk)?
                    .f_view([n, 1, f.n_mfcc as i64, f.n_frames() as i64])?
                    .f_to_device(self.device())?;
                let probs = self.forward(&xs, false).f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?;
                let flat = Vec::<f32>::try_from(&probs.f_flatten(0, -1)?)?;
                for row in flat.chunks_exact(NUM_CLASSES) {
                    let mut p = [0.0; NUM_CLASSES];
                    p.copy_from_slice(row);
                    out.push(p);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Sets libtorch's intra-op CPU threads for the whole process.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

/// Picks the device: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" | "gpu" => cuda(0),
        _ => match name.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda(i),
            None => Err(Error::Config(format!("unknown device '{name}' (cpu, cuda, cuda:N, auto)"))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    if tch::Cuda::is_available() && (i as i64) < tch::Cuda::device_count() {
        Ok(Device::Cuda(i))
    } else {
        Err(Error::Config(format!(
            "CUDA device {i} is not available (this libtorch is CPU-only or no GPU is visible); use --device cpu"
        )))
    }
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
