//! A small synthetic chest phantom: a contrast-enhanced CTPA volume (HU) with or without emboli,
//! and the paired chest X-ray rendered from the same anatomy without contrast.
//!
//! It stands in for `med_io::synthetic` until that generator is on main, and is deliberately
//! simple: what matters for the pipeline is that the CTPA carries the diagnosis clearly (an
//! embolus is a filling defect, ~40 HU, inside a contrast-filled artery, ~300 HU) while the X-ray
//! carries it only weakly (no contrast, so the clot is invisible; only a faint regional oligaemia,
//! the Westermark sign, shifts the lung attenuation, buried in patient-to-patient variation and
//! noise). Its strengths are set once from the single-modality baselines, never from the
//! distillation results.

use med_io::{Geometry, Image2d, Volume};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::{PipelineError, Result};

/// Sizes and signal strengths of the phantom.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhantomConfig {
    /// In-plane voxels of a CT slice (square).
    pub size: usize,
    /// Axial slices of a CT volume.
    pub slices: usize,
    /// Side of the (square) X-ray in pixels.
    pub cxr_size: usize,
    /// Fraction of patients with PE.
    pub prevalence: f64,
    /// Mean HU drop of the affected lung on the X-ray anatomy (oligaemia).
    pub oligaemia_hu: f64,
    /// Standard deviation of each lung's mean HU across patients.
    pub lung_hu_sd: f64,
    /// Standard deviation of the X-ray pixel noise (in attenuation units, ~0.01 per 10 HU).
    pub cxr_noise: f64,
    /// Standard deviation of the CT voxel noise in HU.
    pub ct_noise_hu: f64,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self {
            size: 32,
            slices: 16,
            cxr_size: 32,
            prevalence: 0.35,
            oligaemia_hu: 40.0,
            lung_hu_sd: 25.0,
            cxr_noise: 0.02,
            ct_noise_hu: 30.0,
        }
    }
}

impl PhantomConfig {
    /// Checks the sizes and probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.size < 16 {
            return Err(PipelineError::config("size", "must be at least 16 voxels"));
        }
        if self.slices < 4 {
            return Err(PipelineError::config("slices", "must be at least 4"));
        }
        if self.cxr_size < 16 {
            return Err(PipelineError::config(
                "cxr_size",
                "must be at least 16 pixels",
            ));
        }
        if !(self.prevalence > 0.0 && self.prevalence < 1.0) {
            return Err(PipelineError::config(
                "prevalence",
                format!("must be in (0, 1), got {}", self.prevalence),
            ));
        }
        Ok(())
    }
}

