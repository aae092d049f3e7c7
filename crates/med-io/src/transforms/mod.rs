//! Transforms named and parameterised like MONAI's, so users coming from MONAI recognise them.
//!
//! | med-io | MONAI |
//! |---|---|
//! | [`HounsfieldUnits`] | (rescale slope/intercept, done by the reader in MONAI's `LoadImage`) |
//! | [`ScaleIntensityRange`] | `ScaleIntensityRange(a_min, a_max, b_min, b_max, clip)` |
//! | [`Spacing`] | `Spacing(pixdim, mode="bilinear"/"nearest", padding_mode="border")` |
//! | [`resize_volume`], [`resize_axial`], [`resize_image`] | `Resize(spatial_size, mode=...)` |
//! | [`orientation`] | `Orientation(axcodes)` |
//! | [`CropForeground`] | `CropForeground(select_fn=x>0, margin, allow_smaller)` |

mod crop;
mod intensity;
mod orientation;
mod resize;
mod spacing;

pub use crop::{bounding_box, crop, CropForeground};
pub use intensity::{HounsfieldUnits, ScaleIntensityRange};
pub use orientation::{axcodes, orientation};
pub use resize::{resize_axial, resize_image, resize_volume, ResizeMethod};
pub use spacing::{Interpolation, Spacing};
