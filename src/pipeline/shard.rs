//! Sharded, resumable feature extraction for sets too large for one process (RSPECT: 7,279 CT exams,
//! about 1 TB of DICOM).
//!
//! The frozen encoders of phase A ([`FrozenEncoders`]: the slice CNN and X-ray backbone, with the
//! preprocessing they were trained with) turn each exam into its slice-embedding sequence and its
//! radiograph's backbone features. [`extract_shard`] does this for the exams one shard owns
//! ([`Shard`]: `--shard i --of n`, or a Slurm job array's `SLURM_ARRAY_TASK_ID` /
//! `SLURM_ARRAY_TASK_COUNT`), reading one exam at a time from disk ([`ExamSet`]), and writes one
//! safetensors file per exam, atomically, under `<out>/exams/`. An exam whose file is already there
//! and was made by the same encoders is skipped, so a shard killed part-way is rerun as it is and
//! redoes nothing it finished. [`merge`] then checks that every exam of the set has exactly one file,
//! made by these encoders, and none is left over, and writes the whole set as one [`FeatureSet`].
//!
//! Shards own exams round-robin by position in the manifest (exam `j` belongs to shard `j mod n`), so
//! every shard gets the same number of exams to within one whatever the manifest's order; all shards
//! write into the same folder (a shared file system), each exam to its own file.

use candle_core::{DType, Device, Tensor};
use ctpa_encoder::CtpaEncoder;
use cxr_encoder::CxrEncoder;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::cohort::{
    read_record, read_rspect_exam, rspect_source, PairedCohort, Patient, RspectCt,
};
use super::config::{DataConfig, PipelineConfig};
use super::error::{PipelineError, Result};
use super::features::{Features, PhaseA, INIT_CTPA, INIT_CXR};
use super::sources::{ManifestSource, RspectSource};
use cmkd_train::hash::{fnv1a_hex, fnv1a_update, FNV_OFFSET};
use med_io::manifest::{read_paired_manifest, read_rspect_labels, PairedRecord, RspectExam};

/// The format tag of a per-exam file (in its safetensors metadata).
pub const EXAM_FORMAT: &str = "cmkd-exam-features/1";
/// The format tag of a merged feature set.
pub const SET_FORMAT: &str = "cmkd-feature-set/1";
/// The merged file [`merge`] writes into the output folder.
pub const MERGED_FILE: &str = "features.safetensors";
/// The folder of per-exam files inside the output folder.
pub const EXAMS_DIR: &str = "exams";

/// Which part of a set one process extracts: exams whose position `j` has `j mod count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole set in one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` (from 0) of `count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 {
            return Err(PipelineError::config(
                "of",
                "the number of shards must be at least 1",
            ));
        }
        if index >= count {
            return Err(PipelineError::config(
                "shard",
                format!("shard {index} does not exist among {count} (shards count from 0)"),
            ));
        }
        Ok(Self { index, count })
    }

    /// The shard of a Slurm job array task, from the process environment (see [`Shard::from_vars`]).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The shard of a Slurm job array task: `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN` (the minimum
    /// is 0 when unset, as for `--array=0-7`) of `SLURM_ARRAY_TASK_COUNT`. `None` when the task id is
    /// not set (not a job array); an error when it is set but the other values are missing or out of
    /// range. `get` looks a variable up (the environment, or a map in tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(id) = get("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let parse = |name: &'static str, v: &str| -> Result<usize> {
            v.trim().parse().map_err(|_| {
                PipelineError::config(name, format!("`{v}` is not a non-negative integer"))
            })
        };
        let id = parse("SLURM_ARRAY_TASK_ID", &id)?;
        let min = match get("SLURM_ARRAY_TASK_MIN") {
            Some(v) => parse("SLURM_ARRAY_TASK_MIN", &v)?,
            None => 0,
        };
        let count = get("SLURM_ARRAY_TASK_COUNT").ok_or_else(|| {
            PipelineError::config(
                "SLURM_ARRAY_TASK_COUNT",
                "SLURM_ARRAY_TASK_ID is set but the task count is not (run as a job array, or pass --shard/--of)",
            )
        })?;
        let count = parse("SLURM_ARRAY_TASK_COUNT", &count)?;
        let index = id.checked_sub(min).ok_or_else(|| {
            PipelineError::config(
                "SLURM_ARRAY_TASK_ID",
                format!("task {id} is below the array's first task {min}"),
            )
        })?;
        Self::new(index, count).map(Some)
    }

    /// The shard's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the exam at `position` of the set belongs to this shard.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

