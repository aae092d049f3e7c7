//! The evaluation step: every fold's rows pooled out of fold ([`super::evaluation`]), the prior's
//! uncertainty, the figures, `predictions.csv`, `table1.csv` / `table2.csv`, and the report
//! (`report.json`, `report.md`).

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::config::PipelineConfig;
use super::diagnostics::{summarize, Diagnostics, FoldDiagnostics};
use super::distill::PriorLoss;
use super::error::{PipelineError, Result};
use super::evaluation::{
    evaluate, oof, reliability_figure, roc_figure, table, ModelMetrics, ModelScores,
};
use super::experiment::{Experiment, FoldOutput};
use super::fold::FoldRow;
use super::provenance::{data_use, DataUse};
use super::run::{CTPA_ONLY, CXR_ONLY, PRIOR};
use super::seeds::{seed_spread, SeedAucs, SeedSpread};

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
    /// Where the cohort came from ([`super::PairedCohort::source`]).
    pub cohort_source: String,
    /// Where the CT-only pretraining set came from.
    pub pretrain_source: String,
    /// Why the prior scores what it does ([`super::diagnostics`]); `None` when a fold came from a
    /// cache written before they existed.
    pub diagnostics: Option<Diagnostics>,
    /// Which data and PE labels each Table 1 model used ([`super::provenance`]).
    pub data_use: Vec<DataUse>,
    /// Each Table 1 row's AUC over this seed and [`super::RunOptions::other_seeds`]; empty for one
    /// seed.
    #[serde(default)]
    pub seed_spread: Vec<SeedSpread>,
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(cmkd_train::checkpoint::write_atomic(path, text.as_bytes())?)
}

/// One model per row position, its per-fold scores gathered over the folds (every fold has the
/// same rows in the same order).
fn pool(per_fold: &[&Vec<FoldRow>]) -> Vec<ModelScores> {
    let Some(first) = per_fold.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(j, r)| ModelScores {
            name: r.model.clone(),
            section: r.section.clone(),
            params: r.params,
            folds: per_fold.iter().map(|f| f[j].scores.clone()).collect(),
        })
        .collect()
}

fn model<'m>(models: &'m [ModelScores], name: &str) -> Result<&'m ModelScores> {
    models
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| PipelineError::Data(format!("no results of {name}")))
}

/// Table 2's models: the run's prior as the reference row of every group, then the ablations.
fn table2_models(
    config: &PipelineConfig,
    table1: &[ModelScores],
    ablations: &[Vec<FoldRow>],
) -> Vec<ModelScores> {
    let mut models = pool(&ablations.iter().collect::<Vec<_>>());
    if let Some(mut p) = table1.iter().find(|m| m.name == PRIOR).cloned() {
        p.name = format!(
            "default ({}, embedding {})",
            PriorLoss::L2Bce.label(),
            config.embed_dim
        );
        p.section = "Default".into();
        models.insert(0, p);
    }
    models
}

/// The prior's spread of every patient (from its test fold).
fn prior_spread(exp: &Experiment, folds: &[FoldOutput]) -> Vec<f64> {
    let mut spread = vec![0.0; exp.labels.len()];
    for (fold, o) in exp.folds.iter().zip(folds) {
        for (&i, &s) in fold.test.iter().zip(&o.prior_spread_test) {
            spread[i] = s;
        }
    }
    spread
}

/// How the prior's spread relates to its errors at each fold's Youden threshold.
fn uncertainty(exp: &Experiment, prior: &ModelScores, spread: &[f64]) -> Result<Uncertainty> {
    let labels = &exp.labels;
    let n = labels.len();
    let mut wrong = vec![false; n];
    for (fold, s) in exp.folds.iter().zip(&prior.folds) {
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
        med_eval::roc_auc(&wrong, spread)?
    } else {
        0.5
    };
    Ok(Uncertainty {
        samples: exp.config.samples_per_xray,
        mean_spread: spread.iter().sum::<f64>() / n as f64,
        spread_correct: mean_of(false),
        spread_wrong: mean_of(true),
        spread_error_auc,
    })
}

/// `(AUC_prior - AUC_cxr) / (AUC_ctpa - AUC_cxr)`, when CTPA-only beats CXR-only.
fn gap_recovered(metrics: &[ModelMetrics]) -> Option<f64> {
    let auc_of = |name: &str| {
        metrics
            .iter()
            .find(|m| m.row.model == name)
            .map(|m| m.row.auc)
    };
    match (auc_of(CTPA_ONLY), auc_of(CXR_ONLY), auc_of(PRIOR)) {
        (Some(a), Some(b), Some(c)) if a - b > 1e-9 => Some((c - b) / (a - b)),
        _ => None,
    }
}

