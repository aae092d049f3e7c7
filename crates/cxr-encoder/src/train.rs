//! Training a classifier: binary cross-entropy on logits, AdamW, seeded shuffling.
//!
//! One logit per item is the PE classifier; several logits per item (`(batch, k)`) with a
//! [`Targets`] of `k` values per item is a multi-label classifier (e.g. a backbone pretrained on
//! generic chest findings, CheXpert-style, that never sees a PE label).
//!
//! Shared by both encoder crates through the [`Classifier`] trait (`ctpa-encoder` implements it for
//! its volume encoder). The paper trains its classifiers with AdamW at lr 1e-6 and batch size 2 when
//! fine-tuning pretrained parts; [`FitConfig::paper`] holds those values.

use candle_core::{Tensor, Var};
use cmkd_train::{AdamW, AdamWConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The binary target(s) of one item: a single label, or one value per output of a multi-label
/// classifier, each in `[0, 1]`.
pub trait Targets {
    /// The values, in the order of the model's outputs.
    fn values(&self) -> &[f32];
}

impl Targets for f32 {
    fn values(&self) -> &[f32] {
        std::slice::from_ref(self)
    }
}

impl Targets for Vec<f32> {
    fn values(&self) -> &[f32] {
        self
    }
}

impl<const K: usize> Targets for [f32; K] {
    fn values(&self) -> &[f32] {
        self
    }
}

/// A model that maps a batch of items to logits: `(batch,)` for one label, `(batch, k)` for `k`.
pub trait Classifier {
    /// One input (an X-ray, a CT volume).
    type Item;
    /// The model crate's error type.
    type Error: From<Error> + From<candle_core::Error> + From<cmkd_train::Error>;
    /// Logits `(batch,)` for `batch`; `train` turns on training-mode behaviour (batch norm).
    fn logits(&self, batch: &[&Self::Item], train: bool) -> Result<Tensor, Self::Error>;
    /// The variables to optimise, sorted by name.
    fn trainable_vars(&self) -> Vec<(String, Var)>;
}

/// Numerically stable mean binary cross-entropy of `logits` against `targets` in `[0, 1]`:
/// `max(x, 0) - x * y + log(1 + exp(-|x|))`, composed of ops that carry a gradient.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let targets = targets.to_dtype(logits.dtype())?;
    if logits.dims() != targets.dims() {
        return Err(Error::Input(format!(
            "logits {:?} and targets {:?} differ in shape",
            logits.dims(),
            targets.dims()
        )));
    }
    let softplus = ((logits.abs()?.neg()?.exp()? + 1.0)?).log()?;
    Ok(((logits.relu()? - (logits * &targets)?)? + softplus)?.mean_all()?)
}

/// Options of [`ClassifierTrainer`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Optimizer settings.
    pub optimizer: AdamWConfig,
    /// Items per step.
    pub batch_size: usize,
    /// Passes over the data in [`ClassifierTrainer::fit`].
    pub epochs: usize,
    /// Global gradient-norm clip, if any.
    pub max_grad_norm: Option<f64>,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl FitConfig {
    /// The paper's classifier recipe: AdamW, lr 1e-6, batch size 2.
    pub fn paper(epochs: usize) -> Self {
        Self {
            optimizer: AdamWConfig {
                lr: 1e-6,
                ..Default::default()
            },
            batch_size: 2,
            epochs,
            max_grad_norm: None,
            seed: 0,
        }
    }
}

/// Runs optimisation steps of a [`Classifier`].
pub struct ClassifierTrainer {
    opt: AdamW,
    vars: Vec<(String, Var)>,
    config: FitConfig,
    rng: rand::rngs::StdRng,
}

impl ClassifierTrainer {
    /// An optimizer over `model`'s trainable variables.
    pub fn new<M: Classifier>(model: &M, config: FitConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        let vars = model.trainable_vars();
        let opt = AdamW::new(vars.clone(), config.optimizer)?;
        Ok(Self {
            opt,
            vars,
            config,
            rng: rand::rngs::StdRng::seed_from_u64(config.seed),
        })
    }