enum Exams {
    Manifest {
        csv: PathBuf,
        records: Vec<PairedRecord>,
    },
    Rspect {
        csv: PathBuf,
        exams: Vec<RspectExam>,
        sources: Vec<RspectCt>,
    },
    Memory(PairedCohort),
}

/// A set of exams read one at a time: a paired manifest, an RSPECT layout, or a set already in
/// memory. Ids are unique (checked); their order is the manifest's.
pub struct ExamSet {
    exams: Exams,
    ids: Vec<String>,
    labels: Vec<bool>,
    source: String,
}

fn check_unique(ids: &[String], what: &str) -> Result<()> {
    let mut seen = HashMap::new();
    let mut names = HashMap::new();
    for (j, id) in ids.iter().enumerate() {
        if let Some(first) = seen.insert(id.as_str(), j) {
            return Err(PipelineError::Data(format!(
                "{what}: exam `{id}` appears twice (exams {} and {}); each exam needs one id",
                first + 1,
                j + 1
            )));
        }
        if let Some(other) = names.insert(exam_file_name(id), id.as_str()) {
            return Err(PipelineError::Data(format!(
                "{what}: exams `{other}` and `{id}` map to the same file name"
            )));
        }
    }
    Ok(())
}

impl ExamSet {
    /// The paired cohort of a manifest (ids: CT accession numbers, as [`PairedCohort::from_manifest`]).
    pub fn manifest(source: &ManifestSource) -> Result<Self> {
        let records = read_paired_manifest(
            &source.csv,
            source.ct_dir.as_deref(),
            source.cxr_dir.as_deref(),
        )?;
        let ids: Vec<String> = records.iter().map(|r| r.ct_accession.clone()).collect();
        let labels = records.iter().map(|r| r.label != 0).collect();
        let what = source.csv.display().to_string();
        check_unique(&ids, &what)?;
        Ok(Self {
            exams: Exams::Manifest {
                csv: source.csv.clone(),
                records,
            },
            ids,
            labels,
            source: what,
        })
    }

    /// The exams of an RSPECT layout (ids: StudyInstanceUIDs, as [`PairedCohort::from_rspect`]);
    /// every exam's CT is located now, so a missing one is reported before any work.
    pub fn rspect(source: &RspectSource) -> Result<Self> {
        let mut exams = read_rspect_labels(&source.csv, None)?;
        if let Some(n) = source.limit {
            exams.truncate(n);
        }
        let sources = exams
            .iter()
            .map(|e| rspect_source(&source.csv, &source.root, e))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<String> = exams.iter().map(|e| e.study_uid.clone()).collect();
        let labels = exams.iter().map(|e| e.label != 0).collect();
        let what = source.csv.display().to_string();
        check_unique(&ids, &what)?;
        Ok(Self {
            exams: Exams::Rspect {
                csv: source.csv.clone(),
                exams,
                sources,
            },
            ids,
            labels,
            source: format!("RSPECT ({what})"),
        })
    }

    /// A set already read (a synthetic cohort).
    pub fn in_memory(cohort: PairedCohort) -> Result<Self> {
        let ids: Vec<String> = cohort.patients.iter().map(|p| p.id.clone()).collect();
        let labels = cohort.labels();
        let source = cohort.source.clone();
        check_unique(&ids, &source)?;
        Ok(Self {
            exams: Exams::Memory(cohort),
            ids,
            labels,
            source,
        })
    }

    /// Number of exams.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The exam ids, in order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The PE labels, in order.
    pub fn labels(&self) -> &[bool] {
        &self.labels
    }

