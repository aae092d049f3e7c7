//! The published prior (dim 512, depth 12, 12x64 multi-query heads, SwiGLU 2048): one training
//! step at batch 64 with the published 77 null text tokens and with 1 (the peer's
//! `max_text_len=1`), and sampling 64 conditions with 64 strided DDIM (eta 1) and Analytic-DPM
//! (DDPM form) steps.
//!
//! `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench -p diffusion-prior --bench prior --
//! --warm-up-time 1 --measurement-time 3 [filter]`
//! Peer: `benches/peers/prior_dalle2.py`.
//!
//! Sampling with 77 prefix tokens computes their keys and values once per run (one batch-1 pass),
//! so it costs what sampling with 1 does plus that pass: `sample_ddim64_b64_text77` shows it.
//!
//! The system allocator is used on purpose: mimalloc's default (returning freed pages to the OS
//! at once) made a training step about 30% slower here, since every step allocates and frees
//! gradient-sized buffers of up to 8 MB that then have to be faulted in and zeroed again.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use diffusion_prior::{
    spaced_timesteps, AnalyticBounds, AnalyticKind, BetaSchedule, Ddim, DiffusionPrior,
    EmbeddingNorm, PairedData, PriorConfig, PriorOptions, Trainer, TrainerConfig,
};

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
    let data = PairedData::new(cond.clone(), target.clone()).unwrap();
    let rows: Vec<usize> = (0..64).collect();
    let mut g = c.benchmark_group("prior_published");
    g.sample_size(10);
    for prefix in [1usize, 77] {
        let mut t = Trainer::new(prior(prefix, 64), TrainerConfig::published()).unwrap();
        g.bench_function(format!("train_step_b64_text{prefix}"), |b| {
            b.iter(|| t.train_step(&data, &rows, None).unwrap())
        });
    }
    let mut p = prior(1, 1000);
    let mut ddim = Ddim::new(p.schedule().clone(), p.prediction(), 64, 1.0).unwrap();
    g.bench_function("sample_ddim64_b64_text1", |b| {
        b.iter(|| p.sample(&cond, &mut ddim, 1.0, &mut rng).unwrap())
    });
    // Analytic-DPM's statistics at the 64 sampling timesteps, estimated as a user would (with this
    // untrained network; the sampler's cost does not depend on the values).
    let steps = spaced_timesteps(1000, 64).unwrap();
    p.estimate_gamma(&cond, &target, &steps, 64, 0).unwrap();
    let mut a = p
        .analytic_sampler(AnalyticKind::Ddpm, AnalyticBounds::default(), 64)
        .unwrap();
    g.bench_function("sample_analytic64_b64_text1", |b| {
        b.iter(|| p.sample(&cond, &mut a, 1.0, &mut rng).unwrap())
    });
    let p77 = prior(77, 1000);
    let mut ddim = Ddim::new(p77.schedule().clone(), p77.prediction(), 64, 1.0).unwrap();
    g.bench_function("sample_ddim64_b64_text77", |b| {
        b.iter(|| p77.sample(&cond, &mut ddim, 1.0, &mut rng).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
