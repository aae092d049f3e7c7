//! Phase A, part 1: the frozen pretrained encoders.
//!
//! As in the paper, the CTPA slice encoder and the X-ray backbone are pretrained once and then
//! frozen. The slice CNN is trained as a PE classifier on the CT-only pretraining set
//! (RSPECT-like), which shares no patient with the paired cohort. The X-ray backbone, as the
//! paper's generically pretrained ones (RadImageNet, BiomedCLIP, DINOv2), never sees a PE label
//! ([`pretrain_cxr_findings`]: multi-label on generic chest findings of a separate population);
//! [`pretrain_cxr`] keeps the earlier PE-supervised backbone for comparison. Their outputs on the
//! cohort (one slice-embedding sequence per CT, one feature vector per X-ray) are computed once and
//! cached.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarMap};
use cmkd_train::AdamWConfig;
use ctpa_encoder::{CtpaEncoder, CtpaEncoderConfig, SequenceVitConfig, SliceCnn};
use cxr_encoder::resnet::ResNetConfig;
use cxr_encoder::{
    BackboneConfig, ClassifierTrainer, CxrEncoder, CxrEncoderConfig, FitConfig, Normalize,
};
use med_io::Image2d;

use super::cohort::{FindingsSet, PairedCohort};
use super::config::{PipelineConfig, XrayBackbone};
use super::error::Result;
use super::streams::Stream;

