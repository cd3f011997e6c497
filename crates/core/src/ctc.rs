// Weights and configs come from files: no indexing on them that could panic. The forward pass
// indexes its own buffers, whose shapes `check_parameters` validated at load (allowed there).
#![deny(clippy::indexing_slicing)]
//! The string model: a recogniser that reads a whole utterance and emits the digit string it
//! heard, with a confidence per digit and per string and each digit's time span.
//!
//! Its network (`--arch tcn`, head `ctc` in [`ModelConfig`]) runs over the log-mel frames of
//! the whole utterance (the front end of [`crate::features`], 16 ms frames, no 1 s clip) and
//! gives, every 32 ms, probabilities over blank and the ten digits; it is trained with CTC
//! (`spoken_digits_torch::ctc`). Every layer is a convolution with a finite reach (about 0.6 s
//! in all), so it could run on a stream with a fixed look-ahead:
//!
//! ```text
//! input          [1, 23, T]   log-mel, (dB + top_db) / 20: silence 0, the loudest bin 4
//! front.0        conv 3x3 1->16, batch norm, ReLU                       -> [16, 23, T]
//! front.1        conv 3x3 16->32, stride 2, batch norm, ReLU           -> [32, 12, T/2]
//! proj           flatten (channel, band) -> 384; conv 1 384->96, batch norm, ReLU
//! blocks.{0..3}  x + ReLU(batch norm(conv 1 96->96 (depthwise conv 5 over time (x))))
//! out            conv 1 96->11                                          -> [11, T/2] logits
//! ```
//!
//! Class 0 is CTC's blank, class `d + 1` the digit `d` ("oh" is 0). Decoding is greedy (the
//! most likely class of every frame, repeats merged, blanks dropped) or, with a length
//! constraint, the most likely alignment with that many digits ([`constrained`]). The forward
//! pass here is plain Rust (im2col and `matrixmultiply`, batch norm folded into the
//! convolutions), like the classifier's: no libtorch in prediction.

use crate::features::FeatureConfig;
use crate::model::{Arch, Head, Mat, ModelConfig, gemm, read_model_files, read_weights};
use crate::{Error, FrontEnd, NUM_CLASSES, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// CTC's blank class.
pub const BLANK: usize = 0;
/// Blank and the ten digits.
pub const CTC_CLASSES: usize = NUM_CLASSES + 1;
/// Frames of input per output frame (the second convolution's stride): 32 ms at 16 ms frames.
pub const TIME_STRIDE: usize = 2;
/// The network's size, which the architecture sets: the two 3x3 convolutions over (band,
/// frame) (channels in and out, and stride), then the 1-D part's channels and
/// depthwise-separable blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub front: [(usize, usize, usize); 2],
    pub width: usize,
    pub blocks: usize,
}

impl Shape {
    /// `tcn`: 96 channels, 4 blocks (receptive field about 0.6 s); `tcn-wide`: 128 channels, 6
    /// blocks (about 0.9 s), about 1.5 times the compute. On george's fold (1,000 steps, the
    /// string recipe's augmentation) spliced strings' digit error rate 18.1% -> 15.4%; a front
    /// of 32 and 64 channels on top measured no better (17.0%) in twice the time.
    pub fn of(arch: Arch) -> Shape {
        match arch {
            Arch::TcnWide => Shape { front: [(1, 16, 1), (16, 32, TIME_STRIDE)], width: 128, blocks: 6 },
            _ => Shape { front: [(1, 16, 1), (16, 32, TIME_STRIDE)], width: 96, blocks: 4 },
        }
    }
}
/// The depthwise convolutions' length in output frames (odd; centred).
pub const KERNEL: usize = 5;
/// Silence added before and after an utterance that is read: a word cut tight at the file's
/// start or end (as FSDD's are) is read like one with room around it. Without it, 3 of 50
/// of george's words read whole gave no digit at all (tcn-wide, his fold); with 250 ms, none.
pub const PAD_SECONDS: f64 = 0.25;
/// Input scale: decibels per unit of the network's input.
const DB_PER_UNIT: f32 = 20.0;
/// Batch norm's epsilon (PyTorch's and tch's default).
const BN_EPS: f32 = 1e-5;

/// The string model's config: the tcn network over the log-mel spectrogram (23 bands, 16 ms
/// frames; the 1 s clip length there is unused: it reads whole utterances).
pub fn default_config() -> ModelConfig {
    ModelConfig {
        arch: Arch::Tcn,
        num_classes: CTC_CLASSES,
        features: FeatureConfig { n_mfcc: 23, log_mel: true, ..FeatureConfig::default() },
        head: Head::Ctc,
        voice_shifts: vec![],
    }
}

/// Size after a 3x3 convolution with padding 1 and `stride`.
pub fn reduced(n: usize, stride: usize) -> usize {
    if n == 0 { 0 } else { (n - 1) / stride.max(1) + 1 }
}

/// Output frames for `frames` input frames.
pub fn output_frames(frames: usize) -> usize {
    reduced(frames, TIME_STRIDE)
}

/// Seconds per output frame.
pub fn frame_seconds(features: &FeatureConfig) -> f64 {
    (features.hop_length * TIME_STRIDE) as f64 / f64::from(features.sample_rate.max(1))
}

/// Checks a string model's config (called by [`ModelConfig::validate`]).
pub fn validate(config: &ModelConfig) -> Result<()> {
    if config.num_classes != CTC_CLASSES {
        return Err(Error::Config(format!("a ctc head has {CTC_CLASSES} classes (blank and ten digits)")));
    }
    if !config.features.log_mel || config.features.trim_db.is_some() || config.features.normalize {
        return Err(Error::Config(
            "the string model reads the untrimmed, unnormalised log-mel spectrogram".to_string(),
        ));
    }
    if let Some(f) = config.voice_shifts.iter().find(|f| !(0.5..=2.0).contains(*f)) {
        return Err(Error::Config(format!("a voice shift of {f} is outside 0.5..=2")));
    }
    Ok(())
}

/// Bands after the front convolutions.
fn front_bands(features: &FeatureConfig, shape: &Shape) -> usize {
    shape.front.iter().fold(features.n_mels, |h, &(_, _, s)| reduced(h, s))
}

