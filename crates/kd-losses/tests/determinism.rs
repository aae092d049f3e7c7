//! The same seeds give the same training run, bit for bit.

mod methods;
mod toy;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use kd_losses::{Distiller, DistillerConfig, LossStats};

fn run(method: &str, seed: u64) -> Vec<LossStats> {
    let (objective, logit_source) = methods::build(method);
    let map = VarMap::new();
    let student = toy::Student::new(cmkd_train::seeded_var_builder(
        &map,
        11,
        DType::F32,
        &Device::Cpu,
    ));
    let config = DistillerConfig {
        epochs: 2,
        batch_size: 32,
        seed,
        logit_source,
        ..Default::default()
    };
    let mut d = Distiller::new(
        student,
        cmkd_train::sorted_vars(&map),
        toy::Teacher::new(7),
        objective,
        config,
    )
    .unwrap();
    d.fit(&toy::data(96, 1)).unwrap()
}

#[test]
fn same_seed_same_history() {
    for method in ["protokd", "discom_alternating", "l2_aft_kd"] {
        let a = run(method, 5);
        assert_eq!(a, run(method, 5), "{method}");
        assert_ne!(
            a,
            run(method, 6),
            "{method}: the batch order should depend on the seed"
        );
    }
}
