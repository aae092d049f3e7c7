//! When does the prior pay off? A label-efficiency experiment the paper does not have.
//!
//! For each seed and fold, and each point of a grid:
//! - **(a) labelled X-rays per training fold** (`labelled`): a stratified subset of the training fold
//!   keeps its PE labels; the other training pairs are unlabelled. The CXR-only classifier learns
//!   from the labelled X-rays only; the CTPA teacher's sequence ViT (pretrained on the CT-only set)
//!   is fine-tuned on the labelled CTs only, so no hidden label reaches the prior through it.
//! - **(b) CT-only pretraining pairs** (`pretrain_pairs`): the prior pretrains on that many (rendered
//!   radiograph, CTPA embedding) pairs of the CT-only set (0: no pretraining), then trains on all the
//!   training fold's pairs, labelled or not (its BCE target is the teacher's probability, no label),
//!   conditioned on the CXR-only model's embedding.
//!
//! Measured: the pooled out-of-fold AUC of the prior minus CXR-only's, with the paired DeLong 95% CI
//! of each seed, and the mean and spread over seeds. The knowledge-distillation baselines are left
//! out (the question is the prior's); the encoders are phase A's, shared with `pe_cxr`'s cache.

use candle_core::Device;
use med_eval::plot::{plot_error_bars, ErrorBarAxes, ErrorBarPoint, ErrorBarSeries};
use med_eval::StratifiedKFold;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::cohort::PairedCohort;
use super::config::PipelineConfig;
use super::distill::{classify_samples, sample, train_prior, PriorLoss};
use super::error::{PipelineError, Result};
use super::features::phase_a;
use super::fold::{select, FoldHeads};
use super::sources::{synthetic_cohort, synthetic_pretraining_set};
use super::streams::{fold_seed, Stream};

/// The grid of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    /// Labelled X-rays per training fold; `None` is all of them.
    pub labelled: Vec<Option<usize>>,
    /// CT-only pretraining pairs of the prior (0 = no pretraining); capped at the set's size.
    pub pretrain_pairs: Vec<usize>,
    /// Consecutive master seeds from the pipeline config's.
    pub seeds: usize,
}

impl Default for SweepConfig {
    /// The grid, fixed before any result: 25, 50, 100 and all labelled X-rays; 0, 300 and
    /// 1200 CT-only pairs; 3 seeds.
    fn default() -> Self {
        Self {
            labelled: vec![Some(25), Some(50), Some(100), None],
            pretrain_pairs: vec![0, 300, 1200],
            seeds: 3,
        }
    }
}

impl SweepConfig {
    /// Checks the grid.
    pub fn validate(&self) -> Result<()> {
        if self.labelled.is_empty() || self.pretrain_pairs.is_empty() || self.seeds == 0 {
            return Err(PipelineError::config(
                "sweep",
                "needs at least one labelled count, one pretraining count and one seed",
            ));
        }
        if let Some(l) = self.labelled.iter().flatten().find(|&&l| l < 4) {
            return Err(PipelineError::config(
                "labelled",
                format!("{l} labelled X-rays cannot hold both classes reliably; use at least 4"),
            ));
        }
        Ok(())
    }

    /// Prior trainings of the whole sweep.
    pub fn prior_trainings(&self, folds: usize) -> usize {
        self.seeds * folds * self.labelled.len() * self.pretrain_pairs.len()
    }
}

/// One grid point of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Master seed.
    pub seed: u64,
    /// Labelled X-rays per training fold (`None`: all).
    pub labelled: Option<usize>,
    /// Mean labelled X-rays per training fold actually used.
    pub labelled_used: f64,
    /// CT-only pretraining pairs of the grid.
    pub pretrain_pairs: usize,
    /// CT-only pretraining pairs actually used (the grid's, capped at the set's size).
    pub pretrain_pairs_used: usize,
    /// Pooled out-of-fold AUC of CXR-only.
    pub cxr_auc: f64,
    /// Pooled out-of-fold AUC of the prior.
    pub prior_auc: f64,
    /// `prior_auc - cxr_auc`.
    pub diff: f64,
    /// Paired DeLong 95% CI of the difference.
    pub diff_ci: [f64; 2],
    /// Paired DeLong p-value.
    pub p_value: f64,
}