/// The sequence ViT of the CTPA classifier for `config`, reading `in_dim`-d slice embeddings.
pub(crate) fn vit_config(config: &PipelineConfig, in_dim: usize) -> SequenceVitConfig {
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
pub(crate) fn cxr_backbone_config() -> ResNetConfig {
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

fn xray_encoder_config(config: &PipelineConfig) -> CxrEncoderConfig {
    CxrEncoderConfig {
        backbone: BackboneConfig::ResNet(cxr_backbone_config()),
        embed_dim: config.embed_dim,
        freeze_backbone: false,
        train_batch_norm: true,
        normalize: Normalize::identity(1),
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
    let mut encoder = CtpaEncoder::new(
        enc_config,
        Stream::PretrainCtpaInit.of(config.seed),
        DType::F32,
        device,
    )?;
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
    let mut encoder = CxrEncoder::new(
        xray_encoder_config(config),
        Stream::PretrainCxrInit.of(config.seed),
        DType::F32,
        device,
    )?;
    let data: Vec<_> = pretrain
        .patients
        .iter()
        .map(|p| (p.cxr.clone(), f32::from(u8::from(p.label))))
        .collect();
    let mut trainer = ClassifierTrainer::new(
        &encoder,
        fit_config(
            config,
            config.cxr_pretrain_epochs,
            Stream::PretrainCxrFit.of(config.seed),
        ),
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

/// The X-ray backbone with a multi-label head over generic chest findings (no PE output).
pub struct FindingsClassifier {
    encoder: CxrEncoder,
    map: VarMap,
    head: Linear,
}

impl FindingsClassifier {
    /// A fresh backbone (the pipeline's X-ray ResNet) and a linear head with one logit per finding.
    pub fn new(config: &PipelineConfig, findings: usize, device: &Device) -> Result<Self> {
        let encoder = CxrEncoder::new(
            xray_encoder_config(config),
            Stream::FindingsBackboneInit.of(config.seed),
            DType::F32,
            device,
        )?;
        let map = VarMap::new();
        let vb = cmkd_train::seeded_var_builder(
            &map,
            Stream::FindingsHeadInit.of(config.seed),
            DType::F32,
            device,
        );
        let head = candle_nn::linear(
            encoder.config().backbone.feature_dim(),
            findings,
            vb.pp("findings_head"),
        )?;
        Ok(Self { encoder, map, head })
    }

    /// The encoder with its backbone frozen; its projection and PE head are untrained and unused
    /// (the per-fold CXR head reads the backbone's features).
    pub fn into_frozen_encoder(mut self) -> CxrEncoder {
        self.encoder.set_backbone_frozen(true);
        self.encoder
    }
}

impl cxr_encoder::Classifier for FindingsClassifier {
    type Item = Image2d;
    type Error = cxr_encoder::Error;

    fn logits(&self, batch: &[&Image2d], train: bool) -> cxr_encoder::Result<Tensor> {
        let x = self.encoder.images_to_tensor(batch)?;
        Ok(self.head.forward(&self.encoder.features(&x, train)?)?)
    }

    /// The backbone and the findings head; not the encoder's PE projection and head.
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut vars: Vec<_> = self
            .encoder
            .trainable_vars()
            .into_iter()
            .filter(|(n, _)| n.starts_with(cxr_encoder::BACKBONE_PREFIX))
            .collect();
        vars.extend(cmkd_train::sorted_vars(&self.map));
        vars
    }
}

/// Pretrains the X-ray backbone as a multi-label classifier of the generic findings of `findings`
/// (no PE label) and returns the encoder with its backbone frozen, with the mean per-finding AUC
/// on its own training set.
pub fn pretrain_cxr_findings(
    findings: &FindingsSet,
    config: &PipelineConfig,
    device: &Device,
) -> Result<(CxrEncoder, f64)> {
    let model = FindingsClassifier::new(config, FindingsSet::NAMES.len(), device)?;
    let data: Vec<(Image2d, [f32; 4])> = findings
        .images
        .iter()
        .cloned()
        .zip(findings.labels.iter().copied())
        .collect();
    let mut trainer = ClassifierTrainer::new(
        &model,
        fit_config(
            config,
            config.cxr_pretrain_epochs,
            Stream::FindingsFit.of(config.seed),
        ),
    )?;
    let losses = trainer.fit(&model, &data)?;
    report_losses("X-ray findings pretraining", &losses);
    let auc = findings_auc(&model, findings, config.classifier_batch)?;
    Ok((model.into_frozen_encoder(), auc))
}

/// Mean over the findings of the ROC AUC of `model`'s logits on `set` (findings present in both
/// classes only).
fn findings_auc(model: &FindingsClassifier, set: &FindingsSet, batch: usize) -> Result<f64> {
    use cxr_encoder::Classifier;
    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(set.len());
    for chunk in set.images.chunks(batch.max(1)) {
        let refs: Vec<&Image2d> = chunk.iter().collect();
        logits.extend(model.logits(&refs, false)?.to_vec2::<f32>()?);
    }
    let mut aucs = Vec::new();
    for j in 0..FindingsSet::NAMES.len() {
        let y: Vec<bool> = set.labels.iter().map(|l| l[j] > 0.5).collect();
        if y.iter().any(|&v| v) && y.iter().any(|&v| !v) {
            let s: Vec<f64> = logits.iter().map(|r| f64::from(r[j])).collect();
            aucs.push(med_eval::roc_auc(&y, &s)?);
        }
    }
    Ok(aucs.iter().sum::<f64>() / aucs.len().max(1) as f64)
}

/// Phase A's two encoders, pretrained and frozen as phase A does (without its cache): the CTPA
/// encoder on `pretrain_set` ([`pretrain_ctpa`]), the X-ray backbone as
/// [`PipelineConfig::xray_backbone`] says ([`pretrain_cxr_findings`] or [`pretrain_cxr`]). What
/// [`super::shard::FrozenEncoders::save`] keeps for sharded extraction.
pub fn pretrain_encoders(
    pretrain_set: &PairedCohort,
    config: &PipelineConfig,
    device: &Device,
) -> Result<(CtpaEncoder, CxrEncoder)> {
    let ctpa = pretrain_ctpa(pretrain_set, config, device)?;
    let cxr = match config.xray_backbone {
        XrayBackbone::Findings => {
            let findings = FindingsSet::synthetic(
                config.findings_patients,
                config.finding_prob,
                &config.data,
                config.seed,
            )?;
            pretrain_cxr_findings(&findings, config, device)?.0
        }
        XrayBackbone::CtOnlyPeLabels => pretrain_cxr(pretrain_set, config, device)?,
    };
    Ok((ctpa, cxr))
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
