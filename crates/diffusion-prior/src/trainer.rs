//! Training: AdamW with the published settings, linear warm-up, gradient clipping, EMA, an optional
//! caller-supplied extra loss on the predicted embedding, checkpoints with exact resume.

use std::path::Path;

use candle_core::{Device, Tensor};
use cmkd_train::{AdamW, AdamWConfig, Ema, EmaConfig, LrSchedule};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, FileDigest};
use crate::error::{config_err, Error, Result};
use crate::prior::{check_embeddings, DiffusionPrior};

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Number of passes over the data.
    pub epochs: usize,
    /// Rows per step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// AdamW settings (weight decay applies to matrices only).
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule over optimizer steps.
    pub lr_schedule: LrSchedule,
    /// Global gradient-norm clip (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Exponential moving average of the weights (`None`: none).
    pub ema: Option<EmaConfig>,
    /// Weight of the MSE term (the published "custom" loss uses 0.8 with 0.2 on its BCE).
    pub mse_weight: f64,
    /// Shuffle the rows every epoch (the published script does not).
    pub shuffle: bool,
    /// Seed of every random draw (noise, timesteps, guidance masks, dropout, shuffling).
    pub seed: u64,
}

impl TrainerConfig {
    /// The published run: AdamW lr 1.1e-4, weight decay 6.02e-2, betas (0.9, 0.99), eps 1e-6,
    /// 50 warm-up steps, clip 0.5, ema_pytorch's default EMA (its own settings never reach it),
    /// batch 64, 1000 epochs, seed 84513, no shuffling.
    pub fn published() -> Self {
        Self {
            epochs: 1000,
            batch_size: 64,
            optimizer: AdamWConfig {
                lr: 1.1e-4,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-6,
                weight_decay: 6.02e-2,
            },
            lr_schedule: LrSchedule::LinearWarmup { warmup_steps: 50 },
            max_grad_norm: Some(0.5),
            ema: Some(EmaConfig::default()),
            mse_weight: 1.0,
            shuffle: false,
            seed: 84513,
        }
    }
}

/// Paired training data (raw, un-normalised embeddings), checked once.
#[derive(Debug, Clone)]
pub struct PairedData {
    cond: Tensor,
    target: Tensor,
}

impl PairedData {
    /// `cond` `(n, cond_dim)` and `target` `(n, embed_dim)`; fails on empty, mismatched or
    /// non-finite input, naming the tensor and the row.
    pub fn new(cond: Tensor, target: Tensor) -> Result<Self> {
        let cd = *cond.dims().last().unwrap_or(&0);
        let td = *target.dims().last().unwrap_or(&0);
        let n = check_embeddings("cond", &cond, cd)?;
        let m = check_embeddings("target", &target, td)?;
        if n != m {
            return Err(Error::Shape {
                what: "target",
                got: target.dims().to_vec(),
                expected: format!("{n} rows, as many as the conditions"),
            });
        }
        Ok(Self { cond, target })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.cond.dims()[0]
    }

    /// Never true (construction rejects empty data); present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The conditions.
    pub fn cond(&self) -> &Tensor {
        &self.cond
    }

    /// The targets.
    pub fn target(&self) -> &Tensor {
        &self.target
    }
}

/// What a caller's extra loss sees for one batch.
#[derive(Debug)]
pub struct ExtraLossInput<'a> {
    /// The predicted clean embedding in the caller's space (normalisation undone), `(b, embed_dim)`;
    /// gradients of the returned loss flow through it into the prior.
    pub pred: &'a Tensor,
    /// The true target embeddings of the batch, `(b, embed_dim)`.
    pub target: &'a Tensor,
    /// The conditions of the batch, `(b, cond_dim)`.
    pub cond: &'a Tensor,
    /// Row indices of the batch in the data set (e.g. to look up labels).
    pub indices: &'a [usize],
    /// Optimizer step.
    pub step: usize,
}

/// A caller-supplied loss term added to the weighted MSE; must return a scalar tensor.
pub type ExtraLoss<'a> = dyn FnMut(&ExtraLossInput) -> Result<Tensor> + 'a;

/// Numbers from one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Total loss.
    pub loss: f64,
    /// The MSE term (before weighting).
    pub mse: f64,
    /// The extra term (0 without one).
    pub extra: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Per-epoch metrics handed to the callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Optimizer steps taken so far in total.
    pub step: usize,
    /// Mean total loss over the epoch's steps.
    pub loss: f64,
    /// Mean MSE term.
    pub mse: f64,
    /// Mean extra term.
    pub extra: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
}

