//! The 3D image type and its geometry.
//!
//! Conventions (the same as ITK/SimpleITK, so that geometry round-trips with the tools users know):
//! - A voxel has index `(i, j, k)`: `i` runs along image columns, `j` along rows, `k` across slices.
//! - `data` is stored with `i` fastest: `data[(k * ny + j) * nx + i]`. As a tensor the volume is
//!   `(nz, ny, nx)`, i.e. `(depth, height, width)`.
//! - `spacing`, `origin` and the columns of `direction` are given in `(i, j, k)` order, in millimetres,
//!   in DICOM patient coordinates (LPS: +x to the patient's left, +y posterior, +z head). NIfTI's RAS
//!   affine is converted to LPS on reading.
//! - The physical position of voxel `(i, j, k)` is `origin + direction * diag(spacing) * (i, j, k)`.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Position, voxel size and orientation of a volume in patient space (LPS, millimetres).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Voxel size along `(i, j, k)` in mm. Always finite and positive.
    pub spacing: [f64; 3],
    /// Physical position of voxel `(0, 0, 0)` in mm (LPS).
    pub origin: [f64; 3],
    /// Direction cosines, row-major: `direction[r][c]` is the `r`-th LPS component of the unit vector
    /// along voxel axis `c`. The identity means axes aligned with L, P, S.
    pub direction: [[f64; 3]; 3],
}

impl Default for Geometry {
    fn default() -> Self {
        Self::with_spacing([1.0; 3])
    }
}

impl Geometry {
    /// Axis-aligned geometry with the given spacing and the origin at zero.
    pub fn with_spacing(spacing: [f64; 3]) -> Self {
        Self {
            spacing,
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Checks that spacing is positive and finite and that the direction is orthonormal.
    pub fn validate(&self) -> Result<()> {
        if self.spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::Geometry(format!(
                "spacing must be finite and positive, got {:?}",
                self.spacing
            )));
        }
        if self.origin.iter().any(|o| !o.is_finite()) {
            return Err(Error::Geometry(format!(
                "origin must be finite, got {:?}",
                self.origin
            )));
        }
        for a in 0..3 {
            for b in 0..3 {
                let dot: f64 = (0..3)
                    .map(|r| self.direction[r][a] * self.direction[r][b])
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                if !dot.is_finite() || (dot - want).abs() > 1e-3 {
                    return Err(Error::Geometry(format!(
                        "direction cosines are not orthonormal: {:?}",
                        self.direction
                    )));
                }
            }
        }
        Ok(())
    }

    /// Physical (LPS, mm) position of a continuous voxel index.
    pub fn index_to_physical(&self, index: [f64; 3]) -> [f64; 3] {
        let mut p = self.origin;
        for (r, pr) in p.iter_mut().enumerate() {
            for c in 0..3 {
                *pr += self.direction[r][c] * self.spacing[c] * index[c];
            }
        }
        p
    }

    /// Continuous voxel index of a physical (LPS, mm) position.
    pub fn physical_to_index(&self, point: [f64; 3]) -> [f64; 3] {
        // The direction is orthonormal, so its inverse is its transpose.
        let d = [
            point[0] - self.origin[0],
            point[1] - self.origin[1],
            point[2] - self.origin[2],
        ];
        let mut idx = [0.0; 3];
        for (c, ic) in idx.iter_mut().enumerate() {
            let proj: f64 = (0..3).map(|r| self.direction[r][c] * d[r]).sum();
            *ic = proj / self.spacing[c];
        }
        idx
    }

    /// The 4x4 affine mapping `(i, j, k, 1)` to LPS millimetres.
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                a[r][c] = self.direction[r][c] * self.spacing[c];
            }
            a[r][3] = self.origin[r];
        }
        a[3][3] = 1.0;
        a
    }
}

