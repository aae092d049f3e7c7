//! `kd-losses`: part of the cmkd workspace. See the crate README for what it covers.
//!
//! ```
//! use kd_losses as _;
//! ```
#![deny(missing_docs)]
