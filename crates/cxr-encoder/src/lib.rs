//! `cxr-encoder`: chest X-ray encoders on Candle that load upstream pretrained weights and train.
//!
//! The paper's CXR encoders are pretrained 2D models with a projection to a shared 512-d (or 1024-d)
//! embedding and a PE logit head. This crate has three backbones, each written with differentiable
//! ops so that they can be fine-tuned, not only used frozen, and each named like its upstream
//! checkpoint so the weights load unchanged:
//! - [`resnet::ResNet`]: torchvision / timm names (RadImageNet ResNet-50), trainable batch norm and a
//!   stem max-pool with a gradient ([`pool`]);
//! - [`dinov2::Dinov2`]: transformers' `Dinov2Model` names, any image size through position
//!   interpolation, LayerScale;
//! - [`clip::ClipVision`]: the BiomedCLIP ViT-B/16 tower (open_clip around a timm trunk).
//!
//! [`CxrEncoder`] puts the projection and the head on top, freezes or fine-tunes the backbone, loads
//! weights from a local file or the Hugging Face hub ([`pretrained`]) and writes embeddings keyed by
//! patient id ([`embeddings`]). [`train`] has the BCE/AdamW classifier loop shared with
//! `ctpa-encoder`.
//!
//! The generic transformer pieces ([`vit`]: attention with masking, MLP, LayerScale block,
//! position-embedding resampling) are also used by `ctpa-encoder`'s patch-free sequence ViT, which
//! depends on this crate for them (`ctpa-encoder -> cxr-encoder`, never the other way).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use cxr_encoder::{BackboneConfig, CxrEncoder, CxrEncoderConfig, Normalize};
//! use cxr_encoder::dinov2::Dinov2Config;
//!
//! // A tiny DINOv2 for the example; `Dinov2Config::small()` is facebook/dinov2-small.
//! let dino = Dinov2Config { image_size: 28, patch_size: 14, hidden_size: 32, num_hidden_layers: 1,
//!     num_attention_heads: 2, ..Dinov2Config::small() };
//! let config = CxrEncoderConfig { embed_dim: 16, ..CxrEncoderConfig::dinov2(dino) };
//! let encoder = CxrEncoder::new(config, 0, DType::F32, &Device::Cpu)?;
//! let images = Tensor::zeros((2, 3, 42, 56), DType::F32, &Device::Cpu)?; // any size
//! let (embedding, logit) = encoder.forward(&images, false)?;
//! assert_eq!((embedding.dims(), logit.dims()), (&[2, 16][..], &[2][..]));
//! # let _ = (BackboneConfig::Dinov2(dino), Normalize::imagenet());
//! # Ok::<(), cxr_encoder::Error>(())
//! ```
#![deny(missing_docs)]

pub mod batch_norm;
mod channel;
pub mod clip;
pub mod dinov2;
pub mod embeddings;
pub mod encoder;
pub mod error;
pub mod head;
pub mod pool;
pub mod pretrained;
pub mod resnet;
pub mod train;
pub mod vit;

pub use encoder::{BackboneConfig, CxrEncoder, CxrEncoderConfig, Normalize, BACKBONE_PREFIX};
pub use error::{Error, Result};
pub use head::PeHead;
pub use pretrained::{load_into, LoadReport, WeightSource};
pub use train::{bce_with_logits, Classifier, ClassifierTrainer, FitConfig, Targets};
