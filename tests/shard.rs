//! Sharded extraction: 3 shards + merge equal one unsharded extraction bit for bit; a shard stopped
//! part-way (as a killed job) is rerun without redoing what it finished; merge refuses a set that
//! is incomplete, has files of another set, or was made by other encoders.

use candle_core::{Device, Tensor};
use cmkd::pipeline::cohort::{paired_config, PairedCohort};
use cmkd::pipeline::encoders::{cxr_features, pretrain_encoders, slice_sequences};
use cmkd::pipeline::shard::{
    exam_path, extract_shard, merge, ExamSet, FeatureSet, FrozenEncoders, Shard, MERGED_FILE,
};
use cmkd::pipeline::sources::synthetic_pretraining_set;
use cmkd::pipeline::{ManifestSource, PipelineConfig};
use std::ops::ControlFlow;
use std::path::Path;

fn bits(t: &Tensor) -> Vec<u32> {
    cmkd::cmkd_train::compare::f32_bits(t).unwrap()
}

fn assert_same(a: &FeatureSet, b: &FeatureSet) {
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.encoders, b.encoders);
    assert_eq!(bits(&a.cxr), bits(&b.cxr));
    assert_eq!(a.seqs.len(), b.seqs.len());
    for (x, y) in a.seqs.iter().zip(&b.seqs) {
        assert_eq!(x.dims(), y.dims());
        assert_eq!(bits(x), bits(y));
    }
}

/// Tiny pretrained encoders saved to `dir`, and a cohort of 7 patients on disk in the manifest
/// layout (NIfTI + PNG + CSV), read one exam at a time.
fn setup(dir: &Path) -> (PipelineConfig, FrozenEncoders, ExamSet) {
    let config = PipelineConfig::tiny();
    let device = Device::Cpu;
    let pretrain = synthetic_pretraining_set(&config).unwrap();
    let (ctpa, cxr) = pretrain_encoders(&pretrain, &config, &device).unwrap();
    let encoders =
        FrozenEncoders::save(&ctpa, &cxr, &config.data, &dir.join("encoders"), &device).unwrap();
    let cohort = med_io::synthetic::Cohort::new(paired_config(7, &config.data, 11)).unwrap();
    let csv = med_io::synthetic::write_cohort(&cohort, dir.join("cohort"), false).unwrap();
    let exams = ExamSet::manifest(&ManifestSource {
        csv,
        ct_dir: None,
        cxr_dir: None,
    })
    .unwrap();
    (config, encoders, exams)
}

