//! Hands-free recognition of a live stream: the [`Segmenter`] cuts utterances, each is
//! classified the moment its end is detected, and sequences are reported after a pause.
//!
//! The front end is built from the model's own [`crate::model::ModelConfig`], so the stream
//! goes through exactly the features the model was trained on.
//!
//! With a string model ([`Recogniser::with_strings`]) an utterance may hold several digits said
//! without pauses: the string model reads it first, and when it hears a string (three digits
//! or more; two, each of them surely or both together much likelier than any one digit; or
//! any over more than a word's length) each of its digits is reported with its own span (the string model alone: a second reading of each digit by the classifier,
//! [`crate::rescore`], helps spliced words and hurts voices the classifier never heard); otherwise
//! the classifier reads the utterance as one digit, as without it (it reads single words better).

use crate::ctc::{self, Reading, StringModel};
use crate::model::Model;
use crate::prediction::Prediction;
use crate::stream::{Segment, Segmenter, SegmenterConfig};
use crate::vad::VadKind;
use crate::{Error, FrontEnd, NUM_CLASSES, Result};
use std::time::Instant;

/// One classified utterance.
#[derive(Debug, Clone)]
pub struct HeardDigit {
    /// The digit, or `None` when the model was less sure than `min_confidence`.
    pub digit: Option<u8>,
    pub prediction: Prediction,
    /// Onset and end of speech, seconds since the stream began.
    pub start_s: f64,
    pub end_s: f64,
    /// When the audio that completed the end detection reached the recogniser; the printed
    /// latency is measured from here.
    pub detected: Instant,
    /// The utterance as cut from the stream (at the front end's rate), for `listen --enroll`.
    pub samples: Vec<f32>,
}

impl HeardDigit {
    /// The utterance with at most `seconds` of its pre-roll before the onset (`rate`: the
    /// samples' rate), e.g. cut as tightly as FSDD's clips.
    pub fn with_lead_in(&self, rate: u32, seconds: f64) -> &[f32] {
        let speech = ((self.end_s - self.start_s) * f64::from(rate)).round() as usize;
        let lead = self.samples.len().saturating_sub(speech);
        let keep = lead.min((seconds * f64::from(rate)).round() as usize);
        self.samples.get(lead - keep..).unwrap_or(&self.samples)
    }

    /// The digit as printed: `0`-`9`, or `?` below the confidence threshold.
    pub fn symbol(&self) -> char {
        self.digit.map_or('?', |d| char::from(b'0' + d))
    }
}

/// What the recogniser reports.
#[derive(Debug, Clone)]
pub enum Heard {
    Digit(HeardDigit),
    /// A pause ended the sequence: its digits in order (`?` for unsure ones).
    Sequence(String),
}

/// `listen`'s default: digits read less surely than this print `?`. Measured on the 240
/// held-out phrases (`evaluate --sequences --listen`): at 0.5, 27 digits printed `?`, and 16 of
/// them were right as read (digit error rate 8.8% -> 7.8% at 0.3). With three string models
/// and the search for the string they find likeliest together, a digit the search adds takes
/// its confidence from one model's alignment and is often under 0.3: of the 24 `?` in the
/// held-out phrases and the fast ones, about 17 were right as read, so 0.15 (fast phrases 9.75 ->
/// 9.26%, phrases 4.45 -> 4.38%; at 0, 9.22 and 4.38%).
pub const MIN_CONFIDENCE: f32 = 0.15;

/// `listen`'s default for [`Recogniser::rereading`].
pub const REREAD_DIP_DB: Option<f32> = None;

/// The longest utterance the segmenter cuts when a string model reads it (seconds): a phrase
/// such as a phone number, said without a pause.
pub const STRING_MAX_UTTERANCE_SECONDS: f64 = 12.0;

/// An utterance longer than this (seconds) holds more than one word however confident the
/// string model is: FSDD's longest words last about 0.9 s.
const LONGER_THAN_A_WORD_SECONDS: f64 = 1.0;

