// Word lists and file names come from outside: no indexing that could panic on them.
#![deny(clippy::indexing_slicing)]
//! Digit strings for the string model ([`crate::ctc`]): the data it learns from and is scored
//! on, all of it made here from seeded draws.
//!
//! - Spliced strings ([`WordBank::splice`]): single words (FSDD and the synthetic voices of
//!   `scripts/synthesize-voices`) trimmed of silence and joined into strings of 1-12 digits, one
//!   speaker per string, with gaps from an overlap (a crossfade of up to 50 ms) to 300 ms,
//!   per-word gain and speed, random equalisation, noise, and silence before and after. Each
//!   string knows its digits and each word's span.
//! - Natural phrases ([`scan_phrases`]): whole strings said by speech synthesisers
//!   (`scripts/synthesize-phrases`), named `<digits>_<voice>_<n>.wav`, with the coarticulation
//!   that splicing lacks.
//!
//! The words of a split come from [`crate::dataset::split`] (a held-out speaker's words only in
//! its test strings, FSDD's index 0-4 in the official split's), and the synthetic voices named
//! by [`HELD_OUT_VOICES`] are kept out of training in every split, single words and phrases
//! alike, so that their phrases measure voices the model never heard.

use crate::augment::{add_noise, peaking_filter};
use crate::dataset::{Recording, Split};
use crate::features::speech_segment;
use crate::{Error, FrontEnd, NUM_CLASSES, Result, audio};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Voices of the synthesisers held out of the string model's training (name prefixes, as the
/// synthetic words' speakers and the phrases' voices are named): flite's US female `slt` and
/// espeak-ng's Caribbean accent (`en-029`, all fourteen variants), and Festival's Czech
/// voices (female `dita`, male `ph`, saying the digits through Czech spelling).
pub const HELD_OUT_VOICES: [&str; 4] = ["slt", "espen029", "festcsdita", "festcsph"];

/// The longest string the data holds (and the string model is trained on).
pub const MAX_DIGITS: usize = 12;

/// Words are trimmed where they fall this many dB below their loudest 16 ms (the classifier's
/// trim).
const TRIM_DB: f32 = crate::features::TRIM_DB;

/// Whether a synthetic voice (or word speaker, such as `slt3`) is one of [`HELD_OUT_VOICES`].
pub fn is_held_out_voice(voice: &str) -> bool {
    HELD_OUT_VOICES.iter().any(|prefix| voice.starts_with(prefix))
}

/// One spoken digit, trimmed of the silence around it.
#[derive(Debug, Clone)]
pub struct Word {
    pub digit: u8,
    pub speaker: String,
    pub samples: Vec<f32>,
}

/// A string of digits as audio: its samples, its digits and each digit's span (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub samples: Vec<f32>,
    pub digits: Vec<u8>,
    /// Start and end of each word, in seconds from the utterance's start.
    pub spans: Vec<(f64, f64)>,
}

/// How strings are spliced from words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpliceConfig {
    /// Fewest and most digits per string (drawn uniformly).
    pub digits: (usize, usize),
    /// Gap between words in ms, drawn uniformly; below 0 the words overlap, crossfaded.
    pub gap_ms: (f32, f32),
    /// Silence before the first and after the last word, in ms.
    pub silence_ms: (f32, f32),
    /// Per-word gain range in dB.
    pub gain_db: (f32, f32),
    /// Per-word speed range (playback-rate factor); `(1, 1)`: off.
    pub speed: (f32, f32),
    /// Probability of random equalisation of the whole string (three peaking filters of up to
    /// `eq_db`), and of white noise at an SNR drawn from `snr_db`.
    pub p: f64,
    pub eq_db: f32,
    pub snr_db: (f32, f32),
    /// Probability that a word loses the end of its tail, and the largest share of the word
    /// cut: a recording cut before the word died away (one of george's "nine"s stops 9 dB
    /// under its peak), which the 40 dB trim never makes. Without it the string model missed
    /// such a word at the end of a string.
    #[serde(default)]
    pub end_cut: (f64, f32),
}

impl SpliceConfig {
    /// The training strings: every length, overlaps to long pauses, the wild recordings'
    /// variety (the robust recipe's equalisation and noise; speed and gain per word).
    pub fn training() -> Self {
        SpliceConfig {
            digits: (1, MAX_DIGITS),
            gap_ms: (-50.0, 300.0),
            silence_ms: (30.0, 500.0),
            gain_db: (-6.0, 6.0),
            speed: (0.85, 1.15),
            p: 0.5,
            eq_db: 15.0,
            snr_db: (5.0, 30.0),
            end_cut: (0.3, 0.3),
        }
    }

