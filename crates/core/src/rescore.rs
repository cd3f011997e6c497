//! A string read twice: the string model finds how many digits an utterance holds and where,
//! then the classifier reads each digit's stretch of audio again, and the two opinions are
//! multiplied.
//!
//! The classifier has seen every training word under far more views (shifts, rooms, noise,
//! thirty epochs of copies) than the string model's strings, and reads an unseen speaker's
//! single words better; the string model alone reads the number and the places of the digits
//! in connected speech. A digit's stretch runs from halfway between its span and the previous
//! digit's to halfway to the next one's (the utterance's ends for the first and the last);
//! the classifier's front end finds the word in it as it does in a file.

use crate::ctc::{DigitHit, Lengths, Posteriors, Reading, StringModel, decode};
use crate::model::Model;
use crate::{Error, FrontEnd, NUM_CLASSES, Result};

/// How much the string model's own opinion counts beside the classifier's (an exponent on its
/// probabilities): 0 is the classifier alone.
pub const STRING_WEIGHT: f32 = 1.0;

/// The string model, and the classifier when there is one, reading together.
#[derive(Debug, Clone, Copy)]
pub struct StringReader<'m> {
    pub strings: &'m StringModel,
    /// `None`: the string model reads alone.
    pub classifier: Option<&'m Model>,
    /// The exponent on the string model's probabilities ([`STRING_WEIGHT`]).
    pub weight: f32,
}

impl<'m> StringReader<'m> {
    /// The string model alone.
    pub fn alone(strings: &'m StringModel) -> Self {
        StringReader { strings, classifier: None, weight: STRING_WEIGHT }
    }

    /// The string model, each of its digits read again by `classifier` (the same rate).
    pub fn with_classifier(strings: &'m StringModel, classifier: &'m Model) -> Result<Self> {
        same_rate(strings, classifier)?;
        Ok(StringReader { strings, classifier: Some(classifier), weight: STRING_WEIGHT })
    }

    /// A front end for [`StringReader::read`] (the classifier's; one per thread).
    pub fn front_end(&self) -> Result<FrontEnd> {
        let features = self.classifier.map_or(&self.strings.config().features, |c| &c.config().features);
        FrontEnd::new(features)
    }

    /// Reads an utterance at the models' rate: the string model's digits and spans (greedy, or
    /// constrained to `lengths`), each digit decided by both models when there is a classifier.
    pub fn read(&self, front: &mut FrontEnd, samples: &[f32], lengths: Option<Lengths>) -> Result<Reading> {
        let Some(classifier) = self.classifier else { return self.strings.read(samples, lengths) };
        let posteriors = self.strings.posteriors(samples)?;
        let reading = decode(&posteriors, lengths);
        let rate = f64::from(classifier.config().features.sample_rate);
        let stretches = stretches(&reading.digits, posteriors.duration_s);
        let mut digits = Vec::with_capacity(reading.digits.len());
        for (hit, (from, to)) in reading.digits.iter().zip(stretches) {
            let at = |s: f64| ((s * rate).round().max(0.0) as usize).min(samples.len());
            let clip = samples.get(at(from)..at(to)).unwrap_or_default();
            let features = front.compute(clip);
            let heard = classifier.probabilities(&features, 1)?;
            let heard =
                heard.first().ok_or_else(|| Error::Config("the classifier returned nothing".into()))?;
            let own = digit_probabilities(&posteriors, hit);
            digits.push(combine(hit, heard, &own, self.weight));
        }
        Ok(Reading {
            sequence: digits.iter().map(|d| char::from(b'0' + d.digit)).collect(),
            confidence: digits.iter().map(|d| d.confidence).product(),
            digits,
        })
    }
}

/// An error unless both models read the same rate (they must share the samples).
pub fn same_rate(strings: &StringModel, classifier: &Model) -> Result<()> {
    let (a, b) = (strings.config().features.sample_rate, classifier.config().features.sample_rate);
    if a != b {
        return Err(Error::Config(format!("the string model reads {a} Hz, the classifier {b} Hz")));
    }
    Ok(())
}

