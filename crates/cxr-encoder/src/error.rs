//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong building, loading or running an encoder.
///
/// Variants about weights name the file and the tensor, so a user loading a checkpoint from another
/// library learns exactly which name or shape does not fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (device, dtype or shape problems inside Candle).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The shared training machinery reported an error (optimizer, checkpoint, guard).
    #[error(transparent)]
    Train(#[from] cmkd_train::Error),
    /// An image or volume could not be converted.
    #[error(transparent)]
    MedIo(#[from] med_io::Error),
    /// An operating-system error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A weights file lacks a tensor the model needs.
    #[error("{file}: missing tensor `{name}`")]
    MissingTensor {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name as looked up in the file.
        name: String,
    },
    /// A tensor of a weights file has another shape than the model's.
    #[error("{file}: tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The weights file.
        file: PathBuf,
        /// The tensor's name as looked up in the file.
        name: String,
        /// The shape the model has.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The input has the wrong number of channels.
    #[error("{model} expects {expected} input channels, got {found}")]
    Channels {
        /// The model.
        model: &'static str,
        /// What the model takes.
        expected: usize,
        /// What it was given.
        found: usize,
    },
    /// The input image size does not fit a model whose position embeddings are fixed.
    #[error("{model} takes {expected:?} (height, width) images, got {found:?}")]
    ImageSize {
        /// The model.
        model: &'static str,
        /// The size it was built for.
        expected: (usize, usize),
        /// The size given.
        found: (usize, usize),
    },
    /// A configuration value is out of its domain.
    #[error("invalid `{name}`: {reason}")]
    Config {
        /// The field's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Other bad input (empty batch, mismatched sizes, non-finite values, duplicate ids).
    #[error("invalid input: {0}")]
    Input(String),
    /// Weights could not be found in the Hugging Face cache or fetched from the hub.
    #[error("hub {repo}@{revision} `{file}`: {reason}")]
    Hub {
        /// The model id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file asked for.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A JSON configuration could not be read.
    #[error("{path}: invalid configuration: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            name,
            reason: reason.into(),
        }
    }
}
