//! The pipeline's error type: every failure names the phase, file or field it comes from.

use std::path::PathBuf;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Input data are unusable (a one-class cohort, mismatched sizes, a bad manifest row).
    #[error("bad data: {0}")]
    Data(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Training machinery (optimizer, checkpoints, finite guards).
    #[error(transparent)]
    Train(#[from] cmkd_train::Error),
    /// Image and volume handling.
    #[error(transparent)]
    MedIo(#[from] med_io::Error),
    /// The CTPA encoder (boxed, as the largest causes are, to keep every `Result` small).
    #[error(transparent)]
    Ctpa(Box<ctpa_encoder::Error>),
    /// The CXR encoder.
    #[error(transparent)]
    Cxr(Box<cxr_encoder::Error>),
    /// The diffusion prior.
    #[error(transparent)]
    Prior(#[from] diffusion_prior::Error),
    /// A distillation objective.
    #[error(transparent)]
    Kd(#[from] kd_losses::Error),
    /// Evaluation statistics and figures.
    #[error(transparent)]
    Eval(#[from] med_eval::EvalError),
    /// JSON encoding.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<ctpa_encoder::Error> for PipelineError {
    fn from(e: ctpa_encoder::Error) -> Self {
        Self::Ctpa(Box::new(e))
    }
}

impl From<cxr_encoder::Error> for PipelineError {
    fn from(e: cxr_encoder::Error) -> Self {
        Self::Cxr(Box::new(e))
    }
}

/// The pipeline's result type.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// A [`PipelineError::Config`].
    pub fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            name,
            reason: reason.into(),
        }
    }

    /// A [`PipelineError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
