//! Vision-transformer building blocks shared by every ViT in cmkd.
//!
//! The DINOv2 and CLIP towers of this crate and the patch-free sequence ViT of `ctpa-encoder` are
//! the same pre-norm transformer with different tensor names, so the pieces live here once:
//! [`Attention`] (multi-head self-attention with an optional additive mask), [`Mlp`] (two linear
//! layers with exact GELU), [`LayerScale`], the pre-norm [`Block`] and the position-embedding
//! resampling of [`position`]. `ctpa-encoder` depends on this crate for them (the dependency runs
//! one way: `ctpa-encoder -> cxr-encoder`).
//!
//! Every op here carries a gradient: the layer norm is `cmkd_train::LayerNorm` (composed, not
//! Candle's fused kernel) and the softmax is `candle_nn::ops::softmax` (composed), so all
//! parameters of a block train.

mod attention;
mod block;
mod patch;
pub mod position;

pub use attention::{attention_mask, Attention};
pub use block::{Block, BlockConfig, LayerScale, Mlp, Naming};
pub use patch::PatchEmbed;