/// Each digit's stretch (seconds): from halfway between its span's centre and the previous
/// one's to halfway to the next one's; the first from 0, the last to `duration`.
fn stretches(digits: &[DigitHit], duration: f64) -> Vec<(f64, f64)> {
    if digits.is_empty() {
        return vec![];
    }
    let centres: Vec<f64> = digits.iter().map(|d| 0.5 * (d.start_s + d.end_s)).collect();
    let bounds: Vec<f64> = std::iter::once(0.0)
        .chain(centres.windows(2).map(|w| 0.5 * (w[0] + w[1])))
        .chain(std::iter::once(duration))
        .collect();
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The string model's probabilities of the ten digits (blank left out, renormalised) at the
/// frame of `hit`'s span where its digit was likeliest.
fn digit_probabilities(p: &Posteriors, hit: &DigitHit) -> [f32; NUM_CLASSES] {
    let class = usize::from(hit.digit) + 1;
    let time = |t: usize| p.start_s + (t as f64 + 0.5) * p.frame_seconds;
    let best = p
        .probs
        .iter()
        .enumerate()
        .filter(|(t, _)| (hit.start_s..=hit.end_s).contains(&time(*t)))
        .max_by(|a, b| a.1[class].total_cmp(&b.1[class]))
        .map(|(_, probs)| probs);
    let mut out = [0.0; NUM_CLASSES];
    match best {
        Some(probs) => out.iter_mut().zip(probs.iter().skip(1)).for_each(|(o, &v)| *o = v),
        None => out[usize::from(hit.digit)] = 1.0,
    }
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|v| *v /= sum.max(f32::MIN_POSITIVE));
    out
}

/// The digit both opinions make likeliest (`heard^1 * own^weight`, renormalised), with the
/// string model's span.
fn combine(hit: &DigitHit, heard: &[f32; NUM_CLASSES], own: &[f32; NUM_CLASSES], weight: f32) -> DigitHit {
    let mut score = [0.0f32; NUM_CLASSES];
    for ((s, &h), &o) in score.iter_mut().zip(heard).zip(own) {
        *s = h.max(1e-12).ln() + weight * o.max(1e-12).ln();
    }
    let max = score.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    score.iter_mut().for_each(|s| *s = (*s - max).exp());
    let sum: f32 = score.iter().sum();
    let (digit, &top) =
        score.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((usize::from(hit.digit), &1.0));
    DigitHit { digit: digit as u8, confidence: top / sum, ..hit.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(digit: u8, start_s: f64, end_s: f64) -> DigitHit {
        DigitHit { digit, confidence: 0.9, start_s, end_s }
    }

    #[test]
    fn stretches_meet_halfway_between_spans_and_cover_the_utterance() {
        let digits = [hit(1, 0.2, 0.3), hit(2, 0.7, 0.9), hit(3, 1.5, 1.6)];
        let s = stretches(&digits, 2.0);
        assert_eq!(s.len(), 3);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(s[0].0, 0.0) && close(s[0].1, 0.525), "{s:?}");
        assert!(close(s[1].0, 0.525) && close(s[1].1, 1.175), "{s:?}");
        assert!(close(s[2].0, 1.175) && close(s[2].1, 2.0), "{s:?}");
        assert!(stretches(&[], 1.0).is_empty());
    }

    #[test]
    fn a_sure_classifier_overrules_an_unsure_string_model_and_not_the_reverse() {
        let mut heard = [0.01f32; NUM_CLASSES];
        heard[7] = 0.91;
        let mut own = [0.05f32; NUM_CLASSES];
        own[1] = 0.3;
        own[7] = 0.25;
        let d = combine(&hit(1, 0.0, 0.1), &heard, &own, 1.0);
        assert_eq!(d.digit, 7);
        assert!(d.confidence > 0.5 && d.confidence <= 1.0);
        // A string model that is sure of its digit keeps it against a hesitant classifier.
        let mut sure = [0.001f32; NUM_CLASSES];
        sure[1] = 0.99;
        let mut hesitant = [0.05f32; NUM_CLASSES];
        hesitant[7] = 0.3;
        hesitant[1] = 0.25;
        assert_eq!(combine(&hit(1, 0.0, 0.1), &hesitant, &sure, 1.0).digit, 1);
        // Weight 0: the classifier alone.
        assert_eq!(combine(&hit(1, 0.0, 0.1), &hesitant, &sure, 0.0).digit, 7);
    }

    #[test]
    fn the_string_models_own_view_is_taken_at_its_likeliest_frame() {
        let mut probs = vec![[0.0f32; crate::ctc::CTC_CLASSES]; 4];
        probs[0][0] = 1.0;
        probs[1][0] = 0.5;
        probs[1][3] = 0.5; // digit 2 at 0.5
        probs[2][3] = 0.8; // digit 2 at 0.8, digit 5 at 0.2
        probs[2][6] = 0.2;
        probs[3][0] = 1.0;
        let p = Posteriors { probs, frame_seconds: 0.1, start_s: 0.0, duration_s: 0.4 };
        let own = digit_probabilities(&p, &hit(2, 0.1, 0.3));
        assert!((own[2] - 0.8).abs() < 1e-6 && (own[5] - 0.2).abs() < 1e-6, "{own:?}");
    }
}
