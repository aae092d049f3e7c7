//! The patch-free sequence ViT: a DINOv2-style transformer that reads slice embeddings as patches.
//!
//! As in the paper, DINOv2's patch projection is replaced by a linear map from the slice-embedding
//! size to the model width; a class token and learned position embeddings (resampled linearly to
//! the number of slices of each volume) are added, then pre-norm blocks with LayerScale, a final
//! layer norm, an embedding head (512 or 1024) and a PE logit head on the embedding. Volumes of
//! different lengths are batched by padding, and an attention mask keeps every real token from
//! attending to padding, so a volume's output does not depend on what it is batched with.
//!
//! Tensor names follow transformers' `Dinov2Model` (`embeddings.cls_token`,
//! `embeddings.position_embeddings`, `encoder.layer.{i}.*`, `layernorm.*`) so that a DINOv2
//! checkpoint's trunk loads with [`SequenceVit::load_dinov2_trunk`]; the new parts are
//! `input_proj`, `embed` and `head`.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarMap};
use cmkd_train::{layer_norm, LayerNorm, LayerNormConfig};
use cxr_encoder::vit::{attention_mask, position, Block, BlockConfig, Naming};
use cxr_encoder::{load_into, LoadReport, WeightSource};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Architecture of a [`SequenceVit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequenceVitConfig {
    /// Size of the slice embeddings it reads.
    pub in_dim: usize,
    /// Model width (DINOv2-small: 384).
    pub width: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of the width.
    pub mlp_ratio: usize,
    /// Number of learned positions (resampled to each volume's slice count). 1369 (37 x 37) to
    /// load DINOv2's positions.
    pub positions: usize,
    /// LayerScale initial value (DINOv2: 1.0).
    pub layer_scale: f64,
    /// Layer-norm epsilon (DINOv2: 1e-6).
    pub eps: f64,
    /// Size of the volume embedding (512 in the paper, 1024 in its ablation).
    pub embed_dim: usize,
}

impl SequenceVitConfig {
    /// DINOv2-small's trunk over `in_dim`-sized slice embeddings with a 512-d embedding.
    pub fn dinov2_small(in_dim: usize) -> Self {
        Self {
            in_dim,
            width: 384,
            depth: 12,
            heads: 6,
            mlp_ratio: 4,
            positions: 37 * 37,
            layer_scale: 1.0,
            eps: 1e-6,
            embed_dim: 512,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::Config { name, reason });
        if self.in_dim == 0
            || self.width == 0
            || self.embed_dim == 0
            || self.positions == 0
            || self.mlp_ratio == 0
        {
            return bad("sequence vit", format!("sizes must be positive: {self:?}"));
        }
        if self.heads == 0 || self.width % self.heads != 0 {
            return bad(
                "heads",
                format!(
                    "width {} is not divisible by {} heads",
                    self.width, self.heads
                ),
            );
        }
        Ok(())
    }
}

/// The sequence ViT with its embedding and PE heads. Owns its variables.
pub struct SequenceVit {
    config: SequenceVitConfig,
    map: VarMap,
    input_proj: Linear,
    cls_token: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    embed: Linear,
    head: Linear,
}

impl SequenceVit {
    /// Builds the model with weights drawn reproducibly from `seed`.
    pub fn new(
        config: SequenceVitConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, dtype, device);
        let d = config.width;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let input_proj = candle_nn::linear(config.in_dim, d, vb.pp("input_proj"))?;
        let e = vb.pp("embeddings");
        let cls_token = e.get_with_hints((1, 1, d), "cls_token", init)?;
        let positions =
            e.get_with_hints((1, config.positions + 1, d), "position_embeddings", init)?;
        let bc = BlockConfig {
            dim: d,
            heads: config.heads,
            mlp_hidden: d * config.mlp_ratio,
            eps: config.eps,
            layer_scale: Some(config.layer_scale),
            qkv_bias: true,
            naming: Naming::Transformers,
        };
        let blocks = (0..config.depth)
            .map(|i| Block::new(&bc, vb.pp(format!("encoder.layer.{i}"))))
            .collect::<cxr_encoder::Result<Vec<_>>>()?;
        let norm = layer_norm(
            d,
            LayerNormConfig {
                eps: config.eps,
                ..Default::default()
            },
            vb.pp("layernorm"),
        )?;
        let embed = candle_nn::linear(d, config.embed_dim, vb.pp("embed"))?;
        let head = candle_nn::linear(config.embed_dim, 1, vb.pp("head"))?;
        Ok(Self {
            config,
            map,
            input_proj,
            cls_token,
            positions,
            blocks,
            norm,
            embed,
            head,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &SequenceVitConfig {
        &self.config
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.cls_token.device()
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.cls_token.dtype()
    }

    /// The variables.
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// All variables, sorted by name (every one of them trains).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
    }

    /// Saves `model.safetensors` and `config.json` into `dir` (each atomically).
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        use cmkd_train::checkpoint::{save_json, save_varmap, MODEL_CONFIG, MODEL_WEIGHTS};
        save_varmap(&dir.join(MODEL_WEIGHTS), &self.map)?;
        save_json(&dir.join(MODEL_CONFIG), &self.config)?;
        Ok(())
    }

    /// Loads a model saved by [`SequenceVit::save`] (or by earlier versions, which named the weights
    /// `weights.safetensors`); a missing or mis-shaped tensor is named.
    pub fn load(dir: &std::path::Path, dtype: DType, device: &Device) -> Result<Self> {
        use cmkd_train::checkpoint::{load_json, model_file, MODEL_CONFIG, MODEL_WEIGHTS};
        let config: SequenceVitConfig = load_json(&dir.join(MODEL_CONFIG))?;
        let vit = Self::new(config, 0, dtype, device)?;
        let weights = model_file(dir, MODEL_WEIGHTS, &["weights.safetensors"]);
        load_into(&vit.map, &weights, "", "")?;
        Ok(vit)
    }

    /// Loads the class token, positions, blocks and final norm of a transformers DINOv2 checkpoint
    /// (e.g. `facebook/dinov2-small` `model.safetensors`); the width, depth, heads and `positions`
    /// (1369 for 518 px / 14) must match it. `input_proj`, `embed` and `head` keep their values.
    pub fn load_dinov2_trunk(&self, source: &WeightSource) -> Result<LoadReport> {
        let path = source.resolve()?;
        let mut total = LoadReport::default();
        for prefix in ["embeddings.", "encoder.", "layernorm."] {
            let r = load_into(&self.map, &path, prefix, prefix)?;
            total.loaded += r.loaded;
            total.unused.extend(r.unused);
        }
        total.unused.retain(|n| {
            n.starts_with("embeddings.")
                && !n.contains("position_embeddings")
                && !n.contains("cls_token")
        });
        Ok(total)
    }

    /// Per-sample position embeddings `(batch, 1 + max_len, width)`: each sample's learned
    /// positions resampled to its own length, zero over padding.
    fn position_table(&self, lengths: &[usize], max_len: usize) -> Result<Tensor> {
        let (cls, rest) = position::split_class(&self.positions)?;
        let d = self.config.width;
        let mut cache: Vec<(usize, Tensor)> = Vec::new();
        let mut rows = Vec::with_capacity(lengths.len());
        for &len in lengths {
            let t = match cache.iter().find(|(l, _)| *l == len) {
                Some((_, t)) => t.clone(),
                None => {
                    let mut parts = vec![cls.clone(), position::resample_sequence(&rest, len)?];
                    if len < max_len {
                        parts.push(Tensor::zeros(
                            (max_len - len, d),
                            rest.dtype(),
                            rest.device(),
                        )?);
                    }
                    let t = Tensor::cat(&parts, 0)?;
                    cache.push((len, t.clone()));
                    t
                }
            };
            rows.push(t);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// The normalised class token `(batch, width)` of padded slice embeddings `seq`
    /// `(batch, max_len, in_dim)` where sample `b` has `lengths[b]` valid rows.
    pub fn forward_cls(&self, seq: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        if seq.rank() != 3 {
            return Err(Error::Input(format!(
                "slice embeddings must be (batch, slices, dim), got {:?}",
                seq.dims()
            )));
        }
        let (b, s, f) = seq.dims3()?;
        if f != self.config.in_dim {
            return Err(Error::Input(format!(
                "slice embeddings have size {f}, the model reads {}",
                self.config.in_dim
            )));
        }
        if lengths.len() != b {
            return Err(Error::Input(format!(
                "{b} sequences but {} lengths",
                lengths.len()
            )));
        }
        if let Some(l) = lengths.iter().find(|&&l| l == 0 || l > s) {
            return Err(Error::Input(format!(
                "a sequence length of {l} does not fit {s} rows"
            )));
        }
        let x = self.input_proj.forward(seq)?;
        let cls = self.cls_token.broadcast_as((b, 1, self.config.width))?;
        let x = Tensor::cat(&[&cls, &x], 1)?;
        let mut x = (x + self.position_table(lengths, s)?)?;
        let valid: Vec<usize> = lengths.iter().map(|l| l + 1).collect();
        let mask = if lengths.iter().all(|&l| l == s) {
            None
        } else {
            Some(attention_mask(&valid, s + 1, x.dtype(), x.device())?)
        };
        for blk in &self.blocks {
            x = blk.forward(&x, mask.as_ref())?;
        }
        Ok(self.norm.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?)
    }

    /// Volume embeddings `(batch, embed_dim)` and PE logits `(batch,)`.
    pub fn forward(&self, seq: &Tensor, lengths: &[usize]) -> Result<(Tensor, Tensor)> {
        let z = self.embed.forward(&self.forward_cls(seq, lengths)?)?;
        let logit = self.head_logit(&z)?;
        Ok((z, logit))
    }

    /// The PE head alone: embeddings `(batch, embed_dim)` to logits `(batch,)`. The diffusion prior
    /// classifies generated embeddings with it.
    pub fn head_logit(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.head.forward(z)?.squeeze(1)?)
    }

    /// A frozen copy of the PE head: what the diffusion prior trains through (the gradient reaches
    /// the generated embedding, never the head).
    pub fn frozen_head(&self) -> Result<cxr_encoder::PeHead> {
        let bias = self
            .head
            .bias()
            .ok_or_else(|| Error::Input("the PE head has no bias".into()))?;
        Ok(cxr_encoder::PeHead::new(self.head.weight(), bias)?)
    }
}
