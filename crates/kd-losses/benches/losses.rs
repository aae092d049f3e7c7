//! Forward + backward of every objective at batch 64, embedding 512 (f32, CPU).
//!
//! `cargo bench -p kd-losses --bench losses -- --warm-up-time 1 --measurement-time 3`

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use kd_losses::*;
use rand::SeedableRng;

const B: usize = 64;
const D: usize = 512;

fn randn(seed: u64, shape: (usize, usize)) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    cmkd_train::rng::randn(&mut rng, 0.0, 1.0, shape, DType::F32, &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let e_s = Var::from_tensor(&randn(1, (B, D))).unwrap();
    let e_t = randn(2, (B, D));
    let z_s = Var::from_tensor(&randn(3, (B, 1)).squeeze(1).unwrap()).unwrap();
    let z_t = randn(4, (B, 1)).squeeze(1).unwrap();
    let labels = Tensor::from_vec(
        (0..B)
            .map(|i| (i % 3 == 0) as u8 as f32)
            .collect::<Vec<_>>(),
        B,
        &dev,
    )
    .unwrap();
    let views = Views {
        student_embedding: e_s.as_tensor(),
        student_logit: z_s.as_tensor(),
        teacher_embedding: &e_t,
        teacher_logit: &z_t,
        labels: &labels,
    };
    let objectives: Vec<Box<dyn Objective>> = vec![
        Box::new(Mse),
        Box::new(Cosine::default()),
        Box::new(SmoothL1::default()),
        Box::new(Bce::default()),
        Box::new(WeightedSum::paper_default()),
        Box::new(HintonKd::default()),
        Box::new(ProtoKd::default()),
        Box::new(Contrastive::default()),
        Box::new(AftKd::new(AftKdConfig::new(D, D), 0, DType::F32, &dev).unwrap()),
        Box::new(DiscomKd::new(DiscomKdConfig::new(D, D), 0, DType::F32, &dev).unwrap()),
    ];
    let mut g = c.benchmark_group("forward_backward_b64_d512");
    for o in &objectives {
        g.bench_function(o.name(), |b| {
            b.iter(|| {
                let l = o.loss(&views).unwrap();
                std::hint::black_box(l.total.backward().unwrap());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
