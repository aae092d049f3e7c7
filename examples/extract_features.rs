//! Phase A's feature extraction split over processes, machines or GPUs, for sets too large for one
//! run (RSPECT: 7,279 CT exams, about 1 TB of DICOM). Three steps, all in one folder `DIR`:
//!
//! ```text
//! # 1. pretrain and freeze the encoders once (as pe_cxr's phase A does), save them to DIR/encoders
//! cargo run --release --example extract_features -- encoders --dir DIR [--quick] [--rspect train.csv --rspect-root train/]
//! # 2. extract each set, any number of shards, in any order, each resumable (rerun a killed one as it is)
//! cargo run --release --example extract_features -- extract --dir DIR --set pretrain --shard 0 --of 8 [--rspect ...]
//! cargo run --release --example extract_features -- extract --dir DIR --set cohort [--cohort cohort.csv]
//! # 3. check every exam is there exactly once and write DIR/<set>/features.safetensors
//! cargo run --release --example extract_features -- merge --dir DIR --set pretrain [--rspect ...]
//! cargo run --release --example extract_features -- merge --dir DIR --set cohort [--cohort cohort.csv]
//! # then the pipeline from the merged features (the pretraining set's volumes are never read)
//! cargo run --release --example pe_cxr -- --features DIR [--quick] [--cohort cohort.csv]
//! ```
//!
//! Each exam's features go to `DIR/<set>/exams/<exam id>.safetensors`, written atomically and tagged
//! with the encoders' fingerprint; an exam already there is skipped. As a Slurm job array, leave out
//! `--shard/--of`: `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT` choose the shard. With one
//! process per GPU, start one shard per device: `CUDA_VISIBLE_DEVICES=i ... --cuda --shard i --of n`.
//! See docs/extraction.md.

