//! Every method trains: on the toy task each objective lowers its own loss and gives the student a
//! better linear-probe AUC than the untrained student.

mod methods;
mod toy;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use cmkd_train::AdamWConfig;
use kd_losses::{Distiller, DistillerConfig};

#[test]
fn every_method_lowers_its_loss_and_improves_the_probe() {
    let train = toy::data(256, 1);
    let test = toy::data(256, 2);
    let mut report = Vec::new();
    for name in methods::ALL {
        let (objective, logit_source) = methods::build(name);
        let map = VarMap::new();
        let student = toy::Student::new(cmkd_train::seeded_var_builder(
            &map,
            11,
            DType::F32,
            &Device::Cpu,
        ));
        let config = DistillerConfig {
            epochs: 60,
            batch_size: 64,
            optimizer: AdamWConfig {
                lr: 1e-2,
                weight_decay: 0.0,
                ..Default::default()
            },
            max_grad_norm: Some(5.0),
            seed: 3,
            logit_source,
            stratified: true,
        };
        let mut d = Distiller::new(
            student,
            cmkd_train::sorted_vars(&map),
            toy::Teacher::new(7),
            objective,
            config,
        )
        .unwrap();
        let probe = |d: &Distiller<toy::Student, toy::Teacher>| {
            toy::probe_auc(
                &d.embed(&train.student_inputs).unwrap(),
                &train.labels,
                &d.embed(&test.student_inputs).unwrap(),
                &test.labels,
            )
        };
        let before = d.evaluate(&train).unwrap().loss;
        let auc_before = probe(&d);
        let history = d.fit(&train).unwrap();
        let after = d.evaluate(&train).unwrap().loss;
        let auc_after = probe(&d);
        assert_eq!(history.len(), 60);
        report.push(format!(
            "{name:>20}: loss {before:.4} -> {after:.4}, probe AUC {auc_before:.3} -> {auc_after:.3}"
        ));
        assert!(after < before, "{name}: loss {before} -> {after}");
        assert!(
            auc_after > auc_before + 0.05,
            "{name}: probe AUC {auc_before} -> {auc_after}"
        );
    }
    eprintln!("{}", report.join("\n"));
}
