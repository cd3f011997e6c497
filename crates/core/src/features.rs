//! The front end: one [`FeatureConfig`] and one [`FrontEnd`] for training, files and the microphone.
//!
//! Equal to torchaudio's
//! `MFCC(sample_rate=8000, n_mfcc=13, melkwargs={n_fft: 256, hop_length: 128, n_mels: 23, center: True})`
//! on clips zero-padded or truncated to 8,000 samples: reflect padding, periodic Hann window,
//! power spectrum, HTK mel filterbank without normalisation, `10*log10(max(x, 1e-10))` clamped
//! to `top_db` below the clip's maximum, orthonormal DCT-II. Output: `n_mfcc x n_frames`
//! (13 x 63), row-major by coefficient.

use crate::{Error, Result};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Floor of the power spectrum before the log (torchaudio's `amin`).
const AMIN: f32 = 1e-10;
/// Decibels per neper of power: 10 / ln(10).
const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;

/// Everything that decides what the model sees. Saved beside the weights and checked on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Rate every input is resampled to (Hz).
    pub sample_rate: u32,
    /// Samples per clip: shorter clips are zero-padded at the end, longer ones truncated.
    pub clip_samples: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub n_mfcc: usize,
    /// Dynamic range kept below the clip's loudest mel bin (dB).
    pub top_db: f32,
    /// Trim silence before framing: keep from the first to the last 16 ms block whose energy
    /// is within this many dB of the loudest block (plus a short margin), so a word starts at
    /// the clip's start as in FSDD whatever the silence around it. `None`: no trimming.
    #[serde(default)]
    pub trim_db: Option<f32>,
    /// Per-utterance normalisation of each coefficient over time (zero mean, unit variance):
    /// removes loudness, channel and much of the speaker's timbre.
    #[serde(default)]
    pub normalize: bool,
    /// The model sees the log-mel spectrogram (`n_mels` rows, the dB values before the DCT,
    /// relative to the clip's loudest bin) instead of the MFCCs; `n_mfcc` must then equal
    /// `n_mels`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_mel: bool,
    /// With `trim_db`: find the word rather than the first loud sample ([`find_word`]): a
    /// noise-adaptive detector on the differenced signal (deaf to DC and mains hum) that
    /// ignores bursts of a few ms (clicks) and keeps the region with the most speech energy,
    /// and the kept samples' mean removed (DC offset). Off: trimming as before, so that models
    /// saved without the field load and behave as they did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub find_word: bool,
    /// Redraw the flat tops of a clipped recording before anything else ([`crate::declip`]).
    /// Off: models saved without the field read recordings at their own rate as they did
    /// (recordings resampled to it are repaired before resampling, whatever the model:
    /// [`crate::audio::load`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declip: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            sample_rate: 8000,
            clip_samples: 8000,
            n_fft: 256,
            hop_length: 128,
            n_mels: 23,
            n_mfcc: 13,
            top_db: 80.0,
            trim_db: None,
            normalize: false,
            log_mel: false,
            find_word: false,
            declip: false,
        }
    }
}

/// The trim of the robust recipe and of the string model's words: silence more than this many
/// dB below the loudest block is cut.
pub const TRIM_DB: f32 = 40.0;

/// Energy blocks per second of the trimming and word-finding windows (and of the condition
/// suite's speech level): [`block_samples`].
pub const BLOCKS_PER_SECOND: usize = 62;

/// The samples of one energy block, about 16 ms (129 at 8 kHz): `sample_rate / 62`, at least 1.
/// (The streaming VAD's frame is [`crate::vad::FRAME_SECONDS`], exactly 16 ms; the trim keeps
/// its own so that the shipped models' features stay as they were.)
pub fn block_samples(sample_rate: u32) -> usize {
    (sample_rate as usize / BLOCKS_PER_SECOND).max(1)
}

impl FeatureConfig {
    /// The improved front end: the original's MFCC with silence trimming and per-utterance
    /// normalisation.
    pub fn robust() -> Self {
        FeatureConfig { trim_db: Some(TRIM_DB), normalize: true, ..FeatureConfig::default() }
    }

    /// Frames per clip with centred framing: `1 + clip_samples / hop_length` (63).
    pub fn n_frames(&self) -> usize {
        1 + self.clip_samples / self.hop_length
    }

    /// Values per feature map: `n_mfcc * n_frames` (819).
    pub fn feature_len(&self) -> usize {
        self.n_mfcc * self.n_frames()
    }

    /// Checks the numbers make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.sample_rate == 0 || self.clip_samples == 0 || self.hop_length == 0 {
            return bad("sample_rate, clip_samples and hop_length must be positive");
        }
        if self.n_fft < 4 || !self.n_fft.is_multiple_of(2) {
            return bad("n_fft must be even and at least 4");
        }
        if self.clip_samples <= self.n_fft / 2 {
            return bad("clip_samples must exceed n_fft / 2 (reflect padding)");
        }
        if self.n_mels == 0 || self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            return bad("need 0 < n_mfcc <= n_mels");
        }
        if self.log_mel && self.n_mfcc != self.n_mels {
            return bad("log_mel needs n_mfcc equal to n_mels (one row per mel band)");
        }
        if self.top_db.is_nan() || self.top_db <= 0.0 {
            return bad("top_db must be positive");
        }
        if self.trim_db.is_some_and(|t| t.is_nan() || t <= 0.0) {
            return bad("trim_db must be positive");
        }
        Ok(())
    }

    /// The fields where `self` and `other` differ, as `name: a vs b`, for error messages.
    pub fn differences(&self, other: &FeatureConfig) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec![] };
        a.iter()
            .filter_map(|(k, va)| {
                let vb = b.get(k)?;
                (va != vb).then(|| format!("{k}: {va} vs {vb}"))
            })
            .collect()
    }
}

