//! Trains a small prior on a toy conditional distribution with a known answer and samples it with
//! DDPM, DDIM and Analytic-DPM.
//!
//! The condition is `c ~ N(0, I_2)` and the target `z = A c + L e` with `e ~ N(0, I_2)`, so
//! `p(z | c) = N(A c, L L^T)`. After training, each sampler draws many `z` for one fixed `c` and the
//! example prints their mean and covariance next to the true ones.
//!
//! Run: `cargo run --release -p diffusion-prior --example toy_prior` (well under a minute on a CPU).

use candle_core::{DType, Device, Tensor};
use diffusion_prior::{
    AnalyticBounds, AnalyticKind, BetaSchedule, Control, Ddim, Ddpm, DiffusionPrior, NormKind,
    PairedData, PriorConfig, PriorOptions, Sampler, TimeEmbedding, Trainer, TrainerConfig,
};

const A: [[f32; 2]; 2] = [[1.0, 0.5], [-0.5, 1.0]];
const L: [[f32; 2]; 2] = [[0.5, 0.0], [0.3, 0.2]];

fn data(n: usize, seed: u64, dev: &Device) -> diffusion_prior::Result<(Tensor, Tensor)> {
    let mut rng = cmkd_train::rng::stream(seed, "toy");
    let c = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (n, 2), DType::F32, dev)?;
    let e = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (n, 2), DType::F32, dev)?;
    let a = Tensor::new(&A, dev)?.t()?;
    let l = Tensor::new(&L, dev)?.t()?;
    let z = (c.matmul(&a)? + e.matmul(&l)?)?;
    Ok((c, z))
}

fn moments(z: &Tensor) -> diffusion_prior::Result<([f64; 2], [[f64; 2]; 2])> {
    let v = z.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let n = v.len() as f64;
    let m = [
        v.iter().map(|r| r[0]).sum::<f64>() / n,
        v.iter().map(|r| r[1]).sum::<f64>() / n,
    ];
    let mut c = [[0.0; 2]; 2];
    for r in &v {
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] += (r[i] - m[i]) * (r[j] - m[j]) / (n - 1.0);
            }
        }
    }
    Ok((m, c))
}

fn main() -> diffusion_prior::Result<()> {
    // Candle's CPU thread pool spin-waits; for a model this small one thread is fastest, and it
    // keeps shared machines usable. Set CANDLE_NUM_THREADS to override.
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
    let dev = Device::Cpu;
    let (c, z) = data(4096, 0, &dev)?;
    let network = PriorConfig {
        time_embedding: TimeEmbedding::Sinusoidal,
        embed_dim: 2,
        cond_dim: 2,
        dim: 32,
        depth: 2,
        heads: 2,
        dim_head: 16,
        ..PriorConfig::default()
    };
    let options = PriorOptions::new(network, BetaSchedule::Cosine, 1000);
    let prior = DiffusionPrior::new(
        options,
        NormKind::Standardize,
        NormKind::Identity,
        &c,
        &z,
        1,
        DType::F32,
        &dev,
    )?;
    println!("prior with {} parameters", prior.num_params());
    let config = TrainerConfig {
        epochs: 40,
        batch_size: 128,
        optimizer: diffusion_prior::AdamWConfig {
            lr: 2e-3,
            weight_decay: 0.0,
            ..TrainerConfig::published().optimizer
        },
        lr_schedule: diffusion_prior::LrSchedule::WarmupCosine {
            warmup_steps: 50,
            total_steps: 1280,
            min_ratio: 0.05,
        },
        ema: Some(diffusion_prior::EmaConfig {
            beta: 0.995,
            update_after_step: 100,
            update_every: 1,
            ..Default::default()
        }),
        shuffle: true,
        seed: 2,
        ..TrainerConfig::published()
    };
    let data_set = PairedData::new(c.clone(), z.clone())?;
    let mut trainer = Trainer::new(prior, config)?;
    let start = std::time::Instant::now();
    trainer.fit(&data_set, None, &mut |m| {
        if m.epoch % 10 == 9 {
            println!("epoch {:>3}  loss {:.4}", m.epoch + 1, m.loss);
        }
        Control::Continue
    })?;
    println!(
        "trained {} steps in {:.1?}",
        trainer.step(),
        start.elapsed()
    );

    let mut prior = trainer.ema_prior()?;
    let steps = 64;
    let ts = diffusion_prior::spaced_timesteps(1000, steps)?;
    prior.estimate_gamma(&c.narrow(0, 0, 1024)?, &z.narrow(0, 0, 1024)?, &ts, 256, 3)?;

    let c_star = [0.8f32, -1.2];
    let m_true = [
        A[0][0] * c_star[0] + A[0][1] * c_star[1],
        A[1][0] * c_star[0] + A[1][1] * c_star[1],
    ];
    let s_true = [
        [
            L[0][0] * L[0][0] + L[0][1] * L[0][1],
            L[0][0] * L[1][0] + L[0][1] * L[1][1],
        ],
        [
            L[1][0] * L[0][0] + L[1][1] * L[0][1],
            L[1][0] * L[1][0] + L[1][1] * L[1][1],
        ],
    ];
    println!("true      mean {m_true:.3?} cov {s_true:.4?}");
    let cond = Tensor::new(&[c_star], &dev)?.repeat((1000, 1))?;
    let (sched, pred) = (prior.schedule().clone(), prior.prediction());
    let mut ddpm64 = Ddpm::new(sched.clone(), pred);
    ddpm64.set_timesteps(steps)?;
    let mut ddim = Ddim::new(sched.clone(), pred, steps, 0.0)?;
    let mut analytic =
        prior.analytic_sampler(AnalyticKind::Ddpm, AnalyticBounds::default(), steps)?;
    let mut analytic_ddim = prior.analytic_sampler(
        AnalyticKind::Ddim { eta: 0.0 },
        AnalyticBounds::default(),
        steps,
    )?;
    let samplers: [(&str, &mut dyn Sampler); 4] = [
        ("ddpm-64", &mut ddpm64),
        ("ddim-64", &mut ddim),
        ("a-ddpm-64", &mut analytic),
        ("a-ddim-64", &mut analytic_ddim),
    ];
    for (name, s) in samplers {
        let mut rng = cmkd_train::rng::stream(4, name);
        let t = std::time::Instant::now();
        let zs = prior.sample(&cond, s, 1.0, &mut rng)?;
        let (m, cv) = moments(&zs)?;
        println!("{name:<10}mean {m:.3?} cov {cv:.4?}  ({:.1?})", t.elapsed());
    }
    Ok(())
}
