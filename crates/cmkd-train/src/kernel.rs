//! Helpers for CPU kernels written as Candle custom ops: the f32 elements a storage and layout
//! describe, when they are contiguous, and a row loop that goes parallel on large inputs.
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
use rayon::prelude::*;

/// Input elements from which [`for_each_row`] splits the rows over rayon's threads (Candle's own
/// threshold for element-wise ops); below it the hand-off costs more than it saves.
pub const PARALLEL_MIN_ELEMENTS: usize = 64 * 1024;

/// Calls `f(input_row, output_row)` for each of the rows of `x` (`d_in` wide) and `y` (`d_out`
/// wide), in parallel when `x` is large. Each row is computed by one call whatever the split, so
/// the result is the same bit for bit as a sequential loop.
pub fn for_each_row<F>(x: &[f32], d_in: usize, y: &mut [f32], d_out: usize, f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync,
{
    if d_in == 0 || d_out == 0 {
        return;
    }
    if x.len() < PARALLEL_MIN_ELEMENTS || rayon::current_num_threads() < 2 {
        for (xr, yr) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
            f(xr, yr);
        }
        return;
    }
    // About 16k input elements a task: enough work to amortise the hand-off.
    let rows = (PARALLEL_MIN_ELEMENTS / 4 / d_in).max(1);
    x.par_chunks(rows * d_in)
        .zip(y.par_chunks_mut(rows * d_out))
        .for_each(|(xs, ys)| {
            for (xr, yr) in xs.chunks_exact(d_in).zip(ys.chunks_exact_mut(d_out)) {
                f(xr, yr);
            }
        });
}

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
    fn row_loop_is_the_sequential_loop_on_small_and_large_inputs() {
        for rows in [3usize, 5000] {
            let (d_in, d_out) = (40, 20);
            let x: Vec<f32> = (0..rows * d_in).map(|i| (i as f32 * 0.37).sin()).collect();
            let f = |xr: &[f32], yr: &mut [f32]| {
                let s: f32 = xr.iter().sum();
                for (j, y) in yr.iter_mut().enumerate() {
                    *y = xr[j] * s + xr[j + d_out];
                }
            };
            let mut par = vec![0f32; rows * d_out];
            for_each_row(&x, d_in, &mut par, d_out, f);
            let mut seq = vec![0f32; rows * d_out];
            for (xr, yr) in x.chunks_exact(d_in).zip(seq.chunks_exact_mut(d_out)) {
                f(xr, yr);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&par), bits(&seq), "{rows} rows");
        }
    }

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
