//! Layer normalisation that carries a gradient.
//!
//! `candle_nn::LayerNorm::forward` and `candle_nn::ops::layer_norm` take a fused kernel with no
//! backward, which silently stops training of everything below the norm. This version is composed of
//! differentiable tensor ops.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;

use crate::Result;

/// Options of a [`LayerNorm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Learn a per-feature gain (`weight`).
    pub affine: bool,
    /// Learn a per-feature bias (`bias`); ignored unless `affine`.
    pub bias: bool,
    /// Divide the input by its (detached) maximum over the last dimension first, as DALLE2-pytorch's
    /// "stable" LayerNorm does; this changes nothing mathematically but avoids overflow in half precision.
    pub stable: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            affine: true,
            bias: true,
            stable: false,
        }
    }
}

/// Normalises the last dimension to zero mean and unit (biased) variance, then applies an optional
/// gain and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
    stable: bool,
}

impl LayerNorm {
    /// From explicit tensors (loaded or created by the caller under any names).
    pub fn new(weight: Option<Tensor>, bias: Option<Tensor>, eps: f64) -> Self {
        Self {
            weight,
            bias,
            eps,
            stable: false,
        }
    }

    /// Turns the "stable" pre-scaling on or off.
    pub fn with_stable(mut self, stable: bool) -> Self {
        self.stable = stable;
        self
    }

    /// The gain, if any.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

/// Builds a [`LayerNorm`] over `dim` features with PyTorch names `weight` (init 1) and `bias`
/// (init 0) under `vb`.
pub fn layer_norm(dim: usize, config: LayerNormConfig, vb: VarBuilder) -> Result<LayerNorm> {
    let weight = if config.affine {
        Some(vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?)
    } else {
        None
    };
    let bias = if config.affine && config.bias {
        Some(vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?)
    } else {
        None
    };
    Ok(LayerNorm {
        weight,
        bias,
        eps: config.eps,
        stable: config.stable,
    })
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let in_dtype = x.dtype();
        // Statistics in f32 at least, as PyTorch does for half-precision inputs.
        let work = match in_dtype {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        let mut x = x.to_dtype(work)?;
        if self.stable {
            let m = x.max_keepdim(D::Minus1)?.detach();
            x = x.broadcast_div(&m)?;
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let mut y = xc
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(in_dtype)?;
        if let Some(w) = &self.weight {
            y = y.broadcast_mul(w)?;
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_fused_forward_and_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(
            &Tensor::new(&[[1.0f32, 2.0, 4.0, 7.0], [-3.0, 0.5, 0.0, 2.0]], &dev).unwrap(),
        )
        .unwrap();
        let w = Var::from_tensor(&Tensor::new(&[1.0f32, 0.5, 2.0, -1.0], &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.1f32, 0.2, 0.3, 0.4], &dev).unwrap()).unwrap();
        let ln = LayerNorm::new(
            Some(w.as_tensor().clone()),
            Some(b.as_tensor().clone()),
            1e-5,
        );
        let y = ln.forward(x.as_tensor()).unwrap();
        let fused =
            candle_nn::ops::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let diff = (&y - &fused)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        // A loss that depends on the normalised values non-trivially.
        let loss = (y.sqr().unwrap()
            * Tensor::new(&[[1.0f32, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]], &dev).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
        let g = loss.backward().unwrap();
        for v in [&x, &w, &b] {
            let gv = g.get(v.as_tensor()).expect("gradient missing");
            let n = gv
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n.is_finite() && n > 0.0);
        }
    }

    #[test]
    fn stable_variant_is_the_same_function() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f32, 2.0, 4.0, 7.0]], &dev).unwrap();
        let a = LayerNorm::new(None, None, 0.0).forward(&x).unwrap();
        let b = LayerNorm::new(None, None, 0.0)
            .with_stable(true)
            .forward(&x)
            .unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5);
    }
}
