//! Seeded random tensors.
//!
//! Candle's CPU generator cannot be seeded, so every random draw that must be reproducible (weight
//! initialisation, diffusion noise, dropout masks, timesteps) comes from a `rand` [`StdRng`] and is
//! turned into a tensor here.

use candle_core::{DType, Device, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::Result;

/// A generator seeded from `seed` and a stream name, so that independent consumers (e.g. two
/// variables, or noise and dropout) get independent, order-free streams from one user seed.
pub fn stream(seed: u64, name: &str) -> StdRng {
    // FNV-1a over the name, mixed with the seed by splitmix64: stable across platforms and releases.
    let h = crate::hash::fnv1a(name.as_bytes());
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(h)))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard-normal samples scaled by `std` and shifted by `mean`.
pub fn randn(
    rng: &mut StdRng,
    mean: f64,
    std: f64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            (mean + std * z) as f32
        })
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
}

/// Uniform samples in `[lo, hi)`.
pub fn uniform(
    rng: &mut StdRng,
    lo: f64,
    hi: f64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.random_range(lo..hi) as f32)
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
}

/// A 0/1 mask where each element is 1 with probability `p_keep`.
pub fn bernoulli(
    rng: &mut StdRng,
    p_keep: f64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            if rng.random::<f64>() < p_keep {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
}

/// `n` integers drawn uniformly from `0..high`, as a `u32` tensor (e.g. per-sample timesteps).
pub fn randint(rng: &mut StdRng, high: u32, n: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = (0..n).map(|_| rng.random_range(0..high)).collect();
    Ok(Tensor::from_vec(v, n, device)?)
}

/// A permutation of `0..n` (Fisher-Yates), e.g. for shuffling a data set each epoch.
pub fn permutation(rng: &mut StdRng, n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        idx.swap(i, j);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = randn(&mut stream(7, "w"), 0.0, 1.0, 64, DType::F32, &Device::Cpu).unwrap();
        let b = randn(&mut stream(7, "w"), 0.0, 1.0, 64, DType::F32, &Device::Cpu).unwrap();
        let c = randn(&mut stream(7, "b"), 0.0, 1.0, 64, DType::F32, &Device::Cpu).unwrap();
        let (a, b, c) = (
            a.to_vec1::<f32>().unwrap(),
            b.to_vec1::<f32>().unwrap(),
            c.to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn moments_and_ranges() {
        let mut rng = stream(1, "moments");
        let x = randn(&mut rng, 2.0, 3.0, 20_000, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = x.iter().map(|v| *v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((mean - 2.0).abs() < 0.1, "mean {mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.1, "std {}", var.sqrt());
        let u = uniform(&mut rng, -1.0, 0.5, 1000, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(u.iter().all(|v| (-1.0..0.5).contains(v)));
        let m = bernoulli(&mut rng, 0.25, 4000, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let frac = m.iter().sum::<f32>() / 4000.0;
        assert!((frac - 0.25).abs() < 0.03);
        let t = randint(&mut rng, 5, 100, &Device::Cpu)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert!(t.iter().all(|v| *v < 5));
        let mut p = permutation(&mut rng, 50);
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
