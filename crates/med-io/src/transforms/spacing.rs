//! MONAI `Spacing`-style resampling of a volume to a target voxel size.

use crate::error::{Error, Result};
use crate::transforms::resize::{apply_axis, linear_taps, Taps};
use crate::volume::Volume;

/// Interpolation for [`Spacing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Trilinear (MONAI/torch `mode="bilinear"` on a 3D grid), border padding.
    #[default]
    Linear,
    /// Nearest neighbour (for masks), ties to even as `grid_sample` does.
    Nearest,
}

/// MONAI `Spacing(pixdim, mode, padding_mode="border", scale_extent=False)`: resamples to voxel size
/// `pixdim` (mm) along the volume's own axes (no rotation).
///
/// Output size per axis is `round((n - 1) * spacing / pixdim + 1)` (round half to even, as numpy);
/// voxel 0 keeps its physical position, so output voxel `o` samples input index
/// `o * pixdim / spacing`. A non-positive entry of `pixdim` keeps that axis's spacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spacing {
    /// Target voxel size in mm along `(i, j, k)`.
    pub pixdim: [f64; 3],
    /// Interpolation.
    pub mode: Interpolation,
}

impl Spacing {
    /// Isotropic `mm` spacing with trilinear interpolation (the paper uses 1 mm).
    pub fn isotropic(mm: f64) -> Self {
        Self {
            pixdim: [mm; 3],
            mode: Interpolation::Linear,
        }
    }

    /// Output dimensions for an input of `dims` at `spacing`.
    pub fn output_dims(&self, dims: [usize; 3], spacing: [f64; 3]) -> Result<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let p = self.target(a, spacing);
            if !p.is_finite() {
                return Err(Error::Param {
                    name: "pixdim",
                    reason: format!("{:?} is not finite", self.pixdim),
                });
            }
            let n = ((dims[a] - 1) as f64 * spacing[a] / p + 1.0).round_ties_even();
            if !(1.0..=1e6).contains(&n) {
                return Err(Error::Param {
                    name: "pixdim",
                    reason: format!("would give {n} voxels on axis {a}"),
                });
            }
            out[a] = n as usize;
        }
        Ok(out)
    }

    fn target(&self, axis: usize, spacing: [f64; 3]) -> f64 {
        if self.pixdim[axis] > 0.0 {
            self.pixdim[axis]
        } else {
            spacing[axis]
        }
    }

    /// Resamples `volume`.
    pub fn apply(&self, volume: &Volume) -> Result<Volume> {
        let sp = volume.spacing();
        let out_dims = self.output_dims(volume.dims(), sp)?;
        let mut data = std::borrow::Cow::Borrowed(volume.data());
        let mut dims = volume.dims();
        for a in 0..3 {
            let n = dims[a];
            let ratio = self.target(a, sp) / sp[a];
            let taps: Taps = (0..out_dims[a])
                .map(|o| {
                    let src = o as f64 * ratio;
                    match self.mode {
                        Interpolation::Linear => linear_taps(src, n),
                        Interpolation::Nearest => {
                            vec![(
                                src.round_ties_even().clamp(0.0, (n - 1) as f64) as usize,
                                1.0,
                            )]
                        }
                    }
                })
                .collect();
            let (d, nd) = apply_axis(&data, dims, a, &taps);
            data = std::borrow::Cow::Owned(d);
            dims = nd;
        }
        let mut g = *volume.geometry();
        for (a, s) in g.spacing.iter_mut().enumerate() {
            *s = self.target(a, sp);
        }
        let mut v = Volume::new(data.into_owned(), dims, g)?;
        v.meta = volume.meta.clone();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    #[test]
    fn halving_spacing_interpolates_midpoints() {
        let v = Volume::new(
            vec![0.0, 2.0, 4.0],
            [3, 1, 1],
            Geometry::with_spacing([2.0, 1.0, 1.0]),
        )
        .unwrap();
        let r = Spacing::isotropic(1.0).apply(&v).unwrap();
        assert_eq!(r.dims(), [5, 1, 1]);
        assert_eq!(r.data(), &[0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(r.spacing(), [1.0; 3]);
    }
}