    /// Clean test strings of `digits` lengths with gaps of `gap_ms` (the target: 3-10
    /// digits, 0-80 ms), 200 ms of silence around them.
    pub fn test(digits: (usize, usize), gap_ms: (f32, f32)) -> Self {
        SpliceConfig {
            digits,
            gap_ms,
            silence_ms: (200.0, 200.0),
            gain_db: (0.0, 0.0),
            speed: (1.0, 1.0),
            p: 0.0,
            eq_db: 0.0,
            snr_db: (0.0, 0.0),
            end_cut: (0.0, 0.0),
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.digits;
        let ordered = |(a, b): (f32, f32)| a.is_finite() && b.is_finite() && a <= b;
        if lo == 0 || lo > hi || hi > MAX_DIGITS {
            return Err(Error::Config(format!("string lengths must lie in 1..={MAX_DIGITS}, fewest first")));
        }
        if !ordered(self.gap_ms) || self.gap_ms.0 < -MAX_OVERLAP_MS {
            return Err(Error::Config(format!("gaps must be ordered and at least -{MAX_OVERLAP_MS} ms")));
        }
        if !(ordered(self.silence_ms) && self.silence_ms.0 >= 0.0 && ordered(self.gain_db)) {
            return Err(Error::Config("silence and gain ranges must be ordered, silence >= 0".into()));
        }
        if !(ordered(self.speed) && self.speed.0 > 0.0 && ordered(self.snr_db)) {
            return Err(Error::Config("speed and SNR ranges must be ordered, speed > 0".into()));
        }
        if !(0.0..=1.0).contains(&self.p) || !(0.0..=1.0).contains(&self.end_cut.0) {
            return Err(Error::Config("the augmentation probabilities must be in [0, 1]".into()));
        }
        if !(0.0..1.0).contains(&self.end_cut.1) {
            return Err(Error::Config("the end cut must be a share of the word in [0, 1)".into()));
        }
        Ok(())
    }
}

/// The longest overlap of two words (ms): a crossfade beyond it would swallow short words.
pub const MAX_OVERLAP_MS: f32 = 50.0;

/// Words grouped by speaker, to splice strings from.
#[derive(Debug, Clone, Default)]
pub struct WordBank {
    speakers: Vec<(String, Vec<Word>)>,
    sample_rate: u32,
    words: usize,
}

impl WordBank {
    /// Reads, resamples to `sample_rate` and trims `recordings` on `threads` threads.
    pub fn load(
        recordings: &[Recording],
        sample_rate: u32,
        max_seconds: f64,
        threads: usize,
    ) -> Result<Self> {
        let mfcc = FrontEnd::new(&crate::FeatureConfig::default())?;
        let words = mfcc.par_map(recordings, threads, |_, _, r| -> Result<Word> {
            let samples = audio::load(&r.path, sample_rate, max_seconds)?;
            let kept = samples.get(speech_segment(&samples, sample_rate, TRIM_DB)).unwrap_or(&samples);
            Ok(Word { digit: r.digit, speaker: r.speaker.clone(), samples: kept.to_vec() })
        })?;
        let words = words.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(WordBank::from_words(words, sample_rate))
    }

    /// A bank of words already in memory.
    pub fn from_words(words: Vec<Word>, sample_rate: u32) -> Self {
        let mut bank = WordBank { sample_rate, ..WordBank::default() };
        for word in words {
            if word.samples.is_empty() {
                continue;
            }
            bank.words += 1;
            match bank.speakers.iter_mut().find(|(s, _)| *s == word.speaker) {
                Some((_, list)) => list.push(word),
                None => bank.speakers.push((word.speaker.clone(), vec![word])),
            }
        }
        bank
    }

    /// How many words it holds.
    pub fn len(&self) -> usize {
        self.words
    }

    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// One string: a speaker drawn in proportion to their words (so FSDD's speakers, with
    /// hundreds of words each, weigh as much as their share of the data), then that speaker's
    /// words drawn at random, joined as `cfg` says.
    pub fn splice<R: Rng + ?Sized>(&self, cfg: &SpliceConfig, rng: &mut R) -> Result<Utterance> {
        if self.words == 0 {
            return Err(Error::Dataset("no words to splice strings from".into()));
        }
        let mut pick = rng.random_range(0..self.words);
        let mut chosen = None;
        for (_, list) in &self.speakers {
            if pick < list.len() {
                chosen = Some(list);
                break;
            }
            pick -= list.len();
        }
        let list = chosen.ok_or_else(|| Error::Dataset("no words to splice strings from".into()))?;
        let n = rng.random_range(cfg.digits.0..=cfg.digits.1);
        let words: Vec<&Word> = (0..n).filter_map(|_| list.get(rng.random_range(0..list.len()))).collect();
        Ok(join(&words, cfg, self.sample_rate, rng))
    }

    /// One word of any speaker, drawn uniformly; `None` for an empty bank.
    pub fn any_word<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&[f32]> {
        let mut pick = rng.random_range(0..self.words.max(1));
        for (_, list) in &self.speakers {
            if let Some(word) = list.get(pick) {
                return Some(&word.samples);
            }
            pick -= list.len();
        }
        None
    }

    /// `count` strings drawn with a generator seeded by `seed` (the same strings every time).
    pub fn strings(&self, cfg: &SpliceConfig, count: usize, seed: u64) -> Result<Vec<Utterance>> {
        cfg.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count).map(|_| self.splice(cfg, &mut rng)).collect()
    }
}

