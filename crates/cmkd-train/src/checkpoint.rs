//! Atomic checkpoint files: safetensors for weights and state, JSON for configuration.
//!
//! Every write goes to a temporary file in the destination's folder and is renamed over the target
//! only once complete, so an interrupted run never leaves a truncated checkpoint where a good one was.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{params, Error, Result};

/// The folder of `path` (created) and a temporary file in it, removed when dropped unless
/// persisted.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    tempfile::Builder::new()
        .prefix(".")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Syncs the complete temporary file and renames it over `path`.
fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename). Creates the parent folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

/// Saves named tensors as a safetensors file, atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = temp_beside(path)?;
    // Candle serialises to a path; the temporary file keeps the write atomic.
    candle_core::safetensors::save(tensors, tmp.path()).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // fsync through our handle covers the bytes Candle wrote through its own (same file).
    persist(tmp, path)
}

/// Loads every tensor of a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    candle_core::safetensors::load(path, device).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a readable safetensors file: {e}"),
    })
}

/// The weights file of a model folder (the name candle and the Hugging Face hub use).
pub const MODEL_WEIGHTS: &str = "model.safetensors";
/// The configuration file of a model folder.
pub const MODEL_CONFIG: &str = "config.json";

/// The path of `name` in the model folder `dir`, or of the first of `legacy` (the same file under a
/// name earlier versions wrote) that exists there; `dir/name` when none does, so that a missing
/// file is reported under the current layout's name.
pub fn model_file(dir: &Path, name: &str, legacy: &[&str]) -> PathBuf {
    let current = dir.join(name);
    if current.exists() {
        return current;
    }
    legacy
        .iter()
        .map(|l| dir.join(l))
        .find(|p| p.exists())
        .unwrap_or(current)
}

/// Saves all variables of `map` (sorted by name) atomically.
pub fn save_varmap(path: &Path, map: &VarMap) -> Result<()> {
    let tensors = params::sorted_vars(map)
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    save_tensors(path, &tensors)
}

/// What [`load_varmap`] found besides the tensors it loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables of the model that the file does not have (left as they were).
    pub missing: Vec<String>,
    /// Tensors of the file that the model does not have (ignored).
    pub unexpected: Vec<String>,
}

/// Loads tensors from `path` into the existing variables of `map`.
///
/// With `strict`, any variable missing from the file is an error naming it; a shape mismatch is
/// always an error naming the tensor. Nothing is written into `map` unless every check passes.
pub fn load_varmap(path: &Path, map: &VarMap, strict: bool) -> Result<LoadReport> {
    let vars = params::sorted_vars(map);
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    let tensors = load_tensors(path, &device)?;
    let mut report = LoadReport::default();
    let mut plan = Vec::new();
    for (name, var) in &vars {
        match tensors.get(name) {
            None if strict => {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("missing tensor `{name}`"),
                })
            }
            None => report.missing.push(name.clone()),
            Some(t) if t.shape() != var.shape() => {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!(
                        "tensor `{name}` has shape {:?}, the model expects {:?}",
                        t.shape(),
                        var.shape()
                    ),
                })
            }
            Some(t) => plan.push((var.clone(), t.to_dtype(var.dtype())?)),
        }
    }
    for (var, t) in plan {
        var.set(&t)?;
    }
    let known: std::collections::HashSet<&String> = vars.iter().map(|(n, _)| n).collect();
    report.unexpected = tensors
        .keys()
        .filter(|k| !known.contains(k))
        .cloned()
        .collect();
    report.unexpected.sort();
    Ok(report)
}

/// Writes `value` as pretty JSON, atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, &bytes)
}

/// Reads JSON written by [`save_json`].
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn a_model_file_falls_back_to_its_legacy_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            model_file(d, MODEL_WEIGHTS, &["weights.safetensors"]),
            d.join(MODEL_WEIGHTS)
        );
        std::fs::write(d.join("weights.safetensors"), b"x").unwrap();
        assert_eq!(
            model_file(
                d,
                MODEL_WEIGHTS,
                &["old.safetensors", "weights.safetensors"]
            ),
            d.join("weights.safetensors")
        );
        std::fs::write(d.join(MODEL_WEIGHTS), b"x").unwrap();
        assert_eq!(
            model_file(d, MODEL_WEIGHTS, &["weights.safetensors"]),
            d.join(MODEL_WEIGHTS)
        );
    }

    #[test]
    fn varmap_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/model.safetensors");
        let a = VarMap::new();
        let vb = crate::seeded_var_builder(&a, 1, DType::F32, &Device::Cpu);
        candle_nn::linear(3, 2, vb.pp("l")).unwrap();
        save_varmap(&path, &a).unwrap();

        let b = VarMap::new();
        let vb = crate::seeded_var_builder(&b, 2, DType::F32, &Device::Cpu);
        candle_nn::linear(3, 2, vb.pp("l")).unwrap();
        candle_nn::linear(2, 2, vb.pp("extra")).unwrap();
        assert!(load_varmap(&path, &b, true)
            .unwrap_err()
            .to_string()
            .contains("extra."));
        let r = load_varmap(&path, &b, false).unwrap();
        assert_eq!(r.missing, ["extra.bias", "extra.weight"]);
        let wa = a.data().lock().unwrap()["l.weight"]
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap();
        let wb = b.data().lock().unwrap()["l.weight"]
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(wa, wb);

        let c = VarMap::new();
        let vb = crate::seeded_var_builder(&c, 2, DType::F32, &Device::Cpu);
        candle_nn::linear(4, 2, vb.pp("l")).unwrap();
        let err = load_varmap(&path, &c, false).unwrap_err().to_string();
        assert!(err.contains("l.weight") && err.contains("shape"), "{err}");

        // A corrupted file gives a typed error naming it.
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = load_varmap(&path, &a, true).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(load_tensors(&dir.path().join("none.safetensors"), &Device::Cpu).is_err());
    }

    #[test]
    fn json_round_trip_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cfg.json");
        save_json(&p, &vec![1, 2, 3]).unwrap();
        save_json(&p, &vec![4]).unwrap();
        assert_eq!(load_json::<Vec<i32>>(&p).unwrap(), [4]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::write(&p, b"{").unwrap();
        assert!(matches!(load_json::<Vec<i32>>(&p), Err(Error::Json { .. })));
    }
}
