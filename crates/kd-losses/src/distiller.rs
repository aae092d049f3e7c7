//! One training loop for every objective: a student trained against a frozen teacher.

use candle_core::{DType, Tensor, Var};
use cmkd_train::{clip_grad_norm, AdamW, AdamWConfig};
use serde::{Deserialize, Serialize};

use crate::objective::{Objective, Views};
use crate::{validate, Error, Result};

/// A model that maps an input to an embedding and an embedding to a binary logit: the student (CXR
/// encoder and its head) or the frozen teacher (CTPA encoder and its classifier head).
pub trait EmbeddingClassifier {
    /// `[batch, dim]` embeddings of a batch of inputs.
    fn embedding(&self, input: &Tensor) -> candle_core::Result<Tensor>;
    /// `[batch]` (or `[batch, 1]`) logits of a batch of embeddings.
    fn logit(&self, embedding: &Tensor) -> candle_core::Result<Tensor>;
}

/// A constant `VarBuilder` over copies of the tensors in `map`: a model built from it is frozen
/// (its weights are not variables, so back-propagation neither computes nor stores gradients for
/// them, even where the student's embedding flows through the teacher head).
pub fn frozen_var_builder(
    map: &candle_nn::VarMap,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<candle_nn::VarBuilder<'static>> {
    let mut tensors = std::collections::HashMap::new();
    for (name, var) in cmkd_train::sorted_vars(map) {
        tensors.insert(name, var.as_tensor().detach().copy()?);
    }
    Ok(candle_nn::VarBuilder::from_tensors(tensors, dtype, device))
}

/// Where the student's logit comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogitSource {
    /// The student's own head `g(e_s)` (default).
    #[default]
    StudentHead,
    /// The frozen teacher's head applied to the student embedding, `h(e_s)`, which forces the
    /// student into the teacher's embedding space (the paper's BCE term); needs `d_s = d_t`.
    TeacherHead,
}

/// Hyper-parameters of the [`Distiller`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillerConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Pairs per step.
    pub batch_size: usize,
    /// Optimizer of the student and the objective's trainable parts (also used for an adversary).
    pub optimizer: AdamWConfig,
    /// Global gradient-norm clip, if any.
    pub max_grad_norm: Option<f64>,
    /// Seed of the batch order.
    pub seed: u64,
    /// Source of the student logit.
    pub logit_source: LogitSource,
    /// Spread each class evenly over the batches, so that every batch holds both classes when the
    /// minority class has at least as many samples as there are batches (ProtoKD needs both).
    pub stratified: bool,
}

impl Default for DistillerConfig {
    /// AdamW (PyTorch defaults, lr 1e-3), clipping at 1, 10 epochs of 64 stratified pairs, the
    /// student's own head. (The paper trained its classifiers with AdamW at lr 1e-6, batch 2, on
    /// full-size encoders; set those explicitly to reproduce it.)
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            optimizer: AdamWConfig {
                lr: 1e-3,
                ..Default::default()
            },
            max_grad_norm: Some(1.0),
            seed: 0,
            logit_source: LogitSource::StudentHead,
            stratified: true,
        }
    }
}

/// A paired data set: row `i` of each tensor is one patient.
#[derive(Debug, Clone)]
pub struct PairedData {
    /// Student inputs `[n, ...]` (CXR images or CXR embeddings).
    pub student_inputs: Tensor,
    /// Teacher inputs `[n, ...]` (CTPA volumes or CTPA embeddings).
    pub teacher_inputs: Tensor,
    /// Labels `[n]` in {0, 1}.
    pub labels: Tensor,
}

impl PairedData {
    /// Checks that the three tensors hold the same number of rows and returns it.
    pub fn len(&self) -> Result<usize> {
        let n = self.student_inputs.dim(0)?;
        for (name, t) in [
            ("teacher_inputs", &self.teacher_inputs),
            ("labels", &self.labels),
        ] {
            if t.dim(0)? != n {
                return Err(Error::ShapeMismatch {
                    what: "paired data",
                    left: "student_inputs",
                    left_shape: self.student_inputs.dims().to_vec(),
                    right: name,
                    right_shape: t.dims().to_vec(),
                });
            }
        }
        Ok(n)
    }

    /// Whether the data set has no rows.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    fn rows(&self, idx: &[usize]) -> Result<(Tensor, Tensor, Tensor)> {
        let ix: Vec<u32> = idx.iter().map(|i| *i as u32).collect();
        let ix = Tensor::new(ix.as_slice(), self.student_inputs.device())?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            let i = ix.to_device(t.device())?;
            Ok(t.index_select(&i, 0)?)
        };
        Ok((
            pick(&self.student_inputs)?,
            pick(&self.teacher_inputs)?,
            pick(&self.labels)?,
        ))
    }
}

