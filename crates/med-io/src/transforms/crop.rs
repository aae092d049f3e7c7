//! Cropping: bounding boxes of masks and MONAI `CropForeground`.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::Volume;

/// Bounding box `(start, end)` (end exclusive) of the voxels where `source > 0`, or `None` when
/// there are none.
pub fn bounding_box(source: &Volume) -> Option<([usize; 3], [usize; 3])> {
    let [nx, ny, _] = source.dims();
    let plane = nx * ny;
    source
        .data()
        .par_chunks(plane)
        .enumerate()
        .filter_map(|(k, s)| {
            let mut lo = [usize::MAX; 3];
            let mut hi = [0usize; 3];
            let mut any = false;
            for j in 0..ny {
                for i in 0..nx {
                    if s[j * nx + i] > 0.0 {
                        any = true;
                        lo[0] = lo[0].min(i);
                        lo[1] = lo[1].min(j);
                        hi[0] = hi[0].max(i + 1);
                        hi[1] = hi[1].max(j + 1);
                    }
                }
            }
            any.then(|| {
                lo[2] = k;
                hi[2] = k + 1;
                (lo, hi)
            })
        })
        .reduce_with(|a, b| {
            let mut lo = a.0;
            let mut hi = a.1;
            for d in 0..3 {
                lo[d] = lo[d].min(b.0[d]);
                hi[d] = hi[d].max(b.1[d]);
            }
            (lo, hi)
        })
}

/// Crops `[start, end)` (voxel indices, end exclusive, may lie outside the volume) and fills
/// voxels outside the input with `pad_value`. The origin moves to the new voxel 0.
pub fn crop(volume: &Volume, start: [i64; 3], end: [i64; 3], pad_value: f32) -> Result<Volume> {
    let mut out_dims = [0usize; 3];
    for a in 0..3 {
        if end[a] <= start[a] {
            return Err(Error::Param {
                name: "end",
                reason: format!("empty box {start:?}..{end:?}"),
            });
        }
        out_dims[a] = (end[a] - start[a]) as usize;
    }
    let dims = volume.dims();
    let mut data = vec![pad_value; out_dims.iter().product()];
    let plane = out_dims[0] * out_dims[1];
    data.par_chunks_mut(plane).enumerate().for_each(|(k, s)| {
        let sk = start[2] + k as i64;
        if sk < 0 || sk >= dims[2] as i64 {
            return;
        }
        for j in 0..out_dims[1] {
            let sj = start[1] + j as i64;
            if sj < 0 || sj >= dims[1] as i64 {
                continue;
            }
            for i in 0..out_dims[0] {
                let si = start[0] + i as i64;
                if si >= 0 && si < dims[0] as i64 {
                    s[j * out_dims[0] + i] =
                        volume.data()[volume.offset(si as usize, sj as usize, sk as usize)];
                }
            }
        }
    });
    let mut g = *volume.geometry();
    g.origin = g.index_to_physical([start[0] as f64, start[1] as f64, start[2] as f64]);
    let mut v = Volume::new(data, out_dims, g)?;
    v.meta = volume.meta.clone();
    Ok(v)
}

/// MONAI `CropForeground(select_fn=x > 0, margin, allow_smaller, mode="constant")`: crops to the
/// bounding box of the source's positive voxels grown by `margin` on each side.
///
/// With `allow_smaller = false` (MONAI's default since 1.5) the box may extend past the volume and
/// is padded with `pad_value`; with `true` it is clipped to the volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropForeground {
    /// Voxels added on each side along `(i, j, k)`.
    pub margin: [usize; 3],
    /// Clip the box to the volume instead of padding.
    pub allow_smaller: bool,
    /// Value of padded voxels.
    pub pad_value: f32,
}

impl Default for CropForeground {
    fn default() -> Self {
        Self {
            margin: [0; 3],
            allow_smaller: false,
            pad_value: 0.0,
        }
    }
}

impl CropForeground {
    /// The box `(start, end)` that [`apply`](Self::apply) would crop.
    pub fn compute_box(&self, source: &Volume) -> Result<([i64; 3], [i64; 3])> {
        let (lo, hi) = bounding_box(source).ok_or_else(|| Error::Param {
            name: "source",
            reason: "has no foreground (no value > 0) to crop to".into(),
        })?;
        let dims = source.dims();
        let mut start = [0i64; 3];
        let mut end = [0i64; 3];
        for a in 0..3 {
            start[a] = lo[a] as i64 - self.margin[a] as i64;
            end[a] = hi[a] as i64 + self.margin[a] as i64;
            if self.allow_smaller {
                start[a] = start[a].max(0);
                end[a] = end[a].min(dims[a] as i64);
            }
        }
        Ok((start, end))
    }

    /// Crops `image` to the foreground of `source` (same dimensions).
    pub fn apply(&self, image: &Volume, source: &Volume) -> Result<Volume> {
        if image.dims() != source.dims() {
            return Err(Error::Shape(format!(
                "image {:?} and foreground source {:?} differ in size",
                image.dims(),
                source.dims()
            )));
        }
        let (start, end) = self.compute_box(source)?;
        crop(image, start, end, self.pad_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    #[test]
    fn crop_foreground_with_margin_and_padding() {
        let mut m =
            Volume::filled([6, 5, 4], Geometry::with_spacing([1.0, 2.0, 3.0]), 0.0).unwrap();
        let o = m.offset(2, 1, 1);
        m.data_mut()[o] = 1.0;
        let o = m.offset(3, 3, 2);
        m.data_mut()[o] = 1.0;
        assert_eq!(bounding_box(&m), Some(([2, 1, 1], [4, 4, 3])));
        let c = CropForeground {
            margin: [1, 2, 0],
            allow_smaller: false,
            pad_value: -5.0,
        };
        assert_eq!(c.compute_box(&m).unwrap(), ([1, -1, 1], [5, 6, 3]));
        let out = c.apply(&m, &m).unwrap();
        assert_eq!(out.dims(), [4, 7, 2]);
        assert_eq!(out.get(0, 0, 0), Some(-5.0));
        assert_eq!(out.get(1, 2, 0), Some(1.0));
        assert_eq!(out.geometry().origin, [1.0, -2.0, 3.0]);
        let clipped = CropForeground {
            allow_smaller: true,
            ..c
        }
        .apply(&m, &m)
        .unwrap();
        assert_eq!(clipped.dims(), [4, 5, 2]);
        let empty = Volume::filled([2, 2, 2], Geometry::default(), 0.0).unwrap();
        assert!(CropForeground::default().apply(&empty, &empty).is_err());
    }
}
