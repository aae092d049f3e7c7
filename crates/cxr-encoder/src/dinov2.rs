//! DINOv2 vision transformer with transformers' `Dinov2Model` tensor names.
//!
//! `facebook/dinov2-small` and `facebook/dinov2-base` (`model.safetensors`) load unchanged. Any
//! image size works: the 37x37 grid of learned positions (518 px / 14) is resampled bicubically to
//! the patch grid of the input, with transformers' exact rule, so 224x224 X-rays give 16x16 tokens.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use cmkd_train::{layer_norm, LayerNorm, LayerNormConfig};
use serde::{Deserialize, Serialize};

use crate::vit::{position, Block, BlockConfig, Naming, PatchEmbed};
use crate::{Error, Result};

/// Architecture of a [`Dinov2`] (transformers' `Dinov2Config` fields).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dinov2Config {
    /// Image size the position embeddings were learned for (518 upstream).
    pub image_size: usize,
    /// Patch size (14 upstream).
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP hidden width as a multiple of the width.
    pub mlp_ratio: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// LayerScale initial value.
    pub layerscale_value: f64,
    /// Biases on query/key/value.
    pub qkv_bias: bool,
}

impl Dinov2Config {
    /// `facebook/dinov2-small` (ViT-S/14, 22M parameters, width 384).
    pub fn small() -> Self {
        Self {
            image_size: 518,
            patch_size: 14,
            num_channels: 3,
            hidden_size: 384,
            num_hidden_layers: 12,
            num_attention_heads: 6,
            mlp_ratio: 4,
            layer_norm_eps: 1e-6,
            layerscale_value: 1.0,
            qkv_bias: true,
        }
    }

    /// `facebook/dinov2-base` (ViT-B/14, 86M parameters, width 768).
    pub fn base() -> Self {
        Self {
            hidden_size: 768,
            num_attention_heads: 12,
            ..Self::small()
        }
    }

    fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// The DINOv2 trunk (patch embedding, class token, interpolated positions, LayerScale blocks, final
/// norm). The features of an image are its normalised class token (`pooler_output`).
pub struct Dinov2 {
    config: Dinov2Config,
    patch: PatchEmbed,
    cls_token: Tensor,
    position_embeddings: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl Dinov2 {
    /// Builds the model under `vb` with transformers' names.
    pub fn new(config: Dinov2Config, vb: VarBuilder) -> Result<Self> {
        if config.patch_size == 0 || config.grid() == 0 {
            return Err(Error::config(
                "dinov2",
                format!(
                    "image_size {} and patch_size {} give no patches",
                    config.image_size, config.patch_size
                ),
            ));
        }
        let d = config.hidden_size;
        let e = vb.pp("embeddings");
        let patch = PatchEmbed::new(
            config.num_channels,
            d,
            config.patch_size,
            e.pp("patch_embeddings.projection"),
        )?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let cls_token = e.get_with_hints((1, 1, d), "cls_token", init)?;
        let g = config.grid();
        let position_embeddings =
            e.get_with_hints((1, g * g + 1, d), "position_embeddings", init)?;
        let bc = BlockConfig {
            dim: d,
            heads: config.num_attention_heads,
            mlp_hidden: d * config.mlp_ratio,
            eps: config.layer_norm_eps,
            layer_scale: Some(config.layerscale_value),
            qkv_bias: config.qkv_bias,
            naming: Naming::Transformers,
        };
        let blocks = (0..config.num_hidden_layers)
            .map(|i| Block::new(&bc, vb.pp(format!("encoder.layer.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = layer_norm(
            d,
            LayerNormConfig {
                eps: config.layer_norm_eps,
                ..Default::default()
            },
            vb.pp("layernorm"),
        )?;
        Ok(Self {
            config,
            patch,
            cls_token,
            position_embeddings,
            blocks,
            norm,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    /// `last_hidden_state`: normalised tokens `(batch, 1 + patches, hidden)`, class token first.
    pub fn forward_tokens(&self, x: &Tensor) -> Result<Tensor> {
        let tokens = self.patch.forward(x, "DINOv2")?;
        let (b, n, d) = tokens.dims3()?;
        let (h, w) = (x.dim(2)?, x.dim(3)?);
        let g = self.config.grid();
        let pos = if n == g * g && h == w {
            self.position_embeddings.clone()
        } else {
            let (cls, rest) = position::split_class(&self.position_embeddings)?;
            let rest = position::resample_grid(&rest, (g, g), self.patch.grid(h, w))?;
            position::join_class(&cls, &rest)?
        };
        let cls = self.cls_token.broadcast_as((b, 1, d))?;
        let mut x = Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&pos)?;
        for blk in &self.blocks {
            x = blk.forward(&x, None)?;
        }
        Ok(candle_core::Module::forward(&self.norm, &x)?)
    }

    /// `pooler_output`: the normalised class token `(batch, hidden)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_tokens(x)?.narrow(1, 0, 1)?.squeeze(1)?)
    }
}
