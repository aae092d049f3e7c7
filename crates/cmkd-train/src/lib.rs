//! `cmkd-train`: the training machinery that Candle leaves to each user, written once.
//!
//! Candle gives tensors, autograd and layers; a training run also needs an optimizer whose state can
//! be saved, weight decay that skips biases and norms, gradient clipping, learning-rate warm-up, an
//! exponential moving average of the weights, guards that stop on NaN, reproducible initialisation and
//! noise on the CPU, layer norms that carry a gradient, and checkpoints that survive a crash. The
//! diffusion prior, the encoders and the distillers of cmkd all use these pieces.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::VarMap;
//! use cmkd_train::{clip_grad_norm, seeded_var_builder, sorted_vars, AdamW, AdamWConfig};
//!
//! let map = VarMap::new();
//! let vb = seeded_var_builder(&map, 42, DType::F32, &Device::Cpu);
//! let layer = candle_nn::linear(4, 1, vb.pp("head"))?;
//! let vars = sorted_vars(&map);
//! let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-2, ..Default::default() })?;
//! let x = Tensor::ones((8, 4), DType::F32, &Device::Cpu)?;
//! let loss = layer.forward(&x)?.sqr()?.mean_all()?;
//! let mut grads = loss.backward()?;
//! clip_grad_norm(&mut grads, &vars, 0.5, 0)?;
//! opt.step(&grads)?;
//! assert_eq!(opt.step_count(), 1);
//! # Ok::<(), cmkd_train::Error>(())
//! ```
#![deny(missing_docs)]

pub mod adamw;
pub mod checkpoint;
pub mod clip;
pub mod compare;
pub mod dropout;
pub mod ema;
pub mod error;
pub mod fit;
pub mod guard;
pub mod hash;
pub mod init;
pub mod kernel;
pub mod norm;
pub mod params;
pub mod process;
pub mod progress;
pub mod rng;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_coefficient, clip_grad_norm, grad_norm};
pub use dropout::dropout;
pub use ema::{Ema, EmaConfig};
pub use error::{Error, Result};
pub use init::seeded_var_builder;
pub use norm::{layer_norm, LayerNorm, LayerNormConfig};
pub use params::{count_params, sorted_vars, trainable_vars};
pub use schedule::LrSchedule;