/// Joins `words` into one utterance (see [`SpliceConfig`]).
fn join<R: Rng + ?Sized>(words: &[&Word], cfg: &SpliceConfig, rate: u32, rng: &mut R) -> Utterance {
    let per_ms = f64::from(rate) / 1000.0;
    let samples_of = |ms: f32| (f64::from(ms) * per_ms).round() as i64;
    let draw = |rng: &mut R, (a, b): (f32, f32)| if a < b { rng.random_range(a..=b) } else { a };
    let mut out: Vec<f32> = vec![0.0; samples_of(draw(rng, cfg.silence_ms)).max(0) as usize];
    let mut spans = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let speed = draw(rng, cfg.speed);
        let gain = 10f32.powf(draw(rng, cfg.gain_db) / 20.0);
        let mut w = if speed == 1.0 { word.samples.clone() } else { stretch(&word.samples, speed) };
        let (p_cut, most) = cfg.end_cut;
        if p_cut > 0.0 && most > 0.0 && rng.random_bool(p_cut) {
            let cut = (w.len() as f32 * rng.random_range(0.0..=most)) as usize;
            w.truncate(w.len() - cut);
        }
        w.iter_mut().for_each(|s| *s *= gain);
        let mut start = out.len();
        if i > 0 {
            let gap = samples_of(draw(rng, cfg.gap_ms));
            if gap >= 0 {
                out.resize(out.len() + gap as usize, 0.0);
                start = out.len();
            } else {
                // Overlap: at most half of either word, crossfaded linearly.
                let previous = spans.last().map_or(0, |&(s, e): &(usize, usize)| e - s);
                let overlap = ((-gap) as usize).min(previous / 2).min(w.len() / 2);
                start = out.len() - overlap;
                for k in 0..overlap {
                    let fade = (k as f32 + 0.5) / overlap as f32;
                    if let (Some(o), Some(s)) = (out.get_mut(start + k), w.get(k)) {
                        *o = *o * (1.0 - fade) + s * fade;
                    }
                }
                out.extend(w.iter().skip(overlap));
                spans.push((start, start + w.len()));
                continue;
            }
        }
        out.extend_from_slice(&w);
        spans.push((start, start + w.len()));
    }
    let after = samples_of(draw(rng, cfg.silence_ms)).max(0) as usize;
    out.resize(out.len() + after, 0.0);
    if cfg.p > 0.0 && cfg.eq_db > 0.0 && rng.random_bool(cfg.p) {
        for _ in 0..3 {
            // The robust recipe's equaliser: centres 160 Hz to 3.6 kHz at 8 kHz.
            let centre = rng.random_range(0.02f32.ln()..=0.45f32.ln()).exp();
            let q = rng.random_range(0.7..=2.0);
            peaking_filter(&mut out, centre, q, rng.random_range(-cfg.eq_db..=cfg.eq_db));
        }
    }
    if cfg.p > 0.0 && rng.random_bool(cfg.p) {
        // The SNR is relative to the whole string's mean power, silences included.
        add_noise(&mut out, draw(rng, cfg.snr_db), rng);
    }
    let seconds = |s: usize| s as f64 / f64::from(rate.max(1));
    Utterance {
        samples: out,
        digits: words.iter().map(|w| w.digit).collect(),
        spans: spans.into_iter().map(|(s, e)| (seconds(s), seconds(e))).collect(),
    }
}

/// The string model's input for `samples` with the voice's pitch and formants moved up by
/// `factor` (below 1: down) at the same tempo: the audio played `factor` times faster, its
/// feature map stretched back over time (each band resampled), so its frames line up with the
/// unshifted map's (to within one).
pub fn voice_shifted_features(
    features: &crate::FeatureConfig,
    samples: &[f32],
    factor: f32,
) -> Result<(Vec<f32>, usize)> {
    let (map, frames) = crate::ctc::utterance_features(features, &stretch(samples, factor))?;
    let target = ((frames as f32 * factor).round() as usize).max(1);
    Ok((resample_frames(&map, frames, target), target))
}

/// A feature map of `frames` frames (each band's row after the other) resampled over time to
/// `target` frames (linear interpolation): the same spectra, said faster or slower.
fn resample_frames(map: &[f32], frames: usize, target: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(map.len() / frames.max(1) * target);
    for row in map.chunks_exact(frames.max(1)) {
        out.extend(
            stretch(row, frames as f32 / target as f32)
                .into_iter()
                .chain(std::iter::repeat(0.0))
                .take(target),
        );
    }
    out
}

/// The samples played `factor` times faster (linear interpolation): `len / factor` samples.
fn stretch(samples: &[f32], factor: f32) -> Vec<f32> {
    let n = (samples.len() as f32 / factor).floor() as usize;
    (0..n)
        .map(|i| {
            let pos = i as f32 * factor;
            let j = pos as usize;
            let frac = pos - j as f32;
            match (samples.get(j), samples.get(j + 1)) {
                (Some(a), Some(b)) => a + (b - a) * frac,
                (Some(a), None) => *a,
                _ => 0.0,
            }
        })
        .collect()
}

/// The words of a split for the string model: [`crate::dataset::split`] of the FSDD
/// recordings (its train, validation and test words), the synthetic words of every voice but
/// the [`HELD_OUT_VOICES`] added to training.
pub fn split_words(
    fsdd: &[Recording],
    synthetic: &[Recording],
    split: &Split,
    val_fraction: f64,
    seed: u64,
) -> Result<crate::dataset::Sets> {
    let extra: Vec<Recording> =
        synthetic.iter().filter(|r| !is_held_out_voice(&r.speaker)).cloned().collect();
    crate::dataset::split_with_extra(fsdd, &extra, split, val_fraction, seed)
}

/// One natural phrase: a file and the digits it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phrase {
    pub path: PathBuf,
    pub digits: Vec<u8>,
    pub voice: String,
}

/// `(digits, voice)` from a phrase name like `4159_awb_12.wav`, or `None`.
pub fn parse_phrase_name(name: &str) -> Option<(Vec<u8>, String)> {
    let stem = name.strip_suffix(".wav")?;
    let mut parts = stem.splitn(3, '_');
    let label = parts.next()?;
    let voice = parts.next()?;
    parts.next()?.parse::<u32>().ok()?;
    let digits = digits_of(label)?;
    (!digits.is_empty() && digits.len() <= MAX_DIGITS && !voice.is_empty())
        .then(|| (digits, voice.to_string()))
}

/// The digits of a text such as `"4159"`, or `None` when it holds anything else.
pub fn digits_of(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| c.to_digit(10).map(|d| d as u8).filter(|&d| usize::from(d) < NUM_CLASSES)).collect()
}

