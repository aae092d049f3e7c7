//! Prototype knowledge distillation (Wang et al., ICASSP 2023), adapted from segmentation to one
//! embedding per patient and binary labels.

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::logistic::{bce_with_logits_elementwise, bernoulli_kl_elementwise};
use crate::objective::{LossTerms, Objective, Views};
use crate::{validate, Error, Result};

/// What [`ProtoKd`] does with a batch that lacks one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingClass {
    /// Fail with [`Error::OneClass`] (default): a prototype term silently computed over one class
    /// only says that the loader is not stratified.
    #[default]
    Error,
    /// Use the classes present, as the official code's `(mask.sum() > 0).all()` guard does.
    Skip,
}

/// Hyper-parameters of [`ProtoKd`]; defaults from the official code (`config.py`, `trainer.py`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProtoKdConfig {
    /// Temperature of the logit-distillation term (default 10).
    pub temperature: f64,
    /// Weight of the logit-distillation term (default 10).
    pub kd_weight: f64,
    /// Weight of the prototype term (default 0.1).
    pub proto_weight: f64,
    /// Weight of the supervised term `BCEWithLogits(z_s, y)` (default 1; the segmentation loss in
    /// the original).
    pub hard_weight: f64,
    /// Lower bound in the cosine similarity denominators (default `1e-5`, as in the original).
    pub eps: f64,
    /// Behaviour on a batch with one class (default: error).
    pub missing_class: MissingClass,
}

impl Default for ProtoKdConfig {
    fn default() -> Self {
        Self {
            temperature: 10.0,
            kd_weight: 10.0,
            proto_weight: 0.1,
            hard_weight: 1.0,
            eps: 1e-5,
            missing_class: MissingClass::Error,
        }
    }
}

/// The three terms of [`ProtoKd`] and their weighted sum.
#[derive(Debug, Clone)]
pub struct ProtoKdParts {
    /// Prototype matching: `mean_{i,k} (cos(e_s,i, p_k^s) - cos(e_t,i, p_k^t))^2`.
    pub proto: Tensor,
    /// Logit distillation at temperature `T`, element-wise KL averaged over the `2 x batch` class
    /// probabilities, without `T^2` (as in the original).
    pub kd: Tensor,
    /// `BCEWithLogits(z_s, y)`.
    pub hard: Tensor,
    /// `hard_weight * hard + kd_weight * kd + proto_weight * proto`.
    pub total: Tensor,
}

/// ProtoKD: the student learns the teacher's intra-class and inter-class feature variation by
/// matching, sample by sample, its cosine similarity to every class prototype.
///
/// Adaptation: the original computes, per image and class, the masked mean of voxel features (the
/// prototype) and a similarity map over voxels. With one embedding per patient the "voxels" become
/// the patients of the batch: `p_k = mean{e_i : y_i = k}` for `k` in {0, 1}, computed separately in
/// the student's and the teacher's space (so their dimensions may differ), and `s_ik = cos(e_s,i,
/// p_k^s)`, `t_ik = cos(e_t,i, p_k^t)`. Similarity to the own class prototype carries intra-class
/// variation, to the other class inter-class variation. No trainable parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProtoKd {
    /// Its hyper-parameters.
    pub config: ProtoKdConfig,
}

/// Class prototypes (rows, one per class present, in class order) and the classes they belong to.
fn prototypes(e: &Tensor, classes: &[u8], present: &[u8]) -> Result<Tensor> {
    let b = classes.len();
    let mut w = vec![0f32; present.len() * b];
    for (r, k) in present.iter().enumerate() {
        let n = classes.iter().filter(|c| *c == k).count() as f32;
        for (i, c) in classes.iter().enumerate() {
            if c == k {
                w[r * b + i] = 1.0 / n;
            }
        }
    }
    let w = Tensor::from_vec(w, (present.len(), b), e.device())?.to_dtype(e.dtype())?;
    Ok(w.matmul(e)?)
}

/// `[batch, classes]` cosine similarities of each row of `e` to each prototype,
/// `e.p / max(|e| |p|, eps)`, as one matmul.
fn similarity(e: &Tensor, protos: &Tensor, eps: f64) -> Result<Tensor> {
    let dot = e.matmul(&protos.t()?)?;
    let ne = e.sqr()?.sum_keepdim(D::Minus1)?;
    let np = protos.sqr()?.sum_keepdim(D::Minus1)?.t()?;
    let den = ne.broadcast_mul(&np)?.maximum(eps * eps)?.sqrt()?;
    Ok((dot / den)?)
}

