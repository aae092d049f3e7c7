//! Where one training step of the published prior spends its time: the forward loss, the backward
//! pass, the gradient norm (clipping itself is folded into the AdamW pass), the AdamW update and the EMA update, timed separately with the same
//! calls `Trainer::train_step` makes.
//!
//! Run (one thread, as the benchmark): `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo run
//! --release -p diffusion-prior --example step_phases -- [prefix_tokens] [steps]`
//! (defaults: 1 prefix token, i.e. the peer's `max_text_len=1`, and 4 steps after one warm-up).
//! With a third argument `sample`, times instead `steps` runs of sampling 64 conditions with 64
//! strided DDIM steps (after one untimed run).
//! The system allocator, as in the criterion bench (see there why not mimalloc).
//! Times are CPU seconds of the whole process where Linux reports them (so other processes on a
//! shared machine do not inflate them), else wall seconds.

use std::time::Instant;

use candle_core::{DType, Device};
use cmkd_train::{AdamW, Ema, EmaConfig};
use diffusion_prior::{DiffusionPrior, EmbeddingNorm, PriorConfig, PriorOptions, TrainerConfig};

/// CPU time of all this process's threads (Linux's per-thread schedstat, nanoseconds), which other
/// processes competing for the cores do not inflate; `None` elsewhere.
fn cpu_time() -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 * 1e-9)
}

/// Seconds since `start`: CPU time where available, else wall time.
struct Clock {
    wall: Instant,
    cpu: Option<f64>,
}

impl Clock {
    fn now() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn since(&self, start: &Clock) -> f64 {
        match (self.cpu, start.cpu) {
            (Some(a), Some(b)) => a - b,
            _ => (self.wall - start.wall).as_secs_f64(),
        }
    }
}

/// CPU seconds of `runs` sampling runs (64 conditions, 64 strided DDIM steps with eta 1, as the
/// criterion bench and the peer), after one untimed run.
fn time_sampling(prefix: usize, runs: usize, dev: &Device) -> diffusion_prior::Result<()> {
    let options = PriorOptions {
        network: PriorConfig {
            prefix_tokens: prefix,
            ..PriorConfig::published()
        },
        schedule: diffusion_prior::ScheduleConfig {
            kind: diffusion_prior::BetaSchedule::Cosine,
            timesteps: 1000,
        },
        ..PriorOptions::published()
    };
    let prior = DiffusionPrior::from_parts(
        options,
        EmbeddingNorm::Identity,
        EmbeddingNorm::Identity,
        0,
        DType::F32,
        dev,
    )?;
    let mut rng = cmkd_train::rng::stream(0, "sampling");
    let cond = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (64, 512), DType::F32, dev)?;
    let mut ddim =
        diffusion_prior::Ddim::new(prior.schedule().clone(), prior.prediction(), 64, 1.0)?;
    let mut times = Vec::new();
    for run in 0..=runs {
        let t0 = Clock::now();
        prior.sample(&cond, &mut ddim, 1.0, &mut rng)?;
        let d = Clock::now().since(&t0);
        println!("run {run}: {d:.3}");
        if run > 0 {
            times.push(d);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "prefix {prefix}, sampling 64 x 64 DDIM steps, median of {runs} ({}): {:.3}",
        if cpu_time().is_some() { "CPU s" } else { "s" },
        times[times.len() / 2]
    );
    Ok(())
}

fn main() -> diffusion_prior::Result<()> {
    let mut args = std::env::args().skip(1);
    let prefix: usize = args.next().map_or(1, |a| a.parse().expect("prefix tokens"));
    let steps: usize = args.next().map_or(4, |a| a.parse().expect("steps"));
    let dev = Device::Cpu;
    if args.next().as_deref() == Some("sample") {
        return time_sampling(prefix, steps, &dev);
    }
    let options = PriorOptions {
        network: PriorConfig {
            prefix_tokens: prefix,
            ..PriorConfig::published()
        },
        ..PriorOptions::published()
    };
    let prior = DiffusionPrior::from_parts(
        options,
        EmbeddingNorm::Identity,
        EmbeddingNorm::Identity,
        0,
        DType::F32,
        &dev,
    )?;
    let tc = TrainerConfig::published();
    let vars = prior.vars();
    let mut opt = AdamW::new(vars.clone(), tc.optimizer)?;
    // Average at every update so that each timed step pays the full EMA cost (the published
    // schedule averages every 10th step only).
    let mut ema = Ema::new(
        &vars,
        EmaConfig {
            update_after_step: 0,
            update_every: 1,
            ..EmaConfig::default()
        },
    )?;
    let mut rng = cmkd_train::rng::stream(0, "phases");
    let cond = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (64, 512), DType::F32, &dev)?;
    let target = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (64, 512), DType::F32, &dev)?;
    let names = ["forward", "backward", "clip", "adamw", "ema", "total"];
    let mut sums = [0f64; 6];
    let mut mins = [f64::INFINITY; 6];
    for step in 0..=steps {
        let t0 = Clock::now();
        let mut srng = cmkd_train::rng::stream(1, &format!("step/{step}"));
        let parts = prior.loss(&cond, &target, &mut srng, true)?;
        let _ = parts.mse.to_scalar::<f32>()?;
        let t1 = Clock::now();
        let grads = parts.mse.backward()?;
        let t2 = Clock::now();
        let (_, clip) = cmkd_train::clip_coefficient(&grads, &vars, 0.5, step)?;
        let t3 = Clock::now();
        opt.step_with_grad_scale(&grads, clip)?;
        let t4 = Clock::now();
        ema.update()?;
        let t5 = Clock::now();
        drop(grads);
        let d = [
            t1.since(&t0),
            t2.since(&t1),
            t3.since(&t2),
            t4.since(&t3),
            t5.since(&t4),
            t5.since(&t0),
        ];
        let line: Vec<String> = names
            .iter()
            .zip(d)
            .map(|(n, d)| format!("{n} {d:.3}"))
            .collect();
        println!("step {step}: {}", line.join("  "));
        if step > 0 {
            for ((s, m), d) in sums.iter_mut().zip(mins.iter_mut()).zip(d) {
                *s += d;
                *m = m.min(d);
            }
        }
    }
    let line: Vec<String> = names
        .iter()
        .zip(sums)
        .map(|(n, s)| format!("{n} {:.3}", s / steps.max(1) as f64))
        .collect();
    let unit = if cpu_time().is_some() { "CPU s" } else { "s" };
    println!(
        "prefix {prefix}, mean of {steps} steps after warm-up ({unit}): {}",
        line.join("  ")
    );
    let line: Vec<String> = names
        .iter()
        .zip(mins)
        .map(|(n, s)| format!("{n} {s:.3}"))
        .collect();
    println!(
        "prefix {prefix}, fastest of each phase ({unit}): {}",
        line.join("  ")
    );
    Ok(())
}
