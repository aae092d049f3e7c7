//! DICOM series reading: a folder of slices to one checked volume.
//!
//! dicom-rs reads files, not series. This reader groups a folder's files by SeriesInstanceUID,
//! orders slices by ImagePositionPatient projected on the slice normal (never by file name or
//! InstanceNumber), derives the slice spacing from positions (not SliceThickness), and refuses a
//! series whose slices disagree (orientation, size, pixel spacing, in-plane position, uneven
//! spacing or a missing slice), naming the offending file.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::dicom_io::{decode_stored, normal, open_dicom, open_dicom_header, DicomHeader};
use crate::error::{Error, Result};
use crate::volume::{Geometry, Intensity, Volume, VolumeMeta};

/// Options of [`read_dicom_series_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOptions {
    /// Which series to read; `None` reads the series with the most slices.
    pub series_uid: Option<String>,
    /// Allowed deviation of a slice gap from the median gap, as a fraction of the median
    /// (default 0.1: a 2.5 mm series accepts gaps of 2.25..2.75 mm).
    pub spacing_tolerance: f64,
    /// Show a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

impl Default for SeriesOptions {
    fn default() -> Self {
        Self {
            series_uid: None,
            spacing_tolerance: 0.1,
            progress: true,
        }
    }
}

/// Reads the largest series in `dir` with default options; see [`read_dicom_series_with`].
pub fn read_dicom_series(dir: impl AsRef<Path>) -> Result<Volume> {
    read_dicom_series_with(dir, &SeriesOptions::default())
}

fn has_dicm_marker(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
        && crate::dicom_io::has_preamble(&b)
}

/// Series of a folder → files with their headers.
pub type SeriesMap = BTreeMap<String, Vec<(PathBuf, DicomHeader)>>;

/// Lists the series of a folder: SeriesInstanceUID → files (non-DICOM files and DICOM objects
/// without pixel data, such as DICOMDIR or reports, are skipped). Reads headers only.
pub fn list_series(dir: impl AsRef<Path>) -> Result<SeriesMap> {
    Ok(scan(dir.as_ref(), false)?.0)
}

