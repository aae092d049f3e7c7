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
        // Pairwise differences [B, B, D]: exact zeros for identical pairs, unlike the expanded
        // |a|^2 + |b|^2 - 2ab, so the positive term and its gradient vanish exactly.
        let diff = s.unsqueeze(1)?.broadcast_sub(&t.unsqueeze(0)?)?;
        let d2 = diff.sqr()?.sum(D::Minus1)?;
        let dev = student.device();
        let dt = student.dtype();
        let eye = Tensor::eye(b, dt, dev)?;
        let positive = (&d2 * &eye)?.sum_all()?.affine(1.0 / b as f64, 0.0)?;
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