/// What the callback tells the trainer (the workspace's one training loop's).
pub use cmkd_train::fit::Control;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    format: String,
    config: TrainerConfig,
    step: usize,
    epoch: usize,
    ema_step: usize,
    /// Snapshot folder holding the files (absent in format 1, whose files sit beside it).
    #[serde(default)]
    snapshot: Option<String>,
    /// Size and hash of every file of the snapshot (empty in format 1).
    #[serde(default)]
    files: Vec<FileDigest>,
}

const FORMAT: &str = "cmkd-diffusion-prior-trainer/2";
/// The first layout: files beside `trainer.json`, written one by one, no manifest. Still read.
const FORMAT_V1: &str = "cmkd-diffusion-prior-trainer/1";
const STATE_FILE: &str = "trainer.json";
const OPTIM_FILE: &str = "optimizer.safetensors";
const EMA_FILE: &str = "ema.safetensors";
const MODEL_DIR: &str = "model";
const MODEL_WEIGHTS: &str = "model/model.safetensors";
const MODEL_CONFIG: &str = "model/config.json";

/// Trains a [`DiffusionPrior`].
pub struct Trainer {
    prior: DiffusionPrior,
    config: TrainerConfig,
    opt: AdamW,
    ema: Option<Ema>,
    vars: Vec<(String, candle_core::Var)>,
    step: usize,
    epoch: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("step", &self.step)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Trainer {
    /// A trainer for `prior` (which it owns until [`Trainer::into_prior`]).
    pub fn new(prior: DiffusionPrior, config: TrainerConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(config_err("batch_size", "must be positive"));
        }
        if !(config.mse_weight.is_finite() && config.mse_weight >= 0.0) {
            return Err(config_err(
                "mse_weight",
                format!("must be finite and >= 0, got {}", config.mse_weight),
            ));
        }
        let vars = prior.vars();
        let opt = AdamW::new(vars.clone(), config.optimizer)?;
        let ema = match config.ema {
            Some(c) => Some(Ema::new(&vars, c)?),
            None => None,
        };
        Ok(Self {
            prior,
            config,
            opt,
            ema,
            vars,
            step: 0,
            epoch: 0,
        })
    }

    /// The prior being trained (online weights).
    pub fn prior(&self) -> &DiffusionPrior {
        &self.prior
    }

    /// Mutable access, e.g. to store Analytic-DPM statistics.
    pub fn prior_mut(&mut self) -> &mut DiffusionPrior {
        &mut self.prior
    }

    /// Gives the prior back.
    pub fn into_prior(self) -> DiffusionPrior {
        self.prior
    }

    /// The settings.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Optimizer steps taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// A copy of the prior with the EMA weights (or the online weights without EMA), for sampling.
    pub fn ema_prior(&self) -> Result<DiffusionPrior> {
        let copy = self.prior.deep_copy()?;
        if let Some(ema) = &self.ema {
            ema.copy_to(&copy.vars())?;
        }
        Ok(copy)
    }

    fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.config.batch_size)
    }

    fn epoch_order(&self, epoch: usize, n: usize) -> Vec<usize> {
        if self.config.shuffle {
            let mut rng = cmkd_train::rng::stream(self.config.seed, &format!("epoch/{epoch}"));
            cmkd_train::rng::permutation(&mut rng, n)
        } else {
            (0..n).collect()
        }
    }

    /// One optimizer step on the rows `indices` of `data`.
    pub fn train_step(
        &mut self,
        data: &PairedData,
        indices: &[usize],
        extra: Option<&mut ExtraLoss>,
    ) -> Result<StepStats> {
        if indices.is_empty() {
            return Err(Error::Empty { what: "batch" });
        }
        let step = self.step;
        let dev = self.prior.device().clone();
        let idx = Tensor::from_vec(
            indices.iter().map(|i| *i as u32).collect::<Vec<_>>(),
            indices.len(),
            data.cond.device(),
        )?;
        let cond = data.cond.index_select(&idx, 0)?.to_device(&dev)?;
        let target = data.target.index_select(&idx, 0)?.to_device(&dev)?;
        // One generator per step: a resumed run draws exactly what the uninterrupted one would.
        let mut rng = cmkd_train::rng::stream(self.config.seed, &format!("step/{step}"));
        let parts = self.prior.loss(&cond, &target, &mut rng, true)?;
        let mse = cmkd_train::guard::finite_scalar(&parts.mse, "mse loss", step)?;
        let mut loss = (&parts.mse * self.config.mse_weight)?;
        let mut extra_v = 0.0;
        if let Some(f) = extra {
            let tgt = target.to_dtype(parts.pred.dtype())?;
            let e = f(&ExtraLossInput {
                pred: &parts.pred,
                target: &tgt,
                cond: &cond,
                indices,
                step,
            })?;
            if e.elem_count() != 1 {
                return Err(Error::Shape {
                    what: "extra loss",
                    got: e.dims().to_vec(),
                    expected: "a scalar".into(),
                });
            }
            let e = e.reshape(())?.to_dtype(loss.dtype())?;
            extra_v = cmkd_train::guard::finite_scalar(&e, "extra loss", step)?;
            loss = (loss + e)?;
        }
        let total = cmkd_train::guard::finite_scalar(&loss, "loss", step)?;
        let grads = loss.backward()?;
        // Clipping is folded into the optimizer's pass (the same update without scaled copies of
        // 48.8M gradient values for the published network).
        let (grad_norm, clip) = match self.config.max_grad_norm {
            Some(m) => cmkd_train::clip_coefficient(&grads, &self.vars, m, step)?,
            None => {
                let g = cmkd_train::grad_norm(&grads, &self.vars)?;
                if !g.is_finite() {
                    return Err(cmkd_train::Error::NonFinite {
                        what: "gradient".into(),
                        step,
                    }
                    .into());
                }
                (g, 1.0)
            }
        };
        let lr = self.config.lr_schedule.lr(self.config.optimizer.lr, step);
        self.opt.set_lr(lr);
        self.opt.step_with_grad_scale(&grads, clip)?;
        if let Some(ema) = &mut self.ema {
            ema.update()?;
        }
        self.step += 1;
        Ok(StepStats {
            loss: total,
            mse,
            extra: extra_v,
            grad_norm,
            lr,
        })
    }

    /// Trains until `config.epochs` epochs are complete (continuing a resumed run where it
    /// stopped, mid-epoch included), calling `on_epoch` after each epoch.
    pub fn fit(
        &mut self,
        data: &PairedData,
        extra: Option<&mut ExtraLoss>,
        on_epoch: &mut dyn FnMut(&EpochMetrics) -> Control,
    ) -> Result<()> {
        let spe = self.steps_per_epoch(data.len());
        let plan = cmkd_train::fit::Plan {
            start_epoch: self.epoch,
            epochs: self.config.epochs,
            // A checkpoint written part-way through an epoch resumes after its last step.
            skip: self.step.saturating_sub(self.epoch * spe),
            steps_per_epoch: spe,
            name: "prior",
        };
        let mut steps = PriorSteps {
            trainer: self,
            data,
            extra,
        };
        cmkd_train::fit::fit(&mut steps, plan, on_epoch)?;
        Ok(())
    }

    /// Writes a checkpoint into `dir`: the prior, the optimizer moments and the EMA weights go into a fresh snapshot folder, then `trainer.json`
    /// (settings, step, epoch and the size and hash of every snapshot file) replaces the previous
    /// one atomically, then older snapshots are deleted. An interrupted save leaves the previous
    /// checkpoint as it was.
    ///
    /// Layout: `dir/trainer.json` and `dir/snapshot-<step>-<nonce>/{model/, optimizer.safetensors,
    /// ema.safetensors}`.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let (name, files) = self.write_snapshot(dir)?;
        self.commit_snapshot(dir, &name, files)
    }

    /// First half of a save: a complete new snapshot folder that nothing refers to yet.
    fn write_snapshot(&self, dir: &Path) -> Result<(String, Vec<FileDigest>)> {
        let (name, snap) = checkpoint::new_snapshot(dir, self.step)?;
        let written = (|| -> Result<Vec<FileDigest>> {
            let model = snap.join(MODEL_DIR);
            self.prior.save(&model)?;
            cmkd_train::checkpoint::save_tensors(
                &snap.join(OPTIM_FILE),
                &self.opt.state_tensors()?,
            )?;
            let mut files = vec![MODEL_WEIGHTS, MODEL_CONFIG, OPTIM_FILE];
            if let Some(ema) = &self.ema {
                let shadow = ema
                    .shadow()
                    .map(|(n, t)| (n.to_string(), t.clone()))
                    .collect();
                cmkd_train::checkpoint::save_tensors(&snap.join(EMA_FILE), &shadow)?;
                files.push(EMA_FILE);
            }
            let digests = checkpoint::manifest(&snap, &files)?;
            checkpoint::sync_dir(&model);
            checkpoint::sync_dir(&snap);
            Ok(digests)
        })();
        match written {
            Ok(files) => Ok((name, files)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&snap);
                Err(e)
            }
        }
    }

    /// Second half: points `trainer.json` at the snapshot (one atomic rename), then tidies up.
    fn commit_snapshot(&self, dir: &Path, name: &str, files: Vec<FileDigest>) -> Result<()> {
        let state = TrainerState {
            format: FORMAT.into(),
            config: self.config.clone(),
            step: self.step,
            epoch: self.epoch,
            ema_step: self.ema.as_ref().map_or(0, |e| e.step_count()),
            snapshot: Some(name.to_string()),
            files,
        };
        cmkd_train::checkpoint::save_json(&dir.join(STATE_FILE), &state)?;
        checkpoint::sync_dir(dir);
        checkpoint::remove_stale(dir, name)
    }

    /// Restores a trainer from [`Trainer::save_checkpoint`]'s directory onto `device`. Every file
    /// is checked against the size and hash `trainer.json` recorded: a directory mixed from two
    /// saves gives [`Error::CheckpointMismatch`] naming the file. The first layout (format 1, files
    /// beside `trainer.json`, no record) is still read.
    pub fn resume(dir: &Path, dtype: candle_core::DType, device: &Device) -> Result<Self> {
        let state_path = dir.join(STATE_FILE);
        let state: TrainerState = cmkd_train::checkpoint::load_json(&state_path)?;
        let base = match (state.format.as_str(), &state.snapshot) {
            (FORMAT, Some(name)) => {
                let snap = dir.join(name);
                checkpoint::verify(&snap, &state.files)?;
                snap
            }
            (FORMAT_V1, _) => dir.to_path_buf(),
            _ => {
                return Err(Error::Checkpoint {
                    path: state_path,
                    reason: format!(
                        "format `{}`{}, expected `{FORMAT}` naming a snapshot",
                        state.format,
                        if state.snapshot.is_none() {
                            " without a snapshot"
                        } else {
                            ""
                        }
                    ),
                })
            }
        };
        let dir = base.as_path();
        let prior = DiffusionPrior::load(&dir.join(MODEL_DIR), dtype, device)?;
        let mut t = Trainer::new(prior, state.config)?;
        let wrap = |path: &Path, e: cmkd_train::Error| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let op = dir.join(OPTIM_FILE);
        let moments = cmkd_train::checkpoint::load_tensors(&op, device)?;
        t.opt
            .load_state(&moments, state.step)
            .map_err(|e| wrap(&op, e))?;
        if let Some(ema) = &mut t.ema {
            let ep = dir.join(EMA_FILE);
            let shadow = cmkd_train::checkpoint::load_tensors(&ep, device)?;
            ema.load(&shadow, state.ema_step)
                .map_err(|e| wrap(&ep, e))?;
        }
        t.step = state.step;
        t.epoch = state.epoch;
        Ok(t)
    }
}

