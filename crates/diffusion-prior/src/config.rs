//! Architecture of the denoiser: [`PriorConfig`] and its presets.

use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};

/// The transformer block family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Style {
    /// DALLE2-pytorch's `CausalTransformer`: multi-query cosine-similarity attention with a learned
    /// null key/value, rotary embeddings plus T5 relative position bias, gain-only LayerNorms with the
    /// post-attention norm, SwiGLU feed-forward (optionally with the NormFormer norm), stable final
    /// norm and a bias-free output projection.
    Dalle2 {
        /// Cosine-similarity logit scale (16 upstream).
        cosine_sim_scale: f64,
        /// Rotary embeddings on `min(32, dim_head)` dimensions of queries and keys.
        rotary: bool,
        /// LayerNorm after the SwiGLU activation (NormFormer).
        normformer: bool,
    },
    /// A plain GPT-style pre-norm transformer (Karlo / diffusers `PriorTransformer`): standard
    /// multi-head attention with biases, GELU MLP, LayerNorms with bias, learned absolute positions.
    PreNorm,
}

/// How the diffusion timestep becomes a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TimeEmbedding {
    /// A learned table with `rows` rows (`nn.Embedding`); must cover the training timesteps.
    Learned {
        /// Number of rows (DALLE2-pytorch: the network's `num_timesteps`, 1000 in the published
        /// config even though it trains with 64).
        rows: usize,
    },
    /// Sinusoidal features followed by DALLE2-pytorch's 2-hidden-layer SiLU MLP.
    Sinusoidal,
}

/// Architecture of the prior's denoiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorConfig {
    /// Dimension of the target embedding (what is diffused and predicted).
    pub embed_dim: usize,
    /// Dimension of the condition embedding.
    pub cond_dim: usize,
    /// Transformer width; inputs of other dimensions get a linear projection.
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Number of (query) heads.
    pub heads: usize,
    /// Width of each head.
    pub dim_head: usize,
    /// Feed-forward inner width as a multiple of `dim`.
    pub ff_mult: usize,
    /// Block family.
    pub style: Style,
    /// Timestep token.
    pub time_embedding: TimeEmbedding,
    /// Learned constant tokens before the condition (DALLE2-pytorch's `null_text_encodings`, which
    /// the published prior always uses, 77 of them, because it has no text encodings).
    pub prefix_tokens: usize,
    /// Dropout on attention probabilities during training.
    pub attn_dropout: f64,
    /// Dropout inside the feed-forward during training.
    pub ff_dropout: f64,
}

/// The DALLE2 network at the published width and depth (embeddings of 512, 12 blocks of 12 heads
/// of 64, SwiGLU x4, NormFormer, rotary, cosine-sim attention, a 1000-row time table) without the
/// published 77 null text tokens and dropout: the base that a smaller network overrides by name,
/// `PriorConfig { dim: 64, depth: 2, ..Default::default() }`.
impl Default for PriorConfig {
    fn default() -> Self {
        Self {
            prefix_tokens: 0,
            attn_dropout: 0.0,
            ff_dropout: 0.0,
            ..Self::published()
        }
    }
}

impl PriorConfig {
    /// The published prior (meshims/Cross-Modal_CXR-CTPA_Knowledge_Distillation on DALLE2-pytorch
    /// 1.15.6): dim 512, depth 12, 12 heads of 64, SwiGLU 2048, NormFormer, rotary, dropout 0.05,
    /// 77 null text tokens, a 1000-row time table. 48,832,896 trainable parameters.
    pub fn published() -> Self {
        Self {
            embed_dim: 512,
            cond_dim: 512,
            dim: 512,
            depth: 12,
            heads: 12,
            dim_head: 64,
            ff_mult: 4,
            style: Style::Dalle2 {
                cosine_sim_scale: 16.0,
                rotary: true,
                normformer: true,
            },
            time_embedding: TimeEmbedding::Learned { rows: 1000 },
            prefix_tokens: 77,
            attn_dropout: 0.05,
            ff_dropout: 0.05,
        }
    }

    /// A plain pre-norm transformer (sinusoidal time embedding, no dropout) at the default's sizes,
    /// which a caller overrides by name.
    pub fn plain() -> Self {
        Self {
            style: Style::PreNorm,
            time_embedding: TimeEmbedding::Sinusoidal,
            ..Self::default()
        }
    }

    /// Number of tokens the transformer sees: prefix, condition, time, noised embedding, query.
    pub fn num_tokens(&self) -> usize {
        self.prefix_tokens + 4
    }

    /// Checks the configuration; `num_timesteps` is the diffusion's training length.
    pub fn validate(&self, num_timesteps: usize) -> Result<()> {
        for (name, v) in [
            ("embed_dim", self.embed_dim),
            ("cond_dim", self.cond_dim),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("dim_head", self.dim_head),
            ("ff_mult", self.ff_mult),
        ] {
            if v == 0 {
                return Err(config_err(name, "must be positive"));
            }
        }
        if let Style::Dalle2 { rotary: true, .. } = self.style {
            if self.dim_head % 2 != 0 {
                return Err(config_err(
                    "dim_head",
                    "rotary embeddings need an even head width",
                ));
            }
        }
        if self.time_embedding == TimeEmbedding::Sinusoidal && (self.dim < 4 || self.dim % 2 != 0) {
            return Err(config_err(
                "dim",
                "the sinusoidal time embedding needs an even dim >= 4",
            ));
        }
        if let TimeEmbedding::Learned { rows } = self.time_embedding {
            if rows < num_timesteps {
                return Err(config_err(
                    "time_embedding",
                    format!("{rows} rows cannot embed {num_timesteps} training timesteps"),
                ));
            }
        }
        for (name, p) in [
            ("attn_dropout", self.attn_dropout),
            ("ff_dropout", self.ff_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(config_err(name, format!("must be in [0, 1), got {p}")));
            }
        }
        Ok(())
    }
}
