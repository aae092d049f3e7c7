//! The crate's error type.

use std::path::PathBuf;

/// Errors from training machinery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An operating-system error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON sidecar could not be written or parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint file is unreadable or does not match the model.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, naming the tensor where there is one.
        reason: String,
    },
    /// A loss, gradient or input stopped being finite.
    #[error("non-finite {what} at step {step}")]
    NonFinite {
        /// What was checked (`"loss"`, `"gradient of blocks.3.attn.q"`, ...).
        what: String,
        /// The optimizer step at which it happened.
        step: usize,
    },
    /// A configuration value is out of its domain.
    #[error("invalid `{name}`: {reason}")]
    Config {
        /// The field's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
