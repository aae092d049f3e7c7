//! The paper's whole method on the built-in synthetic cohort (no download, no data):
//!
//! ```text
//! cargo run --release --example pe_cxr                 # default run (< 15 min on 2 CPU cores)
//! cargo run --release --example pe_cxr -- --quick      # smoke run (< 2 min)
//! cargo run --release --example pe_cxr -- --ablations  # also Table 2
//! cargo run --release --example pe_cxr -- --seeds 3    # Table 1 over 3 seeds (mean, SD)
//! cargo run --release --features cuda --example pe_cxr -- --cuda
//! cargo run --release --example pe_cxr -- --cohort cohort.csv   # your own paired cohort
//! cargo run --release --example pe_cxr -- --cohort cohort.csv --rspect train.csv --rspect-root train/
//! cargo run --release --example pe_cxr -- --features DIR   # phase A from extract_features (sharded)
//! ```
//!
//! Three phases (Cahan et al., MICCAI 2025):
//! - **A.** frozen slice CNN pretrained on a CT-only set, frozen X-ray backbone pretrained on
//!   generic chest findings (never a PE label); per fold, the CTPA-only and CXR-only classifiers and
//!   their embeddings;
//! - **B.** a diffusion prior from the X-ray embedding to the CTPA embedding (L2 + lambda * BCE
//!   through the frozen CTPA head, EMA, Analytic-DPM);
//! - **C.** samples of the prior classified by the frozen CTPA head, against the CTPA-only,
//!   CXR-only and five teacher-student baselines on the same folds.
//!
//! Output: `<out>/report.md`, `report.json`, `table1.csv`, `predictions.csv`, `figures/*.png`.
//! Every phase is cached under `<out>/cache/<config hash>/`, so a rerun continues where it stopped.

