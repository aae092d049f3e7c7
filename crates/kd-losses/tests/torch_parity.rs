//! Values and gradients against PyTorch (float64), from `tools/kd/make_fixtures.py`.

use candle_core::{Device, Tensor, Var};
use kd_losses::*;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/torch_reference.json");

fn mat(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (r, c) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (r, c), &Device::Cpu).unwrap()
}

fn vec(v: &Value) -> Tensor {
    let x: Vec<f64> = serde_json::from_value(v.clone()).unwrap();
    Tensor::new(x.as_slice(), &Device::Cpu).unwrap()
}

/// Value and flattened gradient of `f` at `x0`.
fn eval(x0: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> (f64, Vec<f64>) {
    let x = Var::from_tensor(x0).unwrap();
    let l = f(x.as_tensor()).unwrap();
    let g = l.backward().unwrap();
    let g = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    (l.to_scalar::<f64>().unwrap(), g)
}

fn close(name: &str, what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
        "{name} {what}: {got} vs torch {want}"
    );
}

#[test]
fn values_and_gradients_match_pytorch() {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    let i = &fx["inputs"];
    let (e_s, e_t, e_wide) = (mat(&i["e_s"]), mat(&i["e_t"]), mat(&i["e_t_wide"]));
    let (z_s, z_t, soft, labels) = (
        vec(&i["z_s"]),
        vec(&i["z_t"]),
        vec(&i["soft"]),
        vec(&i["labels"]),
    );
    let (l3s, l3t) = (mat(&i["logits3_s"]), mat(&i["logits3_t"]));
    let c3: Vec<u32> = serde_json::from_value(i["classes3"].clone()).unwrap();
    let c3 = Tensor::new(c3.as_slice(), &Device::Cpu).unwrap();
    let hinton = HintonKd::default();
    let proto = ProtoKd::default();
    let cases: Vec<(&str, (f64, Vec<f64>))> = vec![
        ("mse", eval(&e_s, |x| Mse.forward(x, &e_t))),
        ("cosine", eval(&e_s, |x| Cosine::default().forward(x, &e_t))),
        (
            "smooth_l1",
            eval(&e_s, |x| SmoothL1::default().forward(x, &e_t)),
        ),
        ("bce_soft", eval(&z_s, |z| Bce::default().forward(z, &soft))),
        (
            "hinton_binary",
            eval(&z_s, |z| Ok(hinton.forward(z, &z_t, &labels)?.total)),
        ),
        (
            "hinton_softmax",
            eval(&l3s, |z| Ok(hinton.forward(z, &l3t, &c3)?.total)),
        ),
        (
            "protokd_embedding",
            eval(&e_s, |x| {
                Ok(proto.forward(x, &e_wide, &z_s, &z_t, &labels)?.total)
            }),
        ),
        (
            "protokd_logit",
            eval(&z_s, |z| {
                Ok(proto.forward(&e_s, &e_wide, z, &z_t, &labels)?.total)
            }),
        ),
        (
            "contrastive",
            eval(&e_s, |x| {
                Ok(Contrastive::default().forward(x, &e_t, None)?.total)
            }),
        ),
    ];
    assert_eq!(cases.len(), fx["cases"].as_object().unwrap().len());
    for (name, (value, grad)) in cases {
        let want = &fx["cases"][name];
        close(name, "value", value, want["value"].as_f64().unwrap());
        let wg: Vec<f64> = serde_json::from_value(want["grad"].clone()).unwrap();
        assert_eq!(grad.len(), wg.len(), "{name}");
        for (k, (a, b)) in grad.iter().zip(&wg).enumerate() {
            close(name, &format!("grad[{k}]"), *a, *b);
        }
    }
}
