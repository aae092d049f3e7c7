//! Phase B and C: the diffusion prior that maps an X-ray embedding to a CTPA embedding, trained
//! with `(1 - lambda) L2 + lambda * BCE` through the frozen CTPA head, and classification of its
//! samples by that head.
//!
//! The BCE target is, as in the published code, the teacher's own probability on the true CTPA
//! embedding (`sigmoid(h(z))`), so this phase uses no label. The ablation losses replace the BCE
//! by a kd-losses objective on the predicted embedding.

use candle_core::{Device, Tensor};
use ctpa_encoder::SequenceVit;
use diffusion_prior::{
    AnalyticBounds, AnalyticKind, BetaSchedule, Control, DiffusionPrior, EmaConfig, ExtraLossInput,
    LrSchedule, NormKind, PairedData, PriorConfig, PriorOptions, Trainer, TrainerConfig,
};
use kd_losses::{Objective, Views};
use serde::{Deserialize, Serialize};

use super::config::PipelineConfig;
use super::error::{PipelineError, Result};
use super::heads::sigmoid_vec;
use super::streams::Stream;

/// The prior's training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PriorLoss {
    /// L2 on the predicted clean embedding only.
    L2,
    /// L2 + BCE of the teacher head on the prediction against the teacher's probability (paper).
    L2Bce,
    /// L2 + AFT-KD (attention/feature blocks) between predicted and true embeddings.
    L2Aft,
    /// L2 + ProtoKD between predicted and true embeddings (uses labels).
    L2Proto,
    /// L2 + a margin contrastive loss between predicted and true embeddings.
    L2Contrastive,
}

impl PriorLoss {
    /// Name in the tables.
    pub fn label(&self) -> &'static str {
        match self {
            PriorLoss::L2 => "L2",
            PriorLoss::L2Bce => "L2 + BCE",
            PriorLoss::L2Aft => "L2 + AFT-KD",
            PriorLoss::L2Proto => "L2 + ProtoKD",
            PriorLoss::L2Contrastive => "L2 + contrastive",
        }
    }
}

/// A trained prior with what Phase C needs.
pub struct TrainedPrior {
    /// EMA weights, with Analytic-DPM statistics estimated.
    pub prior: DiffusionPrior,
    /// Loss of the last epoch.
    pub final_loss: f64,
}

/// Called with the EMA prior at the beginning, middle and end of training (the t-SNE figure).
pub type SnapshotFn<'a> = dyn FnMut(&str, &DiffusionPrior) -> Result<()> + 'a;

fn trainer_config(
    config: &PipelineConfig,
    epochs: usize,
    n: usize,
    seed: u64,
    loss: PriorLoss,
) -> TrainerConfig {
    let spe = n.div_ceil(config.batch_size).max(1);
    TrainerConfig {
        epochs,
        batch_size: config.batch_size,
        optimizer: diffusion_prior::AdamWConfig {
            lr: config.prior_lr,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 6.02e-2,
        },
        lr_schedule: LrSchedule::WarmupCosine {
            warmup_steps: 50.min(epochs * spe / 10).max(1),
            total_steps: (epochs * spe).max(2),
            min_ratio: 0.1,
        },
        max_grad_norm: Some(0.5),
        ema: Some(EmaConfig {
            update_after_step: 0,
            update_every: 1,
            ..EmaConfig::default()
        }),
        mse_weight: if loss == PriorLoss::L2 {
            1.0
        } else {
            1.0 - config.lambda
        },
        shuffle: true,
        seed,
    }
}

/// The term `loss` adds to the prior's L2 (before its weight `lambda`), on the prediction and the
/// true CTPA embedding through the frozen teacher head; `None` for L2 alone.
fn objective_for(
    loss: PriorLoss,
    dim: usize,
    seed: u64,
    device: &Device,
) -> Result<Option<Box<dyn Objective>>> {
    Ok(match loss {
        PriorLoss::L2 => None,
        // The paper's term: BCE of the head on the prediction against the teacher's own
        // probability on the true embedding (no label).
        PriorLoss::L2Bce => Some(Box::new(kd_losses::Bce::new(kd_losses::BceConfig {
            target: kd_losses::BceTarget::TeacherProbability,
        }))),
        PriorLoss::L2Aft => {
            let mut c = kd_losses::AftKdConfig::new(dim, dim);
            c.blocks = if dim % 8 == 0 { 8 } else { 4 };
            Some(Box::new(kd_losses::AftKd::new(
                c,
                seed,
                candle_core::DType::F32,
                device,
            )?))
        }
        PriorLoss::L2Proto => Some(Box::new(kd_losses::ProtoKd::new(
            kd_losses::ProtoKdConfig {
                missing_class: kd_losses::MissingClass::Skip,
                ..Default::default()
            },
        )?)),
        PriorLoss::L2Contrastive => Some(Box::new(kd_losses::Contrastive::new(
            kd_losses::ContrastiveConfig::default(),
        )?)),
    })
}

