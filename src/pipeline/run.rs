//! The whole pipeline, phase by phase, with every phase's output cached under
//! `<out>/cache/<config hash>/` so that a rerun (or an interrupted run) continues where it was.

use candle_core::{Device, Tensor};
use cxr_encoder::FitConfig;
use diffusion_prior::DiffusionPrior;
use med_eval::tsne::{tsne, TsneConfig};
use med_eval::StratifiedKFold;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::baselines::{train_student, KdMethod};
use super::cohort::{paired_config, pretrain_config, PairedCohort};
use super::config::PipelineConfig;
use super::diagnostics::{
    embedding_r2, summarize, Diagnostics, FoldDiagnostics, RidgeMap, RIDGE_LAMBDA,
};
use super::distill::{classify_samples, sample, train_prior, PriorLoss, SnapshotFn};
use super::encoders::vit_config;
use super::error::{PipelineError, Result};
use super::evaluation::{
    evaluate, oof, reliability_figure, roc_figure, table, FoldScores, ModelMetrics, ModelScores,
};
use super::features::{phase_a, Features, PhaseA, INIT_CTPA, INIT_CXR};
use super::heads::{sigmoid_vec, CtpaHead, CxrHead};
use super::provenance::{data_use, DataUse};
use super::seeds::{seed_spread, SeedAucs, SeedSpread};

/// Names of the reference models.
pub const CTPA_ONLY: &str = "CTPA only classifier";
/// The X-ray-only baseline (reference of the DeLong tests).
pub const CXR_ONLY: &str = "CXR only classifier";
/// The diffusion prior.
pub const PRIOR: &str = "Diffusion prior (ours)";

const BASELINES: &str = "Baselines";
const CMKD: &str = "Cross-modality knowledge distillation";

/// Options that do not change any result of the main table (so they are not in the cache key).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Also run the Table 2 ablations.
    pub ablations: bool,
    /// Table 1 AUCs of the same run with other seeds ([`super::seeds::run_seeds`]): the report then
    /// gives each row's mean and spread over all seeds. Empty for a single seed.
    pub other_seeds: Vec<SeedAucs>,
    /// Device of every tensor.
    pub device: Device,
}

/// The prior's spread over several samples per X-ray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uncertainty {
    /// Samples per X-ray.
    pub samples: usize,
    /// Mean standard deviation of the sampled probabilities over all patients.
    pub mean_spread: f64,
    /// Mean spread of the patients the prior classified correctly (each fold's Youden threshold).
    pub spread_correct: f64,
    /// Mean spread of the misclassified patients.
    pub spread_wrong: f64,
    /// ROC AUC of the spread as a detector of misclassification (0.5: uninformative).
    pub spread_error_auc: f64,
}

/// Everything the run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The settings.
    pub config: PipelineConfig,
    /// Hash of the settings (cache key).
    pub config_hash: String,
    /// Patients and positives of the cohort.
    pub patients: usize,
    /// Positives of the cohort.
    pub positives: usize,
    /// Table 1 models with their metrics.
    pub table1: Vec<ModelMetrics>,
    /// Table 2 rows (empty without `--ablations`).
    pub table2: Vec<ModelMetrics>,
    /// Sections of the table rows, in row order (Table 1 then Table 2).
    pub sections: Vec<String>,
    /// The prior's sampling spread.
    pub uncertainty: Uncertainty,
    /// Share of the CTPA-minus-CXR AUC gap recovered by the prior
    /// (`(AUC_prior - AUC_cxr) / (AUC_ctpa - AUC_cxr)`; `None` when CTPA-only does not beat CXR-only: no gap to recover).
    pub gap_recovered: Option<f64>,
    /// Final training loss of the prior on each fold.
    pub prior_final_loss: Vec<f64>,
    /// Where the cohort came from ([`PairedCohort::source`]).
    pub cohort_source: String,
    /// Where the CT-only pretraining set came from.
    pub pretrain_source: String,
    /// Why the prior scores what it does ([`super::diagnostics`]); `None` when a fold came from a
    /// cache written before they existed.
    pub diagnostics: Option<Diagnostics>,
    /// Which data and PE labels each Table 1 model used ([`super::provenance`]).
    pub data_use: Vec<DataUse>,
    /// Each Table 1 row's AUC over this seed and [`RunOptions::other_seeds`]; empty for one seed.
    #[serde(default)]
    pub seed_spread: Vec<SeedSpread>,
}