impl ProtoKd {
    /// From a configuration (positive temperature and eps, non-negative weights).
    pub fn new(config: ProtoKdConfig) -> Result<Self> {
        validate::positive("temperature", config.temperature)?;
        validate::positive("eps", config.eps)?;
        validate::non_negative("kd_weight", config.kd_weight)?;
        validate::non_negative("proto_weight", config.proto_weight)?;
        validate::non_negative("hard_weight", config.hard_weight)?;
        Ok(Self { config })
    }

    /// The prototype-matching term for student `[batch, d_s]` and teacher `[batch, d_t]` embeddings.
    pub fn prototype_term(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        labels: &Tensor,
    ) -> Result<Tensor> {
        const W: &str = "protokd";
        let (b, _) = validate::matrix(W, "student", student)?;
        let (bt, _) = validate::matrix(W, "teacher", teacher)?;
        if b != bt {
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
        let (classes, _) = validate::labels(W, labels, b, student.dtype())?;
        let present: Vec<u8> = [0u8, 1]
            .into_iter()
            .filter(|k| classes.contains(k))
            .collect();
        if present.len() < 2 && self.config.missing_class == MissingClass::Error {
            return Err(Error::OneClass {
                what: W,
                class: present[0],
                n: b,
            });
        }
        let teacher = teacher.detach();
        let ps = prototypes(student, &classes, &present)?;
        let pt = prototypes(&teacher, &classes, &present)?;
        let ss = similarity(student, &ps, self.config.eps)?;
        let st = similarity(&teacher, &pt, self.config.eps)?;
        Ok((ss - st)?.sqr()?.mean_all()?)
    }

    /// All terms for embeddings, binary logits (`[batch]` or `[batch, 1]`) and 0/1 labels.
    pub fn forward(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        student_logits: &Tensor,
        teacher_logits: &Tensor,
        labels: &Tensor,
    ) -> Result<ProtoKdParts> {
        const W: &str = "protokd";
        let proto = self.prototype_term(student, teacher, labels)?;
        let b = student.dim(0)?;
        let zs = validate::logits(W, "student_logits", student_logits, Some(b))?;
        let zt = validate::logits(W, "teacher_logits", teacher_logits, Some(b))?.detach();
        let t = self.config.temperature;
        // A binary logit z is the two-class softmax over [0, z]; the mean over the 2B class entries
        // of the element-wise KL is half the batch mean of the Bernoulli KL.
        let kd = bernoulli_kl_elementwise(&zt.affine(1.0 / t, 0.0)?, &zs.affine(1.0 / t, 0.0)?)?
            .mean_all()?
            .affine(0.5, 0.0)?;
        let (_, y) = validate::labels(W, labels, b, zs.dtype())?;
        let hard = bce_with_logits_elementwise(&zs, &y)?.mean_all()?;
        let c = &self.config;
        let total = ((hard.affine(c.hard_weight, 0.0)? + kd.affine(c.kd_weight, 0.0)?)?
            + proto.affine(c.proto_weight, 0.0)?)?;
        Ok(ProtoKdParts {
            proto,
            kd,
            hard,
            total,
        })
    }
}

impl Objective for ProtoKd {
    fn name(&self) -> String {
        "protokd".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let p = self.forward(
            v.student_embedding,
            v.teacher_embedding,
            v.student_logit,
            v.teacher_logit,
            v.labels,
        )?;
        Ok(LossTerms {
            total: p.total,
            parts: vec![
                ("proto".into(), p.proto),
                ("kd".into(), p.kd),
                ("hard".into(), p.hard),
            ],
        })
    }
    fn uses_student_logit(&self) -> bool {
        self.config.kd_weight > 0.0 || self.config.hard_weight > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};
    use candle_core::Device;

    fn t<const N: usize>(v: [[f64; 2]; N]) -> Tensor {
        Tensor::new(&v, &Device::Cpu).unwrap()
    }

