//! The Markdown report of a run.

use med_eval::report::format_params;

use super::config::XrayBackbone;
use super::diagnostics::Diagnostics;
use super::evaluation::{ModelMetrics, ModelScores};
use super::report::Report;
use super::run::{CTPA_ONLY, CXR_ONLY, PRIOR};
use super::seeds::SeedSpread;

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn ci(m: &ModelMetrics) -> String {
    match m.row.auc_ci {
        Some(c) => format!("{:.3} [{:.2}-{:.2}]", m.row.auc, c.low, c.high),
        None => format!("{:.3}", m.row.auc),
    }
}

fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "reference".into(),
    }
}

/// A table with sections, AUC [95% CI], (with `spread`, the AUC's mean and SD over seeds),
/// accuracy, specificity, sensitivity (percent), parameters, DeLong p vs CXR-only, Brier score and ECE.
pub(crate) fn metrics_table(
    models: &[ModelScores],
    metrics: &[ModelMetrics],
    with_p: bool,
    spread: &[SeedSpread],
) -> String {
    let mut s = String::from("| Model | AUC [95% CI] |");
    if !spread.is_empty() {
        s.push_str(&format!(
            " AUC over {} seeds, mean ± SD |",
            spread[0].seeds.len()
        ));
    }
    s.push_str(" Accuracy | Specificity | Sensitivity | #Trainable params |");
    if with_p {
        s.push_str(" DeLong p vs CXR-only |");
    }
    s.push_str(" Brier | ECE |\n|---|---|---|---|---|---|");
    if !spread.is_empty() {
        s.push_str("---|");
    }
    if with_p {
        s.push_str("---|");
    }
    s.push_str("---|---|\n");
    let mut section = "";
    for (m, r) in models.iter().zip(metrics) {
        if m.section != section {
            section = &m.section;
            s.push_str(&format!(
                "| **{section}** | | | | | |{}{} | |\n",
                if spread.is_empty() { "" } else { " |" },
                if with_p { " |" } else { "" }
            ));
        }
        let over_seeds = match spread.iter().find(|x| x.model == m.name) {
            Some(x) => format!(" {:.3} ± {:.3} |", x.mean, x.sd),
            None if spread.is_empty() => String::new(),
            None => " |".into(),
        };
        s.push_str(&format!(
            "| {} | {} |{over_seeds} {} | {} | {} | {} |",
            m.name,
            ci(r),
            pct(r.row.accuracy),
            pct(r.row.specificity),
            pct(r.row.sensitivity),
            r.row
                .trainable_params
                .map(format_params)
                .unwrap_or_default(),
        ));
        if with_p {
            s.push_str(&format!(" {} |", p_value(r.p_vs_cxr)));
        }
        s.push_str(&format!(" {:.3} | {:.3} |\n", r.brier, r.ece));
    }
    s
}

/// The whole report.
pub fn render(report: &Report, table1: &[ModelScores], table2: &[ModelScores]) -> String {
    let mut s = header(report);
    s.push_str(&table1_section(report, table1));
    s.push_str(&reading(report));
    if !table2.is_empty() {
        s.push_str("## Table 2: ablations of the diffusion prior\n\n");
        s.push_str(&metrics_table(table2, &report.table2, false, &[]));
        s.push_str("\nThe CXR encoder choice of the paper's Table 2 (RadImageNet / DINOv2 / BiomedCLIP weights) is not \
            run: no pretrained weights are available offline, and the synthetic X-rays are not natural images.\n");
    }
    s.push_str("\n## Figures\n\n- `figures/roc.png`: ROC curves of Table 1.\n- `figures/reliability_prior.png`: calibration of the prior.\n");
    if report.config.tsne {
        s.push_str("- `figures/tsne_{beginning,middle,end}.png`: t-SNE of true CTPA, generated CTPA and CXR embeddings of fold 1's test patients during prior training.\n");
    }
    s.push_str("\nFiles: `report.json` (all numbers), `table1.csv`, `table2.csv` (with `--ablations`), `predictions.csv` (out-of-fold probabilities).\n");
    s
}

