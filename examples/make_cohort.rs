//! Write a synthetic paired CXR/CTPA cohort to a folder: NIfTI CTs, PNG X-rays, a CSV manifest.
//!
//! ```text
//! cargo run --release --example make_cohort -- --out cohort/ [--n 300] [--prevalence 0.34] [--seed 0]
//! ```
//! `--calibrate` instead prints the AUC of cheap stand-in single-modality classifiers on the cohort.
//! The folder reads back with `med_io::manifest::read_paired_manifest(out/cohort.csv, None, None)`.

use std::path::PathBuf;

use clap::Parser;
use med_io::synthetic::{write_cohort, Cohort, CohortConfig, XrayConfig, XrayStyle};

/// Write a synthetic paired CXR/CTPA cohort (NIfTI + PNG + CSV).
#[derive(Debug, Parser)]
struct Args {
    /// Output folder (created).
    #[arg(long, required_unless_present = "calibrate", default_value = "cohort")]
    out: PathBuf,
    /// Number of patients.
    #[arg(long, default_value_t = 300)]
    n: usize,
    /// Fraction of PE-positive patients.
    #[arg(long, default_value_t = 0.34)]
    prevalence: f64,
    /// Seed (the same seed writes the same files).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Strength of the indirect PE signs on the X-ray, 0..1.
    #[arg(long)]
    sign_strength: Option<f64>,
    /// X-ray size in pixels (square, same 400 mm field of view).
    #[arg(long, default_value_t = 128)]
    xray_pixels: usize,
    /// Write nothing; generate in memory and print the AUC of cheap stand-in classifiers
    /// (CT: the filling-defect statistic; X-ray: cross-validated logistic regression on 16x16 pixels).
    #[arg(long)]
    calibrate: bool,
}

/// ROC AUC with med-eval (scikit-learn's tie handling), from 0/1 labels.
fn auc(score: &[f64], label: &[u8]) -> Result<f64, med_eval::EvalError> {
    let labels: Vec<bool> = label.iter().map(|&l| l == 1).collect();
    med_eval::roc_auc(&labels, score)
}

/// Ridge logistic regression by gradient descent on standardised features; returns test scores.
fn logistic_scores(train: &[Vec<f64>], y: &[u8], test: &[Vec<f64>]) -> Vec<f64> {
    let d = train[0].len();
    let n = train.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|k| train.iter().map(|x| x[k]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|k| {
            (train.iter().map(|x| (x[k] - mean[k]).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-9)
        })
        .collect();
    let z = |x: &Vec<f64>| -> Vec<f64> { (0..d).map(|k| (x[k] - mean[k]) / sd[k]).collect() };
    let xs: Vec<Vec<f64>> = train.iter().map(z).collect();
    let (mut w, mut b, lambda, lr) = (vec![0.0; d], 0.0, 1.0, 0.05);
    for _ in 0..300 {
        let mut gw = vec![0.0; d];
        let mut gb = 0.0;
        for (x, &t) in xs.iter().zip(y) {
            let p = 1.0 / (1.0 + (-(b + x.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>())).exp());
            let e = p - t as f64;
            gb += e;
            gw.iter_mut().zip(x).for_each(|(g, a)| *g += e * a);
        }
        b -= lr * gb / n;
        w.iter_mut()
            .zip(&gw)
            .for_each(|(v, g)| *v -= lr * (g / n + lambda * *v / n));
    }
    test.iter()
        .map(|x| b + z(x).iter().zip(&w).map(|(a, c)| a * c).sum::<f64>())
        .collect()
}

fn calibrate(cohort: &Cohort) -> Result<(), Box<dyn std::error::Error>> {
    let patients = cohort.generate(true)?;
    let labels: Vec<u8> = patients.iter().map(|p| p.label).collect();
    let ct: Vec<f64> = patients.iter().map(|p| p.filling_defect_fraction).collect();
    // X-ray features: 16x16 block means of the radiograph.
    let feats: Vec<Vec<f64>> = patients
        .iter()
        .map(|p| {
            let (w, h) = (p.cxr.width(), p.cxr.height());
            let mut f = vec![0.0; 256];
            for r in 0..h {
                for c in 0..w {
                    f[(r * 16 / h) * 16 + c * 16 / w] += p.cxr.get(r, c).unwrap_or(0.0) as f64;
                }
            }
            f
        })
        .collect();
    let folds = 5;
    let mut xray = vec![0.0; patients.len()];
    for k in 0..folds {
        let (tr, te): (Vec<usize>, Vec<usize>) = (0..patients.len()).partition(|i| i % folds != k);
        let train: Vec<Vec<f64>> = tr.iter().map(|&i| feats[i].clone()).collect();
        let y: Vec<u8> = tr.iter().map(|&i| labels[i]).collect();
        let test: Vec<Vec<f64>> = te.iter().map(|&i| feats[i].clone()).collect();
        for (s, &i) in logistic_scores(&train, &y, &test).into_iter().zip(&te) {
            xray[i] = s;
        }
    }
    println!(
        "stand-in CT classifier (filling-defect fraction) AUC: {:.3}",
        auc(&ct, &labels)?
    );
    println!(
        "stand-in X-ray classifier (5-fold logistic regression, 16x16 pixels) AUC: {:.3}",
        auc(&xray, &labels)?
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let defaults = CohortConfig::default();
    let xray = XrayConfig::default();
    let config = CohortConfig {
        n: args.n,
        prevalence: args.prevalence,
        seed: args.seed,
        sign_strength: args.sign_strength.unwrap_or(defaults.sign_strength),
        xray: XrayStyle::Clinical(XrayConfig {
            geometry: xray
                .geometry
                .with_detector_pixels(args.xray_pixels, args.xray_pixels),
            ..xray
        }),
        ..defaults
    };
    let cohort = Cohort::new(config)?;
    if args.calibrate {
        return calibrate(&cohort);
    }
    let start = std::time::Instant::now();
    let manifest = write_cohort(&cohort, &args.out, true)?;
    let positives = cohort.labels().iter().filter(|&&l| l == 1).count();
    println!(
        "{} patients ({positives} PE-positive) in {:.1} s -> {}",
        cohort.len(),
        start.elapsed().as_secs_f64(),
        manifest.display()
    );
    Ok(())
}
