//! Checks that stop training loudly when numbers stop being finite.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Returns the scalar value of `loss`, or [`Error::NonFinite`] naming `what` and `step` if it is NaN
/// or infinite.
pub fn finite_scalar(loss: &Tensor, what: &str, step: usize) -> Result<f64> {
    let v = loss
        .to_dtype(DType::F64)?
        .flatten_all()?
        .sum_all()?
        .to_scalar::<f64>()?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::NonFinite {
            what: what.to_string(),
            step,
        })
    }
}

/// Checks every element of `t` is finite; the error names `what` and `step`.
pub fn check_finite(t: &Tensor, what: &str, step: usize) -> Result<()> {
    // Sum of |x| is finite iff every element is finite (barring overflow, which is itself a problem).
    let s = t
        .to_dtype(DType::F64)?
        .abs()?
        .sum_all()?
        .to_scalar::<f64>()?;
    if s.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: what.to_string(),
            step,
        })
    }
}

/// Checks a host slice (e.g. a batch before it becomes a tensor).
pub fn check_finite_slice(v: &[f32], what: &str, step: usize) -> Result<()> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: what.to_string(),
            step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn flags_nan_and_inf_with_step() {
        let ok = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        assert_eq!(finite_scalar(&ok, "loss", 0).unwrap(), 3.0);
        let bad = Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu).unwrap();
        match check_finite(&bad, "batch", 17) {
            Err(Error::NonFinite { what, step }) => {
                assert_eq!((what.as_str(), step), ("batch", 17))
            }
            other => panic!("{other:?}"),
        }
        assert!(check_finite_slice(&[0.0, f32::INFINITY], "x", 1).is_err());
    }
}
