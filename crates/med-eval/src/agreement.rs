//! How closely one set of numbers follows another: Pearson and Spearman correlation of two score
//! vectors (scipy's `pearsonr` / `spearmanr` statistics) and the coefficient of determination of a
//! multi-output prediction (scikit-learn's `r2_score`, `multioutput="variance_weighted"`).
//!
//! A distillation model is judged by more than its AUC: whether its predictions rank patients like
//! the teacher's or like the student modality's own classifier, and how much of the teacher's
//! embedding it reconstructs. These are the statistics for that.

use crate::delong::midranks;
use crate::error::{check_finite, check_same_len, EvalError, Result};

fn check_pair(a: &[f64], b: &[f64]) -> Result<()> {
    check_same_len("a", a.len(), "b", b.len())?;
    if a.len() < 2 {
        return Err(EvalError::TooFewSamples {
            what: "a correlation",
            class: "paired",
            needed: 2,
            got: a.len(),
        });
    }
    check_finite("a", a)?;
    check_finite("b", b)
}

/// Pearson's correlation coefficient of `a` and `b` (same length, at least two values, finite).
/// A constant input has no correlation: that is an error naming it, not a NaN.
pub fn pearson(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    for (name, s) in [("a", saa), ("b", sbb)] {
        if s <= 0.0 {
            return Err(EvalError::InvalidParameter {
                name,
                reason: "is constant: its correlation is undefined".into(),
            });
        }
    }
    // Clamp the rounding excess of perfectly (anti)correlated inputs.
    Ok((sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation: Pearson's on the midranks, so ties share their average rank as in
/// scipy's `spearmanr`.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    pearson(&midranks(a), &midranks(b))
}

/// Coefficient of determination of `pred` for `truth`, rows of equal width, pooled over outputs
/// with weights proportional to each output's variance (scikit-learn's
/// `r2_score(truth, pred, multioutput="variance_weighted")`): `1 - SS_res / SS_tot` with both sums
/// over all rows and columns, `SS_tot` about each column's mean of `truth`. 0 means no better than
/// predicting each output's mean; it is negative when worse. `truth` must vary in some column.
pub fn r2_score(truth: &[Vec<f64>], pred: &[Vec<f64>]) -> Result<f64> {
    check_same_len("truth", truth.len(), "pred", pred.len())?;
    if truth.len() < 2 {
        return Err(EvalError::TooFewSamples {
            what: "R^2",
            class: "row",
            needed: 2,
            got: truth.len(),
        });
    }
    let width = truth[0].len();
    if width == 0 {
        return Err(EvalError::Empty { what: "truth row" });
    }
    for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
        if t.len() != width || p.len() != width {
            return Err(EvalError::InvalidParameter {
                name: "pred",
                reason: format!(
                    "row {i} has {} truth and {} predicted values; every row needs {width}",
                    t.len(),
                    p.len()
                ),
            });
        }
        check_finite("truth", t)?;
        check_finite("pred", p)?;
    }
    let n = truth.len() as f64;
    let mut mean = vec![0.0; width];
    for t in truth {
        for (m, v) in mean.iter_mut().zip(t) {
            *m += v / n;
        }
    }
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (t, p) in truth.iter().zip(pred) {
        for j in 0..width {
            ss_res += (t[j] - p[j]).powi(2);
            ss_tot += (t[j] - mean[j]).powi(2);
        }
    }
    if ss_tot <= 0.0 {
        return Err(EvalError::InvalidParameter {
            name: "truth",
            reason: "is constant in every column: R^2 is undefined".into(),
        });
    }
    Ok(1.0 - ss_res / ss_tot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_opposite_orders() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[1.0, 10.0, 100.0, 1000.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn r2_is_one_for_truth_zero_for_the_mean() {
        let t = vec![vec![1.0, 0.0], vec![3.0, 2.0], vec![5.0, 1.0]];
        assert!((r2_score(&t, &t).unwrap() - 1.0).abs() < 1e-12);
        let mean = vec![vec![3.0, 1.0]; 3];
        assert!(r2_score(&t, &mean).unwrap().abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]),
            Err(EvalError::InvalidParameter { name: "a", .. })
        ));
        assert!(matches!(
            spearman(&[1.0], &[1.0]),
            Err(EvalError::TooFewSamples { .. })
        ));
        assert!(matches!(
            pearson(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(EvalError::NonFinite { what: "a", .. })
        ));
        assert!(matches!(
            pearson(&[1.0, 2.0], &[1.0, 2.0, 3.0]),
            Err(EvalError::LengthMismatch { .. })
        ));
        let t = vec![vec![1.0, 2.0], vec![1.0, 2.0]];
        assert!(matches!(
            r2_score(&t, &t),
            Err(EvalError::InvalidParameter { name: "truth", .. })
        ));
        assert!(matches!(
            r2_score(&t, &[vec![1.0], vec![1.0, 2.0]]),
            Err(EvalError::InvalidParameter { name: "pred", .. })
        ));
    }
}
