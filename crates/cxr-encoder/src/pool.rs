//! Max pooling with a backward pass for the ResNet stem.
//!
//! Candle's `max_pool2d` has a gradient only when kernel equals stride; the ResNet stem uses a 3x3
//! window with stride 2 and padding 1. This version takes the maximum of shifted views with
//! `Tensor::maximum`, which has a gradient, after a reshape that exposes stride-2 positions.

use candle_core::{Tensor, D};

use crate::Result;

/// Pads the last dimension with `before` and `after` copies of `value`.
fn pad_last(x: &Tensor, before: usize, after: usize, value: f64) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(3);
    let mut dims = x.dims().to_vec();
    let last = dims.len() - 1;
    if before > 0 {
        dims[last] = before;
        parts.push((Tensor::ones(dims.as_slice(), x.dtype(), x.device())? * value)?);
    }
    parts.push(x.clone());
    if after > 0 {
        dims[last] = after;
        parts.push((Tensor::ones(dims.as_slice(), x.dtype(), x.device())? * value)?);
    }
    Ok(Tensor::cat(&parts, D::Minus1)?)
}

/// 3-tap, stride-2, padding-1 maximum along the last dimension.
fn max3_stride2_last(x: &Tensor) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    let out = (len + 2 - 3) / 2 + 1;
    // Padded positions 0..2*out+2 hold [pad, x, pad...]; window o covers 2o, 2o+1, 2o+2.
    let total = 2 * out + 2;
    let x = pad_last(x, 1, total - len - 1, f64::from(f32::MIN))?;
    let mut dims = x.dims().to_vec();
    let last = dims.len() - 1;
    dims[last] = out + 1;
    dims.push(2);
    let pairs = x.reshape(dims.as_slice())?;
    let a = pairs.narrow(last, 0, out)?;
    let first = a.narrow(D::Minus1, 0, 1)?;
    let second = a.narrow(D::Minus1, 1, 1)?;
    let third = pairs.narrow(last, 1, out)?.narrow(D::Minus1, 0, 1)?;
    Ok(first
        .maximum(&second)?
        .maximum(&third)?
        .squeeze(D::Minus1)?)
}

/// `torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)` on `(batch, channels, h, w)`, with a
/// gradient. Padding never wins (PyTorch pads with minus infinity).
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    let w = max3_stride2_last(x)?;
    let h = max3_stride2_last(&w.transpose(2, 3)?)?;
    Ok(h.transpose(2, 3)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn reference(x: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut out = vec![f32::MIN; oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                for dy in 0..3 {
                    for dx in 0..3 {
                        let (y, xx) = ((2 * oy + dy) as i64 - 1, (2 * ox + dx) as i64 - 1);
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            let v = x[y as usize * w + xx as usize];
                            out[oy * ow + ox] = out[oy * ow + ox].max(v);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_pooling_and_routes_gradient_to_maxima() {
        for (h, w) in [(7, 8), (8, 7), (1, 1), (2, 5), (6, 6)] {
            let data: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            let x = Var::from_tensor(
                &Tensor::from_vec(data.clone(), (1, 1, h, w), &Device::Cpu).unwrap(),
            )
            .unwrap();
            let y = max_pool_3x3_s2(x.as_tensor()).unwrap();
            let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(got, reference(&data, h, w), "{h}x{w}");
            let g = y.sum_all().unwrap().backward().unwrap();
            let gx = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            // Each output sends a total gradient of 1 to the input (ties split it).
            let total: f32 = gx.iter().sum();
            assert!((total - got.len() as f32).abs() < 1e-4, "{h}x{w}: {total}");
        }
    }
}
