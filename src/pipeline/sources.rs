//! Where a run's data come from: the paired cohort (synthetic, or a manifest on disk) and the
//! CT-only pretraining set (synthetic RSPECT-like, or a real set in the RSPECT layout), read into
//! [`Data`] by [`load_data`].

use std::path::PathBuf;

use super::cohort::{paired_config, pretrain_config, PairedCohort};
use super::config::PipelineConfig;
use super::error::Result;

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

/// The paired cohort of `cohort` (a manifest on disk), or the synthetic one of `config` when `None`.
pub fn load_cohort(
    config: &PipelineConfig,
    cohort: Option<&ManifestSource>,
) -> Result<PairedCohort> {
    match cohort {
        Some(source) => PairedCohort::from_manifest(
            &source.csv,
            source.ct_dir.as_deref(),
            source.cxr_dir.as_deref(),
            &config.data,
        ),
        None => synthetic_cohort(config),
    }
}

/// A run's data and the settings that describe them.
pub struct Data {
    /// The settings, with `pretrain_patients` the size of the pretraining set actually read.
    pub config: PipelineConfig,
    /// The paired cohort.
    pub cohort: PairedCohort,
    /// The CT-only pretraining set.
    pub pretrain: PairedCohort,
}

/// Reads the paired cohort of `cohort` (the synthetic one of `config` when `None`) and the
/// pretraining set of `rspect` (the synthetic one when `None`). With a real pretraining set, the
/// settings' `pretrain_patients` becomes the number of exams read.
pub fn load_data(
    config: &PipelineConfig,
    cohort: Option<&ManifestSource>,
    rspect: Option<&RspectSource>,
) -> Result<Data> {
    config.validate()?;
    // The pretraining set first: a bad RSPECT layout is reported before any cohort is generated.
    let pretrain = pretraining_set(config, rspect)?;
    let paired = load_cohort(config, cohort)?;
    Ok(Data {
        config: PipelineConfig {
            pretrain_patients: pretrain.len(),
            ..config.clone()
        },
        cohort: paired,
        pretrain,
    })
}
