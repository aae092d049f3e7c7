//! Training a PE classifier: binary cross-entropy on logits, AdamW, seeded shuffling.
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

/// A model that maps a batch of items to PE logits.
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

    /// One step on `batch` with binary `labels`; returns the loss. Fails on a non-finite loss.
    pub fn step<M: Classifier>(
        &mut self,
        model: &M,
        batch: &[&M::Item],
        labels: &[f32],
    ) -> Result<f64, M::Error> {
        if batch.len() != labels.len() || batch.is_empty() {
            return Err(
                Error::Input(format!("{} items and {} labels", batch.len(), labels.len())).into(),
            );
        }
        let logits = model.logits(batch, true)?;
        let y = Tensor::from_slice(labels, labels.len(), logits.device())?;
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

    /// Trains for `config.epochs` epochs over `(item, label)` pairs in seeded random order, with a
    /// progress bar showing the running loss. Returns the mean loss of each epoch.
    pub fn fit<M: Classifier>(
        &mut self,
        model: &M,
        data: &[(M::Item, f32)],
    ) -> Result<Vec<f64>, M::Error> {
        if data.is_empty() {
            return Err(Error::Input("no training data".into()).into());
        }
        let steps = data.len().div_ceil(self.config.batch_size) * self.config.epochs;
        let bar = cmkd_train::progress::bar(steps as u64, "PE classifier");
        let mut epoch_losses = Vec::with_capacity(self.config.epochs);
        let mut order: Vec<usize> = (0..data.len()).collect();
        for _ in 0..self.config.epochs {
            order.shuffle(&mut self.rng);
            let mut sum = 0.0;
            let mut n = 0;
            for chunk in order.chunks(self.config.batch_size) {
                let items: Vec<&M::Item> = chunk.iter().map(|&i| &data[i].0).collect();
                let labels: Vec<f32> = chunk.iter().map(|&i| data[i].1).collect();
                let loss = self.step(model, &items, &labels)?;
                sum += loss;
                n += 1;
                bar.set_prefix(format!("loss {loss:.4}"));
                bar.inc(1);
            }
            epoch_losses.push(sum / n as f64);
        }
        bar.finish_and_clear();
        Ok(epoch_losses)
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
}
