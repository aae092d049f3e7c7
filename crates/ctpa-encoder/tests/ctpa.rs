//! CtpaEncoder behaviour: masking, lengths, gradients, freezing, training, errors, save/load.

use candle_core::{DType, Device, Tensor};
use ctpa_encoder::{
    CtpaEncoder, CtpaEncoderConfig, Error, SequenceVit, SequenceVitConfig, SLICE_PREFIX,
};
use cxr_encoder::train::predict_proba;
use cxr_encoder::{bce_with_logits, ClassifierTrainer, FitConfig};
use med_io::{Geometry, Volume};
use rand::{Rng, SeedableRng};

fn tiny() -> CtpaEncoderConfig {
    let mut c = CtpaEncoderConfig::small();
    c.slice.widths = [4, 8, 8, 16];
    c.vit = SequenceVitConfig {
        in_dim: 16,
        width: 16,
        depth: 2,
        heads: 2,
        mlp_ratio: 2,
        positions: 8,
        layer_scale: 1.0,
        eps: 1e-6,
        embed_dim: 8,
    };
    c
}

fn noise_volume(rng: &mut rand::rngs::StdRng, n: usize, slices: usize) -> Volume {
    let data = (0..n * n * slices)
        .map(|_| rng.random::<f32>() * 0.2)
        .collect();
    Volume::new(data, [n, n, slices], Geometry::default()).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    cmkd_train::compare::max_abs_diff(a, b).unwrap()
}

#[test]
fn batching_with_padding_equals_one_at_a_time() {
    let enc = CtpaEncoder::new(tiny(), 1, DType::F32, &Device::Cpu).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let vols: Vec<Volume> = [5, 3, 11, 1]
        .iter()
        .map(|&s| noise_volume(&mut rng, 16, s))
        .collect();
    let refs: Vec<&Volume> = vols.iter().collect();
    let (z, l) = enc.forward(&refs, false).unwrap();
    for (i, v) in vols.iter().enumerate() {
        let (zi, li) = enc.forward(&[v], false).unwrap();
        assert!(
            max_diff(&z.get(i).unwrap(), &zi.get(0).unwrap()) < 1e-5,
            "volume {i}"
        );
        assert!(
            max_diff(&l.get(i).unwrap(), &li.get(0).unwrap()) < 1e-5,
            "volume {i}"
        );
    }
}

#[test]
fn padded_positions_are_masked_out() {
    let cfg = tiny().vit;
    let vit = SequenceVit::new(cfg, 3, DType::F32, &Device::Cpu).unwrap();
    let mut g = cmkd_train::rng::stream(4, "seq");
    let seq = cmkd_train::rng::randn(
        &mut g,
        0.0,
        1.0,
        (2, 7, cfg.in_dim),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let lengths = [4, 7];
    let (z, _) = vit.forward(&seq, &lengths).unwrap();
    // Permute (and rescale) the padded rows 4..7 of sample 0: nothing changes.
    let s0 = seq.get(0).unwrap();
    let shuffled = Tensor::cat(
        &[
            s0.narrow(0, 0, 4).unwrap(),
            (s0.narrow(0, 4, 3)
                .unwrap()
                .index_select(&Tensor::new(&[2u32, 0, 1], &Device::Cpu).unwrap(), 0)
                .unwrap()
                * 50.0)
                .unwrap(),
        ],
        0,
    )
    .unwrap();
    let seq2 = Tensor::stack(&[shuffled, seq.get(1).unwrap()], 0).unwrap();
    let (z2, _) = vit.forward(&seq2, &lengths).unwrap();
    assert!(max_diff(&z, &z2) < 1e-6);
    // Without the mask (all rows declared valid) the same padding does change the output.
    let (z3, _) = vit.forward(&seq2, &[7, 7]).unwrap();
    assert!(max_diff(&z.get(0).unwrap(), &z3.get(0).unwrap()) > 1e-3);
    assert!(matches!(vit.forward(&seq, &[0, 7]), Err(Error::Input(_))));
    assert!(matches!(vit.forward(&seq, &[8, 7]), Err(Error::Input(_))));
}

#[test]
fn one_slice_and_three_hundred_slices() {
    let enc = CtpaEncoder::new(tiny(), 2, DType::F32, &Device::Cpu).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let one = noise_volume(&mut rng, 8, 1);
    let long = noise_volume(&mut rng, 8, 300);
    let (z, l) = enc.forward(&[&one, &long], false).unwrap();
    assert_eq!(z.dims(), &[2, 8]);
    let v = l.to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
fn gradients_reach_every_trainable_parameter_and_no_frozen_one() {
    for freeze in [false, true] {
        let mut cfg = tiny();
        cfg.freeze_slice = freeze;
        let enc = CtpaEncoder::new(cfg, 5, DType::F32, &Device::Cpu).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let vols = [
            noise_volume(&mut rng, 16, 3),
            noise_volume(&mut rng, 16, 6),
            noise_volume(&mut rng, 16, 2),
        ];
        let (_, logit) = enc.forward(&[&vols[0], &vols[1], &vols[2]], true).unwrap();
        let loss =
            bce_with_logits(&logit, &Tensor::new(&[1f32, 0., 1.], &Device::Cpu).unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let trainable = enc.trainable_vars();
        for (name, var) in &trainable {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let s = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(s.is_finite() && s > 0.0, "gradient of {name} is {s}");
        }
        assert_eq!(
            trainable.iter().any(|(n, _)| n.starts_with(SLICE_PREFIX)),
            !freeze
        );
        if freeze {
            for (name, var) in cmkd_train::sorted_vars(enc.slice_encoder().var_map()) {
                assert!(
                    grads.get(var.as_tensor()).is_none(),
                    "frozen {name} has a gradient"
                );
            }
        }
    }
}

/// Volumes of noise; positives carry a bright 3x3x2 blob somewhere.
fn blob_data(n: usize, seed: u64) -> Vec<(Volume, f32)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let slices = rng.random_range(3..8);
            let mut v = noise_volume(&mut rng, 12, slices);
            let label = (i % 2) as f32;
            if label == 1.0 {
                let (x, y, z) = (
                    rng.random_range(1..8),
                    rng.random_range(1..8),
                    rng.random_range(0..slices - 1),
                );
                for k in z..z + 2 {
                    for j in y..y + 3 {
                        for i in x..x + 3 {
                            let o = v.offset(i, j, k);
                            v.data_mut()[o] = 1.0;
                        }
                    }
                }
            }
            (v, label)
        })
        .collect()
}

