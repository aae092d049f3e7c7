//! Margin-based contrastive loss over in-batch pairs (Hadsell, Chopra and LeCun 2006).

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::objective::{LossTerms, Objective, Views};
use crate::{validate, Error, Result};

/// Hyper-parameters of [`Contrastive`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContrastiveConfig {
    /// Margin `m` beyond which negatives cost nothing (default 1, pytorch-metric-learning's
    /// `neg_margin`).
    pub margin: f64,
    /// L2-normalise both embeddings first, so distances lie in `[0, 2]` and `m = 1` is meaningful
    /// whatever the embeddings' scale (default true).
    pub normalize: bool,
    /// Drop negative pairs whose two studies share a label (default false: every other pair in the
    /// batch is a negative, as in the paper's description).
    pub exclude_same_label: bool,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            margin: 1.0,
            normalize: true,
            exclude_same_label: false,
        }
    }
}

/// The contrastive loss of Hadsell, Chopra and LeCun (2006) in the convention "y = 1 is a positive"
/// and without their `1/2` factor: `y d^2 + (1 - y) max(0, m - d)^2`, with `d = |e_s,i - e_t,j|_2`.
///
/// In a batch of `B` paired studies, `(e_s,i, e_t,i)` are the `B` positives and `(e_s,i, e_t,j)`,
/// `j != i`, the `B(B-1)` negatives. The loss is `mean_pos + mean_neg`, balanced, rather than a mean
/// over all pairs, which the ~`B^2` negatives would dominate. (Chopra et al. 2005's energy-based form
/// with an exponential negative term is a different loss.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Contrastive {
    /// Its hyper-parameters.
    pub config: ContrastiveConfig,
}

/// The two halves of [`Contrastive`].
#[derive(Debug, Clone)]
pub struct ContrastiveParts {
    /// Mean squared distance of the positive pairs.
    pub positive: Tensor,
    /// Mean squared hinge `max(0, m - d)^2` of the negative pairs (0 if none remain).
    pub negative: Tensor,
    /// Their sum.
    pub total: Tensor,
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    Ok(x.broadcast_div(&n)?)
}

impl Contrastive {
    /// From a configuration (`margin > 0`).
    pub fn new(config: ContrastiveConfig) -> Result<Self> {
        validate::positive("margin", config.margin)?;
        Ok(Self { config })
    }

    /// The loss for paired `[batch, dim]` embeddings (`batch >= 2`); `labels` are needed only with
    /// `exclude_same_label`.
    pub fn forward(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<ContrastiveParts> {
        const W: &str = "contrastive";
        let (b, _) = validate::matrix(W, "student", student)?;
        validate::matrix(W, "teacher", teacher)?;
        validate::same_shape(W, "student", student, "teacher", teacher)?;
        validate::finite(W, "student", student)?;
        validate::finite(W, "teacher", teacher)?;
        if b < 2 {
            return Err(Error::BadShape {
                what: W,
                tensor: "student",
                shape: student.dims().to_vec(),
                expected: "at least 2 pairs, so that negatives exist".into(),
            });
        }
        let (s, t) = if self.config.normalize {
            (l2_normalize(student)?, l2_normalize(&teacher.detach())?)
        } else {
            (student.clone(), teacher.detach())
        };
        let dev = student.device();
        let dt = student.dtype();
        // Positives from the paired differences directly: exactly zero (with a zero gradient) for
        // identical pairs.
        let positive = (&s - &t)?.sqr()?.sum(D::Minus1)?.mean_all()?;
        let mut neg_mask: Vec<f32> = (0..b * b)
            .map(|k| if k / b == k % b { 0.0 } else { 1.0 })
            .collect();
        if self.config.exclude_same_label {
            let y = labels.ok_or(Error::Config {
                name: "exclude_same_label",
                reason: "needs labels".into(),
            })?;
            let (cls, _) = validate::labels(W, y, b, dt)?;
            for i in 0..b {
                for j in 0..b {
                    if cls[i] == cls[j] {
                        neg_mask[i * b + j] = 0.0;
                    }
                }
            }
        }
        let n_neg: f32 = neg_mask.iter().sum();
        let negative = if n_neg == 0.0 {
            Tensor::zeros((), dt, dev)?
        } else {
            let mask = Tensor::from_vec(neg_mask, (b, b), dev)?.to_dtype(dt)?;
            // All pairwise squared distances from the Gram matrix, |s|^2 + |t|^2 - 2 s.t, one
            // matmul instead of a [B, B, D] difference; rounding can make it slightly negative.
            let ss = s.sqr()?.sum_keepdim(D::Minus1)?;
            let tt = t.sqr()?.sum_keepdim(D::Minus1)?.t()?;
            let d2 = ss
                .broadcast_add(&tt)?
                .sub(&s.matmul(&t.t()?)?.affine(2.0, 0.0)?)?
                .relu()?;
            // A small floor inside the root keeps the gradient of d finite at d = 0.
            let d = (d2 + 1e-12)?.sqrt()?;
            let hinge = d.neg()?.affine(1.0, self.config.margin)?.relu()?.sqr()?;
            (hinge * mask)?.sum_all()?.affine(1.0 / n_neg as f64, 0.0)?
        };
        let total = (&positive + &negative)?;
        Ok(ContrastiveParts {
            positive,
            negative,
            total,
        })
    }
}

impl Objective for Contrastive {
    fn name(&self) -> String {
        "contrastive".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let p = self.forward(v.student_embedding, v.teacher_embedding, Some(v.labels))?;
        Ok(LossTerms {
            total: p.total,
            parts: vec![
                ("positive".into(), p.positive),
                ("negative".into(), p.negative),
            ],
        })
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};
    use candle_core::Device;