/// One mel filter: its weights over FFT bins `start..start + weights.len()`.
#[derive(Debug, Clone)]
struct MelFilter {
    start: usize,
    weights: Vec<f32>,
}

/// The planned front end: a clip to the model's feature map, MFCCs or (with `log_mel`) the
/// log-mel spectrogram. Owns the FFT plan, window, filterbank, DCT matrix and scratch buffers,
/// so computing features allocates nothing but the output.
pub struct FrontEnd {
    config: FeatureConfig,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    filters: Vec<MelFilter>,
    /// `n_mfcc x n_mels`, row-major.
    dct: Vec<f32>,
    padded: Vec<f32>,
    buffer: Vec<Complex32>,
    scratch: Vec<Complex32>,
    power: Vec<f32>,
    /// One FFT's two power spectra (`n_fft / 2 + 1` bins each), on their way into `power`.
    pair_power: Vec<f32>,
    /// `n_mels x n_frames`, row-major.
    mel_db: Vec<f32>,
    /// Speech regions [`find_word`] saw in the last clip (0 when it did not run).
    utterances: usize,
}

impl Clone for FrontEnd {
    fn clone(&self) -> Self {
        // The plan is shared (Arc); buffers are per instance.
        FrontEnd {
            config: self.config.clone(),
            fft: Arc::clone(&self.fft),
            window: self.window.clone(),
            filters: self.filters.clone(),
            dct: self.dct.clone(),
            padded: self.padded.clone(),
            buffer: self.buffer.clone(),
            scratch: self.scratch.clone(),
            power: self.power.clone(),
            pair_power: self.pair_power.clone(),
            mel_db: self.mel_db.clone(),
            utterances: self.utterances,
        }
    }
}

impl FrontEnd {
    /// Plans the computation for `config`.
    pub fn new(config: &FeatureConfig) -> Result<Self> {
        config.validate()?;
        let n_fft = config.n_fft;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let window = hann(n_fft);
        let n_bins = n_fft / 2 + 1;
        let scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        Ok(FrontEnd {
            filters: mel_filters(config.sample_rate, n_fft, config.n_mels, 1.0),
            dct: dct_ortho(config.n_mfcc, config.n_mels),
            window,
            fft,
            padded: vec![0.0; config.clip_samples + n_fft],
            buffer: vec![Complex32::default(); n_fft],
            scratch,
            power: vec![0.0; n_bins * config.n_frames()],
            pair_power: vec![0.0; 2 * n_bins],
            mel_db: vec![0.0; config.n_mels * config.n_frames()],
            utterances: 0,
            config: config.clone(),
        })
    }

    /// Applies `f` to every item on `threads` workers ([`crate::parallel::map`]), each with its
    /// own copy of this plan (the FFT plan is shared), and returns the results in item order.
    /// `f` also gets the item's index.
    pub fn par_map<T, R, F>(&self, items: &[T], threads: usize, f: F) -> Result<Vec<R>>
    where
        T: Sync,
        R: Send,
        F: Fn(&mut FrontEnd, usize, &T) -> R + Sync + Send,
    {
        crate::parallel::map(items, threads, || self.clone(), f)
    }

    /// The same front end with its mel filterbank's frequencies scaled by `warp` (vocal tract
    /// length perturbation, for augmentation): `warp > 1` hears a longer vocal tract's formants
    /// where a shorter one's were.
    pub fn warped(&self, warp: f64) -> FrontEnd {
        let c = &self.config;
        FrontEnd { filters: mel_filters(c.sample_rate, c.n_fft, c.n_mels, warp), ..self.clone() }
    }

    /// The configuration this was planned for.
    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// How many separate speech regions the last computed clip held, with `find_word` (the
    /// front end keeps the one with the most energy; more than one: the file may hold several
    /// utterances). 0 without `find_word`.
    pub fn last_utterances(&self) -> usize {
        self.utterances
    }

