//! When does the diffusion prior pay off? The prior's AUC minus CXR-only's as a function of the
//! labelled X-rays per training fold and of the CT-only pairs the prior pretrains on, over seeds
//! (`cmkd::pipeline::sweep`).
//!
//! ```text
//! cargo run --release --example label_efficiency                  # the default grid, 3 seeds, 3 folds (< 1 h on 2 cores)
//! cargo run --release --example label_efficiency -- --quick       # smoke run
//! cargo run --release --example label_efficiency -- --labelled 25,50,all --pretrain-pairs 0,1200
//! ```
//!
//! Output: `<out>/sweep.md`, `sweep.json`, `figures/label_efficiency.png`; phase A is cached under
//! `<out>/cache/` (the same layout as `pe_cxr`'s).

use clap::Parser;
use cmkd::pipeline::sweep::{expected_seconds, run_sweep, SweepConfig};
use cmkd::pipeline::PipelineConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Label efficiency of the diffusion prior against the CXR-only classifier")]
struct Args {
    /// Output folder.
    #[arg(long, default_value = "label_efficiency_out")]
    out: PathBuf,
    /// First master seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Consecutive seeds per grid point.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Cross-validation folds of the sweep. 3 by default (pe_cxr's default is 6): three prior
    /// trainings per grid point and fold make 6 folds cost twice the hour the sweep is given on 2
    /// cores; fixed on that cost before any result.
    #[arg(long, default_value_t = 3)]
    folds: usize,
    /// The `pe_cxr --quick` sizes (smoke run).
    #[arg(long)]
    quick: bool,
    /// Labelled X-rays per training fold, comma-separated; `all` for the whole fold.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,all")]
    labelled: Vec<String>,
    /// CT-only pretraining pairs of the prior, comma-separated (0 = no pretraining).
    #[arg(long, value_delimiter = ',', default_value = "0,300,1200")]
    pretrain_pairs: Vec<usize>,
    /// Run on the first CUDA device (build with `--features cuda`).
    #[arg(long)]
    cuda: bool,
}

fn labelled(v: &[String]) -> Result<Vec<Option<usize>>, String> {
    v.iter()
        .map(|s| match s.trim() {
            "all" => Ok(None),
            n => n
                .parse()
                .map(Some)
                .map_err(|_| format!("--labelled: `{n}` is neither a count nor `all`")),
        })
        .collect()
}

fn main() -> ExitCode {
    // Before any thread starts: fixes the thread count Candle would otherwise look up in
    // /proc/cpuinfo at every matrix product, and lets malloc keep freed buffers (same results).
    cmkd::cmkd_train::process::tune_cpu_process();
    let args = Args::parse();
    let mut config = if args.quick {
        PipelineConfig::quick()
    } else {
        PipelineConfig::default()
    };
    config.seed = args.seed;
    config.folds = args.folds;
    let grid = match labelled(&args.labelled) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sweep = SweepConfig {
        labelled: grid,
        pretrain_pairs: args.pretrain_pairs.clone(),
        seeds: args.seeds,
    };
    let device = if args.cuda {
        match candle_core::Device::new_cuda(0) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: no CUDA device: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        candle_core::Device::Cpu
    };
    eprintln!(
        "label-efficiency sweep: {} prior trainings ({} seeds x {} folds x {} labelled counts x {} pretraining sizes); expected about {:.0} min on 2 CPU cores",
        sweep.prior_trainings(config.folds),
        sweep.seeds,
        config.folds,
        sweep.labelled.len(),
        sweep.pretrain_pairs.len(),
        expected_seconds(&config, &sweep) / 60.0
    );
    let start = std::time::Instant::now();
    // On rayon's pool: Candle's convolutions then split their batches by joins, not hand-offs.
    match cmkd::cmkd_train::process::on_pool(|| run_sweep(&config, &sweep, &args.out, &device)) {
        Ok(_) => {
            let md = std::fs::read_to_string(args.out.join("sweep.md")).unwrap_or_default();
            println!("{md}");
            eprintln!(
                "done in {:.0} s; results in {}",
                start.elapsed().as_secs_f64(),
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
