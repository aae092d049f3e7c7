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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};
    use candle_core::Device;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn s(t: &Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    fn v(x: &[f64]) -> Tensor {
        Tensor::new(x, &Device::Cpu).unwrap()
    }

    #[test]
    fn t1_binary_equals_plain_kl_and_hand_values() {
        let zs = [0.3, -1.2, 2.0];
        let zt = [1.5, -0.5, -1.0];
        let kl: f64 = zs
            .iter()
            .zip(zt)
            .map(|(s, t)| {
                let (p, q) = (sig(t), sig(*s));
                p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln()
            })
            .sum::<f64>()
            / 3.0;
        let kd = HintonKd::new(HintonConfig {
            temperature: 1.0,
            alpha: 1.0,
        })
        .unwrap();
        let y = v(&[1.0, 0.0, 0.0]);
        let p = kd.forward(&v(&zs), &v(&zt), &y).unwrap();
        assert!((s(&p.kd) - kl).abs() < 1e-14);
        assert!((s(&p.total) - kl).abs() < 1e-14);
        // Equal logits: no distillation signal; the hard term alone is ln 2 at z = 0.
        let z = v(&[0.0, 0.0]);
        let p = HintonKd::default()
            .forward(&z, &z, &v(&[1.0, 0.0]))
            .unwrap();
        assert!(s(&p.kd).abs() < 1e-15);
        assert!((s(&p.total) - 0.1 * 2f64.ln()).abs() < 1e-14);
    }

    #[test]
    fn temperature_scaling_and_softmax_form() {
        // [batch, 3] logits at T = 1 equal the plain softmax KL computed by hand.
        let zs = [[0.1, 0.7, -0.3], [2.0, -1.0, 0.0]];
        let zt = [[1.0, 0.0, 0.5], [0.2, 0.3, -2.0]];
        let sm = |r: &[f64; 3]| {
            let e: Vec<f64> = r.iter().map(|x| x.exp()).collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(|x| x / z).collect::<Vec<_>>()
        };
        let mut kl = 0.0;
        for (a, b) in zs.iter().zip(&zt) {
            let (ps, pt) = (sm(a), sm(b));
            kl += pt
                .iter()
                .zip(&ps)
                .map(|(t, s)| t * (t / s).ln())
                .sum::<f64>();
        }
        kl /= 2.0;
        let d = Device::Cpu;
        let (ts, tt) = (Tensor::new(&zs, &d).unwrap(), Tensor::new(&zt, &d).unwrap());
        let one = HintonKd::new(HintonConfig {
            temperature: 1.0,
            alpha: 1.0,
        })
        .unwrap();
        assert!((s(&one.kd_term(&ts, &tt).unwrap()) - kl).abs() < 1e-14);
        // At T = 2 the term is 4 * KL of the halved logits.
        let two = HintonKd::new(HintonConfig {
            temperature: 2.0,
            alpha: 1.0,
        })
        .unwrap();
        let half = one
            .kd_term(&(&ts * 0.5).unwrap(), &(&tt * 0.5).unwrap())
            .unwrap();
        assert!((s(&two.kd_term(&ts, &tt).unwrap()) - 4.0 * s(&half)).abs() < 1e-13);
        // Hard term of the softmax form is the cross-entropy with class indices.
        let y = Tensor::new(&[1u32, 0], &d).unwrap();
        let p = one.forward(&ts, &tt, &y).unwrap();
        let ce = -(sm(&zs[0])[1].ln() + sm(&zs[1])[0].ln()) / 2.0;
        assert!((s(&p.hard) - ce).abs() < 1e-14);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let kd = HintonKd::default();
        let zt = randn(5, 6, 1, 2.0);
        let y = Tensor::new(&[1.0f64, 0.0, 1.0, 1.0, 0.0, 0.0], &Device::Cpu).unwrap();
        let z0 = randn(6, 6, 1, 2.0);
        assert!(check(&z0, 1e-6, |z| Ok(kd.forward(z, &zt, &y)?.total)) > 0.0);
        let zt3 = randn(7, 4, 3, 2.0);
        let y3 = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).unwrap();
        let z3 = randn(8, 4, 3, 2.0);
        assert!(check(&z3, 1e-6, |z| Ok(kd.forward(z, &zt3, &y3)?.total)) > 0.0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn t1_equals_kl_and_kd_is_non_negative(
            zs in proptest::collection::vec(-30.0f64..30.0, 1..8),
            shift in -5.0f64..5.0,
            t in 0.5f64..20.0,
        ) {
            let zt: Vec<f64> = zs.iter().map(|z| z + shift).collect();
            let one = HintonKd::new(HintonConfig { temperature: 1.0, alpha: 1.0 }).unwrap();
            let got = s(&one.kd_term(&v(&zs), &v(&zt)).unwrap());
            let want = zs.iter().zip(&zt).map(|(a, b)| {
                let (p, q) = (sig(*b), sig(*a));
                let term = |x: f64, y: f64| if x == 0.0 { 0.0 } else { x * (x / y).ln() };
                term(p, q) + term(1.0 - p, 1.0 - q)
            }).sum::<f64>() / zs.len() as f64;
            proptest::prop_assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "{} vs {}", got, want);
            let kd = HintonKd::new(HintonConfig { temperature: t, alpha: 1.0 }).unwrap();
            let k = s(&kd.kd_term(&v(&zs), &v(&zt)).unwrap());
            proptest::prop_assert!(k.is_finite() && k >= -1e-12);
        }
    }

    #[test]
    fn typed_errors() {
        let kd = HintonKd::default();
        let a = v(&[0.0, 1.0]);
        assert!(matches!(
            kd.forward(&a, &v(&[0.0, 1.0, 2.0]), &a),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            kd.forward(&v(&[f64::NAN, 1.0]), &a, &a),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            kd.forward(&a, &a, &v(&[0.0, 2.0])),
            Err(Error::BadLabel { .. })
        ));
        assert!(HintonKd::new(HintonConfig {
            temperature: 4.0,
            alpha: 1.5
        })
        .is_err());
    }
}
