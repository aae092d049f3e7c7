//! ROC curve and area under it, with scikit-learn's tie handling.
//!
//! [`roc_curve`] mirrors `sklearn.metrics.roc_curve` (1.9.1):
//! - scores are sorted in decreasing order and one ROC point is made per *distinct* score, so tied
//!   scores move the curve diagonally (this is what makes the trapezoidal area equal to the
//!   Mann–Whitney estimate with ties counted as one half);
//! - the curve starts at (0, 0) with threshold `+∞`;
//! - with `drop_intermediate = true`, a point is dropped when both the false-positive and the
//!   true-positive counts have zero second difference there, i.e. it lies inside a straight run of
//!   equal steps (`np.diff(fps, 2)` and `np.diff(tps, 2)` both zero). The first and the last points
//!   are always kept. Dropping never changes the area.
//!
//! A sample is predicted positive at threshold `t` iff `score >= t`.

use crate::error::{check_binary, Result};
use serde::{Deserialize, Serialize};

/// Points of a ROC curve, from (0, 0) to (1, 1), with the thresholds that produce them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// False-positive rate at each point (non-decreasing).
    pub fpr: Vec<f64>,
    /// True-positive rate at each point (non-decreasing).
    pub tpr: Vec<f64>,
    /// Decreasing thresholds; the first is `+∞` (no sample predicted positive).
    pub thresholds: Vec<f64>,
    /// Number of positive samples.
    pub positives: usize,
    /// Number of negative samples.
    pub negatives: usize,
}

impl RocCurve {
    /// Area under the curve by the trapezoidal rule (as `sklearn.metrics.auc`).
    pub fn auc(&self) -> f64 {
        trapezoid(&self.fpr, &self.tpr)
    }

    /// True-positive counts at each point.
    pub fn true_positives(&self) -> Vec<usize> {
        self.tpr
            .iter()
            .map(|t| (t * self.positives as f64).round() as usize)
            .collect()
    }

    /// False-positive counts at each point.
    pub fn false_positives(&self) -> Vec<usize> {
        self.fpr
            .iter()
            .map(|f| (f * self.negatives as f64).round() as usize)
            .collect()
    }
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum()
}

/// Counts (fps, tps, thresholds) at each distinct score, highest score first.
fn binary_clf_curve(labels: &[bool], scores: &[f64]) -> (Vec<usize>, Vec<usize>, Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut fps = Vec::new();
    let mut tps = Vec::new();
    let mut thresholds = Vec::new();
    let (mut tp, mut fp) = (0usize, 0usize);
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = rank + 1 == order.len() || scores[order[rank + 1]] != scores[i];
        if last_of_group {
            fps.push(fp);
            tps.push(tp);
            thresholds.push(scores[i]);
        }
    }
    (fps, tps, thresholds)
}

/// Computes the ROC curve of binary `labels` (true = positive) against `scores` (higher = more
/// positive). Errors on mismatched lengths, non-finite scores or a single class.
pub fn roc_curve(labels: &[bool], scores: &[f64], drop_intermediate: bool) -> Result<RocCurve> {
    let (positives, negatives) = check_binary(labels, scores)?;
    let (mut fps, mut tps, mut thresholds) = binary_clf_curve(labels, scores);
    if drop_intermediate && fps.len() > 2 {
        let n = fps.len();
        let second_diff =
            |v: &[usize], i: usize| v[i + 1] as i64 - 2 * v[i] as i64 + v[i - 1] as i64 != 0;
        let keep: Vec<usize> = (0..n)
            .filter(|&i| i == 0 || i == n - 1 || second_diff(&fps, i) || second_diff(&tps, i))
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thresholds = keep.iter().map(|&i| thresholds[i]).collect();
    }
    let mut fpr = Vec::with_capacity(fps.len() + 1);
    let mut tpr = Vec::with_capacity(tps.len() + 1);
    fpr.push(0.0);
    tpr.push(0.0);
    fpr.extend(fps.iter().map(|&f| f as f64 / negatives as f64));
    tpr.extend(tps.iter().map(|&t| t as f64 / positives as f64));
    let mut th = Vec::with_capacity(thresholds.len() + 1);
    th.push(f64::INFINITY);
    th.extend(thresholds);
    Ok(RocCurve {
        fpr,
        tpr,
        thresholds: th,
        positives,
        negatives,
    })
}

/// ROC AUC (as `sklearn.metrics.roc_auc_score` for binary labels): the probability that a random
/// positive scores above a random negative, ties counting one half. O(n log n).
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    Ok(roc_curve(labels, scores, false)?.auc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EvalError;

    #[test]
    fn sklearn_docstring_example() {
        // sklearn roc_curve docstring: y=[1,1,2,2], scores=[0.1,0.4,0.35,0.8], pos_label=2.
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        let roc = roc_curve(&y, &s, true).unwrap();
        assert_eq!(roc.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(roc.thresholds[1..], [0.8, 0.4, 0.35, 0.1]);
        assert!(roc.thresholds[0].is_infinite());
        assert!((roc.auc() - 0.75).abs() < 1e-15);
    }

    #[test]
    fn drop_intermediate_removes_collinear_points_only() {
        let y = [true, true, true, false, false, false];
        let s = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        let full = roc_curve(&y, &s, false).unwrap();
        let thin = roc_curve(&y, &s, true).unwrap();
        assert_eq!(full.fpr.len(), 7);
        // Kept: 6 (first), 4 (corner), 1 (last).
        assert_eq!(thin.thresholds[1..], [6.0, 4.0, 1.0]);
        assert_eq!(full.auc(), thin.auc());
        assert_eq!(thin.true_positives(), vec![0, 1, 3, 3]);
        assert_eq!(thin.false_positives(), vec![0, 0, 0, 3]);
    }

    #[test]
    fn ties_give_half_credit() {
        let y = [true, false];
        let s = [0.5, 0.5];
        assert_eq!(roc_auc(&y, &s).unwrap(), 0.5);
    }

    #[test]
    fn bad_input_is_typed() {
        assert!(matches!(
            roc_auc(&[true, true], &[0.1, 0.2]),
            Err(EvalError::SingleClass {
                positives: 2,
                negatives: 0
            })
        ));
        assert!(matches!(
            roc_auc(&[true, false], &[0.1, f64::NAN]),
            Err(EvalError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            roc_auc(&[true, false], &[0.1]),
            Err(EvalError::LengthMismatch { .. })
        ));
    }
}
