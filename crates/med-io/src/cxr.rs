//! Chest X-rays from DICOM (CR/DX): modality LUT, VOI LUT or window, MONOCHROME1 inversion.
//!
//! dicom-rs applies the modality LUT but neither the VOI transform to arrays nor the MONOCHROME1
//! inversion, so this module does both: the result is in `[0, 1]`, brighter = denser
//! (MONOCHROME2), ready for [`CxrPreprocess`](crate::preprocess::CxrPreprocess).

use std::path::Path;

use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, VoiLutFunction};

use crate::dicom_io::{decode_stored, parse_dicom_bytes, DicomHeader};
use crate::error::{Error, Result};
use crate::image2d::Image2d;

/// Which display transform [`read_cxr_dicom`] applied.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiApplied {
    /// A VOI LUT table from the VOI LUT Sequence.
    Table,
    /// A window (centre, width) with the named VOI LUT function.
    Window {
        /// Window centre.
        center: f64,
        /// Window width.
        width: f64,
        /// `LINEAR`, `LINEAR_EXACT` or `SIGMOID`.
        function: String,
    },
    /// No VOI in the file: min-max normalisation.
    MinMax,
}

/// DICOM PS3.3 C.11.2.1.2 VOI LUT functions onto `[0, 1]`.
pub fn apply_window(
    values: &mut [f32],
    center: f64,
    width: f64,
    function: VoiLutFunction,
) -> Result<()> {
    if !(center.is_finite() && width.is_finite())
        || width <= 0.0
        || (function == VoiLutFunction::Linear && width < 1.0)
    {
        return Err(Error::Param {
            name: "window",
            reason: format!("unusable centre/width {center}/{width}"),
        });
    }
    for v in values.iter_mut() {
        let x = *v as f64;
        let y = match function {
            VoiLutFunction::Linear => {
                let lo = center - 0.5 - (width - 1.0) / 2.0;
                let hi = center - 0.5 + (width - 1.0) / 2.0;
                if x <= lo {
                    0.0
                } else if x > hi {
                    1.0
                } else {
                    (x - (center - 0.5)) / (width - 1.0) + 0.5
                }
            }
            VoiLutFunction::LinearExact => ((x - center) / width + 0.5).clamp(0.0, 1.0),
            VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
        };
        *v = y as f32;
    }
    Ok(())
}

fn min_max(values: &mut [f32]) {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let r = if hi > lo { hi - lo } else { 1.0 };
    values.iter_mut().for_each(|v| *v = (*v - lo) / r);
}

fn apply_voi(
    obj: &DefaultDicomObject,
    h: &DicomHeader,
    values: &mut [f32],
    path: &Path,
) -> Result<VoiApplied> {
    // Only attributes are needed here; the pixels were decoded (guarded) by `decode_stored`.
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| Error::dicom(path, "pixel data decoder failed on corrupt data"))?
            .map_err(|e| {
                Error::dicom(
                    path,
                    format!("cannot decode pixel data ({}): {e}", h.transfer_syntax),
                )
            })?;
    if let Ok(Some(luts)) = decoded.voi_lut_sequence() {
        if let Some(lut) = luts.first().filter(|l| !l.data.is_empty()) {
            let max = ((1u64 << lut.bits_stored.clamp(1, 16)) - 1) as f32;
            let n = lut.data.len() as i64;
            for v in values.iter_mut() {
                let idx =
                    ((v.round() as i64) - lut.min_pixel_value as i64).clamp(0, n - 1) as usize;
                *v = lut.data[idx] as f32 / max;
            }
            return Ok(VoiApplied::Table);
        }
    }
    if let Some((center, width)) = h.window.filter(|(_, w)| *w >= 1.0) {
        let function = match decoded.voi_lut_function() {
            Ok(Some(f)) => f.first().copied().unwrap_or_default(),
            _ => VoiLutFunction::Linear,
        };
        apply_window(values, center, width, function)
            .map_err(|e| Error::dicom(path, e.to_string()))?;
        let name = match function {
            VoiLutFunction::Linear => "LINEAR",
            VoiLutFunction::LinearExact => "LINEAR_EXACT",
            VoiLutFunction::Sigmoid => "SIGMOID",
        };
        return Ok(VoiApplied::Window {
            center,
            width,
            function: name.into(),
        });
    }
    min_max(values);
    Ok(VoiApplied::MinMax)
}

/// Reads a radiograph from DICOM as a `[0, 1]` MONOCHROME2 image: stored values → modality LUT
/// (slope/intercept) → VOI LUT table, or window, or min-max → inverted if MONOCHROME1.
/// Pixel spacing comes from PixelSpacing or ImagerPixelSpacing.
pub fn read_cxr_dicom(path: impl AsRef<Path>) -> Result<(Image2d, VoiApplied)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_cxr_dicom_bytes(&bytes, path)
}

/// [`read_cxr_dicom`] on a file held in memory (`path` only labels errors).
pub fn read_cxr_dicom_bytes(bytes: &[u8], path: &Path) -> Result<(Image2d, VoiApplied)> {
    let obj = parse_dicom_bytes(bytes, path)?;
    let h = DicomHeader::from_object(&obj, path)?;
    if !h.photometric.starts_with("MONOCHROME") {
        return Err(Error::dicom(
            path,
            format!(
                "photometric interpretation {} is not greyscale",
                h.photometric
            ),
        ));
    }
    let mut v = decode_stored(&obj, &h, path)?;
    v.truncate(h.rows * h.columns);
    let (s, b) = (h.rescale_slope, h.rescale_intercept);
    v.iter_mut().for_each(|x| *x = (*x as f64 * s + b) as f32);
    let applied = apply_voi(&obj, &h, &mut v, path)?;
    if h.photometric == "MONOCHROME1" {
        v.iter_mut().for_each(|x| *x = 1.0 - *x);
    }
    let mut img = Image2d::new(v, h.columns, h.rows)?;
    img.spacing = h.pixel_spacing.map(|[r, c]| [c, r]);
    Ok((img, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_window_follows_the_standard() {
        // Centre 2048, width 4096 on 12-bit data: 0 -> 0, 4095 -> ~1, 2047.5 -> 0.5.
        let mut v = vec![-10.0, 0.0, 2047.5, 4095.0, 5000.0];
        apply_window(&mut v, 2048.0, 4096.0, VoiLutFunction::Linear).unwrap();
        assert_eq!(v[0], 0.0);
        assert!((v[2] - 0.5).abs() < 1e-6);
        assert!(v[3] > 0.999 && v[4] == 1.0);
        let mut s = vec![40.0];
        apply_window(&mut s, 40.0, 400.0, VoiLutFunction::Sigmoid).unwrap();
        assert!((s[0] - 0.5).abs() < 1e-6);
        assert!(apply_window(&mut s, 40.0, 0.0, VoiLutFunction::LinearExact).is_err());
    }
}