fn auc(scores: &[f32], labels: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (s1, _) in scores.iter().zip(labels).filter(|(_, &l)| l == 1.0) {
        for (s0, _) in scores.iter().zip(labels).filter(|(_, &l)| l == 0.0) {
            num += if s1 > s0 {
                1.0
            } else if s1 == s0 {
                0.5
            } else {
                0.0
            };
            den += 1.0;
        }
    }
    num / den
}

#[test]
fn learns_a_synthetic_blob_task() {
    let enc = CtpaEncoder::new(tiny(), 7, DType::F32, &Device::Cpu).unwrap();
    let train = blob_data(48, 10);
    let test = blob_data(40, 11);
    let cfg = FitConfig {
        optimizer: cmkd_train::AdamWConfig {
            lr: 3e-3,
            ..Default::default()
        },
        batch_size: 8,
        epochs: 8,
        max_grad_norm: Some(1.0),
        seed: 3,
    };
    let mut trainer = ClassifierTrainer::new(&enc, cfg).unwrap();
    let losses = trainer.fit(&enc, &train).unwrap();
    let items: Vec<&Volume> = test.iter().map(|(v, _)| v).collect();
    let labels: Vec<f32> = test.iter().map(|(_, l)| *l).collect();
    let p = predict_proba(&enc, &items, 16).unwrap();
    let a = auc(&p, &labels);
    assert!(a > 0.95, "test AUC {a}, epoch losses {losses:?}");
}

#[test]
fn freezing_really_freezes() {
    let mut cfg = tiny();
    cfg.freeze_slice = true;
    let enc = CtpaEncoder::new(cfg, 8, DType::F32, &Device::Cpu).unwrap();
    let snapshot = |vars: Vec<(String, candle_core::Var)>| -> Vec<Vec<f32>> {
        vars.iter()
            .map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    };
    let slice_before = snapshot(cmkd_train::sorted_vars(enc.slice_encoder().var_map()));
    let vit_before = snapshot(enc.vit().trainable_vars());
    let data = blob_data(4, 1);
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
    trainer.fit(&enc, &data).unwrap();
    assert_eq!(
        slice_before,
        snapshot(cmkd_train::sorted_vars(enc.slice_encoder().var_map()))
    );
    let vit_after = snapshot(enc.vit().trainable_vars());
    assert!(
        vit_before.iter().zip(&vit_after).all(|(a, b)| a != b),
        "some ViT variable did not train"
    );
}

