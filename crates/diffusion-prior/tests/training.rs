//! Training behaviour: gradient flow, loss decrease, the extra loss, NaN guards, checkpoints with
//! exact resume, and typed errors for bad input.

use candle_core::{DType, Device, Tensor};
use diffusion_prior::{
    BetaSchedule, Control, DiffusionPrior, Error, NormKind, PairedData, PriorConfig, PriorOptions,
    Trainer, TrainerConfig,
};

fn toy_data(n: usize, seed: u64) -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let mut rng = cmkd_train::rng::stream(seed, "data");
    let c = cmkd_train::rng::randn(&mut rng, 0.0, 1.0, (n, 3), DType::F32, &dev).unwrap();
    let a = Tensor::new(&[[1.0f32, -0.5], [0.3, 0.8], [0.0, 0.4]], &dev).unwrap();
    let noise = cmkd_train::rng::randn(&mut rng, 0.0, 0.3, (n, 2), DType::F32, &dev).unwrap();
    (c.clone(), (c.matmul(&a).unwrap() + noise).unwrap())
}

fn small_prior(cfg: PriorConfig, drop: f64, c: &Tensor, z: &Tensor) -> DiffusionPrior {
    let options = PriorOptions {
        cond_drop_prob: drop,
        ..PriorOptions::new(cfg, BetaSchedule::Cosine, 32)
    };
    DiffusionPrior::new(
        options,
        NormKind::Standardize,
        NormKind::Identity,
        c,
        z,
        3,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn dalle2_small() -> PriorConfig {
    PriorConfig {
        prefix_tokens: 3,
        attn_dropout: 0.1,
        ff_dropout: 0.1,
        time_embedding: diffusion_prior::TimeEmbedding::Learned { rows: 32 },
        embed_dim: 2,
        cond_dim: 3,
        dim: 16,
        depth: 2,
        heads: 2,
        dim_head: 8,
        ..PriorConfig::default()
    }
}

fn quick_config(epochs: usize) -> TrainerConfig {
    TrainerConfig {
        epochs,
        batch_size: 16,
        optimizer: diffusion_prior::AdamWConfig {
            lr: 1e-3,
            ..TrainerConfig::published().optimizer
        },
        lr_schedule: diffusion_prior::LrSchedule::LinearWarmup { warmup_steps: 5 },
        ema: Some(diffusion_prior::EmaConfig {
            update_after_step: 2,
            update_every: 1,
            ..Default::default()
        }),
        shuffle: true,
        seed: 11,
        ..TrainerConfig::published()
    }
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    let (c, z) = toy_data(32, 0);
    for cfg in [
        dalle2_small(),
        PriorConfig {
            prefix_tokens: 2,
            embed_dim: 2,
            cond_dim: 3,
            dim: 16,
            depth: 2,
            heads: 2,
            dim_head: 8,
            ..PriorConfig::plain()
        },
    ] {
        let prior = small_prior(cfg.clone(), 0.5, &c, &z);
        let mut rng = cmkd_train::rng::stream(5, "grad");
        let parts = prior.loss(&c, &z, &mut rng, true).unwrap();
        let grads = parts.mse.backward().unwrap();
        let vars = prior.vars();
        assert!(vars.len() > 10);
        for (name, v) in &vars {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name} ({:?}) has no gradient", cfg.style));
            let s = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(s.is_finite() && s > 0.0, "{name}: gradient sum {s}");
        }
    }
}

#[test]
fn extra_loss_changes_the_gradients_and_sees_denormalised_predictions() {
    let (c, z) = toy_data(16, 1);
    let prior = small_prior(dalle2_small(), 0.0, &c, &z);
    let grads_of = |with_extra: bool| {
        let mut rng = cmkd_train::rng::stream(9, "x");
        let parts = prior.loss(&c, &z, &mut rng, true).unwrap();
        let mut loss = parts.mse.clone();
        if with_extra {
            // A term that only depends on the caller-space prediction.
            loss = (loss + parts.pred.sum_all().unwrap()).unwrap();
        }
        let g = loss.backward().unwrap();
        let (_, v) = prior
            .vars()
            .into_iter()
            .find(|(n, _)| n == "causal_transformer.project_out.weight")
            .unwrap();
        g.get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let a = grads_of(false);
    let b = grads_of(true);
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-6));

    // Through the trainer: the extra loss sees predictions on the targets' scale (the data were
    // standardised for the diffusion; predictions come back un-normalised).
    let data = PairedData::new(c.clone(), z.clone()).unwrap();
    let mut t = Trainer::new(prior, quick_config(1)).unwrap();
    let mut seen = Vec::new();
    let mut extra = |inp: &diffusion_prior::ExtraLossInput| {
        assert_eq!(inp.pred.dims(), inp.target.dims());
        seen.push(inp.indices.len());
        Ok((inp.pred.sqr()?.mean_all()? * 0.1)?)
    };
    let s = t
        .train_step(&data, &[0, 1, 2, 3], Some(&mut extra))
        .unwrap();
    assert!(s.extra > 0.0 && (s.loss - (s.mse + s.extra)).abs() < 1e-5);
    assert_eq!(seen, vec![4]);
}

