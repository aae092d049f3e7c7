//! `diffusion-prior`: a generic embedding-space diffusion prior (DALL-E 2 style) on Candle.
//!
//! It learns `p(z | c)` for a target embedding `z` given a condition embedding `c` of any
//! dimensions (in cmkd: a CTPA embedding given a chest X-ray embedding), trains it with a caller's
//! optional extra loss on the predicted embedding, and samples with DDPM, DDIM or Analytic-DPM.
//!
//! - [`NoiseSchedule`]: betas and derived quantities in f64 for any number of timesteps.
//! - [`Sampler`] with [`Ddpm`], [`Ddim`] and [`AnalyticDpm`]; [`Prediction`] (x0, eps, v).
//! - [`PriorNetwork`] / [`PriorConfig`]: DALLE2-pytorch's prior network layer for layer
//!   ([`PriorConfig::published`] has its 48,832,896 parameters) or a plain pre-norm transformer.
//! - [`DiffusionPrior`]: network + schedule + embedding normalisation; loss, sampling, guidance.
//! - [`Trainer`]: AdamW, warm-up, clipping, EMA, checkpoints with exact resume.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use diffusion_prior::{BetaSchedule, DiffusionPrior, PriorConfig, PriorOptions, Ddim, NormKind};
//!
//! let dev = Device::Cpu;
//! let cond = Tensor::randn(0f32, 1.0, (8, 6), &dev)?;
//! let target = Tensor::randn(0f32, 1.0, (8, 4), &dev)?;
//! let options = PriorOptions::new(PriorConfig { embed_dim: 4, cond_dim: 6, dim: 16, depth: 1, heads: 2, dim_head: 8, ..Default::default() }, BetaSchedule::Cosine, 16);
//! let prior = DiffusionPrior::new(options, NormKind::Identity, NormKind::Identity, &cond, &target, 7, DType::F32, &dev)?;
//! let mut sampler = Ddim::new(prior.schedule().clone(), prior.prediction(), 4, 0.0)?;
//! let mut rng = cmkd_train::rng::stream(0, "sample");
//! let z = prior.sample(&cond, &mut sampler, 1.0, &mut rng)?;
//! assert_eq!(z.dims(), &[8, 4]);
//! # Ok::<(), diffusion_prior::Error>(())
//! ```
#![deny(missing_docs)]

pub mod analytic_dpm;
mod attention;
mod checkpoint;
pub mod config;
pub mod ddim;
pub mod ddpm;
mod dense;
pub mod error;
mod fused;
mod layers;
pub mod network;
pub mod normalization;
pub mod position;
pub mod prediction;
pub mod prior;
pub mod sampler;
pub mod schedule;
pub mod trainer;

pub use analytic_dpm::{AnalyticBounds, AnalyticDpm, AnalyticKind, GammaTable};
pub use cmkd_train::{AdamWConfig, EmaConfig, LrSchedule};
pub use config::{PriorConfig, Style, TimeEmbedding};
pub use ddim::Ddim;
pub use ddpm::Ddpm;
pub use error::{Error, Result};
pub use network::{CondDrop, ConditionCache, PriorNetwork};
pub use normalization::{EmbeddingNorm, NormKind};
pub use prediction::Prediction;
pub use prior::{check_embeddings, DiffusionPrior, LossParts, PriorOptions};
pub use sampler::{spaced_timesteps, Sampler};
pub use schedule::{BetaSchedule, NoiseSchedule, ScheduleConfig};
pub use trainer::{
    Control, EpochMetrics, ExtraLoss, ExtraLossInput, PairedData, StepStats, Trainer, TrainerConfig,
};
