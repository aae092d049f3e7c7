//! cmkd: cross-modal knowledge distillation for medical imaging, on Candle.
//!
//! This root crate re-exports the member crates so that one dependency gives the whole toolkit;
//! each member is also usable on its own.
//!
//! ```
//! use cmkd::{med_eval, med_io};
//! let _ = (stringify!(med_io), stringify!(med_eval));
//! ```
#![deny(missing_docs)]

pub mod pipeline;

pub use cmkd_train;
pub use ctpa_encoder;
pub use cxr_encoder;
pub use diffusion_prior;
pub use kd_losses;
pub use med_eval;
pub use med_io;

/// The README's code samples, compiled and run by `cargo test --doc` so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
