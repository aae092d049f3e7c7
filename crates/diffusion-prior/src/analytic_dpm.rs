//! Analytic-DPM (Bao et al. 2022): the optimal reverse variance from a Monte Carlo estimate of
//! `Gamma_t = E ||eps_hat(x_t, t)||^2 / d` made with the trained network.
//!
//! For a step from `t` to `s` (notation of [`crate::sampler`]), with `bb = 1 - alpha_bar`:
//!
//! ```text
//! Var[x0 | x_t] ~ clip((bb_t / ab_t) (1 - Gamma_t), 0, bound)
//! sigma^2 = lambda^2 + (sqrt(ab_s) - sqrt((bb_s - lambda^2) ab_t / bb_t))^2 Var[x0 | x_t]
//! ```
//!
//! `clip(1 - Gamma, 0, 1)` enforces the two bounds of the paper's Theorem 2; `data_half_range`
//! adds the bounded-data bound `((b - a) / 2)^2` when the embeddings are known to lie in `[a, b]`.
//! The DDPM form takes `lambda^2` = the skip's posterior variance; the DDIM form `eta^2` times it.

use candle_core::Tensor;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Error, Result};
use crate::prediction::Prediction;
use crate::sampler::{
    family_step, next_timestep, skip_posterior_variance, spaced_timesteps, Sampler,
};
use crate::schedule::NoiseSchedule;

/// Estimated `Gamma_t` at some timesteps, as stored with a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GammaTable {
    /// Timesteps at which `Gamma` was estimated (ascending).
    pub timesteps: Vec<usize>,
    /// `Gamma_t = mean over data and dimensions of eps_hat^2`, one per timestep.
    pub values: Vec<f64>,
    /// Number of data points used per timestep.
    pub samples: usize,
}

impl GammaTable {
    /// `Gamma_t`, or an error naming `t` when it was not estimated.
    pub fn get(&self, t: usize) -> Result<f64> {
        self.timesteps
            .binary_search(&t)
            .map(|i| self.values[i])
            .map_err(|_| {
                Error::Sampler(format!(
                    "no Analytic-DPM statistic for timestep {t}; estimate Gamma at the sampling timesteps"
                ))
            })
    }
}

/// Which member of the family Analytic-DPM improves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AnalyticKind {
    /// Analytic-DDPM: `lambda^2` = the posterior variance of the skip.
    Ddpm,
    /// Analytic-DDIM with the given `eta` (0 in the paper's DDIM experiments).
    Ddim {
        /// Scale of `lambda`.
        eta: f64,
    },
}

/// Variance bounds of [`AnalyticDpm`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticBounds {
    /// Half-width `(b - a) / 2` of the data range in the model's (normalised) space, if bounded.
    pub data_half_range: Option<f64>,
    /// Upper bound on `sigma` at the last stochastic step (the one landing on the smallest
    /// timestep). The reference code uses 1 or 2 pixel levels; for embeddings pick it in embedding
    /// units, or leave it off.
    pub last_step_sigma_max: Option<f64>,
}

/// The Analytic-DPM sampler.
#[derive(Debug, Clone)]
pub struct AnalyticDpm {
    schedule: NoiseSchedule,
    prediction: Prediction,
    gamma: GammaTable,
    kind: AnalyticKind,
    bounds: AnalyticBounds,
    timesteps: Vec<usize>,
}

impl AnalyticDpm {
    /// A sampler over `num_steps` evenly spaced timesteps (64 in the paper's setting); `gamma` must
    /// cover them.
    pub fn new(
        schedule: NoiseSchedule,
        prediction: Prediction,
        gamma: GammaTable,
        kind: AnalyticKind,
        bounds: AnalyticBounds,
        num_steps: usize,
    ) -> Result<Self> {
        if let AnalyticKind::Ddim { eta } = kind {
            if !(eta.is_finite() && eta >= 0.0) {
                return Err(config_err(
                    "eta",
                    format!("must be finite and >= 0, got {eta}"),
                ));
            }
        }
        if gamma.timesteps.len() != gamma.values.len() {
            return Err(config_err("gamma", "timesteps and values differ in length"));
        }
        let mut s = Self {
            schedule,
            prediction,
            gamma,
            kind,
            bounds,
            timesteps: Vec::new(),
        };
        s.set_timesteps(num_steps)?;
        Ok(s)
    }

    /// `(lambda^2, extra variance)` of the step at `index`.
    pub fn variances(&self, index: usize) -> Result<(f64, f64)> {
        let t = self.timesteps[index];
        let s = next_timestep(&self.timesteps, index);
        let ab_t = self.schedule.alpha_bar(t as i64);
        let ab_s = self.schedule.alpha_bar(s);
        if s < 0 {
            return Ok((0.0, 0.0));
        }
        let (bb_t, bb_s) = (1.0 - ab_t, 1.0 - ab_s);
        let beta_tilde = skip_posterior_variance(ab_t, ab_s);
        let lambda2 = match self.kind {
            AnalyticKind::Ddpm => beta_tilde,
            AnalyticKind::Ddim { eta } => eta * eta * beta_tilde,
        };
        let gamma = self.gamma.get(t)?;
        let mut var_x0 = bb_t / ab_t * (1.0 - gamma).clamp(0.0, 1.0);
        if let Some(h) = self.bounds.data_half_range {
            var_x0 = var_x0.min(h * h);
        }
        let coeff = (ab_s.sqrt() - ((bb_s - lambda2).max(0.0) * ab_t / bb_t).sqrt()).powi(2);
        let mut extra = coeff * var_x0;
        if let Some(m) = self.bounds.last_step_sigma_max {
            if index + 2 == self.timesteps.len() && lambda2 + extra > m * m {
                // As the reference code: the total variance is clipped, the mean keeps lambda^2.
                extra = m * m - lambda2;
            }
        }
        Ok((lambda2, extra))
    }
}