/// What the voxel values of a volume mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Intensity {
    /// Stored values as read, before any rescale.
    #[default]
    Raw,
    /// Hounsfield units.
    Hounsfield,
    /// Values after windowing or normalisation; no physical unit any more.
    Normalized,
}

/// Facts about a volume's source that matter for processing. Holds no patient identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VolumeMeta {
    /// DICOM modality (`CT`, `MR`, ...) or `None` where the format does not say.
    pub modality: Option<String>,
    /// Rescale slope applied (or to apply) to stored values.
    pub rescale_slope: f64,
    /// Rescale intercept applied (or to apply) to stored values.
    pub rescale_intercept: f64,
    /// What the values currently mean.
    pub intensity: Intensity,
    /// SeriesInstanceUID (DICOM) or file stem: identifies the series, not the patient.
    pub series_uid: Option<String>,
}

/// A 3D scalar image with its geometry. See the module docs for axis conventions.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    data: Vec<f32>,
    dims: [usize; 3],
    geometry: Geometry,
    /// Source facts; free to update as transforms change the meaning of values.
    pub meta: VolumeMeta,
}

impl Volume {
    /// Builds a volume from `data` laid out `i` fastest, with `dims = [nx, ny, nz]`.
    ///
    /// Fails if a dimension is zero, the length does not match, or the geometry is invalid.
    pub fn new(data: Vec<f32>, dims: [usize; 3], geometry: Geometry) -> Result<Self> {
        if dims.contains(&0) {
            return Err(Error::Shape(format!(
                "volume dimensions must be non-zero, got {dims:?}"
            )));
        }
        let n = dims[0]
            .checked_mul(dims[1])
            .and_then(|v| v.checked_mul(dims[2]))
            .ok_or_else(|| Error::Shape(format!("volume dimensions overflow: {dims:?}")))?;
        if n != data.len() {
            return Err(Error::Shape(format!(
                "dimensions {dims:?} need {n} voxels, got {}",
                data.len()
            )));
        }
        geometry.validate()?;
        Ok(Self {
            data,
            dims,
            geometry,
            meta: VolumeMeta {
                rescale_slope: 1.0,
                ..Default::default()
            },
        })
    }

    /// A volume filled with `value`.
    pub fn filled(dims: [usize; 3], geometry: Geometry, value: f32) -> Result<Self> {
        let n = dims.iter().product();
        Self::new(vec![value; n], dims, geometry)
    }

    /// `[nx, ny, nz]`: columns, rows, slices.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// The geometry in patient space.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Replaces the geometry after checking it.
    pub fn set_geometry(&mut self, geometry: Geometry) -> Result<()> {
        geometry.validate()?;
        self.geometry = geometry;
        Ok(())
    }

    /// Voxel size along `(i, j, k)` in mm.
    pub fn spacing(&self) -> [f64; 3] {
        self.geometry.spacing
    }

