//! Reading a CSV of binary labels and one or more model score columns (with a header row).
//!
//! Labels may be written `0`/`1` or `false`/`true` (any case). Every other column (or the chosen
//! ones) is a model's scores and must parse as a finite number; errors name the file, line and
//! column.

use crate::error::{EvalError, Result};
use std::path::Path;

/// Labels and the score columns read from a CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTable {
    /// Binary labels (true = positive).
    pub labels: Vec<bool>,
    /// `(column name, scores)` per model, in file order.
    pub models: Vec<(String, Vec<f64>)>,
}

fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" => Some(true),
        "0" | "0.0" | "false" => Some(false),
        _ => None,
    }
}

/// Reads `path`. `label_column` names the label column (default: the first column);
/// `score_columns` selects score columns by name (default: every other column).
pub fn read_scores_csv(
    path: impl AsRef<Path>,
    label_column: Option<&str>,
    score_columns: Option<&[&str]>,
) -> Result<ScoreTable> {
    let path = path.as_ref();
    let err = |reason: String| EvalError::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| err(e.to_string()))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| err(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| err(format!("no column named `{name}` (columns: {headers:?})")))
    };
    let label_idx = match label_column {
        Some(name) => find(name)?,
        None => 0,
    };
    let score_idx: Vec<usize> = match score_columns {
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<_>>()?,
        None => (0..headers.len()).filter(|&i| i != label_idx).collect(),
    };
    if score_idx.is_empty() {
        return Err(err("no score columns".into()));
    }
    let mut labels = Vec::new();
    let mut scores: Vec<Vec<f64>> = vec![Vec::new(); score_idx.len()];
    for (row, rec) in rdr.records().enumerate() {
        // Line numbers count the header as line 1.
        let line = row + 2;
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let cell = |i: usize| rec.get(i).unwrap_or("");
        let l = parse_label(cell(label_idx)).ok_or_else(|| {
            err(format!(
                "line {line}, column `{}`: label `{}` is not 0/1/true/false",
                headers[label_idx],
                cell(label_idx)
            ))
        })?;
        labels.push(l);
        for (k, &i) in score_idx.iter().enumerate() {
            let v: f64 = cell(i).parse().map_err(|_| {
                err(format!(
                    "line {line}, column `{}`: `{}` is not a number",
                    headers[i],
                    cell(i)
                ))
            })?;
            if !v.is_finite() {
                return Err(err(format!(
                    "line {line}, column `{}`: score {v} is not finite",
                    headers[i]
                )));
            }
            scores[k].push(v);
        }
    }
    if labels.is_empty() {
        return Err(err("no data rows".into()));
    }
    Ok(ScoreTable {
        labels,
        models: score_idx
            .iter()
            .map(|&i| headers[i].clone())
            .zip(scores)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_labels_and_models() {
        let (_d, p) = write("y,a,b\n1,0.9,0.2\n0, 0.1 ,0.3\nTRUE,0.5,0.5\n");
        let t = read_scores_csv(&p, None, None).unwrap();
        assert_eq!(t.labels, vec![true, false, true]);
        assert_eq!(t.models[0], ("a".to_string(), vec![0.9, 0.1, 0.5]));
        let t = read_scores_csv(&p, Some("y"), Some(&["b"])).unwrap();
        assert_eq!(t.models.len(), 1);
    }

    #[test]
    fn errors_name_line_and_column() {
        let (_d, p) = write("y,a\n1,0.9\n0,NaN\n");
        let e = read_scores_csv(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`a`"), "{e}");
        let (_d, p) = write("y,a\n2,0.9\n");
        let e = read_scores_csv(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("label `2`"), "{e}");
        let (_d, p) = write("y,a\n1,0.9\n");
        assert!(read_scores_csv(&p, Some("label"), None).is_err());
        assert!(matches!(
            read_scores_csv("/nonexistent/x.csv", None, None),
            Err(EvalError::Csv { .. })
        ));
    }
}
