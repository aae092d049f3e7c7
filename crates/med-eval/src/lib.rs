//! `med-eval`: the evaluation protocol of a diagnostic classifier, with the statistics done right.
//!
//! - [`agreement`]: Pearson and Spearman correlation, multi-output R^2 (how one model follows another);
//! - [`roc`]: ROC curve and AUC with scikit-learn's tie handling;
//! - [`delong`]: DeLong variance and CIs by the fast O(n log n) algorithm of Sun & Xu (2014), and the
//!   paired DeLong test between two models scored on the same patients;
//! - [`bootstrap`]: seeded, parallel, stratified bootstrap CIs;
//! - [`threshold`]: accuracy, sensitivity, specificity, PPV, NPV, F1, and the Youden threshold
//!   chosen on training folds and applied to the test fold;
//! - [`calibration`](mod@calibration): Brier score, ECE and reliability-diagram data;
//! - [`folds`]: stratified k-fold splits (scikit-learn's `StratifiedKFold` semantics) and
//!   [`crossval`]: per-fold aggregation and pooled out-of-fold statistics;
//! - [`tsne`]: exact and Barnes–Hut t-SNE, with trustworthiness and kNN preservation scores;
//! - [`plot`]: ROC curves, t-SNE scatter and reliability diagrams as PNG or SVG;
//! - [`report`]: the results table (Cahan et al. 2025, Table 1 layout) as Markdown, CSV and JSON;
//! - [`scores_csv`]: reading a CSV of labels and model scores.
//!
//! ```
//! use med_eval::{delong, CiMethod};
//!
//! let labels = [true, true, true, false, false, false, false];
//! let scores = [0.9, 0.8, 0.4, 0.5, 0.3, 0.2, 0.1];
//! let d = delong::delong(&labels, &scores)?;
//! assert!((d.auc - 11.0 / 12.0).abs() < 1e-12);
//! let ci = d.ci(0.95, CiMethod::Plain).unwrap();
//! assert!(ci.contains(d.auc));
//!
//! let other = [0.6, 0.7, 0.2, 0.65, 0.1, 0.3, 0.5];
//! let test = delong::delong_test(&labels, &scores, &other)?;
//! assert!(test.p_value > 0.0 && test.p_value <= 1.0);
//! # Ok::<(), med_eval::EvalError>(())
//! ```
#![deny(missing_docs)]

pub mod agreement;
mod atomic;
pub mod bootstrap;
pub mod calibration;
pub mod crossval;
pub mod delong;
mod error;
pub mod folds;
pub mod normal;
pub mod plot;
pub mod report;
pub mod roc;
pub mod scores_csv;
pub mod threshold;
pub mod tsne;

pub use bootstrap::{bootstrap_auc_ci, BootstrapCi, BootstrapConfig};
pub use calibration::{brier_score, calibration, Calibration, ReliabilityBin};
pub use crossval::{evaluate_folds, out_of_fold_scores, CvSummary, FoldPredictions, MeanSd};
pub use delong::{
    delong_covariance, delong_test, CiMethod, ConfidenceInterval, DelongAuc, DelongCovariance,
    DelongTest,
};
pub use error::{EvalError, Result};
pub use folds::{Fold, StratifiedKFold};
pub use roc::{roc_auc, roc_curve, RocCurve};
pub use threshold::{
    metrics_at, youden_threshold, youden_train_test, Confusion, ThresholdMetrics, YoudenPoint,
};