/// `predictions.csv`: every patient's label, test fold, out-of-fold probability of each model and
/// the prior's spread.
fn predictions_csv(exp: &Experiment, models: &[ModelScores], spread: &[f64]) -> Result<String> {
    let (labels, folds) = (&exp.labels, &exp.folds);
    let mut csv = String::from("patient,label,fold");
    for m in models {
        csv.push_str(&format!(",\"{}\"", m.name));
    }
    csv.push_str(",prior_spread\n");
    let mut fold_of = vec![0usize; labels.len()];
    for (k, f) in folds.iter().enumerate() {
        for &i in &f.test {
            fold_of[i] = k;
        }
    }
    let all_oof: Vec<Vec<f64>> = models
        .iter()
        .map(|m| oof(m, labels, folds))
        .collect::<Result<_>>()?;
    for i in 0..labels.len() {
        csv.push_str(&format!(
            "{},{},{}",
            exp.cohort.patients[i].id,
            u8::from(labels[i]),
            fold_of[i]
        ));
        for s in &all_oof {
            csv.push_str(&format!(",{:.6}", s[i]));
        }
        csv.push_str(&format!(",{:.6}\n", spread[i]));
    }
    Ok(csv)
}

/// The diagnostics over all folds, when every fold has them.
fn diagnostics(
    exp: &Experiment,
    folds: &[FoldOutput],
    models: &[ModelScores],
    prior_oof: &[f64],
) -> Result<Option<Diagnostics>> {
    let per_fold: Option<Vec<FoldDiagnostics>> =
        folds.iter().map(|o| o.diagnostics.clone()).collect();
    let Some(d) = per_fold else {
        return Ok(None);
    };
    let model_oof = |name: &str| oof(model(models, name)?, &exp.labels, &exp.folds);
    Ok(Some(summarize(
        &exp.labels,
        &exp.folds,
        &d,
        exp.config.samples_per_xray,
        prior_oof,
        &model_oof(CTPA_ONLY)?,
        &model_oof(CXR_ONLY)?,
    )?))
}

/// Each Table 1 row's AUC over this seed and the options' other seeds (empty for one seed).
fn spread_over_seeds(exp: &Experiment, metrics: &[ModelMetrics]) -> Result<Vec<SeedSpread>> {
    if exp.options.other_seeds.is_empty() {
        return Ok(Vec::new());
    }
    let own = SeedAucs {
        seed: exp.config.seed,
        aucs: metrics
            .iter()
            .map(|m| (m.row.model.clone(), m.row.auc))
            .collect(),
    };
    seed_spread(&own, &exp.options.other_seeds)
}

/// Evaluates `folds` (and, with ablations, `ablations`), writes every output file and returns the
/// report.
pub(crate) fn write(
    exp: &Experiment,
    folds: &[FoldOutput],
    ablations: &[Vec<FoldRow>],
) -> Result<Report> {
    let (config, out) = (exp.config, &exp.options.out);
    let (labels, cv) = (&exp.labels, &exp.folds);
    let models = pool(&folds.iter().map(|o| &o.models).collect::<Vec<_>>());
    let metrics = evaluate(&models, labels, cv, CXR_ONLY)?;
    let (t2_models, table2) = if exp.options.ablations {
        let m = table2_models(config, &models, ablations);
        let t = evaluate(&m, labels, cv, "")?;
        (m, t)
    } else {
        (Vec::new(), Vec::new())
    };
    let prior = model(&models, PRIOR)?;
    let spread = prior_spread(exp, folds);
    let uncertainty = uncertainty(exp, prior, &spread)?;

    roc_figure(&exp.figures.join("roc.png"), &models, &metrics, labels, cv)?;
    let prior_oof = oof(prior, labels, cv)?;
    reliability_figure(
        &exp.figures.join("reliability_prior.png"),
        "Diffusion prior: reliability",
        labels,
        &prior_oof,
    )?;
    write_text(
        &out.join("predictions.csv"),
        &predictions_csv(exp, &models, &spread)?,
    )?;
    let t1 = table(
        "Table 1: PE classification, pooled out-of-fold predictions",
        &models,
        &metrics,
    );
    t1.write_csv(out.join("table1.csv"))?;
    if !table2.is_empty() {
        table(
            "Table 2: ablations of the diffusion prior",
            &t2_models,
            &table2,
        )
        .write_csv(out.join("table2.csv"))?;
    }
    let report = Report {
        config: config.clone(),
        config_hash: exp.hash.clone(),
        patients: labels.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        sections: models
            .iter()
            .chain(&t2_models)
            .map(|m| m.section.clone())
            .collect(),
        gap_recovered: gap_recovered(&metrics),
        seed_spread: spread_over_seeds(exp, &metrics)?,
        table1: metrics,
        table2,
        uncertainty,
        prior_final_loss: folds.iter().map(|o| o.prior_final_loss).collect(),
        cohort_source: exp.cohort.source.clone(),
        pretrain_source: exp.pretrain.source(),
        diagnostics: diagnostics(exp, folds, &models, &prior_oof)?,
        data_use: data_use(config),
    };
    write_text(
        &out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write_text(
        &out.join("report.md"),
        &super::markdown::render(&report, &models, &t2_models),
    )?;
    Ok(report)
}
