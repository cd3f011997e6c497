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

use crate::ctc::{DigitHit, Lengths, Posteriors, Reading, StringModel};
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
    /// `None`: each digit's stretch runs halfway to its neighbours' and every digit is read
    /// again. `Some(db)`: stretches are cut at the quietest moment between two digits, and a
    /// digit is read again only where, at both its cuts, the level dips at least `db` under the
    /// quieter of the two words' loudest moments (a pause, as between words said one by one).
    pub dip_db: Option<f32>,
}

impl<'m> StringReader<'m> {
    /// The string model alone.
    pub fn alone(strings: &'m StringModel) -> Self {
        StringReader { strings, classifier: None, weight: STRING_WEIGHT, dip_db: None }
    }

    /// The string model, each of its digits read again by `classifier` (the same rate).
    pub fn with_classifier(strings: &'m StringModel, classifier: &'m Model) -> Result<Self> {
        same_rate(strings, classifier)?;
        Ok(StringReader { strings, classifier: Some(classifier), weight: STRING_WEIGHT, dip_db: None })
    }

    /// A front end for [`StringReader::read`] (the classifier's; one per thread).
    pub fn front_end(&self) -> Result<FrontEnd> {
        let features = self.classifier.map_or(&self.strings.config().features, |c| &c.config().features);
        FrontEnd::new(features)
    }

    /// Reads an utterance at the models' rate: the string model's digits and spans (greedy, or
    /// constrained to `lengths`), each digit decided by both models when there is a classifier.
    pub fn read(&self, front: &mut FrontEnd, samples: &[f32], lengths: Option<Lengths>) -> Result<Reading> {
        if self.classifier.is_none() {
            return self.strings.read(samples, lengths);
        }
        let (posteriors, reading) = self.strings.reading(samples, lengths)?;
        self.reread(front, samples, &posteriors, reading)
    }

    /// The string model's `reading` of `samples` (from `posteriors`) with its digits read again
    /// by the classifier (as [`StringReader::dip_db`] says which); as it is without one.
    pub fn reread(
        &self,
        front: &mut FrontEnd,
        samples: &[f32],
        posteriors: &Posteriors,
        reading: Reading,
    ) -> Result<Reading> {
        let Some(classifier) = self.classifier else { return Ok(reading) };
        let rate = f64::from(classifier.config().features.sample_rate);
        let at = |s: f64| ((s * rate).round().max(0.0) as usize).min(samples.len());
        let (stretches, apart) = match self.dip_db {
            None => (stretches(&reading.digits, posteriors.duration_s), vec![true; reading.digits.len()]),
            Some(db) => dip_stretches(&reading.digits, samples, rate, db),
        };
        if !apart.contains(&true) {
            return Ok(reading);
        }
        let mut digits = Vec::with_capacity(reading.digits.len());
        for ((hit, (from, to)), apart) in reading.digits.iter().zip(stretches).zip(apart) {
            if !apart {
                digits.push(hit.clone());
                continue;
            }
            let clip = samples.get(at(from)..at(to)).unwrap_or_default();
            let features = front.compute(clip);
            let heard = classifier.probabilities(&features, 1)?;
            let heard =
                heard.first().ok_or_else(|| Error::Config("the classifier returned nothing".into()))?;
            let own = digit_probabilities(posteriors, hit);
            digits.push(combine(hit, heard, &own, self.weight));
        }
        Ok(Reading {
            sequence: digits.iter().map(|d| char::from(b'0' + d.digit)).collect(),
            confidence: digits.iter().map(|d| d.confidence).product(),
            digits,
        })
    }
}

/// Each digit's log-probability that the utterance is that digit said alone (every alignment
/// of the one-digit string), summed over the string models that read it.
pub fn one_digit_log_likelihoods(posteriors: &[Posteriors]) -> [f64; NUM_CLASSES] {
    std::array::from_fn(|d| crate::ctc::summed_log_likelihood(posteriors, &[d as u8]))
}