/// The prior's epochs for [`cmkd_train::fit::fit`]: one permutation per epoch (from the seed and
/// the epoch), cut into batches in order.
struct PriorSteps<'t, 'd, 'e, 'f> {
    trainer: &'t mut Trainer,
    data: &'d PairedData,
    extra: Option<&'e mut ExtraLoss<'f>>,
}

impl cmkd_train::fit::Steps for PriorSteps<'_, '_, '_, '_> {
    type Step = StepStats;
    type Epoch = EpochMetrics;
    type Error = Error;

    fn batches(&mut self, epoch: usize) -> Result<Vec<Vec<usize>>> {
        let n = self.data.len();
        let order = self.trainer.epoch_order(epoch, n);
        Ok(order
            .chunks(self.trainer.config.batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    fn step(&mut self, rows: &[usize]) -> Result<StepStats> {
        self.trainer
            .train_step(self.data, rows, self.extra.as_deref_mut())
    }

    fn loss(step: &StepStats) -> f64 {
        step.loss
    }

    fn end_epoch(&mut self, epoch: usize, steps: Vec<StepStats>) -> Result<EpochMetrics> {
        let (mut sl, mut sm, mut se) = (0.0, 0.0, 0.0);
        let mut lr = self.trainer.opt.lr();
        for s in &steps {
            sl += s.loss;
            sm += s.mse;
            se += s.extra;
            lr = s.lr;
        }
        let k = steps.len().max(1) as f64;
        self.trainer.epoch = epoch + 1;
        Ok(EpochMetrics {
            epoch,
            step: self.trainer.step,
            loss: sl / k,
            mse: sm / k,
            extra: se / k,
            lr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BetaSchedule, EmbeddingNorm, PriorConfig, PriorOptions, TimeEmbedding};
    use candle_core::DType;

    fn tiny_trainer() -> (Trainer, PairedData) {
        let dev = Device::Cpu;
        let config = PriorConfig {
            time_embedding: TimeEmbedding::Learned { rows: 8 },
            embed_dim: 2,
            cond_dim: 3,
            dim: 8,
            depth: 1,
            heads: 2,
            dim_head: 4,
            ..PriorConfig::default()
        };
        let prior = DiffusionPrior::from_parts(
            PriorOptions::new(config, BetaSchedule::Cosine, 8),
            EmbeddingNorm::Identity,
            EmbeddingNorm::Identity,
            1,
            DType::F32,
            &dev,
        )
        .unwrap();
        let mut rng = cmkd_train::rng::stream(4, "tiny");
        let c = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (6, 3), DType::F32, &dev).unwrap();
        let z = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (6, 2), DType::F32, &dev).unwrap();
        let config = TrainerConfig {
            ema: Some(cmkd_train::EmaConfig {
                update_after_step: 0,
                update_every: 1,
                ..Default::default()
            }),
            ..TrainerConfig::published()
        };
        (
            Trainer::new(prior, config).unwrap(),
            PairedData::new(c, z).unwrap(),
        )
    }

    fn weights(t: &Trainer) -> Vec<Vec<f32>> {
        t.prior()
            .vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    fn snapshots(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snapshot-"))
            .collect();
        v.sort();
        v
    }

    /// A save that dies after writing (part of) its files but before `trainer.json` is replaced
    /// leaves the previous checkpoint exactly as it was; the next save removes the debris.
    #[test]
    fn interrupted_save_keeps_the_previous_checkpoint() {
        let (mut t, data) = tiny_trainer();
        let dir = tempfile::tempdir().unwrap();
        t.train_step(&data, &[0, 1, 2], None).unwrap();
        t.save_checkpoint(dir.path()).unwrap();
        let saved = weights(&t);
        let next = t.clone_for_test().train_step(&data, &[3, 4], None).unwrap();
        t.train_step(&data, &[5, 0], None).unwrap();
        // The crash: a complete new snapshot, one file of it cut short, and no commit.
        let (name, _) = t.write_snapshot(dir.path()).unwrap();
        let cut = dir.path().join(&name).join(OPTIM_FILE);
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        assert_eq!(snapshots(dir.path()).len(), 2);

        let mut r = Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(r.step(), 1);
        assert_eq!(weights(&r), saved);
        assert_eq!(r.train_step(&data, &[3, 4], None).unwrap(), next);
        r.save_checkpoint(dir.path()).unwrap();
        let left = snapshots(dir.path());
        assert_eq!(left.len(), 1);
        assert!(left[0].starts_with("snapshot-00000002-"), "{left:?}");
    }

    /// Checkpoints of the first layout (files beside `trainer.json`, no record) still load.
    #[test]
    fn format_1_layout_still_loads() {
        let (mut t, data) = tiny_trainer();
        t.train_step(&data, &[0, 1], None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        t.save_checkpoint(dir.path()).unwrap();
        let name = snapshots(dir.path()).remove(0);
        for f in [MODEL_DIR, OPTIM_FILE, EMA_FILE] {
            std::fs::rename(dir.path().join(&name).join(f), dir.path().join(f)).unwrap();
        }
        std::fs::remove_dir(dir.path().join(&name)).unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut state: TrainerState = cmkd_train::checkpoint::load_json(&path).unwrap();
        state.format = FORMAT_V1.into();
        state.snapshot = None;
        state.files.clear();
        cmkd_train::checkpoint::save_json(&path, &state).unwrap();
        let r = Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!((r.step(), weights(&r)), (1, weights(&t)));
        // A format-2 record without a snapshot is refused, naming trainer.json.
        state.format = FORMAT.into();
        cmkd_train::checkpoint::save_json(&path, &state).unwrap();
        let e = Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("trainer.json"), "{e}");
    }

    impl Trainer {
        /// An independent trainer in the same state (via a checkpoint), for reference runs.
        fn clone_for_test(&self) -> Trainer {
            let dir = tempfile::tempdir().unwrap();
            self.save_checkpoint(dir.path()).unwrap();
            Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap()
        }
    }
}
