//! What the network predicts (x0, eps or v) and the conversions between them.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The quantity the denoiser outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The clean embedding `x_0` (DALLE2-pytorch's `predict_x_start`, the published setting).
    #[default]
    X0,
    /// The added noise `eps`.
    Eps,
    /// The velocity `v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0` (Salimans and Ho 2022).
    V,
}

impl Prediction {
    /// `(x0_hat, eps_hat)` from the network output at a timestep with cumulative alpha `alpha_bar`,
    /// given the noisy input `x_t`. The same `alpha_bar` applies to every row.
    pub fn to_x0_eps(self, out: &Tensor, x_t: &Tensor, alpha_bar: f64) -> Result<(Tensor, Tensor)> {
        let a = alpha_bar.sqrt();
        let s = (1.0 - alpha_bar).sqrt();
        Ok(match self {
            Prediction::X0 => {
                let eps = ((x_t - out.affine(a, 0.0)?)? / s)?;
                (out.clone(), eps)
            }
            Prediction::Eps => {
                let x0 = ((x_t - out.affine(s, 0.0)?)? / a)?;
                (x0, out.clone())
            }
            Prediction::V => {
                let x0 = (x_t.affine(a, 0.0)? - out.affine(s, 0.0)?)?;
                let eps = (x_t.affine(s, 0.0)? + out.affine(a, 0.0)?)?;
                (x0, eps)
            }
        })
    }

    /// `x0_hat` from the output with per-row coefficients `sqrt(alpha_bar)` and `sqrt(1 - alpha_bar)`
    /// given as `(b, 1)` tensors (training, where every row has its own timestep).
    pub fn x0_from_output(
        self,
        out: &Tensor,
        x_t: &Tensor,
        sqrt_ab: &Tensor,
        sqrt_1m_ab: &Tensor,
    ) -> Result<Tensor> {
        Ok(match self {
            Prediction::X0 => out.clone(),
            Prediction::Eps => (x_t - out.broadcast_mul(sqrt_1m_ab)?)?.broadcast_div(sqrt_ab)?,
            Prediction::V => (x_t.broadcast_mul(sqrt_ab)? - out.broadcast_mul(sqrt_1m_ab)?)?,
        })
    }

    /// The regression target for this prediction type given `x_0` and the noise.
    pub fn target(
        self,
        x0: &Tensor,
        noise: &Tensor,
        sqrt_ab: &Tensor,
        sqrt_1m_ab: &Tensor,
    ) -> Result<Tensor> {
        Ok(match self {
            Prediction::X0 => x0.clone(),
            Prediction::Eps => noise.clone(),
            Prediction::V => (noise.broadcast_mul(sqrt_ab)? - x0.broadcast_mul(sqrt_1m_ab)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn conversions_round_trip() {
        let dev = Device::Cpu;
        let mut rng = cmkd_train::rng::stream(0, "p");
        let x0 = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (3, 5), DType::F64, &dev).unwrap();
        let eps = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (3, 5), DType::F64, &dev).unwrap();
        let ab = 0.37f64;
        let xt = (x0.affine(ab.sqrt(), 0.0).unwrap() + eps.affine((1.0 - ab).sqrt(), 0.0).unwrap())
            .unwrap();
        let sa = Tensor::full(ab.sqrt(), (3, 1), &dev).unwrap();
        let ss = Tensor::full((1.0 - ab).sqrt(), (3, 1), &dev).unwrap();
        for p in [Prediction::X0, Prediction::Eps, Prediction::V] {
            let out = p.target(&x0, &eps, &sa, &ss).unwrap();
            let (x0h, epsh) = p.to_x0_eps(&out, &xt, ab).unwrap();
            let d0 = (x0h - &x0).unwrap().abs().unwrap().max_all().unwrap();
            let de = (epsh - &eps).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d0.to_scalar::<f64>().unwrap() < 1e-12, "{p:?}");
            assert!(de.to_scalar::<f64>().unwrap() < 1e-12, "{p:?}");
            let x0b = p.x0_from_output(&out, &xt, &sa, &ss).unwrap();
            let d = (x0b - &x0).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f64>().unwrap() < 1e-12, "{p:?}");
        }
    }
}
