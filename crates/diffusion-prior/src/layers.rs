//! Small building blocks with PyTorch's initialisation and names.

use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use cmkd_train::LayerNorm;

use crate::dense::Dense;
use crate::error::Result;
use crate::fused;

/// `nn.Linear(fan_in, fan_out, bias)` with PyTorch's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub(crate) fn linear(fan_in: usize, fan_out: usize, bias: bool, vb: VarBuilder) -> Result<Dense> {
    let b = 1.0 / (fan_in as f64).sqrt();
    let init = Init::Uniform { lo: -b, up: b };
    let w = vb.get_with_hints((fan_out, fan_in), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(fan_out, "bias", init)?)
    } else {
        None
    };
    Ok(Dense::new(w, bias))
}

/// DALLE2-pytorch's gain-only `LayerNorm` (parameter `g`, eps 1e-5, biased variance): one fused
/// op on the CPU (see [`crate::fused`]), `cmkd_train`'s composed LayerNorm elsewhere and for the
/// "stable" variant.
#[derive(Debug, Clone)]
pub(crate) struct GainNorm {
    g: Tensor,
    stable: bool,
    composed: LayerNorm,
}

const GAIN_NORM_EPS: f64 = 1e-5;

impl Module for GainNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !self.stable && fused::fusable(x) {
            fused::gain_norm(x, &self.g, GAIN_NORM_EPS)
        } else {
            self.composed.forward(x)
        }
    }
}

/// A [`GainNorm`] over `dim` features with its gain `g` (init 1) under `vb`.
pub(crate) fn gain_norm(dim: usize, stable: bool, vb: VarBuilder) -> Result<GainNorm> {
    let g = vb.get_with_hints(dim, "g", Init::Const(1.0))?;
    Ok(GainNorm {
        composed: LayerNorm::new(Some(g.clone()), None, GAIN_NORM_EPS).with_stable(stable),
        g,
        stable,
    })
}

/// `nn.LayerNorm(dim)` with weight and bias.
pub(crate) fn affine_norm(dim: usize, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(cmkd_train::layer_norm(
        dim,
        cmkd_train::LayerNormConfig::default(),
        vb,
    )?)
}

/// A learned parameter drawn from N(0, 1) (`nn.Parameter(torch.randn(...))`).
pub(crate) fn randn_param(shape: &[usize], name: &str, vb: &VarBuilder) -> Result<Tensor> {
    Ok(vb.get_with_hints(
        shape,
        name,
        Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        },
    )?)
}

/// `F.normalize(x, dim=-1)`: `x / max(||x||, 1e-12)`.
pub(crate) fn l2norm(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(candle_core::D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&n)?)
}

/// Applies a module and maps its error.
pub(crate) fn apply<M: Module>(m: &M, x: &Tensor) -> Result<Tensor> {
    Ok(m.forward(x)?)
}
