//! `CxrEncoder`: a pretrained 2D backbone, a projection to the shared embedding size and a PE head.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use med_io::Image2d;
use serde::{Deserialize, Serialize};

use crate::batch_norm::is_buffer;
use crate::clip::{ClipVision, ClipVisionConfig};
use crate::dinov2::{Dinov2, Dinov2Config};
use crate::pretrained::{load_into, LoadReport, WeightSource};
use crate::resnet::{ResNet, ResNetConfig};
use crate::{Error, Result};

/// Variables of the backbone live under this prefix; the projection under `proj`, the head under
/// `head`.
pub const BACKBONE_PREFIX: &str = "backbone.";

/// Which backbone, with its architecture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BackboneConfig {
    /// A ResNet (RadImageNet / torchvision ResNet-50).
    ResNet(ResNetConfig),
    /// DINOv2 (small or base).
    Dinov2(Dinov2Config),
    /// A CLIP vision tower (BiomedCLIP ViT-B/16).
    Clip(ClipVisionConfig),
}

impl BackboneConfig {
    fn in_channels(&self) -> usize {
        match self {
            BackboneConfig::ResNet(c) => c.in_channels,
            BackboneConfig::Dinov2(c) => c.num_channels,
            BackboneConfig::Clip(c) => c.in_channels,
        }
    }

    /// Size of the backbone's feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            BackboneConfig::ResNet(c) => c.out_dim(),
            BackboneConfig::Dinov2(c) => c.hidden_size,
            BackboneConfig::Clip(c) => c.embed_dim,
        }
    }
}

/// Per-channel input normalisation `(x - mean) / std`, applied to pixels in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Channel means.
    pub mean: Vec<f32>,
    /// Channel standard deviations.
    pub std: Vec<f32>,
}

