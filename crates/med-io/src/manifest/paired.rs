//! The paired CXR/CTPA cohort CSV (X-ray2CTPA's `CT_Accession_number, cxr_Accession_number, PE`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{err, parse_binary, Table};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// Columns written by [`write_paired_manifest`]; the first three are required on reading, the paths
/// are optional (relative to the CSV's folder, or absolute).
pub const PAIRED_COLUMNS: [&str; 5] = [
    "CT_Accession_number",
    "cxr_Accession_number",
    "PE",
    "ct_path",
    "cxr_path",
];

const CT_EXTENSIONS: [&str; 2] = ["nii.gz", "nii"];
const CXR_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "dcm", "npy"];

/// One patient of a paired cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedRecord {
    /// CT accession number (or id).
    pub ct_accession: String,
    /// CXR accession number (or id).
    pub cxr_accession: String,
    /// PE label, 0 or 1.
    pub label: u8,
    /// The CTPA file or DICOM folder, when resolved.
    pub ct_path: Option<PathBuf>,
    /// The CXR file, when resolved.
    pub cxr_path: Option<PathBuf>,
    /// Line in the CSV (1 = header).
    pub line: usize,
}

fn resolve(
    csv: &Path,
    line: usize,
    explicit: Option<&str>,
    dir: Option<&Path>,
    accession: &str,
    extensions: &[&str],
    what: &str,
) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit.filter(|p| !p.is_empty()) {
        let p = Path::new(p);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            csv.parent().unwrap_or(Path::new(".")).join(p)
        };
        if !full.exists() {
            return Err(err(
                csv,
                line,
                format!("{what} file {} does not exist", full.display()),
            ));
        }
        return Ok(Some(full));
    }
    let Some(dir) = dir else { return Ok(None) };
    let bare = dir.join(accession);
    if bare.is_dir() {
        return Ok(Some(bare));
    }
    for ext in extensions {
        let f = dir.join(format!("{accession}.{ext}"));
        if f.is_file() {
            return Ok(Some(f));
        }
    }
    Err(err(
        csv,
        line,
        format!(
            "no {what} file for accession {accession} in {} (tried {})",
            dir.display(),
            extensions.join(", ")
        ),
    ))
}

/// Reads and validates a paired-cohort CSV.
///
/// Files come from the optional `ct_path`/`cxr_path` columns, else from `ct_dir`/`cxr_dir` by accession
/// number (`<acc>.nii.gz`, `<acc>.nii` or a DICOM folder `<acc>/`; `<acc>.png|jpg|jpeg|dcm|npy`), else
/// are left unresolved. Errors name the line: missing columns, empty accession numbers, labels that are
/// not 0/1, duplicate CT or CXR accession numbers, and files that do not exist.
pub fn read_paired_manifest(
    path: impl AsRef<Path>,
    ct_dir: Option<&Path>,
    cxr_dir: Option<&Path>,
) -> Result<Vec<PairedRecord>> {
    let path = path.as_ref();
    let t = Table::read(path)?;
    let ct = t.require(path, PAIRED_COLUMNS[0])?;
    let cxr = t.require(path, PAIRED_COLUMNS[1])?;
    let pe = t.require(path, PAIRED_COLUMNS[2])?;
    let ct_col = t.columns.get(PAIRED_COLUMNS[3]).copied();
    let cxr_col = t.columns.get(PAIRED_COLUMNS[4]).copied();
    let mut seen_ct: HashMap<String, usize> = HashMap::new();
    let mut seen_cxr: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(t.rows.len());
    for (line, f) in &t.rows {
        let line = *line;
        let (a, b) = (f[ct].clone(), f[cxr].clone());
        if a.is_empty() || b.is_empty() {
            return Err(err(path, line, "empty accession number"));
        }
        let label = parse_binary(path, line, "PE", &f[pe])?;
        if let Some(first) = seen_ct.insert(a.clone(), line) {
            return Err(err(
                path,
                line,
                format!("duplicate CT accession {a} (first on line {first})"),
            ));
        }
        if let Some(first) = seen_cxr.insert(b.clone(), line) {
            return Err(err(
                path,
                line,
                format!("duplicate CXR accession {b} (first on line {first})"),
            ));
        }
        let ct_path = resolve(
            path,
            line,
            ct_col.map(|i| f[i].as_str()),
            ct_dir,
            &a,
            &CT_EXTENSIONS,
            "CT",
        )?;
        let cxr_path = resolve(
            path,
            line,
            cxr_col.map(|i| f[i].as_str()),
            cxr_dir,
            &b,
            &CXR_EXTENSIONS,
            "CXR",
        )?;
        out.push(PairedRecord {
            ct_accession: a,
            cxr_accession: b,
            label,
            ct_path,
            cxr_path,
            line,
        });
    }
    Ok(out)
}

