//! `diffusion-prior`: part of the cmkd workspace. See the crate README for what it covers.
//!
//! ```
//! use diffusion_prior as _;
//! ```
#![deny(missing_docs)]
