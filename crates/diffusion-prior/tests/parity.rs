//! Forward parity with DALLE2-pytorch 1.15.6's `DiffusionPriorNetwork` (fixture made by
//! `tools/prior/export_fixture.py`) and the published parameter count.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use diffusion_prior::{CondDrop, PriorConfig, PriorNetwork, Style, TimeEmbedding};

fn fixture() -> std::collections::HashMap<String, Tensor> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dalle2_small.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn small_config() -> PriorConfig {
    PriorConfig {
        ff_mult: 2,
        prefix_tokens: 5,
        time_embedding: TimeEmbedding::Learned { rows: 16 },
        embed_dim: 32,
        cond_dim: 32,
        dim: 32,
        depth: 2,
        heads: 2,
        dim_head: 40,
        ..PriorConfig::default()
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn forward_matches_dalle2_pytorch() {
    let f = fixture();
    let map = VarMap::new();
    let vb = cmkd_train::seeded_var_builder(&map, 0, DType::F32, &Device::Cpu);
    let net = PriorNetwork::new(&small_config(), 16, vb).unwrap();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dalle2_small.safetensors");
    let report = cmkd_train::checkpoint::load_varmap(&path, &map, true).unwrap();
    assert!(
        report
            .unexpected
            .iter()
            .all(|n| n.starts_with("input.") || n.starts_with("output.")),
        "{report:?}"
    );
    // Same trainable parameter count as PyTorch (30,016, see dalle2_small.json).
    assert_eq!(
        cmkd_train::count_params(&cmkd_train::sorted_vars(&map)),
        30_016
    );

    let x = &f["input.x"];
    let c = &f["input.cond"];
    let t = f["input.t"].to_dtype(DType::U32).unwrap();
    let out = net.forward(x, &t, c, CondDrop::Keep, None).unwrap();
    let d = max_abs_diff(&out, &f["output.cond"]);
    eprintln!("max |ours - DALLE2-pytorch| (conditional) = {d:e}");
    assert!(d < 1e-4, "conditional output differs by {d}");
    let null = net.forward(x, &t, c, CondDrop::All, None).unwrap();
    let d = max_abs_diff(&null, &f["output.null"]);
    assert!(d < 1e-4, "unconditional output differs by {d}");
    // The sampling path (prefix and condition keys/values cached) is the same function.
    let cache = net.condition_cache(c, false).unwrap();
    let d = max_abs_diff(
        &net.forward_cached(&cache, x, &t, c).unwrap(),
        &f["output.cond"],
    );
    assert!(d < 1e-4, "cached output differs by {d}");
    let cache = net.condition_cache(c, true).unwrap();
    let d = max_abs_diff(
        &net.forward_cached(&cache, x, &t, c).unwrap(),
        &f["output.null"],
    );
    assert!(d < 1e-4, "cached null output differs by {d}");
}

#[test]
fn published_parameter_count_equals_dalle2_pytorch() {
    // 48,832,896 with the 77 null text tokens (DALLE2-pytorch, counted in dalle2_small.json);
    // 48,793,472 without them. Built lazily on the meta-free CPU path: shapes only matter.
    let count = |prefix: usize| {
        let map = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F16, &Device::Cpu);
        let cfg = PriorConfig {
            prefix_tokens: prefix,
            ..PriorConfig::published()
        };
        assert!(matches!(cfg.style, Style::Dalle2 { .. }));
        PriorNetwork::new(&cfg, 64, vb).unwrap();
        cmkd_train::count_params(&cmkd_train::sorted_vars(&map))
    };
    assert_eq!(count(77), 48_832_896);
    assert_eq!(count(0), 48_793_472);
}