    /// Features of a clip at the config's rate, padded or truncated to `clip_samples`:
    /// `n_mfcc x n_frames` values, row-major by coefficient.
    pub fn compute(&mut self, samples: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.config.feature_len()];
        self.compute_into(samples, &mut out);
        out
    }

    /// Like [`FrontEnd::compute`], writing into `out` (`feature_len()` values).
    pub fn compute_into(&mut self, samples: &[f32], out: &mut [f32]) {
        self.compute_with_lead_in(samples, 0, 1.0, out);
    }

    /// Like [`FrontEnd::compute_into`], with `lead_in` samples of silence put before the (trimmed)
    /// clip and only its first `keep` fraction kept: training's random lead-in (which trimming
    /// would otherwise remove) and end cut.
    pub fn compute_with_lead_in(&mut self, samples: &[f32], lead_in: usize, keep: f32, out: &mut [f32]) {
        let cfg = &self.config;
        let (n_fft, hop, n_frames, len) = (cfg.n_fft, cfg.hop_length, cfg.n_frames(), cfg.clip_samples);
        let half = n_fft / 2;
        let repaired = if cfg.declip { crate::declip::repaired(samples) } else { None };
        let samples = repaired.as_deref().unwrap_or(samples);

        // A trimmed word always starts after the same margin: where the clip gives less, zeros
        // make up the rest, so silence before a clip never changes its features.
        let mut dc = 0.0;
        let (samples, lead_in) = match cfg.trim_db {
            Some(db) if cfg.find_word => {
                let word = find_word(samples, cfg.sample_rate, db);
                self.utterances = word.utterances;
                (samples.get(word.range).unwrap_or(samples), lead_in + word.missing)
            }
            Some(db) => {
                let (segment, missing) = speech_bounds(samples, cfg.sample_rate, db);
                (samples.get(segment).unwrap_or(samples), lead_in + missing)
            }
            None => (samples, lead_in),
        };
        let samples = &samples[..((samples.len() as f32 * keep).round() as usize).min(samples.len())];
        // The word's mean (DC) is removed from the word, not from zeros before it: real zeros of
        // the margin and zeros that make it up are the same.
        let mut silent = 0;
        if cfg.find_word {
            silent = samples.iter().position(|&s| s != 0.0).unwrap_or(samples.len());
            let n = samples.len().min(len).saturating_sub(silent).max(1);
            dc = samples[silent.min(samples.len())..].iter().take(n).sum::<f32>() / n as f32;
        }
        // Clip to `len` samples (zero-padded, after `lead_in` zeros), then reflect-pad by
        // n_fft/2 on both sides.
        let padded = &mut self.padded;
        let body = &mut padded[half..half + len];
        let lead = lead_in.min(len);
        let n = samples.len().min(len - lead);
        body[..lead].fill(0.0);
        body[lead..lead + n].copy_from_slice(&samples[..n]);
        if dc != 0.0 {
            body[(lead + silent).min(lead + n)..lead + n].iter_mut().for_each(|s| *s -= dc);
        }
        body[lead + n..].fill(0.0);
        for i in 1..=half {
            padded[half - i] = padded[half + i];
            padded[half + len - 1 + i] = padded[half + len - 1 - i];
        }

        // Power spectrum. Two real frames share one complex FFT: frame a in the real part,
        // frame b in the imaginary part, separated by the conjugate symmetry of real spectra:
        // with z = X[k] and y = X[n_fft - k], |A[k]|^2 = |z + conj(y)|^2 / 4 and
        // |B[k]|^2 = |z - conj(y)|^2 / 4.
        // Frames that lie wholly in the zero padding after a short clip have an all-zero
        // spectrum: only the frames up to the clip's last non-zero sample need an FFT. (When the
        // clip reaches into the last half-window, the end's reflection is not zero: all frames.)
        let end = if lead + n + half < len {
            half + lead + samples[..n].iter().rposition(|&s| s != 0.0).map_or(0, |i| i + 1)
        } else {
            padded.len()
        };
        let live = end.div_ceil(hop).min(n_frames);
        let computed = (live + live % 2).min(n_frames);
        for pair in (0..computed).step_by(2) {
            let a = &padded[pair * hop..][..n_fft];
            let (window, frame) = (&self.window[..n_fft], &mut self.buffer[..n_fft]);
            let second = pair + 1 < n_frames;
            if second {
                let b = &padded[(pair + 1) * hop..][..n_fft];
                for i in 0..n_fft {
                    frame[i] = Complex32::new(a[i] * window[i], b[i] * window[i]);
                }
            } else {
                for i in 0..n_fft {
                    frame[i] = Complex32::new(a[i] * window[i], 0.0);
                }
            }
            self.fft.process_with_scratch(&mut self.buffer, &mut self.scratch);
            // The power spectrum is stored bin-major ([bin][frame]), so that the filterbank
            // below runs along frames in vectorisable rows.
            // Bin 0 is its own mirror; bins 1..=half mirror n_fft-1 down to n_fft-half.
            // Both frames' spectra first (equal-length slices and plain indices, so that the
            // loop vectorises), then into their columns.
            let (pa, pb) = self.pair_power.split_at_mut(half + 1);
            pa[0] = self.buffer[0].re * self.buffer[0].re;
            pb[0] = self.buffer[0].im * self.buffer[0].im;
            let (lo, hi) = (&self.buffer[1..=half], &self.buffer[half..2 * half]);
            let (pa_bins, pb_bins) = (&mut pa[1..=half], &mut pb[1..=half]);
            for k in 0..half {
                let (z, y) = (lo[k], hi[half - 1 - k]);
                let (sr, si) = (z.re + y.re, z.im - y.im);
                let (dr, di) = (z.re - y.re, z.im + y.im);
                pa_bins[k] = 0.25 * (sr * sr + si * si);
                pb_bins[k] = 0.25 * (dr * dr + di * di);
            }
            let columns = self.power.chunks_exact_mut(n_frames);
            if second {
                for ((column, &a), &b) in columns.zip(pa.iter()).zip(pb.iter()) {
                    column[pair] = a;
                    column[pair + 1] = b;
                }
            } else {
                for (column, &a) in columns.zip(pa.iter()) {
                    column[pair] = a;
                }
            }
        }

        for row in self.power.chunks_exact_mut(n_frames) {
            row[computed..].fill(0.0);
        }

        // Mel filterbank (each filter a weighted sum of a few bin rows), then dB in one
        // vectorisable pass, then the clip's top_db floor.
        for (filter, row) in self.filters.iter().zip(self.mel_db.chunks_exact_mut(n_frames)) {
            row.fill(0.0);
            let rows = self.power[filter.start * n_frames..].chunks_exact(n_frames);
            for (&w, bin) in filter.weights.iter().zip(rows) {
                for (o, &p) in row.iter_mut().zip(bin) {
                    *o += w * p;
                }
            }
        }
        for v in &mut self.mel_db {
            *v = DB_PER_NEPER * fast_ln(v.max(AMIN));
        }
        let max_db = self.mel_db.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        let floor = max_db - cfg.top_db;
        for v in &mut self.mel_db {
            *v = v.max(floor);
        }

        // Orthonormal DCT-II over the mel axis (or the log-mel rows as they are).
        let n_mels = cfg.n_mels;
        for (c, row) in out.chunks_exact_mut(n_frames).enumerate() {
            if cfg.log_mel {
                // Relative to the clip's loudest bin: a louder or quieter recording of the same
                // word gives the same map (in MFCCs only c0 moves with the level).
                for (o, &v) in row.iter_mut().zip(&self.mel_db[c * n_frames..(c + 1) * n_frames]) {
                    *o = v - max_db;
                }
            } else {
                row.fill(0.0);
                for m in 0..n_mels {
                    let w = self.dct[c * n_mels + m];
                    let mel = &self.mel_db[m * n_frames..(m + 1) * n_frames];
                    for (o, &v) in row.iter_mut().zip(mel) {
                        *o += w * v;
                    }
                }
            }
            if cfg.normalize {
                normalize(row);
            }
        }
    }
}

