//! `cxr-encoder`: part of the cmkd workspace. See the crate README for what it covers.
//!
//! ```
//! use cxr_encoder as _;
//! ```
#![deny(missing_docs)]
