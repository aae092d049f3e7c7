//! The patch-free sequence ViT against transformers' DINOv2 encoder (fixture from
//! `tools/encoders/make_fixtures.py`): each reference sequence ran alone and unpadded; here they run
//! as one padded, masked batch.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use ctpa_encoder::{SequenceVit, SequenceVitConfig};
use cxr_encoder::WeightSource;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn config() -> SequenceVitConfig {
    SequenceVitConfig {
        in_dim: 10,
        width: 32,
        depth: 2,
        heads: 2,
        mlp_ratio: 4,
        positions: 16,
        layer_scale: 1.0,
        eps: 1e-6,
        embed_dim: 12,
    }
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

#[test]
fn padded_batch_matches_transformers_dinov2_encoder_per_sequence() {
    let vit = SequenceVit::new(config(), 0, DType::F32, &Device::Cpu).unwrap();
    let report = cxr_encoder::load_into(
        vit.var_map(),
        &fixture("sequence_vit_tiny.safetensors"),
        "",
        "",
    )
    .unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let io =
        candle_core::safetensors::load(fixture("sequence_vit_tiny_io.safetensors"), &Device::Cpu)
            .unwrap();
    let lengths: Vec<usize> = io["lengths"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|l| l as usize)
        .collect();
    let (z, logit) = vit.forward(&io["seq"], &lengths).unwrap();
    let ez = max_err(&z, &io["z"]);
    let el = max_err(&logit, &io["logit"]);
    assert!(
        ez < 1e-4 && el < 1e-4,
        "embedding error {ez}, logit error {el}"
    );
}

#[test]
fn dinov2_trunk_loads_from_a_transformers_checkpoint() {
    let vit = SequenceVit::new(config(), 0, DType::F32, &Device::Cpu).unwrap();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cxr-encoder/tests/fixtures/dinov2_tiny.safetensors");
    let report = vit.load_dinov2_trunk(&WeightSource::File(file)).unwrap();
    // Class token, positions, 2 x 18 block tensors, final norm: everything but the three heads.
    assert_eq!(report.loaded, 2 + 2 * 18 + 2);
    assert!(
        report
            .unused
            .iter()
            .all(|n| n.starts_with("embeddings.patch_embeddings") || n == "embeddings.mask_token"),
        "{:?}",
        report.unused
    );
    let wrong = SequenceVit::new(
        SequenceVitConfig {
            positions: 9,
            ..config()
        },
        0,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cxr-encoder/tests/fixtures/dinov2_tiny.safetensors");
    match wrong.load_dinov2_trunk(&WeightSource::File(file)) {
        Err(ctpa_encoder::Error::Encoder(cxr_encoder::Error::ShapeMismatch { name, .. })) => {
            assert_eq!(name, "embeddings.position_embeddings")
        }
        other => panic!("{other:?}"),
    }
}
