//! DDIM (Song et al. 2021) with `eta` and strided timesteps.

use candle_core::Tensor;
use rand::rngs::StdRng;

use crate::error::{config_err, Result};
use crate::prediction::Prediction;
use crate::sampler::{
    family_step, next_timestep, skip_posterior_variance, spaced_timesteps, Sampler,
};
use crate::schedule::NoiseSchedule;

/// DDIM: `eta = 0` is deterministic, `eta = 1` has DDPM's variance.
///
/// Unlike DALLE2-pytorch's `p_sample_loop_ddim`, which uses `alpha_bar_{t-1}` for the current step
/// (an off-by-one fixed upstream in denoising-diffusion-pytorch#81), this uses `alpha_bar_t`.
#[derive(Debug, Clone)]
pub struct Ddim {
    schedule: NoiseSchedule,
    prediction: Prediction,
    eta: f64,
    timesteps: Vec<usize>,
}

impl Ddim {
    /// A DDIM sampler over `num_steps` evenly spaced timesteps.
    pub fn new(
        schedule: NoiseSchedule,
        prediction: Prediction,
        num_steps: usize,
        eta: f64,
    ) -> Result<Self> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(config_err(
                "eta",
                format!("must be finite and >= 0, got {eta}"),
            ));
        }
        let timesteps = spaced_timesteps(schedule.num_timesteps(), num_steps)?;
        Ok(Self {
            schedule,
            prediction,
            eta,
            timesteps,
        })
    }
}

impl Sampler for Ddim {
    fn set_timesteps(&mut self, num_steps: usize) -> Result<()> {
        self.timesteps = spaced_timesteps(self.schedule.num_timesteps(), num_steps)?;
        Ok(())
    }

    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&self, out: &Tensor, index: usize, x_t: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let t = self.timesteps[index];
        let s = next_timestep(&self.timesteps, index);
        let beta_tilde = skip_posterior_variance(
            self.schedule.alpha_bar(t as i64),
            self.schedule.alpha_bar(s),
        );
        let lambda2 = self.eta * self.eta * beta_tilde;
        family_step(
            self.prediction,
            &self.schedule,
            out,
            x_t,
            t,
            s,
            lambda2,
            0.0,
            rng,
        )
    }

    fn name(&self) -> &'static str {
        "ddim"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;
    use candle_core::Device;

    #[test]
    fn eta_zero_is_deterministic_and_eta_one_matches_ddpm() {
        let s = NoiseSchedule::new(BetaSchedule::Linear, 100).unwrap();
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[[0.3f32, -1.0]], &dev).unwrap();
        let xt = Tensor::new(&[[1.3f32, 0.4]], &dev).unwrap();
        let d = Ddim::new(s.clone(), Prediction::X0, 10, 0.0).unwrap();
        let a = d
            .step(&x0, 2, &xt, &mut cmkd_train::rng::stream(1, "a"))
            .unwrap();
        let b = d
            .step(&x0, 2, &xt, &mut cmkd_train::rng::stream(2, "b"))
            .unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        // eta = 1 with the same noise equals strided DDPM.
        let d1 = Ddim::new(s.clone(), Prediction::X0, 10, 1.0).unwrap();
        let mut p = crate::Ddpm::new(s, Prediction::X0);
        p.set_timesteps(10).unwrap();
        let a = d1
            .step(&x0, 2, &xt, &mut cmkd_train::rng::stream(3, "n"))
            .unwrap();
        let b = p
            .step(&x0, 2, &xt, &mut cmkd_train::rng::stream(3, "n"))
            .unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6);
        assert!(Ddim::new(
            NoiseSchedule::new(BetaSchedule::Cosine, 8).unwrap(),
            Prediction::X0,
            4,
            -1.0
        )
        .is_err());
    }
}
