//! The experiment as the paper's phases, each a call: [`Experiment::phase_a`] (frozen encoders and
//! their features), then per fold [`Experiment::fit_heads`] (the CTPA-only and CXR-only
//! classifiers), [`Experiment::kd_baselines`], [`Experiment::train_prior`] (phase B),
//! [`Experiment::sample`] (phase C) and [`Experiment::save_fold`], optionally
//! [`Experiment::ablations`], and last [`Experiment::report`]. [`Experiment::run`] makes these calls
//! in this order, as `examples/pe_cxr.rs` does.
//!
//! Every phase's output is cached under `<out>/cache/`: phase A per half under its settings' hash
//! ([`super::features`]), each fold's results and ablations under the whole run's hash, so that a
//! rerun (or an interrupted run) continues where it was.

use candle_core::{Device, Tensor};
use med_eval::StratifiedKFold;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::baselines::{train_student, KdMethod};
use super::cohort::PairedCohort;
use super::config::PipelineConfig;
use super::diagnostics::FoldDiagnostics;
use super::distill::{PriorLoss, SnapshotFn, TrainedPrior};
use super::error::{PipelineError, Result};
use super::features::{phase_a, PhaseA};
use super::fold::{fold_diagnostics, pick, tsne_snapshot, Draws, FoldHeads, FoldRow, PriorVariant};
use super::report::Report;
use super::run::{RunOptions, BASELINES, CMKD, PRIOR};
use super::shard::ExtractedFeatures;
use super::streams::{fold_seed, Stream};

/// Version of what a fold computes from the same settings and data, part of the run's cache key:
/// raised whenever a change of the code changes a fold's results, so that a cache written before it
/// is not read as if it were current. 2: the prior's BCE weighted by `lambda` (it had weight 1).
/// Phase A's caches have their own keys ([`super::features`]); their code did not change.
pub const RESULTS_VERSION: u32 = 2;

/// Phase A's frozen features: the run's own, and (with ablations) those of the X-ray backbone
/// pretrained with the CT-only set's PE labels, for Table 2's structural rows.
pub struct Frozen {
    /// The run's phase A.
    pub main: PhaseA,
    /// The structural Table 2 rows' settings and phase A (its CT half is the run's own).
    pub(crate) ct_only_pe: Option<(PipelineConfig, PhaseA)>,
}

/// What one fold produced (cached as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldOutput {
    /// Table 1 rows: CTPA-only, CXR-only, the distillation baselines, the prior.
    pub(crate) models: Vec<FoldRow>,
    pub(crate) prior_spread_test: Vec<f64>,
    pub(crate) prior_final_loss: f64,
    /// Absent in caches written before the diagnostics existed.
    #[serde(default)]
    pub(crate) diagnostics: Option<FoldDiagnostics>,
}

/// One run of the pipeline on a cohort and a CT-only pretraining set: its settings, folds and
/// cache, and the phases as methods.
pub struct Experiment<'a> {
    pub(crate) config: &'a PipelineConfig,
    pub(crate) cohort: &'a PairedCohort,
    pub(crate) pretrain: Pretrain<'a>,
    pub(crate) options: &'a RunOptions,
    /// The run's cache key (settings and data).
    pub(crate) hash: String,
    cache: PathBuf,
    pub(crate) figures: PathBuf,
    pub(crate) labels: Vec<bool>,
    pub(crate) labels_t: Tensor,
    pub(crate) folds: Vec<med_eval::Fold>,
}

fn ensure_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))
}

fn labels_tensor(labels: &[bool], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = labels.iter().map(|&l| f32::from(u8::from(l))).collect();
    Ok(Tensor::from_vec(v, labels.len(), device)?)
}

/// The CT-only pretraining set of a run: its patients, or phase A's features extracted elsewhere.
pub(crate) enum Pretrain<'a> {
    Cohort(&'a PairedCohort),
    Features(&'a ExtractedFeatures),
}

impl Pretrain<'_> {
    pub(crate) fn source(&self) -> String {
        match self {
            Self::Cohort(c) => c.source.clone(),
            Self::Features(f) => format!(
                "{} (features of encoders {})",
                f.pretrain.source, f.pretrain.encoders
            ),
        }
    }
}

