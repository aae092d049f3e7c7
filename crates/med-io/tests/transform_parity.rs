//! Resizing and resampling compared with torch `F.interpolate` and MONAI `Resize`/`Spacing`
//! (reference values from `tools/medio/transform_fixtures.py`).

use med_io::transforms::{resize_image, resize_volume, Interpolation, ResizeMethod, Spacing};
use med_io::{Geometry, Image2d, Volume};
use serde_json::Value;

/// The input formula of the fixture script, evaluated in f64 and rounded to f32 as numpy does.
fn input(dims: [usize; 3], spacing: [f64; 3]) -> Volume {
    let mut d = Vec::new();
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let (x, y, z) = (i as f64, j as f64, k as f64);
                let v = (0.7 * x).sin()
                    + (0.45 * y).cos() * (1.0 + 0.3 * z)
                    + 0.05 * ((i * 7 + j * 3 + k * 5) % 11) as f64;
                d.push(v as f32);
            }
        }
    }
    Volume::new(d, dims, Geometry::with_spacing(spacing)).unwrap()
}

fn dims(v: &Value) -> [usize; 3] {
    let a: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [a[0], a[1], a[2]]
}

fn close(name: &str, got: &[f32], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    assert!(worst < 2e-5, "{name}: max abs error {worst}");
}

#[test]
fn resize_and_spacing_match_torch_and_monai() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/transform_ref.json");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut n = 0;
    for case in r["cases"].as_array().unwrap() {
        let kind = case["kind"].as_str().unwrap();
        let method = case["method"].as_str().unwrap();
        let size = dims(&case["size"]);
        let name = format!("{kind} {method} {size:?}");
        let m = match method {
            "area" => ResizeMethod::Area,
            "linear" => ResizeMethod::Linear,
            "linear_antialias" => ResizeMethod::LinearAntialias,
            _ => ResizeMethod::Nearest,
        };
        match kind {
            "image" => {
                let v = input(dims(&case["in"]), [1.0; 3]);
                let [w, h, _] = v.dims();
                let img = Image2d::new(v.into_data(), w, h).unwrap();
                let out = resize_image(&img, size[0], size[1], m).unwrap();
                close(&name, out.data(), &case["out"]);
            }
            "volume" | "monai_resize" => {
                let v = input(dims(&case["in"]), [1.0; 3]);
                let out = resize_volume(&v, size, m).unwrap();
                close(&name, out.data(), &case["out"]);
            }
            _ => {
                let sp: Vec<f64> = case["spacing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let pd: Vec<f64> = case["pixdim"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let v = input(dims(&case["in"]), [sp[0], sp[1], sp[2]]);
                let mode = if method == "nearest" {
                    Interpolation::Nearest
                } else {
                    Interpolation::Linear
                };
                let out = Spacing {
                    pixdim: [pd[0], pd[1], pd[2]],
                    mode,
                }
                .apply(&v)
                .unwrap();
                assert_eq!(out.dims(), size, "{name}: shape");
                close(&name, out.data(), &case["out"]);
            }
        }
        n += 1;
    }
    assert_eq!(n, 21);
}
