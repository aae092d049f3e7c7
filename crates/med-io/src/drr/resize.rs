//! Antialiased bilinear resizing as `torchvision.transforms.Resize(antialias=True)` does it.
//!
//! X-ray2CTPA renders RSPECT DRRs at 512x512 and resizes them to 224x224 with torchvision, whose
//! antialiased bilinear filter is PIL's: a triangle filter stretched by the scale factor when shrinking.

use crate::error::{Error, Result};
use crate::image2d::Image2d;

/// Per-output-pixel start index and normalised weights along one axis.
fn weights(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    (0..output)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5).trunc() as i64).max(0) as usize;
            let hi = ((centre + support + 0.5).trunc() as usize).min(input);
            let mut w: Vec<f64> = (lo..hi)
                .map(|x| {
                    let u = ((x as f64 - centre + 0.5) / filterscale).abs();
                    (1.0 - u).max(0.0)
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (lo, w)
        })
        .collect()
}

/// Resizes to `width x height` with an antialiased bilinear filter (torchvision `Resize`,
/// `antialias=True`). Pixel spacing is scaled accordingly.
pub fn resize_antialiased(image: &Image2d, width: usize, height: usize) -> Result<Image2d> {
    if width == 0 || height == 0 {
        return Err(Error::Param {
            name: "size",
            reason: format!("must be non-zero, got {width}x{height}"),
        });
    }
    let (w0, h0) = (image.width(), image.height());
    let wx = weights(w0, width);
    let wy = weights(h0, height);
    let src = image.data();
    // Horizontal pass, then vertical.
    let mut tmp = vec![0.0f64; h0 * width];
    for r in 0..h0 {
        let row = &src[r * w0..(r + 1) * w0];
        for (c, (lo, w)) in wx.iter().enumerate() {
            tmp[r * width + c] = w
                .iter()
                .enumerate()
                .map(|(n, v)| v * row[lo + n] as f64)
                .sum();
        }
    }
    let mut out = vec![0.0f32; height * width];
    for (r, (lo, w)) in wy.iter().enumerate() {
        for c in 0..width {
            let v: f64 = w
                .iter()
                .enumerate()
                .map(|(n, v)| v * tmp[(lo + n) * width + c])
                .sum();
            out[r * width + c] = v as f32;
        }
    }
    let mut img = Image2d::new(out, width, height)?;
    img.spacing = image.spacing.map(|[sx, sy]| {
        [
            sx * w0 as f64 / width as f64,
            sy * h0 as f64 / height as f64,
        ]
    });
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_stays_constant_and_identity_is_exact() {
        let img = Image2d::new(vec![3.0; 40], 8, 5).unwrap();
        let r = resize_antialiased(&img, 3, 2).unwrap();
        assert!(r.data().iter().all(|v| (v - 3.0).abs() < 1e-6));
        let ramp = Image2d::new((0..12).map(|v| v as f32).collect(), 4, 3).unwrap();
        assert_eq!(resize_antialiased(&ramp, 4, 3).unwrap().data(), ramp.data());
    }
}