/// The periodic Hann window of `n` points (torch.hann_window's default), shared by the front end
/// and the analysis spectrogram.
pub(crate) fn hann(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32).collect()
}

/// Natural log of a positive normal float without a libm call, so that a loop of them
/// vectorises: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh((m - 1) / (m + 1)) by
/// its series to s^9 (error below 1e-9 there; f32 rounding, ~1e-7 relative, dominates).
fn fast_ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

/// Zero mean, unit variance (the variance floored, so silence stays finite).
fn normalize(row: &mut [f32]) {
    let n = row.len().max(1) as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / var.max(1e-2).sqrt();
    for v in row.iter_mut() {
        *v = (*v - mean) * inv;
    }
}

/// The detected speech segment that trimming keeps: from the first to the last 16 ms window
/// whose energy is within `db` of the loudest window, widened by 16 ms on each side; the windows
/// end at every sample. All of `samples` when it is silent.
pub fn speech_segment(samples: &[f32], sample_rate: u32, db: f32) -> std::ops::Range<usize> {
    speech_bounds(samples, sample_rate, db).0
}

/// [`speech_segment`], and how much of its 16 ms margin before the speech lies before the
/// clip's start (the front end puts that many zeros before the segment). The windows end at
/// every sample, the first ones reaching into zeros before the clip, so any silence put before
/// a clip moves the segment with it, sample for sample.
fn speech_bounds(samples: &[f32], sample_rate: u32, db: f32) -> (std::ops::Range<usize>, usize) {
    let block = block_samples(sample_rate);
    // energies[e - 1]: the window that ends at sample e, samples[e - block..e], from running
    // sums in f64 (no drift).
    let mut energies = Vec::with_capacity(samples.len());
    let mut sum = 0.0f64;
    for (e, &s) in samples.iter().enumerate() {
        sum += f64::from(s) * f64::from(s);
        if let Some(&old) = e.checked_sub(block).and_then(|i| samples.get(i)) {
            sum -= f64::from(old) * f64::from(old);
        }
        energies.push(sum.max(0.0));
    }
    let max = energies.iter().copied().fold(0.0f64, f64::max);
    if max <= 0.0 {
        return (0..samples.len(), 0);
    }
    let floor = max * 10f64.powf(-f64::from(db) / 10.0);
    let first_end = energies.iter().position(|&e| e >= floor).unwrap_or(0) + 1;
    let last_end = energies.iter().rposition(|&e| e >= floor).map_or(samples.len(), |i| i + 1);
    // One window's length of margin before the first window and after the last one.
    let start = first_end as i64 - 2 * block as i64;
    let end = (last_end + block).min(samples.len());
    let missing = (-start).max(0) as usize;
    let start = start.max(0) as usize;
    if start < end { (start..end, missing) } else { (0..samples.len(), 0) }
}

/// [`find_word`]: a noise-adaptive threshold this far above the noise floor (the 10th
/// percentile of the 16 ms blocks' energies) ...
const WORD_ABOVE_NOISE_DB: f64 = 10.0;
/// ... but never higher than this far below the loudest block (a clip that is all word has no
/// noise floor to measure), nor lower than this far below it.
const WORD_THRESHOLD_DB: (f64, f64) = (20.0, 60.0);
/// Runs of loud blocks closer than this (s) are one region (the closure of a stop in "eight").
const WORD_GAP_SECONDS: f32 = 0.2;
/// Regions shorter than this (s) are bursts (clicks, pops), not words.
const MIN_WORD_SECONDS: f32 = 0.04;
/// The trim looks this far (s) beyond the chosen region for the word's weak edges.
const WORD_MARGIN_SECONDS: f32 = 0.1;
/// Another region counts as an utterance when it is this long (s) and has this share of the
/// chosen region's energy.
const OTHER_UTTERANCE: (f32, f64) = (0.1, 0.1);

/// Where [`find_word`] found the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The samples the front end keeps.
    pub range: std::ops::Range<usize>,
    /// How much of the margin before the word lies before the clip's start (made up with zeros).
    pub missing: usize,
    /// Speech regions in the clip (the chosen one included; 0 for silence).
    pub utterances: usize,
}

/// Finds the word in a recording of any length: the energies of 16 ms blocks of the differenced
/// signal (a first difference: DC gone, 50 Hz 26 dB down against 1 kHz, nearly free), a
/// threshold [`WORD_ABOVE_NOISE_DB`] over the noise floor (within [`WORD_THRESHOLD_DB`] below
/// the loudest block), runs above it joined over gaps shorter than [`WORD_GAP_SECONDS`], runs
/// shorter than [`MIN_WORD_SECONDS`] dropped as clicks (and the threshold found again without
/// them), and the region with the most energy kept. Within it (and [`WORD_MARGIN_SECONDS`]
/// either side, up to the neighbouring regions) the trim is [`speech_segment`]'s, sample-exact:
/// from the first to the last 16 ms window within `db` of the region's loudest (and above the
/// threshold), with its margins. On a clean clip (noise more than `db` below the word) it keeps
/// what the plain trim of the differenced signal keeps.
pub fn find_word(samples: &[f32], sample_rate: u32, db: f32) -> Word {
    // Digital silence before the first sound is not noise and never moves the word: the search
    // starts at the first non-zero sample, and the zeros before it count as the margin the
    // front end would otherwise make up, so zeros put before a clip change nothing.
    let lead = samples.iter().position(|&s| s != 0.0).unwrap_or(0);
    let found = find_word_from_sound(&samples[lead..], sample_rate, db);
    if lead == 0 || found.utterances == 0 {
        return if lead == 0 { found } else { Word { range: 0..samples.len(), missing: 0, utterances: 0 } };
    }
    let start = (lead + found.range.start) as i64 - found.missing as i64;
    Word {
        range: start.max(0) as usize..lead + found.range.end,
        missing: (-start).max(0) as usize,
        utterances: found.utterances,
    }
}