/// A loss, its named parts and the adversary's loss: one step's values, or their means over an
/// epoch or a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossStats {
    /// The total loss.
    pub loss: f64,
    /// The named parts.
    pub parts: Vec<(String, f64)>,
    /// The adversary's own loss, when the objective has one.
    pub adversary_loss: Option<f64>,
}

/// Trains a student against a frozen teacher with any [`Objective`].
///
/// Each step: the teacher's embedding and logit are computed and detached; if the objective has an
/// [`crate::Adversary`], it takes its own AdamW step first; then the objective's loss is checked to
/// be finite, back-propagated, clipped and applied by AdamW (`cmkd_train`) to the student's and the
/// objective's variables. The teacher is never updated. Batch order comes from a seeded generator.
pub struct Distiller<S, T> {
    student: S,
    teacher: T,
    objective: Box<dyn Objective>,
    config: DistillerConfig,
    vars: Vec<(String, Var)>,
    optimizer: AdamW,
    adversary_vars: Vec<(String, Var)>,
    adversary_optimizer: Option<AdamW>,
    step: usize,
    epoch: usize,
}

impl<S, T> std::fmt::Debug for Distiller<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distiller")
            .field("objective", &self.objective.name())
            .field("config", &self.config)
            .field("step", &self.step)
            .finish()
    }
}

/// Batches of row indices for one epoch.
fn batches(
    classes: &[u8],
    size: usize,
    rng: &mut rand::rngs::StdRng,
    stratified: bool,
) -> Vec<Vec<usize>> {
    let n = classes.len();
    let order: Vec<usize> = if stratified {
        // Shuffle each class, then interleave them in proportion so that every window of the
        // sequence holds each class at its overall rate.
        let mut pools: Vec<Vec<usize>> = (0..2u8)
            .map(|k| {
                let members: Vec<usize> = (0..n).filter(|i| classes[*i] == k).collect();
                let p = cmkd_train::rng::permutation(rng, members.len());
                p.into_iter().map(|j| members[j]).collect()
            })
            .collect();
        let totals = [pools[0].len() as f64, pools[1].len() as f64];
        let mut taken = [0usize; 2];
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            // Take from the class furthest behind its share.
            let lag = |k: usize| (out.len() as f64 + 1.0) * totals[k] / n as f64 - taken[k] as f64;
            let k = if taken[0] == pools[0].len() {
                1
            } else if taken[1] == pools[1].len() || lag(0) >= lag(1) {
                0
            } else {
                1
            };
            out.push(pools[k][taken[k]]);
            taken[k] += 1;
        }
        pools.clear();
        out
    } else {
        cmkd_train::rng::permutation(rng, n)
    };
    let mut out: Vec<Vec<usize>> = order.chunks(size).map(|c| c.to_vec()).collect();
    // A short last batch (e.g. a single pair, which has no negatives) joins the previous one.
    if out.len() > 1 && out.last().map_or(0, |b| b.len()) < size.div_ceil(2) {
        let last = out.pop().unwrap_or_default();
        if let Some(prev) = out.last_mut() {
            prev.extend(last);
        }
    }
    out
}

impl<S: EmbeddingClassifier, T: EmbeddingClassifier> Distiller<S, T> {
    /// A distiller for `student` (whose trainable variables are `student_vars`, e.g.
    /// `cmkd_train::sorted_vars(&map)`) against the frozen `teacher`. Build the teacher from
    /// constant tensors ([`frozen_var_builder`], `VarBuilder::from_mmaped_safetensors`) so that no
    /// gradient is even computed for it; its outputs are detached in any case.
    pub fn new(
        student: S,
        student_vars: Vec<(String, Var)>,
        teacher: T,
        objective: Box<dyn Objective>,
        config: DistillerConfig,
    ) -> Result<Self> {
        if config.batch_size < 2 {
            return Err(Error::Config {
                name: "batch_size",
                reason: format!("must be >= 2, got {}", config.batch_size),
            });
        }
        if let Some(m) = config.max_grad_norm {
            validate::positive("max_grad_norm", m)?;
        }
        let mut vars = student_vars;
        vars.extend(objective.trainable_vars());
        let optimizer = AdamW::new(vars.clone(), config.optimizer)?;
        let (adversary_vars, adversary_optimizer) = match objective.adversary() {
            Some(a) => {
                let av = a.adversary_vars();
                let opt = AdamW::new(av.clone(), config.optimizer)?;
                (av, Some(opt))
            }
            None => (Vec::new(), None),
        };
        Ok(Self {
            student,
            teacher,
            objective,
            config,
            vars,
            optimizer,
            adversary_vars,
            adversary_optimizer,
            step: 0,
            epoch: 0,
        })
    }

    /// The student.
    pub fn student(&self) -> &S {
        &self.student
    }

    /// The teacher.
    pub fn teacher(&self) -> &T {
        &self.teacher
    }