/// A grid point over all seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Labelled X-rays per training fold (`None`: all).
    pub labelled: Option<usize>,
    /// Mean labelled X-rays per training fold actually used.
    pub labelled_used: f64,
    /// CT-only pretraining pairs of the grid.
    pub pretrain_pairs: usize,
    /// CT-only pretraining pairs actually used.
    pub pretrain_pairs_used: usize,
    /// Seeds.
    pub seeds: usize,
    /// Mean CXR-only AUC.
    pub cxr_auc: f64,
    /// Mean prior AUC.
    pub prior_auc: f64,
    /// Mean of the difference.
    pub diff_mean: f64,
    /// Sample SD of the difference over seeds (0 for one seed).
    pub diff_sd: f64,
    /// Smallest and largest difference over seeds.
    pub diff_range: [f64; 2],
    /// Seeds whose DeLong CI lies above 0 / below 0.
    pub significant: [usize; 2],
}

/// Everything the sweep produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The pipeline settings (the first seed's).
    pub config: PipelineConfig,
    /// The grid.
    pub sweep: SweepConfig,
    /// Every (seed, point).
    pub points: Vec<SweepPoint>,
    /// Every point over seeds, in grid order.
    pub summary: Vec<SweepSummary>,
}

/// The nested stratified labelled subsets of `train` for each entry of `grid`: one seeded order
/// per class, the first `round(l * positive share)` positives (at least one of each class) and the
/// rest negatives, so that a larger budget contains the smaller ones.
pub fn labelled_subsets(
    train: &[usize],
    labels: &[bool],
    grid: &[Option<usize>],
    rng: &mut impl rand::Rng,
) -> Result<Vec<Vec<usize>>> {
    let mut pos: Vec<usize> = train.iter().copied().filter(|&i| labels[i]).collect();
    let mut neg: Vec<usize> = train.iter().copied().filter(|&i| !labels[i]).collect();
    if pos.is_empty() || neg.is_empty() {
        return Err(PipelineError::Data(
            "a training fold holds one class only".into(),
        ));
    }
    pos.shuffle(rng);
    neg.shuffle(rng);
    let share = pos.len() as f64 / train.len() as f64;
    grid.iter()
        .map(|l| {
            let l = l.unwrap_or(train.len()).min(train.len());
            let p = ((l as f64 * share).round() as usize).clamp(1, pos.len());
            let n = (l - p.min(l)).clamp(1, neg.len());
            let mut s: Vec<usize> = pos[..p].iter().chain(&neg[..n]).copied().collect();
            s.sort_unstable();
            Ok(s)
        })
        .collect()
}

/// Seconds the sweep is expected to take on a 2-core CPU at `config`'s sizes: phase A per seed, and
/// per prior training its steps and its sampling of the test fold. The constants are scaled so that
/// the default sweep (3 seeds, 3 folds) comes to the 3418 s it took on the 2-core development
/// machine with other jobs beside it (docs/results.md); a rough guide, not a measurement.
pub fn expected_seconds(config: &PipelineConfig, sweep: &SweepConfig) -> f64 {
    // First guesses (which gave 69 min for the default sweep's 57 min) times the measured 0.83.
    const PHASE_A_PER_PATIENT: f64 = 0.05 * 0.83;
    const PRIOR_STEP_PER_WIDTH: f64 = 0.000_45 * 0.83;
    const SAMPLE_PER_DRAW_STEP: f64 = 0.000_022 * 0.83;
    let train = config.patients - config.patients / config.folds;
    let spe = |n: usize| n.div_ceil(config.batch_size) as f64;
    let mut per_fold = 0.0;
    for &pairs in &sweep.pretrain_pairs {
        let pairs = pairs.min(config.pretrain_patients);
        let steps = config.prior_epochs as f64 * spe(train)
            + if pairs > 0 {
                config.prior_pretrain_epochs as f64 * spe(pairs)
            } else {
                0.0
            };
        per_fold += steps * PRIOR_STEP_PER_WIDTH * config.prior_dim as f64;
    }
    let test = (config.patients / config.folds) as f64;
    per_fold += (sweep.pretrain_pairs.len() * config.samples_per_xray * config.sample_steps) as f64
        * test
        * SAMPLE_PER_DRAW_STEP;
    let phase_a = PHASE_A_PER_PATIENT
        * (config.patients + config.pretrain_patients + config.findings_patients) as f64;
    sweep.seeds as f64 * (phase_a + config.folds as f64 * sweep.labelled.len() as f64 * per_fold)
}