/// The phrases of `dir` (sorted by name); `held_out` picks the held-out voices' phrases (for
/// testing), else the training voices'.
pub fn scan_phrases(dir: &Path, held_out: bool) -> Result<Vec<Phrase>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = vec![];
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if let Some((digits, voice)) = parse_phrase_name(&name)
            && is_held_out_voice(&voice) == held_out
        {
            out.push(Phrase { path, digits, voice });
        }
    }
    if out.is_empty() {
        return Err(Error::Dataset(format!(
            "no {} phrases named <digits>_<voice>_<n>.wav in {} (run scripts/setup)",
            if held_out { "held-out" } else { "training" },
            dir.display()
        )));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Everything that defines a string model's training run (saved in its metrics file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StringTrainConfig {
    /// Whose words train and whose test: [`split_words`].
    pub split: Split,
    /// The network: `tcn` or `tcn-wide` ([`crate::ctc::Shape`]; absent in older metrics: tcn).
    #[serde(default = "tcn")]
    pub arch: crate::model::Arch,
    pub seed: u64,
    /// Optimiser steps (each one batch of fresh strings: the data never repeats).
    pub steps: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Share of each batch taken from the training voices' natural phrases (with the splices'
    /// silence, gain, speed, equalisation and noise); the rest is spliced.
    pub phrase_share: f64,
    /// Dropout on the projection's and each block's output while training (absent in older
    /// metrics: none).
    #[serde(default)]
    pub dropout: f64,
    /// Batches made together and sorted by length before they are handed over, so that each
    /// batch holds utterances of about one length and pads little ([`produce_strings`]; 1: each
    /// batch as drawn, padded to its longest; absent in older metrics: 1).
    #[serde(default = "one")]
    pub bucket: usize,
    pub splice: SpliceConfig,
    /// Recording conditions and SpecAugment on each training string (absent in the metrics of
    /// models trained before it: off).
    #[serde(default)]
    pub augment: StringAugment,
    /// The front end (its clip length unused: utterances are read whole).
    pub features: crate::FeatureConfig,
    /// Validation strings (spliced from the validation words) scored during training.
    pub val_strings: usize,
    pub max_seconds: f64,
    /// Where the synthetic words and the phrases came from, and how many were used.
    #[serde(default)]
    pub sources: Vec<crate::train::ExtraData>,
}

impl Default for StringTrainConfig {
    fn default() -> Self {
        StringTrainConfig {
            split: Split::Official,
            arch: crate::model::Arch::TcnWide,
            seed: 42,
            steps: 3000,
            batch_size: 32,
            learning_rate: 2e-3,
            weight_decay: 1e-3,
            dropout: 0.0,
            bucket: BUCKET,
            phrase_share: 0.25,
            splice: SpliceConfig::training(),
            augment: StringAugment::training(),
            features: crate::ctc::default_config().features,
            val_strings: 200,
            max_seconds: audio::DEFAULT_MAX_SECONDS,
            sources: vec![],
        }
    }
}

/// The string model's augmentation beyond splicing: the wild recordings' conditions on the
/// whole string, and SpecAugment masks on its feature map. [`Default`]: off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringAugment {
    /// Probability that a training string also gets one recording condition of the suite
    /// ([`crate::conditions::augment`]: long window, click, hum, DC, pink noise, babble of
    /// three other words, reverb, clipping, telephone, quiet) at a random strength.
    pub conditions: f64,
    /// Frequency masks per string, each up to `freq_mask_width` mel bands.
    pub freq_masks: usize,
    pub freq_mask_width: usize,
    /// One time mask of up to `time_mask_width` frames per this many frames of the string
    /// (masks scale with its length; 0: none).
    pub frames_per_time_mask: usize,
    pub time_mask_width: usize,
    /// Voice shift: with probability `voice_p`, the string's pitch and formants scaled by a
    /// factor drawn log-uniformly from `voice_shift` and its tempo kept (the audio played
    /// faster, its feature map stretched back over time). FSDD's speakers are all men; a
    /// factor of 1.2-1.4 makes them sound like women and children. Absent in older metrics:
    /// off.
    #[serde(default)]
    pub voice_p: f64,
    #[serde(default = "crate::augment::no_range")]
    pub voice_shift: (f32, f32),
    /// Tempo: with probability `tempo_p`, the string said faster or slower by a factor drawn
    /// log-uniformly from `tempo` at the same pitch (its feature map resampled over time).
    /// People say digit strings faster than FSDD's speakers say single words: the fourth
    /// string model read the held-out phrases played 1.3 times as fast (ffmpeg's atempo) at
    /// 12.4% digit error rate against 6.4%, and at 1.6 times 27%. Absent in older metrics: off.
    #[serde(default)]
    pub tempo_p: f64,
    #[serde(default = "crate::augment::no_range")]
    pub tempo: (f32, f32),
}

impl Default for StringAugment {
    fn default() -> Self {
        StringAugment {
            conditions: 0.0,
            freq_masks: 0,
            freq_mask_width: 0,
            frames_per_time_mask: 0,
            time_mask_width: 0,
            voice_p: 0.0,
            voice_shift: crate::augment::no_range(),
            tempo_p: 0.0,
            tempo: crate::augment::no_range(),
        }
    }
}

impl StringAugment {
    /// The string recipe's: conditions on 40% of the strings, two masks of up to 3 of the 23
    /// bands, and a mask of up to 3 frames (48 ms: never a whole word) per second.
    pub fn training() -> Self {
        StringAugment {
            conditions: 0.4,
            freq_masks: 2,
            freq_mask_width: 3,
            frames_per_time_mask: 62,
            time_mask_width: 3,
            // Official split, 2,500 steps: held-out phrases 10.3% -> 7.8% digit error rate (the
            // female voice slt 22.8% -> 14.5%) for 0.9 points more on FSDD's spliced strings;
            // x0.9-1.45 on half the strings did worse on both (the model card).
            voice_p: 0.3,
            voice_shift: (0.95, 1.35),
            tempo_p: 0.5,
            tempo: (0.8, 1.6),
        }
    }

