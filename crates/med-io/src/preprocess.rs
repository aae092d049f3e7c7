//! The paper's preprocessing pipelines (Cahan et al., MICCAI 2025, "Preprocessing" paragraphs).
//!
//! CTPA: values converted to HU, resampled to 1 mm isotropic, cropped to the lungs, windowed to
//! −100..900 HU, axial slices resized to 128×128 with a varying number of slices.
//! CXR: normalised and resized to 224×224, the single channel repeated for RGB encoders.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::image2d::Image2d;
use crate::lung::{crop_to_lungs, LungSegmentation};
use crate::transforms::{
    resize_axial, resize_image, HounsfieldUnits, ResizeMethod, ScaleIntensityRange, Spacing,
};
use crate::volume::Volume;

/// Lung cropping step of [`CtPreprocess`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LungCrop {
    /// Segmentation parameters.
    pub segmentation: LungSegmentation,
    /// Margin around the lung bounding box, in mm.
    pub margin_mm: f64,
}

impl Default for LungCrop {
    fn default() -> Self {
        Self {
            segmentation: LungSegmentation::default(),
            margin_mm: 5.0,
        }
    }
}

/// CT volume preprocessing. [`Default`] gives the paper's settings.
///
/// Order: [`HounsfieldUnits`] → [`Spacing`] → lung crop (segmentation needs HU) →
/// [`ScaleIntensityRange`] window → axial resize. Every step is optional except the HU conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtPreprocess {
    /// Stored values to HU.
    pub hounsfield: HounsfieldUnits,
    /// Resampling; paper: 1 mm isotropic, trilinear.
    pub spacing: Option<Spacing>,
    /// Lung crop; paper: yes.
    pub lung_crop: Option<LungCrop>,
    /// Windowing; paper: −100..900 HU onto 0..1, clipped.
    pub window: Option<ScaleIntensityRange>,
    /// Axial size `(width, height)`; paper: 128×128.
    pub axial_size: Option<(usize, usize)>,
    /// Resize method for the axial resize (MONAI's default, area).
    pub resize_method: ResizeMethod,
}

impl Default for CtPreprocess {
    fn default() -> Self {
        Self {
            hounsfield: HounsfieldUnits::default(),
            spacing: Some(Spacing::isotropic(1.0)),
            lung_crop: Some(LungCrop::default()),
            window: Some(ScaleIntensityRange::window(-100.0, 900.0)),
            axial_size: Some((128, 128)),
            resize_method: ResizeMethod::Area,
        }
    }
}

impl CtPreprocess {
    /// Runs the pipeline; the result keeps its geometry (spacing, origin after crop and resize).
    ///
    /// A volume with a NaN or infinite voxel is refused (naming the voxel): every later step would
    /// spread it (the lung threshold, the window, the area resize) into a model's input.
    pub fn apply(&self, volume: &Volume) -> Result<Volume> {
        if let Some(at) = volume.data().iter().position(|v| !v.is_finite()) {
            let [nx, ny, _] = volume.dims();
            let (i, j, k) = (at % nx, at / nx % ny, at / (nx * ny));
            return Err(Error::Param {
                name: "volume",
                reason: format!(
                    "voxel ({i}, {j}, {k}) is {} (a corrupt or masked volume?)",
                    volume.data()[at]
                ),
            });
        }
        let mut v = self.hounsfield.apply(volume)?;
        if let Some(s) = &self.spacing {
            v = s.apply(&v)?;
        }
        if let Some(lc) = &self.lung_crop {
            let mask = lc.segmentation.segment(&v)?;
            v = crop_to_lungs(&v, &mask, lc.margin_mm)?;
        }
        if let Some(w) = &self.window {
            v = w.apply(&v)?;
        }
        if let Some((w, h)) = self.axial_size {
            v = resize_axial(&v, w, h, self.resize_method)?;
        }
        Ok(v)
    }

    /// Runs the pipeline and returns a `(1, depth, height, width)` f32 tensor on `device`.
    pub fn tensor(&self, volume: &Volume, device: &Device) -> Result<Tensor> {
        Ok(self.apply(volume)?.to_tensor(device)?.unsqueeze(0)?)
    }
}

/// Chest X-ray preprocessing for the 2D encoders. [`Default`]: bilinear (torch,
/// `align_corners=False`, as X-ray2CTPA) to 224×224, normalised with X-ray2CTPA's mean 0.633 and
/// std 0.181, three channels.
///
/// Input pixels are expected in `[0, 1]` with MONOCHROME2 polarity, as the readers of this crate
/// return them ([`crate::cxr::read_cxr_dicom`], [`crate::raster::read_raster_unit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CxrPreprocess {
    /// Output side (square).
    pub size: usize,
    /// Resize method.
    pub method: ResizeMethod,
    /// `(mean, std)` normalisation after resizing, or `None`.
    pub normalize: Option<(f32, f32)>,
    /// Channels of the output tensor (the grey channel repeated).
    pub channels: usize,
}

impl Default for CxrPreprocess {
    fn default() -> Self {
        Self {
            size: 224,
            method: ResizeMethod::Linear,
            normalize: Some((0.633, 0.181)),
            channels: 3,
        }
    }
}

impl CxrPreprocess {
    /// Resizes and normalises an image.
    pub fn apply(&self, image: &Image2d) -> Result<Image2d> {
        let mut out = resize_image(image, self.size, self.size, self.method)?;
        if let Some((m, s)) = self.normalize {
            if !(s.is_finite() && s > 0.0 && m.is_finite()) {
                return Err(crate::Error::Param {
                    name: "normalize",
                    reason: format!("bad mean/std {m}/{s}"),
                });
            }
            out.data_mut().iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        Ok(out)
    }

    /// Resizes, normalises and returns a `(channels, size, size)` f32 tensor on `device`.
    pub fn tensor(&self, image: &Image2d, device: &Device) -> Result<Tensor> {
        self.apply(image)?.to_tensor(self.channels, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Intensity;

    #[test]
    fn paper_pipeline_on_a_phantom() {
        let mut v = crate::lung::tests::phantom(48, 24);
        // Stored values with a DICOM-style intercept.
        v.data_mut().iter_mut().for_each(|x| *x += 1024.0);
        v.meta.intensity = Intensity::Raw;
        v.meta.rescale_intercept = -1024.0;
        let p = CtPreprocess {
            spacing: Some(Spacing::isotropic(3.0)),
            lung_crop: Some(LungCrop {
                segmentation: LungSegmentation {
                    min_volume_ml: 1.0,
                    ..Default::default()
                },
                margin_mm: 3.0,
            }),
            axial_size: Some((16, 16)),
            ..Default::default()
        };
        let out = p.apply(&v).unwrap();
        assert_eq!(&out.dims()[..2], &[16, 16]);
        let (lo, hi, _) = out.stats().unwrap();
        assert!(lo >= 0.0 && hi <= 1.0);
        assert_eq!(out.meta.intensity, Intensity::Normalized);
        let t = p.tensor(&v, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, out.dims()[2], 16, 16]);
    }

    #[test]
    fn cxr_tensor_shape_and_normalisation() {
        let img = Image2d::new(vec![0.633; 30 * 20], 30, 20).unwrap();
        let t = CxrPreprocess::default().tensor(&img, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 224, 224]);
        let m = t
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(m < 1e-5);
    }
}