use clap::Parser;
use cmkd::pipeline::shard::ExtractedFeatures;
use cmkd::pipeline::{
    load_cohort, load_data, run_seeds, Experiment, ManifestSource, PipelineConfig, Report, Result,
    RspectSource, RunOptions,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "PE from chest X-ray by distilling a CTPA classifier through a diffusion prior (Cahan et al. 2025)"
)]
struct Args {
    /// Output folder (report, tables, figures, and the resumable cache).
    #[arg(long, default_value = "pe_cxr_out")]
    out: PathBuf,
    /// Master seed; the same seed gives bit-identical results on CPU.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Smoke run: 72 patients, 200 pretraining patients, 3 folds, fewer epochs (under 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Also run the Table 2 ablations (losses, embedding size, prior pretraining); costs more time.
    #[arg(long)]
    ablations: bool,
    /// A paired cohort on disk instead of the synthetic one: a CSV with `CT_Accession_number`,
    /// `cxr_Accession_number`, `PE` (0/1) and optionally `ct_path`, `cxr_path` (relative to the CSV).
    /// CTs: NIfTI or DICOM series folders (HU); X-rays: PNG/JPEG/DICOM. Preprocessed as the synthetic
    /// cohort (window -100..900 HU, resized to --ct-size/--slices and --cxr-size). `make_cohort` writes
    /// the synthetic cohort in this layout.
    #[arg(long)]
    cohort: Option<PathBuf>,
    /// With --cohort, the folder of `<CT accession>.nii.gz` files when the CSV has no `ct_path`.
    #[arg(long, requires = "cohort")]
    ct_dir: Option<PathBuf>,
    /// With --cohort, the folder of `<CXR accession>.png` files when the CSV has no `cxr_path`.
    #[arg(long, requires = "cohort")]
    cxr_dir: Option<PathBuf>,
    /// A real CT-only pretraining set instead of the synthetic RSPECT-like one: the RSNA-STR PE
    /// Detection (RSPECT) labels CSV (the per-image `train.csv`, or one row per exam with
    /// `StudyInstanceUID`, `SeriesInstanceUID`, `negative_exam_for_pe`). Needs --rspect-root. Each
    /// exam's radiograph is rendered from its CT as the paper's group did (DiffDRR, sdd 1200 mm,
    /// 512 px of 1 mm, AP, resized to 224), then both are preprocessed as the paired cohort. Works
    /// with --cohort or with the synthetic paired cohort; use --rspect-limit, not
    /// --pretrain-patients, to read fewer exams.
    #[arg(long, requires = "rspect_root", conflicts_with = "pretrain_patients")]
    rspect: Option<PathBuf>,
    /// With --rspect, the folder holding `<StudyInstanceUID>/<SeriesInstanceUID>/` DICOM series (as
    /// RSPECT's `train/`), or `<StudyInstanceUID>/<SeriesInstanceUID>.nii.gz` files.
    #[arg(long, requires = "rspect")]
    rspect_root: Option<PathBuf>,
    /// With --rspect, read only the first N exams of the CSV (for a CPU budget; the set must still
    /// hold both classes).
    #[arg(long, requires = "rspect")]
    rspect_limit: Option<usize>,
    /// Start from phase A's frozen encoders and features extracted elsewhere (the folder
    /// `extract_features` fills: `encoders/`, `cohort/` and `pretrain/` merged): the pretraining set
    /// is not read. The cohort (synthetic, or --cohort) must be the one extracted. Table 2 then has
    /// no structural rows.
    #[arg(long, conflicts_with_all = ["rspect", "pretrain_patients"])]
    features: Option<PathBuf>,
    /// Patients in the paired cohort.
    #[arg(long)]
    patients: Option<usize>,
    /// Patients in the CT-only pretraining set (disjoint from the cohort).
    #[arg(long)]
    pretrain_patients: Option<usize>,
    /// Fraction of patients with PE in the paired cohort (the CT-only set keeps med-io's RSPECT-like 0.32).
    #[arg(long)]
    prevalence: Option<f64>,
    /// In-plane CT voxels per side (paper: 128).
    #[arg(long)]
    ct_size: Option<usize>,
    /// CT slices per volume.
    #[arg(long)]
    slices: Option<usize>,
    /// X-ray side in pixels (paper: 224).
    #[arg(long)]
    cxr_size: Option<usize>,
    /// Resample each CT to this isotropic spacing in mm before the lung crop (paper: 1; for real
    /// data). Off by default: the synthetic phantoms are generated at 5.5 x 5.5 x 5 mm.
    #[arg(long)]
    spacing_mm: Option<f64>,
    /// Do not crop CTs to the lungs (the paper crops; a volume without enclosed lungs then fails).
    #[arg(long)]
    no_lung_crop: bool,
    /// Cross-validation folds (paper: 6).
    #[arg(long)]
    folds: Option<usize>,
    /// Embedding size of both modalities (paper: 512).
    #[arg(long)]
    embed_dim: Option<usize>,
    /// Prior training epochs.
    #[arg(long)]
    prior_epochs: Option<usize>,
    /// Prior pretraining epochs on the CT-only set's (rendered radiograph, CTPA) pairs; 0 = off.
    #[arg(long)]
    prior_pretrain_epochs: Option<usize>,
    /// Weight of the BCE-through-the-teacher term of the prior's loss (paper: 0.2).
    #[arg(long)]
    lambda: Option<f64>,
    /// Samples of the prior per X-ray (mean probability and spread).
    #[arg(long)]
    samples: Option<usize>,
    /// Probability of dropping the prior's condition in training (enables guidance; published: 0.1).
    #[arg(long)]
    cond_drop: Option<f64>,
    /// Learning rate of the per-fold fine-tuning of the CTPA sequence ViT (default 3e-5).
    #[arg(long)]
    head_lr: Option<f64>,
    /// Classifier-free guidance scale of the prior's sampling (1 = none; needs --cond-drop > 0).
    #[arg(long)]
    guidance: Option<f64>,
    /// Run the whole experiment for N consecutive seeds from --seed (each reruns the synthetic data,
    /// the folds, every initialisation and the sampling; the others go to `<out>/seeds/`): Table 1
    /// then gives each row's mean AUC and SD over the seeds next to the first seed's CI.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Pretrain the X-ray backbone as a PE classifier on the CT-only set's radiographs and
    /// warm-start the CXR head from it (earlier versions' default; the paper's protocol, the
    /// default, pretrains it on generic findings and never shows it a PE label).
    #[arg(long)]
    ct_only_pe_backbone: bool,
    /// Skip the t-SNE figures.
    #[arg(long)]
    no_tsne: bool,
    /// Run on the first CUDA device (build with `--features cuda`).
    #[arg(long)]
    cuda: bool,
}

fn config(a: &Args) -> PipelineConfig {
    let mut c = if a.quick {
        PipelineConfig::quick()
    } else {
        PipelineConfig::default()
    };
    c.seed = a.seed;
    let set = |dst: &mut usize, v: Option<usize>| *dst = v.unwrap_or(*dst);
    set(&mut c.patients, a.patients);
    set(&mut c.pretrain_patients, a.pretrain_patients);
    set(&mut c.data.ct_size, a.ct_size);
    set(&mut c.data.slices, a.slices);
    set(&mut c.data.cxr_size, a.cxr_size);
    set(&mut c.folds, a.folds);
    set(&mut c.embed_dim, a.embed_dim);
    set(&mut c.prior_epochs, a.prior_epochs);
    set(&mut c.prior_pretrain_epochs, a.prior_pretrain_epochs);
    set(&mut c.samples_per_xray, a.samples);
    c.data.prevalence = a.prevalence.unwrap_or(c.data.prevalence);
    c.data.spacing_mm = a.spacing_mm.or(c.data.spacing_mm);
    c.data.lung_crop &= !a.no_lung_crop;
    c.lambda = a.lambda.unwrap_or(c.lambda);
    c.cond_drop_prob = a.cond_drop.unwrap_or(c.cond_drop_prob);
    c.head_lr = a.head_lr.unwrap_or(c.head_lr);
    c.guidance_scale = a.guidance.unwrap_or(c.guidance_scale);
    c.tsne &= !a.no_tsne;
    if a.ct_only_pe_backbone {
        c = c.with_ct_only_pe_backbone();
    }
    c
}

