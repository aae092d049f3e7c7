//! Calibration of predicted probabilities: Brier score, expected calibration error (ECE) and the
//! data of a reliability diagram.
//!
//! Bins are `n_bins` equal-width intervals of [0, 1], assigned as `sklearn.calibration.
//! calibration_curve(strategy = "uniform")` does (`np.searchsorted(edges[1:-1], p)`, so a
//! probability equal to an inner edge belongs to the lower bin). ECE is
//! `Σ_b (n_b / N) · |mean label_b − mean probability_b|` over non-empty bins.

use crate::error::{check_same_len, EvalError, Result};
use serde::{Deserialize, Serialize};

fn check_probabilities(labels: &[bool], probs: &[f64]) -> Result<()> {
    check_same_len("labels", labels.len(), "probabilities", probs.len())?;
    if probs.is_empty() {
        return Err(EvalError::Empty {
            what: "probabilities",
        });
    }
    for (index, &value) in probs.iter().enumerate() {
        if !value.is_finite() {
            return Err(EvalError::NonFinite {
                what: "probabilities",
                index,
                value,
            });
        }
        if !(0.0..=1.0).contains(&value) {
            return Err(EvalError::NotAProbability {
                what: "probabilities",
                index,
                value,
            });
        }
    }
    Ok(())
}

/// Brier score: mean squared difference between probability and outcome (lower is better).
pub fn brier_score(labels: &[bool], probs: &[f64]) -> Result<f64> {
    check_probabilities(labels, probs)?;
    let sum: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&l, &p)| (p - if l { 1.0 } else { 0.0 }).powi(2))
        .sum();
    Ok(sum / probs.len() as f64)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin.
    pub lower: f64,
    /// Upper edge of the bin.
    pub upper: f64,
    /// Number of samples in the bin.
    pub count: usize,
    /// Mean predicted probability in the bin (NaN when empty).
    pub mean_predicted: f64,
    /// Fraction of positives in the bin (NaN when empty).
    pub fraction_positive: f64,
}

/// Calibration summary: Brier score, ECE and the bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Brier score.
    pub brier: f64,
    /// Expected calibration error.
    pub ece: f64,
    /// Maximum calibration error over non-empty bins.
    pub mce: f64,
    /// All bins, empty ones included, lowest first.
    pub bins: Vec<ReliabilityBin>,
}

/// Computes Brier score, ECE / MCE and reliability-diagram bins.
pub fn calibration(labels: &[bool], probs: &[f64], n_bins: usize) -> Result<Calibration> {
    check_probabilities(labels, probs)?;
    if n_bins == 0 {
        return Err(EvalError::InvalidParameter {
            name: "n_bins",
            reason: "must be at least 1".into(),
        });
    }
    let edges: Vec<f64> = (0..=n_bins).map(|i| i as f64 / n_bins as f64).collect();
    let inner = &edges[1..n_bins];
    let mut count = vec![0usize; n_bins];
    let mut sum_p = vec![0.0; n_bins];
    let mut sum_y = vec![0.0; n_bins];
    for (&l, &p) in labels.iter().zip(probs) {
        let b = inner.partition_point(|&e| e < p);
        count[b] += 1;
        sum_p[b] += p;
        sum_y[b] += if l { 1.0 } else { 0.0 };
    }
    let n = probs.len() as f64;
    let mut ece = 0.0;
    let mut mce: f64 = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let (mp, fp) = if count[b] == 0 {
                (f64::NAN, f64::NAN)
            } else {
                let c = count[b] as f64;
                let gap = (sum_y[b] / c - sum_p[b] / c).abs();
                ece += c / n * gap;
                mce = mce.max(gap);
                (sum_p[b] / c, sum_y[b] / c)
            };
            ReliabilityBin {
                lower: edges[b],
                upper: edges[b + 1],
                count: count[b],
                mean_predicted: mp,
                fraction_positive: fp,
            }
        })
        .collect();
    Ok(Calibration {
        brier: brier_score(labels, probs)?,
        ece,
        mce,
        bins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brier_matches_sklearn_docstring() {
        // sklearn brier_score_loss docstring: y=[0,1,1,0], p=[0.1,0.9,0.8,0.3] → 0.0375
        let b = brier_score(&[false, true, true, false], &[0.1, 0.9, 0.8, 0.3]).unwrap();
        assert!((b - 0.0375).abs() < 1e-15);
    }

    #[test]
    fn bins_follow_searchsorted_left() {
        let y = [false, true, true, false, true];
        let p = [0.5, 0.5, 0.9, 0.1, 1.0];
        let c = calibration(&y, &p, 2).unwrap();
        // 0.5 sits on the inner edge → lower bin.
        assert_eq!(c.bins[0].count, 3);
        assert_eq!(c.bins[1].count, 2);
        assert!((c.bins[0].mean_predicted - 1.1 / 3.0).abs() < 1e-15);
        assert!((c.bins[0].fraction_positive - 1.0 / 3.0).abs() < 1e-15);
        let ece = 3.0 / 5.0 * (1.0f64 / 3.0 - 1.1 / 3.0).abs() + 2.0 / 5.0 * (1.0f64 - 0.95).abs();
        assert!((c.ece - ece).abs() < 1e-15);
    }

    #[test]
    fn perfect_calibration_has_zero_ece() {
        let c = calibration(&[true, false], &[1.0, 0.0], 10).unwrap();
        assert_eq!(c.ece, 0.0);
        assert_eq!(c.brier, 0.0);
    }

    #[test]
    fn rejects_non_probabilities() {
        assert!(matches!(
            brier_score(&[true], &[1.5]),
            Err(EvalError::NotAProbability { index: 0, .. })
        ));
    }
}