/// Runs the sweep on the synthetic cohort of `config` (one per seed), writing `sweep.json`,
/// `sweep.md` and `figures/label_efficiency.png` to `out`; phase A is cached under `out/cache`.
pub fn run_sweep(
    config: &PipelineConfig,
    sweep: &SweepConfig,
    out: &Path,
    device: &Device,
) -> Result<SweepReport> {
    config.validate()?;
    sweep.validate()?;
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures).map_err(|e| PipelineError::io(&figures, e))?;
    let total = sweep.prior_trainings(config.folds);
    let bar = cmkd_train::progress::bar(total as u64, "sweep: prior trainings");
    let mut points = Vec::new();
    for i in 0..sweep.seeds as u64 {
        let c = PipelineConfig {
            seed: config.seed.wrapping_add(i),
            ..config.clone()
        };
        let cohort = synthetic_cohort(&c)?;
        let pre = synthetic_pretraining_set(&c)?;
        points.extend(sweep_seed(&c, sweep, &cohort, &pre, out, device, &bar)?);
    }
    bar.finish_and_clear();
    let report = SweepReport {
        config: config.clone(),
        sweep: sweep.clone(),
        summary: summarize(sweep, &points),
        points,
    };
    cmkd_train::checkpoint::save_json(&out.join("sweep.json"), &report)?;
    figure(&figures.join("label_efficiency.png"), &report)?;
    cmkd_train::checkpoint::write_atomic(&out.join("sweep.md"), render(&report).as_bytes())?;
    Ok(report)
}

/// Out-of-fold scores of one grid point, filled fold by fold.
struct Oof {
    cxr: Vec<f64>,
    prior: Vec<f64>,
    labelled: usize,
}

fn sweep_seed(
    config: &PipelineConfig,
    sweep: &SweepConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    out: &Path,
    device: &Device,
    bar: &cmkd_train::progress::ProgressBar,
) -> Result<Vec<SweepPoint>> {
    let started = std::time::Instant::now();
    let a = phase_a(config, cohort, pretrain_set, &out.join("cache"), device)?;
    let labels = cohort.labels();
    let n = labels.len();
    let folds = StratifiedKFold::new(config.folds, config.seed).split(&labels)?;
    let grid: Vec<(usize, usize)> = (0..sweep.labelled.len())
        .flat_map(|l| (0..sweep.pretrain_pairs.len()).map(move |p| (l, p)))
        .collect();
    let mut oof: Vec<Oof> = grid
        .iter()
        .map(|_| Oof {
            cxr: vec![f64::NAN; n],
            prior: vec![f64::NAN; n],
            labelled: 0,
        })
        .collect();
    for (k, fold) in folds.iter().enumerate() {
        let seed = fold_seed(config.seed, k);
        let mut rng = cmkd_train::rng::stream(config.seed, &format!("sweep/fold-{k}/labelled"));
        let subsets = labelled_subsets(&fold.train, &labels, &sweep.labelled, &mut rng)?;
        for (li, subset) in subsets.iter().enumerate() {
            // A line per unit as well as the bar: the bar is hidden when stderr is not a terminal.
            eprintln!(
                "seed {} fold {}/{}: {} labelled X-rays ({:.0} s)",
                config.seed,
                k + 1,
                folds.len(),
                subset.len(),
                started.elapsed().as_secs_f64()
            );
            let u = FoldHeads::fit(config, config.embed_dim, &a, &labels, subset, seed, device)?;
            let cond = select(&u.cxr_z, &fold.train)?;
            let target = select(&u.ctpa_z, &fold.train)?;
            let test_cond = select(&u.cxr_z, &fold.test)?;
            for (pi, &pairs) in sweep.pretrain_pairs.iter().enumerate() {
                let pairs = pairs.min(a.pretrain.cxr.dim(0)?);
                let pre = if pairs > 0 {
                    Some((
                        u.pre_cxr_z.narrow(0, 0, pairs)?,
                        u.pre_ctpa_z.narrow(0, 0, pairs)?,
                    ))
                } else {
                    None
                };
                let trained = train_prior(
                    config,
                    &cond,
                    &target,
                    // The paper's loss reads no label.
                    None,
                    &u.ctpa.vit,
                    PriorLoss::L2Bce,
                    pre.as_ref().map(|(c, t)| (c, t)),
                    Stream::Prior.of(seed),
                    None,
                )?;
                let draws = sample(
                    &trained.prior,
                    &test_cond,
                    config.samples_per_xray,
                    config.sample_steps,
                    config.guidance_scale,
                    // The fold seed's own sampling stream (the run's draws use the prior's).
                    Stream::PriorSample.of(seed),
                )?;
                let (mean, _) = classify_samples(&u.ctpa.vit, &draws)?;
                let o = &mut oof[li * sweep.pretrain_pairs.len() + pi];
                for (j, &i) in fold.test.iter().enumerate() {
                    o.prior[i] = mean[j];
                    o.cxr[i] = u.cxr_p[i];
                }
                o.labelled += subset.len();
                bar.inc(1);
            }
        }
    }
    grid.iter()
        .zip(oof)
        .map(|(&(li, pi), o)| {
            let t = med_eval::delong::delong_test(&labels, &o.prior, &o.cxr)?;
            Ok(SweepPoint {
                seed: config.seed,
                labelled: sweep.labelled[li],
                labelled_used: o.labelled as f64 / folds.len() as f64,
                pretrain_pairs: sweep.pretrain_pairs[pi],
                pretrain_pairs_used: sweep.pretrain_pairs[pi].min(pretrain_set.len()),
                cxr_auc: t.auc_b,
                prior_auc: t.auc_a,
                diff: t.auc_a - t.auc_b,
                diff_ci: [t.diff_ci.low, t.diff_ci.high],
                p_value: t.p_value,
            })
        })
        .collect()
}

