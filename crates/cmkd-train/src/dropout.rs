//! Dropout with a seeded mask.

use candle_core::Tensor;
use rand::rngs::StdRng;

use crate::{rng, Error, Result};

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the rest by
/// `1 / (1 - p)`; in evaluation, the identity. The mask comes from `rng`, so runs are reproducible.
pub fn dropout(x: &Tensor, p: f64, rng: &mut StdRng, train: bool) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Config {
            name: "dropout p",
            reason: format!("must be in [0, 1), got {p}"),
        });
    }
    if !train || p == 0.0 {
        return Ok(x.clone());
    }
    let mask = rng::bernoulli(rng, 1.0 - p, x.shape().clone(), x.dtype(), x.device())?;
    // Scaling the 0/1 mask rather than the product gives the same values with one graph node fewer.
    Ok((x * mask.affine(1.0 / (1.0 - p), 0.0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn keeps_expectation_and_is_identity_in_eval() {
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut g = rng::stream(0, "d");
        let y = dropout(&x, 0.2, &mut g, true)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        assert!((mean - 1.0).abs() < 0.03);
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6));
        let z = dropout(&x, 0.2, &mut g, false)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(z.iter().all(|v| *v == 1.0));
        assert!(dropout(&x, 1.0, &mut g, true).is_err());
    }
}
