//! Phase A's frozen features, computed once and cached: the CT half (slice CNN pretrained on the
//! CT-only set, slice-embedding sequences of every CT) and the X-ray half (backbone pretrained as
//! [`PipelineConfig::xray_backbone`] says, backbone features of every X-ray), each under the hash of
//! its own settings and data, so that a change to a later phase, or to the other half, keeps it.

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

use super::cohort::{FindingsSet, PairedCohort};
use super::config::{PipelineConfig, XrayBackbone};
use super::encoders::{
    cxr_features, pretrain_ctpa, pretrain_cxr, pretrain_cxr_findings, slice_sequences,
};
use super::error::{PipelineError, Result};
use super::heads::embed_sequences;
use cmkd_train::hash::fnv1a_hex;

/// Frozen features of one patient set: slice sequences and X-ray backbone features.
pub struct Features {
    /// Slice-embedding sequences `(slices, d)`, one per patient.
    pub seqs: Vec<Tensor>,
    /// X-ray backbone features `(n, f)`.
    pub cxr: Tensor,
}

/// Prefix of the pretrained CTPA sequence ViT's weights: the per-fold CTPA head starts from them
/// (see [`PipelineConfig::warm_start_heads`]).
pub(crate) const INIT_CTPA: &str = "init/ctpa/";
/// Prefix of the PE-supervised X-ray classifier's projection and head (only with
/// [`XrayBackbone::CtOnlyPeLabels`]).
pub(crate) const INIT_CXR: &str = "init/cxr/";

/// Everything phase A gives the folds.
pub struct PhaseA {
    /// The paired cohort's features.
    pub cohort: Features,
    /// The CT-only pretraining set's features (its radiographs through the same X-ray backbone).
    pub pretrain: Features,
    /// Pretrained weights the per-fold heads may start from, by `init/ctpa/` / `init/cxr/` prefix.
    pub init: HashMap<String, Tensor>,
}

/// One half of phase A: the cohort's and the pretraining set's features, and pretrained weights.
struct Half<T> {
    cohort: T,
    pretrain: T,
    init: HashMap<String, Tensor>,
}

fn cache_dir(
    root: &Path,
    half: &str,
    key: &str,
    data: &[&PairedCohort],
) -> Result<std::path::PathBuf> {
    let mut s = key.to_string();
    for d in data {
        s.push('/');
        s.push_str(&d.fingerprint());
    }
    let dir = root.join(format!("phase-a-{half}-{}", fnv1a_hex(s.as_bytes())));
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    Ok(dir)
}

fn take(map: &mut HashMap<String, Tensor>, path: &Path, key: &str) -> Result<Tensor> {
    map.remove(key).ok_or_else(|| {
        PipelineError::Data(format!("{}: cached features lack `{key}`", path.display()))
    })
}

fn take_seqs(
    map: &mut HashMap<String, Tensor>,
    path: &Path,
    prefix: &str,
    count: usize,
) -> Result<Vec<Tensor>> {
    (0..count)
        .map(|i| take(map, path, &format!("{prefix}/seq/{i:06}")))
        .collect()
}

fn keep_init(mut map: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    map.retain(|k, _| k.starts_with("init/"));
    map
}

/// The CT half: slice sequences of `cohort` and `pretrain_set`, and the pretrained ViT's weights.
fn ct_half(
    config: &PipelineConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    cache_root: &Path,
    device: &Device,
) -> Result<Half<Vec<Tensor>>> {
    let dir = cache_dir(
        cache_root,
        "ct",
        &config.phase_a_ct_hash()?,
        &[cohort, pretrain_set],
    )?;
    let path = dir.join("features.safetensors");
    if path.exists() {
        eprintln!("phase A: slice sequences from cache {}", path.display());
        let mut map = cmkd_train::checkpoint::load_tensors(&path, device)?;
        let cohort = take_seqs(&mut map, &path, "cohort", cohort.len())?;
        let pretrain = take_seqs(&mut map, &path, "pretrain", pretrain_set.len())?;
        return Ok(Half {
            cohort,
            pretrain,
            init: keep_init(map),
        });
    }
    eprintln!(
        "phase A: pretraining the slice CNN on {} CT-only patients",
        pretrain_set.len()
    );
    let encoder = pretrain_ctpa(pretrain_set, config, device)?;
    let seqs = slice_sequences(&encoder, cohort)?;
    let pre = slice_sequences(&encoder, pretrain_set)?;
    // How well the pretrained classifier transfers to the (disjoint) cohort, as a check of the
    // frozen features; no cohort label is used for training here.
    let probs = |s: &[Tensor]| -> Result<Vec<f64>> {
        Ok(embed_sequences(encoder.vit(), s, config.batch_size)?.1)
    };
    eprintln!(
        "  pretrained CTPA classifier, AUC on its own training set / on the cohort: {:.3} / {:.3}",
        med_eval::roc_auc(&pretrain_set.labels(), &probs(&pre)?)?,
        med_eval::roc_auc(&cohort.labels(), &probs(&seqs)?)?,
    );
    let mut map = HashMap::new();
    for (name, var) in encoder.vit().trainable_vars() {
        map.insert(format!("{INIT_CTPA}{name}"), var.as_tensor().detach());
    }
    let init = map.clone();
    for (prefix, set) in [("cohort", &seqs), ("pretrain", &pre)] {
        for (i, s) in set.iter().enumerate() {
            map.insert(format!("{prefix}/seq/{i:06}"), s.clone());
        }
    }
    cmkd_train::checkpoint::save_tensors(&path, &map)?;
    Ok(Half {
        cohort: seqs,
        pretrain: pre,
        init,
    })
}

