//! DisCoM-KD (Ienco and Dantas, BMVC 2024): cross-modal distillation by disentangling
//! modality-invariant, modality-informative and task-irrelevant parts, with an adversarial
//! modality discriminator; adapted to a frozen teacher embedding and a binary task.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::logistic::bce_with_logits_elementwise;
use crate::objective::{Adversary, LossTerms, Objective, Views};
use crate::{validate, Error, Result};

/// How the modality discriminator is trained against the invariant encoders.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AdversarialMode {
    /// One joint step through a gradient-reversal layer of strength `lambda` (the official code,
    /// `lambda = 1`): the discriminator minimises its modality loss while the reversed gradient
    /// makes the invariant encoders maximise it.
    GradientReversal {
        /// Reversal strength.
        lambda: f64,
    },
    /// Two alternating steps per batch: the discriminator alone on detached invariant features
    /// (its own optimizer, see [`Adversary`]), then everything else, with the invariant encoders
    /// pushing the discriminator's output towards 1/2 (domain confusion, Tzeng et al. 2015), a
    /// bounded objective whose optimum is modality invariance.
    Alternating,
}

/// Hyper-parameters of [`DiscomKd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiscomKdConfig {
    /// Student (CXR) embedding size: the input of branch A.
    pub student_dim: usize,
    /// Teacher (CTPA) embedding size: the input of branch B.
    pub teacher_dim: usize,
    /// Hidden width of the auxiliary encoders (default 512, the ResNet-18 feature size).
    pub hidden: usize,
    /// Size of each disentangled part `z_inv`, `z_inf`, `z_irr` (default 256, as in the original).
    pub part_dim: usize,
    /// Adversarial training scheme (default: gradient reversal with lambda = 1, as in the original).
    pub adversarial: AdversarialMode,
    /// Weights of `L_cl, L_aux, L_mod, L_adv, L_orth` (default all 1, as in the original).
    pub weights: [f64; 5],
}

impl DiscomKdConfig {
    /// The defaults for the given embedding sizes.
    pub fn new(student_dim: usize, teacher_dim: usize) -> Self {
        Self {
            student_dim,
            teacher_dim,
            hidden: 512,
            part_dim: 256,
            adversarial: AdversarialMode::GradientReversal { lambda: 1.0 },
            weights: [1.0; 5],
        }
    }
}

struct Branch {
    inv_in: Linear,
    inv_proj: Linear,
    inv_norm: cmkd_train::LayerNorm,
    spec_in: Linear,
    spec_out: Linear,
    cl: Linear,
}

struct Parts {
    inv: Tensor,
    inf: Tensor,
    irr: Tensor,
}

impl Branch {
    fn new(input: usize, c: &DiscomKdConfig, vb: VarBuilder) -> Result<Self> {
        let k = c.part_dim;
        Ok(Self {
            inv_in: candle_nn::linear(input, c.hidden, vb.pp("enc_inv"))?,
            inv_proj: candle_nn::linear(c.hidden, k, vb.pp("proj"))?,
            inv_norm: cmkd_train::layer_norm(k, Default::default(), vb.pp("proj_norm"))?,
            spec_in: candle_nn::linear(input, c.hidden, vb.pp("enc_spec.0"))?,
            spec_out: candle_nn::linear(c.hidden, 2 * k, vb.pp("enc_spec.1"))?,
            cl: candle_nn::linear(2 * k, 1, vb.pp("task_cl"))?,
        })
    }

    fn parts(&self, x: &Tensor, k: usize) -> Result<Parts> {
        let h = self.inv_in.forward(x)?.relu()?;
        let inv = self.inv_norm.forward(&self.inv_proj.forward(&h)?)?.relu()?;
        let s = self
            .spec_out
            .forward(&self.spec_in.forward(x)?.relu()?)?
            .relu()?;
        Ok(Parts {
            inv,
            inf: s.narrow(1, 0, k)?,
            irr: s.narrow(1, k, k)?,
        })
    }

