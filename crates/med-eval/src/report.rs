//! Results tables in the layout of Cahan et al. 2025, Table 1: model, AUC [95% CI], accuracy,
//! specificity, sensitivity and number of trainable parameters, in optional sections ("Baselines",
//! "Cross Modality Knowledge Distillation Methods"), as Markdown, CSV and JSON.
//!
//! Rates are stored as fractions and shown in the Markdown as percentages with two decimals, as in
//! the paper; the CSV and JSON keep raw numbers (fractions, parameter counts) for machines.

use crate::atomic;
use crate::crossval::CvSummary;
use crate::delong::ConfidenceInterval;
use crate::error::{EvalError, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One model's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// Model name.
    pub model: String,
    /// ROC AUC.
    pub auc: f64,
    /// Its confidence interval.
    pub auc_ci: Option<ConfidenceInterval>,
    /// Accuracy as a fraction.
    pub accuracy: f64,
    /// Specificity as a fraction.
    pub specificity: f64,
    /// Sensitivity as a fraction.
    pub sensitivity: f64,
    /// Number of trainable parameters, when known.
    pub trainable_params: Option<u64>,
}

impl ModelRow {
    /// A row from a cross-validation summary: pooled out-of-fold AUC with its DeLong CI, and the
    /// mean over folds of accuracy, specificity and sensitivity (each fold at the Youden threshold
    /// chosen on its training fold).
    pub fn from_cv(
        model: impl Into<String>,
        cv: &CvSummary,
        trainable_params: Option<u64>,
    ) -> Self {
        ModelRow {
            model: model.into(),
            auc: cv.pooled.auc,
            auc_ci: Some(cv.pooled_ci),
            accuracy: cv.accuracy.mean,
            specificity: cv.specificity.mean,
            sensitivity: cv.sensitivity.mean,
            trainable_params,
        }
    }
}

/// A titled group of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Section heading (e.g. "Baselines"); `None` for rows without a heading.
    pub title: Option<String>,
    /// Rows in display order.
    pub rows: Vec<ModelRow>,
}

/// A results table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResultsTable {
    /// Caption, printed above the Markdown table.
    pub caption: Option<String>,
    /// Sections in display order.
    pub sections: Vec<Section>,
}

/// Formats a parameter count as the paper does: 459M, 49M, 1.2B, 850K.
pub fn format_params(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.1}B", x / 1e9)
    } else if x >= 1e7 {
        format!("{:.0}M", x / 1e6)
    } else if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}K", x / 1e3)
    } else {
        n.to_string()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}", 100.0 * x)
    } else {
        "–".into()
    }
}