/// Writes a paired-cohort CSV atomically with [`PAIRED_COLUMNS`]; paths are written as given.
pub fn write_paired_manifest(path: impl AsRef<Path>, records: &[PairedRecord]) -> Result<()> {
    let path = path.as_ref();
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Error::Manifest {
        path: path.to_path_buf(),
        row: 0,
        reason: e.to_string(),
    };
    w.write_record(PAIRED_COLUMNS).map_err(fail)?;
    for r in records {
        let p = |o: &Option<PathBuf>| {
            o.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        w.write_record([
            r.ct_accession.clone(),
            r.cxr_accession.clone(),
            r.label.to_string(),
            p(&r.ct_path),
            p(&r.cxr_path),
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        row: 0,
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(e: Error) -> usize {
        match e {
            Error::Manifest { row, .. } => row,
            other => panic!("expected a manifest error, got {other}"),
        }
    }

    #[test]
    fn round_trip_and_resolution() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("ct")).unwrap();
        std::fs::create_dir_all(d.path().join("cxr")).unwrap();
        std::fs::write(d.path().join("ct/A1.nii.gz"), b"x").unwrap();
        std::fs::write(d.path().join("cxr/X1.png"), b"x").unwrap();
        let recs = vec![PairedRecord {
            ct_accession: "A1".into(),
            cxr_accession: "X1".into(),
            label: 1,
            ct_path: Some("ct/A1.nii.gz".into()),
            cxr_path: Some("cxr/X1.png".into()),
            line: 2,
        }];
        let p = d.path().join("cohort.csv");
        write_paired_manifest(&p, &recs).unwrap();
        let back = read_paired_manifest(&p, None, None).unwrap();
        assert_eq!(
            back[0].ct_path.as_deref(),
            Some(d.path().join("ct/A1.nii.gz").as_path())
        );
        assert_eq!(back[0].label, 1);
        // By accession number only.
        let q = d.path().join("acc.csv");
        std::fs::write(&q, "CT_Accession_number,cxr_Accession_number,PE\nA1,X1,0\n").unwrap();
        let r = read_paired_manifest(&q, Some(&d.path().join("ct")), Some(&d.path().join("cxr")))
            .unwrap();
        assert!(r[0].ct_path.is_some() && r[0].cxr_path.is_some());
        assert!(read_paired_manifest(&q, None, None).unwrap()[0]
            .ct_path
            .is_none());
    }

    #[test]
    fn errors_name_the_row() {
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("m.csv");
        let h = "CT_Accession_number,cxr_Accession_number,PE\n";
        std::fs::write(&q, format!("{h}A,X,1\nB,Y,2\n")).unwrap();
        let e = read_paired_manifest(&q, None, None).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        std::fs::write(&q, format!("{h}A,X,1\nB,Y,0\nA,Z,0\n")).unwrap();
        assert_eq!(row(read_paired_manifest(&q, None, None).unwrap_err()), 4);
        std::fs::write(&q, format!("{h}A,X,1\nB,X,0\n")).unwrap();
        assert_eq!(row(read_paired_manifest(&q, None, None).unwrap_err()), 3);
        std::fs::write(&q, format!("{h}A,X,1\n")).unwrap();
        assert_eq!(
            row(read_paired_manifest(&q, Some(d.path()), None).unwrap_err()),
            2
        );
        std::fs::write(&q, "CT_Accession_number,PE\nA,1\n").unwrap();
        assert!(read_paired_manifest(&q, None, None)
            .unwrap_err()
            .to_string()
            .contains("cxr_Accession_number"));
        std::fs::write(&q, format!("{h}A,X,1\n,Y,0\n")).unwrap();
        assert_eq!(row(read_paired_manifest(&q, None, None).unwrap_err()), 3);
        assert!(matches!(
            read_paired_manifest(d.path().join("none.csv"), None, None),
            Err(Error::Io { .. })
        ));
    }
}