/// A fresh prior for `(cond, target)` of these widths, its normalisations fitted on `fit`
/// (pretraining pairs if any, else the fold's pairs).
fn new_prior(
    config: &PipelineConfig,
    fit: (&Tensor, &Tensor),
    seed: u64,
    device: &Device,
) -> Result<DiffusionPrior> {
    let (c, e) = (fit.0.dim(1)?, fit.1.dim(1)?);
    let heads = (config.prior_dim / 32).max(1);
    let mut options = PriorOptions::new(
        PriorConfig {
            embed_dim: e,
            cond_dim: c,
            dim: config.prior_dim,
            depth: config.prior_depth,
            heads,
            dim_head: config.prior_dim / heads,
            ..PriorConfig::default()
        },
        BetaSchedule::Cosine,
        config.timesteps,
    );
    options.network.time_embedding = diffusion_prior::TimeEmbedding::Learned {
        rows: config.timesteps,
    };
    options.cond_drop_prob = config.cond_drop_prob;
    Ok(DiffusionPrior::new(
        options,
        NormKind::Standardize,
        NormKind::Standardize,
        fit.0,
        fit.1,
        seed,
        candle_core::DType::F32,
        device,
    )?)
}

/// `lambda` times `objective` on each batch, through the frozen teacher head (`labels`: 0/1 per
/// training row, read by ProtoKD only; without them the objective sees zeros, which only a
/// label-free objective may be given, see [`train_prior`]). With `mse_weight = 1 - lambda` in the trainer, the prior's
/// loss is the paper's `(1 - lambda) L2 + lambda * BCE` (or an ablation's objective in the BCE's
/// place).
fn extra_loss<'a>(
    objective: &'a dyn Objective,
    lambda: f64,
    teacher: &'a SequenceVit,
    labels: Option<&'a Tensor>,
) -> impl FnMut(&ExtraLossInput) -> diffusion_prior::Result<Tensor> + 'a {
    move |input: &ExtraLossInput| {
        let to_prior =
            |e: PipelineError| diffusion_prior::Error::Candle(candle_core::Error::wrap(e));
        let head = |z: &Tensor| teacher.head_logit(z).map_err(|e| to_prior(e.into()));
        let s_logit = head(input.pred)?;
        let t_logit = head(input.target)?.detach();
        let y = match labels {
            Some(labels) => {
                let idx = Tensor::from_vec(
                    input.indices.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    input.indices.len(),
                    labels.device(),
                )?;
                labels.index_select(&idx, 0)?
            }
            None => Tensor::zeros(
                input.indices.len(),
                candle_core::DType::F32,
                input.pred.device(),
            )?,
        };
        let views = Views {
            student_embedding: input.pred,
            student_logit: &s_logit,
            teacher_embedding: &input.target.detach(),
            teacher_logit: &t_logit,
            labels: &y,
        };
        let term = objective
            .loss(&views)
            .map(|t| t.total)
            .map_err(|e| to_prior(e.into()))?;
        Ok(term.affine(lambda, 0.0)?)
    }
}

/// Pretrains `prior` with L2 alone on the CT-only set's pairs (their targets carry no cohort
/// labels) and returns its EMA weights.
fn pretrain_prior(
    config: &PipelineConfig,
    prior: DiffusionPrior,
    (cond, target): (&Tensor, &Tensor),
    seed: u64,
) -> Result<DiffusionPrior> {
    let data = PairedData::new(cond.clone(), target.clone())?;
    let epochs = config.prior_pretrain_epochs;
    let tc = trainer_config(config, epochs, data.len(), seed, PriorLoss::L2);
    let mut trainer = Trainer::new(prior, tc)?;
    trainer.fit(&data, None, &mut |_| Control::Continue)?;
    Ok(trainer.ema_prior()?)
}

