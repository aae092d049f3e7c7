//! `CtpaEncoder`: volume -> slice embeddings -> sequence ViT -> (embedding, PE logit).

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use cxr_encoder::resnet::ResNetConfig;
use cxr_encoder::Classifier;
use med_io::Volume;
use serde::{Deserialize, Serialize};

use crate::sequence_vit::{SequenceVit, SequenceVitConfig};
use crate::slice::{SliceCnn, SliceEncoder};
use crate::{Error, Result};

/// Prefix of the slice encoder's variables in [`CtpaEncoder::trainable_vars`] and checkpoints.
pub const SLICE_PREFIX: &str = "slice.";
/// Prefix of the sequence ViT's variables.
pub const VIT_PREFIX: &str = "vit.";

/// Configuration of a [`CtpaEncoder`] with a [`SliceCnn`] (saved as `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CtpaEncoderConfig {
    /// The slice CNN (single-channel input).
    pub slice: ResNetConfig,
    /// Whether the slice CNN is frozen (the paper freezes its pretrained slice encoder).
    pub freeze_slice: bool,
    /// The sequence ViT; its `in_dim` must equal the slice CNN's output size.
    pub vit: SequenceVitConfig,
    /// Slices encoded per pass of the slice network (bounds memory on long volumes).
    pub slice_chunk: usize,
}
impl CtpaEncoderConfig {
    /// A small configuration for CPU budgets: [`SliceCnn::small_config`] (64-d slices), a 2-block
    /// width-64 ViT with 64 learned positions and a 512-d embedding; trained end to end.
    pub fn small() -> Self {
        let slice = SliceCnn::small_config();
        Self {
            slice,
            freeze_slice: false,
            vit: SequenceVitConfig {
                in_dim: slice.out_dim(),
                width: 64,
                depth: 2,
                heads: 4,
                mlp_ratio: 4,
                positions: 64,
                layer_scale: 1.0,
                eps: 1e-6,
                embed_dim: 512,
            },
            slice_chunk: 256,
        }
    }
}

/// The CTPA classifier of the paper: a slice encoder over axial slices and a patch-free ViT over
/// the slice sequence, with a volume embedding and a PE logit.
pub struct CtpaEncoder<S: SliceEncoder = SliceCnn> {
    slice: S,
    vit: SequenceVit,
    slice_chunk: usize,
    config: Option<CtpaEncoderConfig>,
}

impl CtpaEncoder<SliceCnn> {
    /// Builds the encoder with weights drawn reproducibly from `seed`.
    pub fn new(
        config: CtpaEncoderConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let slice = SliceCnn::new(config.slice, config.freeze_slice, seed, dtype, device)?;
        let vit = SequenceVit::new(config.vit, seed.wrapping_add(1), dtype, device)?;
        let mut enc = Self::from_parts(slice, vit, config.slice_chunk)?;
        enc.config = Some(config);
        Ok(enc)
    }

    /// Saves `model.safetensors` (the slice CNN's tensors under `slice.`, the sequence ViT's under
    /// `vit.`) and `config.json` into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        use cmkd_train::checkpoint::{save_json, save_tensors, MODEL_CONFIG, MODEL_WEIGHTS};
        let config = self
            .config
            .ok_or_else(|| Error::Input("encoder has no configuration to save".into()))?;
        let mut c = config;
        c.freeze_slice = self.slice.is_frozen();
        let mut tensors = std::collections::HashMap::new();
        for (prefix, map) in [
            (SLICE_PREFIX, self.slice.var_map()),
            (VIT_PREFIX, self.vit.var_map()),
        ] {
            for (name, var) in cmkd_train::sorted_vars(map) {
                tensors.insert(format!("{prefix}{name}"), var.as_tensor().clone());
            }
        }
        save_tensors(&dir.join(MODEL_WEIGHTS), &tensors)?;
        save_json(&dir.join(MODEL_CONFIG), &c)?;
        Ok(())
    }

    /// Loads an encoder saved by [`CtpaEncoder::save`], or by earlier versions (`slice.safetensors`
    /// and `vit.safetensors`); missing or mis-shaped tensors are named.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        use cmkd_train::checkpoint::{load_json, MODEL_CONFIG, MODEL_WEIGHTS};
        let config: CtpaEncoderConfig = load_json(&dir.join(MODEL_CONFIG))?;
        let enc = Self::new(config, 0, dtype, device)?;
        let one = dir.join(MODEL_WEIGHTS);
        if one.exists() {
            cxr_encoder::load_into(enc.slice.var_map(), &one, "", SLICE_PREFIX)?;
            cxr_encoder::load_into(enc.vit.var_map(), &one, "", VIT_PREFIX)?;
        } else {
            cxr_encoder::load_into(enc.slice.var_map(), &dir.join("slice.safetensors"), "", "")?;
            cxr_encoder::load_into(enc.vit.var_map(), &dir.join("vit.safetensors"), "", "")?;
        }
        Ok(enc)
    }

    /// The slice CNN (to freeze it or load weights into it).
    pub fn slice_cnn_mut(&mut self) -> &mut SliceCnn {
        &mut self.slice
    }
}

