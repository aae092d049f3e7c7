//! CxrEncoder behaviour: gradient flow, freezing, typed errors, save/load, extraction.

use candle_core::{DType, Device, Tensor};
use cxr_encoder::clip::ClipVisionConfig;
use cxr_encoder::dinov2::Dinov2Config;
use cxr_encoder::resnet::{BlockKind, ResNetConfig};
use cxr_encoder::{
    bce_with_logits, BackboneConfig, ClassifierTrainer, CxrEncoder, CxrEncoderConfig, Error,
    FitConfig, Normalize, BACKBONE_PREFIX,
};
use med_io::Image2d;

fn configs(freeze: bool) -> Vec<CxrEncoderConfig> {
    let resnet = ResNetConfig {
        block: BlockKind::Bottleneck,
        layers: [1, 1, 1, 1],
        stem_width: 8,
        widths: [4, 8, 8, 8],
        in_channels: 3,
    };
    let dino = Dinov2Config {
        image_size: 16,
        patch_size: 4,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        ..Dinov2Config::small()
    };
    let clip = ClipVisionConfig {
        image_size: 16,
        patch_size: 4,
        width: 16,
        layers: 2,
        heads: 2,
        embed_dim: 12,
        ..ClipVisionConfig::vit_b16()
    };
    [
        BackboneConfig::ResNet(resnet),
        BackboneConfig::Dinov2(dino),
        BackboneConfig::Clip(clip),
    ]
    .into_iter()
    .map(|backbone| CxrEncoderConfig {
        backbone,
        embed_dim: 8,
        freeze_backbone: freeze,
        train_batch_norm: true,
        normalize: Normalize::imagenet(),
    })
    .collect()
}

fn images(n: usize, seed: u64) -> Tensor {
    let mut g = cmkd_train::rng::stream(seed, "images");
    cmkd_train::rng::uniform(&mut g, 0.0, 1.0, (n, 3, 16, 16), DType::F32, &Device::Cpu).unwrap()
}

fn abs_sum(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn every_trainable_parameter_gets_a_gradient_and_frozen_ones_none() {
    for freeze in [false, true] {
        for config in configs(freeze) {
            let enc = CxrEncoder::new(config.clone(), 1, DType::F32, &Device::Cpu).unwrap();
            let (_, logit) = enc.forward(&images(4, 2), true).unwrap();
            let loss = bce_with_logits(
                &logit,
                &Tensor::new(&[1f32, 0., 1., 0.], &Device::Cpu).unwrap(),
            )
            .unwrap();
            let grads = loss.backward().unwrap();
            let trainable = enc.trainable_vars();
            for (name, var) in &trainable {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{:?}: no gradient for {name}", config.backbone));
                let s = abs_sum(g);
                assert!(
                    s.is_finite() && s > 0.0,
                    "{:?}: gradient of {name} is {s}",
                    config.backbone
                );
            }
            for (name, var) in cmkd_train::sorted_vars(enc.var_map()) {
                let is_trainable = trainable.iter().any(|(n, _)| *n == name);
                if !is_trainable {
                    assert!(
                        grads.get(var.as_tensor()).is_none(),
                        "{:?}: frozen {name} has a gradient",
                        config.backbone
                    );
                }
            }
            let n_backbone = trainable
                .iter()
                .filter(|(n, _)| n.starts_with(BACKBONE_PREFIX))
                .count();
            assert_eq!(n_backbone == 0, freeze, "{:?}", config.backbone);
        }
    }
}

#[test]
fn freezing_really_freezes() {
    for config in configs(true) {
        let enc = CxrEncoder::new(config, 3, DType::F32, &Device::Cpu).unwrap();
        let before: Vec<(String, Vec<f32>)> = cmkd_train::sorted_vars(enc.var_map())
            .into_iter()
            .map(|(n, v)| {
                (
                    n,
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap(),
                )
            })
            .collect();
        let img: Vec<Image2d> = (0..2)
            .map(|i| Image2d::new(vec![i as f32 * 0.5; 256], 16, 16).unwrap())
            .collect();
        let mut trainer = ClassifierTrainer::new(
            &enc,
            FitConfig {
                optimizer: cmkd_train::AdamWConfig {
                    lr: 1e-2,
                    ..Default::default()
                },
                ..FitConfig::paper(1)
            },
        )
        .unwrap();
        trainer
            .step(&enc, &[&img[0], &img[1]], &[0.0, 1.0])
            .unwrap();
        for ((name, old), (_, var)) in before.iter().zip(cmkd_train::sorted_vars(enc.var_map())) {
            let new = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            if name.starts_with(BACKBONE_PREFIX) {
                assert_eq!(old, &new, "frozen {name} changed");
            } else {
                assert_ne!(old, &new, "{name} did not train");
            }
        }
    }
}

#[test]
fn batch_norm_statistics_can_stay_fixed_while_fine_tuning() {
    for train_bn in [true, false] {
        let config = CxrEncoderConfig {
            train_batch_norm: train_bn,
            ..configs(false).remove(0)
        };
        let enc = CxrEncoder::new(config, 4, DType::F32, &Device::Cpu).unwrap();
        let stats = || -> Vec<Vec<f32>> {
            cmkd_train::sorted_vars(enc.var_map())
                .into_iter()
                .filter(|(n, _)| n.ends_with("running_mean"))
                .map(|(_, v)| v.as_tensor().to_vec1::<f32>().unwrap())
                .collect()
        };
        let before = stats();
        let (_, logit) = enc.forward(&images(3, 1), true).unwrap();
        let grads = logit.sum_all().unwrap().backward().unwrap();
        assert_eq!(
            before != stats(),
            train_bn,
            "running statistics updated: expected {train_bn}"
        );
        for (name, var) in enc
            .trainable_vars()
            .iter()
            .filter(|(n, _)| n.ends_with("bn1.weight"))
        {
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "{name} has no gradient"
            );
        }
    }
}

