//! Feature-alignment losses between student and teacher embeddings, and binary cross-entropy with
//! hard or soft (teacher) targets.

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::logistic::bce_with_logits_elementwise;
use crate::objective::{LossTerms, Objective, Views};
use crate::{validate, Result};

fn pair(what: &'static str, s: &Tensor, t: &Tensor) -> Result<()> {
    validate::matrix(what, "student", s)?;
    validate::matrix(what, "teacher", t)?;
    validate::same_shape(what, "student", s, "teacher", t)?;
    validate::finite(what, "student", s)?;
    validate::finite(what, "teacher", t)
}

/// L2 alignment, PyTorch's `F.mse_loss(e_s, e_t)`: the mean of squared differences over batch and
/// features. This is the paper's correspondence loss `L_2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mse;

impl Mse {
    /// `mean((s - t)^2)` over all elements of two `[batch, dim]` tensors.
    pub fn forward(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        pair("mse", student, teacher)?;
        Ok((student - teacher)?.sqr()?.mean_all()?)
    }
}

impl Objective for Mse {
    fn name(&self) -> String {
        "mse".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        Ok(LossTerms::single(
            "mse",
            self.forward(v.student_embedding, v.teacher_embedding)?,
        ))
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
}

/// Hyper-parameters of [`Cosine`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineConfig {
    /// Lower bound on `|s| * |t|`, as in PyTorch's `F.cosine_similarity` (default `1e-8`).
    pub eps: f64,
}

impl Default for CosineConfig {
    fn default() -> Self {
        Self { eps: 1e-8 }
    }
}

/// Row-wise cosine similarity `s.t / max(|s| |t|, eps)` of two `[batch, dim]` tensors, `[batch]`.
pub fn cosine_similarity(s: &Tensor, t: &Tensor, eps: f64) -> Result<Tensor> {
    let dot = (s * t)?.sum(D::Minus1)?;
    let ns = s.sqr()?.sum(D::Minus1)?;
    let nt = t.sqr()?.sum(D::Minus1)?;
    let den = (ns * nt)?.maximum(eps * eps)?.sqrt()?;
    Ok((dot / den)?)
}

/// Cosine alignment: `mean_i (1 - cos(e_s,i, e_t,i))`, invariant to positive rescaling of either
/// embedding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cosine {
    /// Its hyper-parameters.
    pub config: CosineConfig,
}

impl Cosine {
    /// From a configuration.
    pub fn new(config: CosineConfig) -> Result<Self> {
        validate::positive("eps", config.eps)?;
        Ok(Self { config })
    }

    /// The loss for two `[batch, dim]` tensors.
    pub fn forward(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        pair("cosine", student, teacher)?;
        let c = cosine_similarity(student, teacher, self.config.eps)?;
        Ok(c.neg()?.affine(1.0, 1.0)?.mean_all()?)
    }
}

impl Objective for Cosine {
    fn name(&self) -> String {
        "cosine".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        Ok(LossTerms::single(
            "cosine",
            self.forward(v.student_embedding, v.teacher_embedding)?,
        ))
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
}

/// Hyper-parameters of [`SmoothL1`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SmoothL1Config {
    /// Where the loss turns from quadratic to linear (PyTorch's `beta`, default 1).
    pub beta: f64,
}

impl Default for SmoothL1Config {
    fn default() -> Self {
        Self { beta: 1.0 }
    }
}

/// PyTorch's `F.smooth_l1_loss`: per element `0.5 d^2 / beta` if `|d| < beta`, else
/// `|d| - 0.5 beta`; mean over all elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SmoothL1 {
    /// Its hyper-parameters.
    pub config: SmoothL1Config,
}

impl SmoothL1 {
    /// From a configuration.
    pub fn new(config: SmoothL1Config) -> Result<Self> {
        validate::positive("beta", config.beta)?;
        Ok(Self { config })
    }

    /// The loss for two `[batch, dim]` tensors.
    pub fn forward(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        pair("smooth_l1", student, teacher)?;
        let beta = self.config.beta;
        let a = (student - teacher)?.abs()?;
        // With m = min(|d|, beta) = beta - relu(beta - |d|), the loss m (|d| - m / 2) / beta equals
        // both branches without a data-dependent select (relu's backward is one cheap pass).
        let m = a.affine(-1.0, beta)?.relu()?.affine(-1.0, beta)?;
        let inner = (a - m.affine(0.5, 0.0)?)?;
        Ok((m * inner)?.mean_all()?.affine(1.0 / beta, 0.0)?)
    }
}

impl Objective for SmoothL1 {
    fn name(&self) -> String {
        "smooth_l1".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        Ok(LossTerms::single(
            "smooth_l1",
            self.forward(v.student_embedding, v.teacher_embedding)?,
        ))
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
}

/// What [`Bce`] compares the student logit with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BceTarget {
    /// The frozen teacher's probability `sigmoid(z_t)` (soft target): the paper's published
    /// "custom" loss, which needs no labels.
    #[default]
    TeacherProbability,
    /// The binary label.
    Label,
}

/// Hyper-parameters of [`Bce`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BceConfig {
    /// The target (default: the teacher's probability, as in the paper's code).
    pub target: BceTarget,
}

/// Binary cross-entropy with logits, `mean(max(x,0) - x*y + log(1 + exp(-|x|)))`, for hard or soft
/// targets `y` in `[0, 1]`.
///
/// With [`BceTarget::TeacherProbability`] and the student logit taken through the teacher head
/// ([`crate::LogitSource::TeacherHead`]) this is the paper's `BCE(sigmoid(h(e_s)), sigmoid(h(e_t)))`.
/// Unlike the published code, which computes it under `torch.no_grad()`, the gradient flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bce {
    /// Its hyper-parameters.
    pub config: BceConfig,
}