    /// Voxel values, `i` fastest.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable voxel values, `i` fastest.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the volume and returns its voxel values.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Always false: a volume has at least one voxel.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Linear index of voxel `(i, j, k)`; no bounds check beyond the slice's own.
    #[inline]
    pub fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        (k * self.dims[1] + j) * self.dims[0] + i
    }

    /// Value of voxel `(i, j, k)`, or `None` outside the volume.
    #[inline]
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<f32> {
        if i < self.dims[0] && j < self.dims[1] && k < self.dims[2] {
            Some(self.data[self.offset(i, j, k)])
        } else {
            None
        }
    }

    /// Axial slice `k` as a row-major `ny x nx` slice of the data.
    pub fn slice(&self, k: usize) -> Option<&[f32]> {
        let n = self.dims[0] * self.dims[1];
        (k < self.dims[2]).then(|| &self.data[k * n..(k + 1) * n])
    }

    /// Physical extent `dims * spacing` along `(i, j, k)` in mm.
    pub fn extent_mm(&self) -> [f64; 3] {
        [
            self.dims[0] as f64 * self.geometry.spacing[0],
            self.dims[1] as f64 * self.geometry.spacing[1],
            self.dims[2] as f64 * self.geometry.spacing[2],
        ]
    }

    /// Minimum, maximum and mean of the voxel values (NaNs ignored; `None` if all are NaN).
    pub fn stats(&self) -> Option<(f32, f32, f64)> {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        let mut sum = 0.0f64;
        let mut n = 0usize;
        for &v in &self.data {
            if v.is_nan() {
                continue;
            }
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v as f64;
            n += 1;
        }
        (n > 0).then(|| (lo, hi, sum / n as f64))
    }

    /// The voxels as an f32 tensor of shape `(nz, ny, nx)` on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let [nx, ny, nz] = self.dims;
        Ok(Tensor::from_slice(&self.data, (nz, ny, nx), device)?)
    }

    /// Builds a volume from a tensor of shape `(nz, ny, nx)` (any float dtype, any device).
    pub fn from_tensor(tensor: &Tensor, geometry: Geometry) -> Result<Self> {
        let (nz, ny, nx) = tensor.dims3()?;
        let data = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Self::new(data, [nx, ny, nz], geometry)
    }

    /// A new volume with the same geometry and metadata and other voxel values.
    pub fn with_data(&self, data: Vec<f32>) -> Result<Self> {
        let mut v = Self::new(data, self.dims, self.geometry)?;
        v.meta = self.meta.clone();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_geometry() {
        assert!(matches!(
            Volume::new(vec![0.0; 6], [1, 2, 4], Geometry::default()),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            Volume::new(vec![], [0, 1, 1], Geometry::default()),
            Err(Error::Shape(_))
        ));
        let bad = Geometry::with_spacing([1.0, 0.0, 1.0]);
        assert!(matches!(
            Volume::new(vec![0.0], [1, 1, 1], bad),
            Err(Error::Geometry(_))
        ));
        let mut skew = Geometry::default();
        skew.direction[0][1] = 0.5;
        assert!(matches!(skew.validate(), Err(Error::Geometry(_))));
    }

    #[test]
    fn index_and_physical_round_trip() {
        let g = Geometry {
            spacing: [0.7, 0.8, 2.5],
            origin: [-100.0, 20.0, 300.0],
            // Axes permuted and flipped: still orthonormal.
            direction: [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        };
        g.validate().unwrap();
        let idx = [3.0, 4.5, 7.0];
        let p = g.index_to_physical(idx);
        assert!((p[0] - (-100.0 + 0.8 * 4.5)).abs() < 1e-12);
        assert!((p[1] - (20.0 - 0.7 * 3.0)).abs() < 1e-12);
        assert!((p[2] - (300.0 + 2.5 * 7.0)).abs() < 1e-12);
        let back = g.physical_to_index(p);
        for a in 0..3 {
            assert!((back[a] - idx[a]).abs() < 1e-9);
        }
    }

    #[test]
    fn layout_and_tensor_round_trip() {
        let dims = [4, 3, 2];
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let v = Volume::new(data, dims, Geometry::with_spacing([1.0, 2.0, 3.0])).unwrap();
        assert_eq!(v.get(1, 2, 1), Some(21.0));
        assert_eq!(v.get(1, 2, 1), Some(v.data()[v.offset(1, 2, 1)]));
        assert_eq!(v.get(4, 0, 0), None);
        assert_eq!(v.slice(1).unwrap()[0], 12.0);
        let t = v.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 4]);
        assert_eq!(
            t.get(1)
                .unwrap()
                .get(2)
                .unwrap()
                .get(1)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            21.0
        );
        let back = Volume::from_tensor(&t, *v.geometry()).unwrap();
        assert_eq!(back.data(), v.data());
        assert_eq!(v.stats(), Some((0.0, 23.0, 11.5)));
        assert_eq!(v.extent_mm(), [4.0, 6.0, 6.0]);
    }
}