impl<S: SliceEncoder> CtpaEncoder<S> {
    /// Combines any slice encoder with a sequence ViT that reads its output.
    pub fn from_parts(slice: S, vit: SequenceVit, slice_chunk: usize) -> Result<Self> {
        if vit.config().in_dim != slice.out_dim() {
            return Err(Error::Config {
                name: "vit.in_dim",
                reason: format!(
                    "is {} but the slice encoder gives {}",
                    vit.config().in_dim,
                    slice.out_dim()
                ),
            });
        }
        if slice_chunk == 0 {
            return Err(Error::Config {
                name: "slice_chunk",
                reason: "must be positive".into(),
            });
        }
        Ok(Self {
            slice,
            vit,
            slice_chunk,
            config: None,
        })
    }

    /// The slice encoder.
    pub fn slice_encoder(&self) -> &S {
        &self.slice
    }

    /// The sequence ViT (its [`SequenceVit::head_logit`] is the frozen CTPA head of the prior).
    pub fn vit(&self) -> &SequenceVit {
        &self.vit
    }

    /// The variables an optimizer should update, prefixed `slice.` / `vit.`, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = self
            .slice
            .trainable_vars()
            .into_iter()
            .map(|(n, v)| (format!("{SLICE_PREFIX}{n}"), v))
            .collect();
        v.extend(
            self.vit
                .trainable_vars()
                .into_iter()
                .map(|(n, v)| (format!("{VIT_PREFIX}{n}"), v)),
        );
        v
    }

    /// Padded slice embeddings `(batch, max_slices, slice_dim)` and the slice count of each volume.
    pub fn slice_embeddings(
        &self,
        volumes: &[&Volume],
        train: bool,
    ) -> Result<(Tensor, Vec<usize>)> {
        let first = volumes
            .first()
            .ok_or_else(|| Error::Input("empty batch of volumes".into()))?;
        let [nx, ny, _] = first.dims();
        let device = self.vit.device().clone();
        let dtype = self.vit.dtype();
        let c = self.slice.in_channels();
        let mut lengths = Vec::with_capacity(volumes.len());
        let mut slices = Vec::with_capacity(volumes.len());
        for (i, v) in volumes.iter().enumerate() {
            let [vx, vy, vz] = v.dims();
            if (vx, vy) != (nx, ny) {
                return Err(Error::Input(format!("volume {i} has {vx}x{vy} slices, volume 0 has {nx}x{ny}: resample them to one size first")));
            }
            let t = v.to_tensor(&device)?.to_dtype(dtype)?.unsqueeze(1)?;
            slices.push(if c == 1 { t } else { t.repeat((1, c, 1, 1))? });
            lengths.push(vz);
        }
        let all = Tensor::cat(&slices, 0)?;
        let total = all.dim(0)?;
        let mut feats = Vec::with_capacity(total.div_ceil(self.slice_chunk));
        let mut start = 0;
        while start < total {
            let n = self.slice_chunk.min(total - start);
            feats.push(self.slice.encode(&all.narrow(0, start, n)?, train)?);
            start += n;
        }
        let feats = Tensor::cat(&feats, 0)?;
        let max_len = *lengths.iter().max().unwrap_or(&1);
        let d = feats.dim(1)?;
        let mut rows = Vec::with_capacity(volumes.len());
        let mut offset = 0;
        for &len in &lengths {
            let mut parts = vec![feats.narrow(0, offset, len)?];
            if len < max_len {
                parts.push(Tensor::zeros(
                    (max_len - len, d),
                    feats.dtype(),
                    feats.device(),
                )?);
            }
            rows.push(Tensor::cat(&parts, 0)?);
            offset += len;
        }
        Ok((Tensor::stack(&rows, 0)?, lengths))
    }

    /// Volume embeddings `(batch, embed_dim)` and PE logits `(batch,)`. Volumes may have different
    /// slice counts (padding is masked) but must share their in-plane size; values are expected
    /// preprocessed (HU windowed and scaled, as med-io does).
    pub fn forward(&self, volumes: &[&Volume], train: bool) -> Result<(Tensor, Tensor)> {
        let (seq, lengths) = self.slice_embeddings(volumes, train)?;
        self.vit.forward(&seq, &lengths)
    }

    /// Embeds `(patient id, volume)` items `batch_size` at a time in evaluation mode and writes the
    /// table keyed by patient id to `path` (see [`cxr_encoder::embeddings`]). Shows a progress bar.
    pub fn extract(
        &self,
        items: &[(String, Volume)],
        batch_size: usize,
        path: &Path,
    ) -> Result<()> {
        if batch_size == 0 {
            return Err(Error::Config {
                name: "batch_size",
                reason: "must be positive".into(),
            });
        }
        let bar = cmkd_train::progress::bar(items.len() as u64, "CTPA embeddings");
        let mut rows = Vec::with_capacity(items.len());
        for chunk in items.chunks(batch_size) {
            let vols: Vec<&Volume> = chunk.iter().map(|(_, v)| v).collect();
            let (z, _) = self.forward(&vols, false)?;
            for ((id, _), v) in chunk.iter().zip(z.to_dtype(DType::F32)?.to_vec2::<f32>()?) {
                rows.push((id.clone(), v));
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(cxr_encoder::embeddings::save_embeddings(path, &rows)?)
    }
}

impl<S: SliceEncoder> Classifier for CtpaEncoder<S> {
    type Item = Volume;
    type Error = Error;

    fn logits(&self, batch: &[&Volume], train: bool) -> Result<Tensor> {
        Ok(self.forward(batch, train)?.1)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        CtpaEncoder::trainable_vars(self)
    }
}
