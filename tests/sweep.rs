//! The label-efficiency sweep on the tiny synthetic cohort: one point per (seed, grid point), the
//! summary over seeds, the figure, and that the "all labels" point is the pipeline's own fold set-up.

use cmkd::pipeline::sweep::{run_sweep, SweepConfig};
use cmkd::pipeline::PipelineConfig;

#[test]
fn tiny_sweep_writes_every_point_its_summary_and_figure() {
    let config = PipelineConfig {
        tsne: false,
        ..PipelineConfig::tiny()
    };
    let sweep = SweepConfig {
        labelled: vec![Some(6), None],
        pretrain_pairs: vec![0, 8],
        seeds: 2,
    };
    let dir = tempfile::tempdir().unwrap();
    let r = run_sweep(&config, &sweep, dir.path(), &candle_core::Device::Cpu).unwrap();
    assert_eq!(r.points.len(), 2 * 2 * 2);
    assert_eq!(r.summary.len(), 2 * 2);
    let train = (config.patients - config.patients / config.folds) as f64;
    for p in &r.points {
        for v in [p.cxr_auc, p.prior_auc] {
            assert!((0.0..=1.0).contains(&v), "{v}");
        }
        assert!((p.diff - (p.prior_auc - p.cxr_auc)).abs() < 1e-12);
        assert!(p.diff_ci[0] <= p.diff && p.diff <= p.diff_ci[1]);
        match p.labelled {
            Some(l) => assert_eq!(p.labelled_used, l as f64),
            None => assert_eq!(p.labelled_used, train),
        }
        assert_eq!(
            p.pretrain_pairs_used,
            p.pretrain_pairs.min(config.pretrain_patients)
        );
    }
    // CXR-only does not depend on the prior's pretraining pairs.
    for seed in [0, 1] {
        let cxr: Vec<f64> = r
            .points
            .iter()
            .filter(|p| p.seed == seed && p.labelled.is_none())
            .map(|p| p.cxr_auc)
            .collect();
        assert_eq!(cxr[0], cxr[1]);
    }
    for s in &r.summary {
        assert_eq!(s.seeds, 2);
        assert!(s.diff_range[0] <= s.diff_mean && s.diff_mean <= s.diff_range[1]);
    }
    assert!(dir.path().join("figures/label_efficiency.png").is_file());
    let md = std::fs::read_to_string(dir.path().join("sweep.md")).unwrap();
    assert!(md.contains("| all (") && md.contains("Per seed"), "{md}");
    let json: cmkd::pipeline::sweep::SweepReport =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(json, r);
}