    /// The objective.
    pub fn objective(&self) -> &dyn Objective {
        self.objective.as_ref()
    }

    /// The variables the main optimizer updates (student first, then the objective's), by name.
    pub fn trainable_vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The variables the adversary's optimizer updates (empty without an adversary).
    pub fn adversary_vars(&self) -> &[(String, Var)] {
        &self.adversary_vars
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Splits back into the student, the teacher and the objective.
    pub fn into_parts(self) -> (S, T, Box<dyn Objective>) {
        (self.student, self.teacher, self.objective)
    }

    fn teacher_views(&self, teacher_inputs: &Tensor) -> Result<(Tensor, Tensor)> {
        // Checked here because a NaN input can vanish inside a model (ReLU maps NaN to 0).
        validate::finite("distiller", "teacher_inputs", teacher_inputs)?;
        let e_t = self.teacher.embedding(teacher_inputs)?.detach();
        let z_t = self.teacher.logit(&e_t)?.detach();
        Ok((e_t, z_t))
    }

    fn student_views(&self, student_inputs: &Tensor) -> Result<(Tensor, Tensor)> {
        validate::finite("distiller", "student_inputs", student_inputs)?;
        let e_s = self.student.embedding(student_inputs)?;
        let z_s = match self.config.logit_source {
            LogitSource::StudentHead => self.student.logit(&e_s)?,
            LogitSource::TeacherHead => self.teacher.logit(&e_s)?,
        };
        Ok((e_s, z_s))
    }

    /// The loss terms on one batch, with the graph for backward.
    pub fn batch_loss(
        &self,
        student_inputs: &Tensor,
        teacher_inputs: &Tensor,
        labels: &Tensor,
    ) -> Result<crate::LossTerms> {
        let (e_t, z_t) = self.teacher_views(teacher_inputs)?;
        let (e_s, z_s) = self.student_views(student_inputs)?;
        let views = Views {
            student_embedding: &e_s,
            student_logit: &z_s,
            teacher_embedding: &e_t,
            teacher_logit: &z_t,
            labels,
        };
        self.objective.loss(&views)
    }

    /// One optimizer step (and one adversary step first, if any) on a batch; returns the losses
    /// before the update.
    pub fn train_step(
        &mut self,
        student_inputs: &Tensor,
        teacher_inputs: &Tensor,
        labels: &Tensor,
    ) -> Result<LossStats> {
        let (e_t, z_t) = self.teacher_views(teacher_inputs)?;
        let (e_s, z_s) = self.student_views(student_inputs)?;
        let views = Views {
            student_embedding: &e_s,
            student_logit: &z_s,
            teacher_embedding: &e_t,
            teacher_logit: &z_t,
            labels,
        };
        let mut adv = None;
        if let (Some(a), Some(opt)) = (
            self.objective.adversary(),
            self.adversary_optimizer.as_mut(),
        ) {
            let l = a.adversary_loss(&views)?;
            adv = Some(cmkd_train::guard::finite_scalar(
                &l,
                "adversary loss",
                self.step,
            )?);
            let mut g = l.backward()?;
            if let Some(m) = self.config.max_grad_norm {
                clip_grad_norm(&mut g, &self.adversary_vars, m, self.step)?;
            }
            opt.step(&g)?;
        }
        let terms = self.objective.loss(&views)?;
        let total = cmkd_train::guard::finite_scalar(&terms.total, "loss", self.step)?;
        let parts = terms
            .parts
            .iter()
            .map(|(n, t)| Ok((n.clone(), scalar(t)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut grads = terms.total.backward()?;
        if let Some(m) = self.config.max_grad_norm {
            clip_grad_norm(&mut grads, &self.vars, m, self.step)?;
        }
        self.optimizer.step(&grads)?;
        self.step += 1;
        Ok(LossStats {
            loss: total,
            parts,
            adversary_loss: adv,
        })
    }

    fn epoch_batches(&self, data: &PairedData, epoch: u64) -> Result<Vec<Vec<usize>>> {
        let n = data.len()?;
        if n < 2 {
            return Err(Error::BadShape {
                what: "distiller",
                tensor: "student_inputs",
                shape: data.student_inputs.dims().to_vec(),
                expected: "at least 2 rows".into(),
            });
        }
        let (classes, _) = validate::labels("distiller", &data.labels, n, DType::F32)?;
        let mut rng = cmkd_train::rng::stream(
            self.config.seed ^ epoch.wrapping_mul(0x9e37_79b9),
            "kd-batches",
        );
        Ok(batches(
            &classes,
            self.config.batch_size,
            &mut rng,
            self.config.stratified,
        ))
    }

    /// Trains for `config.epochs` epochs over `data`, showing a progress bar; returns each epoch's
    /// mean training loss and parts. The objective's [`Objective::end_epoch`] is called after every
    /// epoch.
    pub fn fit(&mut self, data: &PairedData) -> Result<Vec<LossStats>> {
        let plan = cmkd_train::fit::Plan {
            start_epoch: self.epoch,
            epochs: self.epoch + self.config.epochs,
            skip: 0,
            steps_per_epoch: self.epoch_batches(data, 0)?.len(),
            name: &self.objective.name(),
        };
        cmkd_train::fit::fit(
            &mut DistillerSteps {
                distiller: self,
                data,
            },
            plan,
            &mut |_| cmkd_train::fit::Control::Continue,
        )
    }

    /// Mean loss and parts over `data` in batches of `config.batch_size`, without updating anything.
    pub fn evaluate(&self, data: &PairedData) -> Result<LossStats> {
        let plan = self.epoch_batches(data, 0)?;
        let mut acc = Accumulator::default();
        for idx in &plan {
            let (xs, xt, y) = data.rows(idx)?;
            let terms = self.batch_loss(&xs, &xt, &y)?;
            let parts = terms
                .parts
                .iter()
                .map(|(n, t)| Ok((n.clone(), scalar(t)?)))
                .collect::<Result<Vec<_>>>()?;
            acc.add(scalar(&terms.total)?, &parts, None);
        }
        Ok(acc.finish())
    }

    /// Student embeddings of `inputs`, computed in batches and detached.
    pub fn embed(&self, inputs: &Tensor) -> Result<Tensor> {
        let n = inputs.dim(0)?;
        let mut out = Vec::new();
        let mut i = 0;
        while i < n {
            let len = self.config.batch_size.min(n - i);
            out.push(self.student.embedding(&inputs.narrow(0, i, len)?)?.detach());
            i += len;
        }
        Ok(Tensor::cat(&out, 0)?)
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// A distiller's epochs for [`cmkd_train::fit::fit`]: class-stratified batches drawn per epoch
/// from the seed and the epoch.
struct DistillerSteps<'a, 'd, S, T> {
    distiller: &'a mut Distiller<S, T>,
    data: &'d PairedData,
}

impl<S: EmbeddingClassifier, T: EmbeddingClassifier> cmkd_train::fit::Steps
    for DistillerSteps<'_, '_, S, T>
{
    type Step = LossStats;
    type Epoch = LossStats;
    type Error = Error;

    fn batches(&mut self, epoch: usize) -> Result<Vec<Vec<usize>>> {
        self.distiller.epoch_batches(self.data, epoch as u64)
    }

    fn step(&mut self, rows: &[usize]) -> Result<LossStats> {
        let (xs, xt, y) = self.data.rows(rows)?;
        self.distiller.train_step(&xs, &xt, &y)
    }

    fn loss(step: &LossStats) -> f64 {
        step.loss
    }

    fn end_epoch(&mut self, _epoch: usize, steps: Vec<LossStats>) -> Result<LossStats> {
        let mut acc = Accumulator::default();
        for st in &steps {
            acc.add(st.loss, &st.parts, st.adversary_loss);
        }
        let stats = acc.finish();
        self.distiller.objective.end_epoch(&stats.parts);
        self.distiller.epoch += 1;
        Ok(stats)
    }
}

#[derive(Default)]
struct Accumulator {
    n: usize,
    loss: f64,
    parts: Vec<(String, f64)>,
    adv: Option<f64>,
}

impl Accumulator {
    fn add(&mut self, loss: f64, parts: &[(String, f64)], adv: Option<f64>) {
        self.n += 1;
        self.loss += loss;
        if self.parts.is_empty() {
            self.parts = parts.to_vec();
        } else {
            for ((_, a), (_, v)) in self.parts.iter_mut().zip(parts) {
                *a += v;
            }
        }
        if let Some(a) = adv {
            *self.adv.get_or_insert(0.0) += a;
        }
    }

    fn finish(self) -> LossStats {
        let n = self.n.max(1) as f64;
        LossStats {
            loss: self.loss / n,
            parts: self.parts.into_iter().map(|(k, v)| (k, v / n)).collect(),
            adversary_loss: self.adv.map(|a| a / n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn stratified_batches_hold_both_classes_and_every_row_once() {
        let classes: Vec<u8> = (0..100).map(|i| u8::from(i % 5 == 0)).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let b = batches(&classes, 16, &mut rng, true);
        let mut seen: Vec<usize> = b.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for batch in &b {
            assert!(batch.iter().any(|i| classes[*i] == 1), "{batch:?}");
            assert!(batch.iter().any(|i| classes[*i] == 0));
        }
        // 100 = 6 * 16 + 4: the short tail joins the last batch.
        assert_eq!(b.len(), 6);
        let plain = batches(&classes, 16, &mut rng, false);
        assert_eq!(plain.iter().map(Vec::len).sum::<usize>(), 100);
    }
}
