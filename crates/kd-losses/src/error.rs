//! The crate's error type.

/// Errors from the distillation objectives and the [`crate::Distiller`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The shared training machinery (optimizer, clipping, guards) failed.
    #[error(transparent)]
    Train(#[from] cmkd_train::Error),
    /// Two inputs that must agree in shape do not.
    #[error(
        "shape mismatch in {what}: `{left}` is {left_shape:?} but `{right}` is {right_shape:?}"
    )]
    ShapeMismatch {
        /// The objective or function that checked.
        what: &'static str,
        /// Name of the first tensor.
        left: &'static str,
        /// Its dimensions.
        left_shape: Vec<usize>,
        /// Name of the second tensor.
        right: &'static str,
        /// Its dimensions.
        right_shape: Vec<usize>,
    },
    /// A tensor does not have the rank or size the objective needs.
    #[error("bad shape in {what}: `{tensor}` is {shape:?}, expected {expected}")]
    BadShape {
        /// The objective or function that checked.
        what: &'static str,
        /// Name of the tensor.
        tensor: &'static str,
        /// Its dimensions.
        shape: Vec<usize>,
        /// What was expected, in words.
        expected: String,
    },
    /// An input holds NaN or infinity.
    #[error("non-finite values in `{tensor}` given to {what}")]
    NonFinite {
        /// The objective or function that checked.
        what: &'static str,
        /// Name of the tensor.
        tensor: &'static str,
    },
    /// Labels must be 0 or 1.
    #[error("labels given to {what} must be 0 or 1, found {value}")]
    BadLabel {
        /// The objective or function that checked.
        what: &'static str,
        /// The offending value.
        value: f32,
    },
    /// A batch holds one class only where both are needed (ProtoKD prototypes, AUC-style splits).
    #[error("{what} needs both classes in a batch, but all {n} labels are {class}; use stratified batches")]
    OneClass {
        /// The objective or function that checked.
        what: &'static str,
        /// The only class present.
        class: u8,
        /// The batch size.
        n: usize,
    },
    /// A hyper-parameter is out of its domain.
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