use clap::{Parser, Subcommand, ValueEnum};
use cmkd::pipeline::encoders::pretrain_encoders;
use cmkd::pipeline::shard::{
    extract_shard, merge, ExamSet, FrozenEncoders, Shard, COHORT_DIR, ENCODERS_DIR, PRETRAIN_DIR,
};
use cmkd::pipeline::sources::{pretraining_set, synthetic_cohort, synthetic_pretraining_set};
use cmkd::pipeline::{ManifestSource, PipelineConfig, PipelineError, Result, RspectSource};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Sharded, resumable extraction of phase A's frozen features")]
struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// Pretrain the CTPA encoder on the CT-only set and the X-ray backbone on generic findings,
    /// freeze them and save them to DIR/encoders.
    Encoders(Common),
    /// Extract the features of the exams one shard owns into DIR/<set>/exams/.
    Extract {
        #[command(flatten)]
        common: Common,
        /// Which set.
        #[arg(long, value_enum)]
        set: Set,
        /// This process's shard, from 0 (default: from SLURM_ARRAY_TASK_ID, else the whole set).
        #[arg(long, requires = "of")]
        shard: Option<usize>,
        /// The number of shards (default: SLURM_ARRAY_TASK_COUNT, else 1).
        #[arg(long, requires = "shard")]
        of: Option<usize>,
    },
    /// Check that every exam of the set has its features and write DIR/<set>/features.safetensors.
    Merge {
        #[command(flatten)]
        common: Common,
        /// Which set.
        #[arg(long, value_enum)]
        set: Set,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Set {
    /// The paired cohort (--cohort, or the synthetic one).
    Cohort,
    /// The CT-only pretraining set (--rspect, or the synthetic RSPECT-like one).
    Pretrain,
}

#[derive(clap::Args, Debug)]
struct Common {
    /// The extraction folder.
    #[arg(long)]
    dir: PathBuf,
    /// The settings of `pe_cxr --quick` (otherwise its defaults).
    #[arg(long)]
    quick: bool,
    /// Master seed (as pe_cxr's).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A paired cohort manifest (as pe_cxr's --cohort).
    #[arg(long)]
    cohort: Option<PathBuf>,
    /// With --cohort, the CT folder when the CSV has no `ct_path`.
    #[arg(long, requires = "cohort")]
    ct_dir: Option<PathBuf>,
    /// With --cohort, the X-ray folder when the CSV has no `cxr_path`.
    #[arg(long, requires = "cohort")]
    cxr_dir: Option<PathBuf>,
    /// An RSPECT labels CSV (as pe_cxr's --rspect).
    #[arg(long, requires = "rspect_root")]
    rspect: Option<PathBuf>,
    /// With --rspect, the folder of the DICOM series.
    #[arg(long, requires = "rspect")]
    rspect_root: Option<PathBuf>,
    /// With --rspect, only the first N exams.
    #[arg(long, requires = "rspect")]
    rspect_limit: Option<usize>,
    /// Run on the first visible CUDA device (build with `--features cuda`).
    #[arg(long)]
    cuda: bool,
}

impl Common {
    fn config(&self) -> PipelineConfig {
        let mut c = if self.quick {
            PipelineConfig::quick()
        } else {
            PipelineConfig::default()
        };
        c.seed = self.seed;
        c
    }

    fn device(&self) -> Result<candle_core::Device> {
        if self.cuda {
            Ok(candle_core::Device::new_cuda(0)?)
        } else {
            Ok(candle_core::Device::Cpu)
        }
    }

    fn rspect(&self) -> Option<RspectSource> {
        Some(RspectSource {
            csv: self.rspect.clone()?,
            root: self.rspect_root.clone()?,
            limit: self.rspect_limit,
        })
    }

    /// The exams of `set`, read one at a time from disk (a synthetic set is generated in memory).
    fn exams(&self, set: Set) -> Result<ExamSet> {
        let config = self.config();
        match (set, &self.cohort, self.rspect()) {
            (Set::Cohort, Some(csv), _) => ExamSet::manifest(&ManifestSource {
                csv: csv.clone(),
                ct_dir: self.ct_dir.clone(),
                cxr_dir: self.cxr_dir.clone(),
            }),
            (Set::Cohort, None, _) => ExamSet::in_memory(synthetic_cohort(&config)?),
            (Set::Pretrain, _, Some(r)) => ExamSet::rspect(&r),
            (Set::Pretrain, _, None) => ExamSet::in_memory(synthetic_pretraining_set(&config)?),
        }
    }
}

fn set_dir(common: &Common, set: Set) -> PathBuf {
    common.dir.join(match set {
        Set::Cohort => COHORT_DIR,
        Set::Pretrain => PRETRAIN_DIR,
    })
}

fn run(args: Args) -> Result<()> {
    match args.step {
        Step::Encoders(common) => {
            let config = common.config();
            let device = common.device()?;
            let pretrain = pretraining_set(&config, common.rspect().as_ref())?;
            let (ctpa, cxr) = pretrain_encoders(&pretrain, &config, &device)?;
            let dir = common.dir.join(ENCODERS_DIR);
            let enc = FrozenEncoders::save(&ctpa, &cxr, &config.data, &dir, &device)?;
            println!("encoders {} saved to {}", enc.fingerprint(), dir.display());
        }
        Step::Extract {
            common,
            set,
            shard,
            of,
        } => {
            let shard = match (shard, of) {
                (Some(i), Some(n)) => Shard::new(i, n)?,
                _ => Shard::from_env()?.unwrap_or(Shard::WHOLE),
            };
            let device = common.device()?;
            let encoders = FrozenEncoders::load(&common.dir.join(ENCODERS_DIR), &device)?;
            let exams = common.exams(set)?;
            let out = set_dir(&common, set);
            let r = extract_shard(
                &encoders,
                &exams,
                shard,
                &out,
                |_| ControlFlow::Continue(()),
            )?;
            println!(
                "{shard} of {} ({} exams): {} owned, {} already done, {} extracted into {}",
                exams.source(),
                exams.len(),
                r.owned,
                r.already_done,
                r.extracted.len(),
                out.display()
            );
        }
        Step::Merge { common, set } => {
            let device = common.device()?;
            let encoders = FrozenEncoders::load(&common.dir.join(ENCODERS_DIR), &device)?;
            let exams = common.exams(set)?;
            let out = set_dir(&common, set);
            let merged = merge(&exams, encoders.fingerprint(), &out, &device)?;
            println!(
                "{} exams of {} merged into {}",
                merged.len(),
                exams.source(),
                out.join(cmkd::pipeline::shard::MERGED_FILE).display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Before any thread starts: fixes the thread count Candle would otherwise look up in
    // /proc/cpuinfo at every matrix product, and lets malloc keep freed buffers (same results).
    cmkd::cmkd_train::process::tune_cpu_process();
    let args = Args::parse();
    // On rayon's pool: Candle's convolutions then split their batches by joins, not hand-offs.
    match cmkd::cmkd_train::process::on_pool(|| run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, PipelineError::Config { .. }) {
                eprintln!("(see --help)");
            }
            ExitCode::FAILURE
        }
    }
}
