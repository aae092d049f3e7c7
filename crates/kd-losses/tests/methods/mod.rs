//! The objectives the toy tests run, built for the toy dimensions.

#![allow(dead_code)]

use candle_core::{DType, Device};
use kd_losses::*;

use crate::toy::EMB;

/// Every method and the ablation's combinations, with the logit source each needs.
pub const ALL: &[&str] = &[
    "mse",
    "cosine",
    "smooth_l1",
    "bce_teacher",
    "paper_l2_bce",
    "hinton",
    "protokd",
    "l2_protokd",
    "aft_kd",
    "l2_aft_kd",
    "discom_grl",
    "discom_alternating",
    "contrastive",
];

pub fn build(name: &str) -> (Box<dyn Objective>, LogitSource) {
    let dev = Device::Cpu;
    let aft = || {
        let c = AftKdConfig {
            blocks: 4,
            ..AftKdConfig::new(EMB, EMB)
        };
        AftKd::new(c, 5, DType::F32, &dev).unwrap()
    };
    let discom = |mode| {
        let c = DiscomKdConfig {
            hidden: 32,
            part_dim: 8,
            adversarial: mode,
            ..DiscomKdConfig::new(EMB, EMB)
        };
        DiscomKd::new(c, 6, DType::F32, &dev).unwrap()
    };
    match name {
        "mse" => (Box::new(Mse), LogitSource::StudentHead),
        "cosine" => (Box::new(Cosine::default()), LogitSource::StudentHead),
        "smooth_l1" => (Box::new(SmoothL1::default()), LogitSource::StudentHead),
        "bce_teacher" => (Box::new(Bce::default()), LogitSource::TeacherHead),
        "paper_l2_bce" => (
            Box::new(WeightedSum::paper_default()),
            LogitSource::TeacherHead,
        ),
        "hinton" => (Box::new(HintonKd::default()), LogitSource::StudentHead),
        "protokd" => (Box::new(ProtoKd::default()), LogitSource::StudentHead),
        "l2_protokd" => (
            Box::new(
                WeightedSum::new(vec![
                    (1.0, Box::new(Mse) as Box<dyn Objective>),
                    (0.5, Box::new(ProtoKd::default())),
                ])
                .unwrap(),
            ),
            LogitSource::StudentHead,
        ),
        "aft_kd" => (Box::new(aft()), LogitSource::StudentHead),
        "l2_aft_kd" => (
            Box::new(
                WeightedSum::new(vec![
                    (1.0, Box::new(Mse) as Box<dyn Objective>),
                    (0.5, Box::new(aft())),
                ])
                .unwrap(),
            ),
            LogitSource::StudentHead,
        ),
        "discom_grl" => (
            Box::new(discom(AdversarialMode::GradientReversal { lambda: 1.0 })),
            LogitSource::StudentHead,
        ),
        "discom_alternating" => (
            Box::new(discom(AdversarialMode::Alternating)),
            LogitSource::StudentHead,
        ),
        "contrastive" => (Box::new(Contrastive::default()), LogitSource::StudentHead),
        other => panic!("unknown method {other}"),
    }
}