    fn classify(&self, p: &Parts) -> Result<Tensor> {
        Ok(self
            .cl
            .forward(&Tensor::cat(&[&p.inv, &p.inf], D::Minus1)?)?
            .squeeze(1)?)
    }
}

/// DisCoM-KD with its auxiliary encoders, heads and modality discriminator.
///
/// Per modality (A = the student's CXR embedding, B = the frozen teacher's CTPA embedding) two
/// encoders: an invariant one (MLP, then a projection head `Linear + LayerNorm + ReLU`) giving
/// `z_inv`, and a specific one (MLP with ReLU output) whose output is split into the
/// modality-informative `z_inf` and the task-irrelevant `z_irr`. Heads: a classifier per modality on
/// `[z_inv | z_inf]` (`task_cl`), a shared classifier (`task_cl3`) applied to `z_inv` and `z_inf`,
/// modality heads on `z_inf` (`task_dom`) and `z_irr` (`task_dom2`), and the discriminator on
/// `z_inv`. Loss `L = L_cl + L_aux + L_mod + L_adv + L_orth` with
/// `L_orth = mean<z_inf^, z_irr^> + mean<z_inf^, z_inv^>` on L2-normalised, non-negative parts.
///
/// Adaptations: the original is teacher-free and trains two ResNet-18 encoders per modality on
/// images. Here branch A is fed the student's embedding (so the student backbone learns through
/// it) and branch B the frozen teacher's embedding; the branch-B encoders are trainable, the teacher
/// is not. Two-class cross-entropies become binary cross-entropy on one logit. The modality targets
/// are integer modalities (CXR = 0, CTPA = 1) as the paper intends; the official code's
/// `ones_like(logits)` float targets do not implement that. BatchNorm in the projection head is a
/// layer norm, which behaves the same in training and evaluation.
pub struct DiscomKd {
    config: DiscomKdConfig,
    map: VarMap,
    a: Branch,
    b: Branch,
    cl_shared: Linear,
    dom_inf: Linear,
    dom_irr: Linear,
    discr: Linear,
}

impl std::fmt::Debug for DiscomKd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscomKd")
            .field("config", &self.config)
            .finish()
    }
}

/// The terms of [`DiscomKd`], unweighted, and their weighted sum.
#[derive(Debug, Clone)]
pub struct DiscomParts {
    /// Per-modality classification (`task_cl`, `task_cl2`).
    pub cl: Tensor,
    /// Shared-classifier terms on `z_inv` and on `z_inf` (summed).
    pub aux: Tensor,
    /// Modality prediction from `z_inf` and `z_irr`.
    pub modality: Tensor,
    /// The adversarial term seen by the encoders (reversed modality loss, or confusion loss).
    pub adversarial: Tensor,
    /// Orthogonality of the parts.
    pub orth: Tensor,
    /// Weighted sum.
    pub total: Tensor,
}

fn bce(logits: &Tensor, target: f64) -> Result<Tensor> {
    let y = logits.ones_like()?.affine(target, 0.0)?;
    Ok(bce_with_logits_elementwise(logits, &y)?.mean_all()?)
}

fn bce_labels(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(bce_with_logits_elementwise(logits, y)?.mean_all()?)
}

fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    Ok(x.broadcast_div(&n)?)
}

fn mean_dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((unit_rows(a)? * unit_rows(b)?)?
        .sum(D::Minus1)?
        .mean_all()?)
}

/// Forward value `x`, backward gradient multiplied by `-lambda`.
pub fn gradient_reversal(x: &Tensor, lambda: f64) -> Result<Tensor> {
    Ok((x.detach().affine(1.0 + lambda, 0.0)? - x.affine(lambda, 0.0)?)?)
}

