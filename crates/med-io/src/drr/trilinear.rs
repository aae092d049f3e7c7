//! DiffDRR's trilinear renderer: evenly spaced samples along every ray, trilinear interpolation.
//!
//! All rays share one sampling interval `[alpha_min, alpha_max]`: the earliest entry and the latest exit
//! over all rays, with DiffDRR's box (planes at `-0.5` and `dims + 0.5`, half a voxel beyond the grid on
//! the far side) clamped to the source-detector segment `[0, 1]`. Samples outside the grid read zero
//! (`grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False)`).

/// DiffDRR's `eps`, added to the ray direction to avoid a division by zero.
const EPS: f64 = 1e-8;

/// Entry and exit alpha of one ray with DiffDRR's `_get_alpha_minmax`.
pub(crate) fn alpha_range(dims: [usize; 3], s: [f64; 3], t: [f64; 3]) -> (f64, f64) {
    let mut lo = f64::NEG_INFINITY;
    let mut hi = f64::INFINITY;
    for a in 0..3 {
        let d = t[a] - s[a] + EPS;
        let a0 = (-0.5 - s[a]) / d;
        let a1 = (dims[a] as f64 + 0.5 - s[a]) / d;
        lo = lo.max(a0.min(a1));
        hi = hi.min(a0.max(a1));
    }
    (lo.max(0.0), hi.min(1.0))
}

/// Trilinear sample of the volume at a continuous index, zero outside.
#[inline]
fn sample(data: &[f32], dims: [usize; 3], p: [f64; 3]) -> f64 {
    let [nx, ny, nz] = dims;
    let f = [p[0].floor(), p[1].floor(), p[2].floor()];
    let w = [p[0] - f[0], p[1] - f[1], p[2] - f[2]];
    let base = [f[0] as i64, f[1] as i64, f[2] as i64];
    let mut acc = 0.0;
    for dk in 0..2 {
        let k = base[2] + dk;
        if k < 0 || k >= nz as i64 {
            continue;
        }
        let wk = if dk == 0 { 1.0 - w[2] } else { w[2] };
        for dj in 0..2 {
            let j = base[1] + dj;
            if j < 0 || j >= ny as i64 {
                continue;
            }
            let wj = if dj == 0 { 1.0 - w[1] } else { w[1] };
            for di in 0..2 {
                let i = base[0] + di;
                if i < 0 || i >= nx as i64 {
                    continue;
                }
                let wi = if di == 0 { 1.0 - w[0] } else { w[0] };
                acc +=
                    wk * wj * wi * data[((k as usize) * ny + j as usize) * nx + i as usize] as f64;
            }
        }
    }
    acc
}

/// Rectangle-rule sum of `n_points` trilinear samples between `a_min` and `a_max`, times the step.
pub(crate) fn integrate(
    data: &[f32],
    dims: [usize; 3],
    s: [f64; 3],
    t: [f64; 3],
    a_min: f64,
    a_max: f64,
    n_points: usize,
) -> f64 {
    let d = [t[0] - s[0] + EPS, t[1] - s[1] + EPS, t[2] - s[2] + EPS];
    let step = (a_max - a_min) / (n_points as f64 - 1.0);
    let mut acc = 0.0;
    for n in 0..n_points {
        let a = a_min + step * n as f64;
        acc += sample(
            data,
            dims,
            [s[0] + a * d[0], s[1] + a * d[1], s[2] + a * d[2]],
        );
    }
    acc * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_interpolates_and_pads_with_zero() {
        let data = [0.0, 1.0, 2.0, 3.0];
        assert!((sample(&data, [4, 1, 1], [1.25, 0.0, 0.0]) - 1.25).abs() < 1e-12);
        // Half way between the last voxel and the zero padding.
        assert!((sample(&data, [4, 1, 1], [3.5, 0.0, 0.0]) - 1.5).abs() < 1e-12);
        assert_eq!(sample(&data, [4, 1, 1], [1.0, 1.5, 0.0]), 0.0);
    }
}
