//! Aggregation of per-fold results of a cross-validation: mean ± sd across folds and pooled
//! out-of-fold statistics.
//!
//! Per fold, the AUC is computed on the test fold and the Youden threshold is chosen on the training
//! fold's predictions and applied to the test fold. Pooled statistics concatenate the out-of-fold
//! predictions of all folds; this assumes the folds' models produce comparable scores (true for
//! probabilities of the same architecture; say so when reporting).

use crate::delong::{delong, CiMethod, ConfidenceInterval, DelongAuc};
use crate::error::{check_same_len, EvalError, Result};
use crate::roc::roc_auc;
use crate::threshold::{metrics_at, youden_threshold, Confusion, ThresholdMetrics, YoudenPoint};
use serde::{Deserialize, Serialize};

/// The predictions of one fold's model on its training and test samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldPredictions {
    /// Labels of the training samples.
    pub train_labels: Vec<bool>,
    /// Scores of the training samples (used only to choose the threshold).
    pub train_scores: Vec<f64>,
    /// Indices of the test samples in the whole data set.
    pub test_indices: Vec<usize>,
    /// Labels of the test samples.
    pub test_labels: Vec<bool>,
    /// Scores of the test samples.
    pub test_scores: Vec<f64>,
}

/// Results on one test fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// Test-fold AUC.
    pub auc: f64,
    /// DeLong 95% CI of the test-fold AUC, when the fold has at least two samples of each class.
    pub auc_ci: Option<ConfidenceInterval>,
    /// Youden point chosen on the training fold.
    pub youden: YoudenPoint,
    /// Metrics of that threshold on the test fold.
    pub test: ThresholdMetrics,
}

/// Mean and sample standard deviation (ddof = 1) of a per-fold statistic, ignoring NaN folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (NaN for fewer than two values).
    pub sd: f64,
    /// Number of folds that contributed.
    pub n: usize,
}

impl MeanSd {
    /// Mean ± sd of the finite values.
    pub fn of(values: &[f64]) -> MeanSd {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        let mean = if n == 0 {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / n as f64
        };
        let sd = if n < 2 {
            f64::NAN
        } else {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        MeanSd { mean, sd, n }
    }
}

/// Summary of a cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    /// Per-fold results.
    pub folds: Vec<FoldResult>,
    /// AUC across folds.
    pub auc: MeanSd,
    /// Accuracy across folds (threshold from the training fold).
    pub accuracy: MeanSd,
    /// Sensitivity across folds.
    pub sensitivity: MeanSd,
    /// Specificity across folds.
    pub specificity: MeanSd,
    /// F1 across folds.
    pub f1: MeanSd,
    /// AUC with DeLong variance of the pooled out-of-fold predictions.
    pub pooled: DelongAuc,
    /// 95% DeLong CI of the pooled AUC.
    pub pooled_ci: ConfidenceInterval,
    /// Metrics of the summed confusion matrices (each fold at its own training threshold; the
    /// `threshold` field is NaN since there is no single threshold).
    pub pooled_metrics: ThresholdMetrics,
}

