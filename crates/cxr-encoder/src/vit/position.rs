//! Resampling learned position embeddings to another number of tokens.
//!
//! Resampling is written as a product with a fixed weight matrix (`out = W @ pos`), built here on the
//! host with PyTorch's exact coordinate rules. A matrix product carries a gradient to the embeddings
//! (Candle's `upsample_bilinear2d` does not) and costs nothing at these sizes.

use candle_core::Tensor;

use crate::{Error, Result};

/// PyTorch's cubic-convolution coefficient for `|x| <= 1` (`A = -0.75`).
fn cubic1(x: f64, a: f64) -> f64 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

/// PyTorch's cubic-convolution coefficient for `1 < |x| < 2`.
fn cubic2(x: f64, a: f64) -> f64 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// The `(out_len, in_len)` row-major matrix of `torch.nn.functional.interpolate(mode="bicubic",
/// align_corners=False)` along one axis with an output size given (no antialiasing), as
/// transformers' DINOv2 uses it. Empty when `in_len` is 0.
pub fn bicubic_weights(in_len: usize, out_len: usize) -> Vec<f32> {
    if in_len == 0 {
        return Vec::new();
    }
    let mut w = vec![0f64; out_len * in_len];
    let scale = in_len as f64 / out_len as f64;
    let a = -0.75;
    for o in 0..out_len {
        let real = scale * (o as f64 + 0.5) - 0.5;
        let f = real.floor();
        let t = real - f;
        let coeffs = [
            cubic2(t + 1.0, a),
            cubic1(t, a),
            cubic1(1.0 - t, a),
            cubic2(2.0 - t, a),
        ];
        for (k, c) in coeffs.iter().enumerate() {
            let idx = (f as i64 - 1 + k as i64).clamp(0, in_len as i64 - 1) as usize;
            w[o * in_len + idx] += c;
        }
    }
    w.into_iter().map(|v| v as f32).collect()
}

/// The `(out_len, in_len)` matrix of `interpolate(mode="linear", align_corners=False)` along one
/// axis with an output size given. Empty when `in_len` is 0.
pub fn linear_weights(in_len: usize, out_len: usize) -> Vec<f32> {
    if in_len == 0 {
        return Vec::new();
    }
    let mut w = vec![0f64; out_len * in_len];
    let scale = in_len as f64 / out_len as f64;
    for o in 0..out_len {
        let real = (scale * (o as f64 + 0.5) - 0.5).max(0.0);
        let i0 = (real.floor() as usize).min(in_len - 1);
        let i1 = (i0 + 1).min(in_len - 1);
        let l1 = real - i0 as f64;
        w[o * in_len + i0] += 1.0 - l1;
        w[o * in_len + i1] += l1;
    }
    w.into_iter().map(|v| v as f32).collect()
}

/// Resamples patch position embeddings laid out on a `from = (rows, cols)` grid, shape
/// `(rows * cols, dim)`, to a `to` grid with bicubic interpolation (transformers' DINOv2 rule).
/// Returns `(to.0 * to.1, dim)`.
pub fn resample_grid(pos: &Tensor, from: (usize, usize), to: (usize, usize)) -> Result<Tensor> {
    let (n, _) = pos.dims2()?;
    if n != from.0 * from.1 || n == 0 || to.0 == 0 || to.1 == 0 {
        return Err(Error::Input(format!(
            "cannot resample {n} position embeddings on a {from:?} grid to {to:?}"
        )));
    }
    if from == to {
        return Ok(pos.clone());
    }
    let wr = bicubic_weights(from.0, to.0);
    let wc = bicubic_weights(from.1, to.1);
    // Kronecker product: out[(y, x)] = sum_{i, j} wr[y, i] wc[x, j] pos[(i, j)].
    let mut k = Vec::with_capacity(to.0 * to.1 * n);
    for y in 0..to.0 {
        for x in 0..to.1 {
            for i in 0..from.0 {
                for j in 0..from.1 {
                    k.push(wr[y * from.0 + i] * wc[x * from.1 + j]);
                }
            }
        }
    }
    let k = Tensor::from_vec(k, (to.0 * to.1, n), pos.device())?.to_dtype(pos.dtype())?;
    Ok(k.matmul(pos)?)
}

/// Resamples a sequence of position embeddings `(len, dim)` to `out_len` positions with linear
/// interpolation (the 1D rule of `interpolate(mode="linear", align_corners=False)`).
pub fn resample_sequence(pos: &Tensor, out_len: usize) -> Result<Tensor> {
    let n = pos.dim(0)?;
    if out_len == 0 || n == 0 {
        return Err(Error::Input(format!(
            "cannot resample {n} position embeddings to {out_len} positions"
        )));
    }
    if n == out_len {
        return Ok(pos.clone());
    }
    let w = Tensor::from_vec(linear_weights(n, out_len), (out_len, n), pos.device())?
        .to_dtype(pos.dtype())?;
    Ok(w.matmul(pos)?)
}

/// Splits `(1, 1 + n, dim)` embeddings into the class position `(1, dim)` and the rest `(n, dim)`.
pub fn split_class(pos: &Tensor) -> Result<(Tensor, Tensor)> {
    let pos = pos.squeeze(0)?;
    let n = pos.dim(0)?;
    if n < 2 {
        return Err(Error::Input(format!(
            "position embeddings have only {n} rows"
        )));
    }
    Ok((pos.narrow(0, 0, 1)?, pos.narrow(0, 1, n - 1)?))
}

/// Concatenates a class position and patch positions back into `(1, 1 + n, dim)`.
pub fn join_class(class: &Tensor, rest: &Tensor) -> Result<Tensor> {
    Ok(Tensor::cat(&[class, rest], 0)?.unsqueeze(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weights_are_partitions_of_unity_and_identity_at_same_size() {
        for (i, o) in [(4, 7), (7, 4), (5, 5), (1, 3), (37, 16)] {
            for w in [bicubic_weights(i, o), linear_weights(i, o)] {
                for r in 0..o {
                    let s: f32 = w[r * i..(r + 1) * i].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{i}->{o}: row {r} sums to {s}");
                }
            }
        }
        assert!(bicubic_weights(0, 3).is_empty() && linear_weights(0, 3).is_empty());
        let w = linear_weights(5, 5);
        for r in 0..5 {
            assert_eq!(w[r * 5 + r], 1.0);
        }
    }

    #[test]
    fn sequence_resampling_keeps_constants_and_has_gradient() {
        let dev = Device::Cpu;
        let pos = candle_core::Var::from_tensor(
            &Tensor::ones((6, 3), candle_core::DType::F32, &dev).unwrap(),
        )
        .unwrap();
        let out = resample_sequence(pos.as_tensor(), 11).unwrap();
        let v = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| (x - 1.0).abs() < 1e-6));
        let g = out.sum_all().unwrap().backward().unwrap();
        let gs = g
            .get(pos.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((gs - 33.0).abs() < 1e-4);
        assert!(resample_grid(pos.as_tensor(), (2, 3), (4, 4)).is_ok());
        assert!(resample_grid(pos.as_tensor(), (2, 2), (4, 4)).is_err());
    }
}
