//! DisCoM-KD (both adversarial modes, and the discriminator's own loss) and AFT-KD against PyTorch
//! float64 with the same random weights, from `tools/kd/make_module_fixtures.py`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use kd_losses::*;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/torch_modules.json");

fn tensor(v: &Value) -> Tensor {
    let dev = Device::Cpu;
    match v {
        Value::Array(rows) if rows.first().is_some_and(Value::is_array) => {
            let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
            let (r, c) = (rows.len(), rows[0].len());
            Tensor::from_vec(rows.concat(), (r, c), &dev).unwrap()
        }
        _ => {
            let x: Vec<f64> = serde_json::from_value(v.clone()).unwrap();
            Tensor::new(x.as_slice(), &dev).unwrap()
        }
    }
}

/// Loads every variable of `map` from the fixture's weights; each must be there with its shape.
fn load(map: &VarMap, weights: &HashMap<String, Value>, prefix: &str) {
    let vars = cmkd_train::sorted_vars(map);
    let expected = weights.keys().filter(|k| k.starts_with(prefix)).count();
    assert_eq!(vars.len(), expected, "variables under {prefix}");
    for (name, var) in vars {
        let w = weights
            .get(&name)
            .unwrap_or_else(|| panic!("{name} missing from fixture"));
        var.set(&tensor(w))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn check(name: &str, want: &Value, x0: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) {
    let x = Var::from_tensor(x0).unwrap();
    let l = f(x.as_tensor()).unwrap();
    let v = l.to_scalar::<f64>().unwrap();
    let w = want["value"].as_f64().unwrap();
    assert!(
        (v - w).abs() <= 1e-9 * (1.0 + w.abs()),
        "{name}: {v} vs torch {w}"
    );
    let wg: Vec<f64> = serde_json::from_value(want["grad"].clone()).unwrap();
    if wg.is_empty() {
        return;
    }
    let g = l.backward().unwrap();
    let g = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (k, (a, b)) in g.iter().zip(&wg).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
            "{name} grad[{k}]: {a} vs torch {b}"
        );
    }
}

#[test]
fn discom_and_aft_match_pytorch() {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    let weights: HashMap<String, Value> = serde_json::from_value(fx["weights"].clone()).unwrap();
    let d = &fx["dims"];
    let dim = |k: &str| d[k].as_u64().unwrap() as usize;
    let (e_s, e_t, y) = (
        tensor(&fx["inputs"]["e_s"]),
        tensor(&fx["inputs"]["e_t"]),
        tensor(&fx["inputs"]["labels"]),
    );
    let dev = Device::Cpu;
    for (case, mode) in [
        (
            "discom_grl",
            AdversarialMode::GradientReversal { lambda: 1.0 },
        ),
        ("discom_alternating", AdversarialMode::Alternating),
    ] {
        let c = DiscomKdConfig {
            hidden: dim("hidden"),
            part_dim: dim("part"),
            adversarial: mode,
            ..DiscomKdConfig::new(dim("student"), dim("teacher"))
        };
        let k = DiscomKd::new(c, 0, DType::F64, &dev).unwrap();
        load(k.var_map(), &weights, "discom.");
        check(case, &fx["cases"][case], &e_s, |x| {
            Ok(k.forward(x, &e_t, &y)?.total)
        });
        check(
            "discom_discriminator",
            &fx["cases"]["discom_discriminator"],
            &e_s,
            |x| k.discriminator_loss(x, &e_t),
        );
    }
    let c = AftKdConfig {
        blocks: dim("blocks"),
        ..AftKdConfig::new(dim("student"), dim("teacher"))
    };
    let a = AftKd::new(c, 0, DType::F64, &dev).unwrap();
    load(a.var_map(), &weights, "aft.");
    check("aft", &fx["cases"]["aft"], &e_s, |x| a.forward(x, &e_t));
}
