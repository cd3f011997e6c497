//! What the model hears in one recording: the waveform, its spectrogram, the speech segment, the
//! MFCC map the model is given, and (once a model has looked) its probabilities and the string
//! model's digits with their spans. The numbers
//! behind `analyze`'s picture (`spoken_digits_report::analysis`); the MFCC map comes from the same
//! [`FrontEnd`] front end as training and prediction.

use crate::ctc::{Reading, StringModel};
use crate::features::speech_segment;
use crate::model::Model;
use crate::{FeatureConfig, FrontEnd, NUM_CLASSES, Result};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use std::ops::Range;
use std::path::Path;

/// Dynamic range shown in the spectrogram (dB below its loudest bin).
const SPECTROGRAM_RANGE_DB: f32 = 80.0;
/// Segment threshold for models that do not trim: the robust recipe's.
const DISPLAY_TRIM_DB: f32 = crate::features::TRIM_DB;
/// `analyze --max-seconds`: longer files are refused (a picture of more than a minute shows
/// nothing a word's does; the other binaries take [`crate::audio::DEFAULT_MAX_SECONDS`]).
pub const MAX_SECONDS: f64 = 60.0;

/// A power spectrogram in dB: `n_bins x n_frames`, row-major by frequency bin (bin 0 = 0 Hz).
#[derive(Debug, Clone)]
pub struct Spectrogram {
    pub db: Vec<f32>,
    pub n_bins: usize,
    pub n_frames: usize,
    /// Samples between frames.
    pub hop: usize,
}

/// Everything `analyze` draws for one recording.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// A label for the picture, usually the file name.
    pub name: String,
    /// The recording at the model's sample rate.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// The detected speech segment, in samples.
    pub segment: Range<usize>,
    /// Whether the model's front end cuts the clip to `segment` (`trim_db`); when it does not,
    /// the segment is only shown, and the model sees the first `clip_samples` samples.
    pub trimmed: bool,
    /// The model's window (`clip_samples` long) in the recording's samples; it may run past the
    /// end, where the front end pads with zeros.
    pub window: Range<usize>,
    pub spectrogram: Spectrogram,
    /// `n_mfcc x n_frames`, row-major by coefficient: exactly the model's input.
    pub mfcc: Vec<f32>,
    pub n_mfcc: usize,
    pub n_frames: usize,
    /// Whether each MFCC row is normalised per utterance (the front end's `normalize`).
    pub normalized: bool,
    /// Whether the rows are log-mel bands in dB rather than MFCCs (the front end's `log_mel`).
    pub log_mel: bool,
    /// Class probabilities, when a model has been run on `mfcc`.
    pub probabilities: Option<[f32; NUM_CLASSES]>,
    /// The string model's reading of the whole recording (its digits and their spans), when
    /// one has been run.
    pub reading: Option<Reading>,
}

impl Analysis {
    /// Analyses `samples` (at `config.sample_rate`) through the front end `config`.
    pub fn new(name: impl Into<String>, samples: Vec<f32>, config: &FeatureConfig) -> Result<Self> {
        let features = FrontEnd::new(config)?.compute(&samples);
        Ok(Self::of(name, samples, features, config))
    }

    /// The analysis of `samples` whose front-end map is `features`.
    fn of(name: impl Into<String>, samples: Vec<f32>, features: Vec<f32>, config: &FeatureConfig) -> Self {
        let trimmed = config.trim_db.is_some();
        let segment = speech_segment(&samples, config.sample_rate, config.trim_db.unwrap_or(DISPLAY_TRIM_DB));
        let start = if trimmed { segment.start } else { 0 };
        let window = start..start + config.clip_samples;
        Analysis {
            name: name.into(),
            spectrogram: spectrogram(&samples, config.n_fft, config.n_fft / 4),
            sample_rate: config.sample_rate,
            segment,
            trimmed,
            window,
            samples,
            mfcc: features,
            n_mfcc: config.n_mfcc,
            n_frames: config.n_frames(),
            normalized: config.normalize,
            log_mel: config.log_mel,
            probabilities: None,
            reading: None,
        }
    }

