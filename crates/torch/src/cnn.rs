//! The CNN in libtorch (tch): training, and anything that wants libtorch's devices (CUDA).
//!
//! Layers and parameter names are those of [`spoken_digits::model`], whose pure-Rust forward pass
//! serves prediction; weights saved here load there and back, and in PyTorch.

use crate::Tch;
use spoken_digits::model::{Arch, ModelConfig, original_flat_len, read_model_files, read_weights};
use spoken_digits::{Error, NUM_CLASSES, Result};
use std::path::Path;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

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
        let convs = (0..3)
            .zip(cfg.arch.channels())
            .map(|(i, (cin, cout))| {
                let (cin, cout) = (cin as i64, cout as i64);
                let init = torch_default_init(cin * 9);
                let conv_cfg =
                    nn::ConvConfig { padding: 1, ws_init: init, bs_init: init, ..Default::default() };
                nn::conv2d(&stack / (3 * i).to_string(), cin, cout, 3, conv_cfg)
            })
            .collect();
        // Three 2x2 max-pools (floor): 13 x 63 -> 1 x 7.
        let flat = original_flat_len(&cfg.features) as i64;
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
            // Pooling before the ReLU gives the same values and gradients (both are monotone)
            // with a quarter of the ReLU work; `bench train-compute`: 17.7 s -> 14.5 s.
            x = conv.forward(&x).max_pool2d_default(2).relu();
        }
        x.flatten(1, -1).apply(&self.fc1).relu().dropout(0.5, train).apply(&self.fc2)
    }
}

/// The compact and wide CNNs (layers in [`spoken_digits::model`]).
#[derive(Debug)]
struct CompactNet {
    convs: Vec<nn::Conv2D>,
    norms: Vec<nn::BatchNorm>,
    head: nn::Linear,
}

impl CompactNet {
    fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let blocks = root / "blocks";
        let mut convs = vec![];
        let mut norms = vec![];
        let channels = cfg.arch.channels();
        for (i, (cin, cout)) in channels.into_iter().enumerate() {
            let (cin, cout) = (cin as i64, cout as i64);
            let p = &blocks / i.to_string();
            let init = torch_default_init(cin * 9);
            let conv_cfg = nn::ConvConfig { padding: 1, ws_init: init, bias: false, ..Default::default() };
            convs.push(nn::conv2d(&p / "conv", cin, cout, 3, conv_cfg));
            norms.push(nn::batch_norm2d(&p / "norm", cout, Default::default()));
        }
        // Mean and max of the last block's channels.
        let [.., (_, last)] = channels;
        let last = last as i64;
        let head = nn::linear(root / "head", 2 * last, cfg.num_classes as i64, linear_init(2 * last));
        CompactNet { convs, norms, head }
    }
}

impl ModuleT for CompactNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            x = conv.forward(&x).apply_t(norm, train);
            if i < 2 {
                x = x.max_pool2d_default(2);
            }
            x = x.relu();
        }
        let mean = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let max = x.amax(&[2i64, 3][..], false);
        Tensor::cat(&[mean, max], 1).dropout(0.3, train).apply(&self.head)
    }
}

/// The depthwise-separable network (layers in [`spoken_digits::model`]).
#[derive(Debug)]
struct SeparableNet {
    first: (nn::Conv2D, nn::BatchNorm),
    /// Per block: depthwise conv and its norm, pointwise conv and its norm.
    blocks: Vec<(nn::Conv2D, nn::BatchNorm, nn::Conv2D, nn::BatchNorm)>,
    head: nn::Linear,
}

impl SeparableNet {
    fn new(root: &nn::Path, cfg: &ModelConfig) -> Self {
        let root_blocks = root / "blocks";
        let channels = cfg.arch.channels();
        let conv = |p: nn::Path, cin: i64, cout: i64, k: i64, groups: i64| {
            let init = torch_default_init(cin / groups * k * k);
            // The first convolution strides 2 instead of pooling after it: a quarter of the work at
            // the full-resolution layer, where batch norm and ReLU on 32 x 23 x 63 activations
            // cost more than the convolutions (perf).
            let stride = if cin == 1 { 2 } else { 1 };
            let conv_cfg = nn::ConvConfig {
                padding: k / 2,
                stride,
                groups,
                ws_init: init,
                bias: false,
                ..Default::default()
            };
            nn::conv2d(p, cin, cout, k, conv_cfg)
        };
        let [(cin0, cout0), rest @ ..] = channels;
        let p0 = &root_blocks / "0";
        let first = (
            conv(&p0 / "conv", cin0 as i64, cout0 as i64, 3, 1),
            nn::batch_norm2d(&p0 / "norm", cout0 as i64, Default::default()),
        );
        let blocks = rest
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| {
                let (cin, cout) = (cin as i64, cout as i64);
                let p = &root_blocks / (i + 1).to_string();
                (
                    conv(&p / "depthwise", cin, cin, 3, cin),
                    nn::batch_norm2d(&p / "dnorm", cin, Default::default()),
                    conv(&p / "conv", cin, cout, 1, 1),
                    nn::batch_norm2d(&p / "norm", cout, Default::default()),
                )
            })
            .collect();
        let [.., (_, last)] = channels;
        let last = last as i64;
        let head = nn::linear(root / "head", 2 * last, cfg.num_classes as i64, linear_init(2 * last));
        SeparableNet { first, blocks, head }
    }
}

