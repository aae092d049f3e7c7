//! `med-io`: read, describe and preprocess CT volumes and chest X-rays for machine learning.
//!
//! The central type is [`Volume`]: f32 voxels with their [`Geometry`] (spacing, origin and
//! direction in patient space), so every transform can keep and check where each voxel lies.
//!
//! - Reading: DICOM files ([`read_dicom_file`]), DICOM series folders ([`read_dicom_series`]:
//!   grouped by SeriesInstanceUID, ordered by position on the slice normal, checked), NIfTI-1/2
//!   ([`read_nifti`]), chest X-rays from DICOM ([`read_cxr_dicom`]: VOI LUT/window, MONOCHROME1
//!   inverted) or PNG/JPEG ([`read_raster`]).
//! - Writing: NIfTI-1 `.nii`/`.nii.gz` ([`write_nifti`]), 8/16-bit PNG ([`write_png`]), atomically.
//! - Transforms named like MONAI's ([`transforms`]): HU conversion, `ScaleIntensityRange`,
//!   `Spacing`, `Resize` (area, bilinear, antialiased bilinear, nearest, each matched to torch),
//!   `Orientation`, `CropForeground`; lung segmentation without a network ([`lung`]).
//! - The paper's pipelines: [`CtPreprocess`] (HU, 1 mm, lung crop, −100..900 HU, 128×128 axial)
//!   and [`CxrPreprocess`] (224×224, normalised, 3 channels), returning Candle tensors.
//! - Digitally reconstructed radiographs ([`drr`]): DiffDRR's camera model and HU-to-density rule,
//!   Siddon or trilinear ray integration, its README and RSPECT (X-ray2CTPA) presets.
//! - A synthetic paired CXR/CTPA cohort ([`synthetic`]): seeded chest phantoms with contrast-filled
//!   pulmonary arteries, emboli as filling defects, X-rays that see PE only through weak indirect
//!   signs; a CT-only RSPECT-like set; writing it to disk as NIfTI/PNG/CSV.
//! - Dataset manifests ([`manifest`]): RSPECT labels and paired-cohort CSVs, validated row by row.
//!
//! ```
//! use med_io::transforms::{ResizeMethod, ScaleIntensityRange, Spacing};
//! use med_io::{Geometry, Intensity, Volume};
//!
//! // A CT volume in stored values with a DICOM rescale intercept.
//! let mut v = Volume::filled([8, 8, 4], Geometry::with_spacing([0.8, 0.8, 2.0]), 1024.0)?;
//! v.meta.rescale_intercept = -1024.0;
//! let hu = med_io::transforms::HounsfieldUnits::default().apply(&v)?;
//! assert_eq!(hu.meta.intensity, Intensity::Hounsfield);
//! let iso = Spacing::isotropic(1.0).apply(&hu)?;
//! assert_eq!(iso.dims(), [7, 7, 7]);
//! let win = ScaleIntensityRange::window(-100.0, 900.0).apply(&iso)?;
//! assert!((win.data()[0] - 0.1).abs() < 1e-6); // 0 HU -> 0.1
//! let small = med_io::transforms::resize_axial(&win, 4, 4, ResizeMethod::Area)?;
//! let t = small.to_tensor(&candle_core::Device::Cpu)?;
//! assert_eq!(t.dims(), &[7, 4, 4]);
//! # Ok::<(), med_io::Error>(())
//! ```
#![deny(missing_docs)]
// Index loops over 3x3 direction matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

mod atomic;
pub mod cxr;
pub mod dicom_io;
mod dicom_lengths;
pub mod drr;
pub mod error;
pub mod image2d;
pub mod lung;
pub mod manifest;
pub mod nifti_io;
pub mod preprocess;
pub mod raster;
pub mod series;
pub mod synthetic;
pub mod transforms;
pub mod volume;

pub use cxr::read_cxr_dicom;
pub use dicom_io::{read_dicom_file, read_dicom_header, DicomHeader};
pub use error::{Error, Result};
pub use image2d::Image2d;
pub use lung::{crop_to_lungs, LungSegmentation};
pub use nifti_io::{read_nifti, read_nifti_frame, write_nifti, NiftiDtype};
pub use preprocess::{CtPreprocess, CxrPreprocess};
pub use raster::{read_raster, read_raster_unit, write_png, PngDepth, StoredDepth};
pub use series::{read_dicom_series, read_dicom_series_with, SeriesOptions};
pub use volume::{Geometry, Intensity, Volume, VolumeMeta};