/// [`find_word`] on a clip whose first sample is not zero.
fn find_word_from_sound(samples: &[f32], sample_rate: u32, db: f32) -> Word {
    let block = block_samples(sample_rate);
    let blocks = |secs: f32| ((secs * sample_rate as f32) / block as f32).ceil().max(1.0) as usize;
    let diff = |i: usize| if i == 0 { 0.0 } else { samples[i] - samples[i - 1] };
    let mut energies: Vec<f64> = samples
        .chunks(block)
        .enumerate()
        .map(|(b, chunk)| {
            let inner: f32 = chunk.windows(2).map(|w| (w[1] - w[0]) * (w[1] - w[0])).sum();
            let first = diff(b * block);
            f64::from(inner + first * first) / chunk.len() as f64
        })
        .collect();
    let whole = Word { range: 0..samples.len(), missing: 0, utterances: 0 };
    let mut runs = Vec::new();
    let mut threshold = 0.0;
    // Twice: the second time without the bursts the first found, so a click louder than the
    // word does not set the threshold.
    for _ in 0..2 {
        let peak = energies.iter().copied().fold(0.0f64, f64::max);
        if peak <= 0.0 {
            return whole;
        }
        let mut sorted = energies.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let noise = sorted[sorted.len() / 10];
        let db_down = |d: f64| peak * 10f64.powf(-d / 10.0);
        threshold = (noise * 10f64.powf(WORD_ABOVE_NOISE_DB / 10.0))
            .max(db_down(WORD_THRESHOLD_DB.1))
            .min(db_down(WORD_THRESHOLD_DB.0));
        runs = regions(&energies, threshold, blocks(WORD_GAP_SECONDS));
        let min = blocks(MIN_WORD_SECONDS);
        let (words, bursts): (Vec<_>, Vec<_>) = runs.iter().cloned().partition(|r| r.len() >= min);
        if bursts.is_empty() || words.is_empty() {
            break;
        }
        for r in bursts {
            energies[r].fill(0.0);
        }
        runs = words;
    }
    let min = blocks(MIN_WORD_SECONDS);
    let energy = |r: &std::ops::Range<usize>| energies[r.clone()].iter().sum::<f64>();
    let Some((chosen, best)) = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.len() >= min)
        .max_by(|(_, a), (_, b)| energy(a).total_cmp(&energy(b)))
        .map(|(i, r)| (i, energy(r)))
    else {
        return whole;
    };
    let (other_len, other_share) = OTHER_UTTERANCE;
    let utterances = runs
        .iter()
        .enumerate()
        .filter(|(i, r)| *i == chosen || (r.len() >= blocks(other_len) && energy(r) >= other_share * best))
        .count();
    let margin = blocks(WORD_MARGIN_SECONDS);
    let r = &runs[chosen];
    let lo = r.start.saturating_sub(margin).max(if chosen > 0 { runs[chosen - 1].end } else { 0 });
    let hi = (r.end + margin).min(runs.get(chosen + 1).map_or(energies.len(), |n| n.start));
    let span = (lo * block).min(samples.len())..(hi * block).min(samples.len());

    // Sample-exact: windows of the differenced signal ending at every sample of the span.
    let mut window = Vec::with_capacity(span.len());
    let mut sum = 0.0f64;
    for e in span.clone() {
        let d = f64::from(diff(e));
        sum += d * d;
        if e >= span.start + block {
            let old = f64::from(diff(e - block));
            sum -= old * old;
        }
        window.push(sum.max(0.0));
    }
    let max = window.iter().copied().fold(0.0f64, f64::max);
    let floor = (max * 10f64.powf(-f64::from(db) / 10.0)).max(threshold * block as f64);
    let (Some(first), Some(last)) =
        (window.iter().position(|&e| e >= floor), window.iter().rposition(|&e| e >= floor))
    else {
        return Word { utterances, ..whole };
    };
    let start = (span.start + first + 1) as i64 - 2 * block as i64;
    let end = (span.start + last + 1 + block).min(samples.len());
    let missing = (-start).max(0) as usize;
    let start = start.max(0) as usize;
    if start < end { Word { range: start..end, missing, utterances } } else { Word { utterances, ..whole } }
}

