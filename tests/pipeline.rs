//! The whole pipeline on a tiny synthetic cohort: report structure, every number finite and in
//! range, bit-identical reruns, and resumption from the cache.

use cmkd::pipeline::{run_synthetic, PipelineConfig, Report, RunOptions};

fn options(dir: &std::path::Path, ablations: bool) -> RunOptions {
    RunOptions {
        out: dir.to_path_buf(),
        ablations,
        other_seeds: Vec::new(),
        device: candle_core::Device::Cpu,
    }
}

fn check_unit(what: &str, v: f64) {
    assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{what} = {v}");
}

fn check_report(r: &Report) {
    assert_eq!(
        r.table1.len(),
        2 + 5 + 1,
        "CTPA, CXR, five KD methods, prior"
    );
    let names: Vec<&str> = r.table1.iter().map(|m| m.row.model.as_str()).collect();
    assert_eq!(names[0], "CTPA only classifier");
    assert_eq!(names[1], "CXR only classifier");
    assert_eq!(*names.last().unwrap(), "Diffusion prior (ours)");
    for m in r.table1.iter().chain(&r.table2) {
        check_unit("auc", m.row.auc);
        let ci = m.row.auc_ci.expect("DeLong CI");
        assert!(ci.low <= m.row.auc && m.row.auc <= ci.high);
        check_unit("accuracy", m.row.accuracy);
        check_unit("sensitivity", m.row.sensitivity);
        check_unit("specificity", m.row.specificity);
        check_unit("brier", m.brier);
        check_unit("ece", m.ece);
        assert!(m.row.trainable_params.unwrap() > 0);
        if let Some(p) = m.p_vs_cxr {
            check_unit("p", p);
        }
    }
    assert!(r.table1[1].p_vs_cxr.is_none());
    let u = &r.uncertainty;
    for v in [u.mean_spread, u.spread_correct, u.spread_error_auc] {
        check_unit("uncertainty", v);
    }
    assert!(r.prior_final_loss.iter().all(|l| l.is_finite()));
    let d = r.diagnostics.as_ref().expect("diagnostics of a fresh run");
    for v in [d.prior_r2, d.linear_r2] {
        assert!(v.is_finite() && v <= 1.0, "R^2 = {v}");
    }
    check_unit("linear reference AUC", d.linear_auc);
    check_unit("single-draw AUC", d.single_draw_auc);
    for v in [
        d.spearman_prior_ctpa,
        d.spearman_prior_cxr,
        d.spearman_ctpa_cxr,
    ] {
        assert!((-1.0..=1.0).contains(&v), "Spearman {v}");
    }
}

