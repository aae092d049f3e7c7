//! The pre-norm transformer block with LayerScale.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use cmkd_train::{layer_norm, LayerNorm, LayerNormConfig};
use serde::{Deserialize, Serialize};

use super::Attention;
use crate::Result;

/// Which library's tensor names a block uses, so upstream checkpoints load unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Naming {
    /// transformers' `Dinov2Layer`: `norm1`, `attention.attention.{query,key,value}`,
    /// `attention.output.dense`, `layer_scale1.lambda1`, `norm2`, `mlp.fc1`, `mlp.fc2`,
    /// `layer_scale2.lambda1`.
    Transformers,
    /// timm's `Block` (also open_clip's timm towers such as BiomedCLIP): `norm1`, `attn.qkv`,
    /// `attn.proj`, `ls1.gamma`, `norm2`, `mlp.fc1`, `mlp.fc2`, `ls2.gamma`.
    Timm,
}

/// Shape and options of a [`Block`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlockConfig {
    /// Model width.
    pub dim: usize,
    /// Attention heads (`dim` must be divisible by it).
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_hidden: usize,
    /// Layer-norm epsilon.
    pub eps: f64,
    /// LayerScale initial value (DINOv2: 1.0); `None` for no LayerScale (plain ViT, CLIP).
    pub layer_scale: Option<f64>,
    /// Whether the query/key/value projections have biases.
    pub qkv_bias: bool,
    /// Tensor names.
    pub naming: Naming,
}

/// A learned per-channel scale on a residual branch (Touvron et al. 2021; used by DINOv2).
pub struct LayerScale {
    gamma: Tensor,
}

impl LayerScale {
    /// Builds a scale of width `dim` initialised to `init`, stored as `name` under `vb`.
    pub fn new(dim: usize, init: f64, name: &str, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gamma: vb.get_with_hints(dim, name, candle_nn::Init::Const(init))?,
        })
    }
}

impl Module for LayerScale {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.gamma)
    }
}

/// Linear, exact (erf) GELU, linear.
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// Builds `fc1` (`dim -> hidden`) and `fc2` (`hidden -> dim`) under `vb`.
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(dim, hidden, vb.pp("fc1"))?,
            fc2: candle_nn::linear(hidden, dim, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu_erf()?)
    }
}

/// `x + ls1(attn(norm1(x))); x + ls2(mlp(norm2(x)))`.
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    ls1: Option<LayerScale>,
    norm2: LayerNorm,
    mlp: Mlp,
    ls2: Option<LayerScale>,
}

impl Block {
    /// Builds a block under `vb` with the names of `config.naming`.
    pub fn new(config: &BlockConfig, vb: VarBuilder) -> Result<Self> {
        let ln = LayerNormConfig {
            eps: config.eps,
            ..Default::default()
        };
        let d = config.dim;
        let (ls1, ls2) = match (config.layer_scale, config.naming) {
            (None, _) => (None, None),
            (Some(init), Naming::Transformers) => (
                Some(LayerScale::new(d, init, "lambda1", vb.pp("layer_scale1"))?),
                Some(LayerScale::new(d, init, "lambda1", vb.pp("layer_scale2"))?),
            ),
            (Some(init), Naming::Timm) => (
                Some(LayerScale::new(d, init, "gamma", vb.pp("ls1"))?),
                Some(LayerScale::new(d, init, "gamma", vb.pp("ls2"))?),
            ),
        };
        Ok(Self {
            norm1: layer_norm(d, ln, vb.pp("norm1"))?,
            attn: Attention::new(d, config.heads, config.qkv_bias, config.naming, vb.clone())?,
            ls1,
            norm2: layer_norm(d, ln, vb.pp("norm2"))?,
            mlp: Mlp::new(d, config.mlp_hidden, vb.pp("mlp"))?,
            ls2,
        })
    }

    /// Runs the block on `(batch, tokens, dim)` with an optional additive attention mask.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.attn.forward(&self.norm1.forward(x)?, mask)?;
        if let Some(ls) = &self.ls1 {
            h = ls.forward(&h)?;
        }
        let x = (x + h)?;
        let mut h = self.mlp.forward(&self.norm2.forward(&x)?)?;
        if let Some(ls) = &self.ls2 {
            h = ls.forward(&h)?;
        }
        Ok((x + h)?)
    }
}
