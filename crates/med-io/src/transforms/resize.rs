//! Resizing and resampling along voxel axes with named, reference-matched interpolation methods.
//!
//! Every method here is separable: the output is a weighted sum of input samples along each axis
//! in turn, with per-output "taps" (input index, weight). That makes 2D and 3D resizing one code
//! path, and lets each axis run in parallel over slices with rayon.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::volume::Volume;

/// How to compute output samples when resizing. Each name says which reference it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeMethod {
    /// MONAI `Resize(mode="area")` = `torch.nn.functional.interpolate(mode="area")` = adaptive
    /// average pooling: output `o` averages inputs `floor(o*n/m) .. ceil((o+1)*n/m)`.
    #[default]
    Area,
    /// `torch.nn.functional.interpolate(mode="bilinear"/"trilinear", align_corners=False)` without
    /// antialiasing (X-ray2CTPA's CXR resize; MONAI `Resize(mode="bilinear")`).
    Linear,
    /// torchvision `Resize` / `interpolate(..., antialias=True)` bilinear: a triangle filter
    /// widened by the down-scaling factor (as Pillow does).
    LinearAntialias,
    /// `torch.nn.functional.interpolate(mode="nearest")`: input `floor(o * n / m)`.
    Nearest,
}

/// Per-output-index list of (input index, weight).
pub(crate) type Taps = Vec<Vec<(usize, f32)>>;

/// Taps that resize `n` samples to `m` with `method`.
pub(crate) fn resize_taps(n: usize, m: usize, method: ResizeMethod) -> Taps {
    let scale = n as f64 / m as f64;
    (0..m)
        .map(|o| match method {
            ResizeMethod::Area => {
                let start = (o * n) / m;
                let end = ((o + 1) * n).div_ceil(m);
                let w = 1.0 / (end - start) as f32;
                (start..end).map(|i| (i, w)).collect()
            }
            ResizeMethod::Nearest => {
                let i = ((o as f64 * scale).floor() as usize).min(n - 1);
                vec![(i, 1.0)]
            }
            ResizeMethod::Linear => {
                let src = (scale * (o as f64 + 0.5) - 0.5).max(0.0);
                linear_taps(src, n)
            }
            ResizeMethod::LinearAntialias => {
                let support = if scale >= 1.0 { scale } else { 1.0 };
                let inv = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
                let center = scale * (o as f64 + 0.5);
                // `as i64` truncates toward zero, as the C code does.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64)
                    .min(n as i64)
                    .max(xmin as i64 + 1) as usize;
                let mut taps: Vec<(usize, f32)> = (xmin..xmax)
                    .map(|i| {
                        let x = (i as f64 - center + 0.5) * inv;
                        (i.min(n - 1), (1.0 - x.abs()).max(0.0) as f32)
                    })
                    .collect();
                let total: f32 = taps.iter().map(|t| t.1).sum();
                if total > 0.0 {
                    taps.iter_mut().for_each(|t| t.1 /= total);
                }
                taps.retain(|t| t.1 != 0.0);
                taps
            }
        })
        .collect()
}

/// Two-tap linear interpolation at continuous index `src` (clamped to the border).
pub(crate) fn linear_taps(src: f64, n: usize) -> Vec<(usize, f32)> {
    let src = src.clamp(0.0, (n - 1) as f64);
    let i0 = src.floor() as usize;
    let i1 = (i0 + 1).min(n - 1);
    let l = (src - i0 as f64) as f32;
    if i1 == i0 || l == 0.0 {
        vec![(i0, 1.0)]
    } else {
        vec![(i0, 1.0 - l), (i1, l)]
    }
}

fn is_identity(taps: &Taps, n: usize) -> bool {
    taps.len() == n
        && taps
            .iter()
            .enumerate()
            .all(|(o, t)| t.len() == 1 && t[0].0 == o && t[0].1 == 1.0)
}

/// Applies `taps` along `axis` (0 = i, 1 = j, 2 = k) of i-fastest data with `dims`.
pub(crate) fn apply_axis(
    data: &[f32],
    dims: [usize; 3],
    axis: usize,
    taps: &Taps,
) -> (Vec<f32>, [usize; 3]) {
    let [nx, ny, nz] = dims;
    let mut out_dims = dims;
    out_dims[axis] = taps.len();
    if is_identity(taps, dims[axis]) {
        return (data.to_vec(), dims);
    }
    let [mx, my, _mz] = out_dims;
    let mut out = vec![0.0f32; out_dims.iter().product()];
    match axis {
        0 => {
            out.par_chunks_mut(mx)
                .zip(data.par_chunks(nx))
                .for_each(|(o, row)| {
                    for (dst, t) in o.iter_mut().zip(taps) {
                        *dst = t.iter().map(|&(i, w)| row[i] * w).sum();
                    }
                });
        }
        1 => {
            out.par_chunks_mut(nx * my)
                .zip(data.par_chunks(nx * ny))
                .for_each(|(o, slice)| {
                    for (oj, t) in taps.iter().enumerate() {
                        let dst = &mut o[oj * nx..(oj + 1) * nx];
                        for &(j, w) in t {
                            let src = &slice[j * nx..(j + 1) * nx];
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += w * s);
                        }
                    }
                });
        }
        _ => {
            let plane = nx * ny;
            out.par_chunks_mut(plane)
                .zip(taps.par_iter())
                .for_each(|(o, t)| {
                    for &(k, w) in t {
                        let src = &data[k * plane..(k + 1) * plane];
                        o.iter_mut().zip(src).for_each(|(d, s)| *d += w * s);
                    }
                });
            let _ = nz;
        }
    }
    (out, out_dims)
}