    /// The features of `samples` with a voice shift and a tempo drawn as `voice_p`,
    /// `voice_shift`, `tempo_p` and `tempo` say.
    fn features<R: Rng + ?Sized>(
        &self,
        features: &crate::FeatureConfig,
        samples: &[f32],
        rng: &mut R,
    ) -> Result<(Vec<f32>, usize)> {
        let (map, frames) = match draw(self.voice_p, self.voice_shift, rng) {
            Some(factor) => voice_shifted_features(features, samples, factor)?,
            None => crate::ctc::utterance_features(features, samples)?,
        };
        Ok(match draw(self.tempo_p, self.tempo, rng) {
            Some(factor) => {
                let target = ((frames as f32 / factor).round() as usize).max(1);
                (resample_frames(&map, frames, target), target)
            }
            None => (map, frames),
        })
    }

    /// Masks `map` (`bands` rows of frames) in place, masked values the map's mean.
    fn mask<R: Rng + ?Sized>(&self, map: &mut [f32], bands: usize, rng: &mut R) {
        let frames = map.len() / bands.max(1);
        let time_masks = frames.checked_div(self.frames_per_time_mask).unwrap_or(0);
        if frames == 0 || (self.freq_masks == 0 && time_masks == 0) {
            return;
        }
        let masks = crate::augment::AugmentConfig {
            time_masks,
            time_mask_width: self.time_mask_width,
            freq_masks: self.freq_masks,
            freq_mask_width: self.freq_mask_width,
            ..crate::augment::AugmentConfig::default()
        };
        let fill = map.iter().sum::<f32>() / map.len() as f32;
        crate::augment::mask_features(map, bands, &masks, fill, rng);
    }
}

/// With probability `p`, a factor drawn log-uniformly from `(lo, hi)`; `None` when the range
/// is empty or the draw says no.
fn draw<R: Rng + ?Sized>(p: f64, (lo, hi): (f32, f32), rng: &mut R) -> Option<f32> {
    (p > 0.0 && lo > 0.0 && lo < hi && rng.random_bool(p)).then(|| rng.random_range(lo.ln()..=hi.ln()).exp())
}

fn tcn() -> crate::model::Arch {
    crate::model::Arch::Tcn
}

fn one() -> usize {
    1
}

/// What a string model's training run reports; written as its metrics JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StringTrainReport {
    pub config: StringTrainConfig,
    /// Training words (FSDD and synthetic) and phrases, validation words.
    pub train_words: usize,
    pub train_phrases: usize,
    pub val_words: usize,
    /// One entry per tenth of the run: `train_loss` the mean CTC loss, `train_accuracy` the
    /// share of training strings read exactly (greedy), `val_*` the same on the validation
    /// strings.
    pub history: Vec<crate::train::EpochStats>,
    /// The validation strings read by the final weights (greedy).
    pub val: SequenceScores,
    pub steps_done: usize,
    pub interrupted: bool,
    pub seconds: f64,
    /// What trained it (see [`crate::train::TrainReport::machine`]: libtorch's threads change
    /// the bytes). Absent in metrics written before it was recorded (one thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::train::Machine>,
}

/// A batch for the string model: inputs padded with silence (0) to the longest, and targets.
pub struct StringBatch {
    /// `[batch][n_mels][frames]`, flat.
    pub features: Vec<f32>,
    pub frames: usize,
    /// Each utterance's own frames.
    pub lengths: Vec<usize>,
    /// Every utterance's digits, one after another.
    pub digits: Vec<u8>,
    pub digit_counts: Vec<usize>,
}

/// Audio and digits, as the trainer holds a phrase.
pub type Labelled = (Vec<f32>, Vec<u8>);

/// A phrase dressed like a spliced string: silence around it, gain, speed, equalisation, noise.
pub fn dress<R: Rng + ?Sized>(samples: &[f32], cfg: &SpliceConfig, rate: u32, rng: &mut R) -> Vec<f32> {
    let word = Word { digit: 0, speaker: String::new(), samples: samples.to_vec() };
    join(&[&word], cfg, rate, rng).samples
}

/// An utterance ready for a batch: its digits, and its feature map with its frames.
type Ready = (Vec<u8>, (Vec<f32>, usize));