/// The title and the paragraphs on the data, the settings and the X-ray backbone.
fn header(report: &Report) -> String {
    let c = &report.config;
    let mut s = String::new();
    s.push_str(
        "# cmkd: PE from chest X-ray by distilling a CTPA classifier through a diffusion prior\n\n",
    );
    s.push_str(&format!(
        "Cohort: {} patients ({} with PE), {}; CT resized to {}x{}x{} / X-ray to {}x{}; pretraining set: {} CT-only patients, {}. \
         {}-fold stratified cross-validation (seed {}); embedding size {}; prior: {} epochs{}, \
         Analytic-DPM with {} strided steps of {}, {} samples per X-ray{}. Configuration hash `{}`.\n\n",
        report.patients,
        report.positives,
        report.cohort_source,
        c.data.ct_size,
        c.data.ct_size,
        c.data.slices,
        c.data.cxr_size,
        c.data.cxr_size,
        c.pretrain_patients,
        report.pretrain_source,
        c.folds,
        c.seed,
        c.embed_dim,
        c.prior_epochs,
        if c.prior_pretrain_epochs > 0 {
            format!(" after {} pretraining epochs on (rendered radiograph, CTPA) pairs", c.prior_pretrain_epochs)
        } else {
            String::new()
        },
        c.sample_steps,
        c.timesteps,
        c.samples_per_xray,
        if c.cond_drop_prob > 0.0 {
            format!(
                ", condition dropout {} and guidance scale {}",
                c.cond_drop_prob, c.guidance_scale
            )
        } else {
            String::new()
        },
        report.config_hash,
    ));
    s.push_str(&format!(
        "X-ray backbone: pretrained on {}{}.\n\n",
        c.xray_backbone.describe(),
        match c.xray_backbone {
            XrayBackbone::Findings => format!(
                " ({} X-rays, each finding in {:.0}% of them)",
                c.findings_patients,
                100.0 * c.finding_prob
            ),
            XrayBackbone::CtOnlyPeLabels => String::new(),
        }
    ));
    s
}

/// Table 1, the seeds note and which data each model used.
fn table1_section(report: &Report, table1: &[ModelScores]) -> String {
    let mut s = String::new();
    s.push_str("## Table 1\n\nAUC: pooled out-of-fold predictions with the DeLong 95% CI. Accuracy, specificity and \
        sensitivity (%): mean over test folds, each at the Youden threshold chosen on its training folds. \
        Trainable parameters: those optimised in one fold (the frozen pretrained slice CNN and X-ray backbone are \
        shared by all models and not counted). p: paired DeLong test of the pooled AUC against the CXR-only model.\n\n");
    s.push_str(&metrics_table(
        table1,
        &report.table1,
        true,
        &report.seed_spread,
    ));
    if let Some(first) = report.seed_spread.first() {
        let seeds: Vec<String> = first.seeds.iter().map(u64::to_string).collect();
        s.push_str(&format!(
            "\nSeeds {} (each reruns the synthetic data, the folds, every initialisation and the sampling); the CI and the other columns are those of seed {}.\n",
            seeds.join(", "),
            first.seeds[0]
        ));
    }
    s.push_str("\n## Which data each model used\n\n");
    for d in &report.data_use {
        s.push_str(&format!("- **{}**: {}\n", d.model, d.summary));
    }
    s
}