impl DiscomKd {
    /// Builds all auxiliary modules, initialised reproducibly from `seed`.
    pub fn new(config: DiscomKdConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        for (name, v) in [
            ("student_dim", config.student_dim),
            ("teacher_dim", config.teacher_dim),
            ("hidden", config.hidden),
            ("part_dim", config.part_dim),
        ] {
            if v == 0 {
                return Err(Error::Config {
                    name,
                    reason: "must be > 0".into(),
                });
            }
        }
        for w in config.weights {
            validate::non_negative("weights", w)?;
        }
        if let AdversarialMode::GradientReversal { lambda } = config.adversarial {
            validate::non_negative("lambda", lambda)?;
        }
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, dtype, device).pp("discom");
        let k = config.part_dim;
        Ok(Self {
            a: Branch::new(config.student_dim, &config, vb.pp("student"))?,
            b: Branch::new(config.teacher_dim, &config, vb.pp("teacher"))?,
            cl_shared: candle_nn::linear(k, 1, vb.pp("task_cl3"))?,
            dom_inf: candle_nn::linear(k, 1, vb.pp("task_dom"))?,
            dom_irr: candle_nn::linear(k, 1, vb.pp("task_dom2"))?,
            discr: candle_nn::linear(k, 1, vb.pp("discr"))?,
            config,
            map,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &DiscomKdConfig {
        &self.config
    }

    /// All variables (for checkpoints).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// The student branch's PE logit `task_cl([z_inv | z_inf])`: DisCoM-KD's inference path.
    pub fn predict_student(&self, student: &Tensor) -> Result<Tensor> {
        validate::matrix("discom_kd", "student", student)?;
        let p = self.a.parts(student, self.config.part_dim)?;
        self.a.classify(&p)
    }

    fn check(&self, s: &Tensor, t: &Tensor, y: &Tensor) -> Result<Tensor> {
        const W: &str = "discom_kd";
        let (b, ds) = validate::matrix(W, "student", s)?;
        let (bt, dt) = validate::matrix(W, "teacher", t)?;
        if b != bt || ds != self.config.student_dim || dt != self.config.teacher_dim {
            return Err(Error::ShapeMismatch {
                what: W,
                left: "student",
                left_shape: s.dims().to_vec(),
                right: "teacher",
                right_shape: t.dims().to_vec(),
            });
        }
        validate::finite(W, "student", s)?;
        validate::finite(W, "teacher", t)?;
        Ok(validate::labels(W, y, b, s.dtype())?.1)
    }

    /// All terms for student `[batch, d_s]` and teacher `[batch, d_t]` embeddings and 0/1 labels.
    pub fn forward(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        labels: &Tensor,
    ) -> Result<DiscomParts> {
        let y = self.check(student, teacher, labels)?;
        let k = self.config.part_dim;
        let pa = self.a.parts(student, k)?;
        let pb = self.b.parts(&teacher.detach(), k)?;
        let cl = ((bce_labels(&self.a.classify(&pa)?, &y)?
            + bce_labels(&self.b.classify(&pb)?, &y)?)?
            * 0.5)?;
        let shared = |x: &Tensor| -> Result<Tensor> { Ok(self.cl_shared.forward(x)?.squeeze(1)?) };
        let aux_inv =
            ((bce_labels(&shared(&pa.inv)?, &y)? + bce_labels(&shared(&pb.inv)?, &y)?)? * 0.5)?;
        let aux_inf =
            ((bce_labels(&shared(&pa.inf)?, &y)? + bce_labels(&shared(&pb.inf)?, &y)?)? * 0.5)?;
        let aux = (aux_inv + aux_inf)?;
        // Modality: CXR (student) = 0, CTPA (teacher) = 1.
        let dom = |l: &Linear, x: &Tensor| -> Result<Tensor> { Ok(l.forward(x)?.squeeze(1)?) };
        let modality = ((bce(&dom(&self.dom_inf, &pa.inf)?, 0.0)?
            + bce(&dom(&self.dom_inf, &pb.inf)?, 1.0)?
            + bce(&dom(&self.dom_irr, &pa.irr)?, 0.0)?
            + bce(&dom(&self.dom_irr, &pb.irr)?, 1.0)?)?
            * 0.25)?;
        let adversarial = match self.config.adversarial {
            AdversarialMode::GradientReversal { lambda } => {
                let da = dom(&self.discr, &gradient_reversal(&pa.inv, lambda)?)?;
                let db = dom(&self.discr, &gradient_reversal(&pb.inv, lambda)?)?;
                ((bce(&da, 0.0)? + bce(&db, 1.0)?)? * 0.5)?
            }
            AdversarialMode::Alternating => {
                let da = dom(&self.discr, &pa.inv)?;
                let db = dom(&self.discr, &pb.inv)?;
                ((bce(&da, 0.5)? + bce(&db, 0.5)?)? * 0.5)?
            }
        };
        let inf = Tensor::cat(&[&pa.inf, &pb.inf], 0)?;
        let irr = Tensor::cat(&[&pa.irr, &pb.irr], 0)?;
        let inv = Tensor::cat(&[&pa.inv, &pb.inv], 0)?;
        let orth = (mean_dot(&inf, &irr)? + mean_dot(&inf, &inv)?)?;
        let w = self.config.weights;
        let total = [&cl, &aux, &modality, &adversarial, &orth]
            .iter()
            .zip(w)
            .try_fold(
                Tensor::zeros((), student.dtype(), student.device())?,
                |acc, (t, w)| acc + t.affine(w, 0.0)?,
            )?;
        Ok(DiscomParts {
            cl,
            aux,
            modality,
            adversarial,
            orth,
            total,
        })
    }

    /// The discriminator's own loss (alternating mode): modality cross-entropy on detached
    /// invariant features, so only the discriminator learns from it.
    pub fn discriminator_loss(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let k = self.config.part_dim;
        let ia = self.a.parts(&student.detach(), k)?.inv.detach();
        let ib = self.b.parts(&teacher.detach(), k)?.inv.detach();
        let da = self.discr.forward(&ia)?.squeeze(1)?;
        let db = self.discr.forward(&ib)?.squeeze(1)?;
        Ok(((bce(&da, 0.0)? + bce(&db, 1.0)?)? * 0.5)?)
    }

    fn is_discr(name: &str) -> bool {
        name.starts_with("discom.discr.")
    }
}

impl Objective for DiscomKd {
    fn name(&self) -> String {
        "discom_kd".into()
    }
    fn loss(&self, v: &Views<'_>) -> Result<LossTerms> {
        let p = self.forward(v.student_embedding, v.teacher_embedding, v.labels)?;
        Ok(LossTerms {
            total: p.total,
            parts: vec![
                ("cl".into(), p.cl),
                ("aux".into(), p.aux),
                ("modality".into(), p.modality),
                ("adversarial".into(), p.adversarial),
                ("orth".into(), p.orth),
            ],
        })
    }
    fn uses_student_logit(&self) -> bool {
        false
    }
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        let all = cmkd_train::sorted_vars(&self.map);
        match self.config.adversarial {
            AdversarialMode::GradientReversal { .. } => all,
            AdversarialMode::Alternating => all
                .into_iter()
                .filter(|(n, _)| !Self::is_discr(n))
                .collect(),
        }
    }
    fn adversary(&self) -> Option<&dyn Adversary> {
        match self.config.adversarial {
            AdversarialMode::GradientReversal { .. } => None,
            AdversarialMode::Alternating => Some(self),
        }
    }
}

impl Adversary for DiscomKd {
    fn adversary_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
            .into_iter()
            .filter(|(n, _)| Self::is_discr(n))
            .collect()
    }
    fn adversary_loss(&self, v: &Views<'_>) -> Result<Tensor> {
        self.check(v.student_embedding, v.teacher_embedding, v.labels)?;
        self.discriminator_loss(v.student_embedding, v.teacher_embedding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, randn};

    fn s(x: &Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }

    fn small(mode: AdversarialMode) -> DiscomKd {
        let c = DiscomKdConfig {
            hidden: 8,
            part_dim: 4,
            adversarial: mode,
            ..DiscomKdConfig::new(3, 5)
        };
        DiscomKd::new(c, 7, DType::F64, &Device::Cpu).unwrap()
    }

    fn labels() -> Tensor {
        Tensor::new(&[0.0f64, 1.0, 1.0, 0.0, 1.0, 0.0], &Device::Cpu).unwrap()
    }

    fn grad_sum(g: &candle_core::backprop::GradStore, v: &Var) -> Option<f64> {
        g.get(v.as_tensor())
            .map(|t| s(&t.abs().unwrap().sum_all().unwrap()))
    }

    #[test]
    fn gradient_reversal_is_identity_forward_and_negated_backward() {
        let x = Var::new(&[1.5f64, -2.0], &Device::Cpu).unwrap();
        let y = gradient_reversal(x.as_tensor(), 0.7).unwrap();
        assert_eq!(y.to_vec1::<f64>().unwrap(), vec![1.5, -2.0]);
        let g = (y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        assert!(g.iter().all(|v| (v + 2.1).abs() < 1e-12), "{g:?}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        // The alternating mode's loss is an ordinary function (no reversal), so its autograd
        // gradient must match finite differences.
        let k = small(AdversarialMode::Alternating);
        let te = randn(31, 6, 5, 1.0);
        let x0 = randn(32, 6, 3, 1.0);
        assert!(check(&x0, 1e-5, |x| Ok(k.forward(x, &te, &labels())?.total)) > 0.0);
    }

    #[test]
    fn every_part_gets_a_gradient_with_reversal() {
        let k = small(AdversarialMode::GradientReversal { lambda: 1.0 });
        let st = Var::from_tensor(&randn(33, 6, 3, 1.0)).unwrap();
        let te = Var::from_tensor(&randn(34, 6, 5, 1.0)).unwrap();
        let p = k
            .forward(st.as_tensor(), te.as_tensor(), &labels())
            .unwrap();
        let g = p.total.backward().unwrap();
        let vars = Objective::trainable_vars(&k);
        // 2 branches x (enc_inv, proj, proj_norm, enc_spec.0, enc_spec.1, task_cl) + 4 heads.
        assert_eq!(vars.len(), 2 * 12 + 4 * 2);
        for (name, v) in &vars {
            let n = grad_sum(&g, v).unwrap_or(0.0);
            assert!(n.is_finite() && n > 0.0, "{name}: {n}");
        }
        assert!(grad_sum(&g, &st).unwrap() > 0.0);
        assert!(
            grad_sum(&g, &te).is_none(),
            "the teacher embedding must stay frozen"
        );
        assert!(Objective::adversary(&k).is_none());
    }

    #[test]
    fn alternating_mode_separates_the_discriminator() {
        let k = small(AdversarialMode::Alternating);
        let st = Var::from_tensor(&randn(35, 6, 3, 1.0)).unwrap();
        let te = randn(36, 6, 5, 1.0);
        let main = Objective::trainable_vars(&k);
        let adv = k.adversary_vars();
        assert_eq!(adv.len(), 2);
        assert!(main.iter().all(|(n, _)| !n.contains("discr")));
        let l = k.discriminator_loss(st.as_tensor(), &te).unwrap();
        let g = l.backward().unwrap();
        for (name, v) in &adv {
            assert!(grad_sum(&g, v).unwrap() > 0.0, "{name}");
        }
        for (name, v) in &main {
            assert!(
                grad_sum(&g, v).is_none(),
                "{name} must not learn from the discriminator step"
            );
        }
        assert!(grad_sum(&g, &st).is_none());
        // An untrained discriminator is near chance: loss near ln 2.
        assert!((s(&l) - 2f64.ln()).abs() < 0.5);
    }

    #[test]
    fn typed_errors() {
        let k = small(AdversarialMode::Alternating);
        assert!(matches!(
            k.forward(&randn(1, 6, 4, 1.0), &randn(1, 6, 5, 1.0), &labels()),
            Err(Error::ShapeMismatch { .. })
        ));
        let nan = (randn(1, 6, 3, 1.0) * f64::NAN).unwrap();
        assert!(matches!(
            k.forward(&nan, &randn(1, 6, 5, 1.0), &labels()),
            Err(Error::NonFinite {
                tensor: "student",
                ..
            })
        ));
        let c = DiscomKdConfig {
            part_dim: 0,
            ..DiscomKdConfig::new(3, 5)
        };
        assert!(DiscomKd::new(c, 0, DType::F32, &Device::Cpu).is_err());
    }
}