    /// Length of the recording in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Reads `path` (any audio file, resampled to the model's rate), analyses it through the model's
/// front end and runs the model on the MFCC map, and the string model, when given, on the whole
/// recording.
pub fn analyze_file(
    path: &Path,
    model: &Model,
    strings: Option<&StringModel>,
    max_seconds: f64,
) -> Result<Analysis> {
    let config = &model.config().features;
    let input = crate::predict::featurise(&mut FrontEnd::new(config)?, path, max_seconds)?;
    let reading = match strings {
        Some(s) if s.config().features.sample_rate == config.sample_rate => {
            Some(s.read(&input.samples, None)?)
        }
        Some(s) => {
            Some(s.read(&crate::audio::load(path, s.config().features.sample_rate, max_seconds)?, None)?)
        }
        None => None,
    };
    let name =
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut analysis = Analysis::of(name, input.samples, input.features, config);
    analysis.probabilities = model.probabilities(&analysis.mfcc, 1)?.first().copied();
    analysis.reading = reading;
    tracing::debug!(file = %path.display(), segment = ?analysis.segment, "analysed");
    Ok(analysis)
}

/// Power spectrogram of `samples` in dB (periodic Hann window of `n_fft`, frames every `hop`
/// samples from the start, the last frame zero-padded), floored `SPECTROGRAM_RANGE_DB` below its
/// maximum. For display only: the model's features come from [`FrontEnd`].
pub fn spectrogram(samples: &[f32], n_fft: usize, hop: usize) -> Spectrogram {
    let n_fft = n_fft.max(2);
    let hop = hop.max(1);
    let n_bins = n_fft / 2 + 1;
    let n_frames = samples.len().div_ceil(hop).max(1);
    let fft = FftPlanner::<f32>::new().plan_fft_forward(n_fft);
    let window = crate::features::hann(n_fft);
    let mut buffer = vec![Complex32::default(); n_fft];
    let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
    // [n_frames, n_bins] while computing, transposed below.
    let mut frames = vec![0.0f32; n_frames * n_bins];
    for (t, row) in frames.chunks_exact_mut(n_bins).enumerate() {
        for (i, c) in buffer.iter_mut().enumerate() {
            let s = samples.get(t * hop + i).copied().unwrap_or(0.0);
            *c = Complex32::new(s * window[i], 0.0);
        }
        fft.process_with_scratch(&mut buffer, &mut scratch);
        for (v, z) in row.iter_mut().zip(&buffer) {
            *v = 10.0 * z.norm_sqr().max(1e-10).log10();
        }
    }
    let max = frames.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = max - SPECTROGRAM_RANGE_DB;
    let mut db = vec![0.0f32; n_frames * n_bins];
    for (t, row) in frames.chunks_exact(n_bins).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            db[k * n_frames + t] = v.max(floor);
        }
    }
    Spectrogram { db, n_bins, n_frames, hop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_peaks_in_its_bin_and_the_segment_finds_it() {
        // 0.25 s silence, 0.25 s of 1 kHz, 0.25 s silence at 8 kHz.
        let mut x = vec![0.0f32; 2000];
        x.extend((0..2000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin() * 0.5));
        x.extend(vec![0.0f32; 2000]);
        let a = Analysis::new("tone", x, &FeatureConfig::robust()).unwrap();
        assert_eq!((a.n_mfcc, a.n_frames, a.mfcc.len()), (13, 63, 819));
        assert!(a.segment.start >= 2000 - 2 * 129 && a.segment.start <= 2000, "{:?}", a.segment);
        assert!(a.segment.end >= 4000 && a.segment.end <= 4000 + 2 * 129, "{:?}", a.segment);
        assert!(a.trimmed && a.window == (a.segment.start..a.segment.start + 8000));
        let s = &a.spectrogram;
        assert_eq!((s.n_bins, s.n_frames), (129, 94));
        // Frame in the middle of the tone: the loudest bin is 1 kHz = bin 32.
        let t = 47;
        let column: Vec<f32> = (0..s.n_bins).map(|k| s.db[k * s.n_frames + t]).collect();
        let peak =
            column.iter().enumerate().fold((0, f32::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b });
        assert_eq!(peak.0, 32);
    }

    #[test]
    fn without_trim_the_window_is_the_first_second() {
        let x = vec![0.1f32; 12000];
        let a = Analysis::new("flat", x, &FeatureConfig::default()).unwrap();
        assert!(!a.trimmed);
        assert_eq!(a.window, 0..8000);
        assert!((a.seconds() - 1.5).abs() < 1e-9);
    }
}
