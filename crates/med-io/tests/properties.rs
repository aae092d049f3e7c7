//! Property tests: transform invariants, file round trips, and no panic on arbitrary bytes.

use std::path::Path;

use med_io::dicom_io::read_dicom_bytes;
use med_io::nifti_io::{encode_nifti, read_nifti_bytes};
use med_io::transforms::{orientation, resize_volume, ResizeMethod, ScaleIntensityRange, Spacing};
use med_io::{Geometry, NiftiDtype, Volume};
use proptest::prelude::*;

fn smooth(dims: [usize; 3], spacing: [f64; 3], phase: f64) -> Volume {
    let mut d = Vec::with_capacity(dims.iter().product());
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                d.push(
                    ((i as f64 * 0.2 + phase).sin() + (j as f64 * 0.15).cos() + k as f64 * 0.1)
                        as f32,
                );
            }
        }
    }
    Volume::new(d, dims, Geometry::with_spacing(spacing)).unwrap()
}

fn dims_strategy() -> impl Strategy<Value = [usize; 3]> {
    (1usize..9, 1usize..9, 1usize..6).prop_map(|(a, b, c)| [a, b, c])
}

fn spacing_strategy() -> impl Strategy<Value = [f64; 3]> {
    (0.3f64..3.0, 0.3f64..3.0, 0.5f64..5.0).prop_map(|(a, b, c)| [a, b, c])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn spacing_to_own_spacing_is_identity(dims in dims_strategy(), sp in spacing_strategy(), phase in 0.0f64..3.0) {
        let v = smooth(dims, sp, phase);
        let r = Spacing { pixdim: sp, mode: Default::default() }.apply(&v).unwrap();
        prop_assert_eq!(r.dims(), v.dims());
        prop_assert_eq!(r.data(), v.data());
        prop_assert_eq!(r.geometry(), v.geometry());
    }

    #[test]
    fn window_is_monotone_and_in_range(mut xs in proptest::collection::vec(-3000.0f32..3000.0, 1..64),
                                        lo in -1000.0f32..0.0, width in 1.0f32..2000.0) {
        xs.sort_by(f32::total_cmp);
        let mut ys = xs.clone();
        ScaleIntensityRange::window(lo, lo + width).apply_slice(&mut ys).unwrap();
        for w in ys.windows(2) {
            prop_assert!(w[0] <= w[1]);
        }
        prop_assert!(ys.iter().all(|y| (0.0..=1.0).contains(y)));
    }

    #[test]
    fn resize_up_and_back_stays_close_on_smooth_inputs(n in 8usize..24, m in 8usize..24, phase in 0.0f64..3.0) {
        let v = smooth([n, m, 2], [1.0; 3], phase);
        for method in [ResizeMethod::Linear, ResizeMethod::Area, ResizeMethod::LinearAntialias] {
            let up = resize_volume(&v, [2 * n, 2 * m, 2], method).unwrap();
            let back = resize_volume(&up, [n, m, 2], method).unwrap();
            let worst = back.data().iter().zip(v.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // The antialiasing filter blurs on the way down, by design.
            let tol = if method == ResizeMethod::LinearAntialias { 0.12 } else { 0.06 };
            prop_assert!(worst < tol, "{:?}: {}", method, worst);
            prop_assert!((back.extent_mm()[0] - v.extent_mm()[0]).abs() < 1e-9);
        }
    }

    #[test]
    fn nifti_round_trips_random_oblique_geometry(dims in dims_strategy(), sp in spacing_strategy(),
                                                 angle in -3.1f64..3.1, flip in any::<bool>(),
                                                 origin in proptest::array::uniform3(-500.0f64..500.0)) {
        let (s, c) = (angle.sin(), angle.cos());
        let z = if flip { -1.0 } else { 1.0 };
        let g = Geometry { spacing: sp, origin, direction: [[c, 0.0, -s * z], [0.0, 1.0, 0.0], [s, 0.0, c * z]] };
        let v = Volume::new((0..dims.iter().product::<usize>()).map(|x| x as f32 * 0.5).collect(), dims, g).unwrap();
        let back = read_nifti_bytes(&encode_nifti(&v, NiftiDtype::F32), Path::new("p.nii")).unwrap();
        prop_assert_eq!(back.data(), v.data());
        let b = back.geometry();
        for r in 0..3 {
            prop_assert!((b.spacing[r] - sp[r]).abs() < 1e-4 * sp[r]);
            prop_assert!((b.origin[r] - origin[r]).abs() < 1e-3);
            for col in 0..3 {
                prop_assert!((b.direction[r][col] - g.direction[r][col]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn orientation_round_trips(dims in dims_strategy(), target in prop::sample::select(vec!["RAS", "LPI", "SAR", "IRP", "PLS"])) {
        let v = smooth(dims, [1.0, 2.0, 3.0], 0.5);
        let r = orientation(&v, target).unwrap();
        prop_assert_eq!(med_io::transforms::axcodes(r.geometry()), target);
        let back = orientation(&r, "LPS").unwrap();
        prop_assert_eq!(back.data(), v.data());
    }

    #[test]
    fn nifti_reader_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = read_nifti_bytes(&bytes, Path::new("fuzz.nii"));
    }

    #[test]
    fn nifti_reader_never_panics_on_corrupted_files(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
        let v = smooth([4, 3, 2], [1.0; 3], 0.0);
        let mut bytes = encode_nifti(&v, NiftiDtype::I16);
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let _ = read_nifti_bytes(&bytes, Path::new("fuzz.nii"));
    }

    #[test]
    fn dicom_reader_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200), marker in any::<bool>()) {
        let mut bytes = bytes;
        if marker && bytes.len() >= 132 {
            bytes[128..132].copy_from_slice(b"DICM");
        }
        let _ = read_dicom_bytes(&bytes, Path::new("fuzz.dcm"));
    }

    #[test]
    fn dicom_reader_never_panics_on_corrupted_files(edits in proptest::collection::vec((0usize..2000, any::<u8>()), 1..8),
                                                    cut in 0usize..3000) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dicom/MR_small_RLE.dcm");
        let mut bytes = std::fs::read(path).unwrap();
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if cut > 0 && cut < bytes.len() {
            bytes.truncate(bytes.len() - cut);
        }
        let _ = read_dicom_bytes(&bytes, Path::new("fuzz.dcm"));
    }
}
