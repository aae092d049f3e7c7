//! Embedding tables keyed by patient id, stored as safetensors.
//!
//! One 1D f32 tensor per patient, named by the patient id, so the file opens in any safetensors
//! reader and a later phase can look patients up by id. Written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// Checks ids and values and writes `rows` (patient id, embedding) to `path` atomically.
/// Fails on an empty or duplicate id, embeddings of different sizes, or a non-finite value.
pub fn save_embeddings(path: &Path, rows: &[(String, Vec<f32>)]) -> Result<()> {
    let mut map = HashMap::with_capacity(rows.len());
    let dim = rows.first().map(|r| r.1.len());
    for (id, v) in rows {
        if id.is_empty() {
            return Err(Error::Input("empty patient id".into()));
        }
        if Some(v.len()) != dim || v.is_empty() {
            return Err(Error::Input(format!(
                "patient `{id}`: embedding of size {} where {dim:?} expected",
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::Input(format!(
                "patient `{id}`: embedding value {i} is not finite"
            )));
        }
        let t = Tensor::from_slice(v, v.len(), &Device::Cpu)?;
        if map.insert(id.clone(), t).is_some() {
            return Err(Error::Input(format!("patient id `{id}` appears twice")));
        }
    }
    cmkd_train::checkpoint::save_tensors(path, &map)?;
    Ok(())
}

/// Reads a table written by [`save_embeddings`], sorted by patient id.
pub fn load_embeddings(path: &Path) -> Result<Vec<(String, Vec<f32>)>> {
    let map = cmkd_train::checkpoint::load_tensors(path, &Device::Cpu)?;
    let mut rows = Vec::with_capacity(map.len());
    for (id, t) in map {
        if t.rank() != 1 {
            return Err(Error::Input(format!(
                "{}: tensor `{id}` is not a vector",
                path.display()
            )));
        }
        rows.push((id, t.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("emb.safetensors");
        let rows = vec![
            ("p2".to_string(), vec![1.0, 2.0]),
            ("p1".to_string(), vec![3.0, 4.0]),
        ];
        save_embeddings(&p, &rows).unwrap();
        let back = load_embeddings(&p).unwrap();
        assert_eq!(back, vec![rows[1].clone(), rows[0].clone()]);
        let dup = vec![("a".to_string(), vec![1.0]), ("a".to_string(), vec![2.0])];
        assert!(matches!(save_embeddings(&p, &dup), Err(Error::Input(_))));
        let nan = vec![("a".to_string(), vec![f32::NAN])];
        assert!(matches!(save_embeddings(&p, &nan), Err(Error::Input(_))));
        let ragged = vec![
            ("a".to_string(), vec![1.0]),
            ("b".to_string(), vec![1.0, 2.0]),
        ];
        assert!(save_embeddings(&p, &ragged).is_err());
        // The good file is still there after the failed writes.
        assert_eq!(load_embeddings(&p).unwrap().len(), 2);
    }
}
