//! Threshold metrics (accuracy, sensitivity, specificity, PPV, NPV, F1) and the Youden-optimal
//! threshold.
//!
//! A sample is predicted positive iff `score >= threshold`. Ratios whose denominator is zero (e.g.
//! PPV when nothing is predicted positive) are NaN, so that they are never silently reported as 0.
//!
//! The Youden threshold maximises `J = TPR − FPR` over the thresholds of
//! `roc_curve(drop_intermediate = false)` (the first is `+∞`); ties go to the highest threshold, as
//! `np.argmax` does. Choose it on training data and apply it to the test fold
//! ([`youden_train_test`]): choosing it on the test fold is optimistic.

use crate::error::{check_finite, check_same_len, Result};
use crate::roc::roc_curve;
use serde::{Deserialize, Serialize};

/// Confusion counts at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// True negatives.
    pub tn: usize,
    /// False negatives.
    pub fn_: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

impl Confusion {
    /// Counts the confusion matrix of `labels` against `score >= threshold`.
    pub fn at(labels: &[bool], scores: &[f64], threshold: f64) -> Result<Self> {
        check_same_len("labels", labels.len(), "scores", scores.len())?;
        check_finite("scores", scores)?;
        let mut c = Confusion::default();
        for (&l, &s) in labels.iter().zip(scores) {
            match (l, s >= threshold) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
        Ok(c)
    }

    /// Adds the counts of another matrix (pooling folds).
    pub fn add(&self, other: &Confusion) -> Confusion {
        Confusion {
            tp: self.tp + other.tp,
            fp: self.fp + other.fp,
            tn: self.tn + other.tn,
            fn_: self.fn_ + other.fn_,
        }
    }

    /// All metrics derived from the counts.
    pub fn metrics(&self, threshold: f64) -> ThresholdMetrics {
        let n = self.tp + self.fp + self.tn + self.fn_;
        let ppv = ratio(self.tp, self.tp + self.fp);
        let sensitivity = ratio(self.tp, self.tp + self.fn_);
        ThresholdMetrics {
            threshold,
            confusion: *self,
            accuracy: ratio(self.tp + self.tn, n),
            sensitivity,
            specificity: ratio(self.tn, self.tn + self.fp),
            ppv,
            npv: ratio(self.tn, self.tn + self.fn_),
            f1: ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_),
        }
    }
}

/// Metrics of a binary decision at one threshold. NaN marks a ratio with a zero denominator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdMetrics {
    /// The threshold used (`score >= threshold` is positive).
    pub threshold: f64,
    /// The counts behind the ratios.
    pub confusion: Confusion,
    /// (TP + TN) / N.
    pub accuracy: f64,
    /// Sensitivity (recall, TPR) = TP / (TP + FN).
    pub sensitivity: f64,
    /// Specificity (TNR) = TN / (TN + FP).
    pub specificity: f64,
    /// Positive predictive value (precision) = TP / (TP + FP).
    pub ppv: f64,
    /// Negative predictive value = TN / (TN + FN).
    pub npv: f64,
    /// F1 = 2TP / (2TP + FP + FN).
    pub f1: f64,
}

/// Metrics at a given threshold.
pub fn metrics_at(labels: &[bool], scores: &[f64], threshold: f64) -> Result<ThresholdMetrics> {
    Ok(Confusion::at(labels, scores, threshold)?.metrics(threshold))
}

/// The Youden-optimal operating point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct YoudenPoint {
    /// The threshold (may be `+∞` when no finite threshold has J > 0).
    pub threshold: f64,
    /// Youden's J = TPR − FPR at that threshold.
    pub j: f64,
    /// TPR at the threshold.
    pub tpr: f64,
    /// FPR at the threshold.
    pub fpr: f64,
}

/// The threshold maximising Youden's J on (`labels`, `scores`).
pub fn youden_threshold(labels: &[bool], scores: &[f64]) -> Result<YoudenPoint> {
    let roc = roc_curve(labels, scores, false)?;
    let mut best = 0;
    for i in 1..roc.thresholds.len() {
        // Strictly greater: the first (highest) threshold wins ties, as np.argmax.
        if roc.tpr[i] - roc.fpr[i] > roc.tpr[best] - roc.fpr[best] {
            best = i;
        }
    }
    Ok(YoudenPoint {
        threshold: roc.thresholds[best],
        j: roc.tpr[best] - roc.fpr[best],
        tpr: roc.tpr[best],
        fpr: roc.fpr[best],
    })
}

/// Chooses the Youden threshold on the training data and returns the metrics it gives on the test
/// data (the honest way to report accuracy / sensitivity / specificity in cross-validation).
pub fn youden_train_test(
    train_labels: &[bool],
    train_scores: &[f64],
    test_labels: &[bool],
    test_scores: &[f64],
) -> Result<ThresholdMetrics> {
    let point = youden_threshold(train_labels, train_scores)?;
    metrics_at(test_labels, test_scores, point.threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios() {
        let y = [true, true, true, false, false, false, false];
        let s = [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.6];
        let m = metrics_at(&y, &s, 0.6).unwrap();
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 2,
                fp: 2,
                tn: 2,
                fn_: 1
            }
        );
        assert!((m.accuracy - 4.0 / 7.0).abs() < 1e-15);
        assert!((m.sensitivity - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.specificity, 0.5);
        assert_eq!(m.ppv, 0.5);
        assert!((m.npv - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.f1 - 4.0 / 7.0).abs() < 1e-15);
        let none = metrics_at(&y, &s, 2.0).unwrap();
        assert!(none.ppv.is_nan());
        assert_eq!(none.specificity, 1.0);
    }

    #[test]
    fn youden_picks_highest_threshold_on_ties() {
        // Thresholds 0.8 and 0.4 both give J = 0.5; the higher one wins.
        let y = [true, false, true, false];
        let s = [0.8, 0.6, 0.4, 0.1];
        let p = youden_threshold(&y, &s).unwrap();
        assert_eq!(p.threshold, 0.8);
        assert_eq!(p.j, 0.5);
    }

    #[test]
    fn train_threshold_applied_to_test() {
        let ytr = [true, true, false, false];
        let str_ = [0.9, 0.7, 0.5, 0.1];
        let yte = [true, false, true];
        let ste = [0.75, 0.72, 0.6];
        let m = youden_train_test(&ytr, &str_, &yte, &ste).unwrap();
        assert_eq!(m.threshold, 0.7);
        assert_eq!(m.confusion.tp, 1);
        assert_eq!(m.confusion.fp, 1);
        assert_eq!(m.confusion.fn_, 1);
    }
}
