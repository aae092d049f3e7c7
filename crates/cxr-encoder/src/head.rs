//! A frozen copy of a PE head, for classifying embeddings made elsewhere.
//!
//! The diffusion prior classifies generated CTPA embeddings with the CTPA classifier's head and
//! trains through it: the gradient must reach the embedding but not the head's weights. A
//! [`PeHead`] holds detached weights, so it is a constant function of its input.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Module, Tensor};

use crate::{Error, Result};

/// `logit = z . w + b` with constant `w`, `b`.
#[derive(Debug, Clone)]
pub struct PeHead {
    weight: Tensor,
    bias: Tensor,
}

impl PeHead {
    /// From a `(1, embed_dim)` weight and a `(1,)` bias (detached here).
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let (o, _) = weight.dims2()?;
        if o != 1 || bias.dims() != [1] {
            return Err(Error::Input(format!(
                "a PE head has a (1, d) weight and a (1,) bias, got {:?} and {:?}",
                weight.dims(),
                bias.dims()
            )));
        }
        Ok(Self {
            weight: weight.detach(),
            bias: bias.detach(),
        })
    }

    /// Embedding size it reads.
    pub fn embed_dim(&self) -> usize {
        self.weight.dim(1).unwrap_or(0)
    }

    /// Logits `(batch,)` of embeddings `(batch, embed_dim)`.
    pub fn logits(&self, z: &Tensor) -> Result<Tensor> {
        if z.rank() != 2 || z.dim(1)? != self.embed_dim() {
            return Err(Error::Input(format!(
                "the head reads (batch, {}), got {:?}",
                self.embed_dim(),
                z.dims()
            )));
        }
        Ok(self.forward(z)?.squeeze(1)?)
    }

    /// Saves `model.safetensors` (`weight`, `bias`) and `config.json` (`embed_dim`) into the folder
    /// `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        use cmkd_train::checkpoint::{save_json, save_tensors, MODEL_CONFIG, MODEL_WEIGHTS};
        let map = HashMap::from([
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]);
        save_tensors(&dir.join(MODEL_WEIGHTS), &map)?;
        let config = serde_json::json!({ "embed_dim": self.embed_dim() });
        save_json(&dir.join(MODEL_CONFIG), &config)?;
        Ok(())
    }

    /// Loads a head saved by [`PeHead::save`] from its folder, or (as earlier versions wrote it) from
    /// a single safetensors file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = if path.is_dir() {
            path.join(cmkd_train::checkpoint::MODEL_WEIGHTS)
        } else {
            path.to_path_buf()
        };
        let map = cmkd_train::checkpoint::load_tensors(&file, device)?;
        let get = |name: &str| {
            map.get(name).ok_or_else(|| Error::MissingTensor {
                file: file.clone(),
                name: name.into(),
            })
        };
        Self::new(get("weight")?, get("bias")?)
    }
}

impl Module for PeHead {
    /// `(batch, embed_dim)` to `(batch, 1)`.
    fn forward(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        z.matmul(&self.weight.t()?.to_dtype(z.dtype())?)?
            .broadcast_add(&self.bias.to_dtype(z.dtype())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn gradient_reaches_the_input_only_and_round_trips() {
        let dev = Device::Cpu;
        let w = Var::new(&[[0.5f32, -1.0, 2.0]], &dev).unwrap();
        let b = Var::new(&[0.25f32], &dev).unwrap();
        let head = PeHead::new(w.as_tensor(), b.as_tensor()).unwrap();
        let z = Var::new(&[[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &dev).unwrap();
        let l = head.logits(z.as_tensor()).unwrap();
        assert_eq!(l.to_vec1::<f32>().unwrap(), vec![4.75, 0.25]);
        let g = l.sum_all().unwrap().backward().unwrap();
        assert!(g.get(w.as_tensor()).is_none() && g.get(b.as_tensor()).is_none());
        assert_eq!(
            g.get(z.as_tensor()).unwrap().to_vec2::<f32>().unwrap()[1],
            vec![0.5, -1.0, 2.0]
        );
        let dir = tempfile::tempdir().unwrap();
        head.save(dir.path()).unwrap();
        let back = PeHead::load(dir.path(), &dev).unwrap();
        // The single-file layout of earlier versions still loads.
        let old = dir.path().join("h.safetensors");
        std::fs::copy(dir.path().join("model.safetensors"), &old).unwrap();
        assert_eq!(PeHead::load(&old, &dev).unwrap().embed_dim(), 3);
        assert_eq!(
            back.logits(z.as_tensor())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![4.75, 0.25]
        );
        assert!(head
            .logits(&Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap())
            .is_err());
    }
}
