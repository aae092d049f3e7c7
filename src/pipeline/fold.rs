//! One fold's models, phase by phase: phase A's per-fold classifiers ([`FoldHeads`]), phase B's
//! prior (`train_prior`) and phase C's draws (`draw`), both reached through
//! [`super::Experiment`], with the typed row each model leaves in the tables ([`FoldRow`]).

use candle_core::{Device, Tensor};
use cxr_encoder::FitConfig;
use diffusion_prior::DiffusionPrior;
use med_eval::tsne::{tsne, TsneConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

use super::config::PipelineConfig;
use super::diagnostics::{embedding_r2, FoldDiagnostics, RidgeMap, RIDGE_LAMBDA};
use super::distill::{classify_samples, sample, PriorLoss, SnapshotFn, TrainedPrior};
use super::encoders::vit_config;
use super::error::Result;
use super::evaluation::FoldScores;
use super::features::{PhaseA, INIT_CTPA, INIT_CXR};
use super::heads::{sigmoid_vec, CtpaHead, CxrHead};
use super::streams::Stream;

/// One model's row of a table on one fold: its name, its table section, its trainable parameters
/// and its scores. Cached as the JSON array `[model, section, params, scores]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RowTuple", into = "RowTuple")]
pub struct FoldRow {
    /// Name in the tables.
    pub model: String,
    /// Table section.
    pub section: String,
    /// Trainable parameters of the fold's model.
    pub params: u64,
    /// Its scores of the fold's training and test patients.
    pub scores: FoldScores,
}

type RowTuple = (String, String, u64, FoldScores);

impl From<RowTuple> for FoldRow {
    fn from((model, section, params, scores): RowTuple) -> Self {
        Self {
            model,
            section,
            params,
            scores,
        }
    }
}

impl From<FoldRow> for RowTuple {
    fn from(r: FoldRow) -> Self {
        (r.model, r.section, r.params, r.scores)
    }
}

impl FoldRow {
    /// The row of `model` in `section`, scored on `fold` from scores of every patient.
    pub fn new(
        model: impl Into<String>,
        section: impl Into<String>,
        params: u64,
        all: &[f64],
        fold: &med_eval::Fold,
    ) -> Self {
        Self {
            model: model.into(),
            section: section.into(),
            params,
            scores: split(all, fold),
        }
    }
}

pub(crate) fn pick(v: &[f64], idx: &[usize]) -> Vec<f64> {
    idx.iter().map(|&i| v[i]).collect()
}

fn split(v: &[f64], fold: &med_eval::Fold) -> FoldScores {
    FoldScores {
        train: pick(v, &fold.train),
        test: pick(v, &fold.test),
    }
}

pub(crate) fn select(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let i = Tensor::from_vec(
        idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        idx.len(),
        t.device(),
    )?;
    Ok(t.index_select(&i, 0)?)
}

/// Copies into `vars` every tensor of `init` stored under `prefix` + its name with the same shape
/// (a head of another width keeps its fresh weights).
fn warm_start(
    vars: &[(String, candle_core::Var)],
    init: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<()> {
    for (name, var) in vars {
        if let Some(t) = init.get(&format!("{prefix}{name}")) {
            if t.dims() == var.dims() {
                var.set(t)?;
            }
        }
    }
    Ok(())
}

fn fit_config(config: &PipelineConfig, lr: f64, seed: u64) -> FitConfig {
    FitConfig {
        optimizer: cmkd_train::AdamWConfig {
            lr,
            ..Default::default()
        },
        batch_size: config.classifier_batch,
        epochs: config.head_epochs,
        max_grad_norm: Some(1.0),
        seed,
    }
}

/// Phase A on one fold: the CTPA-only and CXR-only classifiers trained on the fold's labelled
/// rows, and their embeddings and probabilities of every patient (cohort and CT-only set).
pub struct FoldHeads {
    pub(crate) ctpa: CtpaHead,
    pub(crate) cxr: CxrHead,
    pub(crate) ctpa_z: Tensor,
    pub(crate) ctpa_p: Vec<f64>,
    pub(crate) cxr_z: Tensor,
    pub(crate) cxr_p: Vec<f64>,
    pub(crate) pre_ctpa_z: Tensor,
    pub(crate) pre_cxr_z: Tensor,
}

impl FoldHeads {
    /// Trains both heads at embedding width `embed_dim` on the rows `train` of `a`'s cohort
    /// features (`fold_seed`: [`super::streams::fold_seed`]).
    pub(crate) fn fit(
        config: &PipelineConfig,
        embed_dim: usize,
        a: &PhaseA,
        labels: &[bool],
        train: &[usize],
        fold_seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let (feats, pre) = (&a.cohort, &a.pretrain);
        let mut vc = vit_config(config, feats.seqs[0].dim(1)?);
        vc.embed_dim = embed_dim;
        let ctpa = CtpaHead::new(vc, Stream::CtpaHeadInit.of(fold_seed), device)?;
        if config.warm_start_heads {
            warm_start(&ctpa.vit.trainable_vars(), &a.init, INIT_CTPA)?;
        }
        let label = |i: usize| f32::from(u8::from(labels[i]));
        let data: Vec<(Tensor, f32)> = train
            .iter()
            .map(|&i| (feats.seqs[i].clone(), label(i)))
            .collect();
        let lr = config.head_lr;
        ctpa.fit(
            &data,
            fit_config(config, lr, Stream::CtpaHeadFit.of(fold_seed)),
        )?;
        let (ctpa_z, ctpa_p) = ctpa.embed(&feats.seqs, config.batch_size)?;
        let (pre_ctpa_z, _) = ctpa.embed(&pre.seqs, config.batch_size)?;

        let cxr = CxrHead::new(
            feats.cxr.dim(1)?,
            embed_dim,
            Stream::CxrHeadInit.of(fold_seed),
            device,
        )?;
        // Only a PE-supervised X-ray classifier has a head to start from (see `XrayBackbone`).
        if config.warm_start_heads && config.xray_backbone.uses_ct_only_pe_labels() {
            warm_start(&cxr.vars(), &a.init, INIT_CXR)?;
        }
        let data: Vec<(Tensor, f32)> = train
            .iter()
            .map(|&i| Ok((feats.cxr.get(i)?, label(i))))
            .collect::<Result<_>>()?;
        let lr = config.cxr_head_lr;
        cxr.fit(
            &data,
            fit_config(config, lr, Stream::CxrHeadFit.of(fold_seed)),
        )?;
        let (cxr_z, cxr_p) = cxr.embed(&feats.cxr)?;
        let (pre_cxr_z, _) = cxr.embed(&pre.cxr)?;
        Ok(Self {
            ctpa,
            cxr,
            ctpa_z,
            ctpa_p,
            cxr_z,
            cxr_p,
            pre_ctpa_z,
            pre_cxr_z,
        })
    }

    /// The CTPA-only classifier's row on `fold`.
    pub(crate) fn ctpa_row(&self, section: &str, fold: &med_eval::Fold) -> FoldRow {
        let params = self.ctpa.num_params() as u64;
        FoldRow::new(super::run::CTPA_ONLY, section, params, &self.ctpa_p, fold)
    }

    /// The CXR-only classifier's row on `fold`.
    pub(crate) fn cxr_row(&self, section: &str, fold: &med_eval::Fold) -> FoldRow {
        let params = self.cxr.num_params() as u64;
        FoldRow::new(super::run::CXR_ONLY, section, params, &self.cxr_p, fold)
    }
}

/// Which prior a fold trains: its loss, and whether it first pretrains on the CT-only set's pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorVariant {
    /// The training loss.
    pub loss: PriorLoss,
    /// Pretrain on the CT-only set's (rendered radiograph, CTPA) pairs first.
    pub pretrain: bool,
}

/// Phase B on one fold: the prior `variant` trained on the fold's `train` pairs of `heads`'
/// embeddings (`labels_t` reach it only through the ProtoKD ablation).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_prior(
    config: &PipelineConfig,
    heads: &FoldHeads,
    labels_t: &Tensor,
    train: &[usize],
    variant: PriorVariant,
    fold_seed: u64,
    snapshot: Option<&mut SnapshotFn>,
) -> Result<TrainedPrior> {
    let cond = select(&heads.cxr_z, train)?;
    let target = select(&heads.ctpa_z, train)?;
    let y = select(labels_t, train)?;
    let pre = variant
        .pretrain
        .then_some((&heads.pre_cxr_z, &heads.pre_ctpa_z));
    super::distill::train_prior(
        config,
        &cond,
        &target,
        Some(&y),
        &heads.ctpa.vit,
        variant.loss,
        pre,
        Stream::Prior.of(fold_seed),
        snapshot,
    )
}

