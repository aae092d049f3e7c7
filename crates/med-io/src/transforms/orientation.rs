//! Reorientation by axis permutation and flips (MONAI `Orientation`), no interpolation.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{Geometry, Volume};

/// The physical axis (0 = L/R, 1 = P/A, 2 = S/I) and sign (+1 towards L, P, S) of an axis code.
fn code_axis(c: char) -> Option<(usize, f64)> {
    Some(match c.to_ascii_uppercase() {
        'L' => (0, 1.0),
        'R' => (0, -1.0),
        'P' => (1, 1.0),
        'A' => (1, -1.0),
        'S' => (2, 1.0),
        'I' => (2, -1.0),
        _ => return None,
    })
}

/// Nearest axis codes of a geometry, e.g. `"LPS"` for the identity direction, `"LAS"` for a
/// typical NIfTI of radiological convention. Each voxel axis gets the letter of the patient
/// direction it points to.
pub fn axcodes(g: &Geometry) -> String {
    (0..3)
        .map(|c| {
            let p = (0..3)
                .max_by(|&a, &b| g.direction[a][c].abs().total_cmp(&g.direction[b][c].abs()))
                .unwrap_or(c);
            let pos = g.direction[p][c] >= 0.0;
            match (p, pos) {
                (0, true) => 'L',
                (0, false) => 'R',
                (1, true) => 'P',
                (1, false) => 'A',
                (2, true) => 'S',
                _ => 'I',
            }
        })
        .collect()
}

/// MONAI `Orientation(axcodes=...)`: permutes and flips voxel axes so that axis `t` points (as
/// closely as the direction cosines allow) towards `axcodes[t]`. Physical positions of voxels are
/// unchanged; only the index order changes.
pub fn orientation(volume: &Volume, axcodes_target: &str) -> Result<Volume> {
    let codes: Vec<(usize, f64)> = axcodes_target
        .chars()
        .map(code_axis)
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Param {
            name: "axcodes",
            reason: format!("`{axcodes_target}` is not three of L/R, P/A, S/I"),
        })?;
    if codes.len() != 3 || {
        let mut p: Vec<usize> = codes.iter().map(|c| c.0).collect();
        p.sort_unstable();
        p != [0, 1, 2]
    } {
        return Err(Error::Param {
            name: "axcodes",
            reason: format!("`{axcodes_target}` must name each of L/R, P/A, S/I once"),
        });
    }
    let g = *volume.geometry();
    let current = axcodes(&g);
    let cur: Vec<(usize, f64)> = current.chars().filter_map(code_axis).collect();
    let mut perm = [0usize; 3];
    let mut flip = [false; 3];
    for t in 0..3 {
        let c = cur.iter().position(|x| x.0 == codes[t].0).ok_or_else(|| {
            Error::Geometry(format!(
                "direction {:?} has no axis near physical axis {}",
                g.direction, codes[t].0
            ))
        })?;
        perm[t] = c;
        flip[t] = cur[c].1 != codes[t].1;
    }
    if cur
        .iter()
        .map(|x| x.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        != 3
    {
        return Err(Error::Geometry(format!(
            "direction {:?} is too oblique to name its axes",
            g.direction
        )));
    }
    let dims = volume.dims();
    let out_dims = [dims[perm[0]], dims[perm[1]], dims[perm[2]]];
    let src_index = |o: [usize; 3]| {
        let mut idx = [0usize; 3];
        for t in 0..3 {
            idx[perm[t]] = if flip[t] {
                dims[perm[t]] - 1 - o[t]
            } else {
                o[t]
            };
        }
        idx
    };
    let mut data = vec![0.0f32; volume.len()];
    let plane = out_dims[0] * out_dims[1];
    data.par_chunks_mut(plane).enumerate().for_each(|(k, s)| {
        for j in 0..out_dims[1] {
            for i in 0..out_dims[0] {
                let [a, b, c] = src_index([i, j, k]);
                s[j * out_dims[0] + i] = volume.data()[volume.offset(a, b, c)];
            }
        }
    });
    let mut ng = g;
    for t in 0..3 {
        let sign = if flip[t] { -1.0 } else { 1.0 };
        ng.spacing[t] = g.spacing[perm[t]];
        for r in 0..3 {
            ng.direction[r][t] = sign * g.direction[r][perm[t]];
        }
    }
    let o = src_index([0, 0, 0]);
    ng.origin = g.index_to_physical([o[0] as f64, o[1] as f64, o[2] as f64]);
    let mut v = Volume::new(data, out_dims, ng)?;
    v.meta = volume.meta.clone();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ras_from_lps_flips_two_axes_and_keeps_positions() {
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let g = Geometry {
            spacing: [1.0, 2.0, 3.0],
            origin: [5.0, -7.0, 11.0],
            ..Geometry::default()
        };
        let v = Volume::new(data, [4, 3, 2], g).unwrap();
        assert_eq!(axcodes(v.geometry()), "LPS");
        let r = orientation(&v, "RAS").unwrap();
        assert_eq!(axcodes(r.geometry()), "RAS");
        for (i, j, k) in [(0, 0, 0), (3, 2, 1), (1, 2, 0)] {
            let val = r.get(i, j, k).unwrap();
            let p = r
                .geometry()
                .index_to_physical([i as f64, j as f64, k as f64]);
            let q = v.geometry().physical_to_index(p);
            let src = v
                .get(
                    q[0].round() as usize,
                    q[1].round() as usize,
                    q[2].round() as usize,
                )
                .unwrap();
            assert_eq!(val, src);
        }
        let back = orientation(&r, "LPS").unwrap();
        assert_eq!(back, v);
        let perm = orientation(&v, "SPL").unwrap();
        assert_eq!(perm.dims(), [2, 3, 4]);
        assert!(orientation(&v, "LLS").is_err());
    }
}
