//! Writes the three figure kinds on synthetic data: a t-SNE scatter of "generated", "real CTPA" and
//! "CXR" embeddings (the paper's Fig. 4 layout), ROC curves with CIs, and a reliability diagram.
//!
//! `cargo run --release -p med-eval --example figures -- OUT_DIR`

use med_eval::calibration::calibration;
use med_eval::delong::{delong, CiMethod};
use med_eval::plot::{plot_reliability, plot_roc, plot_scatter, RocSeries};
use med_eval::roc_curve;
use med_eval::tsne::{trustworthiness, tsne, TsneConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::path::PathBuf;

fn main() -> Result<(), med_eval::EvalError> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out).map_err(|source| med_eval::EvalError::Io {
        path: out.clone(),
        source,
    })?;
    let mut rng = StdRng::seed_from_u64(0);
    let dim = 64;
    let mut normal = |s: f64| -> f64 {
        let z: f64 = StandardNormal.sample(&mut rng);
        s * z
    };
    // Real CTPA embeddings; generated ones are noisy copies; CXR embeddings live elsewhere.
    let n = 150;
    let ctpa: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..dim)
                .map(|d| normal(1.0) + if d == i % 4 { 4.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let generated: Vec<Vec<f64>> = ctpa
        .iter()
        .map(|r| r.iter().map(|v| v + normal(0.5)).collect())
        .collect();
    let cxr: Vec<Vec<f64>> = (0..n)
        .map(|_| {
            (0..dim)
                .map(|d| normal(1.0) + if d < 8 { 3.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let mut data = Vec::new();
    let mut groups = Vec::new();
    for (g, set) in [&generated, &ctpa, &cxr].iter().enumerate() {
        for r in set.iter() {
            data.extend(r.iter().map(|&v| v as f32));
            groups.push(g);
        }
    }
    let cfg = TsneConfig {
        seed: 1,
        ..TsneConfig::default()
    };
    let e = tsne(&data, dim, &cfg)?;
    println!(
        "t-SNE: KL {:.3}, trustworthiness(k=10) {:.3}",
        e.kl_divergence,
        trustworthiness(&data, dim, &e.points, 10)?
    );
    for ext in ["png", "svg"] {
        plot_scatter(
            out.join(format!("tsne.{ext}")),
            "t-SNE of embeddings",
            &e.points,
            &groups,
            &["generated", "real CTPA", "CXR"],
        )?;
    }

    let mut rng = StdRng::seed_from_u64(2);
    let y: Vec<bool> = (0..200).map(|_| rng.random::<f64>() < 0.35).collect();
    let mut series = Vec::new();
    let mut probs = Vec::new();
    for (name, sep) in [
        ("CTPA teacher", 1.6),
        ("diffusion prior", 1.2),
        ("CXR only", 0.6),
    ] {
        let s: Vec<f64> = y
            .iter()
            .map(|&l| {
                let z: f64 = StandardNormal.sample(&mut rng);
                1.0 / (1.0 + (-(z + if l { sep } else { 0.0 } - sep / 2.0)).exp())
            })
            .collect();
        let d = delong(&y, &s)?;
        series.push(RocSeries {
            name: name.into(),
            curve: roc_curve(&y, &s, true)?,
            auc: d.auc,
            ci: d.ci(0.95, CiMethod::Plain),
        });
        if probs.is_empty() {
            probs = s;
        }
    }
    plot_roc(out.join("roc.png"), "PE classification", &series)?;
    plot_roc(out.join("roc.svg"), "PE classification", &series)?;
    let cal = calibration(&y, &probs, 10)?;
    plot_reliability(out.join("reliability.png"), "CTPA teacher", &cal)?;
    plot_reliability(out.join("reliability.svg"), "CTPA teacher", &cal)?;
    println!("wrote figures to {}", out.display());
    Ok(())
}
