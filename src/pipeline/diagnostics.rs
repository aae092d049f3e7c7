//! Why the prior scores what it does: measurements beside its AUC that separate the three usual
//! causes (what the X-ray embedding carries, how well the prior learnt the mapping, how noisy its
//! sampling is). Computed on every fold's test patients and pooled, on synthetic or real data alike.
//!
//! - **Conditional fidelity**: R^2 of the prior's mean sample (over the draws per X-ray) for the
//!   true CTPA embedding. 0 means no better than predicting the average CTPA embedding.
//! - **Linear reference**: a ridge regression from the X-ray embedding to the CTPA embedding, fitted on
//!   the training fold and classified by the same frozen head: what the condition carries about the
//!   CTPA embedding, linearly. A prior far below it is under-trained; one level with it has learnt
//!   what the condition allows.
//! - **Sampling noise**: the AUC of one draw per X-ray against the mean over all draws.
//! - **What it follows**: Spearman correlation of the prior's out-of-fold probabilities with the
//!   CTPA-only (teacher) and CXR-only classifiers'.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::error::{PipelineError, Result};

/// Ridge penalty of the linear reference, per training row on standardised inputs (`lambda * n` is
/// added to the Gram matrix's diagonal). 1.0 is strong: with ~200 rows of 64-d embeddings, weaker
/// penalties overfit the training fold (lower test R^2) on the synthetic cohort.
pub(crate) const RIDGE_LAMBDA: f64 = 1.0;

/// A ridge regression from standardised inputs to raw outputs (with an unpenalised intercept).
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeMap {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `(d + 1) x e`, the intercept in the last row.
    weights: Vec<Vec<f64>>,
}

fn rows_of(t: &Tensor, what: &str) -> Result<Vec<Vec<f64>>> {
    let rows = t.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    if let Some(i) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(PipelineError::Data(format!(
            "{what}: row {i} has a non-finite value"
        )));
    }
    Ok(rows)
}

impl RidgeMap {
    /// Fits `y ~ x` on rows `(n, d)` and `(n, e)` with penalty `lambda` (the pipeline uses `RIDGE_LAMBDA`).
    #[allow(clippy::needless_range_loop)]
    pub fn fit(x: &Tensor, y: &Tensor, lambda: f64) -> Result<Self> {
        let xs = rows_of(x, "ridge inputs")?;
        let ys = rows_of(y, "ridge targets")?;
        let n = xs.len();
        if n < 2 || ys.len() != n {
            return Err(PipelineError::Data(format!(
                "ridge map needs at least 2 paired rows, got {n} inputs and {} targets",
                ys.len()
            )));
        }
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(PipelineError::config("ridge lambda", "must be positive"));
        }
        let d = xs[0].len();
        let e = ys[0].len();
        let nf = n as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| xs.iter().map(|r| r[j]).sum::<f64>() / nf)
            .collect();
        // A constant input column gets scale 1: it is then all zeros, and the penalty keeps the
        // system solvable.
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = xs.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / nf;
                if v > 0.0 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let k = d + 1;
        let mut a = vec![vec![0.0; k]; k];
        let mut b = vec![vec![0.0; e]; k];
        let mut z = vec![1.0; k];
        for (xr, yr) in xs.iter().zip(&ys) {
            for j in 0..d {
                z[j] = (xr[j] - mean[j]) / scale[j];
            }
            for p in 0..k {
                for q in p..k {
                    a[p][q] += z[p] * z[q];
                }
                for (bp, yv) in b[p].iter_mut().zip(yr) {
                    *bp += z[p] * yv;
                }
            }
        }
        for p in 0..k {
            for q in 0..p {
                a[p][q] = a[q][p];
            }
        }
        for (p, row) in a.iter_mut().enumerate().take(d) {
            row[p] += lambda * nf;
        }
        let weights = cholesky_solve(a, b)?;
        Ok(Self {
            mean,
            scale,
            weights,
        })
    }

    /// Predictions for rows `(m, d)`, with `x`'s dtype and device.
    #[allow(clippy::needless_range_loop)]
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let xs = rows_of(x, "ridge inputs")?;
        let d = self.mean.len();
        let e = self.weights[0].len();
        let mut out = Vec::with_capacity(xs.len() * e);
        for r in &xs {
            if r.len() != d {
                return Err(PipelineError::Data(format!(
                    "ridge map fitted on {d} inputs, given {}",
                    r.len()
                )));
            }
            for c in 0..e {
                let mut v = self.weights[d][c];
                for j in 0..d {
                    v += (r[j] - self.mean[j]) / self.scale[j] * self.weights[j][c];
                }
                out.push(v as f32);
            }
        }
        Ok(Tensor::from_vec(out, (xs.len(), e), x.device())?.to_dtype(x.dtype())?)
    }
}

