//! The crate's error type.

/// Everything that can go wrong building, loading or running a CTPA encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the shared encoder machinery (weights loading with the tensor named, channels,
    /// configuration, embeddings files).
    #[error(transparent)]
    Encoder(#[from] cxr_encoder::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The training machinery reported an error (optimizer, checkpoint, non-finite loss).
    #[error(transparent)]
    Train(#[from] cmkd_train::Error),
    /// A volume could not be converted.
    #[error(transparent)]
    MedIo(#[from] med_io::Error),
    /// Bad input: an empty batch, volumes of different in-plane sizes, mismatched lengths.
    #[error("invalid input: {0}")]
    Input(String),
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