/// Runs of consecutive `energies` at or above `threshold`, joined over gaps of fewer than `gap`
/// blocks.
fn regions(energies: &[f64], threshold: f64, gap: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, &e) in energies.iter().enumerate() {
        if e < threshold {
            continue;
        }
        match runs.last_mut() {
            Some(last) if i - last.end < gap => last.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// VTLP's frequency warp: `f * warp` up to a knee, then linear to Nyquist.
fn vtlp(f: f64, warp: f64, nyquist: f64) -> f64 {
    if warp == 1.0 {
        return f;
    }
    let knee = 0.8 * nyquist * warp.min(1.0) / warp;
    if f <= knee { f * warp } else { nyquist - (nyquist - f) * (nyquist - knee * warp) / (nyquist - knee) }
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// torchaudio's `melscale_fbanks(n_freqs, 0, sr/2, n_mels, sr, norm=None, mel_scale="htk")`,
/// kept sparse: each filter's non-zero run of bins. `warp` != 1 scales the filters' corner
/// frequencies (VTLP's piecewise-linear warp, which keeps 0 and Nyquist in place).
fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize, warp: f64) -> Vec<MelFilter> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate / 2);
    let freqs: Vec<f64> = (0..n_bins).map(|i| nyquist * i as f64 / (n_bins - 1) as f64).collect();
    let (m_min, m_max) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let f_pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| vtlp(mel_to_hz(m_min + (m_max - m_min) * i as f64 / (n_mels + 1) as f64), warp, nyquist))
        .collect();
    (0..n_mels)
        .map(|m| {
            let dense: Vec<f32> = freqs
                .iter()
                .map(|&f| {
                    let down = (f - f_pts[m]) / (f_pts[m + 1] - f_pts[m]);
                    let up = (f_pts[m + 2] - f) / (f_pts[m + 2] - f_pts[m + 1]);
                    down.min(up).max(0.0) as f32
                })
                .collect();
            let start = dense.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = dense.iter().rposition(|&w| w > 0.0).map_or(start, |e| e + 1);
            MelFilter { start, weights: dense[start..end].to_vec() }
        })
        .collect()
}