/// Scans a folder in parallel. With `full`, each file is read and parsed once, pixel data
/// included, and the parsed objects are returned for decoding (one pass over the disk).
fn scan(dir: &Path, full: bool) -> Result<(SeriesMap, HashMap<PathBuf, DefaultDicomObject>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    files.retain(|p| p.is_file());
    files.sort();
    type Scanned = Option<(PathBuf, DicomHeader, Option<DefaultDicomObject>)>;
    let found: Vec<Scanned> = files
        .par_iter()
        .map(|p| {
            if !has_dicm_marker(p) {
                return Ok(None);
            }
            let obj = if full {
                open_dicom(p)?
            } else {
                open_dicom_header(p)?
            };
            if obj.get(tags::ROWS).is_none() {
                return Ok(None);
            }
            let h = DicomHeader::from_object(&obj, p)?;
            Ok(Some((p.clone(), h, full.then_some(obj))))
        })
        .collect::<Result<_>>()?;
    let mut series = SeriesMap::new();
    let mut objects = HashMap::new();
    for (p, h, obj) in found.into_iter().flatten() {
        if let Some(o) = obj {
            objects.insert(p.clone(), o);
        }
        series
            .entry(h.series_uid.clone().unwrap_or_default())
            .or_default()
            .push((p, h));
    }
    Ok((series, objects))
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Reads one series of a folder of DICOM slices into a volume of stored values.
///
/// The result's geometry: origin = position of the first slice along the normal, direction
/// columns = (row direction, column direction, normal), spacing = (column spacing, row spacing,
/// median gap between positions). When all slices share slope/intercept the values stay stored
/// values with the rescale in `meta`; otherwise each slice is rescaled on reading and the volume is
/// marked [`Intensity::Hounsfield`] (CT) with slope 1, intercept 0.
pub fn read_dicom_series_with(dir: impl AsRef<Path>, options: &SeriesOptions) -> Result<Volume> {
    let dir = dir.as_ref();
    let (mut all, objects) = scan(dir, true)?;
    if all.is_empty() {
        return Err(Error::series(dir, "no DICOM image files in this folder"));
    }
    let (uid, mut slices) = match &options.series_uid {
        Some(u) => {
            let s = all.remove(u).ok_or_else(|| {
                Error::series(
                    dir,
                    format!(
                        "no series {u}; present: {:?}",
                        all.keys().collect::<Vec<_>>()
                    ),
                )
            })?;
            (u.clone(), s)
        }
        None => {
            let best = all
                .iter()
                .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
                .map(|(k, _)| k.clone())
                .expect("non-empty");
            let s = all.remove(&best).expect("key exists");
            (best, s)
        }
    };
    let (first_path, first) = slices[0].clone();
    let (row, col) = first.directions();
    let n = normal(row, col);
    for (p, h) in &slices {
        if h.frames != 1 {
            return Err(Error::series(
                p,
                format!(
                    "multi-frame file ({} frames) inside a slice series",
                    h.frames
                ),
            ));
        }
        if h.position.is_none() {
            return Err(Error::series(
                p,
                "no ImagePositionPatient: cannot place the slice",
            ));
        }
        let (r, c) = h.directions();
        let dev = (0..3)
            .map(|a| (r[a] - row[a]).abs().max((c[a] - col[a]).abs()))
            .fold(0.0, f64::max);
        if dev > 1e-3 {
            return Err(Error::series(
                p,
                format!(
                    "orientation {:?} differs from {:?} of {}",
                    h.orientation,
                    first.orientation,
                    first_path.display()
                ),
            ));
        }
        if (h.rows, h.columns) != (first.rows, first.columns) {
            return Err(Error::series(
                p,
                format!(
                    "{}x{} pixels, {} has {}x{}",
                    h.rows,
                    h.columns,
                    first_path.display(),
                    first.rows,
                    first.columns
                ),
            ));
        }
        let (a, b) = (
            h.pixel_spacing.unwrap_or([1.0; 2]),
            first.pixel_spacing.unwrap_or([1.0; 2]),
        );
        if (a[0] - b[0]).abs() > 1e-3 || (a[1] - b[1]).abs() > 1e-3 {
            return Err(Error::series(
                p,
                format!("pixel spacing {a:?} differs from {b:?}"),
            ));
        }
    }
    let pos = |h: &DicomHeader| h.position.unwrap_or([0.0; 3]);
    slices.sort_by(|a, b| {
        dot(pos(&a.1), n)
            .total_cmp(&dot(pos(&b.1), n))
            .then_with(|| a.0.cmp(&b.0))
    });
    // Files at the same position (duplicates): keep the first by file name.
    slices.dedup_by(|b, a| (dot(pos(&a.1), n) - dot(pos(&b.1), n)).abs() < 1e-3);
    if slices.len() < 2 {
        return Err(Error::series(
            &slices[0].0,
            "a series needs at least two slices at distinct positions to derive the slice spacing",
        ));
    }
    let z: Vec<f64> = slices.iter().map(|s| dot(pos(&s.1), n)).collect();
    let mut gaps: Vec<f64> = z.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    for (k, g) in gaps.iter_mut().enumerate() {
        if (*g - median).abs() > options.spacing_tolerance * median {
            let what = if *g > 1.5 * median {
                "a missing slice"
            } else {
                "uneven slice spacing"
            };
            return Err(Error::series(
                &slices[k + 1].0,
                format!(
                    "{what}: gap of {g:.4} mm from {} (median gap {median:.4} mm)",
                    slices[k]
                        .0
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                ),
            ));
        }
    }
    // Slices must stack along the normal, not drift sideways (sheared / tilted acquisitions).
    let p0 = pos(&slices[0].1);
    for (k, (p, h)) in slices.iter().enumerate() {
        let q = pos(h);
        let expect = [
            p0[0] + n[0] * (z[k] - z[0]),
            p0[1] + n[1] * (z[k] - z[0]),
            p0[2] + n[2] * (z[k] - z[0]),
        ];
        let off =
            ((q[0] - expect[0]).powi(2) + (q[1] - expect[1]).powi(2) + (q[2] - expect[2]).powi(2))
                .sqrt();
        if off > 0.01 * median.max(1.0) + 1e-3 {
            return Err(Error::series(
                p,
                format!("position {q:?} is {off:.3} mm off the slice normal through the first slice (gantry tilt?)"),
            ));
        }
    }
    let bar = if options.progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(slices.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} slices")
                .expect("static template"),
        );
        b.set_message("reading series");
        b
    } else {
        ProgressBar::hidden()
    };
    let same_rescale = slices.iter().all(|(_, h)| {
        h.rescale_slope == first.rescale_slope && h.rescale_intercept == first.rescale_intercept
    });
    let plane = first.rows * first.columns;
    let mut data = vec![0.0f32; plane * slices.len()];
    data.par_chunks_mut(plane)
        .zip(slices.par_iter())
        .try_for_each(|(dst, (p, _))| -> Result<()> {
            let obj = objects
                .get(p)
                .ok_or_else(|| Error::series(p, "file vanished during the scan"))?;
            let h = DicomHeader::from_object(obj, p)?;
            let v = decode_stored(obj, &h, p)?;
            if same_rescale {
                dst.copy_from_slice(&v);
            } else {
                let (s, b) = (h.rescale_slope, h.rescale_intercept);
                dst.iter_mut()
                    .zip(&v)
                    .for_each(|(d, x)| *d = (*x as f64 * s + b) as f32);
            }
            bar.inc(1);
            Ok(())
        })?;
    bar.finish_and_clear();
    let ps = first.pixel_spacing.unwrap_or([1.0; 2]);
    let geometry = Geometry {
        spacing: [ps[1], ps[0], median],
        origin: pos(&slices[0].1),
        direction: [
            [row[0], col[0], n[0]],
            [row[1], col[1], n[1]],
            [row[2], col[2], n[2]],
        ],
    };
    geometry
        .validate()
        .map_err(|e| Error::series(&first_path, e.to_string()))?;
    let mut v = Volume::new(data, [first.columns, first.rows, slices.len()], geometry)?;
    v.meta = VolumeMeta {
        modality: first.modality.clone(),
        rescale_slope: if same_rescale {
            first.rescale_slope
        } else {
            1.0
        },
        rescale_intercept: if same_rescale {
            first.rescale_intercept
        } else {
            0.0
        },
        intensity: if same_rescale {
            Intensity::Raw
        } else if first.modality.as_deref() == Some("CT") {
            Intensity::Hounsfield
        } else {
            Intensity::Raw
        },
        series_uid: Some(uid).filter(|u| !u.is_empty()),
    };
    Ok(v)
}
