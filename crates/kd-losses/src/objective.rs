//! The interface every distillation objective implements, and their weighted sum.

use candle_core::{Tensor, Var};

use crate::Result;

/// What an objective sees for one batch. The [`crate::Distiller`] builds it; tests and other
/// training loops can build it by hand.
#[derive(Debug, Clone, Copy)]
pub struct Views<'a> {
    /// Student embeddings `[batch, d_s]`, carrying the gradient back into the student.
    pub student_embedding: &'a Tensor,
    /// Student logits `[batch]` (from the student's own head or the frozen teacher head applied to
    /// the student embedding, see [`crate::LogitSource`]).
    pub student_logit: &'a Tensor,
    /// Frozen teacher embeddings `[batch, d_t]` (detached).
    pub teacher_embedding: &'a Tensor,
    /// Frozen teacher logits `[batch]` (detached).
    pub teacher_logit: &'a Tensor,
    /// Binary labels `[batch]` in {0, 1} (any dtype).
    pub labels: &'a Tensor,
}

/// The value of an objective on a batch: the scalar to minimise and its named components.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// The scalar loss (rank 0) to back-propagate.
    pub total: Tensor,
    /// Named components (rank-0 tensors, before the objective's own weights) for logging and for
    /// adaptive weighting.
    pub parts: Vec<(String, Tensor)>,
}

impl LossTerms {
    /// A loss with no named components other than itself.
    pub fn single(name: &str, total: Tensor) -> Self {
        Self {
            parts: vec![(name.to_string(), total.clone())],
            total,
        }
    }
}

/// A distillation objective: a loss over a batch of student/teacher views, with any trainable parts
/// of its own.
pub trait Objective {
    /// A short name used for logging (`"mse"`, `"hinton"`, ...).
    fn name(&self) -> String;

    /// The loss on one batch.
    fn loss(&self, views: &Views<'_>) -> Result<LossTerms>;

    /// Whether the loss depends on the student logit (so the student head receives a gradient).
    fn uses_student_logit(&self) -> bool;

    /// The objective's own trainable variables (projections, auxiliary encoders, heads) in a fixed
    /// order (sorted by name within each objective); they are optimised together with the student.
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// A part trained in its own alternating step (an adversarial discriminator), if any.
    fn adversary(&self) -> Option<&dyn Adversary> {
        None
    }

    /// Called by the training loop at the end of every epoch with the epoch means of
    /// [`LossTerms::parts`], for objectives that adapt their weights (AFT-KD).
    fn end_epoch(&mut self, _part_means: &[(String, f64)]) {}
}

/// A part of an objective that is trained by its own optimizer in a step that alternates with the
/// main one (the discriminator of an adversarial objective).
pub trait Adversary {
    /// Its trainable variables, sorted by name.
    fn adversary_vars(&self) -> Vec<(String, Var)>;

    /// Its own loss on one batch; it must not send gradient into the student (compute it on detached
    /// features).
    fn adversary_loss(&self, views: &Views<'_>) -> Result<Tensor>;
}

/// A weighted sum of objectives, e.g. the paper's `0.8 * L2 + 0.2 * BCE` or its ablation's
/// `L2 + lambda * AFT-KD`.
pub struct WeightedSum {
    terms: Vec<(f64, Box<dyn Objective>)>,
}

impl std::fmt::Debug for WeightedSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.terms.iter().map(|(w, o)| (w, o.name())))
            .finish()
    }
}

impl WeightedSum {
    /// Sums `terms` with their weights. Fails on an empty list or a negative or non-finite weight.
    pub fn new(terms: Vec<(f64, Box<dyn Objective>)>) -> Result<Self> {
        if terms.is_empty() {
            return Err(crate::Error::Config {
                name: "terms",
                reason: "a weighted sum needs at least one objective".into(),
            });
        }
        for (w, _) in &terms {
            crate::validate::non_negative("weight", *w)?;
        }
        Ok(Self { terms })
    }

    /// The paper's published objective: `0.8 * MSE(e_s, e_t) + 0.2 * BCE(sigmoid(z_s), sigmoid(z_t))`
    /// with the teacher's probability as the target (use with [`crate::LogitSource::TeacherHead`]).
    pub fn paper_default() -> Self {
        Self {
            terms: vec![
                (0.8, Box::new(crate::Mse)),
                (0.2, Box::new(crate::Bce::new(crate::BceConfig::default()))),
            ],
        }
    }
}

impl Objective for WeightedSum {
    fn name(&self) -> String {
        self.terms
            .iter()
            .map(|(w, o)| format!("{w}*{}", o.name()))
            .collect::<Vec<_>>()
            .join("+")
    }

    fn loss(&self, views: &Views<'_>) -> Result<LossTerms> {
        let mut total: Option<Tensor> = None;
        let mut parts = Vec::new();
        for (w, o) in &self.terms {
            let t = o.loss(views)?;
            let name = o.name();
            for (p, v) in t.parts {
                parts.push((format!("{name}.{p}"), v));
            }
            let scaled = t.total.affine(*w, 0.0)?;
            total = Some(match total {
                None => scaled,
                Some(acc) => (acc + scaled)?,
            });
        }
        Ok(LossTerms {
            // `new` refuses an empty list.
            total: total.expect("non-empty weighted sum"),
            parts,
        })
    }

    fn uses_student_logit(&self) -> bool {
        self.terms.iter().any(|(_, o)| o.uses_student_logit())
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.terms
            .iter()
            .flat_map(|(_, o)| o.trainable_vars())
            .collect()
    }

    fn adversary(&self) -> Option<&dyn Adversary> {
        self.terms.iter().find_map(|(_, o)| o.adversary())
    }

    fn end_epoch(&mut self, part_means: &[(String, f64)]) {
        for (_, o) in &mut self.terms {
            let prefix = format!("{}.", o.name());
            let own: Vec<(String, f64)> = part_means
                .iter()
                .filter_map(|(n, v)| n.strip_prefix(&prefix).map(|s| (s.to_string(), *v)))
                .collect();
            o.end_epoch(&own);
        }
    }
}
