//! The CLIP ViT-B/16 vision tower as open_clip builds it around a timm trunk (BiomedCLIP).
//!
//! Names follow open_clip's `TimmModel`: `trunk.cls_token`, `trunk.pos_embed`,
//! `trunk.patch_embed.proj`, `trunk.blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`,
//! `trunk.norm` and the projection `head.proj.weight` (no bias). In a full BiomedCLIP checkpoint
//! they sit under `visual.`; pass that as the file prefix when loading. Like timm's default ViT the
//! position embeddings are fixed: other image sizes are an error, not silently resampled.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use cmkd_train::{layer_norm, LayerNorm, LayerNormConfig};
use serde::{Deserialize, Serialize};

use crate::vit::{Block, BlockConfig, Naming, PatchEmbed};
use crate::{Error, Result};

/// Architecture of a [`ClipVision`] tower.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipVisionConfig {
    /// Square image size the position embeddings belong to.
    pub image_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Trunk width.
    pub width: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of the width.
    pub mlp_ratio: usize,
    /// Layer-norm epsilon (timm: 1e-6).
    pub eps: f64,
    /// Size of the CLIP embedding the head projects to.
    pub embed_dim: usize,
}

impl ClipVisionConfig {
    /// BiomedCLIP's tower: timm `vit_base_patch16_224` and a 768 -> 512 projection.
    pub fn vit_b16() -> Self {
        Self {
            image_size: 224,
            patch_size: 16,
            in_channels: 3,
            width: 768,
            layers: 12,
            heads: 12,
            mlp_ratio: 4,
            eps: 1e-6,
            embed_dim: 512,
        }
    }
}

/// timm ViT trunk plus open_clip's linear projection; outputs the CLIP image embedding.
pub struct ClipVision {
    config: ClipVisionConfig,
    patch: PatchEmbed,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    proj: Linear,
}

impl ClipVision {
    /// Builds the tower under `vb` (`trunk.*`, `head.proj.weight`).
    pub fn new(config: ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let g = config.image_size / config.patch_size.max(1);
        if config.patch_size == 0 || g == 0 {
            return Err(Error::config(
                "clip",
                format!(
                    "image_size {} and patch_size {} give no patches",
                    config.image_size, config.patch_size
                ),
            ));
        }
        let t = vb.pp("trunk");
        let d = config.width;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let patch = PatchEmbed::new(
            config.in_channels,
            d,
            config.patch_size,
            t.pp("patch_embed.proj"),
        )?;
        let cls_token = t.get_with_hints((1, 1, d), "cls_token", init)?;
        let pos_embed = t.get_with_hints((1, g * g + 1, d), "pos_embed", init)?;
        let bc = BlockConfig {
            dim: d,
            heads: config.heads,
            mlp_hidden: d * config.mlp_ratio,
            eps: config.eps,
            layer_scale: None,
            qkv_bias: true,
            naming: Naming::Timm,
        };
        let blocks = (0..config.layers)
            .map(|i| Block::new(&bc, t.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = layer_norm(
            d,
            LayerNormConfig {
                eps: config.eps,
                ..Default::default()
            },
            t.pp("norm"),
        )?;
        let proj = candle_nn::linear_no_bias(d, config.embed_dim, vb.pp("head.proj"))?;
        Ok(Self {
            config,
            patch,
            cls_token,
            pos_embed,
            blocks,
            norm,
            proj,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// The trunk's pooled output: the normalised class token `(batch, width)`.
    pub fn forward_trunk(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() == 4 {
            let (h, w) = (x.dim(2)?, x.dim(3)?);
            let s = self.config.image_size;
            if (h, w) != (s, s) {
                return Err(Error::ImageSize {
                    model: "CLIP ViT",
                    expected: (s, s),
                    found: (h, w),
                });
            }
        }
        let tokens = self.patch.forward(x, "CLIP ViT")?;
        let (b, _, d) = tokens.dims3()?;
        let cls = self.cls_token.broadcast_as((b, 1, d))?;
        let mut x = Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&self.pos_embed)?;
        for blk in &self.blocks {
            x = blk.forward(&x, None)?;
        }
        Ok(self.norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)?)
    }

    /// The CLIP image embedding `(batch, embed_dim)` (not L2-normalised, as open_clip's
    /// `encode_image(normalize=False)`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.proj.forward(&self.forward_trunk(x)?)?)
    }
}