/// Solves `a w = b` for a symmetric positive-definite `a` by Cholesky. (Here and in [`RidgeMap`],
/// index loops are kept: they read as the matrix formulas they compute.)
#[allow(clippy::needless_range_loop)]
fn cholesky_solve(mut a: Vec<Vec<f64>>, mut b: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>> {
    let k = a.len();
    for j in 0..k {
        let mut s = a[j][j];
        for p in 0..j {
            s -= a[j][p] * a[j][p];
        }
        if !(s > 0.0 && s.is_finite()) {
            return Err(PipelineError::Data(
                "ridge map: the penalised Gram matrix is not positive definite".into(),
            ));
        }
        let l = s.sqrt();
        a[j][j] = l;
        for i in j + 1..k {
            let mut s = a[i][j];
            for p in 0..j {
                s -= a[i][p] * a[j][p];
            }
            a[i][j] = s / l;
        }
    }
    let e = b[0].len();
    for c in 0..e {
        for i in 0..k {
            let mut s = b[i][c];
            for p in 0..i {
                s -= a[i][p] * b[p][c];
            }
            b[i][c] = s / a[i][i];
        }
        for i in (0..k).rev() {
            let mut s = b[i][c];
            for p in i + 1..k {
                s -= a[p][i] * b[p][c];
            }
            b[i][c] = s / a[i][i];
        }
    }
    Ok(b)
}

/// R^2 of `pred` for `truth` (rows), scikit-learn's variance-weighted form.
pub(crate) fn embedding_r2(truth: &Tensor, pred: &Tensor) -> Result<f64> {
    Ok(med_eval::agreement::r2_score(
        &rows_of(truth, "true embeddings")?,
        &rows_of(pred, "predicted embeddings")?,
    )?)
}

/// One fold's diagnostics (cached with the fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldDiagnostics {
    /// R^2 of the prior's mean sample for the true CTPA embedding, test patients.
    pub prior_r2: f64,
    /// R^2 of the ridge map, test patients.
    pub linear_r2: f64,
    /// Teacher probabilities of the ridge map's embeddings, test patients.
    pub linear_test: Vec<f64>,
    /// Teacher probabilities of the prior's first draw alone, test patients.
    pub single_draw_test: Vec<f64>,
}

/// The pooled diagnostics of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Mean over folds of [`FoldDiagnostics::prior_r2`].
    pub prior_r2: f64,
    /// Mean over folds of [`FoldDiagnostics::linear_r2`].
    pub linear_r2: f64,
    /// Pooled out-of-fold AUC of the ridge map classified by the teacher head.
    pub linear_auc: f64,
    /// Pooled out-of-fold AUC of the prior with one draw per X-ray.
    pub single_draw_auc: f64,
    /// Draws per X-ray of the prior's reported AUC.
    pub samples: usize,
    /// Spearman correlation of the prior's out-of-fold probabilities with the CTPA-only classifier's.
    pub spearman_prior_ctpa: f64,
    /// Spearman correlation of the prior's out-of-fold probabilities with the CXR-only classifier's.
    pub spearman_prior_cxr: f64,
    /// Spearman correlation of the CTPA-only and CXR-only classifiers' probabilities.
    pub spearman_ctpa_cxr: f64,
}