impl<'a> Experiment<'a> {
    /// Checks the settings and data, makes the cache and figure folders and splits the folds.
    pub fn new(
        config: &'a PipelineConfig,
        cohort: &'a PairedCohort,
        pretrain_set: &'a PairedCohort,
        options: &'a RunOptions,
    ) -> Result<Self> {
        config.validate()?;
        cohort.validate()?;
        pretrain_set.validate()?;
        let key = pretrain_set.fingerprint();
        Self::with(
            config,
            cohort,
            Pretrain::Cohort(pretrain_set),
            &key,
            options,
        )
    }

    /// As [`Experiment::new`], with phase A's encoders and features computed elsewhere (sharded
    /// extraction, [`super::shard`]) instead of pretrained here: the pretraining set's volumes are
    /// never read. `cohort` must be the extracted cohort. Table 2's structural rows (an X-ray
    /// backbone pretrained here on the pretraining set's radiographs) are left out of such a run.
    pub fn from_features(
        config: &'a PipelineConfig,
        cohort: &'a PairedCohort,
        features: &'a ExtractedFeatures,
        options: &'a RunOptions,
    ) -> Result<Self> {
        config.validate()?;
        cohort.validate()?;
        features.cohort.check_matches(cohort)?;
        let key = format!(
            "features-{}-{}",
            features.cohort.fingerprint()?,
            features.pretrain.fingerprint()?
        );
        Self::with(config, cohort, Pretrain::Features(features), &key, options)
    }

    fn with(
        config: &'a PipelineConfig,
        cohort: &'a PairedCohort,
        pretrain: Pretrain<'a>,
        pretrain_key: &str,
        options: &'a RunOptions,
    ) -> Result<Self> {
        // The key covers the data too (a manifest cohort never reuses a synthetic run's cache) and
        // the version of the fold results (an older release's folds are never reused).
        let hash = cmkd_train::hash::fnv1a_hex(
            format!(
                "{}/{}/{pretrain_key}/results-{RESULTS_VERSION}",
                config.hash()?,
                cohort.fingerprint(),
            )
            .as_bytes(),
        );
        let cache = options.out.join("cache").join(&hash);
        ensure_dir(&cache)?;
        cmkd_train::checkpoint::save_json(&cache.join("config.json"), config)?;
        let labels = cohort.labels();
        let folds = StratifiedKFold::new(config.folds, config.seed).split(&labels)?;
        let figures = options.out.join("figures");
        ensure_dir(&figures)?;
        Ok(Self {
            config,
            cohort,
            pretrain,
            options,
            hash,
            cache,
            figures,
            labels_t: labels_tensor(&labels, &options.device)?,
            labels,
            folds,
        })
    }

    /// The number of cross-validation folds.
    pub fn fold_count(&self) -> usize {
        self.folds.len()
    }

    fn progress(&self, k: usize, what: &str) {
        eprintln!("fold {}/{}: {what}", k + 1, self.folds.len());
    }

    /// Phase A: the frozen slice CNN (pretrained on the CT-only set) and X-ray backbone
    /// (pretrained as [`PipelineConfig::xray_backbone`] says), and their features of every patient,
    /// each half from its cache where it exists. With ablations, also the X-ray half of the
    /// PE-supervised backbone for Table 2's structural rows.
    pub fn phase_a(&self) -> Result<Frozen> {
        let pretrain_set = match self.pretrain {
            Pretrain::Cohort(set) => set,
            Pretrain::Features(f) => {
                let main = f.phase_a(self.config, self.cohort)?;
                return Ok(Frozen {
                    main,
                    ct_only_pe: None,
                });
            }
        };
        let root = self.options.out.join("cache");
        let device = &self.options.device;
        let main = phase_a(self.config, self.cohort, pretrain_set, &root, device)?;
        let other = self.config.with_ct_only_pe_backbone();
        let ct_only_pe = if self.options.ablations && other != *self.config {
            let a = phase_a(&other, self.cohort, pretrain_set, &root, device)?;
            Some((other, a))
        } else {
            None
        };
        Ok(Frozen { main, ct_only_pe })
    }

