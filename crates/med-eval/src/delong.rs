//! DeLong's variance of the ROC AUC, its confidence intervals, and the paired DeLong test, by the
//! fast O(n log n) midrank algorithm of Sun & Xu (2014, IEEE SPL 21(11):1389).
//!
//! With m positives X and n negatives Y, and midranks (1-based, averaged over ties) `T_Z` in the
//! pooled sample, `T_X` among positives and `T_Y` among negatives:
//! - `AUC = Σ T_Z(X_i)/(mn) − (m+1)/(2n)`;
//! - the structural components are `V10_i = (T_Z(X_i) − T_X(X_i))/n` and
//!   `V01_j = 1 − (T_Z(Y_j) − T_Y(Y_j))/m`;
//! - `S = cov(V10)/m + cov(V01)/n` (sample covariances, ddof = 1, across models).
//!
//! The CI is pROC's `ci.auc(method = "delong")`: `AUC ± z·√S`, clipped to [0, 1]; a logit CI is
//! offered too. The paired test is pROC's `roc.test(method = "delong", paired = TRUE)`.

use crate::error::{check_binary, check_finite, check_same_len, EvalError, Result};
use crate::normal;
use serde::{Deserialize, Serialize};

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Coverage, e.g. 0.95.
    pub level: f64,
}

impl ConfidenceInterval {
    /// Whether `x` lies within the interval (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// Width `high − low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// How a DeLong confidence interval is built from the AUC and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CiMethod {
    /// `AUC ± z·SE`, clipped to [0, 1] (pROC's default).
    Plain,
    /// `expit(logit(AUC) ± z·SE/(AUC(1−AUC)))` (Pepe); undefined at AUC ∈ {0, 1}.
    Logit,
}

/// Midranks (1-based ranks averaged over ties) of `values`.
pub fn midranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the average 1-based rank.
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// DeLong structural components ("placements") of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placements {
    /// `V10_i`: for each positive (in input order), the fraction of negatives it beats (ties ½).
    pub v10: Vec<f64>,
    /// `V01_j`: for each negative (in input order), the fraction of positives that beat it (ties ½).
    pub v01: Vec<f64>,
}

impl Placements {
    /// AUC, the mean of the positive placements.
    pub fn auc(&self) -> f64 {
        self.v10.iter().sum::<f64>() / self.v10.len() as f64
    }
}

/// Computes the placements of one score vector in O(n log n).
pub fn placements(labels: &[bool], scores: &[f64]) -> Result<Placements> {
    let (m, n) = check_binary(labels, scores)?;
    Ok(placements_unchecked(labels, scores, m, n))
}

fn placements_unchecked(labels: &[bool], scores: &[f64], m: usize, n: usize) -> Placements {
    let pos: Vec<f64> = labels
        .iter()
        .zip(scores)
        .filter(|(l, _)| **l)
        .map(|(_, s)| *s)
        .collect();
    let neg: Vec<f64> = labels
        .iter()
        .zip(scores)
        .filter(|(l, _)| !**l)
        .map(|(_, s)| *s)
        .collect();
    let tx = midranks(&pos);
    let ty = midranks(&neg);
    let mut pooled = pos.clone();
    pooled.extend_from_slice(&neg);
    let tz = midranks(&pooled);
    let v10 = (0..m).map(|i| (tz[i] - tx[i]) / n as f64).collect();
    let v01 = (0..n)
        .map(|j| 1.0 - (tz[m + j] - ty[j]) / m as f64)
        .collect();
    Placements { v10, v01 }
}

/// AUC with its DeLong variance, for one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelongAuc {
    /// Area under the ROC curve.
    pub auc: f64,
    /// DeLong variance of the AUC estimate.
    pub variance: f64,
    /// Number of positives.
    pub positives: usize,
    /// Number of negatives.
    pub negatives: usize,
}

impl DelongAuc {
    /// Standard error, `√variance`.
    pub fn se(&self) -> f64 {
        self.variance.sqrt()
    }

    /// Confidence interval at `level` (e.g. 0.95). `None` for a logit CI at AUC 0 or 1, where it is
    /// undefined.
    pub fn ci(&self, level: f64, method: CiMethod) -> Option<ConfidenceInterval> {
        auc_ci(self.auc, self.variance, level, method)
    }
}

