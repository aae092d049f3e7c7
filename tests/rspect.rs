//! The real CT-only pretraining set (`--rspect`): a tiny RSPECT layout on disk
//! (`tests/fixtures/rspect`, written by `tools/pipeline/rspect_fixtures.py` with pydicom) is read with
//! its labels, ids and preprocessed shapes; a CSV naming a missing or broken series is refused with the
//! row and study named; and the whole pipeline runs on it.

use std::path::{Path, PathBuf};

use cmkd::pipeline::cohort::{preprocess_ct, preprocess_cxr};
use cmkd::pipeline::config::DataConfig;
use cmkd::pipeline::sources::pretraining_set;
use cmkd::pipeline::{run_sources, RspectSource};
use cmkd::pipeline::{ManifestSource, PairedCohort, PipelineConfig, RunOptions};
use med_io::transforms::HounsfieldUnits;

/// UID root of the fixture: study `s` is `{STUDY}.{s}`, its series `{STUDY}.{s}.1`.
const STUDY: &str = "1.2.826.0.1.3680043.8.498.4242";
/// Labels of the fixture's six studies, in CSV order.
const LABELS: [bool; 6] = [true, false, false, true, true, false];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rspect")
}

fn csv() -> PathBuf {
    fixture().join("train.csv")
}

fn root() -> PathBuf {
    fixture().join("train")
}

