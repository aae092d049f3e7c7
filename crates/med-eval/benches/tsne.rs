//! t-SNE of n = 2000 points of dimension 512 (ten Gaussian clusters), Barnes–Hut, sklearn defaults
//! (perplexity 30, 1000 iterations, PCA init).
//!
//! `cargo bench -p med-eval --bench tsne -- --warm-up-time 1 --measurement-time 3`
//! (criterion's minimum of 10 samples makes this the slowest bench; it is one group on purpose.)
//! Peer: `benches/peers/eval_tsne.py` (scikit-learn TSNE, same data shape and settings).

use criterion::{criterion_group, criterion_main, Criterion};
use med_eval::tsne::{trustworthiness, tsne, TsneConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;

fn data(n: usize, dim: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(0);
    let centres: Vec<Vec<f64>> = (0..10)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    3.0 * z
                })
                .collect()
        })
        .collect();
    (0..n)
        .flat_map(|i| {
            let c = centres[i % 10].clone();
            let noise: Vec<f64> = (0..dim)
                .map(|_| -> f64 { StandardNormal.sample(&mut rng) })
                .collect();
            c.into_iter()
                .zip(noise)
                .map(|(a, b)| (a + b) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = data(2000, 512);
    let cfg = TsneConfig {
        progress: false,
        ..TsneConfig::default()
    };
    // Quality once, outside the timing, to compare with the peer's trustworthiness.
    let e = tsne(&x, 512, &cfg).unwrap();
    let t = trustworthiness(&x, 512, &e.points, 10).unwrap();
    eprintln!("trustworthiness k=10: {t:.4} (KL {:.4})", e.kl_divergence);
    let mut g = c.benchmark_group("tsne");
    g.sample_size(10);
    g.bench_function("barnes_hut n=2000 d=512 1000 iters", |b| {
        b.iter(|| tsne(black_box(&x), 512, &cfg).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
