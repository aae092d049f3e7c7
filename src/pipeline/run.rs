//! The run's entry points: [`run_on`] a cohort and pretraining set in memory, [`run_synthetic`],
//! [`run_manifest`] and [`run_sources`] from where the data are. Each is
//! [`Experiment::run`](super::experiment::Experiment::run): the phases in order, every phase's
//! output cached under `<out>/cache/`.

use candle_core::Device;
use std::path::PathBuf;

use super::cohort::PairedCohort;
use super::config::PipelineConfig;
use super::error::Result;
use super::experiment::Experiment;
use super::report::Report;
use super::seeds::SeedAucs;
use super::sources::{load_data, ManifestSource, RspectSource};

/// Names of the reference models.
pub const CTPA_ONLY: &str = "CTPA only classifier";
/// The X-ray-only baseline (reference of the DeLong tests).
pub const CXR_ONLY: &str = "CXR only classifier";
/// The diffusion prior.
pub const PRIOR: &str = "Diffusion prior (ours)";

/// Table 1's section of the single-modality classifiers.
pub(crate) const BASELINES: &str = "Baselines";
/// Table 1's section of the distillation methods.
pub(crate) const CMKD: &str = "Cross-modality knowledge distillation";

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

/// Runs the pipeline on `cohort` with the pretraining set `pretrain_set`, writing everything to
/// `options.out`.
pub fn run_on(
    config: &PipelineConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    options: &RunOptions,
) -> Result<Report> {
    Experiment::new(config, cohort, pretrain_set, options)?.run()
}

/// Generates the synthetic cohort and pretraining set for `config` and runs the pipeline.
pub fn run_synthetic(config: &PipelineConfig, options: &RunOptions) -> Result<Report> {
    run_sources(config, None, None, options)
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

/// Runs the pipeline on the paired cohort of `cohort` (the synthetic one of `config` when `None`)
/// with the pretraining set of `rspect` (the synthetic one when `None`). With a real pretraining set,
/// the report's `pretrain_patients` is the number of exams read.
pub fn run_sources(
    config: &PipelineConfig,
    cohort: Option<&ManifestSource>,
    rspect: Option<&RspectSource>,
    options: &RunOptions,
) -> Result<Report> {
    let data = load_data(config, cohort, rspect)?;
    run_on(&data.config, &data.cohort, &data.pretrain, options)
}
