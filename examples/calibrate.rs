//! Calibration check of the synthetic cohort on the pipeline's own single-modality classifiers.
//!
//! ```text
//! cargo run --release --example calibrate            # default pipeline sizes
//! cargo run --release --example calibrate -- --quick
//! ```
//!
//! Trains phase A of `pe_cxr` exactly as the pipeline does (the CTPA classifier and the X-ray
//! classifier on the CT-only RSPECT-like set) and prints their AUC on the training set, on a held-out
//! RSPECT-like set (same generator, other patients) and on the paired cohort (clinical X-rays). The
//! cohort's defaults are calibrated on these numbers only, never on a distillation result. Last, the
//! X-ray's ceiling: the AUC of the indirect signs the generator painted, read from the anatomy.

use clap::Parser;
use cmkd::pipeline::cohort::{paired_config, pretrain_config, PairedCohort};
use cmkd::pipeline::encoders::{pretrain_ctpa, pretrain_cxr};
use cmkd::pipeline::sources::{synthetic_cohort, synthetic_pretraining_set};
use cmkd::pipeline::PipelineConfig;
use cxr_encoder::train::predict_proba;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "AUC of the pipeline's pretrained CTPA and X-ray classifiers on held-out synthetic data"
)]
struct Args {
    /// Use the `--quick` sizes of `pe_cxr`.
    #[arg(long)]
    quick: bool,
    /// Master seed (as `pe_cxr --seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Patients in the held-out RSPECT-like set.
    #[arg(long, default_value_t = 300)]
    held_out: usize,
    /// Pretraining epochs (default: the pipeline's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Patients in the CT-only pretraining set (default: the pipeline's).
    #[arg(long)]
    pretrain_patients: Option<usize>,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn aucs<M: cxr_encoder::Classifier>(
    model: &M,
    sets: &[(&str, &PairedCohort)],
    item: impl Fn(&cmkd::pipeline::Patient) -> &M::Item,
) -> Res<Vec<(String, f64)>>
where
    M::Error: std::error::Error + 'static,
{
    let mut out = Vec::new();
    for (name, set) in sets {
        let items: Vec<_> = set.patients.iter().map(&item).collect();
        let p: Vec<f64> = predict_proba(model, &items, 16)?
            .into_iter()
            .map(f64::from)
            .collect();
        out.push((name.to_string(), med_eval::roc_auc(&set.labels(), &p)?));
    }
    Ok(out)
}

fn run(args: &Args) -> Res<()> {
    let mut config = if args.quick {
        PipelineConfig::quick()
    } else {
        PipelineConfig::default()
    };
    config.seed = args.seed;
    config.pretrain_epochs = args.epochs.unwrap_or(config.pretrain_epochs);
    config.pretrain_patients = args.pretrain_patients.unwrap_or(config.pretrain_patients);
    let device = candle_core::Device::Cpu;
    let train = synthetic_pretraining_set(&config)?;
    let held = PairedCohort::synthetic(
        &pretrain_config(args.held_out, &config.data, config.seed ^ 0x4845_4c44),
        &config.data,
        "held-out set",
    )?;
    let cohort = synthetic_cohort(&config)?;
    let sets = [
        ("training set", &train),
        ("held-out set", &held),
        ("paired cohort", &cohort),
    ];
    let ct = pretrain_ctpa(&train, &config, &device)?;
    let ct_aucs = aucs(&ct, &sets, |p| &p.ctpa)?;
    let xr = pretrain_cxr(&train, &config, &device)?;
    let xr_aucs = aucs(&xr, &sets, |p| &p.cxr)?;
    println!("| set | CTPA classifier AUC | X-ray classifier AUC |");
    println!("|---|---|---|");
    for ((name, a), (_, b)) in ct_aucs.iter().zip(&xr_aucs) {
        println!("| {name} | {a:.3} | {b:.3} |");
    }
    // What a perfect reader of the X-ray could reach: the indirect signs the generator painted,
    // read from each patient's anatomy instead of the pixels.
    let paired =
        med_io::synthetic::Cohort::new(paired_config(config.patients, &config.data, config.seed))?;
    let mut signs = Vec::with_capacity(paired.len());
    for i in 0..paired.len() {
        let s = paired.anatomy(i)?.signs;
        let present = [s.enlarged_trunk, s.wedge_opacity, s.effusion, s.oligemia]
            .iter()
            .filter(|&&v| v > 0.0)
            .count();
        signs.push(present as f64);
    }
    println!(
        "\nX-ray ceiling: the number of indirect PE signs the generator painted (read from the anatomy, \
         not the pixels) scores AUC {:.3} on the paired cohort.",
        med_eval::roc_auc(&cohort.labels(), &signs)?
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
