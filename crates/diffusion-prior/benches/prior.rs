//! The published prior (dim 512, depth 12, 12x64 multi-query heads, SwiGLU 2048): one training
//! step at batch 64, and sampling 64 conditions with 64 DDIM / Analytic-DPM steps, with the
//! published 77 null text tokens and with 1 (the peer's `max_text_len`).
//!
//! `cargo bench -p diffusion-prior --bench prior -- --warm-up-time 1 --measurement-time 3`
//! Peer: `benches/peers/prior_dalle2.py`.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use diffusion_prior::{
    AnalyticBounds, AnalyticKind, BetaSchedule, Ddim, DiffusionPrior, EmbeddingNorm, GammaTable,
    PairedData, PriorConfig, PriorOptions, Trainer, TrainerConfig,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn prior(prefix: usize, timesteps: usize) -> DiffusionPrior {
    let options = PriorOptions {
        network: PriorConfig {
            prefix_tokens: prefix,
            ..PriorConfig::published()
        },
        ..PriorOptions::published()
    };
    let options = PriorOptions {
        schedule: diffusion_prior::ScheduleConfig {
            kind: BetaSchedule::Cosine,
            timesteps,
        },
        ..options
    };
    DiffusionPrior::from_parts(
        options,
        EmbeddingNorm::Identity,
        EmbeddingNorm::Identity,
        0,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut rng = cmkd_train::rng::stream(0, "bench");
    let cond = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (64, 512), DType::F32, &dev).unwrap();
    let target = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (64, 512), DType::F32, &dev).unwrap();
    let data = PairedData::new(cond.clone(), target).unwrap();
    let rows: Vec<usize> = (0..64).collect();
    let mut g = c.benchmark_group("prior_published");
    g.sample_size(10);
    for prefix in [1usize, 77] {
        let mut t = Trainer::new(prior(prefix, 64), TrainerConfig::published()).unwrap();
        g.bench_function(format!("train_step_b64_text{prefix}"), |b| {
            b.iter(|| t.train_step(&data, &rows, None).unwrap())
        });
        let p = prior(prefix, 1000);
        let mut ddim = Ddim::new(p.schedule().clone(), p.prediction(), 64, 1.0).unwrap();
        g.bench_function(format!("sample_ddim64_b64_text{prefix}"), |b| {
            b.iter(|| p.sample(&cond, &mut ddim, 1.0, &mut rng).unwrap())
        });
        let gamma = GammaTable {
            timesteps: (0..1000).collect(),
            values: vec![0.5; 1000],
            samples: 1,
        };
        let mut p = p;
        p.set_gamma(Some(gamma));
        let mut a = p
            .analytic_sampler(AnalyticKind::Ddpm, AnalyticBounds::default(), 64)
            .unwrap();
        g.bench_function(format!("sample_analytic64_b64_text{prefix}"), |b| {
            b.iter(|| p.sample(&cond, &mut a, 1.0, &mut rng).unwrap())
        });
    }
    g.finish();
    let _ = Tensor::zeros(1, DType::F32, &dev);
}

criterion_group!(benches, bench);
criterion_main!(benches);