/// Phase C's draws of every patient and what the frozen CTPA head makes of them.
pub struct Draws {
    /// Mean teacher probability over the draws, every patient.
    pub(crate) mean: Vec<f64>,
    /// Standard deviation of the probability over the draws, every patient.
    pub(crate) sd: Vec<f64>,
    /// The draws `(k, n, e)` of every patient.
    pub(crate) samples: Tensor,
}

/// Phase C on one fold: `config.samples_per_xray` draws of `prior` for every patient's X-ray
/// embedding, classified by the fold's frozen CTPA head.
pub(crate) fn draw(
    config: &PipelineConfig,
    heads: &FoldHeads,
    prior: &TrainedPrior,
    fold_seed: u64,
) -> Result<Draws> {
    let samples = sample(
        &prior.prior,
        &heads.cxr_z,
        config.samples_per_xray,
        config.sample_steps,
        config.guidance_scale,
        Stream::PriorSample.of(Stream::Prior.of(fold_seed)),
    )?;
    let (mean, sd) = classify_samples(&heads.ctpa.vit, &samples)?;
    Ok(Draws { mean, sd, samples })
}

/// The fold's diagnostics of the prior's `draws` (see [`super::diagnostics`]).
pub(crate) fn fold_diagnostics(
    heads: &FoldHeads,
    draws: &Draws,
    fold: &med_eval::Fold,
) -> Result<FoldDiagnostics> {
    let test = Tensor::from_vec(
        fold.test.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        fold.test.len(),
        draws.samples.device(),
    )?;
    let test_draws = draws.samples.index_select(&test, 1)?;
    let truth = select(&heads.ctpa_z, &fold.test)?;
    let ridge = RidgeMap::fit(
        &select(&heads.cxr_z, &fold.train)?,
        &select(&heads.ctpa_z, &fold.train)?,
        RIDGE_LAMBDA,
    )?;
    let linear = ridge.predict(&select(&heads.cxr_z, &fold.test)?)?;
    Ok(FoldDiagnostics {
        prior_r2: embedding_r2(&truth, &test_draws.mean(0)?)?,
        linear_r2: embedding_r2(&truth, &linear)?,
        linear_test: sigmoid_vec(&heads.ctpa.vit.head_logit(&linear)?)?,
        single_draw_test: classify_samples(&heads.ctpa.vit, &test_draws.narrow(0, 0, 1)?)?.0,
    })
}

