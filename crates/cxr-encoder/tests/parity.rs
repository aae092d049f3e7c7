//! Numerical parity with the reference Python libraries on tiny random-weight models.
//!
//! Fixtures come from `tools/encoders/make_fixtures.py` (transformers Dinov2Model, open_clip's
//! timm tower, torchvision's ResNet Bottleneck); the weights files are loaded unchanged.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cxr_encoder::clip::{ClipVision, ClipVisionConfig};
use cxr_encoder::dinov2::{Dinov2, Dinov2Config};
use cxr_encoder::resnet::{BlockKind, ResNet, ResNetConfig};
use cxr_encoder::vit::position;
use cxr_encoder::{load_into, Error};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn io(name: &str) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).unwrap()
}

fn max_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn tiny_dinov2() -> Dinov2Config {
    Dinov2Config {
        image_size: 16,
        patch_size: 4,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        ..Dinov2Config::small()
    }
}

pub fn tiny_clip() -> ClipVisionConfig {
    ClipVisionConfig {
        image_size: 16,
        patch_size: 4,
        width: 32,
        layers: 2,
        heads: 2,
        embed_dim: 24,
        ..ClipVisionConfig::vit_b16()
    }
}

pub fn tiny_resnet() -> ResNetConfig {
    ResNetConfig {
        block: BlockKind::Bottleneck,
        layers: [2, 1, 1, 1],
        stem_width: 8,
        widths: [8, 16, 32, 64],
        in_channels: 3,
    }
}

#[test]
fn dinov2_matches_transformers_at_native_and_interpolated_sizes() {
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 9, DType::F32, &Device::Cpu);
    let model = Dinov2::new(tiny_dinov2(), vb).unwrap();
    let report = load_into(&map, &fixture("dinov2_tiny.safetensors"), "", "").unwrap();
    assert_eq!(report.unused, vec!["embeddings.mask_token".to_string()]);
    let t = io("dinov2_tiny_io.safetensors");
    for case in ["a", "b"] {
        let y = model.forward_tokens(&t[&format!("input_{case}")]).unwrap();
        let e = max_err(&y, &t[&format!("output_{case}")]);
        assert!(e < 1e-4, "case {case}: max abs error {e}");
    }
}

#[test]
fn clip_tower_matches_open_clip() {
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 9, DType::F32, &Device::Cpu);
    let model = ClipVision::new(tiny_clip(), vb).unwrap();
    let report = load_into(&map, &fixture("clip_tiny.safetensors"), "", "visual.").unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let t = io("clip_tiny_io.safetensors");
    let e = max_err(&model.forward(&t["input"]).unwrap(), &t["output"]);
    assert!(e < 1e-4, "max abs error {e}");
    // Fixed positions: another size is a typed error, not a silent resample.
    let wrong = Tensor::zeros((1, 3, 20, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        model.forward(&wrong),
        Err(Error::ImageSize {
            expected: (16, 16),
            found: (20, 16),
            ..
        })
    ));
}

#[test]
fn resnet_matches_torchvision_in_eval_and_train_modes() {
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 9, DType::F32, &Device::Cpu);
    let model = ResNet::new(tiny_resnet(), vb).unwrap();
    let report = load_into(&map, &fixture("resnet_tiny.safetensors"), "", "").unwrap();
    assert_eq!(
        report.unused,
        vec!["fc.bias".to_string(), "fc.weight".to_string()]
    );
    let t = io("resnet_tiny_io.safetensors");
    let e = max_err(
        &model.forward(&t["input"], false).unwrap(),
        &t["output_eval"],
    );
    assert!(e < 1e-4, "eval: max abs error {e}");
    let e = max_err(
        &model.forward(&t["input"], true).unwrap(),
        &t["output_train"],
    );
    assert!(e < 1e-4, "train: max abs error {e}");
    // The training pass updated the running statistics in the VarMap itself.
    let vars: std::collections::HashMap<_, _> = cmkd_train::sorted_vars(&map).into_iter().collect();
    for (ours, theirs) in [
        ("bn1.running_mean", "bn1_running_mean_after"),
        ("bn1.running_var", "bn1_running_var_after"),
    ] {
        let e = max_err(vars[ours].as_tensor(), &t[theirs]);
        assert!(e < 1e-5, "{ours}: {e}");
    }
}

#[test]
fn position_resampling_matches_torch_interpolate() {
    let t = io("position_io.safetensors");
    for (n, key) in [(13, "to_13"), (4, "to_4")] {
        let e = max_err(&position::resample_sequence(&t["pos"], n).unwrap(), &t[key]);
        assert!(e < 1e-5, "linear to {n}: {e}");
    }
    let g = io("grid_io.safetensors");
    for (to, key) in [((5, 7), "to_5x7"), ((2, 2), "to_2x2")] {
        let e = max_err(
            &position::resample_grid(&g["grid"], (3, 3), to).unwrap(),
            &g[key],
        );
        assert!(e < 1e-5, "bicubic to {to:?}: {e}");
    }
}

#[test]
fn loading_names_missing_and_mismatched_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors =
        candle_core::safetensors::load(fixture("clip_tiny.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("visual.trunk.blocks.1.attn.qkv.weight");
    let missing = dir.path().join("missing.safetensors");
    candle_core::safetensors::save(&tensors, &missing).unwrap();
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
    ClipVision::new(tiny_clip(), vb).unwrap();
    match load_into(&map, &missing, "", "visual.") {
        Err(Error::MissingTensor { name, .. }) => {
            assert_eq!(name, "visual.trunk.blocks.1.attn.qkv.weight")
        }
        other => panic!("{other:?}"),
    }
    // A wider model than the file: the first mismatched tensor is named with both shapes.
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
    ClipVision::new(
        ClipVisionConfig {
            embed_dim: 8,
            ..tiny_clip()
        },
        vb,
    )
    .unwrap();
    match load_into(&map, &fixture("clip_tiny.safetensors"), "", "visual.") {
        Err(Error::ShapeMismatch {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, "visual.head.proj.weight");
            assert_eq!((expected, found), (vec![8, 32], vec![24, 32]));
        }
        other => panic!("{other:?}"),
    }
}
