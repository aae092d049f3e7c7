//! Non-overlapping patch embedding.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::{Error, Result};

/// A `Conv2d(channels, dim, kernel=patch, stride=patch)` computed as one matrix product over
/// flattened patches (weights keep the convolution's `(dim, channels, patch, patch)` layout, so
/// upstream checkpoints load unchanged). Trailing pixels that do not fill a patch are dropped, as
/// the strided convolution does.
pub struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
    patch: usize,
    channels: usize,
    dim: usize,
}

impl PatchEmbed {
    /// Builds `weight` and `bias` under `vb`.
    pub fn new(channels: usize, dim: usize, patch: usize, vb: VarBuilder) -> Result<Self> {
        let fan_in = (channels * patch * patch) as f64;
        let b = 1.0 / fan_in.sqrt();
        let weight = vb.get_with_hints(
            (dim, channels, patch, patch),
            "weight",
            candle_nn::Init::Uniform { lo: -b, up: b },
        )?;
        let bias = vb.get_with_hints(dim, "bias", candle_nn::Init::Uniform { lo: -b, up: b })?;
        Ok(Self {
            weight,
            bias,
            patch,
            channels,
            dim,
        })
    }

    /// Patch grid `(rows, cols)` for an image of `(h, w)` pixels.
    pub fn grid(&self, h: usize, w: usize) -> (usize, usize) {
        (h / self.patch, w / self.patch)
    }

    /// `(batch, channels, h, w)` to `(batch, rows * cols, dim)` tokens, row-major over the grid.
    pub fn forward(&self, x: &Tensor, model: &'static str) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(Error::Input(format!(
                "{model} takes (batch, channels, h, w), got {:?}",
                x.dims()
            )));
        }
        let (b, c, h, w) = x.dims4()?;
        if c != self.channels {
            return Err(Error::Channels {
                model,
                expected: self.channels,
                found: c,
            });
        }
        let (gh, gw) = self.grid(h, w);
        if gh == 0 || gw == 0 {
            return Err(Error::Input(format!(
                "{model}: a {h}x{w} image is smaller than one {p}x{p} patch",
                p = self.patch
            )));
        }
        let p = self.patch;
        let x = x.narrow(2, 0, gh * p)?.narrow(3, 0, gw * p)?;
        let patches = x
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b * gh * gw, c * p * p))?;
        let w = self.weight.reshape((self.dim, c * p * p))?;
        let y = patches.matmul(&w.t()?)?.broadcast_add(&self.bias)?;
        Ok(y.reshape((b, gh * gw, self.dim))?)
    }
}
