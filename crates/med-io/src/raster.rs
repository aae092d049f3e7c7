//! PNG and JPEG files as [`Image2d`]: 8- and 16-bit grey (colour is converted to luma) in, 8- and
//! 16-bit grey PNG out.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::image2d::Image2d;

/// Bit depth of a grey PNG written by [`write_png`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PngDepth {
    /// 8 bits per pixel, values 0..=255.
    Eight,
    /// 16 bits per pixel, values 0..=65535.
    Sixteen,
}

/// Stored bit depth of an image read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDepth {
    /// 8-bit samples (0..=255).
    Eight,
    /// 16-bit samples (0..=65535).
    Sixteen,
}

impl StoredDepth {
    /// Largest stored value.
    pub fn max_value(self) -> f32 {
        match self {
            StoredDepth::Eight => 255.0,
            StoredDepth::Sixteen => 65535.0,
        }
    }
}

/// Decodes PNG or JPEG bytes into a grey image of stored values (not normalised) and its depth.
///
/// Colour images are converted to luma (ITU-R BT.709 weights, as the `image` crate does); an
/// alpha channel is dropped. `name` only labels errors.
pub fn decode_raster(bytes: &[u8], name: &Path) -> Result<(Image2d, StoredDepth)> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::image(name, e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Png) | Some(ImageFormat::Jpeg) => {}
        other => {
            return Err(Error::image(
                name,
                format!("not a PNG or JPEG file (detected {other:?})"),
            ));
        }
    }
    let mut reader = reader;
    // Decoded size limits protect against absurd headers.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(2 << 30);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::image(name, e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (data, depth) = match img {
        DynamicImage::ImageLuma8(b) => (
            b.into_raw().into_iter().map(f32::from).collect(),
            StoredDepth::Eight,
        ),
        DynamicImage::ImageLuma16(b) => (
            b.into_raw().into_iter().map(f32::from).collect(),
            StoredDepth::Sixteen,
        ),
        other => {
            let sixteen = matches!(
                other,
                DynamicImage::ImageLumaA16(_)
                    | DynamicImage::ImageRgb16(_)
                    | DynamicImage::ImageRgba16(_)
            );
            if sixteen {
                let b = other.into_luma16();
                (
                    b.into_raw().into_iter().map(f32::from).collect(),
                    StoredDepth::Sixteen,
                )
            } else {
                let b = other.into_luma8();
                (
                    b.into_raw().into_iter().map(f32::from).collect(),
                    StoredDepth::Eight,
                )
            }
        }
    };
    Ok((
        Image2d::new(data, w, h).map_err(|e| Error::image(name, e.to_string()))?,
        depth,
    ))
}

/// Reads a PNG or JPEG file (8 or 16 bit) as stored values; see [`decode_raster`].
pub fn read_raster(path: impl AsRef<Path>) -> Result<(Image2d, StoredDepth)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_raster(&bytes, path)
}

/// Reads a PNG or JPEG file and scales it to `[0, 1]` by its stored depth (255 or 65535).
pub fn read_raster_unit(path: impl AsRef<Path>) -> Result<Image2d> {
    let (mut img, depth) = read_raster(path)?;
    let m = depth.max_value();
    img.data_mut().iter_mut().for_each(|v| *v /= m);
    Ok(img)
}

/// Encodes an image as a grey PNG, mapping `range.0` to black and `range.1` to white (values
/// outside are clipped, NaN is black).
pub fn encode_png(image: &Image2d, depth: PngDepth, range: (f32, f32)) -> Result<Vec<u8>> {
    let (lo, hi) = range;
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Err(Error::Param {
            name: "range",
            reason: format!("need finite lo < hi, got {range:?}"),
        });
    }
    let (w, h) = (image.width() as u32, image.height() as u32);
    let unit = |v: f32| {
        if v.is_nan() {
            0.0
        } else {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        }
    };
    let dynimg = match depth {
        PngDepth::Eight => {
            let px: Vec<u8> = image
                .data()
                .iter()
                .map(|&v| (unit(v) * 255.0).round() as u8)
                .collect();
            DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, px).expect("length checked by Image2d"),
            )
        }
        PngDepth::Sixteen => {
            let px: Vec<u16> = image
                .data()
                .iter()
                .map(|&v| (unit(v) * 65535.0).round() as u16)
                .collect();
            DynamicImage::ImageLuma16(
                image::ImageBuffer::from_raw(w, h, px).expect("length checked by Image2d"),
            )
        }
    };
    let mut out = Vec::new();
    dynimg
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| Error::Param {
            name: "image",
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Writes an image as a grey PNG atomically; see [`encode_png`] for the value mapping.
pub fn write_png(
    image: &Image2d,
    path: impl AsRef<Path>,
    depth: PngDepth,
    range: (f32, f32),
) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_png(image, depth, range).map_err(|e| match e {
        Error::Param { reason, .. } => Error::image(path, reason),
        other => other,
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_at_both_depths() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..12).map(|v| v as f32 * 20.0).collect();
        let img = Image2d::new(data.clone(), 4, 3).unwrap();
        let p8 = dir.path().join("a8.png");
        write_png(&img, &p8, PngDepth::Eight, (0.0, 255.0)).unwrap();
        let (back, depth) = read_raster(&p8).unwrap();
        assert_eq!(depth, StoredDepth::Eight);
        assert_eq!((back.width(), back.height()), (4, 3));
        let want: Vec<f32> = data.iter().map(|v| v.min(255.0)).collect();
        assert_eq!(back.data(), &want[..]);
        let p16 = dir.path().join("a16.png");
        write_png(&img, &p16, PngDepth::Sixteen, (0.0, 65535.0)).unwrap();
        let (back, depth) = read_raster(&p16).unwrap();
        assert_eq!(depth, StoredDepth::Sixteen);
        assert_eq!(back.data(), &data[..]);
        let unit = read_raster_unit(&p16).unwrap();
        assert!((unit.data()[11] - 220.0 / 65535.0).abs() < 1e-7);
    }

    #[test]
    fn bad_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\n truncated").unwrap();
        let err = read_raster(&p).unwrap_err();
        assert!(
            matches!(err, Error::Image { .. }) && err.to_string().contains("junk.png"),
            "{err}"
        );
        let img = Image2d::new(vec![0.0; 4], 2, 2).unwrap();
        assert!(write_png(&img, dir.path().join("x.png"), PngDepth::Eight, (1.0, 1.0)).is_err());
    }
}