fn check_size(name: &'static str, size: &[usize]) -> Result<()> {
    if size.contains(&0) {
        return Err(Error::Param {
            name,
            reason: format!("sizes must be non-zero, got {size:?}"),
        });
    }
    Ok(())
}

/// Position of output sample 0 in input index units (for geometry updates).
fn first_sample_src(n: usize, m: usize, method: ResizeMethod) -> f64 {
    let scale = n as f64 / m as f64;
    match method {
        ResizeMethod::Nearest => 0.0,
        _ => 0.5 * scale - 0.5,
    }
}

/// MONAI `Resize`-style resizing of a volume to `size = [nx, ny, nz]` (a 0 is not allowed; pass
/// the current size to keep an axis). Spacing and origin are updated so that the volume still
/// covers the same physical extent (voxel centres as for `align_corners=False`).
pub fn resize_volume(volume: &Volume, size: [usize; 3], method: ResizeMethod) -> Result<Volume> {
    check_size("size", &size)?;
    let mut data = std::borrow::Cow::Borrowed(volume.data());
    let mut dims = volume.dims();
    for axis in 0..3 {
        let taps = resize_taps(dims[axis], size[axis], method);
        let (d, nd) = apply_axis(&data, dims, axis, &taps);
        data = std::borrow::Cow::Owned(d);
        dims = nd;
    }
    let mut g = *volume.geometry();
    let old = volume.dims();
    let mut first = [0.0; 3];
    for a in 0..3 {
        if old[a] != size[a] {
            first[a] = first_sample_src(old[a], size[a], method);
        }
    }
    g.origin = g.index_to_physical(first);
    for a in 0..3 {
        g.spacing[a] *= old[a] as f64 / size[a] as f64;
    }
    let mut v = Volume::new(data.into_owned(), dims, g)?;
    v.meta = volume.meta.clone();
    Ok(v)
}

/// Resizes every axial slice to `width x height`, keeping the number of slices.
pub fn resize_axial(
    volume: &Volume,
    width: usize,
    height: usize,
    method: ResizeMethod,
) -> Result<Volume> {
    let nz = volume.dims()[2];
    resize_volume(volume, [width, height, nz], method)
}

/// Resizes a 2D image to `width x height`; pixel spacing, if known, is scaled accordingly.
pub fn resize_image(
    image: &Image2d,
    width: usize,
    height: usize,
    method: ResizeMethod,
) -> Result<Image2d> {
    check_size("size", &[width, height])?;
    let dims = [image.width(), image.height(), 1];
    let (d, nd) = apply_axis(image.data(), dims, 0, &resize_taps(dims[0], width, method));
    let (d, _) = apply_axis(&d, nd, 1, &resize_taps(dims[1], height, method));
    let mut out = Image2d::new(d, width, height)?;
    out.spacing = image.spacing.map(|[sx, sy]| {
        [
            sx * dims[0] as f64 / width as f64,
            sy * dims[1] as f64 / height as f64,
        ]
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_sum_to_one_and_stay_in_range() {
        for method in [
            ResizeMethod::Area,
            ResizeMethod::Linear,
            ResizeMethod::LinearAntialias,
            ResizeMethod::Nearest,
        ] {
            for (n, m) in [(7, 3), (3, 7), (5, 5), (1, 4), (4, 1), (512, 128)] {
                for t in resize_taps(n, m, method) {
                    let s: f32 = t.iter().map(|x| x.1).sum();
                    assert!((s - 1.0).abs() < 1e-5, "{method:?} {n}->{m}: {t:?}");
                    assert!(t.iter().all(|x| x.0 < n));
                }
            }
        }
    }

    #[test]
    fn area_by_integer_factor_is_block_mean() {
        let img = Image2d::new((0..16).map(|v| v as f32).collect(), 4, 4).unwrap();
        let out = resize_image(&img, 2, 2, ResizeMethod::Area).unwrap();
        assert_eq!(out.data(), &[2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn resize_keeps_physical_extent() {
        let v = Volume::filled(
            [8, 6, 4],
            crate::Geometry::with_spacing([0.5, 1.0, 2.0]),
            1.0,
        )
        .unwrap();
        let r = resize_volume(&v, [4, 3, 4], ResizeMethod::Linear).unwrap();
        assert_eq!(r.extent_mm(), v.extent_mm());
        assert_eq!(r.spacing(), [1.0, 2.0, 2.0]);
        // First output centre sits half a new voxel inside the old grid's edge.
        assert!((r.geometry().origin[0] - 0.25).abs() < 1e-12);
        assert!(r.data().iter().all(|&x| (x - 1.0).abs() < 1e-6));
    }
}
