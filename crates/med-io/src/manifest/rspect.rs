//! The RSNA-STR PE Detection (RSPECT) labels CSV.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{err, parse_binary, Table};
use crate::error::Result;

/// Exam-level 0/1 columns of RSPECT's `train.csv` besides `negative_exam_for_pe` (read when present).
pub const RSPECT_EXAM_COLUMNS: [&str; 13] = [
    "qa_motion",
    "qa_contrast",
    "flow_artifact",
    "rv_lv_ratio_gte_1",
    "rv_lv_ratio_lt_1",
    "leftsided_pe",
    "chronic_pe",
    "true_filling_defect_not_pe",
    "rightsided_pe",
    "acute_and_chronic_pe",
    "central_pe",
    "indeterminate",
    "pe_present_on_image",
];

/// One RSPECT exam (study with its CTPA series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RspectExam {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// `negative_exam_for_pe`.
    pub negative_exam_for_pe: bool,
    /// PE label as X-ray2CTPA defines it: `1 - negative_exam_for_pe` (indeterminate exams count as 1).
    pub label: u8,
    /// The other exam-level 0/1 columns present in the file. `pe_present_on_image`, an image-level
    /// column, is the maximum over the exam's images.
    pub columns: BTreeMap<String, u8>,
    /// Line of the exam's first row in the CSV.
    pub line: usize,
    /// `root/<StudyInstanceUID>/<SeriesInstanceUID>` when a root was given.
    pub series_dir: Option<PathBuf>,
}

/// Reads RSPECT labels: the per-image `train.csv` (one row per SOPInstanceUID, exam columns repeated)
/// or an exam-level CSV (one row per study, as X-ray2CTPA's split files).
///
/// Checks: required columns (`StudyInstanceUID`, `SeriesInstanceUID`, `negative_exam_for_pe`), 0/1
/// values, one series per study, exam-level values identical on every row of a study, no duplicate study
/// in an exam-level file, and, with `root`, that `root/<study>/<series>` exists. Exams are returned in
/// order of first appearance.
pub fn read_rspect_labels(path: impl AsRef<Path>, root: Option<&Path>) -> Result<Vec<RspectExam>> {
    let path = path.as_ref();
    let t = Table::read(path)?;
    let study = t.require(path, "StudyInstanceUID")?;
    let series = t.require(path, "SeriesInstanceUID")?;
    let negative = t.require(path, "negative_exam_for_pe")?;
    let image_level = t.columns.contains_key("SOPInstanceUID");
    let extra: Vec<(&str, usize)> = RSPECT_EXAM_COLUMNS
        .iter()
        .filter_map(|c| t.columns.get(*c).map(|&i| (*c, i)))
        .collect();
    let mut exams: Vec<RspectExam> = Vec::new();
    let mut by_study: HashMap<String, usize> = HashMap::new();
    for (line, f) in &t.rows {
        let line = *line;
        let study_uid = f[study].clone();
        let series_uid = f[series].clone();
        if study_uid.is_empty() || series_uid.is_empty() {
            return Err(err(
                path,
                line,
                "empty StudyInstanceUID or SeriesInstanceUID",
            ));
        }
        let neg = parse_binary(path, line, "negative_exam_for_pe", &f[negative])? == 1;
        let mut columns = BTreeMap::new();
        for &(name, i) in &extra {
            columns.insert(name.to_string(), parse_binary(path, line, name, &f[i])?);
        }
        match by_study.get(&study_uid) {
            Some(&e) if !image_level => {
                return Err(err(
                    path,
                    line,
                    format!(
                        "duplicate StudyInstanceUID {study_uid} (first on line {})",
                        exams[e].line
                    ),
                ));
            }
            Some(&e) => {
                let ex = &mut exams[e];
                if ex.series_uid != series_uid {
                    return Err(err(
                        path,
                        line,
                        format!(
                            "study {study_uid} has a second series {series_uid} (first: {})",
                            ex.series_uid
                        ),
                    ));
                }
                if ex.negative_exam_for_pe != neg {
                    return Err(err(
                        path,
                        line,
                        format!(
                            "negative_exam_for_pe differs from line {} of study {study_uid}",
                            ex.line
                        ),
                    ));
                }
                for (name, v) in columns {
                    let old = ex
                        .columns
                        .get_mut(&name)
                        .expect("same columns on every row");
                    if name == "pe_present_on_image" {
                        *old = (*old).max(v);
                    } else if *old != v {
                        return Err(err(
                            path,
                            line,
                            format!(
                                "exam-level `{name}` differs from line {} of study {study_uid}",
                                ex.line
                            ),
                        ));
                    }
                }
            }
            None => {
                let series_dir = match root {
                    Some(r) => {
                        let d = r.join(&study_uid).join(&series_uid);
                        if !d.is_dir() {
                            return Err(err(
                                path,
                                line,
                                format!("series folder {} does not exist", d.display()),
                            ));
                        }
                        Some(d)
                    }
                    None => None,
                };
                by_study.insert(study_uid.clone(), exams.len());
                exams.push(RspectExam {
                    study_uid,
                    series_uid,
                    negative_exam_for_pe: neg,
                    label: u8::from(!neg),
                    columns,
                    line,
                    series_dir,
                });
            }
        }
    }
    Ok(exams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("train.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn line_of(e: Error) -> usize {
        match e {
            Error::Manifest { row, .. } => row,
            other => panic!("expected a manifest error, got {other}"),
        }
    }

    #[test]
    fn reads_image_level_and_exam_level_files() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,pe_present_on_image,negative_exam_for_pe,central_pe,indeterminate\n\
             s1,r1,i1,0,0,1,0\ns1,r1,i2,1,0,1,0\ns2,r2,i3,0,1,0,0\n",
        );
        let exams = read_rspect_labels(&p, None).unwrap();
        assert_eq!(exams.len(), 2);
        assert_eq!(exams[0].label, 1);
        assert_eq!(exams[0].columns["pe_present_on_image"], 1);
        assert_eq!(exams[0].columns["central_pe"], 1);
        assert_eq!(exams[1].label, 0);
        let q = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\na,b,1\nc,d,0\n",
        );
        assert_eq!(read_rspect_labels(&q, None).unwrap()[1].label, 1);
    }

    #[test]
    fn errors_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        let dup = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\na,b,1\na,b,1\n",
        );
        assert_eq!(line_of(read_rspect_labels(&dup, None).unwrap_err()), 3);
        let bad = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\na,b,1\nc,d,2\n",
        );
        let e = read_rspect_labels(&bad, None).unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("negative_exam_for_pe"),
            "{e}"
        );
        let missing = write(d.path(), "StudyInstanceUID,negative_exam_for_pe\na,1\n");
        assert!(read_rspect_labels(&missing, None)
            .unwrap_err()
            .to_string()
            .contains("SeriesInstanceUID"));
        let incons = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,negative_exam_for_pe\ns,r,i1,0\ns,r,i2,1\n",
        );
        assert_eq!(line_of(read_rspect_labels(&incons, None).unwrap_err()), 3);
        let ok = write(
            d.path(),
            "StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\na,b,1\n",
        );
        assert_eq!(
            line_of(read_rspect_labels(&ok, Some(d.path())).unwrap_err()),
            2
        );
        std::fs::create_dir_all(d.path().join("a").join("b")).unwrap();
        assert!(read_rspect_labels(&ok, Some(d.path())).unwrap()[0]
            .series_dir
            .is_some());
    }
}
