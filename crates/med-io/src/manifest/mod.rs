//! Dataset manifests: the RSPECT labels CSV and the paired CXR/CTPA cohort CSV, validated on load.
//!
//! Every problem is an [`Error::Manifest`](crate::Error::Manifest) naming the file and the line:
//! a missing column, a label that is not 0/1, a duplicate id, a file that does not exist.

mod paired;
mod rspect;

pub use paired::{read_paired_manifest, write_paired_manifest, PairedRecord, PAIRED_COLUMNS};
pub use rspect::{read_rspect_labels, RspectExam, RSPECT_EXAM_COLUMNS};

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// A CSV file read as a header and string rows, with the line number of each row.
pub(crate) struct Table {
    pub(crate) columns: HashMap<String, usize>,
    pub(crate) header: Vec<String>,
    /// `(line, fields)`; line 1 is the header.
    pub(crate) rows: Vec<(usize, Vec<String>)>,
}

pub(crate) fn err(path: &Path, row: usize, reason: impl Into<String>) -> Error {
    Error::Manifest {
        path: path.to_path_buf(),
        row,
        reason: reason.into(),
    }
}

impl Table {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(&bytes[..]);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| err(path, 1, format!("unreadable header: {e}")))?
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut columns = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if columns.insert(h.clone(), i).is_some() {
                return Err(err(path, 1, format!("column `{h}` appears twice")));
            }
        }
        let mut rows = Vec::new();
        for (n, rec) in reader.records().enumerate() {
            let line = n + 2;
            let rec = rec.map_err(|e| err(path, line, format!("malformed CSV: {e}")))?;
            if rec.iter().all(|f| f.is_empty()) {
                continue;
            }
            rows.push((
                rec.position().map(|p| p.line() as usize).unwrap_or(line),
                rec.iter().map(str::to_string).collect(),
            ));
        }
        if rows.is_empty() {
            return Err(err(path, 0, "no data rows"));
        }
        Ok(Self {
            columns,
            header,
            rows,
        })
    }

    pub(crate) fn require(&self, path: &Path, name: &str) -> Result<usize> {
        self.columns.get(name).copied().ok_or_else(|| {
            err(
                path,
                1,
                format!(
                    "missing column `{name}` (columns: {})",
                    self.header.join(", ")
                ),
            )
        })
    }
}

/// Parses a 0/1 label (`0`, `1`, `0.0`, `1.0`, `true`, `false`).
pub(crate) fn parse_binary(path: &Path, line: usize, column: &str, value: &str) -> Result<u8> {
    match value.to_ascii_lowercase().as_str() {
        "0" | "0.0" | "false" => Ok(0),
        "1" | "1.0" | "true" => Ok(1),
        other => Err(err(
            path,
            line,
            format!("`{column}` must be 0 or 1, got `{other}`"),
        )),
    }
}