/// torchaudio's `create_dct(n_mfcc, n_mels, norm="ortho")`, transposed to `n_mfcc x n_mels`.
fn dct_ortho(n_mfcc: usize, n_mels: usize) -> Vec<f32> {
    let n = n_mels as f64;
    let mut dct = Vec::with_capacity(n_mfcc * n_mels);
    for k in 0..n_mfcc {
        let scale = if k == 0 { (1.0 / n).sqrt() } else { (2.0 / n).sqrt() };
        for m in 0..n_mels {
            dct.push((scale * (std::f64::consts::PI / n * (m as f64 + 0.5) * k as f64).cos()) as f32);
        }
    }
    dct
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_ln_agrees_with_ln_over_the_whole_range() {
        let mut x = 1e-10f32;
        while x < 1e10 {
            let (ours, exact) = (super::fast_ln(x), f64::from(x).ln());
            assert!(
                (f64::from(ours) - exact).abs() < 2e-6 * exact.abs().max(1.0),
                "ln {x}: {ours} vs {exact}"
            );
            x *= 1.37;
        }
    }

    use super::*;

    /// The samples the front end's trim keeps (before it makes up a cut-off margin).
    fn trim(samples: &[f32], sample_rate: u32, db: f32) -> &[f32] {
        &samples[speech_segment(samples, sample_rate, db)]
    }

    #[test]
    fn shape_is_13_by_63() {
        let cfg = FeatureConfig::default();
        assert_eq!((cfg.n_mfcc, cfg.n_frames(), cfg.feature_len()), (13, 63, 819));
        let out = FrontEnd::new(&cfg).unwrap().compute(&[0.1; 100]);
        assert_eq!(out.len(), 819);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn skipping_the_silent_frames_changes_nothing() {
        // A short clip's frames in the zero padding skip their FFT. A 1e-30 sample at the clip's
        // very end (its power underflows to 0) forces every frame through the FFT: same values,
        // also right after a loud clip that filled every frame's buffers.
        let cfg = FeatureConfig::default();
        let mut mfcc = FrontEnd::new(&cfg).unwrap();
        let loud: Vec<f32> = (0..cfg.clip_samples).map(|i| ((i as f32) * 0.11).sin()).collect();
        for n in [1, 127, 128, 129, 3000, 3001, 7870, 7871, 7872, 7873, 7999] {
            let clip: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 0.3).collect();
            let mut forced = clip.clone();
            forced.resize(cfg.clip_samples, 0.0);
            forced[cfg.clip_samples - 1] = 1e-30;
            let full = mfcc.compute(&forced);
            mfcc.compute(&loud);
            let skipped = mfcc.compute(&clip);
            let worst = skipped.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-3, "clip of {n} samples: differs by {worst}");
        }
    }

    #[test]
    fn lead_in_puts_silence_before_the_trimmed_word() {
        // With trimming, k samples of lead-in give the features of the trimmed word after k
        // zeros, computed without trimming.
        let trimmed = FeatureConfig { trim_db: Some(40.0), ..FeatureConfig::default() };
        let mut with_trim = FrontEnd::new(&trimmed).unwrap();
        let mut plain = FrontEnd::new(&FeatureConfig::default()).unwrap();
        let mut clip = vec![0.0f32; 2000];
        clip.extend((0..3000).map(|i| ((i as f32) * 0.37).sin() * 0.3));
        clip.resize(8000, 0.0);
        let word = trim(&clip, 8000, 40.0).to_vec();
        let mut out = vec![0.0; trimmed.feature_len()];
        for k in [0, 1, 300, 800, 7990, 9000] {
            with_trim.compute_with_lead_in(&clip, k, 1.0, &mut out);
            let mut expected_input = vec![0.0f32; k];
            expected_input.extend(&word);
            let expected = plain.compute(&expected_input);
            let worst = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-3, "lead-in of {k}: differs by {worst}");
        }
        with_trim.compute_with_lead_in(&clip, 0, 1.0, &mut out);
        assert_eq!(out, with_trim.compute(&clip));
    }

    #[test]
    fn silence_is_flat_at_the_floor() {
        let cfg = FeatureConfig::default();
        let out = FrontEnd::new(&cfg).unwrap().compute(&[]);
        // All mel bins at -100 dB: only c0 is non-zero, -100 * sqrt(23).
        let c0 = -100.0 * (23f32).sqrt();
        assert!(out[..63].iter().all(|v| (v - c0).abs() < 1e-2), "{}", out[0]);
        assert!(out[63..].iter().all(|v| v.abs() < 1e-2));
    }

    #[test]
    fn filters_cover_the_spectrum_like_htk() {
        let f = mel_filters(8000, 256, 23, 1.0);
        assert_eq!(f.len(), 23);
        // Each triangle rises from zero and falls back: its peak is at most 1.
        assert!(f.iter().all(|m| m.weights.iter().all(|&w| (0.0..=1.0).contains(&w))));
        assert!(f[0].start <= 1 && f[22].start + f[22].weights.len() <= 129);
    }

    #[test]
    fn vtlp_moves_formant_filters_and_keeps_the_band() {
        let plain = mel_filters(8000, 256, 23, 1.0);
        let up = mel_filters(8000, 256, 23, 1.15);
        let down = mel_filters(8000, 256, 23, 0.87);
        // A low filter listens higher up with warp > 1 and lower down with warp < 1 ...
        assert!(up[10].start > plain[10].start && down[10].start < plain[10].start);
        // ... and the bank still spans 0 to Nyquist with valid triangles.
        for bank in [&up, &down] {
            assert!(bank[0].start <= 1 && bank[22].start + bank[22].weights.len() <= 129);
            assert!(bank.iter().all(|m| !m.weights.is_empty()));
        }
        assert_eq!(vtlp(4000.0, 1.15, 4000.0), 4000.0);
        assert_eq!(vtlp(0.0, 0.87, 4000.0), 0.0);
    }

    #[test]
    fn trim_cuts_silence_and_normalize_standardises() {
        let mut x = vec![0.0f32; 4000];
        x.extend((0..2000).map(|i| (i as f32 * 0.3).sin() * 0.5));
        x.extend(vec![0.001f32; 4000]);
        let t = trim(&x, 8000, 40.0);
        assert!(t.len() >= 2000 && t.len() <= 2000 + 4 * 129, "{}", t.len());
        assert!(trim(&[0.0; 100], 8000, 40.0).len() == 100);
        // Silence before the clip moves the segment sample for sample: the same samples kept.
        for k in [1, 7, 64, 128, 129, 200] {
            let mut y = vec![0.0f32; k];
            y.extend(&x);
            assert_eq!(trim(&y, 8000, 40.0), t, "{k} more zeros");
        }
        assert_eq!(trim(&[0.5; 10], 8000, 40.0).len(), 10);
        // A word that starts at once has its missing margin made up with zeros: its features do
        // not change with any silence before it.
        let trimmed = FeatureConfig { trim_db: Some(40.0), ..FeatureConfig::default() };
        let mut mfcc = FrontEnd::new(&trimmed).unwrap();
        let word = &x[4000..6000];
        let tight = mfcc.compute(word);
        for k in [1, 50, 128, 129, 130, 700] {
            let mut y = vec![0.0f32; k];
            y.extend(word);
            assert_eq!(mfcc.compute(&y), tight, "{k} zeros before the word");
        }
        let cfg = FeatureConfig::robust();
        let a = FrontEnd::new(&cfg).unwrap().compute(&x);
        let b = FrontEnd::new(&cfg).unwrap().compute(&x[3700..]);
        assert_eq!(a, b, "leading silence must not change robust features");
        let row = &a[63..126];
        let mean: f32 = row.iter().sum::<f32>() / 63.0;
        assert!(mean.abs() < 1e-4);
    }

    #[test]
    fn log_mel_rows_are_what_the_dct_turns_into_mfccs() {
        // With all 23 coefficients the DCT is orthonormal and square: the MFCCs of a clip are
        // the DCT of its log-mel rows, column by column.
        let full = FeatureConfig { n_mfcc: 23, trim_db: Some(40.0), ..FeatureConfig::default() };
        let log_mel = FeatureConfig { log_mel: true, ..full.clone() };
        let clip: Vec<f32> = (0..6000).map(|i| (i as f32 * 0.07).sin() * (i as f32 * 0.0011).cos()).collect();
        let mfcc = FrontEnd::new(&full).unwrap().compute(&clip);
        let mel = FrontEnd::new(&log_mel).unwrap().compute(&clip);
        assert_eq!(mel.len(), 23 * 63);
        // The rows are decibels below the clip's loudest bin, down to top_db under it.
        let max = mel.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        assert_eq!(max, 0.0);
        assert!(mel.iter().all(|&v| v >= -80.0 - 1e-3));
        // So the DCT of the rows is the MFCCs, but for c0, which is lower by the same amount
        // (the clip's loudest level times sqrt(23)) in every frame.
        let dct = dct_ortho(23, 23);
        let frames = full.n_frames();
        let c0_offset = mfcc[0] - (0..23).map(|m| dct[m] * mel[m * frames]).sum::<f32>();
        assert!(c0_offset.abs() > 1.0, "a clip at -20 dBFS or so has a level to remove: {c0_offset}");
        for c in 0..23 {
            let offset = if c == 0 { c0_offset } else { 0.0 };
            for t in 0..frames {
                let v: f32 = offset + (0..23).map(|m| dct[c * 23 + m] * mel[m * frames + t]).sum::<f32>();
                assert!(
                    (v - mfcc[c * frames + t]).abs() < 1e-2,
                    "c{c} t{t}: {v} vs {}",
                    mfcc[c * frames + t]
                );
            }
        }
        // Louder by 12 dB (x4), the same map.
        let louder: Vec<f32> = clip.iter().map(|s| 4.0 * s).collect();
        let mel_louder = FrontEnd::new(&log_mel).unwrap().compute(&louder);
        assert!(mel.iter().zip(&mel_louder).all(|(a, b)| (a - b).abs() < 1e-3));
        let mismatched = FeatureConfig { log_mel: true, ..FeatureConfig::default() };
        assert!(mismatched.validate().is_err(), "13 rows of 23 mel bands");
    }

    /// A vowel-like word of `n` samples at amplitude `a` (harmonics of 140 Hz, smooth envelope).
    fn vowel(n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let env = (std::f32::consts::PI * i as f32 / n as f32).sin();
                a * env
                    * (1..=6)
                        .map(|k| (std::f32::consts::TAU * 140.0 * k as f32 * t).sin() / k as f32)
                        .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn find_word_skips_a_click_and_its_silence() {
        // A full-scale 2 ms click, a second of silence, the word: the plain trim keeps the click,
        // find_word keeps the word only, exactly as without the click.
        let word = vowel(3000, 0.2);
        let mut clip = vec![1.0f32; 16];
        clip.resize(8016, 0.0);
        clip.extend(&word);
        clip.resize(clip.len() + 2000, 0.0);
        let mut no_click = clip.clone();
        no_click[..16].fill(0.0);
        assert!(speech_segment(&clip, 8000, 40.0).start < 16, "the plain trim starts at the click");
        let (found, without) = (find_word(&clip, 8000, 40.0), find_word(&no_click, 8000, 40.0));
        assert_eq!(found, without);
        assert_eq!(found.utterances, 1);
        assert!((7700..8016).contains(&found.range.start), "{:?}", found.range);
        let cfg = FeatureConfig { trim_db: Some(40.0), find_word: true, ..FeatureConfig::default() };
        let mut mfcc = FrontEnd::new(&cfg).unwrap();
        assert_eq!(mfcc.compute(&clip), mfcc.compute(&no_click));
        assert_eq!(mfcc.last_utterances(), 1);
        // A clip that is all word has no noise floor to measure: the threshold is then at most
        // 20 dB under the loudest block, and the trim a little tighter than with silence around.
        let alone = find_word(&word, 8000, 40.0);
        let at = |w: &Word| w.range.start as i64 - w.missing as i64;
        assert!((at(&found) - 8016 - at(&alone)).abs() < 160, "{found:?} vs {alone:?}");
    }

    #[test]
    fn find_word_hears_the_word_over_hum_noise_and_dc() {
        // The word at 1.7 s of 3 s, with 50 Hz hum 20 dB below it, a DC offset and room noise
        // (white noise through a one-pole low-pass) 30 dB below: the region found is the word's
        // (within a window of its edges).
        let word = vowel(4000, 0.2);
        let level = (word.iter().map(|s| s * s).sum::<f32>() / word.len() as f32).sqrt();
        let (mut rng, mut low) = (12345u32, 0.0f32);
        let mut room: Vec<f32> = (0..24000)
            .map(|_| {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                low = 0.95 * low + ((rng >> 8) as f32 / (1u32 << 24) as f32 - 0.5);
                low
            })
            .collect();
        let room_rms = (room.iter().map(|s| s * s).sum::<f32>() / room.len() as f32).sqrt();
        room.iter_mut().for_each(|s| *s *= 0.0316 * level / room_rms);
        let clip: Vec<f32> = (0..24000)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let w = if (13600..17600).contains(&i) { word[i - 13600] } else { 0.0 };
                w + 0.1 * level * 2f32.sqrt() * (std::f32::consts::TAU * 50.0 * t).sin() + 0.2 + room[i]
            })
            .collect();
        let plain = speech_segment(&clip, 8000, 40.0);
        assert!(plain.start < 200 && plain.end > 23800, "the plain trim keeps it all: {plain:?}");
        let found = find_word(&clip, 8000, 40.0);
        assert!((13300..=14000).contains(&found.range.start), "{:?}", found.range);
        assert!((17200..=17900).contains(&found.range.end), "{:?}", found.range);
        assert_eq!(found.utterances, 1);
        // The kept samples' mean is removed: the offset does not reach the features.
        let cfg = FeatureConfig { trim_db: Some(40.0), find_word: true, ..FeatureConfig::default() };
        let mut mfcc = FrontEnd::new(&cfg).unwrap();
        let shifted: Vec<f32> = clip.iter().map(|s| s - 0.2).collect();
        let (a, b) = (mfcc.compute(&clip), mfcc.compute(&shifted));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-2));
    }

    #[test]
    fn find_word_counts_utterances_and_keeps_the_loudest() {
        // The first word 6 dB quieter than the second.
        let mut clip = vowel(3000, 0.1);
        clip.resize(7000, 0.0);
        clip.extend(vowel(3000, 0.2));
        clip.resize(14000, 0.0);
        let found = find_word(&clip, 8000, 40.0);
        assert_eq!(found.utterances, 2);
        assert!(found.range.start >= 6500 && found.range.end <= 10500, "{:?}", found.range);
        // A cough of 20 ms is a burst, not an utterance.
        let mut one = vowel(3000, 0.2);
        one.resize(8000, 0.0);
        one.extend(vowel(160, 0.3));
        one.resize(12000, 0.0);
        assert_eq!(find_word(&one, 8000, 40.0).utterances, 1);
        assert_eq!(find_word(&[0.0; 100], 8000, 40.0).utterances, 0);
        assert_eq!(find_word(&[], 8000, 40.0).range, 0..0);
    }

    #[test]
    fn find_word_off_leaves_old_configs_as_they_were() {
        // A saved config without the field reads as off and writes back without it.
        let cfg = FeatureConfig::robust();
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(!text.contains("find_word"));
        let back: FeatureConfig = serde_json::from_str(&text).unwrap();
        assert!(!back.find_word);
    }

    #[test]
    fn config_differences_name_the_field() {
        let a = FeatureConfig::default();
        let b = FeatureConfig { n_mels: 40, ..a.clone() };
        assert_eq!(a.differences(&b), vec!["n_mels: 23 vs 40".to_string()]);
    }
}
