//! Table 1 over several seeds: each seed reruns everything that is random (the synthetic cohort and
//! CT-only set, the folds, every initialisation, shuffling and the prior's sampling), and the first
//! seed's report gets each row's mean AUC and its spread next to its own pooled DeLong CI.

use serde::{Deserialize, Serialize};

use super::config::PipelineConfig;
use super::error::{PipelineError, Result};
use super::report::Report;
use super::run::RunOptions;

/// The Table 1 AUCs of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedAucs {
    /// The run's master seed.
    pub seed: u64,
    /// `(model, pooled out-of-fold AUC)` in table order.
    pub aucs: Vec<(String, f64)>,
}

impl SeedAucs {
    /// The AUCs of `report`'s Table 1.
    pub fn of(report: &Report) -> Self {
        Self {
            seed: report.config.seed,
            aucs: report
                .table1
                .iter()
                .map(|m| (m.row.model.clone(), m.row.auc))
                .collect(),
        }
    }
}

/// One Table 1 model's AUC over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSpread {
    /// The Table 1 row.
    pub model: String,
    /// The seeds, the report's own first.
    pub seeds: Vec<u64>,
    /// The pooled AUC of each seed, in `seeds` order.
    pub aucs: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (n - 1).
    pub sd: f64,
}

/// The spread of every model of `own` over `own` and `others` (models missing from a seed are an
/// error: every seed runs the same table).
pub fn seed_spread(own: &SeedAucs, others: &[SeedAucs]) -> Result<Vec<SeedSpread>> {
    own.aucs
        .iter()
        .map(|(model, auc)| {
            let mut seeds = vec![own.seed];
            let mut aucs = vec![*auc];
            for o in others {
                let a = o.aucs.iter().find(|(m, _)| m == model).ok_or_else(|| {
                    PipelineError::Data(format!("seed {} has no Table 1 row `{model}`", o.seed))
                })?;
                seeds.push(o.seed);
                aucs.push(a.1);
            }
            let n = aucs.len() as f64;
            let mean = aucs.iter().sum::<f64>() / n;
            let sd = if aucs.len() > 1 {
                (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            Ok(SeedSpread {
                model: model.clone(),
                seeds,
                aucs,
                mean,
                sd,
            })
        })
        .collect()
}

/// Runs `run` (for example [`super::run_sources`], or a driver of the phases such as
/// `examples/pe_cxr.rs`) for `seeds` consecutive master seeds starting at `config.seed`: the others
/// first, each into `<out>/seeds/seed-<s>/` (without ablations), then the first into `options.out`,
/// whose report carries the spread of every Table 1 row ([`Report::seed_spread`]).
pub fn run_seeds(
    config: &PipelineConfig,
    options: &RunOptions,
    seeds: usize,
    mut run: impl FnMut(&PipelineConfig, &RunOptions) -> Result<Report>,
) -> Result<Report> {
    if seeds == 0 {
        return Err(PipelineError::config("seeds", "need at least one seed"));
    }
    let mut others = Vec::with_capacity(seeds - 1);
    for i in 1..seeds as u64 {
        let seed = config.seed.wrapping_add(i);
        eprintln!("seed {seed} ({} of {seeds})", i + 1);
        let c = PipelineConfig {
            seed,
            ..config.clone()
        };
        let o = RunOptions {
            out: options.out.join("seeds").join(format!("seed-{seed}")),
            ablations: false,
            other_seeds: Vec::new(),
            device: options.device.clone(),
        };
        others.push(SeedAucs::of(&run(&c, &o)?));
    }
    if seeds > 1 {
        eprintln!("seed {} (1 of {seeds})", config.seed);
    }
    let o = RunOptions {
        other_seeds: others,
        ..options.clone()
    };
    run(config, &o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_mean_and_sample_sd_in_seed_order() {
        let own = SeedAucs {
            seed: 4,
            aucs: vec![("a".into(), 0.7), ("b".into(), 0.5)],
        };
        let others = [
            SeedAucs {
                seed: 5,
                aucs: vec![("b".into(), 0.6), ("a".into(), 0.8)],
            },
            SeedAucs {
                seed: 6,
                aucs: vec![("a".into(), 0.9), ("b".into(), 0.7)],
            },
        ];
        let s = seed_spread(&own, &others).unwrap();
        assert_eq!(s[0].model, "a");
        assert_eq!(s[0].seeds, vec![4, 5, 6]);
        assert!((s[0].mean - 0.8).abs() < 1e-12);
        assert!((s[0].sd - 0.1).abs() < 1e-12);
        assert!((s[1].mean - 0.6).abs() < 1e-12);
        let missing = [SeedAucs {
            seed: 9,
            aucs: vec![("a".into(), 0.5)],
        }];
        let e = seed_spread(&own, &missing).unwrap_err().to_string();
        assert!(e.contains("seed 9") && e.contains("`b`"), "{e}");
        assert_eq!(seed_spread(&own, &[]).unwrap()[1].sd, 0.0);
    }
}
