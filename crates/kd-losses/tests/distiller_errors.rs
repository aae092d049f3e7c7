//! Bad input to the Distiller gives typed errors, never a panic.

mod toy;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use kd_losses::{Distiller, DistillerConfig, Error, Mse, Objective, ProtoKd};

fn distiller(
    objective: Box<dyn Objective>,
    config: DistillerConfig,
) -> kd_losses::Result<Distiller<toy::Student, toy::Teacher>> {
    let map = VarMap::new();
    let student = toy::Student::new(cmkd_train::seeded_var_builder(
        &map,
        1,
        DType::F32,
        &Device::Cpu,
    ));
    Distiller::new(
        student,
        cmkd_train::sorted_vars(&map),
        toy::Teacher::new(7),
        objective,
        config,
    )
}

#[test]
fn typed_errors_for_bad_data_and_config() {
    let cfg = DistillerConfig {
        epochs: 1,
        batch_size: 8,
        ..Default::default()
    };
    assert!(matches!(
        distiller(
            Box::new(Mse),
            DistillerConfig {
                batch_size: 1,
                ..cfg
            }
        ),
        Err(Error::Config {
            name: "batch_size",
            ..
        })
    ));

    // Rows that do not line up.
    let mut d = distiller(Box::new(Mse), cfg).unwrap();
    let mut data = toy::data(16, 1);
    data.labels = data.labels.narrow(0, 0, 15).unwrap();
    assert!(matches!(d.fit(&data), Err(Error::ShapeMismatch { .. })));

    // NaN in the student's input (which a ReLU would silently turn into 0).
    let mut data = toy::data(16, 1);
    let mut x = data
        .student_inputs
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    x[5] = f32::NAN;
    data.student_inputs = Tensor::from_vec(x, (16, toy::STUDENT_IN), &Device::Cpu).unwrap();
    assert!(matches!(
        d.fit(&data),
        Err(Error::NonFinite {
            tensor: "student_inputs",
            ..
        })
    ));

    // Labels outside {0, 1}.
    let mut data = toy::data(16, 1);
    data.labels = (data.labels * 2.0).unwrap();
    assert!(matches!(d.fit(&data), Err(Error::BadLabel { .. })));

    // ProtoKD on a data set with one class.
    let mut data = toy::data(16, 1);
    data.labels = data.labels.ones_like().unwrap();
    let mut p = distiller(Box::new(ProtoKd::default()), cfg).unwrap();
    assert!(matches!(
        p.fit(&data),
        Err(Error::OneClass {
            what: "protokd",
            class: 1,
            ..
        })
    ));
    assert_eq!(p.step_count(), 0);
}
