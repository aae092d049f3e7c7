//! AUC and DeLong CI for n = 1e5 (30% positives, scores rounded to 1e-4 so ties occur), and a
//! stratified bootstrap of n = 1e4 with 200 replicates.
//!
//! `cargo bench -p med-eval --bench auc -- --warm-up-time 1 --measurement-time 3`
//! Peer: `benches/peers/eval_auc.py` (scikit-learn roc_auc_score + numpy fast DeLong).

use criterion::{criterion_group, criterion_main, Criterion};
use med_eval::bootstrap::{bootstrap_auc_ci, BootstrapConfig};
use med_eval::delong::{delong, CiMethod};
use med_eval::roc_auc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;

fn data(n: usize) -> (Vec<bool>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(0);
    let y: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < 0.3).collect();
    let s = y
        .iter()
        .map(|&l| {
            let z: f64 = StandardNormal.sample(&mut rng);
            ((z + if l { 1.0 } else { 0.0 }) * 1e4).round() / 1e4
        })
        .collect();
    (y, s)
}

fn bench(c: &mut Criterion) {
    let (y, s) = data(100_000);
    c.bench_function("roc_auc n=1e5", |b| {
        b.iter(|| roc_auc(black_box(&y), black_box(&s)).unwrap())
    });
    c.bench_function("delong auc+ci n=1e5", |b| {
        b.iter(|| {
            let d = delong(black_box(&y), black_box(&s)).unwrap();
            d.ci(0.95, CiMethod::Plain).unwrap()
        })
    });
    let (y, s) = data(10_000);
    let cfg = BootstrapConfig {
        replicates: 200,
        seed: 1,
        level: 0.95,
    };
    c.bench_function("bootstrap 200 reps n=1e4", |b| {
        b.iter(|| bootstrap_auc_ci(black_box(&y), black_box(&s), &cfg).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