    /// Where the exams come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads and preprocesses exam `j` exactly as the pipeline does for the whole set.
    pub fn load(&self, j: usize, data: &DataConfig) -> Result<Patient> {
        match &self.exams {
            Exams::Manifest { csv, records } => read_record(csv, &records[j], data),
            Exams::Rspect {
                csv,
                exams,
                sources,
            } => read_rspect_exam(csv, &exams[j], &sources[j], data),
            Exams::Memory(c) => Ok(c.patients[j].clone()),
        }
    }
}

/// The frozen encoders of phase A and the preprocessing they were trained with; what a feature file
/// was made by is their fingerprint.
pub struct FrozenEncoders {
    /// The CTPA encoder (its slice CNN gives the slice-embedding sequences).
    pub ctpa: CtpaEncoder,
    /// The X-ray encoder (its backbone gives the radiograph features).
    pub cxr: CxrEncoder,
    /// The preprocessing of every exam.
    pub data: DataConfig,
    fingerprint: String,
    device: Device,
}

const CTPA_DIR: &str = "ctpa";
const CXR_DIR: &str = "cxr";
const DATA_FILE: &str = "data.json";

fn hash_file(h: u64, path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    Ok(fnv1a_update(h, &bytes))
}

impl FrozenEncoders {
    /// Saves both encoders (`ctpa/`, `cxr/`, each `model.safetensors` + `config.json`) and the
    /// preprocessing (`data.json`) into `dir`, and loads them back, so that the fingerprint is that
    /// of the files every shard reads.
    pub fn save(
        ctpa: &CtpaEncoder,
        cxr: &CxrEncoder,
        data: &DataConfig,
        dir: &Path,
        device: &Device,
    ) -> Result<Self> {
        ctpa.save(&dir.join(CTPA_DIR))?;
        cxr.save(&dir.join(CXR_DIR))?;
        cmkd_train::checkpoint::save_json(&dir.join(DATA_FILE), data)?;
        Self::load(dir, device)
    }

    /// Loads encoders saved by [`FrozenEncoders::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        use cmkd_train::checkpoint::{load_json, MODEL_CONFIG, MODEL_WEIGHTS};
        let mut ctpa = CtpaEncoder::load(&dir.join(CTPA_DIR), DType::F32, device)?;
        ctpa.slice_cnn_mut().set_frozen(true);
        let mut cxr = CxrEncoder::load(&dir.join(CXR_DIR), DType::F32, device)?;
        cxr.set_backbone_frozen(true);
        let data: DataConfig = load_json(&dir.join(DATA_FILE))?;
        let mut h = FNV_OFFSET;
        for sub in [CTPA_DIR, CXR_DIR] {
            for file in [MODEL_CONFIG, MODEL_WEIGHTS] {
                h = hash_file(h, &dir.join(sub).join(file))?;
            }
        }
        h = hash_file(h, &dir.join(DATA_FILE))?;
        Ok(Self {
            ctpa,
            cxr,
            data,
            fingerprint: format!("{h:016x}"),
            device: device.clone(),
        })
    }

    /// A 16-hex-digit hash of the encoders' weights and configurations and of the preprocessing.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// One exam's features: its slice-embedding sequence `(slices, d)` and its radiograph's
    /// backbone features `(f,)`, both without a gradient graph.
    pub fn features(&self, patient: &Patient) -> Result<ExamFeatures> {
        let (seq, lengths) = self.ctpa.slice_embeddings(&[&patient.ctpa], false)?;
        let seq = seq.squeeze(0)?.narrow(0, 0, lengths[0])?.detach();
        let x = self.cxr.images_to_tensor(&[&patient.cxr])?;
        let cxr = self.cxr.features(&x, false)?.squeeze(0)?.detach();
        Ok(ExamFeatures {
            seq,
            cxr,
            label: patient.label,
        })
    }
}

/// One exam's frozen features.
#[derive(Debug, Clone)]
pub struct ExamFeatures {
    /// Slice-embedding sequence `(slices, d)`.
    pub seq: Tensor,
    /// Radiograph backbone features `(f,)`.
    pub cxr: Tensor,
    /// PE label.
    pub label: bool,
}

