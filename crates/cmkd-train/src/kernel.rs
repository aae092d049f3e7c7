//! Helpers for CPU kernels written as Candle custom ops: the f32 elements a storage and layout
//! describe, when they are contiguous.
//!
//! ```
//! use candle_core::{Device, Storage, Tensor};
//! let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?.narrow(0, 1, 1)?;
//! let (storage, layout) = t.storage_and_layout();
//! let Storage::Cpu(cpu) = &*storage else { unreachable!() };
//! assert_eq!(cmkd_train::kernel::f32_slice(cpu, layout, "example")?, &[3.0, 4.0]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{CpuStorage, Layout};

/// The f32 elements of `storage` covered by the contiguous `layout`; `op` names the kernel in the
/// error for another dtype or a strided layout.
pub fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = storage else {
        candle_core::bail!("{op}: f32 expected")
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: contiguous input expected"),
    }
}

/// [`f32_slice`] for a kernel that updates its input in place.
pub fn f32_slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = storage else {
        candle_core::bail!("{op}: f32 expected")
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("{op}: contiguous input expected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Storage, Tensor};

    #[test]
    fn other_dtypes_and_strided_layouts_are_errors_naming_the_op() {
        let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let tt = t.t().unwrap();
        let (s, l) = tt.storage_and_layout();
        let Storage::Cpu(cpu) = &*s else { panic!() };
        let e = f32_slice(cpu, l, "my-op").unwrap_err().to_string();
        assert!(e.contains("my-op") && e.contains("contiguous"), "{e}");
        let d = t.to_dtype(DType::F64).unwrap();
        let (s, l) = d.storage_and_layout();
        let Storage::Cpu(cpu) = &*s else { panic!() };
        let e = f32_slice(cpu, l, "my-op").unwrap_err().to_string();
        assert!(e.contains("f32"), "{e}");
    }
}
