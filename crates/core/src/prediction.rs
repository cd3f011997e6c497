//! What the classifier says about one clip ([`Prediction`]): the digit, its confidence and every
//! class's probability, and the confidence rule ([`Prediction::sure_digit`]) that reports an
//! unsure digit as `?`. File batches ([`crate::predict`]) and the live path
//! ([`crate::recogniser`], [`crate::live`]) both build on it.

use crate::NUM_CLASSES;
use crate::ctc::Reading;
use crate::model::argmax;

/// The outcome for one clip or file.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub digit: u8,
    pub confidence: f32,
    pub probabilities: [f32; NUM_CLASSES],
    /// Speech regions the front end found in the file (with `find_word`; 0 without it). More
    /// than one: the file may hold several utterances, and only the loudest was read.
    pub utterances: usize,
    /// The string model's reading of the whole file ("4159"), when one was given.
    pub digits: Option<Reading>,
}

impl Prediction {
    /// The most probable digit of a probability vector, and its probability as the confidence.
    pub fn from_probabilities(probabilities: [f32; NUM_CLASSES]) -> Prediction {
        let (digit, confidence) = argmax(&probabilities);
        Prediction { digit, confidence, probabilities, utterances: 0, digits: None }
    }

    /// A string model's digit as a prediction: its confidence on the digit, the rest spread
    /// evenly over the other nine (the string model gives no per-class vector for a whole word).
    pub fn spread(digit: u8, confidence: f32) -> Prediction {
        let rest = (1.0 - confidence).max(0.0) / (NUM_CLASSES - 1) as f32;
        let mut p = [rest; NUM_CLASSES];
        if let Some(slot) = p.get_mut(usize::from(digit)) {
            *slot = confidence;
        }
        Prediction { digit, confidence, probabilities: p, utterances: 1, digits: None }
    }

    /// The confidence rule: the digit when the model is at least `min_confidence` sure of it,
    /// else `None` (printed `?`).
    pub fn sure_digit(&self, min_confidence: f32) -> Option<u8> {
        (self.confidence >= min_confidence).then_some(self.digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsure_digit_is_not_reported_and_a_spread_keeps_its_confidence() {
        let mut p = [0.05; NUM_CLASSES];
        p[3] = 0.55;
        let prediction = Prediction::from_probabilities(p);
        assert_eq!(
            (prediction.digit, prediction.sure_digit(0.5), prediction.sure_digit(0.6)),
            (3, Some(3), None)
        );
        let s = Prediction::spread(7, 0.91);
        assert_eq!((s.digit, s.confidence, s.probabilities[7]), (7, 0.91, 0.91));
        assert!((s.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