pub(crate) fn auc_ci(
    auc: f64,
    variance: f64,
    level: f64,
    method: CiMethod,
) -> Option<ConfidenceInterval> {
    let z = normal::quantile(0.5 + level / 2.0);
    let se = variance.sqrt();
    match method {
        CiMethod::Plain => Some(ConfidenceInterval {
            low: (auc - z * se).max(0.0),
            high: (auc + z * se).min(1.0),
            level,
        }),
        CiMethod::Logit => {
            if auc <= 0.0 || auc >= 1.0 {
                return None;
            }
            let logit = (auc / (1.0 - auc)).ln();
            let half = z * se / (auc * (1.0 - auc));
            let expit = |x: f64| 1.0 / (1.0 + (-x).exp());
            Some(ConfidenceInterval {
                low: expit(logit - half),
                high: expit(logit + half),
                level,
            })
        }
    }
}

fn check_delong_counts(m: usize, n: usize) -> Result<()> {
    if m < 2 {
        return Err(EvalError::TooFewSamples {
            what: "DeLong variance",
            class: "positive",
            needed: 2,
            got: m,
        });
    }
    if n < 2 {
        return Err(EvalError::TooFewSamples {
            what: "DeLong variance",
            class: "negative",
            needed: 2,
            got: n,
        });
    }
    Ok(())
}

/// AUC and DeLong variance of one model. Needs at least two samples of each class (the variance
/// uses sample covariances).
pub fn delong(labels: &[bool], scores: &[f64]) -> Result<DelongAuc> {
    let cov = delong_covariance(labels, &[scores])?;
    Ok(DelongAuc {
        auc: cov.aucs[0],
        variance: cov.covariance[0][0],
        positives: cov.positives,
        negatives: cov.negatives,
    })
}

/// AUCs of k models scored on the same samples, with their k×k DeLong covariance matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelongCovariance {
    /// AUC of each model.
    pub aucs: Vec<f64>,
    /// `S = S10/m + S01/n`, row-major k×k.
    pub covariance: Vec<Vec<f64>>,
    /// Number of positives.
    pub positives: usize,
    /// Number of negatives.
    pub negatives: usize,
}

fn sample_cov(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1.0)
}

/// AUCs and DeLong covariance of several models on the same labelled samples.
pub fn delong_covariance(labels: &[bool], models: &[&[f64]]) -> Result<DelongCovariance> {
    if models.is_empty() {
        return Err(EvalError::Empty { what: "models" });
    }
    let mut counts = (0, 0);
    for scores in models {
        check_same_len("labels", labels.len(), "scores", scores.len())?;
        check_finite("scores", scores)?;
        counts = check_binary(labels, scores)?;
    }
    let (m, n) = counts;
    check_delong_counts(m, n)?;
    let pl: Vec<Placements> = models
        .iter()
        .map(|s| placements_unchecked(labels, s, m, n))
        .collect();
    let k = models.len();
    let mut covariance = vec![vec![0.0; k]; k];
    for a in 0..k {
        for b in a..k {
            let s = sample_cov(&pl[a].v10, &pl[b].v10) / m as f64
                + sample_cov(&pl[a].v01, &pl[b].v01) / n as f64;
            covariance[a][b] = s;
            covariance[b][a] = s;
        }
    }
    Ok(DelongCovariance {
        aucs: pl.iter().map(Placements::auc).collect(),
        covariance,
        positives: m,
        negatives: n,
    })
}

/// Result of the paired DeLong test of two correlated ROC curves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelongTest {
    /// AUC of model a.
    pub auc_a: f64,
    /// AUC of model b.
    pub auc_b: f64,
    /// `Var(A_a − A_b) = S_aa + S_bb − 2 S_ab`.
    pub variance_diff: f64,
    /// `z = (A_a − A_b)/√Var`; 0 when both are 0 (as pROC).
    pub z: f64,
    /// Two-sided p-value `2Φ(−|z|)`.
    pub p_value: f64,
    /// 95% CI of `A_a − A_b`.
    pub diff_ci: ConfidenceInterval,
}

/// Paired DeLong test: are the AUCs of two models scored on the same samples different?
pub fn delong_test(labels: &[bool], scores_a: &[f64], scores_b: &[f64]) -> Result<DelongTest> {
    let cov = delong_covariance(labels, &[scores_a, scores_b])?;
    test_from_covariance(&cov, 0, 1)
}

