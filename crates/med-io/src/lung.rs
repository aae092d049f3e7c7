//! Lung segmentation without a trained network, and cropping to the lungs.
//!
//! The classic threshold / connected-components method (as in the Data Science Bowl 2017
//! preprocessing tutorials):
//! 1. air-like voxels: HU below [`LungSegmentation::threshold_hu`];
//! 2. 3D 6-connected components of that air;
//! 3. components touching the in-plane border of any slice are outside-body air: dropped
//!    (components touching only the first/last slice are kept: scans often cut through the lungs);
//! 4. the two largest remaining components (the lungs, possibly joined through the bronchi) are
//!    kept if large enough, which drops bowel gas and small pockets;
//! 5. holes are filled slice by slice (vessels and nodules inside the lung become lung).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::transforms::CropForeground;
use crate::volume::{Intensity, Volume};

/// Parameters of the threshold lung segmentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LungSegmentation {
    /// Voxels below this HU are air-like (default −320).
    pub threshold_hu: f32,
    /// Components smaller than this many millilitres are never lung (default 50 mL).
    pub min_volume_ml: f64,
    /// The second component is kept only if at least this fraction of the first (default 0.1):
    /// two lungs are of similar size, a gas pocket is not.
    pub second_ratio: f64,
    /// Fill holes slice by slice (default true).
    pub fill_holes: bool,
}

impl Default for LungSegmentation {
    fn default() -> Self {
        Self {
            threshold_hu: -320.0,
            min_volume_ml: 50.0,
            second_ratio: 0.1,
            fill_holes: true,
        }
    }
}

