//! `ctpa-encoder`: slice-wise 3D encoders for CT pulmonary angiography on Candle.
//!
//! The paper's CTPA classifier encodes each axial slice with a 2D network ([`SliceEncoder`]; here a
//! ResNet-style [`SliceCnn`] trained from scratch or loaded, frozen or fine-tuned, or any
//! `cxr-encoder` backbone) and reads the sequence of slice embeddings with a DINOv2-style
//! transformer whose patch projection is replaced by a linear map ([`SequenceVit`]): class token,
//! learned positions resampled to any slice count, pre-norm LayerScale blocks, a 512-d (or 1024-d)
//! embedding head and a PE logit head. [`CtpaEncoder`] maps a batch of volumes with different
//! slice counts to `(embedding, logit)` with padding and attention masking; it trains with
//! `cxr_encoder::ClassifierTrainer` (BCE, AdamW) and writes embeddings keyed by patient id.
//!
//! The transformer building blocks come from `cxr_encoder::vit` (this crate depends on
//! `cxr-encoder` for them; the dependency runs one way).
//!
//! ```
//! use candle_core::{DType, Device};
//! use ctpa_encoder::{CtpaEncoder, CtpaEncoderConfig};
//! use med_io::{Geometry, Volume};
//!
//! let mut config = CtpaEncoderConfig::small();
//! config.vit.embed_dim = 32;
//! let encoder = CtpaEncoder::new(config, 0, DType::F32, &Device::Cpu)?;
//! let a = Volume::filled([32, 32, 5], Geometry::default(), 0.1)?;
//! let b = Volume::filled([32, 32, 9], Geometry::default(), 0.7)?; // another slice count
//! let (embedding, logit) = encoder.forward(&[&a, &b], false)?;
//! assert_eq!((embedding.dims(), logit.dims()), (&[2, 32][..], &[2][..]));
//! # Ok::<(), ctpa_encoder::Error>(())
//! ```
#![deny(missing_docs)]

pub mod ctpa;
pub mod error;
pub mod sequence_vit;
pub mod slice;

pub use ctpa::{CtpaEncoder, CtpaEncoderConfig, SLICE_PREFIX, VIT_PREFIX};
pub use error::{Error, Result};
pub use sequence_vit::{SequenceVit, SequenceVitConfig};
pub use slice::{SliceCnn, SliceEncoder};