/// The file name of an exam's features: the id where it is a safe file name (DICOM UIDs and
/// accession numbers are), otherwise its safe characters and a hash of the whole id.
fn exam_file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == id && !id.is_empty() && !id.starts_with('.') {
        format!("{id}.safetensors")
    } else {
        format!("_{safe}-{}.safetensors", fnv1a_hex(id.as_bytes()))
    }
}

/// The path of exam `id`'s features in the output folder `out`.
pub fn exam_path(out: &Path, id: &str) -> PathBuf {
    out.join(EXAMS_DIR).join(exam_file_name(id))
}

fn write_exam(path: &Path, id: &str, encoders: &str, f: &ExamFeatures) -> Result<()> {
    let meta = HashMap::from([
        ("format".to_string(), EXAM_FORMAT.to_string()),
        ("exam".to_string(), id.to_string()),
        ("encoders".to_string(), encoders.to_string()),
    ]);
    let label = Tensor::new(&[u8::from(f.label)], f.seq.device())?;
    let bytes = safetensors::serialize(
        [("cxr", &f.cxr), ("label", &label), ("seq", &f.seq)],
        Some(meta),
    )
    .map_err(|e| PipelineError::Data(format!("{}: {e}", path.display())))?;
    Ok(cmkd_train::checkpoint::write_atomic(path, &bytes)?)
}

/// A feature file's metadata and tensors.
fn read_features(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, String>, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    let bad = |e: &dyn std::fmt::Display| {
        PipelineError::Data(format!(
            "{}: not a readable feature file: {e}",
            path.display()
        ))
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(&e))?;
    Ok((meta, tensors))
}

/// Exam `id`'s features at `path`, checked to be that exam's, made by `encoders`.
pub fn read_exam(path: &Path, id: &str, encoders: &str, device: &Device) -> Result<ExamFeatures> {
    let (meta, mut t) = read_features(path, device)?;
    let field = |k: &str| meta.get(k).map(String::as_str).unwrap_or("");
    let named = |m: String| PipelineError::Data(format!("{}: {m}", path.display()));
    if field("format") != EXAM_FORMAT {
        return Err(named(format!(
            "format `{}`, not `{EXAM_FORMAT}`",
            field("format")
        )));
    }
    if field("exam") != id {
        return Err(named(format!("holds exam `{}`, not `{id}`", field("exam"))));
    }
    if field("encoders") != encoders {
        return Err(named(format!(
            "made by encoders {}, not by these ({encoders}); extract into a new folder",
            field("encoders")
        )));
    }
    let mut take = |k: &str| t.remove(k).ok_or_else(|| named(format!("lacks `{k}`")));
    let (seq, cxr, label) = (take("seq")?, take("cxr")?, take("label")?);
    if seq.rank() != 2 || cxr.rank() != 1 {
        return Err(named(format!(
            "`seq` must be (slices, d) and `cxr` (f,); they are {:?} and {:?}",
            seq.dims(),
            cxr.dims()
        )));
    }
    let label = label.flatten_all()?.to_vec1::<u8>()?;
    Ok(ExamFeatures {
        seq,
        cxr,
        label: label.first().copied().unwrap_or(0) != 0,
    })
}

/// What one [`extract_shard`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardReport {
    /// Exams this shard owns.
    pub owned: usize,
    /// Of those, exams whose features were already there (made by the same encoders).
    pub already_done: usize,
    /// Ids of the exams extracted by this call, in order.
    pub extracted: Vec<String>,
    /// Whether `on_exam` stopped the call before the shard was complete.
    pub stopped: bool,
}