    fn fold_path(&self, k: usize) -> PathBuf {
        self.cache.join(format!("fold{k}.json"))
    }

    /// Fold `k`'s results from an earlier run's cache, if there are any.
    pub fn cached_fold(&self, k: usize) -> Result<Option<FoldOutput>> {
        let path = self.fold_path(k);
        if !path.exists() {
            return Ok(None);
        }
        self.progress(k, "from cache");
        Ok(Some(cmkd_train::checkpoint::load_json(&path)?))
    }

    /// Phase A on fold `k`: the CTPA-only and CXR-only classifiers at the run's embedding size.
    pub fn fit_heads(&self, a: &PhaseA, k: usize) -> Result<FoldHeads> {
        self.progress(k, "phase A (CTPA-only and CXR-only classifiers)");
        self.heads_with(self.config, self.config.embed_dim, a, k)
    }

    pub(crate) fn heads_with(
        &self,
        config: &PipelineConfig,
        embed_dim: usize,
        a: &PhaseA,
        k: usize,
    ) -> Result<FoldHeads> {
        FoldHeads::fit(
            config,
            embed_dim,
            a,
            &self.labels,
            &self.folds[k].train,
            fold_seed(self.config.seed, k),
            &self.options.device,
        )
    }

    /// The five teacher-student baselines on fold `k`, each student reading `a`'s X-ray features
    /// and taught by the fold's CTPA head; their Table 1 rows.
    pub fn kd_baselines(&self, a: &PhaseA, heads: &FoldHeads, k: usize) -> Result<Vec<FoldRow>> {
        self.progress(k, "knowledge-distillation baselines");
        let fold = &self.folds[k];
        KdMethod::ALL
            .iter()
            .map(|&m| {
                let r = train_student(
                    m,
                    self.config,
                    &a.cohort.cxr,
                    &heads.ctpa_z,
                    &self.labels_t,
                    &fold.train,
                    &heads.ctpa.vit,
                    Stream::Students.of(fold_seed(self.config.seed, k)),
                )?;
                Ok(FoldRow::new(
                    m.label(),
                    CMKD,
                    r.params as u64,
                    &r.probs,
                    fold,
                ))
            })
            .collect()
    }

    /// The paper's prior: L2 + BCE, pretrained on the CT-only set's pairs when
    /// [`PipelineConfig::prior_pretrain_epochs`] is positive.
    pub fn main_prior(&self) -> PriorVariant {
        PriorVariant {
            loss: PriorLoss::L2Bce,
            pretrain: self.config.prior_pretrain_epochs > 0,
        }
    }

    /// Phase B on fold `k`: the prior `variant` from X-ray to CTPA embedding on the fold's training
    /// pairs. The paper's prior on the first fold also draws the t-SNE figures (unless turned off).
    pub fn train_prior(
        &self,
        heads: &FoldHeads,
        k: usize,
        variant: PriorVariant,
    ) -> Result<TrainedPrior> {
        self.progress(k, "phase B/C (diffusion prior)");
        if !(k == 0 && self.config.tsne && variant == self.main_prior()) {
            return self.train_variant(heads, k, variant, None);
        }
        let seed = fold_seed(self.config.seed, k);
        let mut snap = tsne_snapshot(self.config, heads, &self.folds[k], &self.figures, seed)?;
        self.train_variant(heads, k, variant, Some(&mut snap))
    }

    /// [`Self::train_prior`] without progress line, with an optional snapshot callback.
    pub(crate) fn train_variant(
        &self,
        heads: &FoldHeads,
        k: usize,
        variant: PriorVariant,
        snapshot: Option<&mut SnapshotFn>,
    ) -> Result<TrainedPrior> {
        super::fold::train_prior(
            self.config,
            heads,
            &self.labels_t,
            &self.folds[k].train,
            variant,
            fold_seed(self.config.seed, k),
            snapshot,
        )
    }