/// Every parameter tensor of the network: name and shape, sorted by name (PyTorch's shapes).
pub fn parameters(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let shape = Shape::of(config.arch);
    let Shape { front, width, blocks } = shape;
    let mut out = vec![];
    let norm = |out: &mut Vec<(String, Vec<usize>)>, name: &str, n: usize| {
        for part in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{name}.norm.{part}"), vec![n]));
        }
    };
    for (i, &(cin, cout, _)) in front.iter().enumerate() {
        out.push((format!("front.{i}.conv.weight"), vec![cout, cin, 3, 3]));
        norm(&mut out, &format!("front.{i}"), cout);
    }
    let flat = front[1].1 * front_bands(&config.features, &shape);
    out.push(("proj.conv.weight".into(), vec![width, flat, 1]));
    norm(&mut out, "proj", width);
    for b in 0..blocks {
        out.push((format!("blocks.{b}.depthwise.weight"), vec![width, 1, KERNEL]));
        out.push((format!("blocks.{b}.pointwise.weight"), vec![width, width, 1]));
        norm(&mut out, &format!("blocks.{b}"), width);
    }
    out.push(("out.weight".into(), vec![CTC_CLASSES, width, 1]));
    out.push(("out.bias".into(), vec![CTC_CLASSES]));
    out.sort();
    out
}

/// The network's input for a whole utterance at the config's rate: `n_mels x frames` values
/// (row-major by band), `(dB + top_db) / 20` so that silence is 0 (what the convolutions pad
/// with) and the utterance's loudest bin `top_db / 20`; and the number of frames.
pub fn utterance_features(features: &FeatureConfig, samples: &[f32]) -> Result<(Vec<f32>, usize)> {
    // The 1 s front end over a "clip" as long as the utterance (at least one FFT's worth).
    let whole = FeatureConfig {
        clip_samples: samples.len().max(features.n_fft / 2 + 1),
        trim_db: None,
        normalize: false,
        log_mel: true,
        n_mfcc: features.n_mels,
        ..features.clone()
    };
    let mut mfcc = FrontEnd::new(&whole)?;
    let mut map = mfcc.compute(samples);
    let shift = features.top_db;
    map.iter_mut().for_each(|v| *v = (*v + shift) / DB_PER_UNIT);
    Ok((map, whole.n_frames()))
}

/// A string model ready to read utterances, in plain Rust; with other models beside it
/// ([`StringModel::with_others`]) an ensemble, which reads as [`ensemble`] says.
#[derive(Debug, Clone)]
pub struct StringModel {
    config: ModelConfig,
    front: Vec<Conv2d>,
    proj: Pointwise,
    blocks: Vec<Block>,
    out: Pointwise,
    others: Vec<StringModel>,
}

/// A 3x3 convolution (padding 1) with a stride, batch norm folded in: `[out, in * 9]`.
#[derive(Debug, Clone)]
struct Conv2d {
    inputs: usize,
    outputs: usize,
    stride: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A length-1 convolution over time (a matrix per frame): `[out, in]`.
#[derive(Debug, Clone)]
struct Pointwise {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A depthwise convolution over time (`[channel, KERNEL]`), then a pointwise one with batch
/// norm folded in, ReLU, and the block's input added back.
#[derive(Debug, Clone)]
struct Block {
    depthwise: Vec<f32>,
    pointwise: Pointwise,
}

/// Folds inference batch norm into a bias-free layer's weights (`[out, per_output]`):
/// `gamma * (w x - mean) / sqrt(var + eps) + beta`.
fn fold(
    mut weight: Vec<f32>,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let per_output = weight.len() / gamma.len().max(1);
    let mut bias = vec![0.0; gamma.len()];
    let stats = gamma.iter().zip(beta).zip(mean.iter().zip(var));
    for ((row, b), ((g, be), (m, v))) in weight.chunks_exact_mut(per_output.max(1)).zip(&mut bias).zip(stats)
    {
        let scale = g / (v + BN_EPS).sqrt();
        row.iter_mut().for_each(|w| *w *= scale);
        *b = be - m * scale;
    }
    (weight, bias)
}

impl StringModel {
    /// Loads `path` (safetensors) and its config, checking every tensor's name and shape.
    pub fn load(path: &Path) -> Result<Self> {
        let (config, bytes) = read_model_files(path)?;
        StringModel::from_bytes(&bytes, config, path)
    }

