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
use crate::{Error, Mfcc, NUM_CLASSES, Result, audio};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Voices of the synthesisers held out of the string model's training (name prefixes, as the
/// synthetic words' speakers and the phrases' voices are named): flite's US female `slt` and
/// espeak-ng's Caribbean accent (`en-029`, all fourteen variants).
pub const HELD_OUT_VOICES: [&str; 2] = ["slt", "espen029"];

/// The longest string the data holds (and the string model is trained on).
pub const MAX_DIGITS: usize = 12;

/// Words are trimmed where they fall this many dB below their loudest 16 ms (the classifier's
/// trim).
const TRIM_DB: f32 = 40.0;

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
            speed: (0.9, 1.1),
            p: 0.5,
            eq_db: 15.0,
            snr_db: (5.0, 30.0),
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
        if !(0.0..=1.0).contains(&self.p) {
            return Err(Error::Config("the augmentation probability must be in [0, 1]".into()));
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
        let mfcc = Mfcc::new(&crate::FeatureConfig::default())?;
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
        ] {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
        assert!(SpliceConfig::training().validate().is_ok());
    }
}