    fn raw(margin: f64) -> Contrastive {
        Contrastive::new(ContrastiveConfig {
            margin,
            normalize: false,
            exclude_same_label: false,
        })
        .unwrap()
    }

    fn s(t: &Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn hand_computed_value() {
        let d = Device::Cpu;
        let st = Tensor::new(&[[0.0f64], [1.0]], &d).unwrap();
        let te = Tensor::new(&[[0.0f64], [3.0]], &d).unwrap();
        // positives: 0 and (1-3)^2 = 4 -> 2; negatives: d(s0,t1) = 3 -> 0, d(s1,t0) = 1 -> (2-1)^2
        // = 1 -> 0.5.
        let p = raw(2.0).forward(&st, &te, None).unwrap();
        assert!((s(&p.positive) - 2.0).abs() < 1e-12);
        assert!((s(&p.negative) - 0.5).abs() < 1e-9);
        assert!((s(&p.total) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn zero_for_identical_positives_and_far_negatives() {
        // Orthonormal rows: positives identical, negatives at distance sqrt(2) > margin 1.
        let e = Tensor::eye(4, candle_core::DType::F64, &Device::Cpu).unwrap();
        let p = Contrastive::default()
            .forward(&(&e * 3.0).unwrap(), &e, None)
            .unwrap();
        assert_eq!(s(&p.total), 0.0);
        // The same pairs with a larger margin are penalised.
        let p = Contrastive::new(ContrastiveConfig {
            margin: 2.0,
            ..Default::default()
        })
        .unwrap()
        .forward(&e, &e, None)
        .unwrap();
        assert!((s(&p.total) - (2.0 - 2f64.sqrt()).powi(2)).abs() < 1e-9);
    }

    #[test]
    fn same_label_negatives_can_be_dropped() {
        let d = Device::Cpu;
        let st = Tensor::new(&[[0.0f64], [1.0], [5.0]], &d).unwrap();
        let y = Tensor::new(&[1.0f64, 1.0, 0.0], &d).unwrap();
        let c = Contrastive::new(ContrastiveConfig {
            margin: 2.0,
            normalize: false,
            exclude_same_label: true,
        })
        .unwrap();
        // Remaining negatives: (0,2) d=5, (1,2) d=4, (2,0) d=5, (2,1) d=4: all beyond the margin.
        assert!(s(&c.forward(&st, &st, Some(&y)).unwrap().total).abs() < 1e-9);
        // With every pair as negative, (0,1) and (1,0) at d = 1 cost 1 each over 6 negatives.
        let all = raw(2.0).forward(&st, &st, None).unwrap();
        assert!((s(&all.total) - 2.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let t = randn(11, 5, 3, 1.0);
        let x0 = randn(12, 5, 3, 1.0);
        let c = Contrastive::default();
        assert!(check(&x0, 1e-5, |x| Ok(c.forward(x, &t, None)?.total)) > 0.0);
        assert!(check(&x0, 1e-5, |x| Ok(raw(3.0).forward(x, &t, None)?.total)) > 0.0);
    }

    #[test]
    fn typed_errors() {
        let one = randn(1, 1, 3, 1.0);
        assert!(matches!(
            Contrastive::default().forward(&one, &one, None),
            Err(Error::BadShape { .. })
        ));
        let a = randn(1, 3, 3, 1.0);
        let b = randn(1, 3, 2, 1.0);
        assert!(matches!(
            Contrastive::default().forward(&a, &b, None),
            Err(Error::ShapeMismatch { .. })
        ));
        let nan = (&a * f64::NAN).unwrap();
        assert!(matches!(
            Contrastive::default().forward(&a, &nan, None),
            Err(Error::NonFinite {
                tensor: "teacher",
                ..
            })
        ));
        assert!(Contrastive::new(ContrastiveConfig {
            margin: -1.0,
            ..Default::default()
        })
        .is_err());
    }
}