#[test]
fn typed_errors_and_round_trips() {
    let enc = CtpaEncoder::new(tiny(), 9, DType::F32, &Device::Cpu).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let a = noise_volume(&mut rng, 16, 3);
    let b = noise_volume(&mut rng, 12, 3);
    assert!(matches!(
        enc.forward(&[&a, &b], false),
        Err(Error::Input(_))
    ));
    assert!(matches!(enc.forward(&[], false), Err(Error::Input(_))));
    let mut wrong = tiny();
    wrong.vit.in_dim = 5;
    assert!(matches!(
        CtpaEncoder::new(wrong, 0, DType::F32, &Device::Cpu),
        Err(Error::Config { .. })
    ));
    let mut rgb = tiny();
    rgb.slice.in_channels = 3;
    rgb.vit.in_dim = rgb.slice.out_dim();
    let enc3 = CtpaEncoder::new(rgb, 0, DType::F32, &Device::Cpu).unwrap();
    // A 3-channel slice network gets the gray slice repeated; a 1-channel one called directly with
    // 3 channels is a channel error naming both counts.
    assert!(enc3.forward(&[&a], false).is_ok());
    let x = Tensor::zeros((2, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
    use ctpa_encoder::SliceEncoder;
    match enc.slice_encoder().encode(&x, false) {
        Err(Error::Encoder(cxr_encoder::Error::Channels {
            expected: 1,
            found: 3,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    enc.save(dir.path()).unwrap();
    let back = CtpaEncoder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let (z1, _) = enc.forward(&[&a], false).unwrap();
    let (z2, _) = back.forward(&[&a], false).unwrap();
    assert_eq!(z1.to_vec2::<f32>().unwrap(), z2.to_vec2::<f32>().unwrap());
    // The sequence ViT alone (the frozen CTPA head of the prior) saves and loads too.
    enc.vit().save(&dir.path().join("vit")).unwrap();
    let vit = SequenceVit::load(&dir.path().join("vit"), DType::F32, &Device::Cpu).unwrap();
    let h1 = enc.vit().head_logit(&z1).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(h1, vit.head_logit(&z1).unwrap().to_vec1::<f32>().unwrap());
    assert_eq!(
        h1,
        enc.vit()
            .frozen_head()
            .unwrap()
            .logits(&z1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    // The layout of earlier versions (slice.safetensors + vit.safetensors) still loads.
    let all =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
    let old = tempfile::tempdir().unwrap();
    for prefix in ["slice.", "vit."] {
        let part: std::collections::HashMap<String, Tensor> = all
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect();
        let file = format!("{}safetensors", prefix);
        candle_core::safetensors::save(&part, old.path().join(file)).unwrap();
    }
    std::fs::copy(
        dir.path().join("config.json"),
        old.path().join("config.json"),
    )
    .unwrap();
    let legacy = CtpaEncoder::load(old.path(), DType::F32, &Device::Cpu).unwrap();
    let (z3, _) = legacy.forward(&[&a], false).unwrap();
    assert_eq!(z1.to_vec2::<f32>().unwrap(), z3.to_vec2::<f32>().unwrap());
    // A checkpoint missing a tensor is named.
    let mut t = all;
    t.remove("vit.encoder.layer.1.layer_scale2.lambda1");
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    match CtpaEncoder::load(dir.path(), DType::F32, &Device::Cpu) {
        Err(Error::Encoder(cxr_encoder::Error::MissingTensor { name, .. })) => {
            assert_eq!(name, "vit.encoder.layer.1.layer_scale2.lambda1")
        }
        other => panic!("{:?}", other.err()),
    }

    let items = vec![
        ("b".to_string(), b.clone()),
        ("a".to_string(), noise_volume(&mut rng, 12, 5)),
    ];
    let out = dir.path().join("emb.safetensors");
    enc.extract(&items, 1, &out).unwrap();
    let rows = cxr_encoder::embeddings::load_embeddings(&out).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "a");
    assert_eq!(rows[0].1.len(), 8);
}

#[test]
fn a_frozen_slice_cnn_encodes_the_same_without_a_graph() {
    use ctpa_encoder::SliceEncoder;
    let live = CtpaEncoder::new(tiny(), 8, DType::F32, &Device::Cpu).unwrap();
    let mut cfg = tiny();
    cfg.freeze_slice = true;
    let frozen = CtpaEncoder::new(cfg, 8, DType::F32, &Device::Cpu).unwrap();
    let slices = Tensor::randn(0f32, 1.0, (6, 1, 16, 16), &Device::Cpu).unwrap();
    let a = live.slice_encoder().encode(&slices, false).unwrap();
    let b = frozen.slice_encoder().encode(&slices, true).unwrap();
    let bits = |t: &Tensor| cmkd_train::compare::f32_bits(t).unwrap();
    assert_eq!(bits(&a), bits(&b));
    // A constant: no gradient reaches the input through it either.
    let input = candle_core::Var::from_tensor(&slices).unwrap();
    let out = frozen
        .slice_encoder()
        .encode(input.as_tensor(), false)
        .unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(input.as_tensor()).is_none());
}
