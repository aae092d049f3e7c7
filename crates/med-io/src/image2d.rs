//! The 2D image type (radiographs, DRRs, single slices).
//!
//! Pixels are f32, row-major (`data[row * width + col]`), one channel. Larger values are brighter on
//! display (MONOCHROME2 semantics): readers invert MONOCHROME1 sources so that code downstream never
//! needs to know.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// A single-channel 2D image with its pixel spacing.
#[derive(Debug, Clone, PartialEq)]
pub struct Image2d {
    data: Vec<f32>,
    width: usize,
    height: usize,
    /// Pixel size in mm as `(column spacing, row spacing)`; `None` where the source does not say.
    pub spacing: Option<[f64; 2]>,
}

impl Image2d {
    /// Builds an image from row-major pixels.
    pub fn new(data: Vec<f32>, width: usize, height: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::Shape(format!(
                "image size must be non-zero, got {width}x{height}"
            )));
        }
        if width.checked_mul(height) != Some(data.len()) {
            return Err(Error::Shape(format!(
                "a {width}x{height} image needs {} pixels, got {}",
                width.saturating_mul(height),
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
            spacing: None,
        })
    }

    /// Width in pixels (number of columns).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels (number of rows).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Row-major pixel values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable row-major pixel values.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the image and returns its pixels.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Pixel at `(row, col)`, or `None` outside the image.
    pub fn get(&self, row: usize, col: usize) -> Option<f32> {
        (row < self.height && col < self.width).then(|| self.data[row * self.width + col])
    }

    /// Minimum, maximum and mean (NaNs ignored; `None` if all are NaN).
    pub fn stats(&self) -> Option<(f32, f32, f64)> {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        let mut sum = 0.0f64;
        let mut n = 0usize;
        for &v in self.data.iter().filter(|v| !v.is_nan()) {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v as f64;
            n += 1;
        }
        (n > 0).then(|| (lo, hi, sum / n as f64))
    }

    /// The pixels as an f32 tensor of shape `(channels, height, width)`, the single channel repeated
    /// `channels` times (pretrained RGB encoders expect 3).
    pub fn to_tensor(&self, channels: usize, device: &Device) -> Result<Tensor> {
        if channels == 0 {
            return Err(Error::Param {
                name: "channels",
                reason: "must be at least 1".into(),
            });
        }
        let t = Tensor::from_slice(&self.data, (1, self.height, self.width), device)?;
        Ok(if channels == 1 {
            t
        } else {
            t.repeat((channels, 1, 1))?
        })
    }

    /// Builds an image from a `(height, width)` or `(1, height, width)` tensor.
    pub fn from_tensor(tensor: &Tensor) -> Result<Self> {
        let t = match tensor.rank() {
            2 => tensor.clone(),
            3 if tensor.dim(0)? == 1 => tensor.squeeze(0)?,
            _ => {
                return Err(Error::Shape(format!(
                    "expected a (H, W) or (1, H, W) tensor, got {:?}",
                    tensor.dims()
                )))
            }
        };
        let (h, w) = t.dims2()?;
        let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Self::new(data, w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_checks_and_tensor_round_trip() {
        assert!(Image2d::new(vec![0.0; 5], 2, 3).is_err());
        assert!(Image2d::new(vec![], 0, 3).is_err());
        let img = Image2d::new((0..6).map(|v| v as f32).collect(), 3, 2).unwrap();
        assert_eq!(img.get(1, 0), Some(3.0));
        assert_eq!(img.get(2, 0), None);
        let t = img.to_tensor(3, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 2, 3]);
        let back = Image2d::from_tensor(&t.get(2).unwrap()).unwrap();
        assert_eq!(back.data(), img.data());
        assert_eq!(img.stats(), Some((0.0, 5.0, 2.5)));
    }
}
