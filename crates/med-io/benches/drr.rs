//! DRR rendering and synthetic-patient generation.
//!
//! `cargo bench -p med-io --bench drr -- --warm-up-time 1 --measurement-time 3`
//! Peer: `benches/peers/drr_diffdrr.py` renders the same volume with DiffDRR 0.6.1 on the CPU.

use criterion::{criterion_group, criterion_main, Criterion};
use med_io::drr::{hu_to_density, render, DrrGeometry, Renderer};
use med_io::synthetic::Cohort;
use med_io::{Geometry, Volume};

/// The benchmark volume, defined identically in the peer script: 256^3 voxels of 1.5 mm, an
/// elliptic water body in air with two air lungs and a bone rod (HU).
fn bench_volume() -> Volume {
    let n = 256;
    let s = 1.5;
    let c = (n as f64 - 1.0) / 2.0;
    let mut data = vec![-1000.0f32; n * n * n];
    for k in 0..n {
        for j in 0..n {
            for i in 0..n {
                let (x, y, z) = ((i as f64 - c) * s, (j as f64 - c) * s, (k as f64 - c) * s);
                let mut v = -1000.0;
                if (x / 170.0).powi(2) + (y / 120.0).powi(2) < 1.0 && z.abs() < 180.0 {
                    v = 40.0;
                    if ((x.abs() - 70.0) / 50.0).powi(2) + (y / 80.0).powi(2) + (z / 130.0).powi(2)
                        < 1.0
                    {
                        v = -850.0;
                    }
                    if x * x + (y - 80.0).powi(2) < 18.0 * 18.0 {
                        v = 700.0;
                    }
                }
                data[(k * n + j) * n + i] = v;
            }
        }
    }
    Volume::new(data, [n, n, n], Geometry::with_spacing([s, s, s])).expect("valid volume")
}

fn drr(c: &mut Criterion) {
    let density = hu_to_density(&bench_volume(), 1.0).expect("density");
    let geometry = DrrGeometry::diffdrr_readme().with_detector_pixels(224, 224);
    let mut g = c.benchmark_group("drr");
    g.sample_size(10);
    g.bench_function("siddon_224_from_256cube", |b| {
        b.iter(|| render(&density, &geometry, Renderer::Siddon).expect("render"))
    });
    g.bench_function("trilinear500_224_from_256cube", |b| {
        b.iter(|| {
            render(&density, &geometry, Renderer::Trilinear { n_points: 500 }).expect("render")
        })
    });
    g.finish();
    let cohort = Cohort::new(Default::default()).expect("cohort");
    let mut g = c.benchmark_group("synthetic");
    g.sample_size(10);
    g.bench_function("one_patient_default", |b| {
        b.iter(|| cohort.patient(1).expect("patient"))
    });
    g.finish();
}

criterion_group!(benches, drr);
criterion_main!(benches);
