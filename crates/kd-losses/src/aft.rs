//! AFT-KD: attention and feature transfer (Yang, Yu, Sheng and Yang, Sci Rep 13:18369, 2023),
//! reconstructed for 1-D embeddings.
//!
//! **Unverified reconstruction.** No public code was found and only the paper's abstract could be
//! read. Its verified ingredients are: transformation structures that turn intermediate features
//! into attention-and-feature blocks (AFBs), carrying reasoning-process (attention) and
//! reasoning-result (feature) information; block operations that align teacher and student
//! cheaply; and a loss weighting that adapts to each loss's optimisation rate. Everything below
//! instantiates those ingredients for one embedding vector per study.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Linear, VarMap};
use serde::{Deserialize, Serialize};

use crate::objective::{LossTerms, Objective, Views};
use crate::{validate, Error, Result};

/// Hyper-parameters of [`AftKd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AftKdConfig {
    /// Student embedding size.
    pub student_dim: usize,
    /// Teacher embedding size; must be divisible by `blocks`.
    pub teacher_dim: usize,
    /// Number of blocks the teacher-sized vectors are split into (default 8: 8 x 64 for 512).
    pub blocks: usize,
    /// Base weight of the attention term (default 1). Attention transfer's `beta = 1000` does not
    /// carry over: it compensates for averaging over `H x W` spatial positions, here there are
    /// only `blocks` of them.
    pub attention_weight: f64,
    /// Base weight of the feature term (default 1).
    pub feature_weight: f64,
    /// Adapt the two weights each epoch to the terms' rates of decrease (default true).
    pub adaptive: bool,
    /// Temperature of the adaptive weighting (default 2, as in Dynamic Weight Average).
    pub adaptive_temperature: f64,
}

impl AftKdConfig {
    /// The defaults for the given embedding sizes.
    pub fn new(student_dim: usize, teacher_dim: usize) -> Self {
        Self {
            student_dim,
            teacher_dim,
            blocks: 8,
            attention_weight: 1.0,
            feature_weight: 1.0,
            adaptive: true,
            adaptive_temperature: 2.0,
        }
    }
}

/// The AFT-KD objective and its trainable transformation layers.
///
/// With `n` blocks of `c = d_t / n` features, for a `[batch, d_t]` vector `f` viewed as
/// `[batch, n, c]`:
/// - attention block: `a(f) = normalize_n(mean_c f^2)`, attention transfer's activation map
///   (Zagoruyko and Komodakis, RepDistiller `Attention` with p = 2) with the blocks in place of
///   spatial positions;
/// - feature block: each block L2-normalised, `phi(f)_b / |phi(f)_b|`.
///
/// The student side goes through two trainable linear transformations `d_s -> d_t` (`att_proj`,
/// `feat_proj`), the "transformation structures"; the teacher side is used as is. Terms:
/// `L_att = mean_{i,b} (a(att_proj(e_s))_b - a(e_t)_b)^2` and
/// `L_feat = mean_{i,b} |feat_b(feat_proj(e_s)) - feat_b(e_t)|^2`.
///
/// Adaptive weighting, reconstructed as Dynamic Weight Average (Liu et al. 2019), which weights by
/// exactly the "optimisation rate" the abstract names: after every epoch `r_k = L_k(t-1) / L_k(t-2)`
/// and `w_k = K exp(r_k / tau) / sum_j exp(r_j / tau)` (K = 2), with `w = 1` for the first two
/// epochs; a term that decays slowly gets more weight.
pub struct AftKd {
    config: AftKdConfig,
    map: VarMap,
    att_proj: Linear,
    feat_proj: Linear,
    weights: [f64; 2],
    history: Vec<[f64; 2]>,
}

impl std::fmt::Debug for AftKd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AftKd")
            .field("config", &self.config)
            .field("weights", &self.weights)
            .finish()
    }
}

/// `[batch, n]` attention map of `[batch, n * c]` features.
fn attention(f: &Tensor, n: usize) -> Result<Tensor> {
    let (b, d) = f.dims2()?;
    let a = f.reshape((b, n, d / n))?.sqr()?.mean(D::Minus1)?;
    let norm = a.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    Ok(a.broadcast_div(&norm)?)
}

