//! The paper's full pipeline (Cahan et al., MICCAI 2025) on a paired CTPA/CXR cohort:
//!
//! - **Data** ([`cohort`]): the paired cohort, a disjoint CT-only pretraining set and a findings
//!   X-ray population from [`med_io::synthetic`], preprocessed with med-io's transforms (HU window
//!   [-100, 900], resize).
//! - **Phase A** ([`features`], [`encoders`], [`heads`]): a slice CNN pretrained on the CT-only set
//!   and an X-ray backbone pretrained on generic findings (never a PE label), both frozen; per fold,
//!   the CTPA-only classifier (patch-free sequence ViT) and the CXR-only classifier (projection +
//!   head), and their embeddings of every patient. [`provenance`] says which data each model used.
//! - **Phase B** ([`distill`]): the diffusion prior from X-ray to CTPA embedding, trained with L2 +
//!   lambda * BCE through the frozen CTPA head (target: the teacher's own probability), EMA,
//!   Analytic-DPM.
//! - **Phase C** ([`distill`]): several samples per X-ray classified by the frozen CTPA head: mean
//!   probability and spread.
//! - **Baselines** ([`baselines`]): five teacher-student methods from kd-losses.
//! - **Evaluation** ([`evaluation`], [`markdown`]): pooled out-of-fold Table 1, Table 2 ablations,
//!   DeLong tests, calibration, ROC, reliability and t-SNE figures; [`diagnostics`]: the prior's
//!   conditional fidelity against a linear reference, its sampling noise and what it follows.
//!
//! [`Experiment`] holds the phases as calls (as `examples/pe_cxr.rs` makes them);
//! [`run::run_synthetic`] and the other `run_*` entry points make the same calls; every phase is
//! cached by configuration hash.
//! [`seeds::run_seeds`] repeats it over seeds; [`sweep::run_sweep`] asks when the prior pays off
//! (label efficiency).
//!
//! The rest of this page is `docs/pipeline.md`: the map from the paper to the API.
#![doc = include_str!("../../docs/pipeline.md")]

pub mod ablations;
pub mod baselines;
pub mod cohort;
pub mod config;
pub mod diagnostics;
pub mod distill;
pub mod encoders;
pub mod error;
pub mod evaluation;
pub mod experiment;
pub mod features;
pub mod fold;
pub mod heads;
pub mod markdown;
pub mod provenance;
pub mod report;
pub mod run;
pub mod seeds;
pub mod shard;
pub mod sources;
mod streams;
pub mod sweep;

pub use cohort::{PairedCohort, Patient};
pub use config::PipelineConfig;
pub use error::{PipelineError, Result};
pub use experiment::{Experiment, FoldOutput, Frozen};
pub use fold::{FoldHeads, FoldRow, PriorVariant};
pub use report::Report;
pub use run::{run_manifest, run_on, run_sources, run_synthetic, RunOptions};
pub use seeds::run_seeds;
pub use sources::{load_cohort, load_data, Data, ManifestSource, RspectSource};
