//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `med-eval`. Bad input is reported, never panicked on.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Two inputs that must be paired element by element have different lengths.
    #[error("length mismatch: `{left}` has {left_len} values but `{right}` has {right_len}")]
    LengthMismatch {
        /// Name of the first input.
        left: &'static str,
        /// Its length.
        left_len: usize,
        /// Name of the second input.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// An input is empty where at least one value is needed.
    #[error("`{what}` is empty")]
    Empty {
        /// Name of the input.
        what: &'static str,
    },
    /// A score (or other number) is NaN or infinite.
    #[error("`{what}` has a non-finite value ({value}) at index {index}")]
    NonFinite {
        /// Name of the input.
        what: &'static str,
        /// Position of the first bad value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// ROC analysis needs both positives and negatives.
    #[error("only one class present ({positives} positives, {negatives} negatives); ROC AUC is undefined")]
    SingleClass {
        /// Number of positive labels.
        positives: usize,
        /// Number of negative labels.
        negatives: usize,
    },
    /// Stratified k-fold cannot give every fold a sample of every class.
    #[error(
        "n_splits = {n_splits} is larger than the smallest class ({class} has {count} samples)"
    )]
    TooManyFolds {
        /// Requested number of folds.
        n_splits: usize,
        /// Label of the smallest class, formatted.
        class: String,
        /// Its number of samples.
        count: usize,
    },
    /// A statistic needs more samples of a class than were given.
    #[error("{what} needs at least {needed} {class} samples, got {got}")]
    TooFewSamples {
        /// The statistic.
        what: &'static str,
        /// The class ("positive" or "negative").
        class: &'static str,
        /// Minimum count.
        needed: usize,
        /// Count given.
        got: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A probability-valued input lies outside [0, 1].
    #[error("`{what}` must lie in [0, 1] but has {value} at index {index}")]
    NotAProbability {
        /// Name of the input.
        what: &'static str,
        /// Position of the first bad value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A CSV file could not be parsed.
    #[error("{path}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What went wrong (line and column where known).
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing a plot failed (backend or font error).
    #[error("plotting {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The backend's message.
        reason: String,
    },
    /// Serialising a report failed.
    #[error("serialising report: {0}")]
    Serialize(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, EvalError>;

/// Checks that two slices have the same length.
pub(crate) fn check_same_len(
    left: &'static str,
    left_len: usize,
    right: &'static str,
    right_len: usize,
) -> Result<()> {
    if left_len != right_len {
        return Err(EvalError::LengthMismatch {
            left,
            left_len,
            right,
            right_len,
        });
    }
    Ok(())
}

/// Checks that every value is finite.
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(EvalError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Validates a binary-labelled score vector and returns (positives, negatives).
pub(crate) fn check_binary(labels: &[bool], scores: &[f64]) -> Result<(usize, usize)> {
    check_same_len("labels", labels.len(), "scores", scores.len())?;
    check_finite("scores", scores)?;
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(EvalError::SingleClass {
            positives,
            negatives,
        });
    }
    Ok((positives, negatives))
}