/// `[batch, n, c]` per-block L2-normalised features.
fn feature_blocks(f: &Tensor, n: usize) -> Result<Tensor> {
    let (b, d) = f.dims2()?;
    let x = f.reshape((b, n, d / n))?;
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

impl AftKd {
    /// Builds the transformation layers, initialised reproducibly from `seed`.
    pub fn new(config: AftKdConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        if config.blocks == 0 || config.teacher_dim % config.blocks != 0 {
            return Err(Error::Config {
                name: "blocks",
                reason: format!(
                    "must divide teacher_dim {} and be > 0, got {}",
                    config.teacher_dim, config.blocks
                ),
            });
        }
        if config.student_dim == 0 {
            return Err(Error::Config {
                name: "student_dim",
                reason: "must be > 0".into(),
            });
        }
        validate::non_negative("attention_weight", config.attention_weight)?;
        validate::non_negative("feature_weight", config.feature_weight)?;
        validate::positive("adaptive_temperature", config.adaptive_temperature)?;
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, dtype, device).pp("aft");
        let att_proj =
            candle_nn::linear(config.student_dim, config.teacher_dim, vb.pp("att_proj"))?;
        let feat_proj =
            candle_nn::linear(config.student_dim, config.teacher_dim, vb.pp("feat_proj"))?;
        Ok(Self {
            config,
            map,
            att_proj,
            feat_proj,
            weights: [1.0, 1.0],
            history: Vec::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AftKdConfig {
        &self.config
    }

    /// The variables of the transformation layers (for checkpoints).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// The current adaptive weights `[w_att, w_feat]`.
    pub fn adaptive_weights(&self) -> [f64; 2] {
        self.weights
    }

    /// Records one epoch's mean attention and feature losses and updates the adaptive weights.
    pub fn record_epoch(&mut self, attention: f64, feature: f64) {
        self.history.push([attention, feature]);
        if !self.config.adaptive || self.history.len() < 2 {
            return;
        }
        let n = self.history.len();
        let (prev, last) = (self.history[n - 2], self.history[n - 1]);
        let tau = self.config.adaptive_temperature;
        let rates: Vec<f64> = (0..2)
            .map(|k| {
                if prev[k] > 0.0 && last[k].is_finite() {
                    last[k] / prev[k]
                } else {
                    1.0
                }
            })
            .collect();
        let m = rates.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = rates.iter().map(|r| ((r - m) / tau).exp()).collect();
        let s: f64 = e.iter().sum();
        self.weights = [2.0 * e[0] / s, 2.0 * e[1] / s];
    }

    /// The attention and feature terms, unweighted, for student `[batch, d_s]` and teacher
    /// `[batch, d_t]` embeddings.
    pub fn terms(&self, student: &Tensor, teacher: &Tensor) -> Result<(Tensor, Tensor)> {
        const W: &str = "aft_kd";
        let (b, ds) = validate::matrix(W, "student", student)?;
        let (bt, dt) = validate::matrix(W, "teacher", teacher)?;
        if b != bt || ds != self.config.student_dim || dt != self.config.teacher_dim {
            return Err(Error::ShapeMismatch {
                what: W,
                left: "student",
                left_shape: student.dims().to_vec(),
                right: "teacher",
                right_shape: teacher.dims().to_vec(),
            });
        }
        validate::finite(W, "student", student)?;
        validate::finite(W, "teacher", teacher)?;
        let n = self.config.blocks;
        let teacher = teacher.detach();
        let a_s = attention(&self.att_proj.forward(student)?, n)?;
        let a_t = attention(&teacher, n)?;
        let l_att = (a_s - a_t)?.sqr()?.mean_all()?;
        let f_s = feature_blocks(&self.feat_proj.forward(student)?, n)?;
        let f_t = feature_blocks(&teacher, n)?;
        let l_feat = (f_s - f_t)?.sqr()?.sum(D::Minus1)?.mean_all()?;
        Ok((l_att, l_feat))
    }

    /// The weighted loss.
    pub fn forward(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let (a, f) = self.terms(student, teacher)?;
        self.combine(&a, &f)
    }

    fn combine(&self, a: &Tensor, f: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        Ok((a.affine(c.attention_weight * self.weights[0], 0.0)?
            + f.affine(c.feature_weight * self.weights[1], 0.0)?)?)
    }
}

impl Objective for AftKd {
    fn name(&self) -> String {
        "aft_kd".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let (a, f) = self.terms(v.student_embedding, v.teacher_embedding)?;
        Ok(LossTerms {
            total: self.combine(&a, &f)?,
            parts: vec![("attention".into(), a), ("feature".into(), f)],
        })
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
    }
    fn end_epoch(&mut self, part_means: &[(String, f64)]) {
        let get = |k: &str| part_means.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        if let (Some(a), Some(f)) = (get("attention"), get("feature")) {
            self.record_epoch(a, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};

    fn s(x: &Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }

    fn aft(ds: usize, dt: usize, blocks: usize) -> AftKd {
        let c = AftKdConfig {
            blocks,
            ..AftKdConfig::new(ds, dt)
        };
        AftKd::new(c, 1, DType::F64, &Device::Cpu).unwrap()
    }

    #[test]
    fn hand_computed_blocks() {
        let f = Tensor::new(&[[1.0f64, 1.0, 2.0, 2.0]], &Device::Cpu).unwrap();
        let a = attention(&f, 2).unwrap().to_vec2::<f64>().unwrap();
        let r = 17f64.sqrt();
        assert!((a[0][0] - 1.0 / r).abs() < 1e-15 && (a[0][1] - 4.0 / r).abs() < 1e-15);
        let fb = feature_blocks(&f, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for v in fb {
            assert!((v - 0.5f64.sqrt()).abs() < 1e-15);
        }
        // With identity transformations a student equal to the teacher costs nothing.
        let k = aft(4, 4, 2);
        let eye = Tensor::eye(4, DType::F64, &Device::Cpu).unwrap();
        for (name, var) in cmkd_train::sorted_vars(k.var_map()) {
            let v = if name.ends_with("weight") {
                eye.clone()
            } else {
                var.as_tensor().zeros_like().unwrap()
            };
            var.set(&v).unwrap();
        }
        let e = randn(3, 5, 4, 1.0);
        assert!(s(&k.forward(&e, &e).unwrap()).abs() < 1e-24);
        assert!(s(&k.forward(&e, &randn(4, 5, 4, 1.0)).unwrap()) > 0.01);
    }

    #[test]
    fn adaptive_weights_follow_rates() {
        let mut k = aft(3, 4, 2);
        k.record_epoch(1.0, 1.0);
        assert_eq!(k.adaptive_weights(), [1.0, 1.0]);
        k.record_epoch(0.5, 1.0);
        // Rates 0.5 and 1.0, tau = 2: the stalled feature term gets the larger weight.
        let (e0, e1) = (0.25f64.exp(), 0.5f64.exp());
        let w = k.adaptive_weights();
        assert!((w[0] - 2.0 * e0 / (e0 + e1)).abs() < 1e-12);
        assert!((w[1] - 2.0 * e1 / (e0 + e1)).abs() < 1e-12);
        assert!(w[1] > w[0]);
    }

    #[test]
    fn gradients_match_finite_differences_and_reach_both_projections() {
        let k = aft(3, 8, 4);
        let te = randn(5, 4, 8, 1.0);
        let x0 = randn(6, 4, 3, 1.0);
        assert!(check(&x0, 1e-5, |x| k.forward(x, &te)) > 0.0);
        let loss = k.forward(&x0, &te).unwrap();
        let g = loss.backward().unwrap();
        let vars = Objective::trainable_vars(&k);
        assert_eq!(vars.len(), 4);
        for (name, v) in vars {
            let n = g
                .get(v.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap();
            let n = s(&n);
            assert!(n.is_finite() && n > 0.0, "{name}: {n}");
        }
    }

    #[test]
    fn typed_errors() {
        let c = AftKdConfig {
            blocks: 3,
            ..AftKdConfig::new(4, 8)
        };
        assert!(matches!(
            AftKd::new(c, 0, DType::F32, &Device::Cpu),
            Err(Error::Config { name: "blocks", .. })
        ));
        let k = aft(3, 8, 4);
        assert!(matches!(
            k.forward(&randn(1, 4, 4, 1.0), &randn(1, 4, 8, 1.0)),
            Err(Error::ShapeMismatch { .. })
        ));
        let nan = (randn(1, 4, 8, 1.0) * f64::NAN).unwrap();
        assert!(matches!(
            k.forward(&randn(1, 4, 3, 1.0), &nan),
            Err(Error::NonFinite {
                tensor: "teacher",
                ..
            })
        ));
    }
}
