//! Embedding normalisation: the space the diffusion runs in, saved with the model and undone before
//! any caller-supplied loss sees a prediction.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Error, Result};

/// Which normalisation to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// Leave embeddings as they are.
    Identity,
    /// L2-normalise, then multiply by `sqrt(dim)` (DALLE2-pytorch's `image_embed_scale` on CLIP
    /// embeddings: per-dimension std near 1). The norm is lost: the inverse gives unit vectors.
    L2SqrtDim,
    /// Global scalar min-max to `[-1, 1]` with the data set's min and max (the published code).
    MinMax,
    /// Per-dimension standardisation with the data set's mean and std (Karlo).
    Standardize,
}

/// A fitted normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EmbeddingNorm {
    /// No change.
    Identity,
    /// `x / ||x|| * sqrt(dim)`.
    L2SqrtDim {
        /// Embedding dimension.
        dim: usize,
    },
    /// `(2x - max - min) / (max - min)`.
    MinMax {
        /// Data-set minimum over all entries.
        min: f64,
        /// Data-set maximum over all entries.
        max: f64,
    },
    /// `(x - mean) / std` per dimension.
    Standardize {
        /// Per-dimension mean.
        mean: Vec<f32>,
        /// Per-dimension standard deviation (floored at 1e-6).
        std: Vec<f32>,
    },
}

impl EmbeddingNorm {
    /// Fits `kind` to `data` (`(n, dim)`).
    pub fn fit(kind: NormKind, data: &Tensor) -> Result<Self> {
        let (n, dim) = data.dims2().map_err(|_| Error::Shape {
            what: "embeddings",
            got: data.dims().to_vec(),
            expected: "(n, dim)".into(),
        })?;
        if n == 0 {
            return Err(Error::Empty { what: "embeddings" });
        }
        let d = data.to_dtype(DType::F64)?;
        Ok(match kind {
            NormKind::Identity => EmbeddingNorm::Identity,
            NormKind::L2SqrtDim => EmbeddingNorm::L2SqrtDim { dim },
            NormKind::MinMax => {
                let min = d.min_all()?.to_scalar::<f64>()?;
                let max = d.max_all()?.to_scalar::<f64>()?;
                if max <= min {
                    return Err(config_err("min_max", "all embedding values are equal"));
                }
                EmbeddingNorm::MinMax { min, max }
            }
            NormKind::Standardize => {
                let mean = d.mean_keepdim(0)?;
                let var = d.broadcast_sub(&mean)?.sqr()?.mean(0)?;
                let std: Vec<f32> = var
                    .sqrt()?
                    .to_vec1::<f64>()?
                    .into_iter()
                    .map(|s| s.max(1e-6) as f32)
                    .collect();
                let mean: Vec<f32> = mean
                    .squeeze(0)?
                    .to_vec1::<f64>()?
                    .into_iter()
                    .map(|m| m as f32)
                    .collect();
                EmbeddingNorm::Standardize { mean, std }
            }
        })
    }

    fn check_dim(&self, x: &Tensor) -> Result<()> {
        let want = match self {
            EmbeddingNorm::L2SqrtDim { dim } => Some(*dim),
            EmbeddingNorm::Standardize { mean, .. } => Some(mean.len()),
            _ => None,
        };
        match (want, x.dims().last()) {
            (Some(w), Some(&g)) if w != g => Err(Error::Shape {
                what: "embeddings",
                got: x.dims().to_vec(),
                expected: format!("last dimension {w} (the fitted normalisation's)"),
            }),
            _ => Ok(()),
        }
    }

    /// Into the diffusion space.
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        self.check_dim(x)?;
        Ok(match self {
            EmbeddingNorm::Identity => x.clone(),
            EmbeddingNorm::L2SqrtDim { dim } => {
                let norm = x
                    .sqr()?
                    .sum_keepdim(D::Minus1)?
                    .sqrt()?
                    .clamp(1e-12, f64::MAX)?;
                x.broadcast_div(&norm)?.affine((*dim as f64).sqrt(), 0.0)?
            }
            EmbeddingNorm::MinMax { min, max } => {
                x.affine(2.0 / (max - min), -(max + min) / (max - min))?
            }
            EmbeddingNorm::Standardize { mean, std } => {
                let (m, s) = self.stats(mean, std, x)?;
                x.broadcast_sub(&m)?.broadcast_div(&s)?
            }
        })
    }

    /// Back to the caller's space (differentiable: gradients of a loss on the result reach `x`).
    pub fn denormalize(&self, x: &Tensor) -> Result<Tensor> {
        self.check_dim(x)?;
        Ok(match self {
            EmbeddingNorm::Identity => x.clone(),
            EmbeddingNorm::L2SqrtDim { dim } => x.affine(1.0 / (*dim as f64).sqrt(), 0.0)?,
            EmbeddingNorm::MinMax { min, max } => x.affine((max - min) / 2.0, (max + min) / 2.0)?,
            EmbeddingNorm::Standardize { mean, std } => {
                let (m, s) = self.stats(mean, std, x)?;
                x.broadcast_mul(&s)?.broadcast_add(&m)?
            }
        })
    }

    fn stats(&self, mean: &[f32], std: &[f32], x: &Tensor) -> Result<(Tensor, Tensor)> {
        let m = Tensor::from_slice(mean, mean.len(), x.device())?.to_dtype(x.dtype())?;
        let s = Tensor::from_slice(std, std.len(), x.device())?.to_dtype(x.dtype())?;
        Ok((m, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn round_trips_and_ranges() {
        let dev = Device::Cpu;
        let mut rng = cmkd_train::rng::stream(0, "n");
        let x = cmkd_train::rng::randn(&mut rng, 3.0, 2.0, (50, 6), DType::F32, &dev).unwrap();
        for kind in [NormKind::Identity, NormKind::MinMax, NormKind::Standardize] {
            let n = EmbeddingNorm::fit(kind, &x).unwrap();
            let y = n.normalize(&x).unwrap();
            let back = n.denormalize(&y).unwrap();
            let err = (back - &x)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(err < 1e-4, "{kind:?}");
            if kind == NormKind::MinMax {
                let (lo, hi) = (
                    y.min_all().unwrap().to_scalar::<f32>().unwrap(),
                    y.max_all().unwrap().to_scalar::<f32>().unwrap(),
                );
                assert!((lo + 1.0).abs() < 1e-5 && (hi - 1.0).abs() < 1e-5);
            }
            if kind == NormKind::Standardize {
                let m = y
                    .mean(0)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(m < 1e-4);
            }
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::from_str::<EmbeddingNorm>(&json).unwrap(), n);
        }
        let l2 = EmbeddingNorm::fit(NormKind::L2SqrtDim, &x).unwrap();
        let y = l2.normalize(&x).unwrap();
        let norms = y
            .sqr()
            .unwrap()
            .sum(1)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(norms.iter().all(|v| (v - 6f32.sqrt()).abs() < 1e-4));
        assert!(l2
            .normalize(&Tensor::zeros((2, 5), DType::F32, &dev).unwrap())
            .is_err());
        assert!(EmbeddingNorm::fit(
            NormKind::MinMax,
            &Tensor::zeros((0, 3), DType::F32, &dev).unwrap()
        )
        .is_err());
    }
}
