//! Per-channel broadcasts `(1, C, 1, 1) -> (N, C, H, W)` whose gradient is a fast per-channel sum.
//!
//! Batch norm broadcasts its mean, scale and shift over the batch and the image. Candle's gradient
//! of a broadcast is `sum_keepdim` over the broadcast dimensions, which for dimensions `(0, 2, 3)`
//! takes Candle's general reduction path: three integer divisions per element to find the output
//! index. In CNN training that reduction was a third of the main thread's time (perf, `pe_cxr`).
//! [`broadcast_channels`] is the same broadcast whose backward sums each channel with a plain loop.
//!
//! The sums are bit-identical to Candle's: both add the elements of a channel one at a time, in
//! the source's row-major order (batch, then row, then column), into an accumulator starting at
//! zero, so a model's results do not change.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};

/// `v` (`C` values, any shape with `C` elements in channel order) broadcast to `(n, C, h, w)`.
///
/// On the CPU in f32/f64 the output is materialised and its gradient is the per-channel sum of
/// this module; elsewhere it is Candle's `broadcast_as`, with Candle's gradient.
pub(crate) fn broadcast_channels(v: &Tensor, full: &Shape) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = full.dims4()?;
    let v = v.reshape((1, c, 1, 1))?;
    if !v.device().is_cpu() || !matches!(v.dtype(), DType::F32 | DType::F64) {
        return v.broadcast_as(full);
    }
    v.apply_op1(ChannelBroadcast { n, c, h, w })
}

/// Forward: materialise the broadcast. Backward: [`ChannelSum`] of the output gradient.
struct ChannelBroadcast {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

fn broadcast<T: WithDType>(v: &[T], n: usize, hw: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n * v.len() * hw);
    for _ in 0..n {
        for &x in v {
            out.extend(std::iter::repeat_n(x, hw));
        }
    }
    out
}

impl CustomOp1 for ChannelBroadcast {
    fn name(&self) -> &'static str {
        "channel-broadcast"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.n, self.c, self.h, self.w));
        let hw = self.h * self.w;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(broadcast(&channel_values(v, l)?, self.n, hw)),
            CpuStorage::F64(v) => CpuStorage::F64(broadcast(&channel_values(v, l)?, self.n, hw)),
            _ => candle_core::bail!("channel-broadcast: f32 or f64 only"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        _v: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.apply_op1(ChannelSum)?))
    }
}

/// The `C` values of a `(1, C, 1, 1)` layout, in channel order.
fn channel_values<T: WithDType>(v: &[T], l: &Layout) -> candle_core::Result<Vec<T>> {
    let c = l.shape().dims()[1];
    let stride = l.stride()[1];
    let start = l.start_offset();
    (0..c)
        .map(|i| {
            v.get(start + i * stride)
                .copied()
                .ok_or_else(|| candle_core::Error::Msg("channel-broadcast: short storage".into()))
        })
        .collect()
}

/// `(N, C, H, W) -> (1, C, 1, 1)`: the sum of each channel, in row-major order (as Candle's
/// `sum_keepdim(&[0, 2, 3])`, bit for bit). Its gradient broadcasts back.
struct ChannelSum;

fn channel_sum<T: WithDType>(g: &[T], l: &Layout) -> candle_core::Result<Vec<T>> {
    let (n, c, h, w) = l.shape().dims4()?;
    let hw = h * w;
    let mut dst = vec![T::zero(); c];
    match l.contiguous_offsets() {
        Some((o1, o2)) => {
            for (i, x) in g[o1..o2].chunks_exact(hw).enumerate() {
                let acc = &mut dst[i % c];
                for &x in x {
                    *acc += x;
                }
            }
        }
        None => {
            let s = l.stride();
            let start = l.start_offset();
            for b in 0..n {
                for (ch, acc) in dst.iter_mut().enumerate() {
                    for y in 0..h {
                        let row = start + b * s[0] + ch * s[1] + y * s[2];
                        for x in 0..w {
                            *acc += g[row + x * s[3]];
                        }
                    }
                }
            }
        }
    }
    Ok(dst)
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = l.shape().dims4()?.1;
        let out = match s {
            CpuStorage::F32(g) => CpuStorage::F32(channel_sum(g, l)?),
            CpuStorage::F64(g) => CpuStorage::F64(channel_sum(g, l)?),
            _ => candle_core::bail!("channel-sum: f32 or f64 only"),
        };
        Ok((out, Shape::from((1, c, 1, 1))))
    }

    fn bwd(&self, g: &Tensor, _out: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(broadcast_channels(grad, g.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn bits(t: &Tensor) -> Vec<u32> {
        cmkd_train::compare::f32_bits(t).unwrap()
    }

    #[test]
    fn forward_and_gradient_are_candles_bit_for_bit() {
        let dev = Device::Cpu;
        let (n, c, h, w) = (3, 5, 7, 6);
        let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
        let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, c, &dev).unwrap()).unwrap();
        let weights = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
        let run = |fast: bool| {
            let vb = v.as_tensor().reshape((1, c, 1, 1)).unwrap();
            let b = if fast {
                broadcast_channels(&vb, x.shape()).unwrap()
            } else {
                vb.broadcast_as(x.shape()).unwrap()
            };
            let y = x.mul(&b).unwrap().sub(&b).unwrap();
            let loss = y.mul(&weights).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            (bits(&y), bits(grads.get(v.as_tensor()).unwrap()))
        };
        let (y_fast, g_fast) = run(true);
        let (y_ref, g_ref) = run(false);
        assert_eq!(y_fast, y_ref);
        assert_eq!(g_fast, g_ref);
    }

    #[test]
    fn channel_sum_matches_candle_on_strided_input() {
        let dev = Device::Cpu;
        // A transposed (non-contiguous) gradient takes the strided path.
        let g = Tensor::randn(0f32, 1.0, (2, 4, 6, 3), &dev)
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        assert!(!g.is_contiguous());
        let fast = g.apply_op1(ChannelSum).unwrap();
        let reference = g.sum_keepdim(&[0usize, 2, 3][..]).unwrap();
        assert_eq!(bits(&fast), bits(&reference));
        let contiguous = g.contiguous().unwrap().apply_op1(ChannelSum).unwrap();
        assert_eq!(bits(&contiguous), bits(&reference));
    }

    #[test]
    fn f64_and_other_dtypes() {
        let dev = Device::Cpu;
        let v = Tensor::new(&[1.0f64, 2.0], &dev).unwrap();
        let full = Shape::from((2, 2, 1, 3));
        let b = broadcast_channels(&v, &full).unwrap();
        assert_eq!(b.dims(), &[2, 2, 1, 3]);
        assert_eq!(
            b.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        // f16 keeps Candle's broadcast (a view).
        let h = v.to_dtype(DType::F16).unwrap();
        let b = broadcast_channels(&h, &full).unwrap();
        assert_eq!(b.dims(), &[2, 2, 1, 3]);
        assert!(!b.is_contiguous());
    }
}
