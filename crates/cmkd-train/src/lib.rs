//! `cmkd-train`: part of the cmkd workspace. See the crate README for what it covers.
//!
//! ```
//! use cmkd_train as _;
//! ```
#![deny(missing_docs)]