    /// Phase C on fold `k`: draws of `prior` for every patient, classified by the fold's frozen
    /// CTPA head.
    pub fn sample(&self, heads: &FoldHeads, k: usize, prior: &TrainedPrior) -> Result<Draws> {
        super::fold::draw(self.config, heads, prior, fold_seed(self.config.seed, k))
    }

    /// Fold `k`'s Table 1 rows, spread and diagnostics, written to the cache and read back from it,
    /// so that a resumed run sees exactly the same numbers (JSON floats need not round-trip bit for
    /// bit).
    pub fn save_fold(
        &self,
        k: usize,
        heads: &FoldHeads,
        students: Vec<FoldRow>,
        prior: &TrainedPrior,
        draws: &Draws,
    ) -> Result<FoldOutput> {
        let fold = &self.folds[k];
        let mut models = vec![
            heads.ctpa_row(BASELINES, fold),
            heads.cxr_row(BASELINES, fold),
        ];
        models.extend(students);
        let params = prior.prior.num_params() as u64;
        models.push(FoldRow::new(PRIOR, CMKD, params, &draws.mean, fold));
        let out = FoldOutput {
            models,
            prior_spread_test: pick(&draws.sd, &fold.test),
            prior_final_loss: prior.final_loss,
            diagnostics: Some(fold_diagnostics(heads, draws, fold)?),
        };
        let path = self.fold_path(k);
        cmkd_train::checkpoint::save_json(&path, &out)?;
        Ok(cmkd_train::checkpoint::load_json(&path)?)
    }

    /// Table 2's rows of fold `k` (cached): the loss, pretraining and embedding-size ablations and
    /// the structural rows. `heads` are the fold's classifiers when this run trained them (they are
    /// trained again when the fold came from the cache); `main` is the fold's Table 1 output.
    pub fn ablations(
        &self,
        frozen: &Frozen,
        k: usize,
        main: &FoldOutput,
        heads: Option<FoldHeads>,
    ) -> Result<Vec<FoldRow>> {
        let path = self.cache.join(format!("fold{k}_ablations.json"));
        if path.exists() {
            return Ok(cmkd_train::checkpoint::load_json(&path)?);
        }
        self.progress(k, "ablations");
        let heads = match heads {
            Some(h) => h,
            None => self.heads_with(self.config, self.config.embed_dim, &frozen.main, k)?,
        };
        let rows = super::ablations::fold_rows(self, frozen, k, main, &heads)?;
        cmkd_train::checkpoint::save_json(&path, &rows)?;
        Ok(cmkd_train::checkpoint::load_json(&path)?)
    }

    /// Evaluation: pooled out-of-fold metrics of every fold's rows, the figures, the CSV files and
    /// the report (`report.md`, `report.json`) in the output folder.
    pub fn report(&self, folds: &[FoldOutput], ablations: &[Vec<FoldRow>]) -> Result<Report> {
        super::report::write(self, folds, ablations)
    }

    /// The whole run: the calls above in order, each fold from its cache where it exists.
    pub fn run(&self) -> Result<Report> {
        let frozen = self.phase_a()?;
        let mut folds = Vec::with_capacity(self.fold_count());
        let mut ablations = Vec::new();
        for k in 0..self.fold_count() {
            let mut heads = None;
            let output = match self.cached_fold(k)? {
                Some(done) => done,
                None => {
                    let h = heads.insert(self.fit_heads(&frozen.main, k)?);
                    let students = self.kd_baselines(&frozen.main, h, k)?;
                    let prior = self.train_prior(h, k, self.main_prior())?;
                    let draws = self.sample(h, k, &prior)?;
                    self.save_fold(k, h, students, &prior, &draws)?
                }
            };
            if self.options.ablations {
                ablations.push(self.ablations(&frozen, k, &output, heads)?);
            }
            folds.push(output);
        }
        self.report(&folds, &ablations)
    }
}