    /// The optimizer (for its state, learning rate and step count).
    pub fn optimizer(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// One step on `batch` with binary `labels` (item-major: `k` values per item for a model with
    /// `k` outputs); returns the mean BCE over all outputs. Fails on a non-finite loss.
    pub fn step<M: Classifier>(
        &mut self,
        model: &M,
        batch: &[&M::Item],
        labels: &[f32],
    ) -> Result<f64, M::Error> {
        if batch.is_empty() || labels.is_empty() || labels.len() % batch.len() != 0 {
            return Err(
                Error::Input(format!("{} items and {} labels", batch.len(), labels.len())).into(),
            );
        }
        let logits = model.logits(batch, true)?;
        if logits.elem_count() != labels.len() {
            return Err(Error::Input(format!(
                "the model gave logits {:?} for {} items with {} labels",
                logits.dims(),
                batch.len(),
                labels.len()
            ))
            .into());
        }
        let y = Tensor::from_slice(labels, logits.shape(), logits.device())?;
        let loss = bce_with_logits(&logits, &y)?;
        let value =
            cmkd_train::guard::finite_scalar(&loss, "classifier loss", self.opt.step_count())?;
        let mut grads = loss.backward()?;
        if let Some(max) = self.config.max_grad_norm {
            cmkd_train::clip_grad_norm(&mut grads, &self.vars, max, self.opt.step_count())?;
        }
        self.opt.step(&grads)?;
        Ok(value)
    }

    /// Trains for `config.epochs` epochs over `(item, targets)` pairs in seeded random order, with a
    /// progress bar showing the running loss. Returns the mean loss of each epoch.
    pub fn fit<M: Classifier, T: Targets>(
        &mut self,
        model: &M,
        data: &[(M::Item, T)],
    ) -> Result<Vec<f64>, M::Error> {
        if data.is_empty() {
            return Err(Error::Input("no training data".into()).into());
        }
        let plan = cmkd_train::fit::Plan {
            start_epoch: 0,
            epochs: self.config.epochs,
            skip: 0,
            steps_per_epoch: data.len().div_ceil(self.config.batch_size),
            name: "classifier",
        };
        let mut steps = ClassifierSteps {
            order: (0..data.len()).collect(),
            trainer: self,
            model,
            data,
        };
        cmkd_train::fit::fit(&mut steps, plan, &mut |_| {
            cmkd_train::fit::Control::Continue
        })
    }
}

/// A classifier's epochs for [`cmkd_train::fit::fit`]: one order of the items, shuffled again by
/// the trainer's generator at the start of every epoch.
struct ClassifierSteps<'a, M: Classifier, T> {
    trainer: &'a mut ClassifierTrainer,
    model: &'a M,
    data: &'a [(M::Item, T)],
    order: Vec<usize>,
}

