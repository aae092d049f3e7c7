//! Pretrained weights: local safetensors files and the Hugging Face hub.
//!
//! [`WeightSource::Hub`] resolves a file of a model repository at a revision. It looks in the
//! standard cache first (`$HF_HOME/hub`, or `~/.cache/huggingface/hub`), never touches the network
//! when `HF_HUB_OFFLINE=1`, and otherwise downloads through `hf_hub::api::sync::ApiBuilder::from_env`
//! (which honours `HF_HOME` and `HF_ENDPOINT`). [`load_into`] then copies the tensors into a model's
//! variables under upstream names, with a typed error naming any missing or mis-shaped tensor.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_nn::VarMap;
use hf_hub::{Cache, Repo, RepoType};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightSource {
    /// A local safetensors file.
    File(PathBuf),
    /// A file of a Hugging Face model repository.
    Hub {
        /// Model id, e.g. `facebook/dinov2-small`.
        repo: String,
        /// Branch, tag or commit hash, e.g. `main`.
        revision: String,
        /// File in the repository, e.g. `model.safetensors`.
        file: String,
    },
}

impl WeightSource {
    /// A hub source.
    pub fn hub(repo: &str, revision: &str, file: &str) -> Self {
        WeightSource::Hub {
            repo: repo.into(),
            revision: revision.into(),
            file: file.into(),
        }
    }

    /// The local path of the weights, downloading them if needed and allowed (see the module docs).
    pub fn resolve(&self) -> Result<PathBuf> {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
            .unwrap_or(false);
        self.resolve_with(&Cache::from_env(), offline)
    }

    /// Like [`WeightSource::resolve`] with an explicit cache and offline flag (the environment is
    /// read only for the download endpoint and token).
    pub fn resolve_with(&self, cache: &Cache, offline: bool) -> Result<PathBuf> {
        match self {
            WeightSource::File(p) => {
                if p.is_file() {
                    Ok(p.clone())
                } else {
                    Err(Error::Io {
                        path: p.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such weights file",
                        ),
                    })
                }
            }
            WeightSource::Hub {
                repo,
                revision,
                file,
            } => {
                let err = |reason: String| Error::Hub {
                    repo: repo.clone(),
                    revision: revision.clone(),
                    file: file.clone(),
                    reason,
                };
                if let Some(p) = cached(cache, repo, revision, file) {
                    return Ok(p);
                }
                if offline {
                    return Err(err(format!(
                        "not in the cache at {} and HF_HUB_OFFLINE is set",
                        cache.path().display()
                    )));
                }
                let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
                    .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
                if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
                    builder = builder.with_endpoint(endpoint);
                }
                let api = builder.build().map_err(|e| err(e.to_string()))?;
                api.repo(Repo::with_revision(
                    repo.clone(),
                    RepoType::Model,
                    revision.clone(),
                ))
                .get(file)
                .map_err(|e| err(e.to_string()))
            }
        }
    }
}

/// The cached copy of `file`, by branch/tag reference or, for a commit hash, by snapshot folder.
fn cached(cache: &Cache, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let r = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
    if let Some(p) = cache.repo(r.clone()).get(file) {
        return Some(p);
    }
    let p = cache
        .path()
        .join(r.folder_name())
        .join("snapshots")
        .join(revision)
        .join(file);
    p.is_file().then_some(p)
}

/// Renamings between checkpoint generations of the same architecture: transformers 5 saves DINOv2's
/// attention as `attention.{q,k,v,o}_proj` where the hub checkpoints (and transformers 4) have
/// `attention.attention.{query,key,value}` and `attention.output.dense`.
const ALIASES: [(&str, &str); 4] = [
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
];

fn aliases(key: &str) -> Vec<String> {
    ALIASES
        .iter()
        .filter(|(old, _)| key.contains(old))
        .map(|(old, new)| key.replace(old, new))
        .collect()
}

/// What [`load_into`] did besides loading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Number of variables loaded.
    pub loaded: usize,
    /// Tensors under the file prefix that the model does not use (e.g. `fc.*`, `mask_token`).
    pub unused: Vec<String>,
}

/// Loads every variable of `map` whose name starts with `var_prefix` from the safetensors `file`,
/// where variable `var_prefix + rest` is read from tensor `file_prefix + rest`. Batch-norm counters
/// (`num_batches_tracked`) are ignored, and DINOv2 files saved by transformers 5 (renamed attention
/// tensors) load like the hub's. Nothing is written unless every tensor is present with the
/// right shape; otherwise the error names the first missing or mis-shaped tensor.
pub fn load_into(
    map: &VarMap,
    file: &Path,
    var_prefix: &str,
    file_prefix: &str,
) -> Result<LoadReport> {
    // SAFETY: the file is only read; concurrent modification of a weights file is not supported.
    let st = unsafe { MmapedSafetensors::new(file) }.map_err(|e| Error::Io {
        path: file.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    let names: std::collections::HashSet<String> =
        st.tensors().into_iter().map(|(n, _)| n).collect();
    let vars = cmkd_train::sorted_vars(map);
    let mut plan = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (name, var) in vars.iter().filter(|(n, _)| n.starts_with(var_prefix)) {
        let key = format!("{file_prefix}{}", &name[var_prefix.len()..]);
        let key = if names.contains(&key) {
            key
        } else {
            match aliases(&key).into_iter().find(|k| names.contains(k)) {
                Some(k) => k,
                None => {
                    return Err(Error::MissingTensor {
                        file: file.to_path_buf(),
                        name: key,
                    })
                }
            }
        };
        let t = st.load(&key, var.device())?;
        if t.dims() != var.dims() {
            return Err(Error::ShapeMismatch {
                file: file.to_path_buf(),
                name: key,
                expected: var.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
        plan.push((var.clone(), t.to_dtype(var.dtype())?));
        used.insert(key);
    }
    let loaded = plan.len();
    for (var, t) in plan {
        var.set(&t)?;
    }
    let mut unused: Vec<String> = names
        .into_iter()
        .filter(|n| {
            n.starts_with(file_prefix) && !used.contains(n) && !n.ends_with("num_batches_tracked")
        })
        .collect();
    unused.sort();
    Ok(LoadReport { loaded, unused })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_source_resolves_from_a_local_cache_without_network() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.repo(Repo::with_revision(
            "org/model".into(),
            RepoType::Model,
            "main".into(),
        ));
        repo.create_ref(hash).unwrap();
        let snap = dir.path().join("models--org--model/snapshots").join(hash);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("model.safetensors"), b"x").unwrap();

        let by_branch = WeightSource::hub("org/model", "main", "model.safetensors");
        assert_eq!(
            by_branch.resolve_with(&cache, true).unwrap(),
            snap.join("model.safetensors")
        );
        let by_commit = WeightSource::hub("org/model", hash, "model.safetensors");
        assert_eq!(
            by_commit.resolve_with(&cache, true).unwrap(),
            snap.join("model.safetensors")
        );
        // Offline and absent: a typed error naming the repository and file, no network attempt.
        let missing = WeightSource::hub("org/model", "main", "other.safetensors");
        match missing.resolve_with(&cache, true) {
            Err(Error::Hub { repo, file, .. }) => assert_eq!(
                (repo.as_str(), file.as_str()),
                ("org/model", "other.safetensors")
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            WeightSource::File(dir.path().join("nope")).resolve(),
            Err(Error::Io { .. })
        ));
    }
}
