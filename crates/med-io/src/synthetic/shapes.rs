//! Approximate signed distances of the primitives the phantom is painted from, and the painter.
//!
//! Shapes are blended with a partial-volume weight `clamp(0.5 - distance / voxel, 0, 1)`, so a vessel
//! thinner than a voxel still raises the voxel's HU in proportion, as it would in a real scanner.

/// A point or vector in LPS millimetres.
pub(crate) type P3 = [f64; 3];

pub(crate) fn sub(a: P3, b: P3) -> P3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn dot(a: P3, b: P3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn lerp3(a: P3, b: P3, t: f64) -> P3 {
    [
        a[0] + t * (b[0] - a[0]),
        a[1] + t * (b[1] - a[1]),
        a[2] + t * (b[2] - a[2]),
    ]
}

/// A shape with an approximate signed distance (negative inside) and a bounding box.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Axis-aligned ellipsoid: centre, semi-axes.
    Ellipsoid { c: P3, r: P3 },
    /// Elliptic cylinder along z: centre (x, y), semi-axes (a, b), z range.
    Cylinder {
        c: [f64; 2],
        r: [f64; 2],
        z: [f64; 2],
    },
    /// Tapered tube from `a` (radius `ra`) to `b` (radius `rb`).
    Tube { a: P3, b: P3, ra: f64, rb: f64 },
    /// Rib: elliptic ring of semi-axes `r` around the z axis, at height `z0 + slope * y`, tube radius `t`.
    Ring {
        r: [f64; 2],
        z0: f64,
        slope: f64,
        t: f64,
    },
}

impl Shape {
    pub(crate) fn distance(&self, p: P3) -> f64 {
        match *self {
            Shape::Ellipsoid { c, r } => {
                let q = sub(p, c);
                let k =
                    ((q[0] / r[0]).powi(2) + (q[1] / r[1]).powi(2) + (q[2] / r[2]).powi(2)).sqrt();
                (k - 1.0) * r[0].min(r[1]).min(r[2])
            }
            Shape::Cylinder { c, r, z } => {
                let k = (((p[0] - c[0]) / r[0]).powi(2) + ((p[1] - c[1]) / r[1]).powi(2)).sqrt();
                let radial = (k - 1.0) * r[0].min(r[1]);
                let axial = (z[0] - p[2]).max(p[2] - z[1]);
                radial.max(axial)
            }
            Shape::Tube { a, b, ra, rb } => {
                let ab = sub(b, a);
                let t = (dot(sub(p, a), ab) / dot(ab, ab).max(1e-12)).clamp(0.0, 1.0);
                let q = sub(p, lerp3(a, b, t));
                dot(q, q).sqrt() - (ra + t * (rb - ra))
            }
            Shape::Ring { r, z0, slope, t } => {
                let k = ((p[0] / r[0]).powi(2) + (p[1] / r[1]).powi(2)).sqrt();
                let radial = (k - 1.0) * r[0].min(r[1]);
                let axial = p[2] - (z0 + slope * p[1]);
                (radial * radial + axial * axial).sqrt() - t
            }
        }
    }

    /// Bounding box `(lo, hi)` in mm.
    pub(crate) fn bounds(&self) -> (P3, P3) {
        match *self {
            Shape::Ellipsoid { c, r } => (sub(c, r), [c[0] + r[0], c[1] + r[1], c[2] + r[2]]),
            Shape::Cylinder { c, r, z } => (
                [c[0] - r[0], c[1] - r[1], z[0]],
                [c[0] + r[0], c[1] + r[1], z[1]],
            ),
            Shape::Tube { a, b, ra, rb } => {
                let m = ra.max(rb);
                let lo = [a[0].min(b[0]) - m, a[1].min(b[1]) - m, a[2].min(b[2]) - m];
                let hi = [a[0].max(b[0]) + m, a[1].max(b[1]) + m, a[2].max(b[2]) + m];
                (lo, hi)
            }
            Shape::Ring { r, z0, slope, t } => {
                let dz = slope.abs() * (r[1] + t) + t;
                (
                    [-r[0] - t, -r[1] - t, z0 - dz],
                    [r[0] + t, r[1] + t, z0 + dz],
                )
            }
        }
    }
}

/// Partial-volume weight of a voxel whose centre lies `d` mm from the surface.
#[inline]
pub(crate) fn coverage(d: f64, voxel: f64) -> f64 {
    (0.5 - d / voxel).clamp(0.0, 1.0)
}