fn auc_cell(r: &ModelRow) -> String {
    match r.auc_ci {
        Some(ci) => format!("{:.3} [{:.2}-{:.2}]", r.auc, ci.low, ci.high),
        None => format!("{:.3}", r.auc),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

impl ResultsTable {
    /// A table with one untitled section.
    pub fn from_rows(rows: Vec<ModelRow>) -> Self {
        ResultsTable {
            caption: None,
            sections: vec![Section { title: None, rows }],
        }
    }

    /// The table as GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.caption {
            let _ = writeln!(out, "{c}\n");
        }
        out.push_str(
            "| Model | AUC [95% CI] | Accuracy | Specificity | Sensitivity | #Trainable Params |\n",
        );
        out.push_str("|---|---|---|---|---|---|\n");
        for s in &self.sections {
            if let Some(t) = &s.title {
                let _ = writeln!(out, "| **{}** | | | | | |", md_escape(t));
            }
            for r in &s.rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    md_escape(&r.model),
                    auc_cell(r),
                    pct(r.accuracy),
                    pct(r.specificity),
                    pct(r.sensitivity),
                    r.trainable_params.map(format_params).unwrap_or_default()
                );
            }
        }
        out
    }

    /// The table as CSV with raw numbers (one row per model; the section in its own column).
    pub fn to_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let ser = |e: csv::Error| EvalError::Serialize(e.to_string());
        w.write_record([
            "section",
            "model",
            "auc",
            "auc_ci_low",
            "auc_ci_high",
            "accuracy",
            "specificity",
            "sensitivity",
            "trainable_params",
        ])
        .map_err(ser)?;
        let num = |x: f64| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        };
        for s in &self.sections {
            for r in &s.rows {
                w.write_record([
                    s.title.clone().unwrap_or_default(),
                    r.model.clone(),
                    num(r.auc),
                    r.auc_ci.map(|c| num(c.low)).unwrap_or_default(),
                    r.auc_ci.map(|c| num(c.high)).unwrap_or_default(),
                    num(r.accuracy),
                    num(r.specificity),
                    num(r.sensitivity),
                    r.trainable_params
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ])
                .map_err(ser)?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| EvalError::Serialize(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| EvalError::Serialize(e.to_string()))
    }

    /// The table as pretty JSON (NaN rates become `null`).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| EvalError::Serialize(e.to_string()))
    }

    /// Writes the Markdown, atomically.
    pub fn write_markdown(&self, path: impl AsRef<Path>) -> Result<()> {
        atomic::write(path.as_ref(), self.to_markdown().as_bytes())
    }

    /// Writes the CSV, atomically.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        atomic::write(path.as_ref(), self.to_csv()?.as_bytes())
    }

    /// Writes the JSON, atomically.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        atomic::write(path.as_ref(), self.to_json()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper_table() -> ResultsTable {
        let row = |m: &str, auc, lo, hi, acc, spec, sens, p| ModelRow {
            model: m.into(),
            auc,
            auc_ci: Some(ConfidenceInterval {
                low: lo,
                high: hi,
                level: 0.95,
            }),
            accuracy: acc,
            specificity: spec,
            sensitivity: sens,
            trainable_params: Some(p),
        };
        ResultsTable {
            caption: Some("Table 1.".into()),
            sections: vec![
                Section {
                    title: Some("Baselines".into()),
                    rows: vec![row(
                        "CTPA only classifier",
                        0.858,
                        0.77,
                        0.94,
                        0.8077,
                        0.8,
                        0.8261,
                        459_000_000,
                    )],
                },
                Section {
                    title: Some("Cross Modality Knowledge Distillation Methods".into()),
                    rows: vec![row(
                        "Our",
                        0.824,
                        0.72,
                        0.93,
                        f64::NAN,
                        0.7302,
                        0.7391,
                        49_000_000,
                    )],
                },
            ],
        }
    }

    #[test]
    fn markdown_has_paper_layout() {
        let md = paper_table().to_markdown();
        assert!(md.contains(
            "| CTPA only classifier | 0.858 [0.77-0.94] | 80.77 | 80.00 | 82.61 | 459M |"
        ));
        assert!(md.contains("| **Baselines** |"));
        assert!(md.contains("| Our | 0.824 [0.72-0.93] | – | 73.02 | 73.91 | 49M |"));
    }

    #[test]
    fn csv_and_json_round_trip() {
        let t = paper_table();
        let csv = t.to_csv().unwrap();
        let mut rdr = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], "Baselines");
        assert_eq!(&rows[0][2], "0.858");
        assert_eq!(&rows[1][5], "");
        let json = t.to_json().unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back["sections"][0]["rows"][0]["trainable_params"],
            459_000_000
        );
        assert!(back["sections"][1]["rows"][0]["accuracy"].is_null());
        let dir = tempfile::tempdir().unwrap();
        t.write_json(dir.path().join("t.json")).unwrap();
        t.write_csv(dir.path().join("t.csv")).unwrap();
        t.write_markdown(dir.path().join("t.md")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn params_format() {
        assert_eq!(format_params(459_000_000), "459M");
        assert_eq!(format_params(1_234_000_000), "1.2B");
        assert_eq!(format_params(2_500_000), "2.5M");
        assert_eq!(format_params(850_000), "850K");
        assert_eq!(format_params(12), "12");
    }
}