/// The reading of Table 1, the prior's uncertainty and losses, and the diagnostics.
fn reading(report: &Report) -> String {
    let mut s = String::new();
    let auc = |name: &str| {
        report
            .table1
            .iter()
            .find(|m| m.row.model == name)
            .map(|m| m.row.auc)
    };
    s.push_str("\n## Reading\n\n");
    if let (Some(a), Some(b), Some(p)) = (auc(CTPA_ONLY), auc(CXR_ONLY), auc(PRIOR)) {
        s.push_str(&format!(
            "CTPA-only AUC {a:.3}, CXR-only {b:.3}, diffusion prior {p:.3}. "
        ));
        match report.gap_recovered {
            Some(g) if g <= 0.0 => s.push_str(
                "The prior recovers none of the CTPA-CXR gap: it scores at or below CXR-only on this \
                 cohort (see the section on why below).\n\n",
            ),
            Some(g) => s.push_str(&format!(
                "The prior recovers {:.0}% of the CTPA-CXR gap{}.\n\n",
                100.0 * g,
                if g <= 0.1 {
                    " — not a meaningful part of it on this cohort (see the section on why below)"
                } else {
                    ""
                }
            )),
            None => s.push_str("There is no CTPA-CXR gap on this cohort.\n\n"),
        }
    }
    let u = &report.uncertainty;
    s.push_str(&format!(
        "## Uncertainty of the prior ({} samples per X-ray)\n\nMean standard deviation of the sampled probabilities: {:.4} \
         (correctly classified: {:.4}; misclassified: {:.4}). AUC of the spread as a detector of the prior's errors: {:.3} \
         (0.5 = uninformative).\n\n",
        u.samples, u.mean_spread, u.spread_correct, u.spread_wrong, u.spread_error_auc
    ));
    s.push_str(&format!(
        "Final prior training loss per fold: {}.\n\n",
        report
            .prior_final_loss
            .iter()
            .map(|l| format!("{l:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(d) = &report.diagnostics {
        s.push_str(&diagnostics_section(d, auc(PRIOR)));
    }
    s
}

/// The "why" section: the prior's fidelity against the linear reference, its sampling noise and
/// what it follows, with a reading of each that the numbers support.
fn diagnostics_section(d: &Diagnostics, prior_auc: Option<f64>) -> String {
    let mut s = String::from(
        "## Why the prior scores what it does\n\nMeasured on each fold's test patients (see \
         `cmkd::pipeline::diagnostics`). R^2 of a predicted embedding for the true CTPA embedding: 0 = no \
         better than the average CTPA embedding. The linear reference is a ridge regression from the X-ray to the \
         CTPA embedding fitted on the training fold and classified by the same frozen CTPA head.\n\n\
         | Measure | Value |\n|---|---|\n",
    );
    s.push_str(&format!(
        "| R^2 of the prior's mean of {} draws | {:.3} |\n\
         | R^2 of the linear reference | {:.3} |\n\
         | AUC of the linear reference | {:.3} |\n\
         | AUC of the prior, one draw per X-ray | {:.3} |\n",
        d.samples, d.prior_r2, d.linear_r2, d.linear_auc, d.single_draw_auc
    ));
    if let Some(a) = prior_auc {
        s.push_str(&format!(
            "| AUC of the prior, mean of {} draws | {a:.3} |\n",
            d.samples
        ));
    }
    s.push_str(&format!(
        "| Spearman of the prior's probabilities with CTPA-only / CXR-only | {:.2} / {:.2} |\n\
         | Spearman of CTPA-only with CXR-only | {:.2} |\n\n",
        d.spearman_prior_ctpa, d.spearman_prior_cxr, d.spearman_ctpa_cxr
    ));
    let mut reading = Vec::new();
    if d.linear_r2 < 0.1 {
        reading.push(format!(
            "The X-ray embedding predicts little of the CTPA embedding even with the linear reference \
             (R^2 {:.3}): a prior cannot reconstruct what its condition does not carry.",
            d.linear_r2
        ));
    }
    if d.prior_r2 < d.linear_r2 - 0.05 {
        reading.push(
            "The prior reconstructs less than the linear reference: it is under-trained or its \
             samples are too dispersed for this data."
                .to_string(),
        );
    } else {
        reading.push(
            "The prior reconstructs as much as the linear reference (or more): its training is not \
             what limits it."
                .to_string(),
        );
    }
    if let Some(a) = prior_auc {
        if a - d.single_draw_auc > 0.02 {
            reading.push(format!(
                "Averaging {} draws gains {:.3} AUC over one draw: sampling noise costs accuracy here.",
                d.samples,
                a - d.single_draw_auc
            ));
        }
    }
    if d.spearman_prior_cxr > d.spearman_prior_ctpa + 0.1 {
        reading.push(
            "The prior ranks patients more like the CXR-only classifier than like the teacher: it \
             passes on the X-ray's own signal rather than the CT's."
                .to_string(),
        );
    }
    s.push_str(&reading.join(" "));
    s.push_str("\n\n");
    s
}