/// Evaluates every fold and aggregates.
pub fn evaluate_folds(folds: &[FoldPredictions]) -> Result<CvSummary> {
    if folds.is_empty() {
        return Err(EvalError::Empty { what: "folds" });
    }
    let mut results = Vec::with_capacity(folds.len());
    let mut pooled_confusion = Confusion::default();
    let (mut all_labels, mut all_scores) = (Vec::new(), Vec::new());
    for f in folds {
        check_same_len(
            "test_indices",
            f.test_indices.len(),
            "test_labels",
            f.test_labels.len(),
        )?;
        let auc = roc_auc(&f.test_labels, &f.test_scores)?;
        let auc_ci = delong(&f.test_labels, &f.test_scores)
            .ok()
            .and_then(|d| d.ci(0.95, CiMethod::Plain));
        let youden = youden_threshold(&f.train_labels, &f.train_scores)?;
        let test = metrics_at(&f.test_labels, &f.test_scores, youden.threshold)?;
        pooled_confusion = pooled_confusion.add(&test.confusion);
        all_labels.extend_from_slice(&f.test_labels);
        all_scores.extend_from_slice(&f.test_scores);
        results.push(FoldResult {
            auc,
            auc_ci,
            youden,
            test,
        });
    }
    let col = |g: fn(&FoldResult) -> f64| MeanSd::of(&results.iter().map(g).collect::<Vec<_>>());
    let pooled = delong(&all_labels, &all_scores)?;
    let pooled_ci = pooled
        .ci(0.95, CiMethod::Plain)
        .expect("plain CI is always defined");
    Ok(CvSummary {
        auc: col(|r| r.auc),
        accuracy: col(|r| r.test.accuracy),
        sensitivity: col(|r| r.test.sensitivity),
        specificity: col(|r| r.test.specificity),
        f1: col(|r| r.test.f1),
        folds: results,
        pooled,
        pooled_ci,
        pooled_metrics: pooled_confusion.metrics(f64::NAN),
    })
}

/// Places each fold's test scores at their original indices, giving one out-of-fold score per
/// sample (for paired DeLong tests between models evaluated on the same folds). Errors unless the
/// folds' test indices partition `0..n_samples`.
pub fn out_of_fold_scores(n_samples: usize, folds: &[FoldPredictions]) -> Result<Vec<f64>> {
    let mut out = vec![f64::NAN; n_samples];
    let mut seen = vec![false; n_samples];
    for f in folds {
        check_same_len(
            "test_indices",
            f.test_indices.len(),
            "test_scores",
            f.test_scores.len(),
        )?;
        for (&i, &s) in f.test_indices.iter().zip(&f.test_scores) {
            if i >= n_samples || seen[i] {
                return Err(EvalError::InvalidParameter {
                    name: "test_indices",
                    reason: format!("index {i} is out of range or in two test folds"),
                });
            }
            seen[i] = true;
            out[i] = s;
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(EvalError::InvalidParameter {
            name: "test_indices",
            reason: format!("sample {i} is in no test fold"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folds::StratifiedKFold;

    #[test]
    fn mean_sd_ignores_nan() {
        let m = MeanSd::of(&[1.0, f64::NAN, 3.0]);
        assert_eq!(m.mean, 2.0);
        assert!((m.sd - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(m.n, 2);
    }

    #[test]
    fn folds_aggregate_and_pool() {
        let n = 36;
        let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..n)
            .map(|i| ((i * 7) % 10) as f64 / 10.0 + if labels[i] { 0.3 } else { 0.0 })
            .collect();
        let folds = StratifiedKFold::new(3, 5).split(&labels).unwrap();
        let preds: Vec<FoldPredictions> = folds
            .iter()
            .map(|f| FoldPredictions {
                train_labels: f.train.iter().map(|&i| labels[i]).collect(),
                train_scores: f.train.iter().map(|&i| scores[i]).collect(),
                test_indices: f.test.clone(),
                test_labels: f.test.iter().map(|&i| labels[i]).collect(),
                test_scores: f.test.iter().map(|&i| scores[i]).collect(),
            })
            .collect();
        let s = evaluate_folds(&preds).unwrap();
        assert_eq!(s.folds.len(), 3);
        assert_eq!(s.auc.n, 3);
        // One model for every fold: pooled AUC is the whole-sample AUC.
        let whole = roc_auc(&labels, &scores).unwrap();
        assert!((s.pooled.auc - whole).abs() < 1e-12);
        let c = s.pooled_metrics.confusion;
        assert_eq!(c.tp + c.fp + c.tn + c.fn_, n);
        assert_eq!(out_of_fold_scores(n, &preds).unwrap(), scores);
        assert!(out_of_fold_scores(n + 1, &preds).is_err());
    }
}
