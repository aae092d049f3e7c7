//! Dropout with a seeded mask.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
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
    let scale = 1.0 / (1.0 - p);
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        // One graph node whose backward returns only the input's gradient: Candle's `mul` also
        // computes and accumulates a gradient for the constant mask, three mask-sized buffers
        // per dropout that nothing reads.
        return Ok(x.contiguous()?.apply_op2(
            &mask,
            MaskScale {
                scale: scale as f32,
            },
        )?);
    }
    // Scaling the 0/1 mask rather than the product gives the same values with one graph node fewer.
    Ok((x * mask.affine(scale, 0.0)?)?)
}

/// `x * (mask * scale)` for contiguous f32 tensors of one shape; differentiable in `x` only.
struct MaskScale {
    scale: f32,
}

impl CustomOp2 for MaskScale {
    fn name(&self) -> &'static str {
        "dropout-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = crate::kernel::f32_slice(s1, l1, self.name())?;
        let m = crate::kernel::f32_slice(s2, l2, self.name())?;
        if x.len() != m.len() {
            candle_core::bail!("dropout-mask: input and mask differ in size")
        }
        let y = x.iter().zip(m).map(|(x, m)| x * (m * self.scale)).collect();
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad
            .contiguous()?
            .apply_op2_no_bwd(mask, &MaskScale { scale: self.scale })?;
        Ok((Some(g), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The CPU op gives the values and input gradient of the composed `x * (mask * scale)`.
    #[test]
    fn fused_op_matches_the_composed_form() {
        let x = candle_core::Var::from_tensor(
            &Tensor::new(&[[1.5f32, -2.0, 0.25], [3.0, 0.5, -1.0]], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let w = Tensor::new(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let run = |fused: bool| {
            let mut g = rng::stream(3, "d");
            let y = if fused {
                dropout(x.as_tensor(), 0.4, &mut g, true).unwrap()
            } else {
                let mask =
                    rng::bernoulli(&mut g, 0.6, (2, 3), candle_core::DType::F32, &Device::Cpu)
                        .unwrap();
                (x.as_tensor() * mask.affine(1.0 / 0.6, 0.0).unwrap()).unwrap()
            };
            let grads = (y.sqr().unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (
                y.to_vec2::<f32>().unwrap(),
                grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            )
        };
        assert_eq!(run(true), run(false));
    }

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
