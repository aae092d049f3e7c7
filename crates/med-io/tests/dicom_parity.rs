//! DICOM reading compared with pydicom on pydicom's own test files and on synthetic series and
//! radiographs (reference values from `tools/medio/dicom_fixtures.py`).

use std::path::PathBuf;

use med_io::transforms::HounsfieldUnits;
use med_io::{read_cxr_dicom, read_dicom_file, read_dicom_series, Error, Intensity};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dicom")
        .join(name)
}

fn reference() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom_ref.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn single_files_match_pydicom() {
    let r = reference();
    let files = r["files"].as_object().unwrap();
    let mut checked = 0;
    for (name, rec) in files {
        if rec.get("error").is_some() {
            continue;
        }
        let v = read_dicom_file(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            v.dims(),
            [
                rec["columns"].as_u64().unwrap() as usize,
                rec["rows"].as_u64().unwrap() as usize,
                1
            ]
        );
        assert_eq!(v.meta.rescale_slope, f(&rec["slope"]), "{name}");
        assert_eq!(v.meta.rescale_intercept, f(&rec["intercept"]), "{name}");
        let d = v.data();
        let sum: f64 = d.iter().map(|&x| x as f64).sum();
        assert_eq!(sum, f(&rec["sum"]), "{name} sum");
        let (lo, hi, _) = v.stats().unwrap();
        assert_eq!(
            (lo as f64, hi as f64),
            (f(&rec["min"]), f(&rec["max"])),
            "{name}"
        );
        for (k, w) in rec["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(d[k] as f64, f(w), "{name} pixel {k}");
        }
        for p in rec["probe"].as_array().unwrap() {
            assert_eq!(
                d[p[0].as_u64().unwrap() as usize] as f64,
                f(&p[1]),
                "{name} probe"
            );
        }
        if let Some(ps) = rec["pixel_spacing"].as_array() {
            assert_eq!(v.spacing()[0], f(&ps[1]));
            assert_eq!(v.spacing()[1], f(&ps[0]));
        }
        if let Some(pos) = rec["position"].as_array() {
            for (o, p) in v.geometry().origin.iter().zip(pos) {
                assert_eq!(*o, f(p));
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 7);
    // CT_small in HU, as pydicom's apply_modality_lut gives it.
    let ct = read_dicom_file(data("CT_small.dcm")).unwrap();
    let hu = HounsfieldUnits::default().apply(&ct).unwrap();
    let sum: f64 = hu.data().iter().map(|&x| x as f64).sum();
    assert_eq!(sum, -1_950_906.0);
}

#[test]
fn bad_files_are_typed_errors_naming_the_file() {
    for name in ["MR_truncated.dcm", "rtplan.dcm"] {
        let err = read_dicom_file(data(name)).unwrap_err();
        assert!(matches!(err, Error::Dicom { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = read_dicom_file(data("../nifti_ref.json")).unwrap_err();
    assert!(matches!(err, Error::Dicom { .. }), "{err:?}");
}

#[test]
fn series_survives_the_traps() {
    let r = &reference()["series_traps"];
    let v = read_dicom_series(data("series_traps")).unwrap();
    let dims: Vec<usize> = r["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(v.dims().to_vec(), dims);
    let g = v.geometry();
    for a in 0..3 {
        assert!(
            (g.spacing[a] - f(&r["spacing"][a])).abs() < 1e-5,
            "spacing {:?}",
            g.spacing
        );
        assert!(
            (g.origin[a] - f(&r["origin"][a])).abs() < 1e-5,
            "origin {:?}",
            g.origin
        );
        for c in 0..3 {
            assert!((g.direction[a][c] - f(&r["direction"][a][c])).abs() < 1e-5);
        }
    }
    assert_eq!(v.meta.series_uid.as_deref(), r["series_uid"].as_str());
    assert_eq!(
        (v.meta.rescale_slope, v.meta.rescale_intercept),
        (2.0, -1024.0)
    );
    assert_eq!(v.meta.intensity, Intensity::Raw);
    let sum: f64 = v.data().iter().map(|&x| x as f64).sum();
    assert_eq!(sum, f(&r["sum"]));
    // Slice k holds stored values 100 k + 16 j + i.
    for k in 0..dims[2] {
        assert_eq!(v.get(3, 2, k), Some((100 * k + 32 + 3) as f32));
    }
}

#[test]
fn shuffled_file_names_load_identically() {
    let v = read_dicom_series(data("series_traps")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(data("series_traps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.reverse();
    for (n, p) in names.iter().enumerate() {
        std::fs::copy(p, dir.path().join(format!("IM{:04}", (n * 7) % 11))).unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), "not dicom").unwrap();
    assert_eq!(read_dicom_series(dir.path()).unwrap(), v);
}

#[test]
fn broken_series_are_rejected_with_the_file_named() {
    // A missing slice.
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(data("series_traps")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "z1.dcm" {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let err = read_dicom_series(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::Series { .. }) && err.to_string().contains("missing slice"),
        "{err}"
    );
    assert!(err.to_string().contains("b2.dcm"), "{err}");
    // Two orientations.
    let err = read_dicom_series(data("series_two_orientations")).unwrap_err();
    assert!(
        err.to_string().contains("s1.dcm") && err.to_string().contains("orientation"),
        "{err}"
    );
    // An empty folder.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_dicom_series(empty.path()),
        Err(Error::Series { .. })
    ));
    assert!(matches!(
        read_dicom_series(data("no_such_folder")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn monochrome1_radiographs_match_pydicom_voi() {
    let r = reference();
    for (name, rec) in r["cxr"].as_object().unwrap() {
        let (img, _) = read_cxr_dicom(data(name)).unwrap();
        assert_eq!((img.width(), img.height()), (32, 24));
        assert_eq!(img.spacing, Some([0.139, 0.139]));
        let want = rec["values"].as_array().unwrap();
        let worst = img
            .data()
            .iter()
            .zip(want)
            .map(|(a, b)| (*a as f64 - f(b)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{name}: max error {worst}");
    }
}