fn summarize(sweep: &SweepConfig, points: &[SweepPoint]) -> Vec<SweepSummary> {
    let mut out = Vec::new();
    for &l in &sweep.labelled {
        for &p in &sweep.pretrain_pairs {
            let at: Vec<&SweepPoint> = points
                .iter()
                .filter(|x| x.labelled == l && x.pretrain_pairs == p)
                .collect();
            if at.is_empty() {
                continue;
            }
            let k = at.len() as f64;
            let mean = |f: &dyn Fn(&SweepPoint) -> f64| at.iter().map(|x| f(x)).sum::<f64>() / k;
            let diff_mean = mean(&|x| x.diff);
            let diff_sd = if at.len() > 1 {
                (at.iter().map(|x| (x.diff - diff_mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
            } else {
                0.0
            };
            let lo = at.iter().map(|x| x.diff).fold(f64::INFINITY, f64::min);
            let hi = at.iter().map(|x| x.diff).fold(f64::NEG_INFINITY, f64::max);
            out.push(SweepSummary {
                labelled: l,
                labelled_used: mean(&|x| x.labelled_used),
                pretrain_pairs: p,
                pretrain_pairs_used: at[0].pretrain_pairs_used,
                seeds: at.len(),
                cxr_auc: mean(&|x| x.cxr_auc),
                prior_auc: mean(&|x| x.prior_auc),
                diff_mean,
                diff_sd,
                diff_range: [lo, hi],
                significant: [
                    at.iter().filter(|x| x.diff_ci[0] > 0.0).count(),
                    at.iter().filter(|x| x.diff_ci[1] < 0.0).count(),
                ],
            });
        }
    }
    out
}

fn figure(path: &Path, report: &SweepReport) -> Result<()> {
    let series: Vec<ErrorBarSeries> = report
        .sweep
        .pretrain_pairs
        .iter()
        .map(|&p| ErrorBarSeries {
            name: format!("prior pretrained on {p} CT-only pairs"),
            points: report
                .summary
                .iter()
                .filter(|s| s.pretrain_pairs == p)
                .map(|s| ErrorBarPoint {
                    x: s.labelled_used,
                    y: s.diff_mean,
                    low: s.diff_range[0],
                    high: s.diff_range[1],
                })
                .collect(),
        })
        .collect();
    Ok(plot_error_bars(
        path,
        ErrorBarAxes {
            title: "Prior AUC minus CXR-only AUC (mean, min-max over seeds)",
            x_label: "labelled X-rays per training fold",
            y_label: "AUC difference",
            log_x: true,
            reference_y: Some(0.0),
        },
        &series,
    )?)
}

fn labelled_name(l: Option<usize>) -> String {
    l.map_or("all".into(), |l| l.to_string())
}

/// The sweep's Markdown table.
pub fn render(report: &SweepReport) -> String {
    let c = &report.config;
    let mut s = String::from("# When does the prior pay off? Label efficiency\n\n");
    s.push_str(&format!(
        "{} patients, {} folds, {} seeds from {}; CXR-only and the CTPA teacher learn from the labelled X-rays / CTs only, the prior from all training pairs plus the CT-only pairs (see `cmkd::pipeline::sweep`). AUC difference: prior minus CXR-only, pooled out-of-fold; per seed with the paired DeLong 95% CI.\n\n",
        c.patients, c.folds, report.sweep.seeds, c.seed
    ));
    s.push_str("| Labelled X-rays / fold | CT-only pairs | CXR-only AUC | Prior AUC | Difference, mean ± SD (min to max) | Seeds with CI > 0 / < 0 |\n|---|---|---|---|---|---|\n");
    for x in &report.summary {
        s.push_str(&format!(
            "| {} ({:.0}) | {} | {:.3} | {:.3} | {:+.3} ± {:.3} ({:+.3} to {:+.3}) | {} / {} of {} |\n",
            labelled_name(x.labelled),
            x.labelled_used,
            x.pretrain_pairs_used,
            x.cxr_auc,
            x.prior_auc,
            x.diff_mean,
            x.diff_sd,
            x.diff_range[0],
            x.diff_range[1],
            x.significant[0],
            x.significant[1],
            x.seeds
        ));
    }
    s.push_str("\nPer seed:\n\n| Seed | Labelled | CT-only pairs | CXR-only | Prior | Difference [DeLong 95% CI] | p |\n|---|---|---|---|---|---|---|\n");
    for p in &report.points {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:+.3} [{:+.3}, {:+.3}] | {:.3} |\n",
            p.seed,
            labelled_name(p.labelled),
            p.pretrain_pairs_used,
            p.cxr_auc,
            p.prior_auc,
            p.diff,
            p.diff_ci[0],
            p.diff_ci[1],
            p.p_value
        ));
    }
    s.push_str("\nFigure: `figures/label_efficiency.png`.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn labelled_subsets_are_nested_stratified_and_inside_the_fold() {
        let labels: Vec<bool> = (0..120).map(|i| i % 3 == 0).collect();
        let train: Vec<usize> = (0..120).filter(|i| i % 6 != 1).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let grid = [Some(10), Some(40), None];
        let s = labelled_subsets(&train, &labels, &grid, &mut rng).unwrap();
        assert_eq!(s[0].len(), 10);
        assert_eq!(s[1].len(), 40);
        assert_eq!(s[2].len(), train.len());
        for (a, b) in [(0, 1), (1, 2)] {
            assert!(s[a].iter().all(|i| s[b].contains(i)), "{a} in {b}");
        }
        for sub in &s {
            assert!(sub.iter().all(|i| train.contains(i)));
            let pos = sub.iter().filter(|&&i| labels[i]).count();
            let share = pos as f64 / sub.len() as f64;
            assert!((share - 0.35).abs() < 0.06, "{share}");
        }
        let one_class = [0usize, 3, 6];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!(labelled_subsets(&one_class, &labels, &grid, &mut rng).is_err());
    }

    #[test]
    fn summary_takes_mean_sd_and_significance_over_seeds() {
        let point = |seed, diff: f64, lo: f64| SweepPoint {
            seed,
            labelled: Some(25),
            labelled_used: 25.0,
            pretrain_pairs: 300,
            pretrain_pairs_used: 300,
            cxr_auc: 0.6,
            prior_auc: 0.6 + diff,
            diff,
            diff_ci: [lo, lo + 0.1],
            p_value: 0.5,
        };
        let sweep = SweepConfig {
            labelled: vec![Some(25)],
            pretrain_pairs: vec![300],
            seeds: 3,
        };
        let s = summarize(
            &sweep,
            &[
                point(0, 0.1, 0.02),
                point(1, 0.0, -0.05),
                point(2, -0.1, -0.12),
            ],
        );
        assert_eq!(s.len(), 1);
        assert!(s[0].diff_mean.abs() < 1e-12);
        assert!((s[0].diff_sd - 0.1).abs() < 1e-12);
        assert_eq!(s[0].diff_range, [-0.1, 0.1]);
        assert_eq!(s[0].significant, [1, 1]);
        assert!(SweepConfig {
            labelled: vec![Some(2)],
            ..sweep
        }
        .validate()
        .is_err());
    }
}
