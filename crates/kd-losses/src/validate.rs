//! Input checks shared by every objective: shapes, finiteness, labels.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Fails unless `t` is a `[batch, dim]` matrix with at least one row.
pub(crate) fn matrix(what: &'static str, name: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        [b, d] if *b > 0 && *d > 0 => Ok((*b, *d)),
        dims => Err(Error::BadShape {
            what,
            tensor: name,
            shape: dims.to_vec(),
            expected: "a non-empty [batch, dim] matrix".into(),
        }),
    }
}

/// Fails unless `a` and `b` have identical dimensions.
pub(crate) fn same_shape(
    what: &'static str,
    left: &'static str,
    a: &Tensor,
    right: &'static str,
    b: &Tensor,
) -> Result<()> {
    if a.dims() == b.dims() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            left,
            left_shape: a.dims().to_vec(),
            right,
            right_shape: b.dims().to_vec(),
        })
    }
}

/// Fails if any element of `t` is NaN or infinite. One reduction and one scalar copy to the host.
pub(crate) fn finite(what: &'static str, name: &'static str, t: &Tensor) -> Result<()> {
    // NaN and infinities propagate through a plain sum (inf - inf is NaN), so the sum is finite
    // iff every element is, barring overflow of the sum itself. Half types are summed in f32 so
    // that ordinary values cannot overflow; f32/f64 are summed as they are, avoiding a copy.
    let t = t.detach();
    let t = match t.dtype() {
        DType::F16 | DType::BF16 => t.to_dtype(DType::F32)?,
        _ => t,
    };
    let s = t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if s.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite { what, tensor: name })
    }
}

/// A `[batch]` vector of logits: accepts `[batch]` or `[batch, 1]`, returns `[batch]`.
pub(crate) fn logits(
    what: &'static str,
    name: &'static str,
    t: &Tensor,
    batch: Option<usize>,
) -> Result<Tensor> {
    let v = match t.dims() {
        [b] if *b > 0 => t.clone(),
        [b, 1] if *b > 0 => t.squeeze(1)?,
        dims => {
            return Err(Error::BadShape {
                what,
                tensor: name,
                shape: dims.to_vec(),
                expected: "binary logits as [batch] or [batch, 1]".into(),
            })
        }
    };
    if let Some(b) = batch {
        if v.dim(0)? != b {
            return Err(Error::BadShape {
                what,
                tensor: name,
                shape: t.dims().to_vec(),
                expected: format!("batch size {b}"),
            });
        }
    }
    finite(what, name, &v)?;
    Ok(v)
}

/// Labels as a `[batch]` tensor of 0/1 (any float or integer dtype; `[batch, 1]` accepted), returned
/// as a host vector of class indices and as a tensor in `dtype`.
pub(crate) fn labels(
    what: &'static str,
    y: &Tensor,
    batch: usize,
    dtype: DType,
) -> Result<(Vec<u8>, Tensor)> {
    let y = match y.dims() {
        [b] if *b == batch => y.clone(),
        [b, 1] if *b == batch => y.squeeze(1)?,
        dims => {
            return Err(Error::BadShape {
                what,
                tensor: "labels",
                shape: dims.to_vec(),
                expected: format!("[{batch}] labels in {{0, 1}}"),
            })
        }
    };
    let host = y.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut classes = Vec::with_capacity(host.len());
    for v in host {
        if v == 0.0 {
            classes.push(0u8);
        } else if v == 1.0 {
            classes.push(1u8);
        } else {
            return Err(Error::BadLabel { what, value: v });
        }
    }
    Ok((classes, y.to_dtype(dtype)?))
}

/// Fails unless `v` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Config {
            name,
            reason: format!("must be finite and > 0, got {v}"),
        })
    }
}

/// Fails unless `v` is finite and non-negative.
pub(crate) fn non_negative(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::Config {
            name,
            reason: format!("must be finite and >= 0, got {v}"),
        })
    }
}

/// Fails unless `v` is in `[0, 1]`.
pub(crate) fn unit_interval(name: &'static str, v: f64) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::Config {
            name,
            reason: format!("must be in [0, 1], got {v}"),
        })
    }
}