#[test]
fn loss_goes_down_and_resume_is_exact() {
    let (c, z) = toy_data(64, 2);
    let data = PairedData::new(c.clone(), z.clone()).unwrap();
    let mut t = Trainer::new(small_prior(dalle2_small(), 0.1, &c, &z), quick_config(25)).unwrap();
    let mut losses = Vec::new();
    t.fit(&data, None, &mut |m| {
        losses.push(m.loss);
        Control::Continue
    })
    .unwrap();
    assert_eq!(t.step(), 25 * 4);
    let first = losses[..3].iter().sum::<f64>();
    let last = losses[losses.len() - 3..].iter().sum::<f64>();
    assert!(last < 0.75 * first, "{losses:?}");

    // Uninterrupted: 6 steps (1.5 epochs), then the 7th.
    let dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(
        small_prior(dalle2_small(), 0.1, &c, &z),
        TrainerConfig {
            epochs: 3,
            ..quick_config(3)
        },
    )
    .unwrap();
    let mut stop_after = |_: &diffusion_prior::EpochMetrics| Control::Stop;
    a.fit(&data, None, &mut stop_after).unwrap(); // 4 steps (one epoch)
    a.train_step(&data, &[4, 9, 1], None).unwrap();
    a.save_checkpoint(dir.path()).unwrap();
    let next_a = a.train_step(&data, &[7, 3, 2, 0], None).unwrap();
    let mut b = Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!((b.step(), b.epoch()), (5, 1));
    let next_b = b.train_step(&data, &[7, 3, 2, 0], None).unwrap();
    assert_eq!(next_a, next_b);
    // And the weights after that step agree exactly, EMA included.
    let wa = a.ema_prior().unwrap().vars();
    let wb = b.ema_prior().unwrap().vars();
    for ((n, x), (_, y)) in wa.iter().zip(&wb) {
        let d = (x.as_tensor() - y.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{n}");
    }
    // Fitting to the end from the resumed state works (mid-epoch continuation).
    b.fit(&data, None, &mut |_| Control::Continue).unwrap();
    assert_eq!(b.step(), 12);
}

#[test]
fn bad_input_gives_typed_errors() {
    let (c, z) = toy_data(8, 3);
    // NaN in the data: named tensor and row.
    let mut zv = z.to_vec2::<f32>().unwrap();
    zv[5][1] = f32::NAN;
    let zn = Tensor::new(zv, &Device::Cpu).unwrap();
    assert!(matches!(
        PairedData::new(c.clone(), zn),
        Err(Error::NonFiniteInput {
            what: "target",
            row: 5
        })
    ));
    // Empty data set, mismatched rows.
    let empty = Tensor::zeros((0, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        PairedData::new(
            empty.clone(),
            Tensor::zeros((0, 2), DType::F32, &Device::Cpu).unwrap()
        ),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        PairedData::new(c.narrow(0, 0, 4).unwrap(), z.clone()),
        Err(Error::Shape { .. })
    ));
    // Mismatched dimensions against the model.
    let prior = small_prior(dalle2_small(), 0.0, &c, &z);
    let mut rng = cmkd_train::rng::stream(0, "e");
    assert!(matches!(
        prior.loss(&z, &z, &mut rng, false),
        Err(Error::Shape { what: "cond", .. })
    ));
    // A NaN extra loss stops training naming the step.
    let data = PairedData::new(c.clone(), z.clone()).unwrap();
    let mut t = Trainer::new(prior, quick_config(1)).unwrap();
    t.train_step(&data, &[0, 1], None).unwrap();
    let mut nan = |inp: &diffusion_prior::ExtraLossInput| Ok((inp.pred.sum_all()? * f64::NAN)?);
    match t.train_step(&data, &[0, 1], Some(&mut nan)) {
        Err(Error::Train(cmkd_train::Error::NonFinite { what, step })) => {
            assert_eq!((what.as_str(), step), ("extra loss", 1));
        }
        other => panic!("{other:?}"),
    }
    // Corrupted and missing checkpoints.
    let dir = tempfile::tempdir().unwrap();
    t.save_checkpoint(dir.path()).unwrap();
    let w = snapshot_dir(dir.path()).join("model/model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = Trainer::resume(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    std::fs::remove_file(dir.path().join("trainer.json")).unwrap();
    assert!(Trainer::resume(dir.path(), DType::F32, &Device::Cpu).is_err());
}

/// The snapshot folder that a checkpoint's `trainer.json` names.
fn snapshot_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("trainer.json")).unwrap()).unwrap();
    dir.join(state["snapshot"].as_str().unwrap())
}