/// Out-of-fold scores in patient order from each fold's test scores (med-eval checks that every
/// patient is in exactly one test fold).
fn pooled(n: usize, folds: &[med_eval::Fold], per_fold: &[&[f64]]) -> Result<Vec<f64>> {
    let preds: Vec<med_eval::FoldPredictions> = folds
        .iter()
        .zip(per_fold)
        .map(|(f, s)| med_eval::FoldPredictions {
            train_labels: Vec::new(),
            train_scores: Vec::new(),
            test_indices: f.test.clone(),
            test_labels: Vec::new(),
            test_scores: s.to_vec(),
        })
        .collect();
    Ok(med_eval::out_of_fold_scores(n, &preds)?)
}

/// Pools the folds' diagnostics; `prior`, `ctpa` and `cxr` are the models' out-of-fold
/// probabilities in patient order.
pub fn summarize(
    labels: &[bool],
    folds: &[med_eval::Fold],
    per_fold: &[FoldDiagnostics],
    samples: usize,
    prior: &[f64],
    ctpa: &[f64],
    cxr: &[f64],
) -> Result<Diagnostics> {
    let n = labels.len();
    let mean = |f: &dyn Fn(&FoldDiagnostics) -> f64| {
        per_fold.iter().map(f).sum::<f64>() / per_fold.len().max(1) as f64
    };
    let linear: Vec<&[f64]> = per_fold.iter().map(|d| d.linear_test.as_slice()).collect();
    let single: Vec<&[f64]> = per_fold
        .iter()
        .map(|d| d.single_draw_test.as_slice())
        .collect();
    use med_eval::agreement::spearman;
    Ok(Diagnostics {
        prior_r2: mean(&|d| d.prior_r2),
        linear_r2: mean(&|d| d.linear_r2),
        linear_auc: med_eval::roc_auc(labels, &pooled(n, folds, &linear)?)?,
        single_draw_auc: med_eval::roc_auc(labels, &pooled(n, folds, &single)?)?,
        samples,
        spearman_prior_ctpa: spearman(prior, ctpa)?,
        spearman_prior_cxr: spearman(prior, cxr)?,
        spearman_ctpa_cxr: spearman(ctpa, cxr)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ridge_recovers_a_linear_map_and_shrinks_with_the_penalty() {
        let dev = Device::Cpu;
        // y = 2 x0 - x1 + 3 on 50 rows (no noise).
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..50 {
            let (a, b) = ((i as f32 * 0.37).sin(), (i as f32 * 0.11).cos());
            xs.extend([a, b]);
            ys.push(2.0 * a - b + 3.0);
        }
        let x = Tensor::from_vec(xs, (50, 2), &dev).unwrap();
        let y = Tensor::from_vec(ys, (50, 1), &dev).unwrap();
        let tight = RidgeMap::fit(&x, &y, 1e-9).unwrap();
        let r2 = embedding_r2(&y, &tight.predict(&x).unwrap()).unwrap();
        assert!(r2 > 0.999_99, "{r2}");
        let loose = RidgeMap::fit(&x, &y, 10.0).unwrap();
        let r2_loose = embedding_r2(&y, &loose.predict(&x).unwrap()).unwrap();
        assert!(r2_loose < r2 && r2_loose > 0.0, "{r2_loose}");
        // A huge penalty leaves the intercept: the training mean of y.
        let flat = RidgeMap::fit(&x, &y, 1e9).unwrap().predict(&x).unwrap();
        let mean_y = y.mean_all().unwrap().to_scalar::<f32>().unwrap();
        let v = flat.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|p| (p - mean_y).abs() < 1e-3));
    }

    #[test]
    fn ridge_rejects_bad_input() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f32, f32::NAN], [0.0, 1.0]], &dev).unwrap();
        let y = Tensor::new(&[[1.0f32], [2.0]], &dev).unwrap();
        let e = RidgeMap::fit(&x, &y, 1.0).unwrap_err().to_string();
        assert!(e.contains("ridge inputs") && e.contains("row 0"), "{e}");
        let one = Tensor::new(&[[1.0f32, 2.0]], &dev).unwrap();
        assert!(RidgeMap::fit(&one, &y.narrow(0, 0, 1).unwrap(), 1.0).is_err());
    }
}