#[test]
fn three_shards_and_merge_equal_the_unsharded_features_bit_for_bit_and_a_stopped_shard_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, encoders, exams) = setup(tmp.path());
    let device = Device::Cpu;
    let fp = encoders.fingerprint().to_string();

    // One process for the whole set.
    let whole = tmp.path().join("whole");
    let r = extract_shard(&encoders, &exams, Shard::WHOLE, &whole, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((r.owned, r.already_done, r.extracted.len()), (7, 0, 7));
    let one = merge(&exams, &fp, &whole, &device).unwrap();
    assert_eq!(one.len(), 7);
    assert_same(
        &one,
        &FeatureSet::load(&whole.join(MERGED_FILE), &device).unwrap(),
    );

    // The same features as the pipeline's own phase A computes from the cohort in memory, with
    // the saved-and-reloaded encoders (batch of one X-ray, as extraction encodes them).
    let cohort = PairedCohort::from_manifest(
        &tmp.path().join("cohort").join("cohort.csv"),
        None,
        None,
        &config.data,
    )
    .unwrap();
    let seqs = slice_sequences(&encoders.ctpa, &cohort).unwrap();
    for (a, b) in seqs.iter().zip(&one.seqs) {
        assert_eq!(bits(a), bits(b));
    }
    assert_eq!(
        bits(&cxr_features(&encoders.cxr, &cohort, 1).unwrap()),
        bits(&one.cxr)
    );

    // Three shards into one shared folder; shard 1 is stopped after its first exam, as a killed
    // job would be, and leaves an interrupted write behind.
    let sharded = tmp.path().join("sharded");
    let mut owned = 0;
    for i in 0..3 {
        let shard = Shard::new(i, 3).unwrap();
        let r = extract_shard(&encoders, &exams, shard, &sharded, |_| {
            if i == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        owned += r.owned;
        assert_eq!(r.stopped, i == 1);
    }
    assert_eq!(owned, 7, "every exam belongs to exactly one shard");
    std::fs::write(sharded.join("exams").join(".tmpKILLED"), b"half a file").unwrap();
    let err = merge(&exams, &fp, &sharded, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 of 7 exams have no features yet"), "{err}");
    assert!(err.contains(&format!("`{}`", exams.ids()[4])), "{err}");

    // The rerun of shard 1 extracts only what it had not finished, and leaves the finished file
    // as it was.
    let done = exam_path(&sharded, &exams.ids()[1]);
    let before = std::fs::read(&done).unwrap();
    let modified = std::fs::metadata(&done).unwrap().modified().unwrap();
    let r = extract_shard(
        &encoders,
        &exams,
        Shard::new(1, 3).unwrap(),
        &sharded,
        |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(r.owned, 2);
    assert_eq!(r.already_done, 1);
    assert_eq!(r.extracted, vec![exams.ids()[4].clone()]);
    assert_eq!(std::fs::read(&done).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&done).unwrap().modified().unwrap(),
        modified
    );
    assert_same(&one, &merge(&exams, &fp, &sharded, &device).unwrap());

    // A damaged file is redone, not trusted.
    std::fs::write(&done, &before[..before.len() / 2]).unwrap();
    let r = extract_shard(
        &encoders,
        &exams,
        Shard::new(1, 3).unwrap(),
        &sharded,
        |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(r.extracted, vec![exams.ids()[1].clone()]);
    assert_same(&one, &merge(&exams, &fp, &sharded, &device).unwrap());

    // A file of an exam outside the set, or features of other encoders, are refused by name.
    let stray = sharded.join("exams").join("OTHER-EXAM.safetensors");
    std::fs::copy(&done, &stray).unwrap();
    let err = merge(&exams, &fp, &sharded, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("belong to no exam") && err.contains("OTHER-EXAM"),
        "{err}"
    );
    std::fs::remove_file(&stray).unwrap();
    let err = merge(&exams, "0000000000000000", &sharded, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("made by encoders"), "{err}");
}

#[test]
fn shards_come_from_flags_or_a_slurm_job_array() {
    assert!(Shard::new(3, 3).is_err());
    assert!(Shard::new(0, 0).is_err());
    let s = Shard::new(2, 3).unwrap();
    assert_eq!(
        (0..9).filter(|&j| s.owns(j)).collect::<Vec<_>>(),
        vec![2, 5, 8]
    );
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Shard::from_vars(vars(&[])).unwrap(), None);
    assert_eq!(
        Shard::from_vars(vars(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "8")
        ]))
        .unwrap(),
        Some(Shard::new(5, 8).unwrap())
    );
    // `--array=1-8`: task ids from 1.
    assert_eq!(
        Shard::from_vars(vars(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8")
        ]))
        .unwrap(),
        Some(Shard::new(0, 8).unwrap())
    );
    for bad in [
        &[("SLURM_ARRAY_TASK_ID", "2")][..],
        &[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ][..],
        &[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ][..],
    ] {
        let owned: Vec<(String, String)> = bad
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let err = Shard::from_vars(|k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        assert!(err.is_err(), "{bad:?}");
    }
}

#[test]
fn an_exam_listed_twice_is_refused_before_any_work() {
    let config = PipelineConfig::tiny();
    let cohort = med_io::synthetic::Cohort::new(paired_config(4, &config.data, 3)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let csv = med_io::synthetic::write_cohort(&cohort, tmp.path(), false).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let first_row = text.lines().nth(1).unwrap().to_string();
    std::fs::write(&csv, format!("{text}{first_row}\n")).unwrap();
    let err = ExamSet::manifest(&ManifestSource {
        csv,
        ct_dir: None,
        cxr_dir: None,
    })
    .err()
    .expect("a duplicate exam");
    let err = err.to_string();
    assert!(err.contains("duplicate") && err.contains("line 6"), "{err}");
}

#[test]
fn the_pipeline_runs_from_merged_features_without_the_pretraining_volumes() {
    use cmkd::pipeline::shard::{ExtractedFeatures, COHORT_DIR, ENCODERS_DIR, PRETRAIN_DIR};
    use cmkd::pipeline::sources::synthetic_cohort;
    use cmkd::pipeline::{Experiment, RunOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    let config = PipelineConfig::tiny();
    let device = Device::Cpu;
    let pretrain = synthetic_pretraining_set(&config).unwrap();
    let (ctpa, cxr) = pretrain_encoders(&pretrain, &config, &device).unwrap();
    let encoders =
        FrozenEncoders::save(&ctpa, &cxr, &config.data, &dir.join(ENCODERS_DIR), &device).unwrap();
    let cohort = synthetic_cohort(&config).unwrap();
    for (sub, set) in [(COHORT_DIR, cohort.clone()), (PRETRAIN_DIR, pretrain)] {
        let exams = ExamSet::in_memory(set).unwrap();
        let out = dir.join(sub);
        for i in 0..2 {
            extract_shard(&encoders, &exams, Shard::new(i, 2).unwrap(), &out, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        }
        merge(&exams, encoders.fingerprint(), &out, &device).unwrap();
    }
    let extracted = ExtractedFeatures::load(&dir, &device).unwrap();
    let options = RunOptions {
        out: tmp.path().join("run"),
        ablations: false,
        other_seeds: Vec::new(),
        device: Device::Cpu,
    };
    let report = Experiment::from_features(&config, &cohort, &extracted, &options)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(report.table1.len(), 8);
    for m in &report.table1 {
        assert!(
            (0.0..=1.0).contains(&m.row.auc),
            "{}: {}",
            m.row.model,
            m.row.auc
        );
    }
    assert!(
        report.pretrain_source.contains(encoders.fingerprint()),
        "{}",
        report.pretrain_source
    );
    // The same encoders and features as pretraining them within the run: the same scores.
    let within = RunOptions {
        out: tmp.path().join("within"),
        ..options.clone()
    };
    let pretrain = synthetic_pretraining_set(&config).unwrap();
    let direct = Experiment::new(&config, &cohort, &pretrain, &within)
        .unwrap()
        .run()
        .unwrap();
    for (a, b) in report.table1.iter().zip(&direct.table1) {
        assert_eq!(a.row.model, b.row.model);
        assert_eq!(a.row.auc, b.row.auc, "{}", a.row.model);
    }

    // Another cohort than the one extracted is refused, by patient.
    let mut other = cohort.clone();
    other.patients.swap(0, 1);
    let err = Experiment::from_features(&config, &other, &extracted, &options)
        .err()
        .expect("a cohort in another order")
        .to_string();
    assert!(err.contains("exam 1"), "{err}");
}
