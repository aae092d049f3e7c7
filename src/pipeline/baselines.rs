//! The teacher-student baselines of Table 1: the X-ray student (a projection of the frozen X-ray
//! features and a head) trained against the frozen CTPA teacher with each kd-losses method.

use candle_core::{DType, Device, Tensor};
use ctpa_encoder::SequenceVit;
use kd_losses::{
    AftKd, AftKdConfig, Contrastive, ContrastiveConfig, DiscomKd, DiscomKdConfig, Distiller,
    DistillerConfig, HintonConfig, HintonKd, LogitSource, Objective, PairedData, ProtoKd,
    ProtoKdConfig, WeightedSum,
};
use serde::{Deserialize, Serialize};

use super::config::PipelineConfig;
use super::error::Result;
use super::heads::{CxrHead, TeacherHead};
use super::streams::Stream;

/// A distillation baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KdMethod {
    /// Hinton et al.: temperature-softened logits mixed with the label.
    Hinton,
    /// DisCoM-KD: disentangled shared/specific parts with an adversary.
    Discom,
    /// AFT-KD: attention and feature blocks with adaptive weights.
    Aft,
    /// ProtoKD: prototype similarities, logits and the label.
    Proto,
    /// Margin contrastive alignment plus the label BCE of the student head.
    Contrastive,
}

impl KdMethod {
    /// All five, in table order.
    pub const ALL: [KdMethod; 5] = [
        KdMethod::Hinton,
        KdMethod::Discom,
        KdMethod::Aft,
        KdMethod::Proto,
        KdMethod::Contrastive,
    ];

    /// Name in the tables.
    pub fn label(&self) -> &'static str {
        match self {
            KdMethod::Hinton => "Classic CMKD (Hinton)",
            KdMethod::Discom => "DisCoM-KD",
            KdMethod::Aft => "AFT-KD",
            KdMethod::Proto => "ProtoKD",
            KdMethod::Contrastive => "Contrastive KD",
        }
    }

    /// Whether the objective reads the PE labels (all but AFT-KD, which matches attention and
    /// features only).
    pub fn uses_labels(&self) -> bool {
        !matches!(self, KdMethod::Aft)
    }

    fn objective(&self, dim: usize, seed: u64, device: &Device) -> Result<Box<dyn Objective>> {
        Ok(match self {
            KdMethod::Hinton => Box::new(HintonKd::new(HintonConfig::default())?),
            KdMethod::Discom => {
                let mut c = DiscomKdConfig::new(dim, dim);
                c.hidden = (2 * dim).max(16);
                c.part_dim = (dim / 2).max(4);
                Box::new(DiscomKd::new(c, seed, DType::F32, device)?)
            }
            KdMethod::Aft => {
                let mut c = AftKdConfig::new(dim, dim);
                c.blocks = if dim % 8 == 0 { 8 } else { 4 };
                Box::new(AftKd::new(c, seed, DType::F32, device)?)
            }
            KdMethod::Proto => Box::new(ProtoKd::new(ProtoKdConfig::default())?),
            KdMethod::Contrastive => Box::new(WeightedSum::new(vec![
                (
                    1.0,
                    Box::new(Contrastive::new(ContrastiveConfig::default())?) as Box<dyn Objective>,
                ),
                (
                    1.0,
                    Box::new(kd_losses::Bce::new(kd_losses::BceConfig {
                        target: kd_losses::BceTarget::Label,
                    })),
                ),
            ])?),
        })
    }
}

/// A trained student: its probabilities for every patient and its trainable parameter count.
pub struct StudentResult {
    /// PE probabilities of all patients (row order of the features).
    pub probs: Vec<f64>,
    /// Trainable parameters (student and the objective's own parts, adversary included).
    pub params: usize,
}

/// Trains a fresh student on the training rows and scores every patient.
#[allow(clippy::too_many_arguments)]
pub fn train_student(
    method: KdMethod,
    config: &PipelineConfig,
    features: &Tensor,
    ctpa_embeddings: &Tensor,
    labels: &Tensor,
    train_idx: &[usize],
    teacher: &SequenceVit,
    seed: u64,
) -> Result<StudentResult> {
    let device = features.device().clone();
    let e = ctpa_embeddings.dim(1)?;
    let student = CxrHead::new(features.dim(1)?, e, seed, &device)?;
    let vars = student.vars();
    let objective = method.objective(e, Stream::StudentObjective.of(seed), &device)?;
    let params = cmkd_train::count_params(&vars)
        + cmkd_train::count_params(&objective.trainable_vars())
        + objective
            .adversary()
            .map_or(0, |a| cmkd_train::count_params(&a.adversary_vars()));
    let idx = Tensor::from_vec(
        train_idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        train_idx.len(),
        &device,
    )?;
    let data = PairedData {
        student_inputs: features.index_select(&idx, 0)?,
        teacher_inputs: ctpa_embeddings.index_select(&idx, 0)?,
        labels: labels.index_select(&idx, 0)?,
    };
    let dc = DistillerConfig {
        epochs: config.kd_epochs,
        batch_size: config.batch_size,
        optimizer: cmkd_train::AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        max_grad_norm: Some(1.0),
        seed,
        logit_source: LogitSource::StudentHead,
        stratified: true,
    };
    let mut distiller = Distiller::new(&student, vars, TeacherHead(teacher), objective, dc)?;
    distiller.fit(&data)?;
    let (_, probs) = student.embed(features)?;
    Ok(StudentResult { probs, params })
}