#[test]
fn tiny_pipeline_end_to_end_is_deterministic_and_resumable() {
    let config = PipelineConfig::tiny();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = run_synthetic(&config, &options(a.path(), true)).unwrap();
    check_report(&ra);
    assert_eq!(
        ra.table2.len(),
        1 + 5 + 1 + 1 + 2,
        "default, five losses, pretraining, embedding size, CXR-only and prior with the CT-only PE backbone"
    );
    let structural = "X-ray backbone pretrained with the CT-only set's PE labels";
    let rows: Vec<&str> = ra
        .table2
        .iter()
        .zip(&ra.sections[ra.table1.len()..])
        .filter(|(_, s)| s.as_str() == structural)
        .map(|(m, _)| m.row.model.as_str())
        .collect();
    assert_eq!(rows, ["CXR only classifier", "Diffusion prior (ours)"]);
    for f in [
        "report.md",
        "report.json",
        "table1.csv",
        "table2.csv",
        "predictions.csv",
        "figures/roc.png",
        "figures/reliability_prior.png",
        "figures/tsne_beginning.png",
        "figures/tsne_middle.png",
        "figures/tsne_end.png",
    ] {
        assert!(a.path().join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(a.path().join("report.md")).unwrap();
    assert!(md.contains("## Table 1") && md.contains("## Table 2"));
    assert!(md.contains("## Why the prior scores what it does"));
    assert!(md.contains("## Which data each model used"));
    assert_eq!(ra.data_use.len(), ra.table1.len());
    for (d, m) in ra.data_use.iter().zip(&ra.table1) {
        assert_eq!(d.model, m.row.model);
        assert!(md.contains(&d.summary), "{}", d.summary);
    }
    assert!(ra.seed_spread.is_empty());

    // Same seed, fresh folder: identical numbers.
    let rb = run_synthetic(&config, &options(b.path(), true)).unwrap();
    assert_eq!(
        serde_json::to_string(&ra).unwrap(),
        serde_json::to_string(&rb).unwrap()
    );

    // A rerun in the same folder reads every phase from the cache and gives the same report.
    let rc = run_synthetic(&config, &options(a.path(), true)).unwrap();
    assert_eq!(ra, rc);

    // A different seed changes the results.
    let other = PipelineConfig { seed: 1, ..config };
    let rd = run_synthetic(&other, &options(a.path(), false)).unwrap();
    assert_ne!(ra.table1, rd.table1);
}

#[test]
fn bad_settings_are_rejected_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = PipelineConfig {
        folds: 1,
        ..PipelineConfig::tiny()
    };
    let e = run_synthetic(&bad, &options(dir.path(), false)).unwrap_err();
    assert!(e.to_string().contains("folds"), "{e}");
}

#[test]
fn cohort_written_to_disk_and_read_through_the_manifest_gives_the_same_results() {
    use cmkd::pipeline::cohort::paired_config;
    use cmkd::pipeline::{run_manifest, ManifestSource, PairedCohort};
    use med_io::synthetic::{write_cohort, Cohort};

    let config = PipelineConfig::tiny();
    let data = tempfile::tempdir().unwrap();
    let synthetic = Cohort::new(paired_config(config.patients, &config.data, config.seed)).unwrap();
    let csv = write_cohort(&synthetic, data.path(), false).unwrap();

    // The preprocessed cohorts are identical voxel for voxel.
    let from_disk = PairedCohort::from_manifest(&csv, None, None, &config.data).unwrap();
    let in_memory = PairedCohort::synthetic(
        &paired_config(config.patients, &config.data, config.seed),
        &config.data,
        "test",
    )
    .unwrap();
    assert_eq!(from_disk.fingerprint(), in_memory.fingerprint());
    assert_eq!(from_disk.labels(), in_memory.labels());

    // And so is the whole run (each in a fresh folder: nothing shared through the cache).
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let source = ManifestSource {
        csv: csv.clone(),
        ct_dir: None,
        cxr_dir: None,
    };
    let mut ra = run_manifest(&config, &source, &options(a.path(), false)).unwrap();
    let rb = run_synthetic(&config, &options(b.path(), false)).unwrap();
    check_report(&ra);
    // Only the description of where the cohort came from differs.
    assert_eq!(ra.cohort_source, csv.display().to_string());
    assert_eq!(rb.cohort_source, "synthetic (med-io)");
    ra.cohort_source.clone_from(&rb.cohort_source);
    assert_eq!(
        serde_json::to_string(&ra).unwrap(),
        serde_json::to_string(&rb).unwrap()
    );

    // A manifest naming a missing file is refused with the file and the line named.
    let text = std::fs::read_to_string(&csv).unwrap();
    let first = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::fs::remove_file(data.path().join("ct").join(format!("{first}.nii.gz"))).unwrap();
    let e = run_manifest(&config, &source, &options(a.path(), false)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&first) && msg.contains("line 2"), "{msg}");
}

#[test]
fn several_seeds_give_each_row_its_mean_and_spread() {
    use cmkd::pipeline::run_seeds;
    let config = PipelineConfig {
        tsne: false,
        ..PipelineConfig::tiny()
    };
    let dir = tempfile::tempdir().unwrap();
    let r = run_seeds(&config, &options(dir.path(), false), 2, run_synthetic).unwrap();
    assert_eq!(r.config.seed, 0);
    assert_eq!(r.seed_spread.len(), r.table1.len());
    let other: Report = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("seeds/seed-1/report.json")).unwrap(),
    )
    .unwrap();
    for ((s, own), theirs) in r.seed_spread.iter().zip(&r.table1).zip(&other.table1) {
        assert_eq!(s.model, own.row.model);
        assert_eq!(s.seeds, vec![0, 1]);
        assert_eq!(s.aucs, vec![own.row.auc, theirs.row.auc]);
        assert!((s.mean - (own.row.auc + theirs.row.auc) / 2.0).abs() < 1e-12);
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("AUC over 2 seeds, mean ± SD"), "{md}");
    assert!(run_seeds(&config, &options(dir.path(), false), 0, run_synthetic).is_err());
}
