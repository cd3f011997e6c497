//! Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix.

use crate::NUM_CLASSES;
use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub digit: u8,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Scores of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub per_class: Vec<ClassScore>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Scores {
    /// Scores `(true, predicted)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u8, u8)>) -> Self {
        let mut confusion = vec![vec![0usize; NUM_CLASSES]; NUM_CLASSES];
        for (t, p) in pairs {
            let (t, p) = (usize::from(t).min(NUM_CLASSES - 1), usize::from(p).min(NUM_CLASSES - 1));
            confusion[t][p] += 1;
        }
        let total: usize = confusion.iter().flatten().sum();
        let correct: usize = (0..NUM_CLASSES).map(|i| confusion[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class = (0..NUM_CLASSES)
            .map(|d| {
                let tp = confusion[d][d];
                let support: usize = confusion[d].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[d]).sum();
                let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScore { digit: d as u8, precision, recall, f1, support }
            })
            .collect();
        Scores { total, correct, accuracy: ratio(correct, total), per_class, confusion }
    }
}

impl std::fmt::Display for Scores {
    /// An sklearn-style report followed by the confusion matrix.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "accuracy {:.2}% ({}/{})", 100.0 * self.accuracy, self.correct, self.total)?;
        writeln!(f, "\ndigit  precision  recall     f1  support")?;
        for c in &self.per_class {
            writeln!(
                f,
                "{:>5}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
                c.digit, c.precision, c.recall, c.f1, c.support
            )?;
        }
        write!(f, "\nconfusion (rows: true, columns: predicted)\n     ")?;
        for d in 0..NUM_CLASSES {
            write!(f, "{d:>4}")?;
        }
        for (t, row) in self.confusion.iter().enumerate() {
            write!(f, "\n{t:>4} ")?;
            for v in row {
                write!(f, "{v:>4}")?;
            }
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computation() {
        // digit 0: 2 right, 1 predicted as 1; digit 1: 1 right.
        let s = Scores::from_pairs([(0, 0), (0, 0), (0, 1), (1, 1)]);
        assert_eq!((s.total, s.correct), (4, 3));
        assert_eq!(s.confusion[0][1], 1);
        let (c0, c1) = (&s.per_class[0], &s.per_class[1]);
        assert_eq!((c0.precision, c0.recall), (1.0, 2.0 / 3.0));
        assert_eq!((c1.precision, c1.recall), (0.5, 1.0));
        assert!((c0.f1 - 0.8).abs() < 1e-12);
        assert!(s.to_string().contains("accuracy 75.00% (3/4)"));
    }
}
