//! Which data and which PE labels each model of Table 1 may use, derived from the settings the
//! pipeline's code paths read (so the report's lines and the test of the paper's protocol are
//! about the run, not about a description of it).
//!
//! The paper's protocol: the X-ray models (CXR-only and the five teacher-student baselines) learn
//! PE from the cohort's training folds only, on top of a generically pretrained X-ray backbone; the
//! CT-only set (RSPECT) reaches the X-ray side only through the diffusion prior, which is
//! pretrained on its (rendered radiograph, CTPA embedding) pairs.

use serde::{Deserialize, Serialize};

use super::baselines::KdMethod;
use super::config::PipelineConfig;
use super::run::{CTPA_ONLY, CXR_ONLY, PRIOR};

/// What a model reads at test time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modality {
    /// The CTPA volume.
    Ct,
    /// The chest X-ray.
    Xray,
}

/// Where PE labels that trained a model's own weights (frozen parts included) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelSource {
    /// The paired cohort's training folds (never a test patient).
    FoldTraining,
    /// The CT-only pretraining set.
    CtOnlySet,
}

/// The data one model may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataUse {
    /// The Table 1 row.
    pub model: String,
    /// What it reads at test time.
    pub modality: Modality,
    /// Sources of the PE labels its own weights were trained with.
    pub pe_labels: Vec<LabelSource>,
    /// Whether any data of the CT-only set (images, pairs or labels) trained its own weights; the
    /// frozen CTPA teacher that a distillation loss reads is counted separately.
    pub ct_only_set: bool,
    /// Whether it learns from the frozen CTPA teacher (which itself learnt from the CT-only set).
    pub through_teacher: bool,
    /// One line for the report.
    pub summary: String,
}

/// The data each Table 1 model of a run with `config` may use, in table order.
pub fn data_use(config: &PipelineConfig) -> Vec<DataUse> {
    let ct_backbone_labels = config.xray_backbone.uses_ct_only_pe_labels();
    let xray_labels = if ct_backbone_labels {
        vec![LabelSource::FoldTraining, LabelSource::CtOnlySet]
    } else {
        vec![LabelSource::FoldTraining]
    };
    let backbone = format!(
        "frozen X-ray backbone pretrained on {}",
        config.xray_backbone.describe()
    );
    let ctpa_start = if config.warm_start_heads {
        "started from the CT-only set's classifier and fine-tuned"
    } else {
        "trained"
    };
    let cxr_start = if config.warm_start_heads && ct_backbone_labels {
        "started from that PE classifier's and fine-tuned"
    } else {
        "trained from scratch"
    };
    let mut rows = vec![
        DataUse {
            model: CTPA_ONLY.into(),
            modality: Modality::Ct,
            pe_labels: vec![LabelSource::FoldTraining, LabelSource::CtOnlySet],
            ct_only_set: true,
            through_teacher: false,
            summary: format!(
                "CT: slice CNN pretrained on the CT-only set's CTs with their PE labels (frozen); sequence ViT {ctpa_start} on the fold's training CTs with their PE labels."
            ),
        },
        DataUse {
            model: CXR_ONLY.into(),
            modality: Modality::Xray,
            pe_labels: xray_labels.clone(),
            ct_only_set: ct_backbone_labels,
            through_teacher: false,
            summary: format!(
                "X-ray: {backbone}; projection + head {cxr_start} on the fold's training X-rays with their PE labels."
            ),
        },
    ];
    for m in KdMethod::ALL {
        let labels = if m.uses_labels() {
            ", their PE labels"
        } else {
            " (no label)"
        };
        rows.push(DataUse {
            model: m.label().into(),
            modality: Modality::Xray,
            pe_labels: xray_labels.clone(),
            ct_only_set: ct_backbone_labels,
            through_teacher: true,
            summary: format!(
                "X-ray: {backbone}; student projection + head trained from scratch on the fold's training pairs (X-ray, frozen CTPA teacher's embedding{labels})."
            ),
        });
    }
    let pretraining = if config.prior_pretrain_epochs > 0 {
        "pretrained on the CT-only set's (rendered radiograph, CTPA embedding) pairs, then trained"
    } else {
        "trained"
    };
    rows.push(DataUse {
        model: PRIOR.into(),
        modality: Modality::Xray,
        pe_labels: xray_labels,
        ct_only_set: config.prior_pretrain_epochs > 0 || ct_backbone_labels,
        through_teacher: true,
        summary: format!(
            "X-ray: conditioned on the CXR-only model's embedding (so all it used); prior {pretraining} on the fold's training pairs with the teacher's probability as BCE target (no label); samples classified by the frozen CTPA head."
        ),
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::XrayBackbone;

    #[test]
    fn default_run_follows_the_papers_protocol() {
        for config in [PipelineConfig::default(), PipelineConfig::quick()] {
            assert_eq!(config.xray_backbone, XrayBackbone::Findings);
            let rows = data_use(&config);
            assert_eq!(rows.len(), 2 + KdMethod::ALL.len() + 1);
            for r in rows.iter().filter(|r| r.modality == Modality::Xray) {
                assert_eq!(
                    r.pe_labels,
                    vec![LabelSource::FoldTraining],
                    "{}: an X-ray model saw a PE label outside the fold's training labels",
                    r.model
                );
                // Only the prior may use the CT-only set; the others learn from the cohort alone.
                assert_eq!(r.ct_only_set, r.model == PRIOR, "{}", r.model);
            }
        }
    }

    #[test]
    fn the_ct_only_pe_backbone_is_flagged_on_every_xray_model() {
        let rows = data_use(&PipelineConfig::default().with_ct_only_pe_backbone());
        for r in rows.iter().filter(|r| r.modality == Modality::Xray) {
            assert!(r.pe_labels.contains(&LabelSource::CtOnlySet), "{}", r.model);
            assert!(r.ct_only_set);
        }
        let cxr = rows.iter().find(|r| r.model == CXR_ONLY).unwrap();
        assert!(cxr.summary.contains("PE labels") && cxr.summary.contains("fine-tuned"));
    }
}
