//! 2D batch normalisation that trains.
//!
//! Written with composed tensor ops so that it carries a gradient in both modes. In training mode it
//! normalises with the batch statistics and updates the running statistics in place (momentum 0.1,
//! unbiased variance, as PyTorch), so a saved model holds the updated statistics; in evaluation mode
//! it uses the running statistics, which never receive a gradient.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::channel::broadcast_channels;
use crate::Result;

/// Names of batch-norm buffers: statistics, not parameters, so never optimised.
pub const BUFFER_SUFFIXES: [&str; 2] = ["running_mean", "running_var"];

/// True if `name` is a batch-norm running statistic.
pub fn is_buffer(name: &str) -> bool {
    BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `BatchNorm2d` with PyTorch's names (`weight`, `bias`, `running_mean`, `running_var`).
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// Builds a batch norm over `channels` under `vb` (gain 1, bias 0, statistics 0 and 1).
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        use candle_nn::Init::Const;
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Const(0.0))?,
            running_mean: vb.get_with_hints(channels, "running_mean", Const(0.0))?,
            running_var: vb.get_with_hints(channels, "running_var", Const(1.0))?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Normalises `(batch, channels, h, w)`; `train` selects batch statistics (and updates the
    /// running ones) or running statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let shape = (1, c, 1, 1);
        // Every per-channel broadcast goes through `broadcast_channels`: the same values, with
        // a gradient that sums each channel directly instead of through Candle's general
        // reduction (see the `channel` module).
        let full = x.shape();
        let (mean, var) = if train {
            let work = x.to_dtype(DType::F32)?;
            let mean = work.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
            let centered = work.sub(&broadcast_channels(&mean, full)?)?;
            let var = centered
                .sqr()?
                .mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?;
            let n = x.elem_count() / c;
            self.update_running(&mean.detach(), &var.detach(), n)?;
            (mean.to_dtype(x.dtype())?, var.to_dtype(x.dtype())?)
        } else {
            (
                self.running_mean.detach().reshape(shape)?,
                self.running_var.detach().reshape(shape)?,
            )
        };
        let scale = self
            .weight
            .reshape(shape)?
            .broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let y = x
            .sub(&broadcast_channels(&mean, full)?)?
            .mul(&broadcast_channels(&scale, full)?)?;
        Ok(y.add(&broadcast_channels(&self.bias, full)?)?)
    }

    fn update_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = if n > 1 {
            (var * (n as f64 / (n as f64 - 1.0)))?
        } else {
            var.clone()
        };
        let dt = self.running_mean.dtype();
        let rm =
            ((self.running_mean.detach() * (1.0 - m))? + (mean.flatten_all()?.to_dtype(dt)? * m)?)?;
        let rv = ((self.running_var.detach() * (1.0 - m))?
            + (unbiased.flatten_all()?.to_dtype(dt)? * m)?)?;
        // In place, so the variables of the model's VarMap (which share this storage) see it.
        self.running_mean.slice_set(&rm, 0, 0)?;
        self.running_var.slice_set(&rv, 0, 0)?;
        Ok(())
    }
}
