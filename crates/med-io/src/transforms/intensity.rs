//! Intensity transforms: Hounsfield conversion and MONAI's `ScaleIntensityRange` windowing.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::volume::{Intensity, Volume};

/// Converts stored values to Hounsfield units with the volume's own rescale slope/intercept
/// (`meta.rescale_slope`, `meta.rescale_intercept`, as the DICOM reader records them).
///
/// Idempotent: a volume already in [`Intensity::Hounsfield`] is returned unchanged. A
/// [`Intensity::Normalized`] volume is an error (its values are no longer stored values).
/// `padding`: a stored value marking voxels outside the scanner's field of view (RSPECT uses
/// −2000); such voxels are set to 0 before rescaling, as X-ray2CTPA does.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HounsfieldUnits {
    /// Stored value marking outside-the-field-of-view voxels, if any.
    pub padding: Option<f32>,
}

impl HounsfieldUnits {
    /// Applies the conversion.
    pub fn apply(&self, volume: &Volume) -> Result<Volume> {
        match volume.meta.intensity {
            Intensity::Hounsfield => return Ok(volume.clone()),
            Intensity::Normalized => {
                return Err(Error::Param {
                    name: "volume",
                    reason:
                        "values are already normalised; Hounsfield conversion needs stored values"
                            .into(),
                })
            }
            Intensity::Raw => {}
        }
        let (s, b) = (volume.meta.rescale_slope, volume.meta.rescale_intercept);
        if !(s.is_finite() && b.is_finite() && s != 0.0) {
            return Err(Error::Param {
                name: "rescale_slope",
                reason: format!("unusable rescale {s} / {b}"),
            });
        }
        let pad = self.padding;
        let data: Vec<f32> = volume
            .data()
            .par_iter()
            .map(|&v| {
                let raw = if pad == Some(v) { 0.0 } else { v as f64 };
                (raw * s + b) as f32
            })
            .collect();
        let mut out = volume.with_data(data)?;
        out.meta.intensity = Intensity::Hounsfield;
        Ok(out)
    }
}

/// MONAI `ScaleIntensityRange`: `y = (x - a_min) / (a_max - a_min)`, then, when `b_min`/`b_max`
/// are given, `y * (b_max - b_min) + b_min`, then clipped to `[b_min, b_max]` when `clip`.
///
/// The paper's CT window is [`ScaleIntensityRange::window`]`(-100.0, 900.0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleIntensityRange {
    /// Input value mapped to `b_min` (or 0).
    pub a_min: f32,
    /// Input value mapped to `b_max` (or 1).
    pub a_max: f32,
    /// Output value of `a_min`; `None` leaves the (0..1) scale.
    pub b_min: Option<f32>,
    /// Output value of `a_max`; `None` leaves the (0..1) scale.
    pub b_max: Option<f32>,
    /// Clip to `[b_min, b_max]` (MONAI's default is `false`).
    pub clip: bool,
}

impl ScaleIntensityRange {
    /// A clipped window `[lo, hi]` onto `[0, 1]`.
    pub fn window(lo: f32, hi: f32) -> Self {
        Self {
            a_min: lo,
            a_max: hi,
            b_min: Some(0.0),
            b_max: Some(1.0),
            clip: true,
        }
    }

    fn check(&self) -> Result<()> {
        let fin = [Some(self.a_min), Some(self.a_max), self.b_min, self.b_max]
            .iter()
            .flatten()
            .all(|v| v.is_finite());
        if !fin || self.a_max == self.a_min {
            return Err(Error::Param {
                name: "a_min/a_max",
                reason: format!("need finite values with a_min != a_max, got {self:?}"),
            });
        }
        if self.b_min.is_some() != self.b_max.is_some() {
            return Err(Error::Param {
                name: "b_min/b_max",
                reason: "give both or neither".into(),
            });
        }
        Ok(())
    }

    /// Applies the mapping in place to raw values.
    pub fn apply_slice(&self, values: &mut [f32]) -> Result<()> {
        self.check()?;
        let (a0, a1) = (self.a_min as f64, self.a_max as f64);
        let (b0, b1, scaled) = match (self.b_min, self.b_max) {
            (Some(b0), Some(b1)) => (b0 as f64, b1 as f64, true),
            _ => (0.0, 1.0, false),
        };
        let (lo, hi) = (b0.min(b1), b0.max(b1));
        let clip = self.clip && scaled;
        values.par_chunks_mut(1 << 16).for_each(|c| {
            for v in c {
                let mut y = (*v as f64 - a0) / (a1 - a0);
                if scaled {
                    y = y * (b1 - b0) + b0;
                }
                if clip {
                    y = y.clamp(lo, hi);
                }
                *v = y as f32;
            }
        });
        Ok(())
    }

    /// Applies the mapping to a volume; the result is marked [`Intensity::Normalized`].
    pub fn apply(&self, volume: &Volume) -> Result<Volume> {
        let mut out = volume.clone();
        self.apply_slice(out.data_mut())?;
        out.meta.intensity = Intensity::Normalized;
        Ok(out)
    }

    /// Applies the mapping to a 2D image.
    pub fn apply_image(&self, image: &Image2d) -> Result<Image2d> {
        let mut out = image.clone();
        self.apply_slice(out.data_mut())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    #[test]
    fn paper_window_matches_penet_formula() {
        let mut x = vec![-1000.0, -100.0, 0.0, 400.0, 900.0, 3000.0];
        ScaleIntensityRange::window(-100.0, 900.0)
            .apply_slice(&mut x)
            .unwrap();
        assert_eq!(x, vec![0.0, 0.0, 0.1, 0.5, 1.0, 1.0]);
        let mut y = vec![1.0f32];
        let r = ScaleIntensityRange {
            a_min: 0.0,
            a_max: 2.0,
            b_min: Some(-1.0),
            b_max: Some(1.0),
            clip: false,
        };
        r.apply_slice(&mut y).unwrap();
        assert_eq!(y, vec![0.0]);
        assert!(ScaleIntensityRange::window(1.0, 1.0)
            .apply_slice(&mut y)
            .is_err());
    }

    #[test]
    fn hounsfield_uses_rescale_and_padding() {
        let mut v = Volume::new(
            vec![-2000.0, 0.0, 1024.0, 2048.0],
            [4, 1, 1],
            Geometry::default(),
        )
        .unwrap();
        v.meta.rescale_intercept = -1024.0;
        let hu = HounsfieldUnits {
            padding: Some(-2000.0),
        }
        .apply(&v)
        .unwrap();
        assert_eq!(hu.data(), &[-1024.0, -1024.0, 0.0, 1024.0]);
        assert_eq!(hu.meta.intensity, Intensity::Hounsfield);
        assert_eq!(
            HounsfieldUnits::default().apply(&hu).unwrap().data(),
            hu.data()
        );
    }
}