impl ModuleT for SeparableNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (conv, norm) = &self.first;
        let mut x = conv.forward(xs).apply_t(norm, train).relu();
        for (i, (dw, dnorm, pw, norm)) in self.blocks.iter().enumerate() {
            x = dw.forward(&x).apply_t(dnorm, train).relu();
            x = pw.forward(&x).apply_t(norm, train);
            if i == 0 {
                x = x.max_pool2d_default(2);
            }
            x = x.relu();
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
    // Boxed: its first block's layers are held inline, several times the others' size.
    Separable(Box<SeparableNet>),
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
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let net = match config.arch {
            Arch::Original => Net::Original(OriginalNet::new(&vs.root(), &config)),
            Arch::Compact | Arch::Wide => Net::Compact(CompactNet::new(&vs.root(), &config)),
            Arch::Ds => Net::Separable(Box::new(SeparableNet::new(&vs.root(), &config))),
            Arch::Tcn | Arch::TcnWide => {
                return Err(Error::Config("a string model (tcn): see spoken_digits_torch::ctc".into()));
            }
        };
        Ok(Classifier { vs, net, config })
    }

    /// Loads `path` (safetensors) and its config (`path` with `.json`), checking every tensor's
    /// name and shape against the architecture.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let (config, bytes) = read_model_files(path)?;
        let model = Classifier::from_bytes(&bytes, config, device, path)?;
        tracing::debug!(path = %path.display(), arch = ?model.config.arch, "loaded model");
        Ok(model)
    }

    /// Builds the model for `config` from the bytes of a safetensors file (such as weights
    /// embedded in a binary); `origin` names them in errors. The names and shapes are checked
    /// by [`read_weights`], as for the pure-Rust model.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, device: Device, origin: &Path) -> Result<Self> {
        let tensors = read_weights(bytes, &config, origin)?;
        let model = Classifier::new(config, device)?;
        crate::copy_weights(&model.vs, &tensors)?;
        Ok(model)
    }

    /// Writes the weights and the config, each atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::save_weights(&self.vs, &self.config, path)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Logits `[B, 10]` for features `[B, 1, n_mfcc, n_frames]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = channels_last(xs);
        match &self.net {
            Net::Original(n) => n.forward_t(&xs, train),
            Net::Compact(n) => n.forward_t(&xs, train),
            Net::Separable(n) => n.forward_t(&xs, train),
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
                let xs = Tensor::f_from_slice(chunk)
                    .tch()?
                    .f_view([n, 1, f.n_mfcc as i64, f.n_frames() as i64])
                    .tch()?
                    .f_to_device(self.device())
                    .tch()?;
                let probs = self
                    .forward(&xs, false)
                    .f_softmax(-1, Kind::Float)
                    .tch()?
                    .f_to_device(Device::Cpu)
                    .tch()?;
                let flat = Vec::<f32>::try_from(&probs.f_flatten(0, -1).tch()?).tch()?;
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

/// The same single-channel batch `[B, 1, H, W]` viewed with channels-last strides (no copy).
///
/// libtorch then keeps every layer channels-last: oneDNN's convolutions take it natively and max
/// pooling runs its kernel vectorised across channels, where the default layout's kernel is a
/// scalar loop with a data-dependent branch per element. Measured with `bench train-compute`
/// (original recipe, one thread): 27.0 s -> 17.5 s, the same model and batches.
fn channels_last(xs: &Tensor) -> Tensor {
    match xs.size().as_slice() {
        &[n, 1, h, w] => xs.reshape([n, h, w, 1]).permute([0, 3, 1, 2]),
        _ => xs.shallow_clone(),
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