/// Within a word's length, a reading of two digits is taken only when both are at least this
/// sure: a single word's tail can fire a spurious second digit (a "one" read as "41" at 0.51
/// in a phone recording's M4A copy), where the classifier reads the word right. A reading of
/// three or more is always taken: people say "four one five" in under a second, and the
/// classifier then heard one digit of it (the fast phrases through `listen` 12.80 -> 9.75%
/// digit error rate, the phrases 4.88 -> 4.45%; the 690 single words below all as before).
/// Measured through `listen --input` (docs/results.md): at 0.9, short phrases said in under a
/// second ("23", "five oh oh") were read as one digit; 0.7 reads the 240 held-out phrases at
/// 9.0% digit error rate instead of 9.9% and every one of 690 single words (FSDD's test words,
/// the held-out synthetic voices') as before; 0.6 gave one of those words a second digit.
const STRING_CONFIDENCE: f32 = 0.7;

/// A reading of two digits within a word's length, not [`STRING_CONFIDENCE`] sure, is still
/// taken when the string models find it this much likelier (natural log, per model, summed
/// over all alignments) than any one digit. Measured through `listen --input` (`evaluate
/// --sequences --listen --lengths 2..2 --count 300`: FSDD's test words joined in pairs, 0-80 ms
/// apart): 8 digit errors of 600 without it, 5 at a margin of 5, 3 at 2 and at 0; FSDD's
/// 3,000 words read alone gave a second digit to 3 words without it and at 2, and to 4 at 0;
/// none of the held-out voices' 390 single words at 0 or 2.
const TWO_DIGITS_MARGIN: f64 = 2.0;

/// Segmenter, front end and model together. Holds one planned [`FrontEnd`] and reuses it.
pub struct Recogniser<'m> {
    model: &'m Model,
    strings: Option<&'m StringModel>,
    /// Digits of a string that stand between pauses this deep (dB) are read again by the
    /// classifier ([`crate::rescore`]); `None`: the string model alone.
    reread_dip_db: Option<f32>,
    mfcc: FrontEnd,
    segmenter: Segmenter,
    min_confidence: f32,
    sequence: String,
    segments: Vec<Segment>,
}