    fn s(x: &Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn hand_computed_prototype_term() {
        let y = Tensor::new(&[0.0f64, 0.0, 1.0], &Device::Cpu).unwrap();
        let st = t([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0]]);
        let te = t([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        // Student prototypes (1,1) and (0,1); teacher prototypes (1,0) and (0,1).
        let r2 = 0.5f64.sqrt();
        let diffs = [
            r2 - 1.0,
            3.0 / 10f64.sqrt() - 1.0,
            r2 - 0.0,
            0.0,
            2.0 / 5f64.sqrt(),
            0.0,
        ];
        let want = diffs.iter().map(|d| d * d).sum::<f64>() / 6.0;
        let pk = ProtoKd::default();
        assert!((s(&pk.prototype_term(&st, &te, &y).unwrap()) - want).abs() < 1e-12);
        // Identical geometry up to scale (and a different dimension) matches exactly.
        let wide = Tensor::cat(&[&(&st * 2.0).unwrap(), &st.zeros_like().unwrap()], 1).unwrap();
        assert!(s(&pk.prototype_term(&st, &wide, &y).unwrap()) < 1e-24);
        // Logit terms: equal logits give no KD; the hard term is ln 2 at z = 0.
        let z = Tensor::zeros(3, candle_core::DType::F64, &Device::Cpu).unwrap();
        let p = pk.forward(&st, &te, &z, &z, &y).unwrap();
        assert!(s(&p.kd).abs() < 1e-15);
        assert!((s(&p.hard) - 2f64.ln()).abs() < 1e-14);
        assert!((s(&p.total) - (2f64.ln() + 0.1 * want)).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let y = Tensor::new(&[0.0f64, 1.0, 0.0, 1.0, 1.0], &Device::Cpu).unwrap();
        let te = randn(21, 5, 4, 1.0);
        let zt = randn(22, 5, 1, 2.0);
        let zs = randn(23, 5, 1, 2.0);
        let e0 = randn(24, 5, 3, 1.0);
        let pk = ProtoKd::default();
        assert!(check(&e0, 1e-6, |e| Ok(pk.forward(e, &te, &zs, &zt, &y)?.total)) > 0.0);
        assert!(check(&zs, 1e-6, |z| Ok(pk.forward(&e0, &te, z, &zt, &y)?.total)) > 0.0);
    }

    #[test]
    fn one_class_batches() {
        let y = Tensor::new(&[1.0f64, 1.0, 1.0], &Device::Cpu).unwrap();
        let e = randn(1, 3, 2, 1.0);
        match ProtoKd::default().prototype_term(&e, &e, &y) {
            Err(Error::OneClass { class: 1, n: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        let skip = ProtoKd::new(ProtoKdConfig {
            missing_class: MissingClass::Skip,
            ..Default::default()
        })
        .unwrap();
        let te = randn(2, 3, 2, 1.0);
        assert!(s(&skip.prototype_term(&e, &te, &y).unwrap()) > 0.0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn prototype_term_invariances(seed in 0u64..1000, a in 0.01f64..100.0, n1 in 1usize..5) {
            // n1 positives among 6, so both classes are present.
            let y: Vec<f64> = (0..6).map(|i| f64::from(u8::from(i < n1))).collect();
            let y = Tensor::new(y.as_slice(), &Device::Cpu).unwrap();
            let st = randn(seed, 6, 4, 1.0);
            let te = randn(seed + 1, 6, 7, 1.0);
            let pk = ProtoKd::default();
            let base = s(&pk.prototype_term(&st, &te, &y).unwrap());
            let scaled = s(&pk.prototype_term(&(&st * a).unwrap(), &te, &y).unwrap());
            proptest::prop_assert!((base - scaled).abs() < 1e-12);
            proptest::prop_assert!((0.0..=4.0).contains(&base));
            proptest::prop_assert!(s(&pk.prototype_term(&te, &te, &y).unwrap()) < 1e-24);
        }
    }

    #[test]
    fn typed_errors() {
        let y = Tensor::new(&[0.0f64, 1.0], &Device::Cpu).unwrap();
        let a = randn(1, 2, 3, 1.0);
        let b = randn(2, 3, 3, 1.0);
        assert!(matches!(
            ProtoKd::default().prototype_term(&a, &b, &y),
            Err(Error::ShapeMismatch { .. })
        ));
        let nan = (&a * f64::NAN).unwrap();
        assert!(matches!(
            ProtoKd::default().prototype_term(&nan, &a, &y),
            Err(Error::NonFinite { .. })
        ));
        let bad = Tensor::new(&[0.0f64, 0.5], &Device::Cpu).unwrap();
        assert!(matches!(
            ProtoKd::default().prototype_term(&a, &a, &bad),
            Err(Error::BadLabel { .. })
        ));
    }
}
