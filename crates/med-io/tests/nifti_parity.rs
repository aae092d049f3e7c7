//! NIfTI reading compared with nibabel on nibabel's own test files
//! (reference values from `tools/medio/nifti_fixtures.py`).

use std::path::PathBuf;

use med_io::{read_nifti, read_nifti_frame, write_nifti, NiftiDtype, Volume};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("nifti_ref.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn check(name: &str, v: &Volume, r: &Value) {
    let shape: Vec<usize> = r["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(v.dims().to_vec(), shape, "{name} shape");
    let g = v.geometry();
    for a in 0..3 {
        assert!(
            (g.spacing[a] - f(&r["spacing"][a])).abs() < 1e-5,
            "{name} spacing {:?}",
            g.spacing
        );
        assert!(
            (g.origin[a] - f(&r["origin"][a])).abs() < 1e-4,
            "{name} origin {:?}",
            g.origin
        );
        for c in 0..3 {
            assert!(
                (g.direction[a][c] - f(&r["direction"][a][c])).abs() < 1e-6,
                "{name} direction"
            );
        }
    }
    let d = v.data();
    let sum: f64 = d.iter().map(|&x| x as f64).sum();
    assert!(
        (sum - f(&r["sum"])).abs() <= 1e-6 * f(&r["sum"]).abs().max(1.0),
        "{name} sum {sum}"
    );
    let (lo, hi, _) = v.stats().unwrap();
    assert_eq!(lo as f64, f(&r["min"]));
    assert_eq!(hi as f64, f(&r["max"]));
    for (k, want) in r["first"].as_array().unwrap().iter().enumerate() {
        assert_eq!(d[k] as f64, f(want), "{name} voxel {k}");
    }
    for p in r["probe"].as_array().unwrap() {
        let k = p[0].as_u64().unwrap() as usize;
        assert!((d[k] as f64 - f(&p[1])).abs() < 1e-4, "{name} voxel {k}");
    }
}

#[test]
fn matches_nibabel_on_its_test_files() {
    let r = reference();
    for name in ["anatomical.nii", "standard.nii.gz"] {
        let v = read_nifti(data(name)).unwrap();
        check(name, &v, &r["files"][name]);
    }
    // NIfTI-2, 4-D: the nifti crate cannot read it; our own header reader does.
    let name = "example_nifti2.nii.gz";
    assert!(
        read_nifti(data(name)).is_err(),
        "two frames must not be read as one volume"
    );
    let v = read_nifti_frame(data(name), 0).unwrap();
    check(name, &v, &r["files"][name]);
}

#[test]
fn rewritten_files_read_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let v = read_nifti(data("anatomical.nii")).unwrap();
    let p = dir.path().join("anat.nii.gz");
    write_nifti(&v, &p, NiftiDtype::I16).unwrap();
    let back = read_nifti(&p).unwrap();
    assert_eq!(back.data(), v.data());
    assert_eq!(back.dims(), v.dims());
    let (a, b) = (back.geometry(), v.geometry());
    for r in 0..3 {
        assert!((a.origin[r] - b.origin[r]).abs() < 1e-4);
        assert!((a.spacing[r] - b.spacing[r]).abs() < 1e-6);
    }
    assert_eq!(a.direction, b.direction);
}