    /// Builds the model for `config` from a safetensors file's bytes; `origin` names them.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, origin: &Path) -> Result<Self> {
        if config.head != Head::Ctc {
            return Err(Error::model(origin, "not a string model (its config has no ctc head)"));
        }
        let mut t = read_weights(bytes, &config, origin)?;
        let shape = Shape::of(config.arch);
        let Shape { front, width, blocks } = shape;
        let front = front
            .iter()
            .enumerate()
            .map(|(i, &(inputs, outputs, stride))| {
                let name = format!("front.{i}");
                let raw = take(&mut t, &format!("{name}.conv.weight"));
                let (weight, bias) = folded(&mut t, &name, raw);
                Conv2d { inputs, outputs, stride, weight, bias }
            })
            .collect();
        let flat = shape.front[1].1 * front_bands(&config.features, &shape);
        let raw = take(&mut t, "proj.conv.weight");
        let (weight, bias) = folded(&mut t, "proj", raw);
        let proj = Pointwise { inputs: flat, outputs: width, weight, bias };
        let blocks = (0..blocks)
            .map(|b| {
                let name = format!("blocks.{b}");
                let depthwise = take(&mut t, &format!("{name}.depthwise.weight"));
                let raw = take(&mut t, &format!("{name}.pointwise.weight"));
                let (weight, bias) = folded(&mut t, &name, raw);
                Block { depthwise, pointwise: Pointwise { inputs: width, outputs: width, weight, bias } }
            })
            .collect();
        let out = Pointwise {
            inputs: width,
            outputs: CTC_CLASSES,
            weight: take(&mut t, "out.weight"),
            bias: take(&mut t, "out.bias"),
        };
        Ok(StringModel { config, front, proj, blocks, out, others: vec![] })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits for one utterance's input (`n_mels x frames`, from [`utterance_features`]):
    /// `output_frames(frames)` rows of [`CTC_CLASSES`] values, time-major.
    #[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
    pub fn logits(&self, input: &[f32], frames: usize) -> Result<Vec<f32>> {
        let bands = self.config.features.n_mels;
        if frames == 0 || input.len() != bands * frames {
            return Err(Error::Config(format!(
                "an utterance's input has {bands} bands x {frames} frames, not {} values",
                input.len()
            )));
        }
        let mut x = input.to_vec();
        let (mut h, mut w) = (bands, frames);
        let mut cols = vec![];
        for conv in &self.front {
            (x, h, w) = conv.forward(&x, h, w, &mut cols);
            x.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        // [channel][band][frame] is already [channel * band][frame].
        let mut x = self.proj.forward(&x, w);
        x.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut y = vec![0.0; x.len()];
        for block in &self.blocks {
            depthwise(&x, &block.depthwise, w, &mut y);
            let z = block.pointwise.forward(&y, w);
            for (a, b) in x.iter_mut().zip(&z) {
                *a += b.max(0.0);
            }
        }
        let logits = self.out.forward(&x, w);
        // Class-major [11][T] to time-major [T][11].
        let mut out = vec![0.0; logits.len()];
        for c in 0..CTC_CLASSES {
            for t in 0..w {
                out[t * CTC_CLASSES + c] = logits[c * w + t];
            }
        }
        Ok(out)
    }

    /// Per-frame probabilities over blank and the digits for an utterance at the config's rate,
    /// its mean (DC offset) removed, read with [`PAD_SECONDS`] of silence on each side. With an
    /// offset the silence around would meet the recording in two steps, clicks the training
    /// strings never had: FSDD's test words with an offset of 0.2 read 97.7% right alone
    /// (the shipped three, each as one digit), 100% with the mean removed.
    pub fn posteriors(&self, samples: &[f32]) -> Result<Posteriors> {
        let rate = f64::from(self.config.features.sample_rate);
        let pad = (PAD_SECONDS * rate).round() as usize;
        let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len().max(1) as f64;
        let mut padded = vec![0.0; samples.len() + 2 * pad];
        if let Some(middle) = padded.get_mut(pad..pad + samples.len()) {
            middle.iter_mut().zip(samples).for_each(|(m, &s)| *m = s - mean as f32);
        }
        let (input, frames) = utterance_features(&self.config.features, &padded)?;
        let logits = self.logits(&input, frames)?;
        let mut probs: Vec<[f32; CTC_CLASSES]> = logits.chunks_exact(CTC_CLASSES).map(softmax).collect();
        let shifts = &self.config.voice_shifts;
        for &factor in shifts {
            let (input, frames) =
                crate::strings::voice_shifted_features(&self.config.features, &padded, factor)?;
            let shifted = self.logits(&input, frames)?;
            let mut shifted = shifted.chunks_exact(CTC_CLASSES).map(softmax);
            for row in &mut probs {
                // The shifted map may be a frame short: the plain frame stands in.
                let other = shifted.next().unwrap_or(*row);
                row.iter_mut().zip(other).for_each(|(a, b)| *a += b);
            }
        }
        if !shifts.is_empty() {
            let n = (shifts.len() + 1) as f32;
            probs.iter_mut().for_each(|row| row.iter_mut().for_each(|v| *v /= n));
        }
        Ok(Posteriors {
            probs,
            frame_seconds: frame_seconds(&self.config.features),
            start_s: -(pad as f64) / rate,
            duration_s: samples.len() as f64 / rate,
        })
    }

    /// The same model (and each of its [`StringModel::others`]) reading each utterance also
    /// with these voice shifts (see [`ModelConfig::voice_shifts`]; empty: the plain reading
    /// alone).
    pub fn with_voice_shifts(mut self, shifts: Vec<f32>) -> Result<Self> {
        self.others =
            self.others.into_iter().map(|m| m.with_voice_shifts(shifts.clone())).collect::<Result<_>>()?;
        self.config.voice_shifts = shifts;
        validate(&self.config)?;
        Ok(self)
    }

    /// This model with `others` reading beside it (an ensemble; each at the same rate): every
    /// model reads each utterance, and of their readings the one all of them find likeliest
    /// wins ([`ensemble`]). Replaces the others it had.
    pub fn with_others(mut self, others: Vec<StringModel>) -> Result<Self> {
        let rate = self.config.features.sample_rate;
        if let Some(other) = others.iter().find(|m| m.config.features.sample_rate != rate) {
            return Err(Error::Config(format!(
                "the string models of an ensemble must read one rate: {rate} Hz and {} Hz",
                other.config.features.sample_rate
            )));
        }
        self.others = others;
        Ok(self)
    }

    /// The models reading beside this one (empty: it reads alone).
    pub fn others(&self) -> &[StringModel] {
        &self.others
    }

    /// Reads the digit string of an utterance at the config's rate: greedy, or the most likely
    /// string whose length lies in `lengths`; with others beside it, the ensemble's reading.
    pub fn read(&self, samples: &[f32], lengths: Option<Lengths>) -> Result<Reading> {
        Ok(self.reading(samples, lengths)?.1)
    }

    /// [`StringModel::read`], with the probabilities of the model whose reading it is.
    pub fn reading(&self, samples: &[f32], lengths: Option<Lengths>) -> Result<(Posteriors, Reading)> {
        let (all, which, reading) = self.readings(samples, lengths)?;
        let posteriors =
            all.into_iter().nth(which).ok_or_else(|| Error::Config("an ensemble read nothing".into()))?;
        Ok((posteriors, reading))
    }

    /// Every model's probabilities for an utterance: this one's first, then the others'.
    pub fn all_posteriors(&self, samples: &[f32]) -> Result<Vec<Posteriors>> {
        std::iter::once(self).chain(&self.others).map(|m| m.posteriors(samples)).collect()
    }

    /// [`StringModel::read`], with every model's probabilities (this one's first, then the
    /// others') and the index of the model whose reading it is.
    pub fn readings(
        &self,
        samples: &[f32],
        lengths: Option<Lengths>,
    ) -> Result<(Vec<Posteriors>, usize, Reading)> {
        let all = self.all_posteriors(samples)?;
        let (which, reading) = match all.as_slice() {
            [one] => (0, decode(one, lengths)),
            _ => ensemble(&all, lengths).ok_or_else(|| Error::Config("an ensemble read nothing".into()))?,
        };
        Ok((all, which, reading))
    }
}

/// The string of `p`: greedy, or the most likely one whose length lies in `lengths`.
pub fn decode(p: &Posteriors, lengths: Option<Lengths>) -> Reading {
    match lengths {
        None => greedy(p),
        Some(l) => constrained(p, l),
    }
}

/// Takes a tensor's values out of the map (the shapes were checked at load).
fn take(t: &mut crate::model::Tensors, name: &str) -> Vec<f32> {
    t.remove(name).map(|(_, values)| values).unwrap_or_default()
}

/// `weight` with the batch norm `name.norm.*` folded in.
fn folded(t: &mut crate::model::Tensors, name: &str, weight: Vec<f32>) -> (Vec<f32>, Vec<f32>) {
    let mut part = |p: &str| take(t, &format!("{name}.norm.{p}"));
    let (g, b, m, v) = (part("weight"), part("bias"), part("running_mean"), part("running_var"));
    fold(weight, &g, &b, &m, &v)
}

impl Conv2d {
    /// `x` is `[inputs][h][w]`; returns `[outputs][h'][w']` and the new size (im2col, then one
    /// matrix product).
    #[allow(clippy::indexing_slicing, reason = "shapes checked against the architecture at load")]
    fn forward(&self, x: &[f32], h: usize, w: usize, cols: &mut Vec<f32>) -> (Vec<f32>, usize, usize) {
        let s = self.stride;
        let (ho, wo) = (reduced(h, s), reduced(w, s));
        let n = ho * wo;
        cols.clear();
        cols.resize(self.inputs * 9 * n, 0.0);
        for c in 0..self.inputs {
            let plane = &x[c * h * w..][..h * w];
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = &mut cols[(c * 9 + ky * 3 + kx) * n..][..n];
                    for oy in 0..ho {
                        // Input row oy * s + ky - 1; outside the map stays zero (padding).
                        let Some(iy) = (oy * s + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
                        let src = &plane[iy * w..][..w];
                        let dst = &mut row[oy * wo..][..wo];
                        for (ox, d) in dst.iter_mut().enumerate() {
                            if let Some(ix) = (ox * s + kx).checked_sub(1).filter(|&ix| ix < w) {
                                *d = src[ix];
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.outputs * n);
        for &b in &self.bias {
            out.extend(std::iter::repeat_n(b, n));
        }
        let k = self.inputs * 9;
        gemm(self.outputs, k, n, Mat::rows(&self.weight, k), Mat::rows(cols, n), &mut out);
        (out, ho, wo)
    }
}

impl Pointwise {
    /// `x` is `[inputs][frames]`; returns `[outputs][frames]`.
    fn forward(&self, x: &[f32], frames: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.outputs * frames);
        for &b in &self.bias {
            out.extend(std::iter::repeat_n(b, frames));
        }
        gemm(
            self.outputs,
            self.inputs,
            frames,
            Mat::rows(&self.weight, self.inputs),
            Mat::rows(x, frames),
            &mut out,
        );
        out
    }
}

/// Depthwise convolution over time, centred, zero-padded: `x` and `y` are `[channel][frames]`.
fn depthwise(x: &[f32], weights: &[f32], frames: usize, y: &mut [f32]) {
    let half = KERNEL / 2;
    for ((xr, yr), wr) in
        x.chunks_exact(frames).zip(y.chunks_exact_mut(frames)).zip(weights.chunks_exact(KERNEL))
    {
        yr.fill(0.0);
        for (k, &wk) in wr.iter().enumerate() {
            // y[t] += w[k] * x[t + k - half] where that frame exists.
            let (from, to) = (half.saturating_sub(k), (frames + half).saturating_sub(k).min(frames));
            if from >= to {
                continue;
            }
            let src_start = from + k - half;
            if let (Some(dst), Some(src)) = (yr.get_mut(from..to), xr.get(src_start..src_start + (to - from)))
            {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d += wk * v;
                }
            }
        }
    }
}

fn softmax(logits: &[f32]) -> [f32; CTC_CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0.0; CTC_CLASSES];
    for (p, &l) in p.iter_mut().zip(logits) {
        *p = (l - max).exp();
    }
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// An utterance's per-frame class probabilities.
#[derive(Debug, Clone)]
pub struct Posteriors {
    pub probs: Vec<[f32; CTC_CLASSES]>,
    pub frame_seconds: f64,
    /// Where the first frame starts, in seconds from the utterance's start (before it when
    /// the utterance was padded).
    pub start_s: f64,
    /// The utterance's length: spans end there at the latest.
    pub duration_s: f64,
}

/// One digit read in a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigitHit {
    pub digit: u8,
    /// Its highest probability over the frames the decoder gave it.
    pub confidence: f32,
    /// The frames it was read in, in seconds from the utterance's start.
    pub start_s: f64,
    pub end_s: f64,
}

/// A string read from an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The digits, as text: "4159".
    pub sequence: String,
    /// The product of the digits' confidences (1 for an empty string).
    pub confidence: f32,
    pub digits: Vec<DigitHit>,
}

impl Reading {
    /// The digits as numbers.
    pub fn values(&self) -> Vec<u8> {
        self.digits.iter().map(|d| d.digit).collect()
    }
}

/// The digits of a frame-by-frame path of classes (repeats merged, blanks dropped), each with
/// its confidence and span.
fn reading_of(path: &[usize], p: &Posteriors) -> Reading {
    let mut digits: Vec<DigitHit> = vec![];
    let mut previous = BLANK;
    for (t, (&c, probs)) in path.iter().zip(&p.probs).enumerate() {
        let prob = probs.get(c).copied().unwrap_or(0.0);
        let at = |t: usize| (p.start_s + t as f64 * p.frame_seconds).clamp(0.0, p.duration_s.max(0.0));
        let (start, end) = (at(t), at(t + 1));
        if c != BLANK {
            match digits.last_mut() {
                Some(last) if c == previous => {
                    last.confidence = last.confidence.max(prob);
                    last.end_s = end;
                }
                _ => digits.push(DigitHit {
                    digit: (c - 1) as u8,
                    confidence: prob,
                    start_s: start,
                    end_s: end,
                }),
            }
        }
        previous = c;
    }
    Reading {
        sequence: digits.iter().map(|d| char::from(b'0' + d.digit)).collect(),
        confidence: digits.iter().map(|d| d.confidence).product(),
        digits,
    }
}

/// Greedy decoding: the most likely class of every frame (which is the most likely path).
pub fn greedy(p: &Posteriors) -> Reading {
    let path: Vec<usize> = p
        .probs
        .iter()
        .map(|probs| {
            probs
                .iter()
                .enumerate()
                .fold((BLANK, f32::NEG_INFINITY), |best, (c, &v)| if v > best.1 { (c, v) } else { best })
                .0
        })
        .collect();
    reading_of(&path, p)
}

/// A length constraint on the string: `4`, or `3..10` (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lengths {
    pub min: usize,
    pub max: usize,
}

impl std::str::FromStr for Lengths {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("'{s}' is not a digit count: N or MIN..MAX (1 to 100)"));
        let number = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (1..=100).contains(n));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?),
            None => {
                let n = number(s).ok_or_else(bad)?;
                (n, n)
            }
        };
        if min > max {
            return Err(bad());
        }
        Ok(Lengths { min, max })
    }
}