/// The paired test between models `a` and `b` of a covariance computed by [`delong_covariance`].
/// Errors if `a` or `b` is not a model index of `cov`.
pub fn test_from_covariance(cov: &DelongCovariance, a: usize, b: usize) -> Result<DelongTest> {
    let k = cov.aucs.len();
    if a >= k || b >= k || cov.covariance.len() != k {
        return Err(EvalError::InvalidParameter {
            name: "model index",
            reason: format!("models {a} and {b} requested from a covariance of {k} models"),
        });
    }
    let s = &cov.covariance;
    let diff = cov.aucs[a] - cov.aucs[b];
    // Rounding can leave a tiny negative variance when the two models are (nearly) identical.
    let var = (s[a][a] + s[b][b] - 2.0 * s[a][b]).max(0.0);
    let z = if var == 0.0 {
        if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        }
    } else {
        diff / var.sqrt()
    };
    let zq = normal::quantile(0.975);
    Ok(DelongTest {
        auc_a: cov.aucs[a],
        auc_b: cov.aucs[b],
        variance_diff: var,
        z,
        p_value: normal::two_sided_p(z),
        diff_ci: ConfidenceInterval {
            low: diff - zq * var.sqrt(),
            high: diff + zq * var.sqrt(),
            level: 0.95,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O(mn) placements straight from the definition.
    fn brute(labels: &[bool], s: &[f64]) -> Placements {
        let pos: Vec<f64> = (0..s.len()).filter(|&i| labels[i]).map(|i| s[i]).collect();
        let neg: Vec<f64> = (0..s.len()).filter(|&i| !labels[i]).map(|i| s[i]).collect();
        let psi = |x: f64, y: f64| {
            if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            }
        };
        Placements {
            v10: pos
                .iter()
                .map(|&x| neg.iter().map(|&y| psi(x, y)).sum::<f64>() / neg.len() as f64)
                .collect(),
            v01: neg
                .iter()
                .map(|&y| pos.iter().map(|&x| psi(x, y)).sum::<f64>() / pos.len() as f64)
                .collect(),
        }
    }

    #[test]
    fn midranks_average_ties() {
        assert_eq!(midranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn fast_placements_equal_brute_force() {
        let labels = [true, false, true, true, false, false, true, false, false];
        let s = [0.9, 0.3, 0.3, 0.7, 0.7, 0.1, 0.5, 0.5, 0.2];
        let fast = placements(&labels, &s).unwrap();
        let slow = brute(&labels, &s);
        for (a, b) in fast.v10.iter().zip(&slow.v10) {
            assert!((a - b).abs() < 1e-15);
        }
        for (a, b) in fast.v01.iter().zip(&slow.v01) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn near_perfect_hand_check() {
        // Reference table: near_perfect has V10 = nine 1s and one 0.9 → variance 2e-4 in total.
        let mut labels = vec![true; 10];
        labels.extend(vec![false; 10]);
        let mut s: Vec<f64> = (0..10).map(|i| 10.0 + i as f64).collect();
        s[0] = 0.85; // one positive below exactly one negative (0.9)
        s.extend((0..10).map(|i| i as f64 * 0.1));
        let d = delong(&labels, &s).unwrap();
        assert!((d.auc - 0.99).abs() < 1e-15);
        assert!((d.variance - 2e-4).abs() < 1e-15);
        let ci = d.ci(0.95, CiMethod::Plain).unwrap();
        assert!((ci.low - 0.96228).abs() < 1e-5);
        assert_eq!(ci.high, 1.0);
        // kd-eval-reference.md: logit CI [0.85758, 0.99939].
        let lg = d.ci(0.95, CiMethod::Logit).unwrap();
        assert!((lg.low - 0.85758).abs() < 1e-5 && (lg.high - 0.99939).abs() < 1e-5);
    }

    #[test]
    fn identical_models_give_z0_p1() {
        let labels = [true, false, true, false];
        let s = [0.9, 0.1, 0.8, 0.2];
        let t = delong_test(&labels, &s, &s).unwrap();
        assert_eq!(t.z, 0.0);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn too_few_for_variance() {
        let r = delong(&[true, false, false], &[0.9, 0.1, 0.2]);
        assert!(matches!(
            r,
            Err(EvalError::TooFewSamples {
                class: "positive",
                ..
            })
        ));
    }
}
