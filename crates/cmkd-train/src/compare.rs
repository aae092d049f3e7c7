//! Comparing tensors, as parity and equivalence checks do.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// The largest absolute element-wise difference between two tensors of the same shape, in f32
/// (either input may be any float dtype). Fails on mismatched shapes.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu)?;
/// let b = Tensor::new(&[1.0f32, 2.5, 2.0], &Device::Cpu)?;
/// assert_eq!(cmkd_train::compare::max_abs_diff(&a, &b)?, 1.0);
/// # Ok::<(), cmkd_train::Error>(())
/// ```
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(d.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn largest_difference_in_any_dtype_and_shape_mismatch_is_an_error() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[0.0f64, -2.0], [1.0, 4.0]], &dev).unwrap();
        let b = Tensor::new(&[[0.5f32, 1.0], [1.0, 4.0]], &dev).unwrap();
        assert_eq!(max_abs_diff(&a, &b).unwrap(), 3.0);
        assert_eq!(max_abs_diff(&a, &a).unwrap(), 0.0);
        let c = Tensor::new(&[1.0f32, 2.0], &dev).unwrap();
        assert!(max_abs_diff(&a, &c).is_err());
    }
}