/// The natural log of a probability, a zero floored at 1e-30 (the decoders' scores stay finite).
fn ln(p: f32) -> f64 {
    f64::from(p.max(1e-30)).ln()
}

/// The most likely alignment (Viterbi over CTC's paths) whose string has between `min` and
/// `max` digits; with no such path (an utterance too short), the greedy reading.
#[allow(clippy::indexing_slicing, reason = "every index is below the sizes allocated here")]
pub fn constrained(p: &Posteriors, lengths: Lengths) -> Reading {
    let frames = p.probs.len();
    let max = lengths.max.min(frames);
    if frames == 0 || lengths.min > max {
        return greedy(p);
    }
    // State (k, c): k digits so far, the frame's class c (0: blank, d + 1: in digit d's run).
    let states = (max + 1) * CTC_CLASSES;
    let index = |k: usize, c: usize| k * CTC_CLASSES + c;
    let mut score = vec![f64::NEG_INFINITY; states];
    let mut back = vec![usize::MAX; states * frames];
    score[index(0, BLANK)] = ln(p.probs[0][BLANK]);
    for c in 1..CTC_CLASSES {
        if max >= 1 {
            score[index(1, c)] = ln(p.probs[0][c]);
        }
    }
    let mut next = vec![f64::NEG_INFINITY; states];
    for t in 1..frames {
        next.fill(f64::NEG_INFINITY);
        let lp: Vec<f64> = p.probs[t].iter().map(|&v| ln(v)).collect();
        let from = &mut back[t * states..(t + 1) * states];
        for k in 0..=max {
            // To blank: from any class with the same count.
            let (mut best, mut arg) = (f64::NEG_INFINITY, usize::MAX);
            for c in 0..CTC_CLASSES {
                if score[index(k, c)] > best {
                    (best, arg) = (score[index(k, c)], index(k, c));
                }
            }
            next[index(k, BLANK)] = best + lp[BLANK];
            from[index(k, BLANK)] = arg;
            for c in 1..CTC_CLASSES {
                // Staying in the same digit's run ...
                let (mut best, mut arg) = (score[index(k, c)], index(k, c));
                // ... or a new digit after a blank or another digit.
                if k >= 1 {
                    for prev in 0..CTC_CLASSES {
                        if prev != c && score[index(k - 1, prev)] > best {
                            (best, arg) = (score[index(k - 1, prev)], index(k - 1, prev));
                        }
                    }
                }
                next[index(k, c)] = best + lp[c];
                from[index(k, c)] = arg;
            }
        }
        std::mem::swap(&mut score, &mut next);
    }
    let mut end = (f64::NEG_INFINITY, usize::MAX);
    for k in lengths.min..=max {
        for c in 0..CTC_CLASSES {
            if score[index(k, c)] > end.0 {
                end = (score[index(k, c)], index(k, c));
            }
        }
    }
    if end.1 == usize::MAX {
        return greedy(p);
    }
    let mut path = vec![BLANK; frames];
    let mut state = end.1;
    for t in (0..frames).rev() {
        path[t] = state % CTC_CLASSES;
        if t > 0 {
            state = back[t * states + state];
            if state == usize::MAX {
                return greedy(p);
            }
        }
    }
    reading_of(&path, p)
}

