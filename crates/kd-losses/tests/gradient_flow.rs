//! Gradient flow through the Distiller: for every method, every trainable part (student encoder,
//! student head where the objective uses it, projections, prototypes' inputs, auxiliary encoders,
//! heads, discriminator) receives a finite, non-zero gradient, and the frozen teacher none and
//! never changes.

mod methods;
mod toy;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use kd_losses::{Distiller, DistillerConfig, EmbeddingClassifier, LogitSource};

fn norm(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn every_trainable_part_gets_a_gradient_and_the_teacher_none() {
    let data = toy::data(32, 4);
    for name in methods::ALL {
        let (objective, logit_source) = methods::build(name);
        let uses_logit = objective.uses_student_logit();
        let map = VarMap::new();
        let student = toy::Student::new(cmkd_train::seeded_var_builder(
            &map,
            1,
            DType::F32,
            &Device::Cpu,
        ));
        let config = DistillerConfig {
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
        let terms = d
            .batch_loss(&data.student_inputs, &data.teacher_inputs, &data.labels)
            .unwrap();
        let grads = terms.total.backward().unwrap();
        let mut checked = 0;
        for (var_name, v) in d.trainable_vars() {
            let expect = !var_name.starts_with("head.")
                || (uses_logit && logit_source == LogitSource::StudentHead);
            let g = grads.get(v.as_tensor()).map(norm);
            if expect {
                let g = g.unwrap_or(0.0);
                assert!(
                    g.is_finite() && g > 0.0,
                    "{name}: {var_name} has gradient {g}"
                );
                checked += 1;
            } else {
                assert!(
                    g.is_none_or(|g| g == 0.0),
                    "{name}: {var_name} should get no gradient"
                );
            }
        }
        assert!(checked >= 4, "{name}: only {checked} variables checked");
        let t = d.teacher();
        assert!(
            grads.get(&t.proj).is_none(),
            "{name}: teacher encoder got a gradient"
        );
        if logit_source == LogitSource::StudentHead {
            assert!(
                grads.get(&t.head).is_none(),
                "{name}: teacher head got a gradient"
            );
        } else {
            // The student's embedding flows through the teacher head here. Candle's backward fills
            // in a value for both operands of every op it traverses, constants included, but the
            // head's weights are not variables and are in no optimizer: they cannot move (checked
            // below after real steps).
            assert!(!t.head.is_variable() && !t.proj.is_variable());
        }
        // The adversary's own step reaches its variables only.
        if let Some(adv) = d.objective().adversary() {
            let (e_s, e_t) = (
                d.student().embedding(&data.student_inputs).unwrap(),
                d.teacher().embedding(&data.teacher_inputs).unwrap(),
            );
            let z = Tensor::zeros(32, DType::F32, &Device::Cpu).unwrap();
            let views = kd_losses::Views {
                student_embedding: &e_s,
                student_logit: &z,
                teacher_embedding: &e_t,
                teacher_logit: &z,
                labels: &data.labels,
            };
            let g = adv.adversary_loss(&views).unwrap().backward().unwrap();
            for (n, v) in adv.adversary_vars() {
                assert!(
                    g.get(v.as_tensor()).map(norm).unwrap_or(0.0) > 0.0,
                    "{name}: {n}"
                );
            }
            for (n, v) in d.trainable_vars() {
                assert!(
                    g.get(v.as_tensor()).is_none(),
                    "{name}: {n} reached by the adversary step"
                );
            }
        }
        // A few real steps leave the teacher exactly as it was.
        let before = (
            t.proj.to_vec2::<f32>().unwrap(),
            t.head.to_vec2::<f32>().unwrap(),
        );
        for _ in 0..3 {
            d.train_step(&data.student_inputs, &data.teacher_inputs, &data.labels)
                .unwrap();
        }
        let t = d.teacher();
        assert_eq!(
            before,
            (
                t.proj.to_vec2::<f32>().unwrap(),
                t.head.to_vec2::<f32>().unwrap()
            )
        );
    }
}