/// What one fold produced (cached as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoldOutput {
    models: Vec<(String, String, u64, FoldScores)>,
    prior_spread_test: Vec<f64>,
    prior_final_loss: f64,
    /// Absent in caches written before the diagnostics existed.
    #[serde(default)]
    diagnostics: Option<FoldDiagnostics>,
}

fn cache_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(cmkd_train::checkpoint::write_atomic(path, text.as_bytes())?)
}

fn labels_tensor(labels: &[bool], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = labels.iter().map(|&l| f32::from(u8::from(l))).collect();
    Ok(Tensor::from_vec(v, labels.len(), device)?)
}

pub(crate) fn select(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let i = Tensor::from_vec(
        idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        idx.len(),
        t.device(),
    )?;
    Ok(t.index_select(&i, 0)?)
}

fn pick(v: &[f64], idx: &[usize]) -> Vec<f64> {
    idx.iter().map(|&i| v[i]).collect()
}

fn split(v: &[f64], fold: &med_eval::Fold) -> FoldScores {
    FoldScores {
        train: pick(v, &fold.train),
        test: pick(v, &fold.test),
    }
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

/// Phase A for one fold: the CTPA-only and CXR-only classifiers on the training rows, and their
/// embeddings of every patient (cohort and pretraining set).
pub(crate) struct Unimodal {
    pub(crate) ctpa: CtpaHead,
    pub(crate) cxr: CxrHead,
    pub(crate) ctpa_z: Tensor,
    pub(crate) ctpa_p: Vec<f64>,
    pub(crate) cxr_z: Tensor,
    pub(crate) cxr_p: Vec<f64>,
    pub(crate) pre_ctpa_z: Tensor,
    pub(crate) pre_cxr_z: Tensor,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn unimodal(
    config: &PipelineConfig,
    embed_dim: usize,
    feats: &Features,
    pre: &Features,
    init: &HashMap<String, Tensor>,
    labels: &[bool],
    train: &[usize],
    seed: u64,
    device: &Device,
) -> Result<Unimodal> {
    let mut vc = vit_config(config, feats.seqs[0].dim(1)?);
    vc.embed_dim = embed_dim;
    let ctpa = CtpaHead::new(vc, seed ^ 0x11, device)?;
    if config.warm_start_heads {
        warm_start(&ctpa.vit.trainable_vars(), init, INIT_CTPA)?;
    }
    let data: Vec<(Tensor, f32)> = train
        .iter()
        .map(|&i| (feats.seqs[i].clone(), f32::from(u8::from(labels[i]))))
        .collect();
    ctpa.fit(&data, fit_config(config, config.head_lr, seed ^ 0x12))?;
    let (ctpa_z, ctpa_p) = ctpa.embed(&feats.seqs, config.batch_size)?;
    let (pre_ctpa_z, _) = ctpa.embed(&pre.seqs, config.batch_size)?;

    let cxr = CxrHead::new(feats.cxr.dim(1)?, embed_dim, seed ^ 0x13, device)?;
    // Only a PE-supervised X-ray classifier has a head to start from (see `XrayBackbone`).
    if config.warm_start_heads && config.xray_backbone.uses_ct_only_pe_labels() {
        warm_start(&cxr.vars(), init, INIT_CXR)?;
    }
    let data: Vec<(Tensor, f32)> = train
        .iter()
        .map(|&i| Ok((feats.cxr.get(i)?, f32::from(u8::from(labels[i])))))
        .collect::<Result<_>>()?;
    cxr.fit(&data, fit_config(config, config.cxr_head_lr, seed ^ 0x14))?;
    let (cxr_z, cxr_p) = cxr.embed(&feats.cxr)?;
    let (pre_cxr_z, _) = cxr.embed(&pre.cxr)?;
    Ok(Unimodal {
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

/// What one prior variant produced on a fold.
struct PriorRun {
    /// Mean teacher probability over the draws, every patient.
    mean: Vec<f64>,
    /// Standard deviation of the probability over the draws, every patient.
    sd: Vec<f64>,
    params: u64,
    final_loss: f64,
    /// The draws `(k, n, e)` of every patient.
    samples: Tensor,
}

/// Runs a prior variant on one fold and samples every patient.
#[allow(clippy::too_many_arguments)]
fn prior_variant(
    config: &PipelineConfig,
    u: &Unimodal,
    labels_t: &Tensor,
    train: &[usize],
    loss: PriorLoss,
    pretrain: bool,
    seed: u64,
    snapshot: Option<&mut SnapshotFn>,
) -> Result<PriorRun> {
    let cond = select(&u.cxr_z, train)?;
    let target = select(&u.ctpa_z, train)?;
    let y = select(labels_t, train)?;
    let pre = pretrain.then_some((&u.pre_cxr_z, &u.pre_ctpa_z));
    let trained = train_prior(
        config,
        &cond,
        &target,
        &y,
        &u.ctpa.vit,
        loss,
        pre,
        seed,
        snapshot,
    )?;
    let samples = sample(
        &trained.prior,
        &u.cxr_z,
        config.samples_per_xray,
        config.sample_steps,
        config.guidance_scale,
        seed ^ 0x5A,
    )?;
    let (mean, sd) = classify_samples(&u.ctpa.vit, &samples)?;
    Ok(PriorRun {
        mean,
        sd,
        params: trained.prior.num_params() as u64,
        final_loss: trained.final_loss,
        samples,
    })
}

/// The fold's diagnostics of the prior run `run` (see [`super::diagnostics`]).
fn fold_diagnostics(
    u: &Unimodal,
    run: &PriorRun,
    fold: &med_eval::Fold,
) -> Result<FoldDiagnostics> {
    let test = Tensor::from_vec(
        fold.test.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        fold.test.len(),
        run.samples.device(),
    )?;
    let draws = run.samples.index_select(&test, 1)?;
    let truth = select(&u.ctpa_z, &fold.test)?;
    let ridge = RidgeMap::fit(
        &select(&u.cxr_z, &fold.train)?,
        &select(&u.ctpa_z, &fold.train)?,
        RIDGE_LAMBDA,
    )?;
    let linear = ridge.predict(&select(&u.cxr_z, &fold.test)?)?;
    Ok(FoldDiagnostics {
        prior_r2: embedding_r2(&truth, &draws.mean(0)?)?,
        linear_r2: embedding_r2(&truth, &linear)?,
        linear_test: sigmoid_vec(&u.ctpa.vit.head_logit(&linear)?)?,
        single_draw_test: classify_samples(&u.ctpa.vit, &draws.narrow(0, 0, 1)?)?.0,
    })
}

fn tsne_figure(
    path: &Path,
    stage: &str,
    real: &Tensor,
    generated: &Tensor,
    cxr: &Tensor,
    seed: u64,
) -> Result<()> {
    let groups_t = [real, generated, cxr];
    let mut data = Vec::new();
    let mut groups = Vec::new();
    let dim = real.dim(1)?;
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

/// Runs the pipeline on `cohort` with the pretraining set `pretrain_set`, writing everything to
/// `options.out`.
pub fn run_on(
    config: &PipelineConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    options: &RunOptions,
) -> Result<Report> {
    config.validate()?;
    cohort.validate()?;
    pretrain_set.validate()?;
    let device = &options.device;
    // The key covers the data too: a manifest cohort never reuses a synthetic run's cache.
    let hash = super::config::fnv_hex(
        format!(
            "{}/{}/{}",
            config.hash()?,
            cohort.fingerprint(),
            pretrain_set.fingerprint()
        )
        .as_bytes(),
    );
    let cache = options.out.join("cache").join(&hash);
    ensure_dir(&cache)?;
    cmkd_train::checkpoint::save_json(&cache.join("config.json"), config)?;
    let labels = cohort.labels();
    let n = cohort.len();

    // Phase A (frozen encoders): pretrain, extract and cache features, each half under its own
    // settings' hash, so a change to a later phase keeps them.
    let PhaseA {
        cohort: feats,
        pretrain: pre,
        init,
    } = phase_a(
        config,
        cohort,
        pretrain_set,
        &options.out.join("cache"),
        device,
    )?;

    // Table 2's structural row: the X-ray side with the earlier PE-supervised backbone (its CT half
    // is phase A's own, from the cache).
    let other_backbone = config.with_ct_only_pe_backbone();
    let other_phase_a = if options.ablations && other_backbone != *config {
        Some(phase_a(
            &other_backbone,
            cohort,
            pretrain_set,
            &options.out.join("cache"),
            device,
        )?)
    } else {
        None
    };
    let folds = StratifiedKFold::new(config.folds, config.seed).split(&labels)?;
    let labels_t = labels_tensor(&labels, device)?;
    let mut outputs: Vec<FoldOutput> = Vec::with_capacity(folds.len());
    let mut ablation_outputs: Vec<Vec<(String, String, u64, FoldScores)>> = Vec::new();
    let figures = options.out.join("figures");
    ensure_dir(&figures)?;
    for (k, fold) in folds.iter().enumerate() {
        let path = cache_path(&cache, &format!("fold{k}.json"));
        let seed = config.seed.wrapping_mul(1000).wrapping_add(k as u64);
        let mut fold_u: Option<Unimodal> = None;
        let fit_unimodal = |embed_dim: usize| {
            unimodal(
                config,
                embed_dim,
                &feats,
                &pre,
                &init,
                &labels,
                &fold.train,
                seed,
                device,
            )
        };
        let output: FoldOutput = if path.exists() {
            eprintln!("fold {}/{}: from cache", k + 1, folds.len());
            cmkd_train::checkpoint::load_json(&path)?
        } else {
            eprintln!(
                "fold {}/{}: phase A (CTPA-only and CXR-only classifiers)",
                k + 1,
                folds.len()
            );
            let u: &Unimodal = fold_u.insert(fit_unimodal(config.embed_dim)?);
            let mut models = vec![
                (
                    CTPA_ONLY.to_string(),
                    BASELINES.to_string(),
                    u.ctpa.num_params() as u64,
                    split(&u.ctpa_p, fold),
                ),
                (
                    CXR_ONLY.to_string(),
                    BASELINES.to_string(),
                    u.cxr.num_params() as u64,
                    split(&u.cxr_p, fold),
                ),
            ];
            eprintln!(
                "fold {}/{}: knowledge-distillation baselines",
                k + 1,
                folds.len()
            );
            for m in KdMethod::ALL {
                let r = train_student(
                    m,
                    config,
                    &feats.cxr,
                    &u.ctpa_z,
                    &labels_t,
                    &fold.train,
                    &u.ctpa.vit,
                    seed ^ 0x77,
                )?;
                models.push((
                    m.label().to_string(),
                    CMKD.to_string(),
                    r.params as u64,
                    split(&r.probs, fold),
                ));
            }
            eprintln!(
                "fold {}/{}: phase B/C (diffusion prior)",
                k + 1,
                folds.len()
            );
            let test_cxr = select(&u.cxr_z, &fold.test)?;
            let test_ctpa = select(&u.ctpa_z, &fold.test)?;
            let mut snap = |stage: &str, prior: &DiffusionPrior| -> Result<()> {
                let mut p = prior.deep_copy()?;
                if p.gamma().is_none() {
                    let ts =
                        diffusion_prior::spaced_timesteps(config.timesteps, config.sample_steps)?;
                    p.estimate_gamma(
                        &select(&u.cxr_z, &fold.train)?,
                        &select(&u.ctpa_z, &fold.train)?,
                        &ts,
                        256,
                        seed ^ 0x61,
                    )?;
                }
                let g = sample(
                    &p,
                    &test_cxr,
                    1,
                    config.sample_steps,
                    config.guidance_scale,
                    seed ^ 0x62,
                )?
                .squeeze(0)?;
                tsne_figure(
                    &figures.join(format!("tsne_{stage}.png")),
                    stage,
                    &test_ctpa,
                    &g,
                    &test_cxr,
                    config.seed,
                )
            };
            let snapshot: Option<&mut SnapshotFn> = if k == 0 && config.tsne {
                Some(&mut snap)
            } else {
                None
            };
            let pretrain_on = config.prior_pretrain_epochs > 0;
            let run = prior_variant(
                config,
                u,
                &labels_t,
                &fold.train,
                PriorLoss::L2Bce,
                pretrain_on,
                seed ^ 0x99,
                snapshot,
            )?;
            models.push((
                PRIOR.to_string(),
                CMKD.to_string(),
                run.params,
                split(&run.mean, fold),
            ));
            let out = FoldOutput {
                models,
                prior_spread_test: pick(&run.sd, &fold.test),
                prior_final_loss: run.final_loss,
                diagnostics: Some(fold_diagnostics(u, &run, fold)?),
            };
            cmkd_train::checkpoint::save_json(&path, &out)?;
            // Continue from what was written, so that a resumed run sees exactly the same numbers
            // (JSON floats need not round-trip bit for bit).
            cmkd_train::checkpoint::load_json(&path)?
        };
        outputs.push(output);

        if options.ablations {
            let apath = cache_path(&cache, &format!("fold{k}_ablations.json"));
            let rows: Vec<(String, String, u64, FoldScores)> = if apath.exists() {
                cmkd_train::checkpoint::load_json(&apath)?
            } else {
                eprintln!("fold {}/{}: ablations", k + 1, folds.len());
                // The fold's classifiers are the ones phase A trained above; only train them
                // here when that phase came from the cache.
                let u: &Unimodal = match &fold_u {
                    Some(u) => u,
                    None => fold_u.insert(fit_unimodal(config.embed_dim)?),
                };
                let mut rows = Vec::new();
                let pretrain_on = config.prior_pretrain_epochs > 0;
                for loss in [
                    PriorLoss::L2,
                    PriorLoss::L2Bce,
                    PriorLoss::L2Aft,
                    PriorLoss::L2Proto,
                    PriorLoss::L2Contrastive,
                ] {
                    // L2 + BCE with pretraining as configured is the main run's prior (same seed,
                    // same data): reuse its scores instead of training it again.
                    let main_prior = outputs
                        .last()
                        .and_then(|o| o.models.iter().find(|m| m.0 == PRIOR));
                    if let (PriorLoss::L2Bce, Some((_, _, params, scores))) = (loss, main_prior) {
                        rows.push((
                            format!("loss: {}", loss.label()),
                            "Loss".to_string(),
                            *params,
                            scores.clone(),
                        ));
                        continue;
                    }
                    let PriorRun { mean, params, .. } = prior_variant(
                        config,
                        u,
                        &labels_t,
                        &fold.train,
                        loss,
                        pretrain_on,
                        seed ^ 0x99,
                        None,
                    )?;
                    rows.push((
                        format!("loss: {}", loss.label()),
                        "Loss".to_string(),
                        params,
                        split(&mean, fold),
                    ));
                }
                let PriorRun { mean, params, .. } = prior_variant(
                    config,
                    u,
                    &labels_t,
                    &fold.train,
                    PriorLoss::L2Bce,
                    !pretrain_on,
                    seed ^ 0x99,
                    None,
                )?;
                let label = if pretrain_on {
                    "pretraining: off"
                } else {
                    "pretraining: on"
                };
                rows.push((
                    label.to_string(),
                    "Pretraining".to_string(),
                    params,
                    split(&mean, fold),
                ));
                let big = config.embed_dim * 2;
                let u2 = fit_unimodal(big)?;
                let PriorRun { mean, params, .. } = prior_variant(
                    config,
                    &u2,
                    &labels_t,
                    &fold.train,
                    PriorLoss::L2Bce,
                    pretrain_on,
                    seed ^ 0x99,
                    None,
                )?;
                rows.push((
                    format!("embedding size {big}"),
                    "Embedding size".to_string(),
                    params,
                    split(&mean, fold),
                ));
                if let Some(other) = &other_phase_a {
                    let u3 = unimodal(
                        &other_backbone,
                        config.embed_dim,
                        &other.cohort,
                        &other.pretrain,
                        &other.init,
                        &labels,
                        &fold.train,
                        seed,
                        device,
                    )?;
                    let section = "X-ray backbone pretrained with the CT-only set's PE labels";
                    rows.push((
                        CXR_ONLY.to_string(),
                        section.to_string(),
                        u3.cxr.num_params() as u64,
                        split(&u3.cxr_p, fold),
                    ));
                    let PriorRun { mean, params, .. } = prior_variant(
                        &other_backbone,
                        &u3,
                        &labels_t,
                        &fold.train,
                        PriorLoss::L2Bce,
                        pretrain_on,
                        seed ^ 0x99,
                        None,
                    )?;
                    rows.push((
                        PRIOR.to_string(),
                        section.to_string(),
                        params,
                        split(&mean, fold),
                    ));
                }
                cmkd_train::checkpoint::save_json(&apath, &rows)?;
                cmkd_train::checkpoint::load_json(&apath)?
            };
            ablation_outputs.push(rows);
        }
    }

    // Evaluation: pooled out-of-fold predictions.
    let collect = |per_fold: Vec<&Vec<(String, String, u64, FoldScores)>>| -> Vec<ModelScores> {
        let first = per_fold[0];
        first
            .iter()
            .enumerate()
            .map(|(j, (name, section, params, _))| ModelScores {
                name: name.clone(),
                section: section.clone(),
                params: *params,
                folds: per_fold.iter().map(|f| f[j].3.clone()).collect(),
            })
            .collect()
    };
    let models = collect(outputs.iter().map(|o| &o.models).collect());
    let metrics = evaluate(&models, &labels, &folds, CXR_ONLY)?;
    let mut table2_models = Vec::new();
    let mut table2 = Vec::new();
    if options.ablations {
        // The default configuration is the reference row of every ablation group.
        let prior_row = models.iter().find(|m| m.name == PRIOR).cloned();
        table2_models = collect(ablation_outputs.iter().collect());
        if let Some(mut p) = prior_row {
            p.name = format!(
                "default ({}, embedding {})",
                PriorLoss::L2Bce.label(),
                config.embed_dim
            );
            p.section = "Default".into();
            table2_models.insert(0, p);
        }
        table2 = evaluate(&table2_models, &labels, &folds, "")?;
    }

    // The prior's uncertainty.
    let prior_model = models
        .iter()
        .find(|m| m.name == PRIOR)
        .ok_or_else(|| PipelineError::Data("no prior results".into()))?;
    let prior_metrics = &metrics[models.iter().position(|m| m.name == PRIOR).unwrap_or(0)];
    let mut spread = vec![0.0; n];
    for (fold, o) in folds.iter().zip(&outputs) {
        for (&i, &s) in fold.test.iter().zip(&o.prior_spread_test) {
            spread[i] = s;
        }
    }
    let mut wrong = vec![false; n];
    for (fold, s) in folds.iter().zip(&prior_model.folds) {
        let train_labels: Vec<bool> = fold.train.iter().map(|&i| labels[i]).collect();
        let th = med_eval::youden_threshold(&train_labels, &s.train)?.threshold;
        for (&i, &p) in fold.test.iter().zip(&s.test) {
            wrong[i] = (p >= th) != labels[i];
        }
    }
    let mean_of = |sel: bool| {
        let v: Vec<f64> = (0..n)
            .filter(|&i| wrong[i] == sel)
            .map(|i| spread[i])
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let spread_error_auc = if wrong.iter().any(|&w| w) && wrong.iter().any(|&w| !w) {
        med_eval::roc_auc(&wrong, &spread)?
    } else {
        0.5
    };
    let uncertainty = Uncertainty {
        samples: config.samples_per_xray,
        mean_spread: spread.iter().sum::<f64>() / n as f64,
        spread_correct: mean_of(false),
        spread_wrong: mean_of(true),
        spread_error_auc,
    };
    let auc_of = |name: &str| {
        metrics
            .iter()
            .find(|m| m.row.model == name)
            .map(|m| m.row.auc)
    };
    let gap_recovered = match (auc_of(CTPA_ONLY), auc_of(CXR_ONLY), auc_of(PRIOR)) {
        (Some(a), Some(b), Some(c)) if a - b > 1e-9 => Some((c - b) / (a - b)),
        _ => None,
    };

    // Figures and files.
    roc_figure(&figures.join("roc.png"), &models, &metrics, &labels, &folds)?;
    let prior_oof = oof(prior_model, &labels, &folds)?;
    reliability_figure(
        &figures.join("reliability_prior.png"),
        "Diffusion prior: reliability",
        &labels,
        &prior_oof,
    )?;
    let mut csv = String::from("patient,label,fold");
    for m in &models {
        csv.push_str(&format!(",\"{}\"", m.name));
    }
    csv.push_str(",prior_spread\n");
    let mut fold_of = vec![0usize; n];
    for (k, f) in folds.iter().enumerate() {
        for &i in &f.test {
            fold_of[i] = k;
        }
    }
    let all_oof: Vec<Vec<f64>> = models
        .iter()
        .map(|m| oof(m, &labels, &folds))
        .collect::<Result<_>>()?;
    for i in 0..n {
        csv.push_str(&format!(
            "{},{},{}",
            cohort.patients[i].id,
            u8::from(labels[i]),
            fold_of[i]
        ));
        for s in &all_oof {
            csv.push_str(&format!(",{:.6}", s[i]));
        }
        csv.push_str(&format!(",{:.6}\n", spread[i]));
    }
    write_text(&options.out.join("predictions.csv"), &csv)?;
    let t1 = table(
        "Table 1: PE classification, pooled out-of-fold predictions",
        &models,
        &metrics,
    );
    t1.write_csv(options.out.join("table1.csv"))?;
    if !table2.is_empty() {
        table(
            "Table 2: ablations of the diffusion prior",
            &table2_models,
            &table2,
        )
        .write_csv(options.out.join("table2.csv"))?;
    }
    let _ = prior_metrics;
    let per_fold: Option<Vec<FoldDiagnostics>> =
        outputs.iter().map(|o| o.diagnostics.clone()).collect();
    let diagnostics = match per_fold {
        Some(d) => {
            let model_oof = |name: &str| -> Result<Vec<f64>> {
                let m = models
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| PipelineError::Data(format!("no results of {name}")))?;
                oof(m, &labels, &folds)
            };
            Some(summarize(
                &labels,
                &folds,
                &d,
                config.samples_per_xray,
                &prior_oof,
                &model_oof(CTPA_ONLY)?,
                &model_oof(CXR_ONLY)?,
            )?)
        }
        None => None,
    };
    let own_aucs = SeedAucs {
        seed: config.seed,
        aucs: metrics
            .iter()
            .map(|m| (m.row.model.clone(), m.row.auc))
            .collect(),
    };
    let seed_spread = if options.other_seeds.is_empty() {
        Vec::new()
    } else {
        seed_spread(&own_aucs, &options.other_seeds)?
    };
    let report = Report {
        config: config.clone(),
        config_hash: hash,
        patients: n,
        positives: labels.iter().filter(|&&l| l).count(),
        sections: models
            .iter()
            .chain(&table2_models)
            .map(|m| m.section.clone())
            .collect(),
        table1: metrics,
        table2,
        uncertainty,
        gap_recovered,
        prior_final_loss: outputs.iter().map(|o| o.prior_final_loss).collect(),
        cohort_source: cohort.source.clone(),
        pretrain_source: pretrain_set.source.clone(),
        diagnostics,
        data_use: data_use(config),
        seed_spread,
    };
    write_text(
        &options.out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write_text(
        &options.out.join("report.md"),
        &super::markdown::render(&report, &models, &table2_models),
    )?;
    Ok(report)
}

/// The synthetic CT-only (RSPECT-like) pretraining set of `config` (med-io, plain DRRs).
pub fn synthetic_pretraining_set(config: &PipelineConfig) -> Result<PairedCohort> {
    PairedCohort::synthetic(
        &pretrain_config(config.pretrain_patients, &config.data, config.seed),
        &config.data,
        "pretraining set",
    )
}

/// The synthetic paired cohort of `config` (med-io, clinical X-rays).
pub fn synthetic_cohort(config: &PipelineConfig) -> Result<PairedCohort> {
    PairedCohort::synthetic(
        &paired_config(config.patients, &config.data, config.seed),
        &config.data,
        "paired cohort",
    )
}

/// Generates the synthetic cohort and pretraining set for `config` and runs the pipeline.
pub fn run_synthetic(config: &PipelineConfig, options: &RunOptions) -> Result<Report> {
    config.validate()?;
    let cohort = synthetic_cohort(config)?;
    run_on(
        config,
        &cohort,
        &synthetic_pretraining_set(config)?,
        options,
    )
}

/// Where a paired cohort on disk is: the manifest CSV and, when it has no path columns, the folders
/// holding `<accession>.nii.gz` CTs and `<accession>.png` X-rays.
#[derive(Debug, Clone)]
pub struct ManifestSource {
    /// The CSV (`CT_Accession_number`, `cxr_Accession_number`, `PE`, optional `ct_path`, `cxr_path`).
    pub csv: PathBuf,
    /// CT folder, when the CSV has no `ct_path` column.
    pub ct_dir: Option<PathBuf>,
    /// X-ray folder, when the CSV has no `cxr_path` column.
    pub cxr_dir: Option<PathBuf>,
}

/// Reads the paired cohort of `source` with med-io and the pipeline's preprocessing, and runs the
/// pipeline on it; the pretraining set is the synthetic RSPECT-like one of `config`
/// ([`run_sources`] takes a real one).
pub fn run_manifest(
    config: &PipelineConfig,
    source: &ManifestSource,
    options: &RunOptions,
) -> Result<Report> {
    run_sources(config, Some(source), None, options)
}

/// Where a real CT-only pretraining set in the RSPECT layout is (read by
/// [`PairedCohort::from_rspect`]).
#[derive(Debug, Clone)]
pub struct RspectSource {
    /// The labels CSV: RSPECT's per-image `train.csv` or an exam-level file (`StudyInstanceUID`,
    /// `SeriesInstanceUID`, `negative_exam_for_pe`).
    pub csv: PathBuf,
    /// The folder holding `<StudyInstanceUID>/<SeriesInstanceUID>/` DICOM series (or
    /// `<StudyInstanceUID>/<SeriesInstanceUID>.nii.gz`).
    pub root: PathBuf,
    /// Keep only the first exams of the CSV.
    pub limit: Option<usize>,
}

/// The CT-only pretraining set: read from `rspect` when given, otherwise the synthetic RSPECT-like set
/// of `config`.
pub fn pretraining_set(
    config: &PipelineConfig,
    rspect: Option<&RspectSource>,
) -> Result<PairedCohort> {
    match rspect {
        Some(r) => PairedCohort::from_rspect(&r.csv, &r.root, &config.data, r.limit),
        None => synthetic_pretraining_set(config),
    }
}

/// Runs the pipeline on the paired cohort of `cohort` (the synthetic one of `config` when `None`)
/// with the pretraining set of `rspect` (the synthetic one when `None`). With a real pretraining set,
/// the report's `pretrain_patients` is the number of exams read.
pub fn run_sources(
    config: &PipelineConfig,
    cohort: Option<&ManifestSource>,
    rspect: Option<&RspectSource>,
    options: &RunOptions,
) -> Result<Report> {
    config.validate()?;
    // The pretraining set first: a bad RSPECT layout is reported before any cohort is generated.
    let pretrain = pretraining_set(config, rspect)?;
    let paired = match cohort {
        Some(source) => PairedCohort::from_manifest(
            &source.csv,
            source.ct_dir.as_deref(),
            source.cxr_dir.as_deref(),
            &config.data,
        )?,
        None => PairedCohort::synthetic(
            &paired_config(config.patients, &config.data, config.seed),
            &config.data,
            "paired cohort",
        )?,
    };
    let config = PipelineConfig {
        pretrain_patients: pretrain.len(),
        ..config.clone()
    };
    run_on(&config, &paired, &pretrain, options)
}