/// One t-SNE figure of the prior at a stage of its training: one draw per test X-ray of the fold,
/// beside the true CTPA and the X-ray embeddings. Returns the snapshot callback of
/// [`super::distill::train_prior`].
pub(crate) fn tsne_snapshot<'a>(
    config: &'a PipelineConfig,
    heads: &'a FoldHeads,
    fold: &'a med_eval::Fold,
    figures: &'a Path,
    fold_seed: u64,
) -> Result<impl FnMut(&str, &DiffusionPrior) -> Result<()> + 'a> {
    let test_cxr = select(&heads.cxr_z, &fold.test)?;
    let test_ctpa = select(&heads.ctpa_z, &fold.test)?;
    Ok(move |stage: &str, prior: &DiffusionPrior| -> Result<()> {
        let mut p = prior.deep_copy()?;
        if p.gamma().is_none() {
            let ts = diffusion_prior::spaced_timesteps(config.timesteps, config.sample_steps)?;
            p.estimate_gamma(
                &select(&heads.cxr_z, &fold.train)?,
                &select(&heads.ctpa_z, &fold.train)?,
                &ts,
                256,
                Stream::TsneGamma.of(fold_seed),
            )?;
        }
        let g = sample(
            &p,
            &test_cxr,
            1,
            config.sample_steps,
            config.guidance_scale,
            Stream::TsneSample.of(fold_seed),
        )?
        .squeeze(0)?;
        tsne_figure(
            &figures.join(format!("tsne_{stage}.png")),
            stage,
            &[&test_ctpa, &g, &test_cxr],
            config.seed,
        )
    })
}

/// t-SNE of the groups `[real CTPA, generated CTPA, CXR]` (rows of each tensor), as a PNG.
fn tsne_figure(path: &Path, stage: &str, groups_t: &[&Tensor; 3], seed: u64) -> Result<()> {
    let mut data = Vec::new();
    let mut groups = Vec::new();
    let dim = groups_t[0].dim(1)?;
    for (g, t) in groups_t.iter().enumerate() {
        let v = t.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        for row in v {
            data.extend(row);
            groups.push(g);
        }
    }
    let n = groups.len();
    let cfg = TsneConfig {
        perplexity: ((n as f64 - 1.0) / 3.0).clamp(2.0, 30.0),
        max_iter: 500,
        exaggeration_iters: 100,
        seed,
        progress: false,
        ..TsneConfig::default()
    };
    let emb = tsne(&data, dim, &cfg)?;
    med_eval::plot::plot_scatter(
        path,
        &format!("t-SNE, {stage} of prior training (fold 1, test patients)"),
        &emb.points,
        &groups,
        &["CTPA (true)", "CTPA (generated)", "CXR"],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_cached_as_the_array_earlier_caches_hold() {
        let fold = med_eval::Fold {
            train: vec![2, 0],
            test: vec![1],
        };
        let row = FoldRow::new("m", "s", 7, &[0.1, 0.2, 0.3], &fold);
        assert_eq!(row.scores.train, vec![0.3, 0.1]);
        assert_eq!(row.scores.test, vec![0.2]);
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"["m","s",7,{"train":[0.3,0.1],"test":[0.2]}]"#);
        assert_eq!(serde_json::from_str::<FoldRow>(&json).unwrap(), row);
    }
}