/// Trains a prior on `(cond, target)` pairs (raw X-ray and CTPA embeddings of the training fold),
/// optionally starting from pretraining pairs, and returns its EMA weights with Analytic-DPM
/// statistics. `labels` (0/1 per training row) are read only by the ProtoKD ablation, which fails
/// without them; the paper's loss needs none. `snapshot` is called with the EMA prior at the start, middle and end of training.
#[allow(clippy::too_many_arguments)]
pub fn train_prior(
    config: &PipelineConfig,
    cond: &Tensor,
    target: &Tensor,
    labels: Option<&Tensor>,
    teacher: &SequenceVit,
    loss: PriorLoss,
    pretrain: Option<(&Tensor, &Tensor)>,
    seed: u64,
    mut snapshot: Option<&mut SnapshotFn>,
) -> Result<TrainedPrior> {
    if loss == PriorLoss::L2Proto && labels.is_none() {
        return Err(PipelineError::config(
            "labels",
            "the ProtoKD prior loss reads the training rows' PE labels",
        ));
    }
    let device = cond.device().clone();
    let mut prior = new_prior(config, pretrain.unwrap_or((cond, target)), seed, &device)?;
    let objective = objective_for(
        loss,
        target.dim(1)?,
        Stream::PriorObjective.of(seed),
        &device,
    )?;
    let mut extra = objective
        .as_deref()
        .map(|o| extra_loss(o, config.lambda, teacher, labels));
    if let Some(pairs) = pretrain {
        if config.prior_pretrain_epochs > 0 {
            prior = pretrain_prior(config, prior, pairs, Stream::PriorPretrain.of(seed))?;
        }
    }
    let data = PairedData::new(cond.clone(), target.clone())?;
    let tc = trainer_config(config, config.prior_epochs, data.len(), seed, loss);
    let mut trainer = Trainer::new(prior, tc)?;
    let mut final_loss = f64::NAN;
    if let Some(snap) = snapshot.as_deref_mut() {
        snap("beginning", &trainer.ema_prior()?)?;
    }
    // With a snapshot, training stops halfway for the middle one and then goes on.
    let mut stop_at = if snapshot.is_some() {
        (config.prior_epochs / 2).max(1)
    } else {
        usize::MAX
    };
    loop {
        let mut cb = |m: &diffusion_prior::EpochMetrics| {
            final_loss = m.loss;
            if m.epoch + 1 == stop_at {
                Control::Stop
            } else {
                Control::Continue
            }
        };
        match extra.as_mut() {
            Some(extra) => trainer.fit(&data, Some(extra), &mut cb)?,
            None => trainer.fit(&data, None, &mut cb)?,
        };
        if trainer.epoch() >= config.prior_epochs {
            break;
        }
        if let Some(snap) = snapshot.as_deref_mut() {
            snap("middle", &trainer.ema_prior()?)?;
        }
        stop_at = usize::MAX;
    }
    if !final_loss.is_finite() {
        return Err(PipelineError::Data(format!(
            "prior training ended with loss {final_loss}"
        )));
    }
    let mut prior = trainer.ema_prior()?;
    let ts = diffusion_prior::spaced_timesteps(config.timesteps, config.sample_steps)?;
    prior.estimate_gamma(cond, target, &ts, 256, Stream::PriorGamma.of(seed))?;
    if let Some(snap) = snapshot {
        snap("end", &prior)?;
    }
    Ok(TrainedPrior { prior, final_loss })
}

/// Draws `k` embeddings per condition row with Analytic-DPM (DDPM form) over `steps` strided steps
/// at classifier-free guidance scale `guidance` (1 = none); returns `(k, n, e)` stacked samples.
pub fn sample(
    prior: &DiffusionPrior,
    cond: &Tensor,
    k: usize,
    steps: usize,
    guidance: f64,
    seed: u64,
) -> Result<Tensor> {
    let mut prior_g = prior.deep_copy()?;
    if prior.gamma().is_none() {
        return Err(PipelineError::Data(
            "prior has no Analytic-DPM statistics".into(),
        ));
    }
    prior_g.set_gamma(prior.gamma().cloned());
    let mut sampler =
        prior_g.analytic_sampler(AnalyticKind::Ddpm, AnalyticBounds::default(), steps)?;
    let n = cond.dim(0)?;
    let rep = cond.repeat((k, 1))?;
    let mut rng = cmkd_train::rng::stream(seed, "pipeline/sample");
    let z = prior_g.sample(&rep, &mut sampler, guidance, &mut rng)?;
    let e = z.dim(1)?;
    Ok(z.reshape((k, n, e))?)
}

