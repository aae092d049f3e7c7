//! Stratified bootstrap confidence intervals for the ROC AUC (as pROC's `ci.auc(method =
//! "bootstrap")` with its default `stratified = TRUE`): positives and negatives are resampled with
//! replacement separately, so every replicate keeps the original class counts, and the CI is the
//! percentile interval with linear interpolation (R's `quantile` type 7, numpy's `linear`).
//!
//! Replicates run in parallel with rayon; replicate `r` draws from its own `StdRng` seeded from
//! `(seed, r)`, so the result depends only on the seed and the replicate count, never on the thread
//! count. Values are RNG-specific: they agree with other implementations only statistically.

use crate::delong::{midranks, ConfidenceInterval};
use crate::error::{check_binary, EvalError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of a stratified bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of bootstrap replicates (pROC's default is 2000).
    pub replicates: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Coverage of the interval, e.g. 0.95.
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            replicates: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A bootstrap CI together with the replicate statistics it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapCi {
    /// The AUC of the original sample.
    pub estimate: f64,
    /// The percentile interval.
    pub ci: ConfidenceInterval,
    /// Standard deviation of the replicate AUCs (a bootstrap standard error).
    pub se: f64,
    /// The replicate AUCs, sorted ascending.
    pub replicates: Vec<f64>,
}

/// Percentile of sorted data with linear interpolation (numpy `linear`, R type 7); `q` in [0, 1].
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mann–Whitney AUC of already split positive / negative scores.
fn auc_split(pos: &[f64], neg: &[f64]) -> f64 {
    let mut pooled = Vec::with_capacity(pos.len() + neg.len());
    pooled.extend_from_slice(pos);
    pooled.extend_from_slice(neg);
    let r = midranks(&pooled);
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let sum: f64 = r[..pos.len()].iter().sum();
    (sum - m * (m + 1.0) / 2.0) / (m * n)
}

/// Stratified bootstrap percentile CI of the ROC AUC.
pub fn bootstrap_auc_ci(
    labels: &[bool],
    scores: &[f64],
    config: &BootstrapConfig,
) -> Result<BootstrapCi> {
    check_binary(labels, scores)?;
    if config.replicates < 2 {
        return Err(EvalError::InvalidParameter {
            name: "replicates",
            reason: format!("need at least 2, got {}", config.replicates),
        });
    }
    if !(config.level > 0.0 && config.level < 1.0) {
        return Err(EvalError::InvalidParameter {
            name: "level",
            reason: format!("must lie in (0, 1), got {}", config.level),
        });
    }
    let pos: Vec<f64> = (0..labels.len())
        .filter(|&i| labels[i])
        .map(|i| scores[i])
        .collect();
    let neg: Vec<f64> = (0..labels.len())
        .filter(|&i| !labels[i])
        .map(|i| scores[i])
        .collect();
    let estimate = auc_split(&pos, &neg);
    let mut reps: Vec<f64> = (0..config.replicates)
        .into_par_iter()
        .map_init(
            || (Vec::with_capacity(pos.len()), Vec::with_capacity(neg.len())),
            |(bp, bn), r| {
                let mut rng = StdRng::seed_from_u64(splitmix64(
                    config.seed ^ splitmix64(r as u64 ^ 0xB00_7575),
                ));
                bp.clear();
                bn.clear();
                bp.extend((0..pos.len()).map(|_| pos[rng.random_range(0..pos.len())]));
                bn.extend((0..neg.len()).map(|_| neg[rng.random_range(0..neg.len())]));
                auc_split(bp, bn)
            },
        )
        .collect();
    reps.sort_by(f64::total_cmp);
    let alpha = (1.0 - config.level) / 2.0;
    let mean = reps.iter().sum::<f64>() / reps.len() as f64;
    let se =
        (reps.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (reps.len() - 1) as f64).sqrt();
    Ok(BootstrapCi {
        estimate,
        ci: ConfidenceInterval {
            low: quantile_linear(&reps, alpha),
            high: quantile_linear(&reps, 1.0 - alpha),
            level: config.level,
        },
        se,
        replicates: reps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_numpy_linear() {
        let d = [1.0, 2.0, 3.0, 4.0];
        // np.quantile([1,2,3,4], 0.025) = 1.075 ; 0.975 -> 3.925
        assert!((quantile_linear(&d, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile_linear(&d, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn seeded_and_thread_independent() {
        let labels: Vec<bool> = (0..60).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..60)
            .map(|i| ((i * 37) % 11) as f64 + if i % 3 == 0 { 3.0 } else { 0.0 })
            .collect();
        let cfg = BootstrapConfig {
            replicates: 300,
            seed: 7,
            level: 0.95,
        };
        let a = bootstrap_auc_ci(&labels, &scores, &cfg).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| bootstrap_auc_ci(&labels, &scores, &cfg).unwrap());
        assert_eq!(a, b);
        assert!(a.ci.contains(a.estimate));
        let c = bootstrap_auc_ci(&labels, &scores, &BootstrapConfig { seed: 8, ..cfg }).unwrap();
        assert_ne!(a.replicates, c.replicates);
    }
}