/// Several models' readings of one utterance combined. The candidates: each model's own
/// reading (greedy, or constrained to `lengths`) and, unconstrained, its best readings with one
/// digit fewer and one more (the most likely alignments of those lengths: a digit dropped or
/// split in two is the commonest disagreement). The candidate with the highest summed
/// [`log_likelihood`] over all the models wins (the first found on a tie), and a [`search`]
/// from it, one edit at a time, finds any string the models together find likelier still
/// (one that no model read by itself: A's first digit and B's second). Returns the index of
/// the model whose reading it is (for a string found by the search, the model that finds it
/// likeliest, [`aligned`]), and that reading (its spans and confidences); `None` for no models.
pub fn ensemble(posteriors: &[Posteriors], lengths: Option<Lengths>) -> Option<(usize, Reading)> {
    let mut candidates: Vec<(usize, Reading)> =
        posteriors.iter().enumerate().map(|(i, p)| (i, decode(p, lengths))).collect();
    if lengths.is_none() {
        for (i, p) in posteriors.iter().enumerate() {
            let n = candidates.get(i).map_or(0, |(_, r)| r.digits.len());
            for m in [n.saturating_sub(1), n + 1] {
                // Past SEARCH_MAX_DIGITS, a digit more or fewer is left out with the search.
                if m >= 1 && m != n && n <= SEARCH_MAX_DIGITS {
                    candidates.push((i, constrained(p, Lengths { min: m, max: m })));
                }
            }
        }
    }
    let score = |digits: &[u8]| summed_log_likelihood(posteriors, digits);
    let mut best: Option<(f64, usize)> = None;
    for (k, (_, reading)) in candidates.iter().enumerate() {
        if candidates.iter().take(k).any(|(_, r)| r.sequence == reading.sequence) {
            continue;
        }
        let s = score(&reading.values());
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, k));
        }
    }
    let (start_score, k) = best?;
    let start = candidates.get(k)?.1.values();
    if start.len() > SEARCH_MAX_DIGITS {
        return candidates.into_iter().nth(k);
    }
    let (digits, _) = search(start, start_score, lengths, &score);
    if let Some(found) = candidates.iter().find(|(_, r)| r.values() == digits) {
        return Some(found.clone());
    }
    // A string no model read: each model aligns it, and the likeliest alignment gives the spans.
    posteriors
        .iter()
        .enumerate()
        .map(|(i, p)| (log_likelihood(p, &digits), i))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .and_then(|(_, i)| Some((i, aligned(posteriors.get(i)?, &digits)?)))
        .or_else(|| candidates.into_iter().nth(k))
}