/// 3D 6-connected labelling by flood fill (the simple reference for [`label_components`]).
#[cfg(test)]
pub(crate) fn label_components_bfs(mask: &[bool], dims: [usize; 3]) -> (Vec<u32>, Vec<usize>) {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let l = sizes.len() as u32 + 1;
        labels[start] = l;
        stack.push(start);
        let mut size = 0usize;
        while let Some(p) = stack.pop() {
            size += 1;
            let i = p % nx;
            let j = (p / nx) % ny;
            let k = p / plane;
            let mut visit = |q: usize| {
                if mask[q] && labels[q] == 0 {
                    labels[q] = l;
                    stack.push(q);
                }
            };
            if i > 0 {
                visit(p - 1);
            }
            if i + 1 < nx {
                visit(p + 1);
            }
            if j > 0 {
                visit(p - nx);
            }
            if j + 1 < ny {
                visit(p + nx);
            }
            if k > 0 {
                visit(p - plane);
            }
            if k + 1 < nz {
                visit(p + plane);
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

/// Labels the 4-connected components of one slice into `labels` (1-based); returns their sizes.
fn label_slice(mask: &[bool], labels: &mut [u32], nx: usize, ny: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let l = sizes.len() as u32 + 1;
        labels[start] = l;
        stack.push(start);
        let mut size = 0usize;
        while let Some(p) = stack.pop() {
            size += 1;
            let (i, j) = (p % nx, p / nx);
            let mut visit = |q: usize| {
                if mask[q] && labels[q] == 0 {
                    labels[q] = l;
                    stack.push(q);
                }
            };
            if i > 0 {
                visit(p - 1);
            }
            if i + 1 < nx {
                visit(p + 1);
            }
            if j > 0 {
                visit(p - nx);
            }
            if j + 1 < ny {
                visit(p + nx);
            }
        }
        sizes.push(size);
    }
    sizes
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// 3D 6-connected labelling of `mask`; returns labels (0 = background) and component sizes
/// (`sizes[l - 1]` for label `l`).
///
/// Slices are labelled in 2D in parallel, then components that overlap between neighbouring
/// slices are merged with union-find: the same result as a 3D flood fill, on all cores.
pub(crate) fn label_components(mask: &[bool], dims: [usize; 3]) -> (Vec<u32>, Vec<usize>) {
    let [nx, ny, _] = dims;
    let plane = nx * ny;
    let mut labels = vec![0u32; mask.len()];
    let slice_sizes: Vec<Vec<usize>> = labels
        .par_chunks_mut(plane)
        .zip(mask.par_chunks(plane))
        .map(|(l, m)| label_slice(m, l, nx, ny))
        .collect();
    let mut offsets = Vec::with_capacity(slice_sizes.len());
    let mut total = 0u32;
    for s in &slice_sizes {
        offsets.push(total);
        total += s.len() as u32;
    }
    // Global id = offset of the slice + local label (1-based), so 0 stays background.
    let pairs: Vec<Vec<(u32, u32)>> = (0..slice_sizes.len().saturating_sub(1))
        .into_par_iter()
        .map(|k| {
            let (a, b) = (
                &labels[k * plane..(k + 1) * plane],
                &labels[(k + 1) * plane..(k + 2) * plane],
            );
            // Overlaps come in long runs of the same pair: skip repeats before sorting.
            let mut v: Vec<(u32, u32)> = Vec::new();
            let mut last = (0, 0);
            for (x, y) in a.iter().zip(b) {
                if *x != 0 && *y != 0 && (*x, *y) != last {
                    last = (*x, *y);
                    v.push((offsets[k] + x, offsets[k + 1] + y));
                }
            }
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut parent: Vec<u32> = (0..=total).collect();
    for (x, y) in pairs.into_iter().flatten() {
        let (rx, ry) = (find(&mut parent, x), find(&mut parent, y));
        if rx != ry {
            parent[rx.max(ry) as usize] = rx.min(ry);
        }
    }
    let mut compact = vec![0u32; total as usize + 1];
    let mut sizes = Vec::new();
    for g in 1..=total {
        let r = find(&mut parent, g);
        if compact[r as usize] == 0 {
            sizes.push(0);
            compact[r as usize] = sizes.len() as u32;
        }
        compact[g as usize] = compact[r as usize];
    }
    for (k, s) in slice_sizes.iter().enumerate() {
        for (local, n) in s.iter().enumerate() {
            sizes[compact[(offsets[k] + local as u32 + 1) as usize] as usize - 1] += n;
        }
    }
    labels.par_chunks_mut(plane).enumerate().for_each(|(k, l)| {
        for v in l.iter_mut().filter(|v| **v != 0) {
            *v = compact[(offsets[k] + *v) as usize];
        }
    });
    (labels, sizes)
}

/// Fills the holes of one slice: background not 4-connected to the slice border becomes
/// foreground.
fn fill_holes_2d(slice: &mut [bool], nx: usize, ny: usize) {
    let mut outside = vec![false; slice.len()];
    let mut stack = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            if (i == 0 || j == 0 || i + 1 == nx || j + 1 == ny) && !slice[j * nx + i] {
                outside[j * nx + i] = true;
                stack.push(j * nx + i);
            }
        }
    }
    while let Some(p) = stack.pop() {
        let (i, j) = (p % nx, p / nx);
        let mut visit = |q: usize| {
            if !slice[q] && !outside[q] {
                outside[q] = true;
                stack.push(q);
            }
        };
        if i > 0 {
            visit(p - 1);
        }
        if i + 1 < nx {
            visit(p + 1);
        }
        if j > 0 {
            visit(p - nx);
        }
        if j + 1 < ny {
            visit(p + nx);
        }
    }
    for (s, o) in slice.iter_mut().zip(outside) {
        *s = !o;
    }
}

impl LungSegmentation {
    /// Segments the lungs of a CT volume in Hounsfield units; returns a 0/1 mask with the same
    /// geometry. Fails if the volume is not in HU or no lung-sized air region is found.
    pub fn segment(&self, volume: &Volume) -> Result<Volume> {
        if volume.meta.intensity != Intensity::Hounsfield {
            return Err(Error::Param {
                name: "volume",
                reason: format!(
                    "lung segmentation needs Hounsfield units, values are {:?}",
                    volume.meta.intensity
                ),
            });
        }
        let dims = volume.dims();
        let [nx, ny, _] = dims;
        let plane = nx * ny;
        let t = self.threshold_hu;
        let air: Vec<bool> = volume.data().par_iter().map(|&v| v < t).collect();
        let (labels, sizes) = label_components(&air, dims);
        let mut outside = vec![false; sizes.len() + 1];
        for (k, s) in labels.chunks(plane).enumerate() {
            let _ = k;
            for j in 0..ny {
                outside[s[j * nx] as usize] = true;
                outside[s[j * nx + nx - 1] as usize] = true;
            }
            for i in 0..nx {
                outside[s[i] as usize] = true;
                outside[s[(ny - 1) * nx + i] as usize] = true;
            }
        }
        let voxel_ml = volume.spacing().iter().product::<f64>() / 1000.0;
        let mut inside: Vec<(usize, u32)> = sizes
            .iter()
            .enumerate()
            .filter(|(l, &n)| !outside[l + 1] && n as f64 * voxel_ml >= self.min_volume_ml)
            .map(|(l, &n)| (n, l as u32 + 1))
            .collect();
        inside.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&(first, l1)) = inside.first() else {
            return Err(Error::Param {
                name: "volume",
                reason: format!(
                    "no enclosed air region of at least {} mL below {} HU: not a chest CT, or the body touches the border",
                    self.min_volume_ml, self.threshold_hu
                ),
            });
        };
        let l2 = inside
            .get(1)
            .filter(|(n, _)| *n as f64 >= self.second_ratio * first as f64)
            .map(|x| x.1);
        let mut mask: Vec<bool> = labels
            .par_iter()
            .map(|&l| l == l1 || Some(l) == l2)
            .collect();
        if self.fill_holes {
            mask.par_chunks_mut(plane)
                .for_each(|s| fill_holes_2d(s, nx, ny));
        }
        let mut out = volume.with_data(
            mask.into_iter()
                .map(|b| if b { 1.0 } else { 0.0 })
                .collect(),
        )?;
        out.meta.intensity = Intensity::Normalized;
        Ok(out)
    }
}

/// Crops a volume to the bounding box of a lung mask grown by `margin_mm` on every side (clipped
/// to the volume).
pub fn crop_to_lungs(volume: &Volume, mask: &Volume, margin_mm: f64) -> Result<Volume> {
    if !(margin_mm.is_finite() && margin_mm >= 0.0) {
        return Err(Error::Param {
            name: "margin_mm",
            reason: format!("must be finite and >= 0, got {margin_mm}"),
        });
    }
    let sp = volume.spacing();
    let margin = [0, 1, 2].map(|a| (margin_mm / sp[a]).ceil() as usize);
    CropForeground {
        margin,
        allow_smaller: true,
        pad_value: 0.0,
    }
    .apply(volume, mask)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Geometry;

    /// A toy chest: air outside, a body ellipse of soft tissue, two lung ellipsoids of −850 HU
    /// with a vessel (+40 HU) inside the left one, and a small gas pocket below.
    pub(crate) fn phantom(n: usize, nz: usize) -> Volume {
        let mut v =
            Volume::filled([n, n, nz], Geometry::with_spacing([2.0, 2.0, 2.0]), -1000.0).unwrap();
        v.meta.intensity = Intensity::Hounsfield;
        let c = n as f64 / 2.0;
        for k in 0..nz {
            for j in 0..n {
                for i in 0..n {
                    let (x, y, z) = (i as f64 - c, j as f64 - c, k as f64);
                    let body =
                        (x / (0.42 * n as f64)).powi(2) + (y / (0.32 * n as f64)).powi(2) < 1.0;
                    let lung = |cx: f64| {
                        ((x - cx) / (0.14 * n as f64)).powi(2)
                            + (y / (0.2 * n as f64)).powi(2)
                            + ((z - nz as f64 / 2.0) / (0.4 * nz as f64)).powi(2)
                            < 1.0
                    };
                    let vessel = (x + 0.2 * n as f64).powi(2) + y.powi(2) < 2.0;
                    let gas = (x.powi(2) + (y - 0.22 * n as f64).powi(2) + (z - 2.0).powi(2)) < 2.0;
                    let val = if !body {
                        -1000.0
                    } else if lung(-0.2 * n as f64) {
                        if vessel {
                            40.0
                        } else {
                            -850.0
                        }
                    } else if lung(0.2 * n as f64) {
                        -850.0
                    } else if gas {
                        -950.0
                    } else {
                        40.0
                    };
                    let o = v.offset(i, j, k);
                    v.data_mut()[o] = val;
                }
            }
        }
        v
    }

    #[test]
    fn finds_two_lungs_fills_vessels_and_drops_outside_air_and_gas() {
        let v = phantom(40, 20);
        let seg = LungSegmentation {
            min_volume_ml: 1.0,
            ..Default::default()
        };
        let m = seg.segment(&v).unwrap();
        let c = 20;
        // Both lungs, the vessel inside the left lung, not the outside air nor the gas pocket.
        assert_eq!(m.get(c - 8, c, 10), Some(1.0));
        assert_eq!(m.get(c + 8, c, 10), Some(1.0));
        assert_eq!(m.get(c, c, 10), Some(0.0));
        assert_eq!(m.get(0, 0, 10), Some(0.0));
        assert_eq!(m.get(c, c + 9, 2), Some(0.0));
        let cropped = crop_to_lungs(&v, &m, 2.0).unwrap();
        assert!(cropped.dims()[0] < 40 && cropped.dims()[1] < 40);
        assert!(seg
            .segment(&Volume::filled([8, 8, 4], Geometry::default(), 0.0).unwrap())
            .is_err());
    }

    #[test]
    fn parallel_labelling_equals_flood_fill() {
        let mut seed = 12345u64;
        for density in [0.3, 0.5, 0.6, 0.7] {
            let dims = [9, 7, 6];
            let mask: Vec<bool> = (0..9 * 7 * 6)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 33) as f64 / (1u64 << 31) as f64) < density
                })
                .collect();
            let (la, sa) = label_components(&mask, dims);
            let (lb, sb) = label_components_bfs(&mask, dims);
            assert_eq!(sa.len(), sb.len());
            // Same partition: a bijection between the two labellings.
            let mut map = std::collections::HashMap::new();
            for (a, b) in la.iter().zip(&lb) {
                assert_eq!(*a == 0, *b == 0);
                if *a != 0 {
                    assert_eq!(*map.entry(*a).or_insert(*b), *b);
                }
            }
            let (mut x, mut y) = (sa.clone(), sb.clone());
            x.sort_unstable();
            y.sort_unstable();
            assert_eq!(x, y);
        }
    }

    #[test]
    fn labelling_counts_components() {
        // Diagonal neighbours are not 6-connected; face neighbours are.
        let diagonal = [true, false, false, true, false, false, false, false];
        assert_eq!(label_components(&diagonal, [2, 2, 2]).1, vec![1, 1]);
        let chain = [true, false, true, true, false, false, false, true];
        assert_eq!(label_components(&chain, [2, 2, 2]).1, vec![4]);
    }
}