/// Teacher probabilities of `(k, n, e)` samples: the per-row mean and standard deviation over `k`.
pub fn classify_samples(teacher: &SequenceVit, samples: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    let (k, n, e) = samples.dims3()?;
    let p = sigmoid_vec(&teacher.head_logit(&samples.reshape((k * n, e))?)?)?;
    let mut mean = vec![0.0; n];
    let mut sd = vec![0.0; n];
    for i in 0..n {
        let vals: Vec<f64> = (0..k).map(|j| p[j * n + i]).collect();
        let m = vals.iter().sum::<f64>() / k as f64;
        mean[i] = m;
        sd[i] = if k > 1 {
            (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt()
        } else {
            0.0
        };
    }
    Ok((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctpa_encoder::SequenceVitConfig;

    /// A 4-wide sequence ViT whose head serves as the teacher.
    fn tiny_vit(seed: u64, dev: &Device) -> SequenceVit {
        let config = SequenceVitConfig {
            in_dim: 4,
            width: 8,
            depth: 1,
            heads: 1,
            mlp_ratio: 2,
            positions: 4,
            layer_scale: 1.0,
            eps: 1e-6,
            embed_dim: 4,
        };
        SequenceVit::new(config, seed, candle_core::DType::F32, dev).unwrap()
    }

    #[test]
    fn sample_statistics_are_the_mean_and_sd_over_draws() {
        let dev = Device::Cpu;
        let vit = tiny_vit(0, &dev);
        // Two draws for each of three rows; the second draw of row 0 repeats its first.
        let z = Tensor::new(
            &[
                [
                    [0.1f32, 0.2, 0.3, 0.4],
                    [1.0, 0.0, 0.0, 0.0],
                    [0.0, 1.0, 0.0, 0.0],
                ],
                [
                    [0.1f32, 0.2, 0.3, 0.4],
                    [0.0, 0.0, 1.0, 0.0],
                    [0.0, 0.0, 0.0, 1.0],
                ],
            ],
            &dev,
        )
        .unwrap();
        let (mean, sd) = classify_samples(&vit, &z).unwrap();
        let p = sigmoid_vec(&vit.head_logit(&z.reshape((6, 4)).unwrap()).unwrap()).unwrap();
        for i in 0..3 {
            let (a, b) = (p[i], p[3 + i]);
            assert!((mean[i] - (a + b) / 2.0).abs() < 1e-12);
            assert!((sd[i] - (a - b).abs() / 2f64.sqrt()).abs() < 1e-9);
        }
        assert_eq!(sd[0], 0.0);
    }

    /// Only the ProtoKD loss reads labels; asked for without them it fails before training.
    #[test]
    fn protokd_without_labels_is_refused() {
        let dev = Device::Cpu;
        let vit = tiny_vit(1, &dev);
        let z = Tensor::zeros((6, 4), candle_core::DType::F32, &dev).unwrap();
        let config = PipelineConfig::tiny();
        let r = train_prior(
            &config,
            &z,
            &z,
            None,
            &vit,
            PriorLoss::L2Proto,
            None,
            0,
            None,
        );
        let e = r.err().expect("ProtoKD ran without labels").to_string();
        assert!(e.contains("labels") && e.contains("ProtoKD"), "{e}");
    }

    /// The prior's added term is `lambda` times the BCE of the teacher head on the prediction
    /// against the teacher's probability on the true embedding (the paper's `0.2 BCE` at 0.2).
    #[test]
    fn the_bce_term_is_weighted_by_lambda() {
        let dev = Device::Cpu;
        let vit = tiny_vit(3, &dev);
        let pred = Tensor::new(&[[0.3f32, -0.2, 0.5, 0.1], [1.0, 0.4, -0.7, 0.2]], &dev).unwrap();
        let target = Tensor::new(&[[0.1f32, 0.2, -0.3, 0.4], [-1.0, 0.0, 0.6, 0.3]], &dev).unwrap();
        let cond = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let labels = Tensor::new(&[0f32, 1.0, 1.0], &dev).unwrap();
        let objective = objective_for(PriorLoss::L2Bce, 4, 0, &dev)
            .unwrap()
            .unwrap();
        let input = ExtraLossInput {
            pred: &pred,
            target: &target,
            cond: &cond,
            indices: &[2, 0],
            step: 0,
        };
        let got = extra_loss(objective.as_ref(), 0.2, &vit, Some(&labels))(&input)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let s = vit.head_logit(&pred).unwrap().to_vec1::<f32>().unwrap();
        let t = vit.head_logit(&target).unwrap().to_vec1::<f32>().unwrap();
        let bce: f32 = s
            .iter()
            .zip(&t)
            .map(|(&s, &t)| {
                let p = 1.0 / (1.0 + (-t).exp());
                let q = 1.0 / (1.0 + (-s).exp());
                -(p * q.ln() + (1.0 - p) * (1.0 - q).ln())
            })
            .sum::<f32>()
            / 2.0;
        assert!((got - 0.2 * bce).abs() < 1e-5, "{got} vs {}", 0.2 * bce);
        assert!(objective_for(PriorLoss::L2, 4, 0, &dev).unwrap().is_none());
    }
}