fn series_dir(root: &Path, study: usize) -> PathBuf {
    root.join(format!("{STUDY}.{study}"))
        .join(format!("{STUDY}.{study}.1"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

#[test]
fn reads_exams_with_labels_ids_and_the_rendered_radiograph() {
    let data = DataConfig::tiny();
    let set = PairedCohort::from_rspect(&csv(), &root(), &data, None).unwrap();
    assert_eq!(set.labels(), LABELS);
    for (s, p) in set.patients.iter().enumerate() {
        assert_eq!(p.id, format!("{STUDY}.{}", s + 1));
        assert_eq!(p.ctpa.dims(), [data.ct_size, data.ct_size, data.slices]);
        assert_eq!(
            (p.cxr.width(), p.cxr.height()),
            (data.cxr_size, data.cxr_size)
        );
        assert!(p.ctpa.data().iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(p.cxr.data().iter().all(|v| (0.0..=1.0).contains(v)));
    }

    // Study 1 by hand: its DICOM series in HU, the paper group's DRR, the paired cohort's
    // preprocessing.
    let ct = med_io::read_dicom_series(series_dir(&root(), 1)).unwrap();
    assert_eq!(ct.dims(), [24, 20, 8]);
    let hu = HounsfieldUnits::default().apply(&ct).unwrap();
    let (lo, hi, _) = hu.stats().unwrap();
    assert!(lo < -950.0 && hi > 600.0, "HU range [{lo}, {hi}]");
    let drr = med_io::drr::render_xray2ctpa(&hu).unwrap();
    assert_eq!((drr.width(), drr.height()), (224, 224));
    assert_eq!(
        set.patients[0].cxr.data(),
        preprocess_cxr(&drr, &data).unwrap().data()
    );
    assert_eq!(
        set.patients[0].ctpa.data(),
        preprocess_ct(&ct, &data).unwrap().data()
    );

    // The fixture is a chest for med-io's threshold lung crop: two enclosed lungs are found and the
    // crop is tighter than the body's field of view in-plane.
    let crop = med_io::CtPreprocess {
        spacing: None,
        window: None,
        axial_size: None,
        ..med_io::CtPreprocess::default()
    };
    for s in 1..=LABELS.len() {
        let v = med_io::read_dicom_series(series_dir(&root(), s)).unwrap();
        let [nx, ny, _] = crop.apply(&v).unwrap().dims();
        assert!(nx < 24 && ny < 20, "study {s}: lung crop {nx}x{ny}");
    }
}

#[test]
fn limit_keeps_the_first_exams_and_one_class_is_refused() {
    let data = DataConfig::tiny();
    let three = PairedCohort::from_rspect(&csv(), &root(), &data, Some(3)).unwrap();
    assert_eq!(three.labels(), LABELS[..3]);
    let all = PairedCohort::from_rspect(&csv(), &root(), &data, None).unwrap();
    assert_eq!(
        three.patients[2].ctpa.data(),
        all.patients[2].ctpa.data(),
        "a limit reads the same exams"
    );
    let e = PairedCohort::from_rspect(&csv(), &root(), &data, Some(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("both classes") && e.contains("train.csv") && e.contains("--rspect-limit"),
        "{e}"
    );
    assert!(PairedCohort::from_rspect(&csv(), &root(), &data, Some(0)).is_err());
}

#[test]
fn missing_or_broken_series_is_refused_naming_the_row_and_study_and_nifti_is_read() {
    let data = DataConfig::tiny();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("train");
    copy_dir(&self::root(), &root);
    let reference = PairedCohort::from_rspect(&csv(), &root, &data, None).unwrap();

    // Study 3 as NIfTI next to where its series folder was: the same patient.
    let dir = series_dir(&root, 3);
    let hu = HounsfieldUnits::default()
        .apply(&med_io::read_dicom_series(&dir).unwrap())
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let nifti = root
        .join(format!("{STUDY}.3"))
        .join(format!("{STUDY}.3.1.nii.gz"));
    med_io::write_nifti(&hu, &nifti, med_io::NiftiDtype::F32).unwrap();
    let with_nifti = PairedCohort::from_rspect(&csv(), &root, &data, None).unwrap();
    assert_eq!(with_nifti.fingerprint(), reference.fingerprint());

    // Neither folder nor file: refused with the study's first CSV row (line 18: 8 slices a study
    // after the header) and the study named, before any CT is read.
    std::fs::remove_file(&nifti).unwrap();
    let e = PairedCohort::from_rspect(&csv(), &root, &data, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 18") && e.contains(&format!("{STUDY}.3")),
        "{e}"
    );
    // A limit that stops before the missing study does not need it.
    assert_eq!(
        PairedCohort::from_rspect(&csv(), &root, &data, Some(2))
            .unwrap()
            .len(),
        2
    );

    // A truncated slice: the study and the file are named.
    let dir = series_dir(&root, 2);
    let slice = dir.join(format!("{STUDY}.2.1.4.dcm"));
    let bytes = std::fs::read(&slice).unwrap();
    std::fs::write(&slice, &bytes[..bytes.len() / 2]).unwrap();
    let e = PairedCohort::from_rspect(&csv(), &root, &data, Some(2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 10") && e.contains(&format!("{STUDY}.2")),
        "{e}"
    );
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        out: dir.to_path_buf(),
        ablations: false,
        other_seeds: Vec::new(),
        device: candle_core::Device::Cpu,
    }
}

#[test]
fn pipeline_runs_end_to_end_with_the_real_pretraining_set() {
    use cmkd::pipeline::cohort::paired_config;
    use med_io::synthetic::{write_cohort, Cohort};

    let config = PipelineConfig::tiny();
    let rspect = RspectSource {
        csv: csv(),
        root: root(),
        limit: None,
    };
    let pre = pretraining_set(&config, Some(&rspect)).unwrap();
    assert_eq!(pre.labels(), LABELS);

    // The paired cohort written to disk in the manifest layout, the pretraining set from RSPECT.
    let data = tempfile::tempdir().unwrap();
    let synthetic = Cohort::new(paired_config(config.patients, &config.data, config.seed)).unwrap();
    let manifest = ManifestSource {
        csv: write_cohort(&synthetic, data.path(), false).unwrap(),
        ct_dir: None,
        cxr_dir: None,
    };
    let out = tempfile::tempdir().unwrap();
    let r = run_sources(
        &config,
        Some(&manifest),
        Some(&rspect),
        &options(out.path()),
    )
    .unwrap();
    assert_eq!(r.patients, config.patients);
    assert_eq!(
        r.config.pretrain_patients,
        LABELS.len(),
        "the report counts the exams read"
    );
    assert_eq!(r.table1.len(), 2 + 5 + 1);
    for m in &r.table1 {
        for v in [
            m.row.auc,
            m.row.accuracy,
            m.row.sensitivity,
            m.row.specificity,
        ] {
            assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{v}");
        }
    }
    assert!(r.prior_final_loss.iter().all(|l| l.is_finite()));
    assert!(out.path().join("report.md").is_file());

    // The same cohort generated in memory with the same real pretraining set (fresh folder: nothing
    // shared through the cache) gives the same report; the synthetic pretraining set another one.
    let mem = tempfile::tempdir().unwrap();
    let mut r_mem = run_sources(&config, None, Some(&rspect), &options(mem.path())).unwrap();
    assert!(
        r.pretrain_source.starts_with("RSPECT (") && r.pretrain_source == r_mem.pretrain_source
    );
    assert_eq!(r_mem.cohort_source, "synthetic (med-io)");
    r_mem.cohort_source.clone_from(&r.cohort_source);
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&r_mem).unwrap()
    );
    let synth = tempfile::tempdir().unwrap();
    let r_synth = run_sources(&config, None, None, &options(synth.path())).unwrap();
    assert_ne!(r.config_hash, r_synth.config_hash);
    assert_eq!(r_synth.config.pretrain_patients, config.pretrain_patients);
}
