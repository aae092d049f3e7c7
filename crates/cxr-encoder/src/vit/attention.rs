//! Multi-head self-attention.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};

use crate::Result;

use super::block::Naming;

enum Projection {
    /// timm: one `qkv` linear, split after the product.
    Fused(Linear),
    /// transformers: separate `query`, `key`, `value` linears.
    Separate { q: Linear, k: Linear, v: Linear },
}

/// Multi-head self-attention with a softmax that carries a gradient.
pub struct Attention {
    projection: Projection,
    out: Linear,
    heads: usize,
    dim: usize,
}

fn linear(i: usize, o: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    Ok(if bias {
        candle_nn::linear(i, o, vb)?
    } else {
        candle_nn::linear_no_bias(i, o, vb)?
    })
}

impl Attention {
    /// Builds the attention of width `dim` with `heads` heads, named after `naming`.
    pub fn new(
        dim: usize,
        heads: usize,
        qkv_bias: bool,
        naming: Naming,
        vb: VarBuilder,
    ) -> Result<Self> {
        if heads == 0 || dim % heads != 0 {
            return Err(crate::Error::config(
                "heads",
                format!("width {dim} is not divisible by {heads} heads"),
            ));
        }
        let (projection, out) = match naming {
            Naming::Transformers => {
                let a = vb.pp("attention");
                let proj = Projection::Separate {
                    q: linear(dim, dim, qkv_bias, a.pp("attention.query"))?,
                    k: linear(dim, dim, qkv_bias, a.pp("attention.key"))?,
                    v: linear(dim, dim, qkv_bias, a.pp("attention.value"))?,
                };
                (proj, candle_nn::linear(dim, dim, a.pp("output.dense"))?)
            }
            Naming::Timm => {
                let a = vb.pp("attn");
                let proj = Projection::Fused(linear(dim, 3 * dim, qkv_bias, a.pp("qkv"))?);
                (proj, candle_nn::linear(dim, dim, a.pp("proj"))?)
            }
        };
        Ok(Self {
            projection,
            out,
            heads,
            dim,
        })
    }

    /// Attends over `x` of shape `(batch, tokens, dim)`. `mask`, if given, is added to the attention
    /// logits and must broadcast to `(batch, heads, tokens, tokens)`; see [`attention_mask`].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let (q, k, v) = match &self.projection {
            Projection::Fused(qkv) => {
                let t = qkv.forward(x)?;
                (
                    t.narrow(D::Minus1, 0, self.dim)?,
                    t.narrow(D::Minus1, self.dim, self.dim)?,
                    t.narrow(D::Minus1, 2 * self.dim, self.dim)?,
                )
            }
            Projection::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
        };
        let hd = self.dim / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let mut att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, n, self.dim))?;
        Ok(self.out.forward(&y)?)
    }
}

/// An additive key mask of shape `(batch, 1, 1, tokens)` from per-sample valid lengths: 0 for the
/// first `lengths[b]` tokens of sample `b`, a large negative number for the rest, so padded tokens
/// get exactly zero attention weight (in f32) from every query.
pub fn attention_mask(
    lengths: &[usize],
    tokens: usize,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let neg = match dtype {
        DType::F16 | DType::BF16 => -1e4f32,
        _ => -1e9f32,
    };
    let mut data = Vec::with_capacity(lengths.len() * tokens);
    for &len in lengths {
        if len == 0 || len > tokens {
            return Err(crate::Error::Input(format!(
                "a sample has {len} valid tokens out of {tokens}"
            )));
        }
        data.extend((0..tokens).map(|i| if i < len { 0.0 } else { neg }));
    }
    Ok(Tensor::from_vec(data, (lengths.len(), 1, 1, tokens), device)?.to_dtype(dtype)?)
}