impl Bce {
    /// From a configuration.
    pub fn new(config: BceConfig) -> Self {
        Self { config }
    }

    /// Mean BCE between logits `[batch]` (or `[batch, 1]`) and targets of the same shape in
    /// `[0, 1]`.
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let x = validate::logits("bce", "logits", logits, None)?;
        let y = validate::logits("bce", "targets", targets, Some(x.dim(0)?))?;
        let (lo, hi) = (
            y.min_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?,
            y.max_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?,
        );
        if lo < 0.0 || hi > 1.0 {
            return Err(crate::Error::BadShape {
                what: "bce",
                tensor: "targets",
                shape: targets.dims().to_vec(),
                expected: format!("values in [0, 1], found range [{lo}, {hi}]"),
            });
        }
        Ok(bce_with_logits_elementwise(&x, &y.to_dtype(x.dtype())?)?.mean_all()?)
    }
}

impl Objective for Bce {
    fn name(&self) -> String {
        "bce".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let target = match self.config.target {
            BceTarget::TeacherProbability => {
                let t = validate::logits("bce", "teacher_logit", v.teacher_logit, None)?;
                crate::logistic::sigmoid(&t.detach())?
            }
            BceTarget::Label => {
                let b = v.labels.dim(0)?;
                validate::labels("bce", v.labels, b, v.student_logit.dtype())?.1
            }
        };
        Ok(LossTerms::single(
            "bce",
            self.forward(v.student_logit, &target)?,
        ))
    }
    fn uses_student_logit(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};
    use crate::Error;
    use candle_core::Device;
    use proptest::prelude::*;

    fn m<const N: usize>(v: [[f64; 2]; N]) -> Tensor {
        Tensor::new(&v, &Device::Cpu).unwrap()
    }

    fn s(t: Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn hand_computed_values() {
        let a = m([[1.0, 0.0], [1.0, 1.0]]);
        let b = m([[0.0, 1.0], [2.0, 2.0]]);
        // (1 + 1 + 1 + 1) / 4
        assert_eq!(s(Mse.forward(&a, &b).unwrap()), 1.0);
        // cos = 0 and 1: mean(1 - 0, 1 - 1)
        assert!((s(Cosine::default().forward(&a, &b).unwrap()) - 0.5).abs() < 1e-15);
        // d = (0.5, 2, 0, -1) with beta 1: 0.125, 1.5, 0, 0.5 -> mean 0.53125
        let c = m([[0.5, 2.0], [0.0, -1.0]]);
        let z = m([[0.0, 0.0], [0.0, 0.0]]);
        assert!((s(SmoothL1::default().forward(&c, &z).unwrap()) - 0.53125).abs() < 1e-15);
        // beta 2: 0.0625, 1.0, 0, 0.25 -> 0.328125
        let l2 = SmoothL1::new(SmoothL1Config { beta: 2.0 }).unwrap();
        assert!((s(l2.forward(&c, &z).unwrap()) - 0.328125).abs() < 1e-15);
        // BCE: x = 0, y = 1 -> ln 2; x = 2, y = 0.25 (soft) -> ln(1 + e^2) - 0.5
        let x = Tensor::new(&[0.0f64, 2.0], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1.0f64, 0.25], &Device::Cpu).unwrap();
        let want = (2f64.ln() + (1.0 + 2f64.exp()).ln() - 0.5) / 2.0;
        assert!((s(Bce::default().forward(&x, &y).unwrap()) - want).abs() < 1e-14);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let t = randn(2, 4, 6, 1.0);
        let x0 = randn(1, 4, 6, 1.0);
        assert!(check(&x0, 1e-6, |x| Mse.forward(x, &t)) > 0.0);
        assert!(check(&x0, 1e-6, |x| Cosine::default().forward(x, &t)) > 0.0);
        assert!(check(&x0, 1e-6, |x| SmoothL1::default().forward(x, &t)) > 0.0);
        let z0 = randn(3, 8, 1, 3.0);
        let soft = crate::logistic::sigmoid(&randn(4, 8, 1, 2.0)).unwrap();
        assert!(check(&z0, 1e-6, |z| Bce::default().forward(z, &soft)) > 0.0);
    }

    #[test]
    fn typed_errors() {
        let a = randn(1, 3, 4, 1.0);
        let b = randn(2, 3, 5, 1.0);
        assert!(matches!(
            Mse.forward(&a, &b),
            Err(Error::ShapeMismatch { .. })
        ));
        let nan = (a.clone() * f64::NAN).unwrap();
        assert!(matches!(
            Cosine::default().forward(&nan, &a),
            Err(Error::NonFinite {
                tensor: "student",
                ..
            })
        ));
        let v = Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        assert!(matches!(
            Bce::default().forward(&v, &v),
            Err(Error::BadShape {
                tensor: "targets",
                ..
            })
        ));
        assert!(SmoothL1::new(SmoothL1Config { beta: 0.0 }).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn cosine_is_scale_invariant(seed in 0u64..1000, a in 0.01f64..100.0, b in 0.01f64..100.0) {
            let s0 = randn(seed, 5, 7, 1.0);
            let t0 = randn(seed + 1, 5, 7, 1.0);
            let base = s(Cosine::default().forward(&s0, &t0).unwrap());
            let scaled = s(Cosine::default().forward(&(s0 * a).unwrap(), &(t0 * b).unwrap()).unwrap());
            prop_assert!((base - scaled).abs() < 1e-12);
            prop_assert!((0.0..=2.0).contains(&base));
        }
    }
}
