//! AUCs with confidence intervals and pairwise DeLong tests from a CSV of labels and scores.
//!
//! ```text
//! cargo run --release --example auc -- scores.csv
//! cargo run --release --example auc -- scores.csv --label y --bootstrap 2000 --seed 7 --plot roc.png
//! ```
//!
//! The CSV has a header row; the label column (default: the first) holds 0/1 or false/true and
//! every other column is one model's scores (higher = more likely positive).

use clap::Parser;
use med_eval::bootstrap::{bootstrap_auc_ci, BootstrapConfig};
use med_eval::delong::{delong_covariance, test_from_covariance, CiMethod, DelongAuc};
use med_eval::plot::{plot_roc, RocSeries};
use med_eval::roc_curve;
use med_eval::scores_csv::read_scores_csv;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "ROC AUC with DeLong (and bootstrap) CIs and pairwise DeLong tests")]
struct Args {
    /// CSV file: a header row, a label column and one or more score columns.
    csv: PathBuf,
    /// Name of the label column (default: the first column).
    #[arg(long)]
    label: Option<String>,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    level: f64,
    /// Also compute stratified bootstrap CIs with this many replicates (0 = off).
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the ROC curves to this .png or .svg file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn run(args: &Args) -> Result<(), med_eval::EvalError> {
    let table = read_scores_csv(&args.csv, args.label.as_deref(), None)?;
    let y = &table.labels;
    let positives = y.iter().filter(|&&l| l).count();
    println!(
        "{}: {} samples ({} positive, {} negative), {} model(s)\n",
        args.csv.display(),
        y.len(),
        positives,
        y.len() - positives,
        table.models.len()
    );
    let scores: Vec<&[f64]> = table.models.iter().map(|(_, s)| s.as_slice()).collect();
    let cov = delong_covariance(y, &scores)?;
    let pct = (args.level * 100.0).round();
    let mut series = Vec::new();
    println!(
        "{:<24} {:>7} {:>9}  {:<22} {}",
        "model",
        "AUC",
        "SE",
        format!("DeLong {pct}% CI"),
        if args.bootstrap > 0 {
            format!("bootstrap {pct}% CI ({} reps)", args.bootstrap)
        } else {
            String::new()
        }
    );
    for (k, (name, s)) in table.models.iter().enumerate() {
        let d = DelongAuc {
            auc: cov.aucs[k],
            variance: cov.covariance[k][k],
            positives: cov.positives,
            negatives: cov.negatives,
        };
        let ci = d
            .ci(args.level, CiMethod::Plain)
            .expect("plain CI always exists");
        let boot = if args.bootstrap > 0 {
            let b = bootstrap_auc_ci(
                y,
                s,
                &BootstrapConfig {
                    replicates: args.bootstrap,
                    seed: args.seed,
                    level: args.level,
                },
            )?;
            format!("[{:.4}, {:.4}]", b.ci.low, b.ci.high)
        } else {
            String::new()
        };
        println!(
            "{:<24} {:>7.4} {:>9.5}  [{:.4}, {:.4}]       {}",
            name,
            d.auc,
            d.se(),
            ci.low,
            ci.high,
            boot
        );
        series.push(RocSeries {
            name: name.clone(),
            curve: roc_curve(y, s, true)?,
            auc: d.auc,
            ci: Some(ci),
        });
    }
    if table.models.len() > 1 {
        println!("\npaired DeLong tests (two-sided):");
        println!(
            "{:<24} {:<24} {:>9} {:>9} {:>11}",
            "model a", "model b", "ΔAUC", "z", "p"
        );
        for a in 0..table.models.len() {
            for b in a + 1..table.models.len() {
                let t = test_from_covariance(&cov, a, b)?;
                println!(
                    "{:<24} {:<24} {:>9.4} {:>9.4} {:>11.4e}",
                    table.models[a].0,
                    table.models[b].0,
                    t.auc_a - t.auc_b,
                    t.z,
                    t.p_value
                );
            }
        }
    }
    if let Some(path) = &args.plot {
        plot_roc(path, "ROC curves", &series)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