impl<'m> Recogniser<'m> {
    /// `stream` cuts the audio; utterances under `min_confidence` are reported as `?`.
    pub fn new(model: &'m Model, stream: &SegmenterConfig, min_confidence: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(Error::Config(format!("min-confidence {min_confidence} is outside 0..=1")));
        }
        let features = &model.config().features;
        Ok(Recogniser {
            model,
            strings: None,
            reread_dip_db: None,
            mfcc: FrontEnd::new(features)?,
            segmenter: Segmenter::new(stream, features.sample_rate)?,
            min_confidence,
            sequence: String::new(),
            segments: Vec::new(),
        })
    }

    /// Reads utterances that hold several digits with `strings` (see the module documentation).
    /// The segmenter should then let utterances run to [`STRING_MAX_UTTERANCE_SECONDS`].
    pub fn with_strings(mut self, strings: &'m StringModel) -> Result<Self> {
        crate::rescore::same_rate(strings, self.model)?;
        self.strings = Some(strings);
        Ok(self)
    }

    /// Has the classifier read again each digit of a string that stands between pauses at least
    /// `dip_db` deep ([`REREAD_DIP_DB`] is listen's); `None`: the string model alone.
    pub fn rereading(mut self, dip_db: Option<f32>) -> Self {
        self.reread_dip_db = dip_db;
        self
    }

    /// The rate samples must be pushed at (the model's front end rate).
    pub fn sample_rate(&self) -> u32 {
        self.model.config().features.sample_rate
    }

    /// Utterances less sure than this are reported as `?`.
    pub fn min_confidence(&self) -> f32 {
        self.min_confidence
    }

    /// How `listen` cuts a stream for `model` with the `kind` VAD: its front end's pre-roll, and
    /// utterances that may run to [`STRING_MAX_UTTERANCE_SECONDS`] when a string model reads
    /// them.
    pub fn stream_config(model: &Model, kind: VadKind, with_strings: bool) -> SegmenterConfig {
        let mut stream = SegmenterConfig::for_front_end(kind, &model.config().features);
        if with_strings {
            stream.vad.max_utterance_seconds = STRING_MAX_UTTERANCE_SECONDS;
        }
        stream
    }

    /// Everything `listen --input` would print for a whole recording at
    /// [`Recogniser::sample_rate`]: the sequences, joined (`?` for unsure digits).
    pub fn read_all(&mut self, samples: &[f32]) -> Result<String> {
        let mut heard = vec![];
        self.push(samples, Instant::now(), &mut heard)?;
        self.finish(&mut heard)?;
        Ok(heard
            .into_iter()
            .filter_map(|h| if let Heard::Sequence(s) = h { Some(s) } else { None })
            .collect())
    }

    /// Seconds of audio processed so far.
    pub fn seconds(&self) -> f64 {
        self.segmenter.seconds()
    }

    /// Feeds mono samples at [`Recogniser::sample_rate`] that arrived at `arrived`.
    pub fn push(&mut self, samples: &[f32], arrived: Instant, out: &mut Vec<Heard>) -> Result<()> {
        let mut segments = std::mem::take(&mut self.segments);
        self.segmenter.push(samples, &mut segments);
        let result = self.report(&mut segments, arrived, out);
        self.segments = segments;
        result
    }

    /// Ends the stream: the utterance in progress and the open sequence are reported.
    pub fn finish(&mut self, out: &mut Vec<Heard>) -> Result<()> {
        let mut segments = std::mem::take(&mut self.segments);
        self.segmenter.finish(&mut segments);
        let result = self.report(&mut segments, Instant::now(), out);
        self.segments = segments;
        result
    }

    fn report(&mut self, segments: &mut Vec<Segment>, arrived: Instant, out: &mut Vec<Heard>) -> Result<()> {
        for segment in segments.drain(..) {
            match segment {
                Segment::Utterance(u) => {
                    if let Some(reading) = self.read_string(&u.samples, u.end_s - u.start_s)? {
                        // The utterance's samples end at its end; the string's spans are from
                        // their start.
                        let origin = u.end_s - u.samples.len() as f64 / f64::from(self.sample_rate());
                        for hit in &reading.digits {
                            let heard = HeardDigit {
                                digit: Prediction::spread(hit.digit, hit.confidence)
                                    .sure_digit(self.min_confidence),
                                prediction: Prediction::spread(hit.digit, hit.confidence),
                                start_s: origin + hit.start_s,
                                end_s: origin + hit.end_s,
                                detected: arrived,
                                samples: vec![],
                            };
                            self.sequence.push(heard.symbol());
                            out.push(Heard::Digit(heard));
                        }
                        continue;
                    }
                    let prediction = self.classify(&u.samples)?;
                    let digit = prediction.sure_digit(self.min_confidence);
                    let heard = HeardDigit {
                        digit,
                        prediction,
                        start_s: u.start_s,
                        end_s: u.end_s,
                        detected: arrived,
                        samples: u.samples,
                    };
                    self.sequence.push(heard.symbol());
                    out.push(Heard::Digit(heard));
                }
                Segment::SequenceEnd => {
                    if !self.sequence.is_empty() {
                        out.push(Heard::Sequence(std::mem::take(&mut self.sequence)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The string model's reading of an utterance, when it hears a string in it.
    /// The string model decides whether it is a string; the classifier may then read again the
    /// digits said between pauses ([`Recogniser::rereading`]).
    fn read_string(&mut self, samples: &[f32], speech_seconds: f64) -> Result<Option<Reading>> {
        let Some(strings) = self.strings else { return Ok(None) };
        let (mut all, which, reading) = strings.readings(samples, None)?;
        let sure = reading.digits.iter().all(|d| d.confidence >= STRING_CONFIDENCE);
        let likelier_than_a_word = || {
            let one = (0..NUM_CLASSES as u8)
                .map(|d| ctc::summed_log_likelihood(&all, &[d]))
                .fold(f64::NEG_INFINITY, f64::max);
            ctc::summed_log_likelihood(&all, &reading.values()) - one > TWO_DIGITS_MARGIN * all.len() as f64
        };
        let string = reading.digits.len() >= 2
            && (sure
                || reading.digits.len() >= 3
                || speech_seconds > LONGER_THAN_A_WORD_SECONDS
                || likelier_than_a_word());
        if !string {
            return Ok(None);
        }
        let posteriors = all.swap_remove(which);
        let Some(db) = self.reread_dip_db else { return Ok(Some(reading)) };
        let reader = crate::rescore::StringReader {
            dip_db: Some(db),
            ..crate::rescore::StringReader::with_classifier(strings, self.model)?
        };
        reader.reread(&mut self.mfcc, samples, &posteriors, reading).map(Some)
    }

    /// Classifies one clip at the front end's rate (padded or truncated to the clip length).
    pub fn classify(&mut self, samples: &[f32]) -> Result<Prediction> {
        let features = self.mfcc.compute(samples);
        let probs = self.model.probabilities(&features, 1)?;
        probs
            .into_iter()
            .next()
            .map(Prediction::from_probabilities)
            .ok_or_else(|| Error::Config("the model returned nothing".into()))
    }
}

/// Scores `items` (recordings at `classifier`'s rate, with their digits) as `listen --input`
/// reads them with its defaults (the energy VAD, [`MIN_CONFIDENCE`]): each recording cut into
/// utterances, each read by `strings` or `classifier` as listen picks, the sequences joined; a
/// `?` counts as a wrong digit. On `threads` threads.
pub fn score_listening(
    classifier: &Model,
    strings: &StringModel,
    reread_dip_db: Option<f32>,
    items: &[crate::strings::Labelled],
    threads: usize,
) -> Result<crate::strings::SequenceScores> {
    let stream = Recogniser::stream_config(classifier, VadKind::Energy, true);
    let heard = crate::parallel::map(
        items,
        threads,
        || (),
        |_, _, (samples, _)| {
            Recogniser::new(classifier, &stream, MIN_CONFIDENCE)?
                .with_strings(strings)?
                .rereading(reread_dip_db)
                .read_all(samples)
        },
    )?;
    let mut scores = crate::strings::SequenceScores::default();
    for ((_, digits), text) in items.iter().zip(heard) {
        // `?` becomes a value no digit has.
        let hypothesis: Vec<u8> = text?.bytes().map(|b| b.wrapping_sub(b'0')).collect();
        scores.add(digits, &hypothesis);
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_keeps_at_most_the_asked_lead_in() {
        // 0.2 s of pre-roll (1,600 samples at 8 kHz) before 0.3 s of speech.
        let mut samples = vec![0.0f32; 1600];
        samples.extend(vec![0.5f32; 2400]);
        let heard = HeardDigit {
            digit: Some(1),
            prediction: Prediction::from_probabilities([0.1; crate::NUM_CLASSES]),
            start_s: 2.0,
            end_s: 2.3,
            detected: Instant::now(),
            samples,
        };
        let take = heard.with_lead_in(8000, 0.05);
        assert_eq!(take.len(), 400 + 2400);
        assert!(take[..400].iter().all(|&s| s == 0.0) && take[400] == 0.5);
        // A shorter pre-roll than asked (cut by the previous utterance) is kept whole.
        assert_eq!(heard.with_lead_in(8000, 1.0).len(), 4000);
    }
}