impl Normalize {
    /// ImageNet statistics (torchvision ResNet, RadImageNet, DINOv2).
    pub fn imagenet() -> Self {
        Self {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// OpenAI CLIP statistics (open_clip default; BiomedCLIP's preprocessing).
    pub fn clip() -> Self {
        Self {
            mean: vec![0.481_454_66, 0.457_827_5, 0.408_210_73],
            std: vec![0.268_629_54, 0.261_302_6, 0.275_777_1],
        }
    }

    /// No change for `channels` channels.
    pub fn identity(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// Everything needed to rebuild a [`CxrEncoder`] (saved as `config.json` beside the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CxrEncoderConfig {
    /// The backbone.
    pub backbone: BackboneConfig,
    /// Size of the shared embedding (512 in the paper, 1024 in its ablation).
    pub embed_dim: usize,
    /// Frozen feature extraction (true) or fine-tuning (false) of the backbone.
    pub freeze_backbone: bool,
    /// When fine-tuning a ResNet: normalise with batch statistics and update the running ones
    /// (PyTorch's `train()` behaviour, the default), or keep using the running statistics while
    /// the affine parameters still train (better for tiny batches such as the paper's 2).
    #[serde(default = "default_true")]
    pub train_batch_norm: bool,
    /// Input normalisation.
    pub normalize: Normalize,
}

impl CxrEncoderConfig {
    /// A ResNet-50 encoder (frozen, 512-d embedding, ImageNet normalisation).
    pub fn resnet50() -> Self {
        Self {
            backbone: BackboneConfig::ResNet(ResNetConfig::resnet50()),
            embed_dim: 512,
            freeze_backbone: true,
            train_batch_norm: true,
            normalize: Normalize::imagenet(),
        }
    }

    /// A DINOv2 encoder (frozen, 512-d embedding).
    pub fn dinov2(config: Dinov2Config) -> Self {
        Self {
            backbone: BackboneConfig::Dinov2(config),
            embed_dim: 512,
            freeze_backbone: true,
            train_batch_norm: true,
            normalize: Normalize::imagenet(),
        }
    }

    /// BiomedCLIP's vision tower (frozen, 512-d embedding).
    pub fn biomedclip() -> Self {
        Self {
            backbone: BackboneConfig::Clip(ClipVisionConfig::vit_b16()),
            embed_dim: 512,
            freeze_backbone: true,
            train_batch_norm: true,
            normalize: Normalize::clip(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.embed_dim == 0 {
            return Err(Error::config("embed_dim", "must be positive"));
        }
        let c = self.backbone.in_channels();
        if self.normalize.mean.len() != c || self.normalize.std.len() != c {
            return Err(Error::config(
                "normalize",
                format!("needs {c} means and stds"),
            ));
        }
        if self
            .normalize
            .std
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(Error::config(
                "normalize.std",
                "must be finite and positive",
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

enum Backbone {
    ResNet(ResNet),
    Dinov2(Dinov2),
    Clip(ClipVision),
}

impl Backbone {
    /// The backbone of `config` under [`BACKBONE_PREFIX`] of the encoder's builder `vb`.
    fn new(config: &BackboneConfig, vb: &VarBuilder) -> Result<Self> {
        let vb = vb.pp(BACKBONE_PREFIX.trim_end_matches('.'));
        Ok(match *config {
            BackboneConfig::ResNet(c) => Backbone::ResNet(ResNet::new(c, vb)?),
            BackboneConfig::Dinov2(c) => Backbone::Dinov2(Dinov2::new(c, vb)?),
            BackboneConfig::Clip(c) => Backbone::Clip(ClipVision::new(c, vb)?),
        })
    }

    fn forward(&self, x: &Tensor, train_batch_norm: bool) -> Result<Tensor> {
        Ok(match self {
            Backbone::ResNet(m) => m.forward(x, train_batch_norm)?,
            Backbone::Dinov2(m) => m.forward(x)?,
            Backbone::Clip(m) => m.forward(x)?,
        })
    }
}

/// An X-ray encoder: backbone features, a linear projection to the embedding and a linear PE head
/// (one logit). Owns its variables.
pub struct CxrEncoder {
    config: CxrEncoderConfig,
    map: VarMap,
    backbone: Backbone,
    proj: Linear,
    head: Linear,
    mean: Tensor,
    std: Tensor,
    device: Device,
    dtype: DType,
}

impl CxrEncoder {
    /// Builds an encoder with weights drawn reproducibly from `seed`.
    pub fn new(config: CxrEncoderConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        config.validate()?;
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(&map, seed, dtype, device);
        let backbone = Backbone::new(&config.backbone, &vb)?;
        let proj = candle_nn::linear(
            config.backbone.feature_dim(),
            config.embed_dim,
            vb.pp("proj"),
        )?;
        let head = candle_nn::linear(config.embed_dim, 1, vb.pp("head"))?;
        let c = config.backbone.in_channels();
        let mean =
            Tensor::from_slice(&config.normalize.mean, (1, c, 1, 1), device)?.to_dtype(dtype)?;
        let std =
            Tensor::from_slice(&config.normalize.std, (1, c, 1, 1), device)?.to_dtype(dtype)?;
        Ok(Self {
            config,
            map,
            backbone,
            proj,
            head,
            mean,
            std,
            device: device.clone(),
            dtype,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CxrEncoderConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// All variables, including frozen ones and batch-norm statistics.
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// Freezes (true) or unfreezes the backbone.
    pub fn set_backbone_frozen(&mut self, frozen: bool) {
        self.config.freeze_backbone = frozen;
    }

    /// The variables an optimizer should update, sorted by name: projection and head always, the
    /// backbone unless frozen, never batch-norm statistics.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        cmkd_train::sorted_vars(&self.map)
            .into_iter()
            .filter(|(n, _)| {
                let frozen = self.config.freeze_backbone && n.starts_with(BACKBONE_PREFIX);
                !(is_buffer(n) || frozen)
            })
            .collect()
    }

    /// Loads backbone weights from `source`; `file_prefix` is the prefix of the backbone's tensors
    /// in that file (`""` for torchvision/timm ResNet and transformers DINOv2 files, `"visual."`
    /// for a BiomedCLIP open_clip file).
    pub fn load_backbone(&self, source: &WeightSource, file_prefix: &str) -> Result<LoadReport> {
        let path = source.resolve()?;
        load_into(&self.map, &path, BACKBONE_PREFIX, file_prefix)
    }

    /// Backbone features `(batch, feature_dim)` of normalised pixels.
    pub fn features(&self, pixels: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.config.backbone.in_channels();
        if pixels.rank() != 4 {
            return Err(Error::Input(format!(
                "images must be (batch, channels, h, w), got {:?}",
                pixels.dims()
            )));
        }
        if pixels.dim(1)? != c {
            return Err(Error::Channels {
                model: "CxrEncoder",
                expected: c,
                found: pixels.dim(1)?,
            });
        }
        let x = pixels
            .to_dtype(self.dtype)?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)?;
        if self.config.freeze_backbone {
            // A frozen backbone is a constant: built on detached views of its variables (same
            // weights, same function), its forward records no graph and frees each activation
            // as soon as the next layer has read it.
            let vb = cmkd_train::params::frozen_builder(&self.map, self.dtype, &self.device);
            let f = Backbone::new(&self.config.backbone, &vb)?.forward(&x, false)?;
            // Nor does a gradient reach the pixels through it.
            return Ok(f.detach());
        }
        self.backbone
            .forward(&x, train && self.config.train_batch_norm)
    }

    /// Embedding `(batch, embed_dim)` and PE logit `(batch,)` of pixel values in `[0, 1]`,
    /// `(batch, channels, h, w)`. `train` selects batch statistics in a fine-tuned ResNet.
    pub fn forward(&self, pixels: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let z = self.proj.forward(&self.features(pixels, train)?)?;
        let logit = self.head_logit(&z)?;
        Ok((z, logit))
    }

    /// The PE head on embeddings: `(batch, embed_dim)` to logits `(batch,)`.
    pub fn head_logit(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.head.forward(z)?.squeeze(1)?)
    }

    /// A frozen copy of the PE head (gradients reach its input only).
    pub fn frozen_head(&self) -> Result<crate::PeHead> {
        let bias = self
            .head
            .bias()
            .ok_or_else(|| Error::Input("the PE head has no bias".into()))?;
        crate::PeHead::new(self.head.weight(), bias)
    }

    /// Stacks single-channel images (all the same size) into a `(batch, channels, h, w)` tensor,
    /// repeating the gray channel as the backbone needs.
    pub fn images_to_tensor(&self, images: &[&Image2d]) -> Result<Tensor> {
        let first = images
            .first()
            .ok_or_else(|| Error::Input("empty batch of images".into()))?;
        let c = self.config.backbone.in_channels();
        let mut ts = Vec::with_capacity(images.len());
        for img in images {
            if (img.width(), img.height()) != (first.width(), first.height()) {
                return Err(Error::Input(format!(
                    "images of one batch must share a size: {}x{} and {}x{}",
                    first.width(),
                    first.height(),
                    img.width(),
                    img.height()
                )));
            }
            ts.push(img.to_tensor(c, &self.device)?);
        }
        Ok(Tensor::stack(&ts, 0)?.to_dtype(self.dtype)?)
    }

    /// Embeds `(patient id, image)` items in batches of `batch_size` (frozen, evaluation mode) and
    /// writes the table to `path` (see [`crate::embeddings`]). Shows a progress bar.
    pub fn extract(
        &self,
        items: &[(String, Image2d)],
        batch_size: usize,
        path: &Path,
    ) -> Result<()> {
        if batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        let bar = cmkd_train::progress::bar(items.len() as u64, "CXR embeddings");
        let mut rows = Vec::with_capacity(items.len());
        for chunk in items.chunks(batch_size) {
            let imgs: Vec<&Image2d> = chunk.iter().map(|(_, i)| i).collect();
            let (z, _) = self.forward(&self.images_to_tensor(&imgs)?, false)?;
            let z = z.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for ((id, _), v) in chunk.iter().zip(z) {
                rows.push((id.clone(), v));
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        crate::embeddings::save_embeddings(path, &rows)
    }

    /// Saves `model.safetensors` and `config.json` into `dir` (atomically each).
    pub fn save(&self, dir: &Path) -> Result<()> {
        use cmkd_train::checkpoint::{save_json, save_varmap, MODEL_CONFIG, MODEL_WEIGHTS};
        save_varmap(&dir.join(MODEL_WEIGHTS), &self.map)?;
        save_json(&dir.join(MODEL_CONFIG), &self.config)?;
        Ok(())
    }

    /// Loads an encoder saved by [`CxrEncoder::save`] (or by earlier versions, which named the
    /// weights `weights.safetensors`).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        use cmkd_train::checkpoint::{load_json, model_file, MODEL_CONFIG, MODEL_WEIGHTS};
        let config: CxrEncoderConfig = load_json(&dir.join(MODEL_CONFIG))?;
        let enc = Self::new(config, 0, dtype, device)?;
        let weights = model_file(dir, MODEL_WEIGHTS, &["weights.safetensors"]);
        load_into(&enc.map, &weights, "", "")?;
        Ok(enc)
    }
}

impl crate::train::Classifier for CxrEncoder {
    type Item = Image2d;
    type Error = Error;

    fn logits(&self, batch: &[&Image2d], train: bool) -> Result<Tensor> {
        Ok(self.forward(&self.images_to_tensor(batch)?, train)?.1)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        CxrEncoder::trainable_vars(self)
    }
}