impl<M: Classifier, T: Targets> cmkd_train::fit::Steps for ClassifierSteps<'_, M, T> {
    type Step = f64;
    type Epoch = f64;
    type Error = M::Error;

    fn batches(&mut self, _epoch: usize) -> Result<Vec<Vec<usize>>, M::Error> {
        self.order.shuffle(&mut self.trainer.rng);
        Ok(self
            .order
            .chunks(self.trainer.config.batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    fn step(&mut self, rows: &[usize]) -> Result<f64, M::Error> {
        let items: Vec<&M::Item> = rows.iter().map(|&i| &self.data[i].0).collect();
        let labels: Vec<f32> = rows
            .iter()
            .flat_map(|&i| self.data[i].1.values().iter().copied())
            .collect();
        self.trainer.step(self.model, &items, &labels)
    }

    fn loss(step: &f64) -> f64 {
        *step
    }

    /// The mean loss of the epoch's steps.
    fn end_epoch(&mut self, _epoch: usize, steps: Vec<f64>) -> Result<f64, M::Error> {
        let mut sum = 0.0;
        for l in &steps {
            sum += l;
        }
        Ok(sum / steps.len() as f64)
    }
}

/// PE probabilities of `items` in evaluation mode, `batch_size` at a time.
pub fn predict_proba<M: Classifier>(
    model: &M,
    items: &[&M::Item],
    batch_size: usize,
) -> Result<Vec<f32>, M::Error> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch_size.max(1)) {
        let p = candle_nn::ops::sigmoid(&model.logits(chunk, false)?)?;
        out.extend(p.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bce_matches_closed_form_and_finite_differences() {
        let dev = Device::Cpu;
        let x = Var::new(&[-30.0f64, -1.0, 0.0, 2.5, 40.0], &dev).unwrap();
        let y = Tensor::new(&[0.0f64, 1.0, 0.5, 1.0, 0.0], &dev).unwrap();
        let l = bce_with_logits(x.as_tensor(), &y).unwrap();
        let xs = [-30.0f64, -1.0, 0.0, 2.5, 40.0];
        let ys = [0.0, 1.0, 0.5, 1.0, 0.0];
        let f = |xs: &[f64]| -> f64 {
            xs.iter()
                .zip(ys)
                .map(|(x, y)| {
                    // -log sigmoid(x) = log(1 + e^-x), -log(1 - sigmoid(x)) = log(1 + e^x).
                    y * (-x).exp().ln_1p() + (1.0 - y) * x.exp().ln_1p()
                })
                .sum::<f64>()
                / 5.0
        };
        let v = l.to_scalar::<f64>().unwrap();
        assert!((v - f(&xs)).abs() < 1e-9, "{v} vs {}", f(&xs));
        let g = l
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 1..4 {
            let (mut a, mut b) = (xs, xs);
            a[i] += 1e-6;
            b[i] -= 1e-6;
            let fd = (f(&a) - f(&b)) / 2e-6;
            assert!((g[i] - fd).abs() < 1e-6, "{i}: {} vs {fd}", g[i]);
        }
        assert!(bce_with_logits(x.as_tensor(), &Tensor::new(&[1.0f64], &dev).unwrap()).is_err());
    }

    /// A linear model with `k` outputs over 2-d points.
    struct Linear2 {
        map: candle_nn::VarMap,
        lin: candle_nn::Linear,
        k: usize,
    }

    impl Classifier for Linear2 {
        type Item = [f32; 2];
        type Error = Error;
        fn logits(&self, batch: &[&[f32; 2]], _train: bool) -> Result<Tensor> {
            let flat: Vec<f32> = batch.iter().flat_map(|p| p.iter().copied()).collect();
            let x = Tensor::from_vec(flat, (batch.len(), 2), &Device::Cpu)?;
            let y = candle_core::Module::forward(&self.lin, &x)?;
            Ok(if self.k == 1 { y.squeeze(1)? } else { y })
        }
        fn trainable_vars(&self) -> Vec<(String, Var)> {
            cmkd_train::sorted_vars(&self.map)
        }
    }

    fn linear2(k: usize) -> Linear2 {
        let map = candle_nn::VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, 3, candle_core::DType::F32, &Device::Cpu);
        let lin = candle_nn::linear(2, k, vb).unwrap();
        Linear2 { map, lin, k }
    }

    #[test]
    fn multi_label_targets_train_each_output_and_shapes_are_checked() {
        // Output 0 is "x > 0", output 1 is "y > 0": each needs its own column of the weights.
        let data: Vec<([f32; 2], [f32; 2])> = (0..64)
            .map(|i| {
                let x = ((i * 37) % 64) as f32 / 32.0 - 1.0 + 1.0 / 64.0;
                let y = ((i * 11) % 64) as f32 / 32.0 - 1.0 + 1.0 / 64.0;
                (
                    [x, y],
                    [f32::from(u8::from(x > 0.0)), f32::from(u8::from(y > 0.0))],
                )
            })
            .collect();
        let model = linear2(2);
        let cfg = FitConfig {
            optimizer: AdamWConfig {
                lr: 0.05,
                ..Default::default()
            },
            batch_size: 16,
            epochs: 60,
            max_grad_norm: None,
            seed: 1,
        };
        let losses = ClassifierTrainer::new(&model, cfg)
            .unwrap()
            .fit(&model, &data)
            .unwrap();
        assert!(losses.last().unwrap() < &0.3, "{losses:?}");
        let items: Vec<&[f32; 2]> = data.iter().map(|d| &d.0).collect();
        let logits = model
            .logits(&items, false)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Each output separates its own label (a point at the boundary may fall either side).
        for j in 0..2 {
            let right = logits
                .iter()
                .zip(&data)
                .filter(|(row, (_, t))| (row[j] > 0.0) == (t[j] > 0.5))
                .count();
            assert!(right >= 60, "output {j}: {right} of 64 right");
        }
        // One label per item for a two-output model is a named error, not a broadcast.
        let mut trainer = ClassifierTrainer::new(&model, cfg).unwrap();
        let e = trainer.step(&model, &items[..2], &[1.0, 0.0]).unwrap_err();
        assert!(e.to_string().contains("logits"), "{e}");
        let single = linear2(1);
        let one: Vec<([f32; 2], f32)> = data.iter().map(|(p, t)| (*p, t[0])).collect();
        let l = ClassifierTrainer::new(&single, cfg)
            .unwrap()
            .fit(&single, &one)
            .unwrap();
        assert!(l.last().unwrap() < l.first().unwrap());
    }
}