/// [`log_likelihood`] of `digits` summed over several models' `posteriors`: how likely the
/// models together find the string.
pub fn summed_log_likelihood(posteriors: &[Posteriors], digits: &[u8]) -> f64 {
    posteriors.iter().map(|p| log_likelihood(p, digits)).sum()
}

/// Rounds of [`search`] at most.
pub const SEARCH_ROUNDS: usize = 4;

/// Readings longer than this are not searched, nor given candidates a digit longer and
/// shorter: a round of the search costs about 20 x digits candidates, each scored over every
/// frame and twice the digits in states, so a minute of speech (170 digits) took a minute to
/// read with it and takes 0.1 s without either (four minutes of speech: 4.2 s with the
/// candidates, 0.7 s without); phone numbers are 15 digits at most, and a 12 s utterance
/// (`listen`'s longest) of 20 digits searches in about 70 ms.
pub const SEARCH_MAX_DIGITS: usize = 20;

/// A local search for the string that `score` rates highest, from `start` (scored
/// `start_score`): each round tries every string one edit away (a digit replaced, dropped, or
/// added anywhere) whose length lies in `lengths`, and moves to the best that scores higher;
/// it stops when none does, or after [`SEARCH_ROUNDS`]. Returns the string and its score.
fn search(
    start: Vec<u8>,
    start_score: f64,
    lengths: Option<Lengths>,
    score: &dyn Fn(&[u8]) -> f64,
) -> (Vec<u8>, f64) {
    let (min, max) = lengths.map_or((0, usize::MAX), |l| (l.min, l.max));
    let (mut best, mut best_score) = (start, start_score);
    for _ in 0..SEARCH_ROUNDS {
        let mut moved: Option<(Vec<u8>, f64)> = None;
        let mut consider = |candidate: Vec<u8>| {
            let s = score(&candidate);
            if s > moved.as_ref().map_or(best_score, |m| m.1) {
                moved = Some((candidate, s));
            }
        };
        let n = best.len();
        for i in 0..n {
            for d in 0..NUM_CLASSES as u8 {
                if best.get(i) != Some(&d) {
                    let mut c = best.clone();
                    c.splice(i..=i, [d]);
                    consider(c);
                }
            }
            if n > min {
                let mut c = best.clone();
                c.remove(i);
                consider(c);
            }
        }
        if n < max {
            for i in 0..=n {
                for d in 0..NUM_CLASSES as u8 {
                    let mut c = best.clone();
                    c.insert(i, d);
                    consider(c);
                }
            }
        }
        match moved {
            Some((c, s)) => (best, best_score) = (c, s),
            None => break,
        }
    }
    (best, best_score)
}

/// The most likely alignment of the digit string `digits` under `p` (Viterbi over its CTC
/// paths), read back as a [`Reading`]; `None` where no alignment fits the frames.
#[allow(clippy::indexing_slicing, reason = "every index is below the sizes allocated here")]
pub fn aligned(p: &Posteriors, digits: &[u8]) -> Option<Reading> {
    let labels = extended(digits);
    let (n, frames) = (labels.len(), p.probs.len());
    if frames == 0 {
        return digits.is_empty().then(|| reading_of(&[], p));
    }
    let mut score = vec![f64::NEG_INFINITY; n];
    let mut back = vec![0usize; n * frames];
    score[0] = ln(p.probs[0][BLANK]);
    if n > 1 {
        score[1] = ln(p.probs[0][labels[1]]);
    }
    let mut next = vec![f64::NEG_INFINITY; n];
    for t in 1..frames {
        for s in 0..n {
            let (mut best, mut from) = (score[s], s);
            if s >= 1 && score[s - 1] > best {
                (best, from) = (score[s - 1], s - 1);
            }
            if skips_blank(&labels, s) && score[s - 2] > best {
                (best, from) = (score[s - 2], s - 2);
            }
            next[s] = best + ln(p.probs[t][labels[s]]);
            back[t * n + s] = from;
        }
        std::mem::swap(&mut score, &mut next);
    }
    let mut state = if n > 1 && score[n - 2] > score[n - 1] { n - 2 } else { n - 1 };
    if score[state] == f64::NEG_INFINITY {
        return None;
    }
    let mut path = vec![BLANK; frames];
    for t in (0..frames).rev() {
        path[t] = labels[state];
        if t > 0 {
            state = back[t * n + state];
        }
    }
    let reading = reading_of(&path, p);
    (reading.values() == digits).then_some(reading)
}

/// Whether a path may reach extended label `s` straight from `s - 2`, over the blank between
/// them: only into a digit that differs from the one before it.
fn skips_blank(labels: &[usize], s: usize) -> bool {
    s >= 2 && labels.get(s).is_some_and(|&l| l != BLANK && Some(&l) != labels.get(s - 2))
}

/// CTC's extended labels of a digit string: blank, d1, blank, d2, ..., dn, blank.
fn extended(digits: &[u8]) -> Vec<usize> {
    std::iter::once(BLANK).chain(digits.iter().flat_map(|&d| [usize::from(d) + 1, BLANK])).collect()
}

/// The natural log of the probability of the digit string `digits` under `p`, summed over
/// every CTC alignment of it (the forward algorithm); minus infinity where no alignment fits
/// the frames. Models trained apart put a digit's spike on different frames, so an ensemble
/// compares whole strings this way rather than frames.
#[allow(clippy::indexing_slicing, reason = "every index is below the sizes allocated here")]
pub fn log_likelihood(p: &Posteriors, digits: &[u8]) -> f64 {
    let labels = extended(digits);
    let n = labels.len();
    // In probabilities rather than logs (the search calls it hundreds of times an utterance),
    // rescaled to sum to 1 at every frame, the scales' logs summed.
    let prob =
        |probs: &[f32; CTC_CLASSES], c: usize| f64::from(probs.get(c).copied().unwrap_or(0.0).max(1e-30));
    let Some(first) = p.probs.first() else {
        return if digits.is_empty() { 0.0 } else { f64::NEG_INFINITY };
    };
    let mut alpha = vec![0.0f64; n];
    alpha[0] = prob(first, BLANK);
    if n > 1 {
        alpha[1] = prob(first, labels[1]);
    }
    let mut log_scale = 0.0;
    for probs in &p.probs[1..] {
        let mut total = 0.0;
        // Backwards, so that alpha[s - 1] and alpha[s - 2] still hold the previous frame's.
        for s in (0..n).rev() {
            let mut a = alpha[s];
            if s >= 1 {
                a += alpha[s - 1];
            }
            if skips_blank(&labels, s) {
                a += alpha[s - 2];
            }
            alpha[s] = a * prob(probs, labels[s]);
            total += alpha[s];
        }
        if total <= 0.0 {
            return f64::NEG_INFINITY;
        }
        alpha.iter_mut().for_each(|a| *a /= total);
        log_scale += total.ln();
    }
    let end = alpha[n - 1] + if n > 1 { alpha[n - 2] } else { 0.0 };
    end.ln() + log_scale
}

