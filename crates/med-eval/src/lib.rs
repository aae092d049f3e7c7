//! `med-eval`: part of the cmkd workspace. See the crate README for what it covers.
//!
//! ```
//! use med_eval as _;
//! ```
#![deny(missing_docs)]