#[test]
fn typed_errors_for_bad_input() {
    for config in configs(true) {
        let enc = CxrEncoder::new(config.clone(), 0, DType::F32, &Device::Cpu).unwrap();
        let gray = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
        assert!(
            matches!(
                enc.forward(&gray, false),
                Err(Error::Channels {
                    expected: 3,
                    found: 1,
                    ..
                })
            ),
            "{:?}",
            config.backbone
        );
        assert!(matches!(
            enc.forward(
                &Tensor::zeros((3, 16, 16), DType::F32, &Device::Cpu).unwrap(),
                false
            ),
            Err(Error::Input(_))
        ));
    }
    let bad = CxrEncoderConfig {
        normalize: Normalize::identity(1),
        ..configs(true).remove(0)
    };
    assert!(matches!(
        CxrEncoder::new(bad, 0, DType::F32, &Device::Cpu),
        Err(Error::Config { .. })
    ));
}

#[test]
fn save_load_round_trip_and_extraction() {
    let dir = tempfile::tempdir().unwrap();
    for (i, config) in configs(false).into_iter().enumerate() {
        let enc = CxrEncoder::new(config, 5, DType::F32, &Device::Cpu).unwrap();
        let x = images(2, 7);
        let (z, l) = enc.forward(&x, false).unwrap();
        let sub = dir.path().join(format!("m{i}"));
        enc.save(&sub).unwrap();
        let back = CxrEncoder::load(&sub, DType::F32, &Device::Cpu).unwrap();
        let (z2, l2) = back.forward(&x, false).unwrap();
        assert_eq!(z.to_vec2::<f32>().unwrap(), z2.to_vec2::<f32>().unwrap());
        assert_eq!(l.to_vec1::<f32>().unwrap(), l2.to_vec1::<f32>().unwrap());

        let items: Vec<(String, Image2d)> = (0..3)
            .map(|k| {
                (
                    format!("p{k}"),
                    Image2d::new(vec![k as f32 / 3.0; 256], 16, 16).unwrap(),
                )
            })
            .collect();
        let out = sub.join("emb.safetensors");
        enc.extract(&items, 2, &out).unwrap();
        let rows = cxr_encoder::embeddings::load_embeddings(&out).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["p0", "p1", "p2"]
        );
        let single = enc.images_to_tensor(&[&items[2].1]).unwrap();
        let (z1, _) = enc.forward(&single, false).unwrap();
        let want = z1.get(0).unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in rows[2].1.iter().zip(want) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn a_frozen_backbone_computes_the_same_features_without_a_graph() {
    let x = images(2, 11);
    for (live_cfg, frozen_cfg) in configs(false).into_iter().zip(configs(true)) {
        let live = CxrEncoder::new(live_cfg, 5, DType::F32, &Device::Cpu).unwrap();
        let mut frozen = CxrEncoder::new(frozen_cfg, 5, DType::F32, &Device::Cpu).unwrap();
        let a = live.features(&x, false).unwrap();
        let b = frozen.features(&x, false).unwrap();
        let bits = |t: &Tensor| cmkd_train::compare::f32_bits(t).unwrap();
        assert_eq!(bits(&a), bits(&b), "{:?}", frozen.config().backbone);
        // Weights loaded in place after freezing are seen by the frozen forward.
        for (_, v) in frozen.var_map().data().lock().unwrap().iter() {
            v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        }
        let zeroed = frozen.features(&x, false).unwrap();
        assert_ne!(bits(&zeroed), bits(&b));
        frozen.set_backbone_frozen(false);
        assert_eq!(bits(&frozen.features(&x, false).unwrap()), bits(&zeroed));
    }
}
