//! The [`Sampler`] trait (set the timesteps, step from the model's prediction) and what the three
//! samplers share: timestep spacing and the DDIM-type reverse step of Bao et al.
//!
//! Every sampler here is a member of one family (Song et al. 2021; Bao et al. 2022, eq. 5): for a
//! step from timestep `t` to an earlier `s` (or to the clean data, `s = -1`),
//!
//! ```text
//! x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - lambda^2) eps_hat + sigma z,   sigma^2 = lambda^2 + extra
//! ```
//!
//! DDPM takes `lambda^2` = the posterior variance of the skip, DDIM `eta^2` times it, and
//! Analytic-DPM adds the optimal `extra` variance estimated from data.

use candle_core::Tensor;
use rand::rngs::StdRng;

use crate::error::{config_err, Result};
use crate::prediction::Prediction;
use crate::schedule::NoiseSchedule;

/// A reverse-diffusion sampler in the style of diffusers' schedulers.
pub trait Sampler {
    /// Chooses `num_steps` timesteps of the training schedule to visit (in descending order).
    fn set_timesteps(&mut self, num_steps: usize) -> Result<()>;

    /// The timesteps the sampler visits, first (noisiest) to last.
    fn timesteps(&self) -> &[usize];

    /// One reverse step: from `x_t` at `self.timesteps()[index]` and the model's output there, the
    /// sample at the next timestep (or the clean estimate after the last one). `rng` supplies noise.
    fn step(
        &self,
        model_output: &Tensor,
        index: usize,
        x_t: &Tensor,
        rng: &mut StdRng,
    ) -> Result<Tensor>;

    /// A short name for logs and benchmarks.
    fn name(&self) -> &'static str;
}

/// `num_steps` timesteps evenly spaced over `0..=T-1`, rounded, including both ends, descending:
/// `round(k (T - 1) / (K - 1))`. This is Analytic-DPM's "linear" trajectory (1-based there) and
/// diffusers' UnCLIP spacing; with `K = T` it visits every timestep (plain DDPM).
pub fn spaced_timesteps(num_train: usize, num_steps: usize) -> Result<Vec<usize>> {
    if num_steps == 0 || num_steps > num_train {
        return Err(config_err(
            "num_steps",
            format!("must be in 1..={num_train}, got {num_steps}"),
        ));
    }
    let mut v: Vec<usize> = if num_steps == 1 {
        vec![num_train - 1]
    } else {
        (0..num_steps)
            .map(|k| (k as f64 * (num_train - 1) as f64 / (num_steps - 1) as f64).round() as usize)
            .collect()
    };
    v.dedup();
    v.reverse();
    Ok(v)
}

/// The timestep after `timesteps[index]` (`-1` after the last one: the clean data).
pub(crate) fn next_timestep(timesteps: &[usize], index: usize) -> i64 {
    timesteps.get(index + 1).map_or(-1, |t| *t as i64)
}

/// Variance of `q(x_s | x_t, x_0)` for a skip from `t` to `s < t`:
/// `(1 - ab_t / ab_s) (1 - ab_s) / (1 - ab_t)`.
pub(crate) fn skip_posterior_variance(ab_t: f64, ab_s: f64) -> f64 {
    (1.0 - ab_t / ab_s) * (1.0 - ab_s) / (1.0 - ab_t)
}

/// The shared reverse step. `lambda2` and `extra_var` as in the module documentation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn family_step(
    prediction: Prediction,
    schedule: &NoiseSchedule,
    model_output: &Tensor,
    x_t: &Tensor,
    t: usize,
    s: i64,
    lambda2: f64,
    extra_var: f64,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let ab_t = schedule.alpha_bar(t as i64);
    let ab_s = schedule.alpha_bar(s);
    let (x0, eps) = prediction.to_x0_eps(model_output, x_t, ab_t)?;
    let dir = (1.0 - ab_s - lambda2).max(0.0).sqrt();
    let mean = (x0.affine(ab_s.sqrt(), 0.0)? + eps.affine(dir, 0.0)?)?;
    let var = lambda2 + extra_var;
    if s < 0 || var <= 0.0 {
        return Ok(mean);
    }
    let z = cmkd_train::rng::randn(rng, 0.0, 1.0, x_t.shape(), x_t.dtype(), x_t.device())?;
    Ok((mean + z.affine(var.sqrt(), 0.0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing() {
        assert_eq!(spaced_timesteps(5, 5).unwrap(), vec![4, 3, 2, 1, 0]);
        let v = spaced_timesteps(1000, 64).unwrap();
        assert_eq!(v.len(), 64);
        assert_eq!((v[0], v[1], v[62], v[63]), (999, 983, 16, 0));
        assert_eq!(spaced_timesteps(64, 1).unwrap(), vec![63]);
        assert!(spaced_timesteps(10, 11).is_err());
        assert!(spaced_timesteps(10, 0).is_err());
    }
}