/// The classifier's probabilities for one word with the string models' second opinion:
/// `p(d) ~ p_classifier(d) x prod_m P_m(d)^weight`, where `P_m(d)` is the m-th string model's
/// probability that the utterance is the digit `d` alone ([`one_digit_log_likelihoods`]). The
/// classifier has heard every training word under far more views and reads a new voice's
/// clean words better; the string models read whole recordings, never trimmed to one window,
/// and hear other things (a babble word, a clipped one) differently. Measured, not the default
/// (`evaluate --second-opinion W`; the model card): a weight of 0.3 helped the official split's
/// babble and clipping and cost an unseen speaker's clean and clipped words.
pub fn with_second_opinion(
    classifier: &[f32; NUM_CLASSES],
    one_digit: &[f64; NUM_CLASSES],
    weight: f64,
) -> [f32; NUM_CLASSES] {
    let scores: [f64; NUM_CLASSES] =
        std::array::from_fn(|d| f64::from(classifier[d]).max(1e-30).ln() + weight * one_digit[d]);
    let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !best.is_finite() {
        return *classifier;
    }
    let exp: [f64; NUM_CLASSES] = std::array::from_fn(|d| (scores[d] - best).exp());
    let total: f64 = exp.iter().sum();
    std::array::from_fn(|d| (exp[d] / total) as f32)
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

/// Level frames for [`dip_stretches`] (seconds).
const LEVEL_FRAME_S: f64 = 0.01;

/// Each digit's stretch cut at the quietest 10 ms frame between its span's centre and each
/// neighbour's (the utterance's ends for the first and the last), and whether the digit stands
/// apart: at both its cuts the level dips at least `db` under the quieter of the two words'
/// loudest frames (the utterance's ends count as deep dips).
fn dip_stretches(digits: &[DigitHit], samples: &[f32], rate: f64, db: f32) -> (Vec<(f64, f64)>, Vec<bool>) {
    if digits.is_empty() {
        return (vec![], vec![]);
    }
    let hop = ((LEVEL_FRAME_S * rate).round() as usize).max(1);
    let level: Vec<f32> = samples
        .chunks(hop)
        .map(|c| {
            let power = c.iter().map(|&x| x * x).sum::<f32>() / c.len() as f32;
            10.0 * power.max(1e-10).log10()
        })
        .collect();
    let frame = |s: f64| ((s / LEVEL_FRAME_S).floor().max(0.0) as usize).min(level.len());
    let centres: Vec<usize> = digits.iter().map(|d| frame(0.5 * (d.start_s + d.end_s))).collect();
    // The quietest frame between each pair of neighbouring centres.
    let cuts: Vec<usize> = centres
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
            (a..b.max(a + 1).min(level.len())).min_by(|&i, &j| level[i].total_cmp(&level[j])).unwrap_or(a)
        })
        .collect();
    let bounds: Vec<usize> =
        std::iter::once(0).chain(cuts.iter().copied()).chain(std::iter::once(level.len())).collect();
    let loudest = |from: usize, to: usize| {
        level.get(from..to.max(from)).unwrap_or_default().iter().copied().fold(f32::NEG_INFINITY, f32::max)
    };
    let peaks: Vec<f32> = bounds.windows(2).map(|w| loudest(w[0], w[1])).collect();
    // Whether the cut between digit i and i + 1 is a pause.
    let pause: Vec<bool> = cuts
        .iter()
        .enumerate()
        .map(|(i, &c)| peaks[i].min(peaks[i + 1]) - level.get(c).copied().unwrap_or(f32::NEG_INFINITY) >= db)
        .collect();
    let duration = samples.len() as f64 / rate;
    let seconds = |f: usize| (f as f64 * LEVEL_FRAME_S).min(duration);
    let stretches = bounds.windows(2).map(|w| (seconds(w[0]), seconds(w[1]))).collect();
    let apart = (0..digits.len())
        .map(|i| (i == 0 || pause[i - 1]) && pause.get(i).copied().unwrap_or(true))
        .collect();
    (stretches, apart)
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

    /// The second opinion is a product of probabilities: weight 0 is the classifier alone, an
    /// unsure classifier follows a sure string model, a sure classifier outweighs a weak
    /// opinion, and a string model that finds no digit alone possible leaves it as it was.
    #[test]
    fn second_opinion_multiplies_the_classifiers_probabilities() {
        let mut unsure = [0.02f32; NUM_CLASSES];
        (unsure[3], unsure[8]) = (0.45, 0.39);
        let favours_8: [f64; NUM_CLASSES] = std::array::from_fn(|d| if d == 8 { -0.1 } else { -6.0 });
        let close = |a: &[f32; NUM_CLASSES], b: &[f32; NUM_CLASSES]| {
            a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
        };
        assert!(close(&with_second_opinion(&unsure, &favours_8, 0.0), &unsure));
        let fused = with_second_opinion(&unsure, &favours_8, 0.3);
        assert!((fused.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(crate::model::argmax(&fused).0, 8, "{fused:?}");
        assert!(fused[8] > unsure[8]);
        let mut sure = [0.001f32; NUM_CLASSES];
        sure[3] = 0.991;
        assert_eq!(crate::model::argmax(&with_second_opinion(&sure, &favours_8, 0.3)).0, 3);
        let impossible = [f64::NEG_INFINITY; NUM_CLASSES];
        assert!(close(&with_second_opinion(&unsure, &impossible, 0.3), &unsure));
    }

    /// `words` bursts of a 440 Hz tone (seconds from, to) in `duration` s at 8 kHz, `floor` the
    /// level between them (amplitude).
    fn bursts(words: &[(f64, f64)], duration: f64, floor: f32) -> Vec<f32> {
        (0..(duration * 8000.0) as usize)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let tone = (2.0 * std::f64::consts::PI * 440.0 * t).sin() as f32;
                if words.iter().any(|&(a, b)| (a..b).contains(&t)) { 0.5 * tone } else { floor * tone }
            })
            .collect()
    }

    #[test]
    fn dips_cut_stretches_in_the_pauses_and_say_which_digits_stand_apart() {
        let words = [(0.1, 0.4), (0.45, 0.8), (0.8, 1.2)];
        // A pause between the first two words, none between the last two.
        let samples = bursts(&words, 1.3, 0.0);
        let digits = [hit(1, 0.2, 0.3), hit(2, 0.6, 0.65), hit(3, 1.0, 1.05)];
        let (s, apart) = dip_stretches(&digits, &samples, 8000.0, 20.0);
        assert_eq!(s.len(), 3);
        assert!(s[0].0 == 0.0 && (0.4..=0.45).contains(&s[0].1), "{s:?}");
        assert!((s[1].0 - s[0].1).abs() < 1e-9 && (s[2].1 - 1.3).abs() < 1e-9, "{s:?}");
        assert_eq!(apart, [true, false, false]);
        // The pause filled 10 dB under the words: not a pause at 20 dB, one at 5 dB.
        let filled = bursts(&words, 1.3, 0.5 * 10f32.powf(-0.5));
        assert_eq!(dip_stretches(&digits, &filled, 8000.0, 20.0).1, [false, false, false]);
        assert_eq!(dip_stretches(&digits, &filled, 8000.0, 5.0).1, [true, false, false]);
        assert_eq!(dip_stretches(&[], &samples, 8000.0, 20.0), (vec![], vec![]));
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