/// One seed of the experiment: the data, phase A, then for each fold the per-fold classifiers, the
/// distillation baselines, phase B and phase C (each fold from the cache where an earlier run left
/// it), the Table 2 ablations when asked, and the evaluation.
fn run(
    config: &PipelineConfig,
    cohort: Option<&ManifestSource>,
    rspect: Option<&RspectSource>,
    features: Option<&Path>,
    options: &RunOptions,
) -> Result<Report> {
    // The paired cohort and the CT-only pretraining set, or phase A's features extracted elsewhere.
    let (data, extracted, paired, settings);
    let exp = match features {
        None => {
            data = load_data(config, cohort, rspect)?;
            Experiment::new(&data.config, &data.cohort, &data.pretrain, options)?
        }
        Some(dir) => {
            extracted = ExtractedFeatures::load(dir, &options.device)?;
            settings = PipelineConfig {
                pretrain_patients: extracted.pretrain.len(),
                ..config.clone()
            };
            paired = load_cohort(&settings, cohort)?;
            Experiment::from_features(&settings, &paired, &extracted, options)?
        }
    };
    // Phase A: the frozen slice CNN and X-ray backbone, pretrained, and their features.
    let frozen = exp.phase_a()?;
    let mut folds = Vec::new();
    let mut ablations = Vec::new();
    for k in 0..exp.fold_count() {
        let mut heads = None;
        let output = match exp.cached_fold(k)? {
            Some(done) => done,
            None => {
                // Phase A on the fold: the CTPA-only and CXR-only classifiers, embeddings.
                let h = heads.insert(exp.fit_heads(&frozen.main, k)?);
                // The five teacher-student baselines.
                let students = exp.kd_baselines(&frozen.main, h, k)?;
                // Phase B: the diffusion prior from the X-ray to the CTPA embedding.
                let prior = exp.train_prior(h, k, exp.main_prior())?;
                // Phase C: draws of the prior, classified by the frozen CTPA head.
                let draws = exp.sample(h, k, &prior)?;
                exp.save_fold(k, h, students, &prior, &draws)?
            }
        };
        if options.ablations {
            ablations.push(exp.ablations(&frozen, k, &output, heads)?);
        }
        folds.push(output);
    }
    // Evaluation: pooled out-of-fold metrics, figures, tables and the report.
    exp.report(&folds, &ablations)
}

fn main() -> ExitCode {
    // Before any thread starts: fixes the thread count Candle would otherwise look up in
    // /proc/cpuinfo at every matrix product, and lets malloc keep freed buffers (same results).
    cmkd::cmkd_train::process::tune_cpu_process();
    let args = Args::parse();
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
    let options = RunOptions {
        out: args.out.clone(),
        ablations: args.ablations,
        other_seeds: Vec::new(),
        device,
    };
    let start = std::time::Instant::now();
    let cohort = args.cohort.as_ref().map(|csv| ManifestSource {
        csv: csv.clone(),
        ct_dir: args.ct_dir.clone(),
        cxr_dir: args.cxr_dir.clone(),
    });
    let rspect = args
        .rspect
        .as_ref()
        .zip(args.rspect_root.as_ref())
        .map(|(csv, root)| RspectSource {
            csv: csv.clone(),
            root: root.clone(),
            limit: args.rspect_limit,
        });
    if args.features.is_some() && args.seeds > 1 {
        eprintln!("error: --features holds the features of one seed's cohort; use --seeds 1");
        return ExitCode::FAILURE;
    }
    // On rayon's pool: Candle's convolutions then split their batches by joins, not hand-offs.
    let result = cmkd::cmkd_train::process::on_pool(|| {
        run_seeds(&config(&args), &options, args.seeds, |c, o| {
            run(
                c,
                cohort.as_ref(),
                rspect.as_ref(),
                args.features.as_deref(),
                o,
            )
        })
    });
    match result {
        Ok(_) => {
            let md = std::fs::read_to_string(args.out.join("report.md")).unwrap_or_default();
            println!("{md}");
            eprintln!(
                "done in {:.0} s; report in {}",
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