/// Batches from utterances: features over each whole utterance, padded to the longest.
pub fn batch_of(utterances: &[Labelled], features: &crate::FeatureConfig) -> Result<StringBatch> {
    let maps = utterances
        .iter()
        .map(|(s, digits)| Ok((digits.clone(), crate::ctc::utterance_features(features, s)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(padded(&maps, features.n_mels))
}

/// The batch of utterances (each one's digits, and its features and frames) padded to the
/// longest.
fn padded(utterances: &[Ready], bands: usize) -> StringBatch {
    let frames = utterances.iter().map(|(_, (_, f))| *f).max().unwrap_or(0);
    let mut out = vec![0.0; utterances.len() * bands * frames];
    for ((_, (map, f)), dst) in utterances.iter().zip(out.chunks_exact_mut((bands * frames).max(1))) {
        for (row, src) in dst.chunks_exact_mut(frames.max(1)).zip(map.chunks_exact((*f).max(1))) {
            if let Some(d) = row.get_mut(..*f) {
                d.copy_from_slice(src);
            }
        }
    }
    StringBatch {
        features: out,
        frames,
        lengths: utterances.iter().map(|(_, (_, f))| *f).collect(),
        digits: utterances.iter().flat_map(|(d, _)| d.iter().copied()).collect(),
        digit_counts: utterances.iter().map(|(d, _)| d.len()).collect(),
    }
}

/// Seed of one batch: a pure function of the run's seed and the step.
fn batch_seed(seed: u64, step: usize) -> u64 {
    let mut x = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The batches [`StringTrainConfig::bucket`] sorts together by default: the strings of 1-12
/// digits and the phrases range from under a second to about 9 s, and a batch drawn as it
/// comes is padded to its longest, about twice its mean.
pub const BUCKET: usize = 8;

/// The training batches of every step, made ahead of the training step (spliced strings from
/// `bank`, a share of dressed `phrases`, then [`StringAugment`]'s conditions and masks); stops
/// when the receiver goes away. Every [`StringTrainConfig::bucket`] batches are made together,
/// their utterances sorted by length and cut into batches again, handed over in an order
/// drawn from the seed.
pub fn produce_strings(
    cfg: &StringTrainConfig,
    bank: &WordBank,
    phrases: &[Labelled],
    tx: std::sync::mpsc::SyncSender<StringBatch>,
) -> Result<()> {
    // Seconds spent making batches (not waiting to hand them over), logged every 500 steps.
    let mut busy = 0.0;
    let bucket = cfg.bucket.max(1);
    let mut made = 0;
    for first in (0..cfg.steps).step_by(bucket) {
        let started = std::time::Instant::now();
        let steps = first..(first + bucket).min(cfg.steps);
        let mut drawn = Vec::with_capacity(steps.len() * cfg.batch_size);
        for step in steps.clone() {
            drawn.extend(draw_batch(cfg, bank, phrases, step)?);
        }
        let batches = if bucket == 1 {
            // As drawn: sorted, the one batch's utterances would change places, and the same
            // training would no longer give the same bytes as before buckets.
            vec![padded(&drawn, cfg.features.n_mels)]
        } else {
            // Stable: utterances of one length keep the order they were drawn in.
            drawn.sort_by_key(|(_, map)| map.1);
            let mut batches: Vec<StringBatch> =
                drawn.chunks(cfg.batch_size).map(|chunk| padded(chunk, cfg.features.n_mels)).collect();
            let mut rng = StdRng::seed_from_u64(batch_seed(cfg.seed ^ BUCKET_ORDER, first));
            batches.shuffle(&mut rng);
            batches
        };
        busy += started.elapsed().as_secs_f64();
        for batch in batches {
            made += 1;
            if made % 500 == 0 {
                tracing::info!(steps = made, busy_seconds = busy, "the string worker made its batches");
            }
            if tx.send(batch).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Salt of the seed that orders a bucket's batches (apart from the batches' own draws).
const BUCKET_ORDER: u64 = 0x6275_636b_6574;

/// The utterances of one step's batch, drawn from the step's own seed: each with its digits
/// and its augmented, masked feature map.
fn draw_batch(
    cfg: &StringTrainConfig,
    bank: &WordBank,
    phrases: &[Labelled],
    step: usize,
) -> Result<Vec<Ready>> {
    let rate = cfg.features.sample_rate;
    let mut rng = StdRng::seed_from_u64(batch_seed(cfg.seed, step));
    let mut items = Vec::with_capacity(cfg.batch_size);
    for _ in 0..cfg.batch_size {
        let phrase = if phrases.is_empty() || !rng.random_bool(cfg.phrase_share) {
            None
        } else {
            phrases.get(rng.random_range(0..phrases.len()))
        };
        match phrase {
            Some((samples, digits)) => {
                items.push((dress(samples, &cfg.splice, rate, &mut rng), digits.clone()))
            }
            None => {
                let u = bank.splice(&cfg.splice, &mut rng)?;
                items.push((u.samples, u.digits));
            }
        }
        let a = &cfg.augment;
        if let Some((samples, _)) = items.last_mut()
            && a.conditions > 0.0
            && rng.random_bool(a.conditions)
        {
            // Babble's voices: three other words of the bank (any speaker's).
            let voices: Vec<&[f32]> =
                (0..crate::conditions::BABBLE_VOICES).filter_map(|_| bank.any_word(&mut rng)).collect();
            *samples = crate::conditions::augment(samples, rate, &voices, &mut rng);
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for (samples, digits) in items {
        let (mut map, frames) = cfg.augment.features(&cfg.features, &samples, &mut rng)?;
        cfg.augment.mask(&mut map, cfg.features.n_mels, &mut rng);
        out.push((digits, (map, frames)));
    }
    Ok(out)
}

/// Reads phrases at `rate` on `threads` threads.
pub fn load_phrases(
    phrases: &[Phrase],
    rate: u32,
    max_seconds: f64,
    threads: usize,
) -> Result<Vec<Labelled>> {
    let mfcc = FrontEnd::new(&crate::FeatureConfig::default())?;
    mfcc.par_map(phrases, threads, |_, _, p| {
        audio::load(&p.path, rate, max_seconds).map(|s| (s, p.digits.clone()))
    })?
    .into_iter()
    .collect()
}

/// Reads every utterance with `reader` on `threads` threads and scores the strings against
/// their digits; `lengths` gives each one's length constraint from its reference (`None`:
/// greedy).
pub fn score_strings<F>(
    reader: &crate::rescore::StringReader<'_>,
    items: &[Labelled],
    lengths: F,
    threads: usize,
) -> Result<SequenceScores>
where
    F: Fn(&[u8]) -> Option<crate::ctc::Lengths> + Sync,
{
    let front = reader.front_end()?;
    let readings = front.par_map(items, threads, |front, _, (samples, digits)| {
        reader.read(front, samples, lengths(digits))
    })?;
    let mut scores = SequenceScores::default();
    for ((_, digits), reading) in items.iter().zip(readings) {
        scores.add(digits, &reading?.values());
    }
    Ok(scores)
}

/// Scores of strings read against their references: the digit error rate (edits over the
/// reference digits) and exact strings, overall and by length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SequenceScores {
    pub strings: usize,
    pub exact: usize,
    pub edits: usize,
    pub digits: usize,
    /// Index `n - 1`: the strings of `n` digits.
    pub by_length: Vec<LengthScores>,
}

/// The strings of one length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthScores {
    pub length: usize,
    pub strings: usize,
    pub exact: usize,
    pub edits: usize,
}

impl SequenceScores {
    /// Scores one string.
    pub fn add(&mut self, reference: &[u8], hypothesis: &[u8]) {
        let edits = crate::ctc::edit_distance(reference, hypothesis);
        let exact = usize::from(edits == 0);
        self.strings += 1;
        self.exact += exact;
        self.edits += edits;
        self.digits += reference.len();
        let n = reference.len().max(1);
        while self.by_length.len() < n {
            let length = self.by_length.len() + 1;
            self.by_length.push(LengthScores { length, ..LengthScores::default() });
        }
        if let Some(l) = self.by_length.get_mut(n - 1) {
            l.strings += 1;
            l.exact += exact;
            l.edits += edits;
        }
    }

    /// Edits per reference digit.
    pub fn digit_error_rate(&self) -> f64 {
        self.edits as f64 / self.digits.max(1) as f64
    }

    /// Share of strings read exactly.
    pub fn exact_rate(&self) -> f64 {
        self.exact as f64 / self.strings.max(1) as f64
    }
}

impl std::fmt::Display for SequenceScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} strings, {} digits: digit error rate {:.2}%, exact strings {:.1}%",
            self.strings,
            self.digits,
            100.0 * self.digit_error_rate(),
            100.0 * self.exact_rate()
        )?;
        writeln!(f, "{:>7} {:>8} {:>8} {:>8}", "digits", "strings", "exact", "DER")?;
        for l in self.by_length.iter().filter(|l| l.strings > 0) {
            writeln!(
                f,
                "{:>7} {:>8} {:>7.1}% {:>7.2}%",
                l.length,
                l.strings,
                100.0 * l.exact as f64 / l.strings as f64,
                100.0 * l.edits as f64 / (l.strings * l.length) as f64
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn bank() -> WordBank {
        // Two speakers; each word a tone of its own length, so splices can be checked.
        let words = (0..2)
            .flat_map(|s| {
                (0..10u8).map(move |d| Word {
                    digit: d,
                    speaker: format!("s{s}"),
                    samples: (0..800 + 100 * usize::from(d)).map(|i| (i as f32 * 0.3).sin() * 0.5).collect(),
                })
            })
            .collect();
        WordBank::from_words(words, 8000)
    }

    #[test]
    fn clean_strings_put_each_word_where_its_span_says() {
        let cfg = SpliceConfig::test((3, 10), (0.0, 80.0));
        let strings = bank().strings(&cfg, 50, 3).unwrap();
        for u in &strings {
            assert!((3..=10).contains(&u.digits.len()));
            assert_eq!(u.spans.len(), u.digits.len());
            // 200 ms of silence, then each word's exact length, gaps of 0-80 ms.
            assert!((u.spans[0].0 - 0.2).abs() < 1e-9);
            for (k, (&(s, e), &d)) in u.spans.iter().zip(&u.digits).enumerate() {
                assert!(((e - s) * 8000.0 - (800.0 + 100.0 * f64::from(d))).abs() < 0.5);
                if k > 0 {
                    let gap = s - u.spans[k - 1].1;
                    assert!((-1e-9..=0.080 + 1e-9).contains(&gap), "gap {gap}");
                }
            }
            let end = u.spans.last().unwrap().1;
            assert!((u.samples.len() as f64 / 8000.0 - end - 0.2).abs() < 1e-3);
        }
        // Seeded: the same strings again, others with another seed.
        assert_eq!(bank().strings(&cfg, 50, 3).unwrap(), strings);
        assert_ne!(bank().strings(&cfg, 50, 4).unwrap(), strings);
    }

    #[test]
    fn training_strings_overlap_and_vary() {
        let cfg = SpliceConfig::training();
        let strings = bank().strings(&cfg, 300, 1).unwrap();
        let lengths: Vec<usize> = strings.iter().map(|u| u.digits.len()).collect();
        assert_eq!((lengths.iter().min(), lengths.iter().max()), (Some(&1), Some(&MAX_DIGITS)));
        let overlapped = strings.iter().any(|u| u.spans.windows(2).any(|w| w[1].0 < w[0].1));
        assert!(overlapped, "some words overlap");
        assert!(strings.iter().all(|u| u.samples.iter().all(|s| s.is_finite())));
    }

    #[test]
    fn the_end_cut_shortens_words_by_at_most_its_share() {
        let cfg = SpliceConfig { end_cut: (1.0, 0.3), ..SpliceConfig::test((3, 10), (0.0, 80.0)) };
        let mut cut = 0;
        for u in &bank().strings(&cfg, 50, 3).unwrap() {
            for (&(s, e), &d) in u.spans.iter().zip(&u.digits) {
                let (got, whole) = ((e - s) * 8000.0, 800.0 + 100.0 * f64::from(d));
                assert!(got <= whole + 0.5 && got >= 0.7 * whole - 1.0, "{got} of {whole}");
                cut += usize::from(got < whole - 0.5);
            }
        }
        assert!(cut > 200, "only {cut} words were cut");
    }

    /// Every batch `produce_strings` makes for `cfg`.
    fn batches(cfg: &StringTrainConfig) -> Vec<StringBatch> {
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.steps);
        produce_strings(cfg, &bank(), &[], tx).unwrap();
        rx.into_iter().collect()
    }

    #[test]
    fn augmented_training_batches_are_seeded_and_change_the_features() {
        let plain = StringTrainConfig {
            steps: 3,
            batch_size: 8,
            augment: StringAugment::default(),
            ..StringTrainConfig::default()
        };
        let augmented = StringTrainConfig { augment: StringAugment::training(), ..plain.clone() };
        let (a, b) = (batches(&augmented), batches(&augmented));
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.features, &x.digits, &x.lengths), (&y.features, &y.digits, &y.lengths));
            assert!(x.features.iter().all(|v| v.is_finite()));
        }
        let p = batches(&plain);
        assert!(a.iter().zip(&p).any(|(x, y)| x.features != y.features));
    }

    #[test]
    fn buckets_hold_the_same_strings_sorted_by_length() {
        let plain = StringTrainConfig { steps: 10, batch_size: 8, bucket: 1, ..StringTrainConfig::default() };
        let bucketed = StringTrainConfig { bucket: 4, ..plain.clone() };
        let (as_drawn, sorted) = (batches(&plain), batches(&bucketed));
        assert_eq!((as_drawn.len(), sorted.len()), (10, 10));
        // Each utterance's frames and digits.
        let utterances = |batches: &[StringBatch]| {
            let mut all = vec![];
            for b in batches {
                let mut digits = b.digits.iter().copied();
                for (&frames, &n) in b.lengths.iter().zip(&b.digit_counts) {
                    all.push((frames, digits.by_ref().take(n).collect::<Vec<u8>>()));
                }
            }
            all.sort();
            all
        };
        // Steps 0-3, 4-7 and 8-9 are sorted together: the same utterances, each batch one
        // stretch of its bucket's lengths, padded to its own longest.
        for steps in [0..4, 4..8, 8..10] {
            assert_eq!(utterances(&as_drawn[steps.clone()]), utterances(&sorted[steps.clone()]));
            let mut ranges: Vec<(usize, usize)> = sorted[steps]
                .iter()
                .map(|b| (*b.lengths.iter().min().unwrap(), *b.lengths.iter().max().unwrap()))
                .collect();
            ranges.sort();
            assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
        }
        for b in as_drawn.iter().chain(&sorted) {
            assert_eq!(Some(&b.frames), b.lengths.iter().max());
        }
        let padding = |batches: &[StringBatch]| -> usize {
            batches.iter().map(|b| b.lengths.iter().map(|&l| b.frames - l).sum::<usize>()).sum()
        };
        assert!(padding(&sorted) * 2 < padding(&as_drawn), "{} {}", padding(&sorted), padding(&as_drawn));
        // Seeded, the batches and their order alike.
        let again = batches(&bucketed);
        assert!(again.iter().zip(&sorted).all(|(x, y)| x.features == y.features && x.digits == y.digits));
    }

    #[test]
    fn a_voice_shift_keeps_the_tempo() {
        let features = crate::ctc::default_config().features;
        let u = bank().strings(&SpliceConfig::test((4, 4), (0.0, 0.0)), 1, 1).unwrap().remove(0);
        let (plain, frames) = crate::ctc::utterance_features(&features, &u.samples).unwrap();
        let shift = StringAugment { voice_p: 1.0, voice_shift: (1.3, 1.31), ..StringAugment::default() };
        let (shifted, shifted_frames) =
            shift.features(&features, &u.samples, &mut StdRng::seed_from_u64(1)).unwrap();
        assert!(frames.abs_diff(shifted_frames) <= 1, "{frames} -> {shifted_frames}");
        assert_eq!(shifted.len(), features.n_mels * shifted_frames);
        assert_ne!(
            plain.get(..shifted.len().min(plain.len())),
            shifted.get(..shifted.len().min(plain.len()))
        );
    }

    #[test]
    fn a_tempo_change_keeps_the_spectra() {
        let features = crate::ctc::default_config().features;
        let u = bank().strings(&SpliceConfig::test((4, 4), (0.0, 0.0)), 1, 1).unwrap().remove(0);
        let (plain, frames) = crate::ctc::utterance_features(&features, &u.samples).unwrap();
        let faster = StringAugment { tempo_p: 1.0, tempo: (1.5, 1.501), ..StringAugment::default() };
        let (fast, fast_frames) =
            faster.features(&features, &u.samples, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(fast_frames, (frames as f32 / 1.5).round() as usize, "{frames} -> {fast_frames}");
        assert_eq!(fast.len(), features.n_mels * fast_frames);
        // Each band keeps its level (the same spectra, fewer frames): the mean of each row
        // within a decibel.
        let mean = |row: &[f32]| row.iter().sum::<f32>() / row.len() as f32;
        for (a, b) in plain.chunks_exact(frames).zip(fast.chunks_exact(fast_frames)) {
            assert!((mean(a) - mean(b)).abs() < 0.05, "{} against {}", mean(a), mean(b));
        }
        let off = StringAugment { tempo_p: 0.0, tempo: (1.5, 1.501), ..StringAugment::default() };
        assert_eq!(
            off.features(&features, &u.samples, &mut StdRng::seed_from_u64(1)).unwrap(),
            (plain, frames)
        );
    }

    #[test]
    fn phrase_names_give_their_digits() {
        assert_eq!(parse_phrase_name("4159_awb_12.wav"), Some((vec![4, 1, 5, 9], "awb".into())));
        assert_eq!(parse_phrase_name("0_espen029f1_0.wav"), Some((vec![0], "espen029f1".into())));
        assert_eq!(parse_phrase_name("41a9_awb_1.wav"), None);
        assert_eq!(parse_phrase_name("4159_awb.wav"), None);
        assert_eq!(parse_phrase_name("1234567890123_awb_1.wav"), None);
        assert!(is_held_out_voice("slt3") && is_held_out_voice("espen029klatt"));
        assert!(!is_held_out_voice("espenusf1") && !is_held_out_voice("awb0"));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for cfg in [
            SpliceConfig { digits: (0, 3), ..SpliceConfig::training() },
            SpliceConfig { digits: (5, 13), ..SpliceConfig::training() },
            SpliceConfig { gap_ms: (-80.0, 0.0), ..SpliceConfig::training() },
            SpliceConfig { speed: (0.0, 1.0), ..SpliceConfig::training() },
            SpliceConfig { end_cut: (1.5, 0.3), ..SpliceConfig::training() },
            SpliceConfig { end_cut: (0.5, 1.0), ..SpliceConfig::training() },
        ] {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
        assert!(SpliceConfig::training().validate().is_ok());
    }
}
