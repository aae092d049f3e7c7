//! Position information of the DALLE2-style transformer: rotary embeddings (rotary-embedding-torch,
//! interleaved pairs, theta 10^4) and T5's bucketed relative position bias.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::error::Result;

/// Cos/sin tables of a rotary embedding over `rot_dim` leading features.
#[derive(Debug, Clone)]
pub struct Rotary {
    rot_dim: usize,
    /// `(n, rot_dim)`
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// Tables for positions `0..n`, rotating the first `rot_dim` features (even).
    pub fn new(rot_dim: usize, n: usize, dtype: DType, device: &Device) -> Result<Self> {
        let half = rot_dim / 2;
        let mut cos = Vec::with_capacity(n * rot_dim);
        let mut sin = Vec::with_capacity(n * rot_dim);
        for p in 0..n {
            for i in 0..half {
                // rotary-embedding-torch computes the frequencies in f32.
                let inv = 1.0f32 / 10000f32.powf((2 * i) as f32 / rot_dim as f32);
                let a = p as f32 * inv;
                cos.extend([a.cos(), a.cos()]);
                sin.extend([a.sin(), a.sin()]);
            }
        }
        Ok(Self {
            rot_dim,
            cos: Tensor::from_vec(cos, (n, rot_dim), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (n, rot_dim), device)?.to_dtype(dtype)?,
        })
    }

    /// Rotates `x` of shape `(..., n, d)` at positions `0..n` (along the second-to-last axis).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        self.apply_at(x, 0)
    }

    /// Rotates `x` of shape `(..., n, d)` at positions `offset..offset+n`.
    pub fn apply_at(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let n = x.dim(D::Minus2)?;
        let r = self.rot_dim;
        let xr = x.narrow(D::Minus1, 0, r)?;
        let (cos, sin) = (
            self.cos.narrow(0, offset, n)?,
            self.sin.narrow(0, offset, n)?,
        );
        let rotated = (xr.broadcast_mul(&cos)? + rotate_half(&xr)?.broadcast_mul(&sin)?)?;
        if r == d {
            Ok(rotated)
        } else {
            Ok(Tensor::cat(
                &[&rotated, &x.narrow(D::Minus1, r, d - r)?],
                D::Minus1,
            )?)
        }
    }
}

/// Interleaved `rotate_half`: `(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)`.
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let r = *dims.last().expect("rank >= 1");
    let mut paired = dims.clone();
    paired.pop();
    paired.extend([r / 2, 2]);
    let p = x.reshape(paired)?;
    let x1 = p.narrow(D::Minus1, 0, 1)?;
    let x2 = p.narrow(D::Minus1, 1, 1)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?.reshape(dims)?)
}

/// T5 relative position bias with DALLE2-pytorch's one-sided buckets.
#[derive(Debug, Clone)]
pub struct RelPosBias {
    /// `(num_buckets, heads)`
    table: Tensor,
    num_buckets: usize,
    max_distance: usize,
}

impl RelPosBias {
    /// Learned table `relative_attention_bias.weight` (32 buckets, max distance 128).
    pub fn new(heads: usize, vb: VarBuilder) -> Result<Self> {
        let table = vb.get_with_hints(
            (32, heads),
            "relative_attention_bias.weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        Ok(Self {
            table,
            num_buckets: 32,
            max_distance: 128,
        })
    }

    fn bucket(&self, rel: i64) -> u32 {
        let n = (-rel).max(0);
        let max_exact = (self.num_buckets / 2) as i64;
        if n < max_exact {
            return n as u32;
        }
        // In f32, truncated, as the reference computes it.
        let v = max_exact
            + ((n as f32 / max_exact as f32).ln()
                / (self.max_distance as f32 / max_exact as f32).ln()
                * (self.num_buckets as i64 - max_exact) as f32) as i64;
        v.min(self.num_buckets as i64 - 1) as u32
    }

    /// Bias `(heads, i, j)` for `i` queries at positions `0..i` and `j` keys at positions `0..j`.
    pub fn forward(&self, i: usize, j: usize) -> Result<Tensor> {
        let idx: Vec<u32> = (0..i)
            .flat_map(|q| (0..j).map(move |k| (q, k)))
            .map(|(q, k)| self.bucket(k as i64 - q as i64))
            .collect();
        let idx = Tensor::from_vec(idx, i * j, self.table.device())?;
        let heads = self.table.dim(1)?;
        Ok(self
            .table
            .index_select(&idx, 0)?
            .t()?
            .reshape((heads, i, j))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_t5_one_sided() {
        let map = candle_nn::VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
        let r = RelPosBias::new(2, vb).unwrap();
        assert_eq!(r.bucket(3), 0);
        assert_eq!(r.bucket(0), 0);
        assert_eq!(r.bucket(-15), 15);
        assert_eq!(r.bucket(-16), 16);
        // 16 + floor(ln(2)/ln(8)*16) = 16 + 5
        assert_eq!(r.bucket(-32), 21);
        assert_eq!(r.bucket(-1000), 31);
        assert_eq!(r.forward(3, 4).unwrap().dims(), &[2, 3, 4]);
    }

    #[test]
    fn rotary_preserves_norms_and_rotates_pairs() {
        let dev = Device::Cpu;
        let rot = Rotary::new(4, 3, DType::F32, &dev).unwrap();
        let x = Tensor::new(
            &[
                [1f32, 0., 0., 1., 5.],
                [1., 0., 0., 1., 5.],
                [1., 0., 0., 1., 5.],
            ],
            &dev,
        )
        .unwrap();
        let y = rot.apply(&x).unwrap().to_vec2::<f32>().unwrap();
        // Position 0 is unchanged; position 1 rotates the first pair by 1 radian.
        assert_eq!(y[0], vec![1., 0., 0., 1., 5.]);
        assert!((y[1][0] - 1f32.cos()).abs() < 1e-6 && (y[1][1] - 1f32.sin()).abs() < 1e-6);
        // The second pair turns by 1/100 radian per position.
        assert!((y[2][2] + (0.02f32).sin()).abs() < 1e-6 && (y[2][3] - 0.02f32.cos()).abs() < 1e-6);
        assert_eq!(y[2][4], 5.0);
    }
}
