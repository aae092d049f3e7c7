//! Evaluation of the pooled out-of-fold predictions with med-eval: Table 1 and Table 2 rows,
//! DeLong tests against the CXR-only model, calibration, the prior's sample spread, and figures.

use med_eval::crossval::{evaluate_folds, out_of_fold_scores, FoldPredictions};
use med_eval::plot::{plot_reliability, plot_roc, RocSeries};
use med_eval::report::{ModelRow, ResultsTable, Section};
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::error::Result;

/// One model's scores on every fold: training-fold scores (for the Youden threshold) and test-fold
/// scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldScores {
    /// Scores of the training patients, in the order of the fold's `train` indices.
    pub train: Vec<f64>,
    /// Scores of the test patients, in the order of the fold's `test` indices.
    pub test: Vec<f64>,
}

/// A model evaluated on all folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScores {
    /// Name in the tables.
    pub name: String,
    /// Table section ("Baselines", "Cross-modality knowledge distillation", an ablation group).
    pub section: String,
    /// Trainable parameters of one fold's model.
    pub params: u64,
    /// Per-fold scores.
    pub folds: Vec<FoldScores>,
}

/// Metrics of one model beyond the table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// The Table 1 row (pooled AUC with DeLong 95% CI; fold-mean accuracy, specificity and
    /// sensitivity at each training fold's Youden threshold).
    pub row: ModelRow,
    /// Fold-wise mean and standard deviation of the AUC.
    pub auc_fold_mean: f64,
    /// Standard deviation of the fold AUCs.
    pub auc_fold_sd: f64,
    /// Two-sided DeLong p-value of the AUC difference to the CXR-only model (pooled out-of-fold
    /// scores); `None` for the CXR-only model itself.
    pub p_vs_cxr: Option<f64>,
    /// Brier score of the pooled probabilities.
    pub brier: f64,
    /// Expected calibration error (10 bins).
    pub ece: f64,
}

/// Evaluates `models` on the folds' `(train, test)` indices; `reference` names the model for the
/// DeLong comparisons.
pub fn evaluate(
    models: &[ModelScores],
    labels: &[bool],
    folds: &[med_eval::Fold],
    reference: &str,
) -> Result<Vec<ModelMetrics>> {
    let n = labels.len();
    let reference_oof = models
        .iter()
        .find(|m| m.name == reference)
        .map(|m| oof(m, labels, folds))
        .transpose()?;
    let mut out = Vec::with_capacity(models.len());
    for m in models {
        let p = fold_predictions(m, labels, folds);
        let cv = evaluate_folds(&p)?;
        let oof = out_of_fold_scores(n, &p)?;
        let p_vs_cxr = match &reference_oof {
            Some(r) if m.name != reference => {
                Some(med_eval::delong::delong_test(labels, &oof, r)?.p_value)
            }
            _ => None,
        };
        let cal = med_eval::calibration(
            labels,
            &oof.iter().map(|v| v.clamp(0.0, 1.0)).collect::<Vec<_>>(),
            10,
        )?;
        out.push(ModelMetrics {
            row: ModelRow::from_cv(m.name.clone(), &cv, Some(m.params)),
            auc_fold_mean: cv.auc.mean,
            auc_fold_sd: cv.auc.sd,
            p_vs_cxr,
            brier: cal.brier,
            ece: cal.ece,
        });
    }
    Ok(out)
}

/// Each fold's training and test scores of `model` with their labels, as med-eval takes them.
fn fold_predictions(
    model: &ModelScores,
    labels: &[bool],
    folds: &[med_eval::Fold],
) -> Vec<FoldPredictions> {
    folds
        .iter()
        .zip(&model.folds)
        .map(|(f, s)| FoldPredictions {
            train_labels: f.train.iter().map(|&i| labels[i]).collect(),
            train_scores: s.train.clone(),
            test_indices: f.test.clone(),
            test_labels: f.test.iter().map(|&i| labels[i]).collect(),
            test_scores: s.test.clone(),
        })
        .collect()
}

/// Out-of-fold scores of one model in patient order.
pub fn oof(model: &ModelScores, labels: &[bool], folds: &[med_eval::Fold]) -> Result<Vec<f64>> {
    Ok(out_of_fold_scores(
        labels.len(),
        &fold_predictions(model, labels, folds),
    )?)
}

/// Groups rows by their model's section, in first-seen order.
pub fn table(caption: &str, models: &[ModelScores], metrics: &[ModelMetrics]) -> ResultsTable {
    let mut sections: Vec<Section> = Vec::new();
    for (m, r) in models.iter().zip(metrics) {
        match sections
            .iter_mut()
            .find(|s| s.title.as_deref() == Some(m.section.as_str()))
        {
            Some(s) => s.rows.push(r.row.clone()),
            None => sections.push(Section {
                title: Some(m.section.clone()),
                rows: vec![r.row.clone()],
            }),
        }
    }
    ResultsTable {
        caption: Some(caption.to_string()),
        sections,
    }
}

/// ROC curves of the pooled out-of-fold scores of `models`.
pub fn roc_figure(
    path: &Path,
    models: &[ModelScores],
    metrics: &[ModelMetrics],
    labels: &[bool],
    folds: &[med_eval::Fold],
) -> Result<()> {
    let mut series = Vec::new();
    for (m, r) in models.iter().zip(metrics) {
        let scores = oof(m, labels, folds)?;
        series.push(RocSeries {
            name: m.name.clone(),
            curve: med_eval::roc_curve(labels, &scores, true)?,
            auc: r.row.auc,
            ci: r.row.auc_ci,
        });
    }
    plot_roc(path, "ROC, pooled out-of-fold", &series)?;
    Ok(())
}

/// Reliability diagram of one model's pooled probabilities.
pub fn reliability_figure(path: &Path, title: &str, labels: &[bool], probs: &[f64]) -> Result<()> {
    let cal = med_eval::calibration(labels, probs, 10)?;
    plot_reliability(path, title, &cal)?;
    Ok(())
}
