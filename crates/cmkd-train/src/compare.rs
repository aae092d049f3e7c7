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

/// The bit patterns of an f32 tensor's elements in row-major order: `assert_eq!` on two of them
/// checks that two computations agree bit for bit (NaNs included), which a tolerance cannot.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[0.1f32, 0.2], &Device::Cpu)?;
/// assert_eq!(cmkd_train::compare::f32_bits(&a)?, vec![0.1f32.to_bits(), 0.2f32.to_bits()]);
/// # Ok::<(), cmkd_train::Error>(())
/// ```
pub fn f32_bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f32::to_bits)
        .collect())
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
