//! Noise schedules: betas and every derived quantity, in f64, for any number of timesteps.
//!
//! Timesteps are 0-based as in DALLE2-pytorch and diffusers: `t = 0` is the first noising step and
//! `alphas_cumprod[t] = prod_{i <= t} (1 - betas[i])`. "Step -1" is the clean data (`alpha_bar = 1`).

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};

/// How the betas are laid out over the timesteps (DALLE2-pytorch's formulas, in f64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Nichol and Dhariwal's cosine schedule (`s = 0.008`, betas clipped at 0.999).
    Cosine,
    /// Linear from `1e-4` to `0.02`, both scaled by `1000 / T`.
    Linear,
    /// Linear in `sqrt(beta)` between the same end points.
    Quadratic,
    /// Sigmoid over `[-6, 6]` between the same end points.
    Sigmoid,
}

/// Serializable description of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Beta layout.
    pub kind: BetaSchedule,
    /// Number of training timesteps `T` (the published prior: 64; DALL-E 2: 1000).
    pub timesteps: usize,
}

/// A noise schedule with its derived quantities precomputed in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    config: ScheduleConfig,
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

impl NoiseSchedule {
    /// Builds the schedule; `timesteps` must be at least 1.
    pub fn new(kind: BetaSchedule, timesteps: usize) -> Result<Self> {
        if timesteps == 0 {
            return Err(config_err("timesteps", "must be at least 1"));
        }
        let t = timesteps;
        let scale = 1000.0 / t as f64;
        let (start, end) = (1e-4 * scale, 0.02 * scale);
        let betas: Vec<f64> = match kind {
            BetaSchedule::Cosine => {
                let s = 0.008;
                let f = |x: f64| {
                    let v = ((x / t as f64 + s) / (1.0 + s) * std::f64::consts::PI * 0.5).cos();
                    v * v
                };
                let f0 = f(0.0);
                (0..t)
                    .map(|i| {
                        let a1 = f((i + 1) as f64) / f0;
                        let a0 = f(i as f64) / f0;
                        (1.0 - a1 / a0).clamp(0.0, 0.999)
                    })
                    .collect()
            }
            BetaSchedule::Linear => linspace(start, end, t),
            BetaSchedule::Quadratic => linspace(start.sqrt(), end.sqrt(), t)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::Sigmoid => linspace(-6.0, 6.0, t)
                .into_iter()
                .map(|x| 1.0 / (1.0 + (-x).exp()) * (end - start) + start)
                .collect(),
        };
        if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
            return Err(config_err(
                "timesteps",
                format!("{kind:?} with T = {t} gives beta {b} outside (0, 1)"),
            ));
        }
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        Ok(Self {
            config: ScheduleConfig { kind, timesteps },
            betas,
            alphas_cumprod,
        })
    }

    /// From a serialized description.
    pub fn from_config(config: ScheduleConfig) -> Result<Self> {
        Self::new(config.kind, config.timesteps)
    }

    /// The description this schedule was built from.
    pub fn config(&self) -> ScheduleConfig {
        self.config
    }

    /// Number of training timesteps `T`.
    pub fn num_timesteps(&self) -> usize {
        self.betas.len()
    }

    /// `beta_t`.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `alpha_bar_t = prod_{i <= t} (1 - beta_i)`.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// `alpha_bar` at `t`, with `t = -1` (clean data) giving 1.
    pub fn alpha_bar(&self, t: i64) -> f64 {
        if t < 0 {
            1.0
        } else {
            self.alphas_cumprod[t as usize]
        }
    }

    /// `alpha_bar_{t-1}` (1 at `t = 0`).
    pub fn alphas_cumprod_prev(&self) -> Vec<f64> {
        (0..self.betas.len())
            .map(|t| self.alpha_bar(t as i64 - 1))
            .collect()
    }

    /// Variance of the one-step posterior `q(x_{t-1} | x_t, x_0)`:
    /// `beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)`.
    pub fn posterior_variance(&self) -> Vec<f64> {
        (0..self.betas.len())
            .map(|t| {
                let ab = self.alphas_cumprod[t];
                let abp = self.alpha_bar(t as i64 - 1);
                self.betas[t] * (1.0 - abp) / (1.0 - ab)
            })
            .collect()
    }

    /// Coefficients `(c0, ct)` of the one-step posterior mean `c0 * x_0 + ct * x_t`.
    pub fn posterior_mean_coefs(&self, t: usize) -> (f64, f64) {
        let ab = self.alphas_cumprod[t];
        let abp = self.alpha_bar(t as i64 - 1);
        let b = self.betas[t];
        (
            b * abp.sqrt() / (1.0 - ab),
            (1.0 - abp) * (1.0 - b).sqrt() / (1.0 - ab),
        )
    }

    /// Signal-to-noise ratio `alpha_bar_t / (1 - alpha_bar_t)`.
    pub fn snr(&self, t: usize) -> f64 {
        let ab = self.alphas_cumprod[t];
        ab / (1.0 - ab)
    }

    /// `sqrt(alpha_bar_t)` and `sqrt(1 - alpha_bar_t)` gathered per sample for timesteps `t`
    /// (a `u32` tensor of shape `(b,)`), as `(b, 1)` tensors of `dtype` on `t`'s device.
    pub fn gather_sqrt_coefs(&self, t: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let dev = t.device();
        let a: Vec<f32> = self
            .alphas_cumprod
            .iter()
            .map(|v| v.sqrt() as f32)
            .collect();
        let s: Vec<f32> = self
            .alphas_cumprod
            .iter()
            .map(|v| (1.0 - v).sqrt() as f32)
            .collect();
        let n = a.len();
        let a = Tensor::from_vec(a, n, dev)?.index_select(t, 0)?;
        let s = Tensor::from_vec(s, n, dev)?.index_select(t, 0)?;
        Ok((
            a.unsqueeze(1)?.to_dtype(dtype)?,
            s.unsqueeze(1)?.to_dtype(dtype)?,
        ))
    }

    /// Forward noising `x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise`, per-sample `t`.
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let (a, s) = self.gather_sqrt_coefs(t, x0.dtype())?;
        Ok((x0.broadcast_mul(&a)? + noise.broadcast_mul(&s)?)?)
    }

    /// The schedule as `f32` tensors on `device` (for inspection or export).
    pub fn alphas_cumprod_tensor(&self, device: &Device) -> Result<Tensor> {
        let v: Vec<f32> = self.alphas_cumprod.iter().map(|v| *v as f32).collect();
        Ok(Tensor::from_vec(v, self.alphas_cumprod.len(), device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [BetaSchedule; 4] = [
        BetaSchedule::Cosine,
        BetaSchedule::Linear,
        BetaSchedule::Quadratic,
        BetaSchedule::Sigmoid,
    ];

    #[test]
    fn reference_values() {
        // Cosine, T = 64, computed by hand from the formula:
        // f(x) = cos^2(((x/64) + 0.008)/1.008 * pi/2); alpha_bar_t = f(t+1)/f(0).
        let s = NoiseSchedule::new(BetaSchedule::Cosine, 64).unwrap();
        let f = |x: f64| {
            (((x / 64.0) + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        for t in [0usize, 1, 31, 62] {
            let want = f((t + 1) as f64) / f(0.0);
            assert!((s.alphas_cumprod()[t] - want).abs() < 1e-12, "t={t}");
        }
        // The last beta is clipped at 0.999 (the raw value is 1).
        assert!((s.betas()[63] - 0.999).abs() < 1e-15);
        // Linear, T = 1000: beta_0 = 1e-4, beta_999 = 0.02, alpha_bar_0 = 0.9999.
        let l = NoiseSchedule::new(BetaSchedule::Linear, 1000).unwrap();
        assert!((l.betas()[0] - 1e-4).abs() < 1e-15);
        assert!((l.betas()[999] - 0.02).abs() < 1e-15);
        assert!((l.alphas_cumprod()[0] - 0.9999).abs() < 1e-15);
        // alpha_bar_1 = 0.9999 * (1 - (1e-4 + (0.02 - 1e-4)/999)).
        let b1 = 1e-4 + (0.02 - 1e-4) / 999.0;
        assert!((l.alphas_cumprod()[1] - 0.9999 * (1.0 - b1)).abs() < 1e-15);
        // Linear T = 1000 ends near 4.04e-5 (the well-known DDPM value).
        assert!((l.alphas_cumprod()[999] - 4.0358e-5).abs() < 1e-8);
        // Posterior variance at t = 0 is 0 (no noise on the last step).
        assert_eq!(l.posterior_variance()[0], 0.0);
    }

    #[test]
    fn rejects_zero_and_degenerate() {
        assert!(NoiseSchedule::new(BetaSchedule::Cosine, 0).is_err());
        // Linear with T = 10 gives beta_end = 2.0: rejected, not silently clipped.
        assert!(NoiseSchedule::new(BetaSchedule::Linear, 10).is_err());
    }

    #[test]
    fn q_sample_statistics() {
        let s = NoiseSchedule::new(BetaSchedule::Cosine, 100).unwrap();
        let dev = Device::Cpu;
        let n = 20000;
        let mut rng = cmkd_train::rng::stream(1, "q");
        let noise = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (n, 1), DType::F32, &dev).unwrap();
        let x0 = Tensor::full(2.0f32, (n, 1), &dev).unwrap();
        let t = Tensor::from_vec(vec![40u32; n], n, &dev).unwrap();
        let xt = s.q_sample(&x0, &t, &noise).unwrap();
        let v: Vec<f32> = xt.flatten_all().unwrap().to_vec1().unwrap();
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let ab = s.alphas_cumprod()[40];
        assert!((mean - 2.0 * ab.sqrt()).abs() < 0.02, "{mean}");
        assert!((var - (1.0 - ab)).abs() < 0.03, "{var}");
    }

    proptest! {
        #[test]
        fn derived_quantities_are_valid(k in 0usize..4, t in 1usize..1200) {
            let kind = KINDS[k];
            let Ok(s) = NoiseSchedule::new(kind, t) else {
                // Only the scaled linear-type schedules can fail, for small T.
                prop_assert!(kind != BetaSchedule::Cosine);
                return Ok(());
            };
            let ab = s.alphas_cumprod();
            prop_assert_eq!(ab.len(), t);
            for i in 0..t {
                prop_assert!(ab[i] > 0.0 && ab[i] < 1.0);
                if i > 0 { prop_assert!(ab[i] < ab[i - 1]); }
            }
            for (i, v) in s.posterior_variance().iter().enumerate() {
                prop_assert!(*v >= 0.0 && *v <= s.betas()[i] + 1e-15);
            }
            // Posterior mean coefficients reproduce x_{t-1} when x_0 and x_t are consistent in mean.
            for i in 1..t {
                let (c0, ct) = s.posterior_mean_coefs(i);
                let m = c0 * 1.0 + ct * ab[i].sqrt();
                prop_assert!((m - ab[i - 1].sqrt()).abs() < 1e-9);
            }
        }
    }
}