/// Edits (insertions, deletions, substitutions) that turn `hypothesis` into `reference`.
pub fn edit_distance(reference: &[u8], hypothesis: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, h) in hypothesis.iter().enumerate() {
            let (up, left) = (row.get(j + 1).copied().unwrap_or(0), row.get(j).copied().unwrap_or(0));
            let value = (diagonal + usize::from(r != h)).min(up + 1).min(left + 1);
            diagonal = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn posteriors(rows: &[[f32; CTC_CLASSES]]) -> Posteriors {
        Posteriors {
            probs: rows.to_vec(),
            frame_seconds: 0.032,
            start_s: 0.0,
            duration_s: rows.len() as f64 * 0.032,
        }
    }

    fn frame(best: usize, p: f32) -> [f32; CTC_CLASSES] {
        let mut row = [(1.0 - p) / 10.0; CTC_CLASSES];
        row[best] = p;
        row
    }

    #[test]
    fn greedy_merges_repeats_and_drops_blanks_with_spans() {
        // 4 4 _ 1 _ 5 5 _ 5: "4155" (a blank separates the two fives).
        let rows = [
            frame(5, 0.9),
            frame(5, 0.6),
            frame(0, 0.9),
            frame(2, 0.8),
            frame(0, 0.9),
            frame(6, 0.7),
            frame(6, 0.95),
            frame(0, 0.9),
            frame(6, 0.5),
        ];
        let r = greedy(&posteriors(&rows));
        assert_eq!(r.sequence, "4155");
        assert_eq!(r.values(), vec![4, 1, 5, 5]);
        assert!((r.digits[0].confidence - 0.9).abs() < 1e-6);
        assert!((r.digits[2].confidence - 0.95).abs() < 1e-6);
        assert!((r.digits[0].start_s - 0.0).abs() < 1e-9 && (r.digits[0].end_s - 0.064).abs() < 1e-9);
        assert!((r.digits[3].start_s - 8.0 * 0.032).abs() < 1e-9);
        assert!((r.confidence - 0.9 * 0.8 * 0.95 * 0.5).abs() < 1e-6);
    }

    #[test]
    fn log_likelihood_sums_every_alignment() {
        // Four frames over blank and digits 0-1 only (the rest near zero), every one of the
        // 3^4 paths enumerated: the forward algorithm must give each string's total.
        let rows: Vec<[f32; CTC_CLASSES]> =
            [[0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4]]
                .iter()
                .map(|r| {
                    let mut row = [1e-9; CTC_CLASSES];
                    row[..3].copy_from_slice(r);
                    row
                })
                .collect();
        let p = posteriors(&rows);
        let mut totals: std::collections::HashMap<Vec<u8>, f64> = Default::default();
        for code in 0..81 {
            let path: Vec<usize> = (0..4).map(|t| (code / 3usize.pow(t)) % 3).collect();
            let prob: f64 = path.iter().zip(&rows).map(|(&c, r)| f64::from(r[c])).product();
            *totals.entry(reading_of(&path, &p).values()).or_default() += prob;
        }
        for (digits, total) in &totals {
            let got = log_likelihood(&p, digits).exp();
            assert!((got - total).abs() < 1e-6 * total.max(1e-3), "{digits:?}: {got} against {total}");
        }
        assert!((totals.values().sum::<f64>() - 1.0).abs() < 1e-5);
        // "0 0" needs a blank between: three frames are enough, five digits are not.
        assert_eq!(log_likelihood(&p, &[0, 1, 0, 1, 0]), f64::NEG_INFINITY);
        assert!(log_likelihood(&posteriors(&[]), &[]) == 0.0);
    }

    #[test]
    fn an_ensemble_takes_the_string_all_the_models_find_likeliest() {
        // Model A reads "1" at a slight edge over "7"; B reads "7" and is sure of it: together
        // "7" wins though A reads first. A alone keeps its own.
        let a = posteriors(&[
            frame(0, 0.9),
            {
                let mut r = frame(2, 0.45);
                r[8] = 0.4;
                r
            },
            frame(0, 0.9),
        ]);
        let b = posteriors(&[frame(0, 0.9), frame(0, 0.9), frame(8, 0.9)]);
        assert_eq!(greedy(&a).sequence, "1");
        let (which, reading) = ensemble(&[a.clone(), b.clone()], None).unwrap();
        assert_eq!((which, reading.sequence.as_str()), (1, "7"));
        // B's spans come with its reading.
        assert!((reading.digits[0].start_s - 2.0 * 0.032).abs() < 1e-9);
        assert_eq!(ensemble(std::slice::from_ref(&b), None).unwrap(), (0, greedy(&b)));
        assert_eq!(ensemble(&[], None), None);
        // The same string from both: the first model's reading.
        assert_eq!(ensemble(&[b.clone(), b.clone()], None).unwrap().0, 0);
        // A weak 7 over two frames (0.4 each, blank 0.45): greedy drops it, but "17" has three
        // alignments there against one for "1" (0.52 against 0.20): the candidate with one digit
        // more wins; with the length given, no extra candidates.
        let weak = || {
            let mut r = frame(0, 0.45);
            r[8] = 0.4;
            r
        };
        let c = posteriors(&[frame(0, 0.9), frame(2, 0.9), frame(0, 0.9), weak(), weak(), frame(0, 0.9)]);
        assert_eq!(greedy(&c).sequence, "1");
        assert!(log_likelihood(&c, &[1, 7]) > log_likelihood(&c, &[1]));
        assert_eq!(ensemble(std::slice::from_ref(&c), None).unwrap().1.sequence, "17");
        let one = Some(Lengths { min: 1, max: 1 });
        assert_eq!(ensemble(std::slice::from_ref(&c), one).unwrap().1.sequence, "1");
    }

    #[test]
    fn the_ensemble_searches_past_the_models_own_readings() {
        // Each digit's frame: `a` at `pa`, `b` at `pb`, the rest shared by the other classes.
        let two = |a: u8, pa: f32, b: u8, pb: f32| {
            let mut row = [(1.0 - pa - pb) / 9.0; CTC_CLASSES];
            row[usize::from(a) + 1] = pa;
            row[usize::from(b) + 1] = pb;
            row
        };
        // A reads "15" and B "37", each with a close second choice they share: "26", which
        // neither reads (nor with a digit more or fewer), is the likeliest string for both.
        let model = |first: u8, second: u8| {
            posteriors(&[
                frame(0, 0.9),
                two(first, 0.5, 2, 0.4),
                frame(0, 0.9),
                two(second, 0.5, 6, 0.4),
                frame(0, 0.9),
            ])
        };
        let (a, b) = (model(1, 5), model(3, 7));
        assert_eq!((greedy(&a).sequence.as_str(), greedy(&b).sequence.as_str()), ("15", "37"));
        let (_, reading) = ensemble(&[a.clone(), b.clone()], None).unwrap();
        assert_eq!(reading.sequence, "26");
        // Its spans and confidences come from the alignment of the model that finds it likeliest.
        assert!(
            (reading.digits[0].start_s - 0.032).abs() < 1e-9
                && (reading.digits[1].start_s - 0.096).abs() < 1e-9
        );
        assert!((reading.digits[0].confidence - 0.4).abs() < 1e-6);
        // A length that rules it out keeps the search within it.
        let three = Some(Lengths { min: 3, max: 3 });
        assert_eq!(ensemble(&[a.clone(), b], three).unwrap().1.digits.len(), 3);
        // Past SEARCH_MAX_DIGITS the search is left out (its cost grows with the square of the
        // digits): 22 such positions read "1..." and "3..." (and their candidates of 21 and 23
        // digits are past it too), and none of the readings holds a "2".
        let long = |top: u8| {
            let rows: Vec<_> =
                (0..SEARCH_MAX_DIGITS + 2).flat_map(|_| [frame(0, 0.9), two(top, 0.5, 2, 0.4)]).collect();
            posteriors(&rows)
        };
        let (_, reading) = ensemble(&[long(1), long(3)], None).unwrap();
        assert!(reading.digits.len() > SEARCH_MAX_DIGITS, "{}", reading.sequence);
        assert!(!reading.sequence.contains('2'), "{}", reading.sequence);
        let short = |top: u8| {
            posteriors(&[frame(0, 0.9), two(top, 0.5, 2, 0.4), frame(0, 0.9), two(top, 0.5, 2, 0.4)])
        };
        assert_eq!(ensemble(&[short(1), short(3)], None).unwrap().1.sequence, "22");
        // An alignment needs a frame a digit.
        assert_eq!(aligned(&a, &[2, 6]).unwrap().sequence, "26");
        assert_eq!(aligned(&a, &[1, 2, 3, 4, 5, 6]), None);
        assert_eq!(aligned(&a, &[]).unwrap().sequence, "");
    }

    #[test]
    fn constrained_decoding_meets_the_length_and_is_greedy_when_free() {
        // Greedy reads "41"; a weak third digit (7 at 0.4 against blank 0.45) is there.
        let rows = [
            frame(5, 0.9),
            frame(0, 0.9),
            frame(2, 0.8),
            frame(0, 0.9),
            {
                let mut r = frame(0, 0.45);
                r[8] = 0.4;
                r
            },
            frame(0, 0.9),
        ];
        let p = posteriors(&rows);
        assert_eq!(greedy(&p).sequence, "41");
        assert_eq!(constrained(&p, Lengths { min: 0, max: 100 }), greedy(&p));
        assert_eq!(constrained(&p, Lengths { min: 3, max: 3 }).sequence, "417");
        assert_eq!(constrained(&p, Lengths { min: 1, max: 1 }).sequence.len(), 1);
        // More digits than frames: the greedy reading.
        assert_eq!(constrained(&p, Lengths { min: 9, max: 9 }), greedy(&p));
    }

    #[test]
    fn lengths_parse() {
        assert_eq!("4".parse::<Lengths>().unwrap(), Lengths { min: 4, max: 4 });
        assert_eq!("3..10".parse::<Lengths>().unwrap(), Lengths { min: 3, max: 10 });
        for bad in ["0", "5..3", "x", "3..", "..4", ""] {
            assert!(bad.parse::<Lengths>().is_err(), "{bad}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance(&[4, 1, 5, 9], &[4, 1, 5, 9]), 0);
        assert_eq!(edit_distance(&[4, 1, 5, 9], &[4, 5, 9]), 1);
        assert_eq!(edit_distance(&[4, 1, 5, 9], &[4, 1, 1, 5, 9]), 1);
        assert_eq!(edit_distance(&[4, 1, 5, 9], &[9, 5, 1, 4]), 4);
        assert_eq!(edit_distance(&[], &[1, 2]), 2);
        assert_eq!(edit_distance(&[1, 2, 3], &[]), 3);
    }

    #[test]
    fn the_config_round_trips_and_classifier_files_stay_classifiers() {
        let cfg = default_config();
        cfg.validate().unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"head\":\"ctc\"") && text.contains("\"arch\":\"tcn\""));
        assert_eq!(ModelConfig::parse(&text, Path::new("x")).unwrap(), cfg);
        // A classifier's config has no head field, and one without it is a classifier.
        let classifier = serde_json::to_string(&ModelConfig::default()).unwrap();
        assert!(!classifier.contains("head"));
        assert_eq!(ModelConfig::parse(&classifier, Path::new("x")).unwrap().head, Head::Classifier);
        for wrong in [
            ModelConfig { head: Head::Classifier, ..cfg.clone() },
            ModelConfig { arch: Arch::Wide, ..cfg.clone() },
            ModelConfig { num_classes: NUM_CLASSES, ..cfg.clone() },
        ] {
            assert!(wrong.validate().is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn features_cover_the_whole_utterance() {
        let cfg = default_config().features;
        let samples: Vec<f32> = (0..24_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let (x, frames) = utterance_features(&cfg, &samples).unwrap();
        assert_eq!(frames, 1 + 24_000 / 128);
        assert_eq!(x.len(), 23 * frames);
        assert!(x.iter().all(|&v| (0.0..=4.0 + 1e-4).contains(&v)));
        assert_eq!(output_frames(frames), (frames - 1) / 2 + 1);
    }
}
