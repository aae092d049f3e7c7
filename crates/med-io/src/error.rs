//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading, checking or transforming medical images.
///
/// Variants that concern a file carry its path, so a user with a folder of thousands of slices
/// learns which one is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Voxel data and the declared shape disagree, or a dimension is zero.
    #[error("invalid shape: {0}")]
    Shape(String),
    /// Spacing, origin or direction are not usable (non-finite, non-positive, singular).
    #[error("invalid geometry: {0}")]
    Geometry(String),
    /// A parameter of a transform is out of its domain.
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// The parameter's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor operation failed (device, dtype or shape problems in Candle).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A NIfTI file is malformed or uses a feature this crate does not read.
    #[error("{path}: NIfTI: {reason}")]
    Nifti {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A DICOM file is malformed, lacks a required attribute, or cannot be decoded.
    #[error("{path}: DICOM: {reason}")]
    Dicom {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The files of a DICOM series do not form one regular volume.
    #[error("{path}: DICOM series: {reason}")]
    Series {
        /// The folder, or the first offending file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// A dataset manifest (CSV) is malformed: a missing column, a bad label, a duplicate id, a
    /// missing file. `row` is the 1-based line number in the file (the header is line 1).
    #[error("{path}, line {row}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The 1-based line number (0 when the problem concerns the whole file).
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A PNG/JPEG file cannot be read or written.
    #[error("{path}: image: {reason}")]
    Image {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn nifti(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Nifti {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn dicom(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Dicom {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn series(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Series {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn image(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Image {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
