//! The crate's error type.

use std::path::PathBuf;

/// Errors of the diffusion prior.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Training machinery (optimizer, EMA, checkpoint helpers, guards) failed.
    #[error(transparent)]
    Train(#[from] cmkd_train::Error),
    /// A configuration value is out of its domain.
    #[error("invalid `{name}`: {reason}")]
    Config {
        /// The field's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor has the wrong shape for what it is used for.
    #[error("`{what}` has shape {got:?}, expected {expected}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Its shape.
        got: Vec<usize>,
        /// What was expected, in words.
        expected: String,
    },
    /// An input contains NaN or infinite values.
    #[error("`{what}` contains a non-finite value (row {row})")]
    NonFiniteInput {
        /// Which input.
        what: &'static str,
        /// The first offending row.
        row: usize,
    },
    /// A data set has no rows.
    #[error("`{what}` is empty")]
    Empty {
        /// Which data set.
        what: &'static str,
    },
    /// A checkpoint directory is missing a file or holds inconsistent data.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file of a trainer checkpoint is missing or is not the one its `trainer.json` recorded (a
    /// directory mixed from different saves).
    #[error("{path}: {reason}")]
    CheckpointMismatch {
        /// The offending file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A sampler needs something the model does not have (e.g. Analytic-DPM statistics).
    #[error("sampler: {0}")]
    Sampler(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn config_err(name: &'static str, reason: impl Into<String>) -> Error {
    Error::Config {
        name,
        reason: reason.into(),
    }
}