impl Sampler for AnalyticDpm {
    fn set_timesteps(&mut self, num_steps: usize) -> Result<()> {
        let ts = spaced_timesteps(self.schedule.num_timesteps(), num_steps)?;
        // Every step except the final x0 step needs Gamma at its starting timestep.
        for t in &ts[..ts.len() - 1] {
            self.gamma.get(*t)?;
        }
        self.timesteps = ts;
        Ok(())
    }

    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&self, out: &Tensor, index: usize, x_t: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let t = self.timesteps[index];
        let s = next_timestep(&self.timesteps, index);
        let (lambda2, extra) = self.variances(index)?;
        family_step(
            self.prediction,
            &self.schedule,
            out,
            x_t,
            t,
            s,
            lambda2,
            extra,
            rng,
        )
    }

    fn name(&self) -> &'static str {
        "analytic-dpm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;

    fn table(s: &NoiseSchedule, g: f64) -> GammaTable {
        GammaTable {
            timesteps: (0..s.num_timesteps()).collect(),
            values: vec![g; s.num_timesteps()],
            samples: 1,
        }
    }

    #[test]
    fn variance_bounds_of_theorem_2() {
        let s = NoiseSchedule::new(BetaSchedule::Linear, 1000).unwrap();
        for kind in [AnalyticKind::Ddpm, AnalyticKind::Ddim { eta: 0.0 }] {
            // Gamma = 1 (perfect eps predictor for deterministic data): sigma^2 = lambda^2.
            let a = AnalyticDpm::new(
                s.clone(),
                Prediction::X0,
                table(&s, 1.0),
                kind,
                AnalyticBounds::default(),
                64,
            )
            .unwrap();
            for i in 0..63 {
                let (_, extra) = a.variances(i).unwrap();
                assert!(extra.abs() < 1e-15);
            }
            // Gamma = 0 or below: the upper bound (sqrt(bb_t / a_{s|t}) - sqrt(bb_s - lambda^2))^2.
            let b = AnalyticDpm::new(
                s.clone(),
                Prediction::X0,
                table(&s, -0.5),
                kind,
                AnalyticBounds::default(),
                64,
            )
            .unwrap();
            for i in 0..63 {
                let t = b.timesteps()[i];
                let sn = b.timesteps()[i + 1];
                let (ab_t, ab_s) = (s.alpha_bar(t as i64), s.alpha_bar(sn as i64));
                let (l2, extra) = b.variances(i).unwrap();
                let upper = ((1.0 - ab_t) / (ab_t / ab_s)).sqrt() - (1.0 - ab_s - l2).sqrt();
                assert!(
                    (l2 + extra - (l2 + upper * upper)).abs() < 1e-9 * (1.0 + upper * upper),
                    "{i}"
                );
            }
        }
        // DDPM form equals lambda^2 + ab_s beta_skip^2 / bb_t^2 Var (Bao et al.'s reverse_ddpm).
        let a = AnalyticDpm::new(
            s.clone(),
            Prediction::X0,
            table(&s, 0.3),
            AnalyticKind::Ddpm,
            AnalyticBounds::default(),
            64,
        )
        .unwrap();
        let (t, sn) = (a.timesteps()[5], a.timesteps()[6]);
        let (ab_t, ab_s) = (s.alpha_bar(t as i64), s.alpha_bar(sn as i64));
        let bskip = 1.0 - ab_t / ab_s;
        let var = ((1.0 - ab_t) / ab_t * 0.7).min(1e9);
        let want = ab_s * bskip * bskip / (1.0 - ab_t).powi(2) * var;
        assert!((a.variances(5).unwrap().1 - want).abs() < 1e-12 * want.max(1.0));
        // Bounded data and the last-step clip.
        let c = AnalyticDpm::new(
            s.clone(),
            Prediction::X0,
            table(&s, 0.0),
            AnalyticKind::Ddpm,
            AnalyticBounds {
                data_half_range: Some(1.0),
                last_step_sigma_max: Some(1e-3),
            },
            64,
        )
        .unwrap();
        let (l2, e) = c.variances(62).unwrap();
        assert!((l2 + e - 1e-6).abs() < 1e-18);
        // Missing statistics are a typed error, not a panic.
        let partial = GammaTable {
            timesteps: vec![0, 1],
            values: vec![0.5, 0.5],
            samples: 3,
        };
        assert!(matches!(
            AnalyticDpm::new(
                s,
                Prediction::X0,
                partial,
                AnalyticKind::Ddpm,
                AnalyticBounds::default(),
                64
            ),
            Err(Error::Sampler(_))
        ));
    }
}