/// Extracts the features of the exams `shard` owns into `out/exams/`, one file per exam, skipping
/// exams already extracted by the same encoders (a file that is unreadable or made by other
/// encoders is redone). Exams are read in parallel, a batch of as many as there are threads at a
/// time, and encoded one by one. `on_exam` is called after each exam's file is written; returning
/// `ControlFlow::Break` stops the call there, as a killed job would (what was written stays).
pub fn extract_shard(
    encoders: &FrozenEncoders,
    exams: &ExamSet,
    shard: Shard,
    out: &Path,
    mut on_exam: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<ShardReport> {
    let dir = out.join(EXAMS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    let device = &encoders.device;
    let owned: Vec<usize> = (0..exams.len()).filter(|&j| shard.owns(j)).collect();
    let todo: Vec<usize> = owned
        .iter()
        .copied()
        .filter(|&j| {
            let id = &exams.ids()[j];
            read_exam(&exam_path(out, id), id, encoders.fingerprint(), device).is_err()
        })
        .collect();
    let mut report = ShardReport {
        owned: owned.len(),
        already_done: owned.len() - todo.len(),
        ..Default::default()
    };
    let bar = cmkd_train::progress::bar(todo.len() as u64, "extracting features");
    let batch = rayon::current_num_threads().max(1);
    for chunk in todo.chunks(batch) {
        let patients = chunk
            .par_iter()
            .map(|&j| exams.load(j, &encoders.data))
            .collect::<Result<Vec<_>>>()?;
        for (&j, patient) in chunk.iter().zip(&patients) {
            let id = &exams.ids()[j];
            let features = encoders.features(patient)?;
            write_exam(&exam_path(out, id), id, encoders.fingerprint(), &features)?;
            report.extracted.push(id.clone());
            bar.inc(1);
            if on_exam(id).is_break() {
                report.stopped = true;
                bar.finish_and_clear();
                return Ok(report);
            }
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Every exam's frozen features, in the set's order: what phase A computes, read from one file.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    /// Exam ids.
    pub ids: Vec<String>,
    /// PE labels.
    pub labels: Vec<bool>,
    /// Slice-embedding sequences `(slices, d)`.
    pub seqs: Vec<Tensor>,
    /// Radiograph backbone features `(n, f)`.
    pub cxr: Tensor,
    /// The fingerprint of the encoders that made them.
    pub encoders: String,
    /// Where the exams came from.
    pub source: String,
}

impl FeatureSet {
    /// Saves the set as one safetensors file (atomically): `seq/<j>` per exam, `cxr`, `label`, the
    /// ids and the encoders' fingerprint in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let device = self.cxr.device();
        let labels: Vec<u8> = self.labels.iter().map(|&l| u8::from(l)).collect();
        let label = Tensor::from_vec(labels, self.labels.len(), device)?;
        let mut tensors: Vec<(String, &Tensor)> =
            vec![("cxr".into(), &self.cxr), ("label".into(), &label)];
        for (j, s) in self.seqs.iter().enumerate() {
            tensors.push((format!("seq/{j:06}"), s));
        }
        let meta = HashMap::from([
            ("format".to_string(), SET_FORMAT.to_string()),
            ("encoders".to_string(), self.encoders.clone()),
            ("ids".to_string(), serde_json::to_string(&self.ids)?),
            ("source".to_string(), self.source.clone()),
        ]);
        let bytes = safetensors::serialize(tensors, Some(meta))
            .map_err(|e| PipelineError::Data(format!("{}: {e}", path.display())))?;
        Ok(cmkd_train::checkpoint::write_atomic(path, &bytes)?)
    }

    /// Loads a set saved by [`FeatureSet::save`] (or by [`merge`]).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (meta, mut t) = read_features(path, device)?;
        let named = |m: String| PipelineError::Data(format!("{}: {m}", path.display()));
        if meta.get("format").map(String::as_str) != Some(SET_FORMAT) {
            return Err(named(format!("not a feature set (`{SET_FORMAT}`)")));
        }
        let ids: Vec<String> = serde_json::from_str(meta.get("ids").map_or("", |s| s))
            .map_err(|e| named(format!("metadata `ids`: {e}")))?;
        let mut take = |k: &str| t.remove(k).ok_or_else(|| named(format!("lacks `{k}`")));
        let cxr = take("cxr")?;
        let labels: Vec<bool> = take("label")?
            .to_vec1::<u8>()?
            .into_iter()
            .map(|l| l != 0)
            .collect();
        let seqs = (0..ids.len())
            .map(|j| take(&format!("seq/{j:06}")))
            .collect::<Result<Vec<_>>>()?;
        if labels.len() != ids.len() || cxr.dims().first() != Some(&ids.len()) {
            return Err(named(format!(
                "{} ids but {} labels and {:?} X-ray features",
                ids.len(),
                labels.len(),
                cxr.dims()
            )));
        }
        Ok(Self {
            ids,
            labels,
            seqs,
            cxr,
            encoders: meta.get("encoders").cloned().unwrap_or_default(),
            source: meta.get("source").cloned().unwrap_or_default(),
        })
    }

    /// Number of exams.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A 16-hex-digit hash of the ids, labels, features and encoders: the set's part of a run's
    /// cache key.
    pub fn fingerprint(&self) -> Result<String> {
        let mut h = fnv1a_update(FNV_OFFSET, self.encoders.as_bytes());
        for (id, &l) in self.ids.iter().zip(&self.labels) {
            h = fnv1a_update(h, id.as_bytes());
            h = fnv1a_update(h, &[u8::from(l)]);
        }
        for t in self.seqs.iter().chain(std::iter::once(&self.cxr)) {
            for v in t.flatten_all()?.to_vec1::<f32>()? {
                h = fnv1a_update(h, &v.to_le_bytes());
            }
        }
        Ok(format!("{h:016x}"))
    }

    /// The same exams, in the same order, with the same labels as `cohort` (or an error naming the
    /// first difference).
    pub fn check_matches(&self, cohort: &PairedCohort) -> Result<()> {
        if self.len() != cohort.len() {
            return Err(PipelineError::Data(format!(
                "the features of {} hold {} exams; the cohort has {}",
                self.source,
                self.len(),
                cohort.len()
            )));
        }
        for (j, (p, (id, &l))) in cohort
            .patients
            .iter()
            .zip(self.ids.iter().zip(&self.labels))
            .enumerate()
        {
            if p.id != *id || p.label != l {
                return Err(PipelineError::Data(format!(
                    "exam {}: the features are of `{id}` (label {}), the cohort's patient is `{}` (label {})",
                    j + 1,
                    u8::from(l),
                    p.id,
                    u8::from(p.label)
                )));
            }
        }
        Ok(())
    }

    /// The phase A features of the set.
    pub fn features(&self) -> Features {
        Features {
            seqs: self.seqs.clone(),
            cxr: self.cxr.clone(),
        }
    }
}

/// The folder of the cohort's extraction inside a features folder.
pub const COHORT_DIR: &str = "cohort";
/// The folder of the CT-only pretraining set's extraction inside a features folder.
pub const PRETRAIN_DIR: &str = "pretrain";
/// The folder of the frozen encoders inside a features folder.
pub const ENCODERS_DIR: &str = "encoders";

/// Phase A computed elsewhere: the frozen encoders and the merged features of the paired cohort and
/// of the CT-only pretraining set, as `extract_features` leaves them in one folder
/// (`encoders/`, `cohort/features.safetensors`, `pretrain/features.safetensors`). A run from them
/// ([`super::Experiment::from_features`]) never holds the pretraining set's volumes in memory.
pub struct ExtractedFeatures {
    /// The encoders.
    pub encoders: FrozenEncoders,
    /// The paired cohort's features.
    pub cohort: FeatureSet,
    /// The CT-only pretraining set's features.
    pub pretrain: FeatureSet,
}

impl ExtractedFeatures {
    /// Loads the folder `dir`; both sets must have been made by its encoders.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let encoders = FrozenEncoders::load(&dir.join(ENCODERS_DIR), device)?;
        let set = |sub: &str| -> Result<FeatureSet> {
            let path = dir.join(sub).join(MERGED_FILE);
            let set = FeatureSet::load(&path, device)?;
            if set.encoders != encoders.fingerprint() {
                return Err(PipelineError::Data(format!(
                    "{}: made by encoders {}, not by {} ({}); extract and merge it again",
                    path.display(),
                    set.encoders,
                    dir.join(ENCODERS_DIR).display(),
                    encoders.fingerprint()
                )));
            }
            Ok(set)
        };
        let (cohort, pretrain) = (set(COHORT_DIR)?, set(PRETRAIN_DIR)?);
        let pos = pretrain.labels.iter().filter(|&&l| l).count();
        if pos == 0 || pos == pretrain.len() {
            return Err(PipelineError::Data(format!(
                "the pretraining set's features ({}) need both classes; {pos} of {} are positive",
                pretrain.source,
                pretrain.len()
            )));
        }
        Ok(Self {
            encoders,
            cohort,
            pretrain,
        })
    }

    /// Phase A for `config` on `cohort` from these features: the cohort must be the one extracted
    /// (same ids, order and labels) and `config`'s preprocessing the encoders'. The per-fold heads'
    /// pretrained starts are the encoders' own weights, as phase A keeps them.
    pub fn phase_a(&self, config: &PipelineConfig, cohort: &PairedCohort) -> Result<PhaseA> {
        if config.data != self.encoders.data {
            return Err(PipelineError::config(
                "data",
                "the run's preprocessing differs from the one the extracted features were made with",
            ));
        }
        self.cohort.check_matches(cohort)?;
        let mut init = HashMap::new();
        for (name, var) in self.encoders.ctpa.vit().trainable_vars() {
            init.insert(format!("{INIT_CTPA}{name}"), var.as_tensor().detach());
        }
        if config.xray_backbone.uses_ct_only_pe_labels() {
            for (name, var) in self.encoders.cxr.trainable_vars() {
                init.insert(format!("{INIT_CXR}{name}"), var.as_tensor().detach());
            }
        }
        Ok(PhaseA {
            cohort: self.cohort.features(),
            pretrain: self.pretrain.features(),
            init,
        })
    }
}

fn listing(ids: &[&str]) -> String {
    let mut s = ids
        .iter()
        .take(5)
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > 5 {
        s.push_str(&format!(" and {} more", ids.len() - 5));
    }
    s
}

/// Checks that every exam of `exams` has exactly one feature file in `out/exams/`, made by the
/// encoders of fingerprint `encoders`, with the exam's label, and that no file there belongs to
/// another exam; then writes them all, in the set's order, to `out/features.safetensors` and
/// returns them. Files of interrupted writes (hidden temporary files) are ignored.
pub fn merge(exams: &ExamSet, encoders: &str, out: &Path, device: &Device) -> Result<FeatureSet> {
    let dir = out.join(EXAMS_DIR);
    let expected: HashSet<String> = exams.ids().iter().map(|id| exam_file_name(id)).collect();
    let mut extra = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PipelineError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !expected.contains(&name) {
            extra.push(name);
        }
    }
    if !extra.is_empty() {
        extra.sort();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        return Err(PipelineError::Data(format!(
            "{}: {} file(s) belong to no exam of {} ({}); this folder holds another extraction",
            dir.display(),
            extra.len(),
            exams.source(),
            listing(&refs)
        )));
    }
    let missing: Vec<&str> = exams
        .ids()
        .iter()
        .filter(|id| !exam_path(out, id).exists())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(PipelineError::Data(format!(
            "{}: {} of {} exams have no features yet ({}); rerun the shards that own them",
            dir.display(),
            missing.len(),
            exams.len(),
            listing(&missing)
        )));
    }
    let mut seqs = Vec::with_capacity(exams.len());
    let mut cxr = Vec::with_capacity(exams.len());
    for (id, &label) in exams.ids().iter().zip(exams.labels()) {
        let path = exam_path(out, id);
        let f = read_exam(&path, id, encoders, device)?;
        if f.label != label {
            return Err(PipelineError::Data(format!(
                "{}: label {} but the set says {}",
                path.display(),
                u8::from(f.label),
                u8::from(label)
            )));
        }
        seqs.push(f.seq);
        cxr.push(f.cxr);
    }
    let set = FeatureSet {
        ids: exams.ids().to_vec(),
        labels: exams.labels().to_vec(),
        seqs,
        cxr: Tensor::stack(&cxr, 0)?,
        encoders: encoders.to_string(),
        source: exams.source().to_string(),
    };
    set.save(&out.join(MERGED_FILE))?;
    Ok(set)
}
