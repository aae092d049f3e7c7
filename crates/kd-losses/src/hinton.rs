//! Classic knowledge distillation (Hinton, Vinyals and Dean 2015).

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::logistic::{bce_with_logits_elementwise, bernoulli_kl_elementwise};
use crate::objective::{LossTerms, Objective, Views};
use crate::{validate, Error, Result};

/// Hyper-parameters of [`HintonKd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HintonConfig {
    /// Softmax temperature `T` (default 4, RepDistiller's `--kd_T`).
    pub temperature: f64,
    /// Weight `alpha` of the distillation term; the hard-label term gets `1 - alpha` (default 0.9,
    /// RepDistiller's README run `-a 0.9 -r 0.1`).
    pub alpha: f64,
}

impl Default for HintonConfig {
    fn default() -> Self {
        Self {
            temperature: 4.0,
            alpha: 0.9,
        }
    }
}

/// The two terms of [`HintonKd`] and their mix.
#[derive(Debug, Clone)]
pub struct HintonParts {
    /// `T^2 * KL(p_t^T || p_s^T)`, batch mean.
    pub kd: Tensor,
    /// Cross-entropy of the student (at temperature 1) with the labels.
    pub hard: Tensor,
    /// `alpha * kd + (1 - alpha) * hard`.
    pub total: Tensor,
}

/// `L = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(y, z_s)`.
///
/// Binary logits (`[batch]` or `[batch, 1]`) use the sigmoid form: the KL between Bernoulli
/// distributions `sigmoid(z / T)`, identical to a two-class softmax over `[0, z]`, and
/// `BCEWithLogits(z_s, y)` as the hard term. Logits `[batch, classes]` (classes >= 2) use the softmax
/// form with integer labels. The KL is summed over classes and averaged over the batch (PyTorch's
/// `batchmean`), and the `T^2` factor keeps gradient magnitudes comparable across temperatures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HintonKd {
    /// Its hyper-parameters.
    pub config: HintonConfig,
}

enum Form {
    Binary(Tensor, Tensor),
    Softmax(Tensor, Tensor),
}

fn form(student: &Tensor, teacher: &Tensor) -> Result<Form> {
    const W: &str = "hinton";
    validate::same_shape(W, "student_logits", student, "teacher_logits", teacher)?;
    match student.dims() {
        [_, c] if *c >= 2 => {
            validate::finite(W, "student_logits", student)?;
            validate::finite(W, "teacher_logits", teacher)?;
            Ok(Form::Softmax(student.clone(), teacher.clone()))
        }
        _ => {
            let s = validate::logits(W, "student_logits", student, None)?;
            let t = validate::logits(W, "teacher_logits", teacher, None)?;
            Ok(Form::Binary(s, t))
        }
    }
}

impl HintonKd {
    /// From a configuration: `temperature > 0`, `alpha` in `[0, 1]`.
    pub fn new(config: HintonConfig) -> Result<Self> {
        validate::positive("temperature", config.temperature)?;
        validate::unit_interval("alpha", config.alpha)?;
        Ok(Self { config })
    }

    /// The distillation term alone, `T^2 * KL(p_t^T || p_s^T)` averaged over the batch.
    pub fn kd_term(&self, student_logits: &Tensor, teacher_logits: &Tensor) -> Result<Tensor> {
        let t = self.config.temperature;
        let kl = match form(student_logits, teacher_logits)? {
            Form::Binary(s, z) => {
                let s = s.affine(1.0 / t, 0.0)?;
                let z = z.detach().affine(1.0 / t, 0.0)?;
                bernoulli_kl_elementwise(&z, &s)?.mean_all()?
            }
            Form::Softmax(s, z) => {
                softmax_kl(&s.affine(1.0 / t, 0.0)?, &z.detach().affine(1.0 / t, 0.0)?)?
            }
        };
        Ok(kl.affine(t * t, 0.0)?)
    }

    /// Both terms and their mix. `labels` are 0/1 for binary logits and class indices for
    /// `[batch, classes]` logits.
    pub fn forward(
        &self,
        student_logits: &Tensor,
        teacher_logits: &Tensor,
        labels: &Tensor,
    ) -> Result<HintonParts> {
        let kd = self.kd_term(student_logits, teacher_logits)?;
        let hard = match form(student_logits, teacher_logits)? {
            Form::Binary(s, _) => {
                let (_, y) = validate::labels("hinton", labels, s.dim(0)?, s.dtype())?;
                bce_with_logits_elementwise(&s, &y)?.mean_all()?
            }
            Form::Softmax(s, _) => {
                let (b, c) = s.dims2()?;
                let y = labels.flatten_all()?;
                if y.dim(0)? != b {
                    return Err(Error::BadShape {
                        what: "hinton",
                        tensor: "labels",
                        shape: labels.dims().to_vec(),
                        expected: format!("[{b}] class indices"),
                    });
                }
                let idx = y.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                if let Some(bad) = idx
                    .iter()
                    .find(|v| v.fract() != 0.0 || **v < 0.0 || **v >= c as f64)
                {
                    return Err(Error::BadLabel {
                        what: "hinton",
                        value: *bad as f32,
                    });
                }
                candle_nn::loss::cross_entropy(&s, &y.to_dtype(DType::U32)?)?
            }
        };
        let a = self.config.alpha;
        let total = (kd.affine(a, 0.0)? + hard.affine(1.0 - a, 0.0)?)?;
        Ok(HintonParts { kd, hard, total })
    }
}

/// `mean_i sum_c p_t,ic (log p_t,ic - log p_s,ic)` for `[batch, classes]` logits.
fn softmax_kl(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    let ls = candle_nn::ops::log_softmax(student, D::Minus1)?;
    let lt = candle_nn::ops::log_softmax(teacher, D::Minus1)?;
    let kl = (lt.exp()? * (lt - ls)?)?.sum(D::Minus1)?;
    Ok(kl.mean_all()?)
}

impl Objective for HintonKd {
    fn name(&self) -> String {
        "hinton".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let p = self.forward(v.student_logit, v.teacher_logit, v.labels)?;
        Ok(LossTerms {
            total: p.total,
            parts: vec![("kd".into(), p.kd), ("hard".into(), p.hard)],
        })
    }
    fn uses_student_logit(&self) -> bool {
        true
    }
}