/// A directory mixed from two saves (an older `trainer.json` with newer weights or moments, as a
/// crash between per-file writes or a careless copy leaves it) is refused with a typed error that
/// names the file, for every file of the checkpoint.
#[test]
fn mixed_checkpoint_directory_is_a_typed_error_naming_the_file() {
    let (c, z) = toy_data(16, 4);
    let data = PairedData::new(c.clone(), z.clone()).unwrap();
    let mut t = Trainer::new(small_prior(dalle2_small(), 0.1, &c, &z), quick_config(1)).unwrap();
    t.train_step(&data, &[0, 1, 2, 3], None).unwrap();
    let old = tempfile::tempdir().unwrap();
    t.save_checkpoint(old.path()).unwrap();
    t.train_step(&data, &[4, 5, 6, 7], None).unwrap();
    // Analytic-DPM statistics make the second save's config.json differ too.
    t.prior_mut()
        .estimate_gamma(&c, &z, &[0, 5, 9], 8, 1)
        .unwrap();
    let new = tempfile::tempdir().unwrap();
    t.save_checkpoint(new.path()).unwrap();
    for file in [
        "model/model.safetensors",
        "model/config.json",
        "optimizer.safetensors",
        "ema.safetensors",
    ] {
        let mixed = tempfile::tempdir().unwrap();
        let snap = snapshot_dir(old.path());
        let target = mixed.path().join(snap.file_name().unwrap());
        std::fs::create_dir_all(target.join("model")).unwrap();
        std::fs::copy(
            old.path().join("trainer.json"),
            mixed.path().join("trainer.json"),
        )
        .unwrap();
        for f in [
            "model/model.safetensors",
            "model/config.json",
            "optimizer.safetensors",
            "ema.safetensors",
        ] {
            let from = if f == file {
                snapshot_dir(new.path()).join(f)
            } else {
                snap.join(f)
            };
            std::fs::copy(from, target.join(f)).unwrap();
        }
        match Trainer::resume(mixed.path(), DType::F32, &Device::Cpu) {
            Err(Error::CheckpointMismatch { path, .. }) => {
                assert!(path.ends_with(file), "{path:?}")
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // The unmixed directories load, at their own steps.
    assert_eq!(
        Trainer::resume(old.path(), DType::F32, &Device::Cpu)
            .unwrap()
            .step(),
        1
    );
    assert_eq!(
        Trainer::resume(new.path(), DType::F32, &Device::Cpu)
            .unwrap()
            .step(),
        2
    );
}
