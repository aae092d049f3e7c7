//! `med-io`: read, describe and preprocess CT volumes and chest X-rays for machine learning.
//!
//! The central type is [`Volume`]: f32 voxels with their [`Geometry`] (spacing, origin and
//! direction in patient space), so every transform can keep and check where each voxel lies.
//!
//! ```
//! use med_io::{Geometry, Volume};
//! let v = Volume::filled([4, 4, 2], Geometry::with_spacing([0.8, 0.8, 2.0]), -1000.0)?;
//! assert_eq!(v.extent_mm(), [3.2, 3.2, 4.0]);
//! let t = v.to_tensor(&candle_core::Device::Cpu)?;
//! assert_eq!(t.dims(), &[2, 4, 4]);
//! # Ok::<(), med_io::Error>(())
//! ```
#![deny(missing_docs)]
// Index loops over 3x3 direction matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

mod atomic;
pub mod cxr;
pub mod dicom_io;
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
