//! Phase A, part 2: the per-fold trainable parts on top of the frozen encoders.
//!
//! - [`CtpaHead`]: the paper's patch-free sequence ViT with its embedding and PE head, reading a
//!   CT's frozen slice embeddings (the CTPA-only classifier and, frozen, the teacher).
//! - [`CxrHead`]: a projection of the frozen X-ray features to the shared embedding width and a
//!   PE head (the CXR-only classifier, and the student of every distillation baseline).

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarMap};
use ctpa_encoder::{SequenceVit, SequenceVitConfig};
use cxr_encoder::{Classifier, ClassifierTrainer, FitConfig};
use kd_losses::EmbeddingClassifier;

use super::error::Result;

/// Pads sequences `(len_i, d)` to `(batch, max_len, d)`.
pub(crate) fn pad_sequences(seqs: &[&Tensor]) -> Result<(Tensor, Vec<usize>)> {
    let lengths: Vec<usize> = seqs
        .iter()
        .map(|s| s.dim(0))
        .collect::<candle_core::Result<_>>()?;
    let max = lengths.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::with_capacity(seqs.len());
    for s in seqs {
        let (l, d) = s.dims2()?;
        rows.push(if l < max {
            Tensor::cat(
                &[*s, &Tensor::zeros((max - l, d), s.dtype(), s.device())?],
                0,
            )?
        } else {
            (*s).clone()
        });
    }
    Ok((Tensor::stack(&rows, 0)?, lengths))
}

/// Embeddings `(n, embed_dim)` and PE probabilities of slice-embedding sequences through `vit`, in
/// evaluation mode, `batch` sequences at a time.
pub(crate) fn embed_sequences(
    vit: &SequenceVit,
    seqs: &[Tensor],
    batch: usize,
) -> Result<(Tensor, Vec<f64>)> {
    let mut zs = Vec::new();
    let mut probs = Vec::new();
    for chunk in seqs.chunks(batch.max(1)) {
        let refs: Vec<&Tensor> = chunk.iter().collect();
        let (x, lengths) = pad_sequences(&refs)?;
        let (z, logit) = vit.forward(&x, &lengths)?;
        zs.push(z.detach());
        probs.extend(sigmoid_vec(&logit)?);
    }
    Ok((Tensor::cat(&zs, 0)?, probs))
}

/// The CTPA classifier on frozen slice embeddings.
pub struct CtpaHead {
    /// The sequence ViT (embedding + head).
    pub vit: SequenceVit,
}

impl CtpaHead {
    /// A fresh model.
    pub fn new(config: SequenceVitConfig, seed: u64, device: &Device) -> Result<Self> {
        Ok(Self {
            vit: SequenceVit::new(config, seed, DType::F32, device)?,
        })
    }

    /// Trains on `(sequence, label)` pairs.
    pub fn fit(&self, data: &[(Tensor, f32)], fit: FitConfig) -> Result<Vec<f64>> {
        let mut trainer = ClassifierTrainer::new(self, fit)?;
        Ok(trainer.fit(self, data)?)
    }

    /// Embeddings `(n, embed_dim)` and PE probabilities of `seqs`, in evaluation mode.
    pub fn embed(&self, seqs: &[Tensor], batch: usize) -> Result<(Tensor, Vec<f64>)> {
        embed_sequences(&self.vit, seqs, batch)
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        cmkd_train::count_params(&self.vit.trainable_vars())
    }
}

impl Classifier for CtpaHead {
    type Item = Tensor;
    type Error = ctpa_encoder::Error;

    fn logits(&self, batch: &[&Tensor], _train: bool) -> Result<Tensor, Self::Error> {
        let (x, lengths) = pad_sequences(batch)
            .map_err(|e| ctpa_encoder::Error::Candle(candle_core::Error::wrap(e)))?;
        Ok(self.vit.forward(&x, &lengths)?.1)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.vit.trainable_vars()
    }
}

/// The frozen CTPA head as teacher: its input is the CTPA embedding itself.
pub struct TeacherHead<'a>(pub &'a SequenceVit);

impl EmbeddingClassifier for TeacherHead<'_> {
    fn embedding(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        Ok(input.clone())
    }

    fn logit(&self, embedding: &Tensor) -> candle_core::Result<Tensor> {
        self.0
            .head_logit(embedding)
            .map_err(candle_core::Error::wrap)
    }
}

/// A projection of frozen X-ray features and a PE head.
pub struct CxrHead {
    map: VarMap,
    proj: Linear,
    head: Linear,
}

impl CxrHead {
    /// A fresh model mapping `in_dim` features to `embed_dim`.
    pub fn new(in_dim: usize, embed_dim: usize, seed: u64, device: &Device) -> Result<Self> {
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, DType::F32, device);
        let proj = candle_nn::linear(in_dim, embed_dim, vb.pp("proj"))?;
        let head = candle_nn::linear(embed_dim, 1, vb.pp("head"))?;
        Ok(Self { map, proj, head })
    }

    /// Its variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        cmkd_train::count_params(&self.vars())
    }

    /// Trains on `(feature row, label)` pairs with BCE.
    pub fn fit(&self, data: &[(Tensor, f32)], fit: FitConfig) -> Result<Vec<f64>> {
        let mut trainer = ClassifierTrainer::new(self, fit)?;
        Ok(trainer.fit(self, data)?)
    }

    /// Embeddings and PE probabilities of feature rows `(n, f)`.
    pub fn embed(&self, features: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        let z = self.proj.forward(features)?;
        let logit = self.head.forward(&z)?.squeeze(1)?;
        Ok((z.detach(), sigmoid_vec(&logit)?))
    }
}

impl Classifier for CxrHead {
    type Item = Tensor;
    type Error = cxr_encoder::Error;

    fn logits(&self, batch: &[&Tensor], _train: bool) -> Result<Tensor, Self::Error> {
        let x = Tensor::stack(batch, 0)?;
        Ok(self.head.forward(&self.proj.forward(&x)?)?.squeeze(1)?)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.vars()
    }
}

impl EmbeddingClassifier for CxrHead {
    fn embedding(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        self.proj.forward(input)
    }

    fn logit(&self, embedding: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(embedding)?.squeeze(1)
    }
}

impl EmbeddingClassifier for &CxrHead {
    fn embedding(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        (*self).embedding(input)
    }

    fn logit(&self, embedding: &Tensor) -> candle_core::Result<Tensor> {
        (*self).logit(embedding)
    }
}

/// Element-wise sigmoid of a logit vector, as f64.
pub(crate) fn sigmoid_vec(logit: &Tensor) -> Result<Vec<f64>> {
    Ok(candle_nn::ops::sigmoid(logit)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}
