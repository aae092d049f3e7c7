//! DDPM ancestral sampling (Ho et al. 2020), optionally over a strided subsequence of timesteps.

use candle_core::Tensor;
use rand::rngs::StdRng;

use crate::error::Result;
use crate::prediction::Prediction;
use crate::sampler::{
    family_step, next_timestep, skip_posterior_variance, spaced_timesteps, Sampler,
};
use crate::schedule::NoiseSchedule;

/// Ancestral sampling with the fixed posterior variance (DALLE2-pytorch's `p_sample_loop` when the
/// number of sampling steps equals the training steps). With fewer steps, each step uses the
/// posterior of the skip (as diffusers' UnCLIP scheduler does).
#[derive(Debug, Clone)]
pub struct Ddpm {
    schedule: NoiseSchedule,
    prediction: Prediction,
    timesteps: Vec<usize>,
}

impl Ddpm {
    /// A sampler visiting every training timestep.
    pub fn new(schedule: NoiseSchedule, prediction: Prediction) -> Self {
        let timesteps = (0..schedule.num_timesteps()).rev().collect();
        Self {
            schedule,
            prediction,
            timesteps,
        }
    }
}

impl Sampler for Ddpm {
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
        let lambda2 = skip_posterior_variance(
            self.schedule.alpha_bar(t as i64),
            self.schedule.alpha_bar(s),
        );
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
        "ddpm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;
    use candle_core::{DType, Device};

    #[test]
    fn full_chain_step_matches_posterior_formula() {
        // With every timestep, a DDPM step is the textbook posterior mean plus beta_tilde noise.
        let s = NoiseSchedule::new(BetaSchedule::Cosine, 10).unwrap();
        let d = Ddpm::new(s.clone(), Prediction::X0);
        let dev = Device::Cpu;
        let x0 = Tensor::full(0.5f64, (4000, 1), &dev).unwrap();
        let xt = Tensor::full(-0.2f64, (4000, 1), &dev).unwrap();
        let mut rng = cmkd_train::rng::stream(0, "ddpm");
        let idx = 3; // t = 6
        let t = d.timesteps()[idx];
        let out = d.step(&x0, idx, &xt, &mut rng).unwrap();
        let v: Vec<f64> = out.flatten_all().unwrap().to_vec1().unwrap();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
        let (c0, ct) = s.posterior_mean_coefs(t);
        assert!(
            (m - (c0 * 0.5 - ct * 0.2)).abs()
                < 3.0 * (s.posterior_variance()[t] / 4000.0).sqrt() + 1e-9
        );
        assert!((var / s.posterior_variance()[t] - 1.0).abs() < 0.1);
        // The last step returns x0_hat exactly.
        let last = d.step(&x0, 9, &xt, &mut rng).unwrap();
        assert_eq!(
            last.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()[0],
            0.5
        );
    }
}
