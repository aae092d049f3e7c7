//! Phase A, part 1: the frozen pretrained encoders.
//!
//! As in the paper, the CTPA slice encoder and the X-ray backbone are pretrained once and then
//! frozen: here both are trained on the CT-only pretraining set (RSPECT-like; radiographs
//! rendered from its CTs), which shares no patient with the paired cohort, so no label of the
//! cohort leaks into them. Their outputs on the cohort (one slice-embedding sequence per CT, one
//! feature vector per X-ray) are computed once and cached.

use candle_core::{DType, Device, Tensor};
use cmkd_train::AdamWConfig;
use ctpa_encoder::{CtpaEncoder, CtpaEncoderConfig, SequenceVitConfig, SliceCnn};
use cxr_encoder::resnet::ResNetConfig;
use cxr_encoder::{
    BackboneConfig, ClassifierTrainer, CxrEncoder, CxrEncoderConfig, FitConfig, Normalize,
};

use super::cohort::PairedCohort;
use super::config::PipelineConfig;
use super::error::Result;

/// The sequence ViT of the CTPA classifier for `config`, reading `in_dim`-d slice embeddings.
pub fn vit_config(config: &PipelineConfig, in_dim: usize) -> SequenceVitConfig {
    SequenceVitConfig {
        in_dim,
        width: config.vit_width,
        depth: config.vit_depth,
        heads: (config.vit_width / 8).max(1),
        mlp_ratio: 2,
        positions: config.data.slices.max(8),
        layer_scale: 1.0,
        eps: 1e-6,
        embed_dim: config.embed_dim,
    }
}

/// The small ResNet used as X-ray backbone (single channel, 64-d features).
pub fn cxr_backbone_config() -> ResNetConfig {
    SliceCnn::small_config()
}

fn fit_config(config: &PipelineConfig, epochs: usize, seed: u64) -> FitConfig {
    FitConfig {
        optimizer: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        batch_size: config.classifier_batch,
        epochs,
        max_grad_norm: Some(1.0),
        seed,
    }
}

fn report_losses(what: &str, losses: &[f64]) {
    if let (Some(a), Some(b)) = (losses.first(), losses.last()) {
        eprintln!("  {what}: BCE {a:.4} (first epoch) -> {b:.4} (last epoch)");
    }
}

/// Trains a CTPA classifier end to end (slice CNN + sequence ViT) on the pretraining set and
/// returns it with its slice CNN frozen.
pub fn pretrain_ctpa(
    pretrain: &PairedCohort,
    config: &PipelineConfig,
    device: &Device,
) -> Result<CtpaEncoder> {
    let slice = SliceCnn::small_config();
    let enc_config = CtpaEncoderConfig {
        slice,
        freeze_slice: false,
        vit: vit_config(config, slice.out_dim()),
        slice_chunk: 256,
    };
    let mut encoder = CtpaEncoder::new(enc_config, config.seed ^ 0xC7, DType::F32, device)?;
    let data: Vec<_> = pretrain
        .patients
        .iter()
        .map(|p| (p.ctpa.clone(), f32::from(u8::from(p.label))))
        .collect();
    let mut trainer = ClassifierTrainer::new(
        &encoder,
        fit_config(config, config.pretrain_epochs, config.seed),
    )?;
    let losses = trainer.fit(&encoder, &data)?;
    report_losses("CTPA pretraining", &losses);
    encoder.slice_cnn_mut().set_frozen(true);
    Ok(encoder)
}

/// Trains the X-ray classifier (backbone + projection + head) on the pretraining set's rendered
/// radiographs and returns it with its backbone frozen.
pub fn pretrain_cxr(
    pretrain: &PairedCohort,
    config: &PipelineConfig,
    device: &Device,
) -> Result<CxrEncoder> {
    let enc_config = CxrEncoderConfig {
        backbone: BackboneConfig::ResNet(cxr_backbone_config()),
        embed_dim: config.embed_dim,
        freeze_backbone: false,
        train_batch_norm: true,
        normalize: Normalize::identity(1),
    };
    let mut encoder = CxrEncoder::new(enc_config, config.seed ^ 0xC8, DType::F32, device)?;
    let data: Vec<_> = pretrain
        .patients
        .iter()
        .map(|p| (p.cxr.clone(), f32::from(u8::from(p.label))))
        .collect();
    let mut trainer = ClassifierTrainer::new(
        &encoder,
        fit_config(config, config.cxr_pretrain_epochs, config.seed ^ 1),
    )?;
    let losses = trainer.fit(&encoder, &data)?;
    report_losses("X-ray pretraining", &losses);
    encoder.set_backbone_frozen(true);
    debug_assert!(encoder
        .trainable_vars()
        .iter()
        .all(|(n, _)| !n.starts_with(cxr_encoder::BACKBONE_PREFIX)));
    Ok(encoder)
}

/// Frozen slice-embedding sequences `(slices, d)` of every patient's CT.
pub fn slice_sequences(encoder: &CtpaEncoder, cohort: &PairedCohort) -> Result<Vec<Tensor>> {
    let bar = cmkd_train::progress::bar(cohort.len() as u64, "slice embeddings");
    let mut out = Vec::with_capacity(cohort.len());
    for p in &cohort.patients {
        let (seq, lengths) = encoder.slice_embeddings(&[&p.ctpa], false)?;
        out.push(seq.squeeze(0)?.narrow(0, 0, lengths[0])?.detach());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Frozen backbone features `(n, f)` of every patient's X-ray.
pub fn cxr_features(encoder: &CxrEncoder, cohort: &PairedCohort, batch: usize) -> Result<Tensor> {
    let mut rows = Vec::new();
    for chunk in cohort.patients.chunks(batch.max(1)) {
        let imgs: Vec<_> = chunk.iter().map(|p| &p.cxr).collect();
        let x = encoder.images_to_tensor(&imgs)?;
        rows.push(encoder.features(&x, false)?.detach());
    }
    Ok(Tensor::cat(&rows, 0)?)
}