/// One synthetic patient: CTPA in HU, the X-ray (attenuation line integrals, arbitrary units) and
/// the label.
#[derive(Debug, Clone)]
pub struct PhantomCase {
    /// Contrast CT in HU.
    pub ctpa: Volume,
    /// The X-ray of the same anatomy without contrast.
    pub cxr: Image2d,
    /// Pulmonary embolism present.
    pub label: bool,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller: rand 0.9 without rand_distr.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

struct Vessel {
    x: f64,
    y: f64,
    dx: f64,
    dy: f64,
    radius: f64,
}

/// Draws one patient; `label` fixes whether it has PE.
pub fn phantom_case(config: &PhantomConfig, label: bool, rng: &mut StdRng) -> Result<PhantomCase> {
    config.validate()?;
    let (n, nz) = (config.size, config.slices);
    let s = n as f64;
    let c = s / 2.0 + normal(rng) * 0.03 * s;
    let body_a = s * (0.44 + 0.03 * normal(rng));
    let body_b = s * (0.34 + 0.03 * normal(rng));
    let lung_hu = [
        -830.0 + config.lung_hu_sd * normal(rng),
        -830.0 + config.lung_hu_sd * normal(rng),
    ];
    let lung_cx = [c - 0.2 * s, c + 0.2 * s];
    let (lung_a, lung_b) = (0.15 * s * (1.0 + 0.08 * normal(rng)), 0.24 * s);
    let contrast = 300.0 + 20.0 * normal(rng);
    let mut vessels: Vec<(usize, Vessel)> = Vec::new();
    for (side, &lx) in lung_cx.iter().enumerate() {
        for _ in 0..3 {
            vessels.push((
                side,
                Vessel {
                    x: lx + (rng.random::<f64>() - 0.5) * lung_a,
                    y: c + (rng.random::<f64>() - 0.5) * lung_b * 1.2,
                    dx: (rng.random::<f64>() - 0.5) * 0.15,
                    dy: (rng.random::<f64>() - 0.5) * 0.15,
                    radius: (0.07 + 0.02 * rng.random::<f64>()) * s,
                },
            ));
        }
    }
    // Emboli: 2-3 clots, each filling a run of slices of one artery.
    let mut clots: Vec<(usize, usize, usize)> = Vec::new(); // (vessel, z0, z1)
    let mut affected = [false; 2];
    if label {
        let k = 2 + usize::from(rng.random::<f64>() < 0.5);
        for _ in 0..k {
            let v = rng.random_range(0..vessels.len());
            let len = (nz / 2).max(2) + rng.random_range(0..(nz / 4).max(1));
            let z0 = rng.random_range(0..=(nz - len));
            clots.push((v, z0, z0 + len));
            affected[vessels[v].0] = true;
        }
    }
    let mut ct = vec![0f32; n * n * nz];
    let mut plain = vec![0f64; n * n * nz];
    let heart_r = 0.1 * s;
    for k in 0..nz {
        let zf = k as f64 - nz as f64 / 2.0;
        for j in 0..n {
            for i in 0..n {
                let (x, y) = (i as f64 + 0.5, j as f64 + 0.5);
                let mut hu = -1000.0;
                let mut hu_plain = -1000.0;
                if ((x - c) / body_a).powi(2) + ((y - c) / body_b).powi(2) <= 1.0 {
                    hu = 40.0;
                    hu_plain = 40.0;
                    for side in 0..2 {
                        if ((x - lung_cx[side]) / lung_a).powi(2) + ((y - c) / lung_b).powi(2)
                            <= 1.0
                        {
                            hu = lung_hu[side];
                            let olig = if affected[side] {
                                config.oligaemia_hu
                            } else {
                                0.0
                            };
                            hu_plain = lung_hu[side] - olig;
                        }
                    }
                    if (x - c).powi(2) + (y - c - 0.1 * s).powi(2) <= heart_r * heart_r {
                        hu = contrast;
                        hu_plain = 40.0;
                    }
                    for (vi, (_, v)) in vessels.iter().enumerate() {
                        let (vx, vy) = (v.x + v.dx * zf, v.y + v.dy * zf);
                        if (x - vx).powi(2) + (y - vy).powi(2) <= v.radius * v.radius {
                            let clotted = clots
                                .iter()
                                .any(|&(cv, z0, z1)| cv == vi && k >= z0 && k < z1);
                            hu = if clotted { 40.0 } else { contrast };
                            hu_plain = 40.0;
                        }
                    }
                }
                let idx = (k * n + j) * n + i;
                ct[idx] = (hu + config.ct_noise_hu * normal(rng)) as f32;
                plain[idx] = hu_plain;
            }
        }
    }
    let ctpa = Volume::new(ct, [n, n, nz], Geometry::with_spacing([1.0, 1.0, 1.0]))?;
    // Antero-posterior projection of the non-contrast anatomy: mean linear attenuation along y
    // (water = 1) gives an (x, z) image, resized to a square X-ray.
    let mut proj = vec![0f64; n * nz];
    for k in 0..nz {
        for i in 0..n {
            let mut sum = 0.0;
            for j in 0..n {
                sum += (1.0 + plain[(k * n + j) * n + i] / 1000.0).max(0.0);
            }
            proj[k * n + i] = sum / n as f64;
        }
    }
    let m = config.cxr_size;
    let mut cxr = vec![0f32; m * m];
    for r in 0..m {
        // Row 0 is the top of the chest (highest slice).
        let zf = ((m - 1 - r) as f64 + 0.5) * nz as f64 / m as f64 - 0.5;
        for col in 0..m {
            let xf = (col as f64 + 0.5) * n as f64 / m as f64 - 0.5;
            let v = bilinear(&proj, n, nz, xf, zf);
            cxr[r * m + col] = (v + config.cxr_noise * normal(rng)) as f32;
        }
    }
    let cxr = Image2d::new(cxr, m, m)?;
    Ok(PhantomCase { ctpa, cxr, label })
}

fn bilinear(img: &[f64], w: usize, h: usize, x: f64, y: f64) -> f64 {
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let a = img[y0 * w + x0] * (1.0 - fx) + img[y0 * w + x1] * fx;
    let b = img[y1 * w + x0] * (1.0 - fx) + img[y1 * w + x1] * fx;
    a * (1.0 - fy) + b * fy
}

/// Labels with exactly `round(n * prevalence)` positives (at least one of each class), in a
/// seeded random order.
pub fn draw_labels(n: usize, prevalence: f64, rng: &mut StdRng) -> Result<Vec<bool>> {
    if n < 2 || !(prevalence > 0.0 && prevalence < 1.0) {
        return Err(PipelineError::config(
            "patients",
            format!("{n} patients at prevalence {prevalence} leave a class empty"),
        ));
    }
    let pos = ((n as f64 * prevalence).round() as usize).clamp(1, n - 1);
    if pos == 0 || pos >= n {
        return Err(PipelineError::config(
            "patients",
            format!("{n} patients at prevalence {prevalence} leave a class empty"),
        ));
    }
    let mut labels: Vec<bool> = (0..n).map(|i| i < pos).collect();
    let perm = cmkd_train::rng::permutation(rng, n);
    labels = perm.iter().map(|&p| labels[p]).collect();
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn clot_lowers_vessel_hu_and_is_deterministic() {
        let cfg = PhantomConfig::default();
        let a = phantom_case(&cfg, true, &mut StdRng::seed_from_u64(3)).unwrap();
        let b = phantom_case(&cfg, true, &mut StdRng::seed_from_u64(3)).unwrap();
        assert_eq!(a.ctpa.data(), b.ctpa.data());
        assert_eq!(a.cxr.data(), b.cxr.data());
        assert_eq!(a.ctpa.dims(), [32, 32, 16]);
        assert_eq!((a.cxr.width(), a.cxr.height()), (32, 32));
        let (lo, hi, _) = a.ctpa.stats().unwrap();
        assert!(lo < -800.0 && hi > 150.0);
        assert!(a.cxr.data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn labels_have_the_requested_prevalence() {
        let y = draw_labels(100, 0.3, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(y.iter().filter(|&&l| l).count(), 30);
        assert!(draw_labels(1, 0.5, &mut StdRng::seed_from_u64(1)).is_err());
    }
}
