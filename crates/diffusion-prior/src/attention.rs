//! Causal self-attention: DALLE2-pytorch's multi-query cosine-similarity attention and a standard
//! multi-head attention.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use crate::dense::Dense;
use cmkd_train::LayerNorm;
use rand::rngs::StdRng;

use crate::error::Result;
use crate::layers::{affine_norm, apply, gain_norm, l2norm, linear, randn_param, GainNorm};
use crate::position::Rotary;

/// Keys and values of the null slot and of earlier tokens, `(b or 1, 1 + p, dh)` each; keys are
/// already rotated, cosine-normalised and scaled.
#[derive(Debug, Clone)]
pub(crate) struct CachedKv {
    pub k: Tensor,
    pub v: Tensor,
}

/// `Attention` of DALLE2-pytorch (causal, with a learned null key/value).
#[derive(Debug, Clone)]
pub(crate) struct MultiQueryAttention {
    norm: GainNorm,
    to_q: Dense,
    to_kv: Dense,
    null_kv: Tensor,
    to_out: Dense,
    out_norm: GainNorm,
    heads: usize,
    dim_head: usize,
    scale: f64,
    dropout: f64,
}

impl MultiQueryAttention {
    pub fn new(
        dim: usize,
        heads: usize,
        dim_head: usize,
        scale: f64,
        dropout: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm: gain_norm(dim, false, vb.pp("norm"))?,
            to_q: linear(dim, heads * dim_head, false, vb.pp("to_q"))?,
            to_kv: linear(dim, 2 * dim_head, false, vb.pp("to_kv"))?,
            null_kv: randn_param(&[2, dim_head], "null_kv", &vb)?,
            to_out: linear(heads * dim_head, dim, false, vb.pp("to_out.0"))?,
            out_norm: gain_norm(dim, false, vb.pp("to_out.1"))?,
            heads,
            dim_head,
            scale,
            dropout,
        })
    }

    /// The learned null key (cosine-normalised and scaled) and value, `(1, 1, dh)` each.
    fn null_slot(&self) -> Result<CachedKv> {
        let dh = self.dim_head;
        let nk = self.null_kv.narrow(0, 0, 1)?.reshape((1, 1, dh))?;
        Ok(CachedKv {
            k: (l2norm(&nk)? * self.scale.sqrt())?,
            v: self.null_kv.narrow(0, 1, 1)?.reshape((1, 1, dh))?,
        })
    }

    /// `x`: `(b, n, dim)` tokens at positions `offset..offset+n`, attending to the null slot, the
    /// `past` keys/values (tokens `0..offset`, computed by an earlier call) and themselves.
    /// `bias`: `(H, n, 1 + offset + n)` with the causal mask folded in. Returns the output and the
    /// keys/values of everything attended to (null, past, these tokens), for later segments.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        rotary: Option<&Rotary>,
        past: Option<&CachedKv>,
        offset: usize,
        rng: Option<&mut StdRng>,
    ) -> Result<(Tensor, CachedKv)> {
        let (b, n, _) = x.dims3()?;
        let (h, dh) = (self.heads, self.dim_head);
        let xn = apply(&self.norm, x)?;
        let mut q = apply(&self.to_q, &xn)?
            .reshape((b, n, h, dh))?
            .transpose(1, 2)?;
        let kv = apply(&self.to_kv, &xn)?;
        let mut k = kv.narrow(D::Minus1, 0, dh)?;
        let v = kv.narrow(D::Minus1, dh, dh)?;
        if let Some(r) = rotary {
            q = r.apply_at(&q.contiguous()?, offset)?;
            k = r.apply_at(&k.contiguous()?, offset)?;
        }
        // DALLE2-pytorch scales q by `scale` before normalising (a no-op under cosine similarity),
        // then multiplies both by sqrt(scale): logits are scale * cos.
        let q = (l2norm(&q)? * self.scale.sqrt())?;
        let k = (l2norm(&k)? * self.scale.sqrt())?;
        let null;
        let past = match past {
            Some(p) => p,
            None => {
                null = self.null_slot()?;
                &null
            }
        };
        let pb = past.k.dim(0)?;
        let pn = past.k.dim(1)?;
        let (pk, pv) = if pb == b {
            (past.k.clone(), past.v.clone())
        } else {
            (
                past.k.broadcast_as((b, pn, dh))?,
                past.v.broadcast_as((b, pn, dh))?,
            )
        };
        let k = Tensor::cat(&[&pk, &k], 1)?;
        let v = Tensor::cat(&[&pv, &v.contiguous()?], 1)?;
        let keys = pn + n;
        let sim = q
            .contiguous()?
            .reshape((b, h * n, dh))?
            .matmul(&k.t()?)?
            .reshape((b, h, n, keys))?
            .broadcast_add(&bias.unsqueeze(0)?)?;
        let mut attn = candle_nn::ops::softmax(&sim, D::Minus1)?;
        if let Some(rng) = rng {
            attn = cmkd_train::dropout(&attn, self.dropout, rng, true)?;
        }
        let out = attn
            .reshape((b, h * n, keys))?
            .matmul(&v)?
            .reshape((b, h, n, dh))?
            .transpose(1, 2)?
            .reshape((b, n, h * dh))?;
        let out = apply(&self.out_norm, &apply(&self.to_out, &out)?)?;
        Ok((out, CachedKv { k, v }))
    }
}

/// Standard causal multi-head attention with biases (GPT-2 / Karlo style), pre-norm.
#[derive(Debug, Clone)]
pub(crate) struct MultiHeadAttention {
    norm: LayerNorm,
    qkv: Dense,
    proj: Dense,
    heads: usize,
    dim_head: usize,
    dropout: f64,
}

impl MultiHeadAttention {
    pub fn new(
        dim: usize,
        heads: usize,
        dim_head: usize,
        dropout: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm: affine_norm(dim, vb.pp("norm"))?,
            qkv: linear(dim, 3 * heads * dim_head, true, vb.pp("qkv"))?,
            proj: linear(heads * dim_head, dim, true, vb.pp("proj"))?,
            heads,
            dim_head,
            dropout,
        })
    }

    /// `mask`: `(n, n)` additive causal mask.
    pub fn forward(&self, x: &Tensor, mask: &Tensor, rng: Option<&mut StdRng>) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let (h, dh) = (self.heads, self.dim_head);
        let qkv = apply(&self.qkv, &apply(&self.norm, x)?)?.reshape((b, n, 3, h, dh))?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let sim = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?.broadcast_add(mask)?;
        let mut attn = candle_nn::ops::softmax(&sim, D::Minus1)?;
        if let Some(rng) = rng {
            attn = cmkd_train::dropout(&attn, self.dropout, rng, true)?;
        }
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, h * dh))?;
        apply(&self.proj, &out)
    }
}