/// The X-ray half: backbone features of `cohort` and `pretrain_set` (its rendered radiographs), and,
/// with [`XrayBackbone::CtOnlyPeLabels`], the PE classifier's projection and head.
fn xray_half(
    config: &PipelineConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    cache_root: &Path,
    device: &Device,
) -> Result<Half<Tensor>> {
    let dir = cache_dir(
        cache_root,
        "xray",
        &config.phase_a_xray_hash()?,
        &[cohort, pretrain_set],
    )?;
    let path = dir.join("features.safetensors");
    if path.exists() {
        eprintln!("phase A: X-ray features from cache {}", path.display());
        let mut map = cmkd_train::checkpoint::load_tensors(&path, device)?;
        let cohort = take(&mut map, &path, "cohort/cxr")?;
        let pretrain = take(&mut map, &path, "pretrain/cxr")?;
        return Ok(Half {
            cohort,
            pretrain,
            init: keep_init(map),
        });
    }
    let mut map = HashMap::new();
    let encoder = match config.xray_backbone {
        XrayBackbone::Findings => {
            let findings = FindingsSet::synthetic(
                config.findings_patients,
                config.finding_prob,
                &config.data,
                config.seed,
            )?;
            eprintln!(
                "phase A: pretraining the X-ray backbone on {} X-rays of a findings population (no PE label)",
                findings.len()
            );
            let (encoder, auc) = pretrain_cxr_findings(&findings, config, device)?;
            eprintln!(
                "  findings classifier, mean AUC of its 4 findings on its training set: {auc:.3}"
            );
            encoder
        }
        XrayBackbone::CtOnlyPeLabels => {
            eprintln!(
                "phase A: pretraining the X-ray classifier on the radiographs of {} CT-only patients with their PE labels",
                pretrain_set.len()
            );
            let encoder = pretrain_cxr(pretrain_set, config, device)?;
            let probs = |set: &PairedCohort| -> Result<Vec<f64>> {
                let imgs: Vec<_> = set.patients.iter().map(|p| &p.cxr).collect();
                Ok(
                    cxr_encoder::train::predict_proba(&encoder, &imgs, config.classifier_batch)?
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                )
            };
            eprintln!(
                "  pretrained X-ray classifier, AUC on its own training set / on the cohort: {:.3} / {:.3}",
                med_eval::roc_auc(&pretrain_set.labels(), &probs(pretrain_set)?)?,
                med_eval::roc_auc(&cohort.labels(), &probs(cohort)?)?
            );
            for (name, var) in encoder.trainable_vars() {
                map.insert(format!("{INIT_CXR}{name}"), var.as_tensor().detach());
            }
            encoder
        }
    };
    let init = map.clone();
    let a = cxr_features(&encoder, cohort, config.batch_size)?;
    let b = cxr_features(&encoder, pretrain_set, config.batch_size)?;
    map.insert("cohort/cxr".into(), a.clone());
    map.insert("pretrain/cxr".into(), b.clone());
    cmkd_train::checkpoint::save_tensors(&path, &map)?;
    Ok(Half {
        cohort: a,
        pretrain: b,
        init,
    })
}

/// Phase A: both halves, from their caches under `cache_root` where they exist.
pub fn phase_a(
    config: &PipelineConfig,
    cohort: &PairedCohort,
    pretrain_set: &PairedCohort,
    cache_root: &Path,
    device: &Device,
) -> Result<PhaseA> {
    let ct = ct_half(config, cohort, pretrain_set, cache_root, device)?;
    let xray = xray_half(config, cohort, pretrain_set, cache_root, device)?;
    let mut init = ct.init;
    init.extend(xray.init);
    Ok(PhaseA {
        cohort: Features {
            seqs: ct.cohort,
            cxr: xray.cohort,
        },
        pretrain: Features {
            seqs: ct.pretrain,
            cxr: xray.pretrain,
        },
        init,
    })
}
