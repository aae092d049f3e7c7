//! DICOM files: header facts, single files as volumes, pixel decoding (via dicom-rs).
//!
//! Pixel data are decoded by `dicom-pixeldata` (native JPEG/RLE/deflate and pure-Rust JPEG 2000);
//! stored values are returned without the modality LUT, which is recorded in
//! [`VolumeMeta`] and applied by
//! [`HounsfieldUnits`](crate::transforms::HounsfieldUnits).
//! Attributes that identify the patient are never read into these types.

use std::io::Cursor;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};

use crate::error::{Error, Result};
use crate::volume::{Geometry, Intensity, Volume, VolumeMeta};

/// The facts of one DICOM image file that matter for building volumes. No patient identifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomHeader {
    /// SeriesInstanceUID, if present.
    pub series_uid: Option<String>,
    /// Modality (`CT`, `MR`, `CR`, `DX`, ...).
    pub modality: Option<String>,
    /// Transfer syntax UID.
    pub transfer_syntax: String,
    /// Rows (image height).
    pub rows: usize,
    /// Columns (image width).
    pub columns: usize,
    /// NumberOfFrames (1 when absent).
    pub frames: usize,
    /// SamplesPerPixel.
    pub samples_per_pixel: usize,
    /// PhotometricInterpretation, e.g. `MONOCHROME2`.
    pub photometric: String,
    /// PixelSpacing `(row spacing, column spacing)` in mm, or ImagerPixelSpacing when absent.
    pub pixel_spacing: Option<[f64; 2]>,
    /// ImagePositionPatient.
    pub position: Option<[f64; 3]>,
    /// ImageOrientationPatient: row direction then column direction.
    pub orientation: Option<[f64; 6]>,
    /// SliceThickness (informative only; spacing comes from positions).
    pub slice_thickness: Option<f64>,
    /// RescaleSlope (1 when absent).
    pub rescale_slope: f64,
    /// RescaleIntercept (0 when absent).
    pub rescale_intercept: f64,
    /// WindowCenter/WindowWidth (first pair), if present.
    pub window: Option<(f64, f64)>,
    /// InstanceNumber (not used for ordering).
    pub instance_number: Option<i64>,
}

fn floats(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| v.iter().all(|x| x.is_finite()))
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().trim_end_matches('\0').to_string())
}

fn uint(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<usize> {
    obj.get(tag)
        .and_then(|e| e.to_int::<i64>().ok())
        .and_then(|v| usize::try_from(v).ok())
}

impl DicomHeader {
    /// Extracts the header facts of a parsed object; fails if it is not an image.
    pub fn from_object(obj: &DefaultDicomObject, path: &Path) -> Result<Self> {
        let rows = uint(obj, tags::ROWS)
            .ok_or_else(|| Error::dicom(path, "not an image: no Rows attribute"))?;
        let columns = uint(obj, tags::COLUMNS)
            .ok_or_else(|| Error::dicom(path, "not an image: no Columns attribute"))?;
        if rows == 0 || columns == 0 {
            return Err(Error::dicom(
                path,
                format!("image of {rows}x{columns} pixels"),
            ));
        }
        let frames = text(obj, tags::NUMBER_OF_FRAMES)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let pixel_spacing = floats(obj, tags::PIXEL_SPACING)
            .or_else(|| floats(obj, tags::IMAGER_PIXEL_SPACING))
            .filter(|v| v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0)
            .map(|v| [v[0], v[1]]);
        let position = floats(obj, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() >= 3)
            .map(|v| [v[0], v[1], v[2]]);
        let orientation = floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() >= 6)
            .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
        let window = match (
            floats(obj, tags::WINDOW_CENTER),
            floats(obj, tags::WINDOW_WIDTH),
        ) {
            (Some(c), Some(w)) if !c.is_empty() && !w.is_empty() => Some((c[0], w[0])),
            _ => None,
        };
        Ok(Self {
            series_uid: text(obj, tags::SERIES_INSTANCE_UID).filter(|s| !s.is_empty()),
            modality: text(obj, tags::MODALITY).filter(|s| !s.is_empty()),
            transfer_syntax: obj
                .meta()
                .transfer_syntax()
                .trim_end_matches('\0')
                .to_string(),
            rows,
            columns,
            frames,
            samples_per_pixel: uint(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1),
            photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION)
                .unwrap_or_else(|| "MONOCHROME2".into()),
            pixel_spacing,
            position,
            orientation,
            slice_thickness: floats(obj, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()),
            rescale_slope: floats(obj, tags::RESCALE_SLOPE)
                .and_then(|v| v.first().copied())
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0),
            rescale_intercept: floats(obj, tags::RESCALE_INTERCEPT)
                .and_then(|v| v.first().copied())
                .unwrap_or(0.0),
            window,
            instance_number: obj
                .get(tags::INSTANCE_NUMBER)
                .and_then(|e| e.to_int::<i64>().ok()),
        })
    }

    /// Row and column direction cosines (defaults to axial identity when absent).
    pub fn directions(&self) -> ([f64; 3], [f64; 3]) {
        match self.orientation {
            Some(o) => ([o[0], o[1], o[2]], [o[3], o[4], o[5]]),
            None => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        }
    }
}

/// Slice normal `row × column`.
pub(crate) fn normal(row: [f64; 3], col: [f64; 3]) -> [f64; 3] {
    [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ]
}

/// Whether `bytes` start with the 128-byte preamble and the `DICM` marker after it.
pub(crate) fn has_preamble(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM".as_slice())
}

fn parse(bytes: &[u8], path: &Path, header_only: bool) -> Result<DefaultDicomObject> {
    let body = if has_preamble(bytes) {
        &bytes[128..]
    } else if bytes.len() >= 4 && &bytes[..4] == b"DICM" {
        bytes
    } else {
        return Err(Error::dicom(
            path,
            "not a DICOM file (no `DICM` marker at byte 128)",
        ));
    };
    crate::dicom_lengths::check_declared_lengths(body, body.len() as u64, path)?;
    // The preamble is gone: dicom-rs must not look for one, or a second `DICM` 128 bytes in would
    // make it read other bytes than the ones checked.
    let mut opts = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if header_only {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.from_reader(Cursor::new(body))
        .map_err(|e| Error::dicom(path, e.to_string()))
}

/// Parses a DICOM file held in memory (`path` only labels errors).
pub fn parse_dicom_bytes(bytes: &[u8], path: &Path) -> Result<DefaultDicomObject> {
    parse(bytes, path, false)
}

/// Opens a DICOM file fully (header and pixel data).
pub fn open_dicom(path: impl AsRef<Path>) -> Result<DefaultDicomObject> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path, false)
}

/// Reads the header of a DICOM image file without decoding its pixels.
pub fn read_dicom_header(path: impl AsRef<Path>) -> Result<DicomHeader> {
    let path = path.as_ref();
    DicomHeader::from_object(&open_dicom_header(path)?, path)
}

/// Opens a DICOM file up to its pixel data, after checking that the declared lengths of its
/// header fit in the file.
pub(crate) fn open_dicom_header(path: &Path) -> Result<DefaultDicomObject> {
    let preamble = check_file_lengths(path)?;
    OpenFileOptions::new()
        .read_preamble(preamble)
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| Error::dicom(path, e.to_string()))
}

/// [`crate::dicom_lengths::check_declared_lengths`] on the first 64 KiB of a file on disk (the
/// header of an image, nearly always), against the file's real size. Returns whether the file has
/// the 128-byte preamble, for dicom-rs to read the same bytes.
fn check_file_lengths(path: &Path) -> Result<ReadPreamble> {
    use std::io::Read;
    const PREFIX: u64 = 64 << 10;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::new();
    file.take(PREFIX)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    // A deflated data set is walked inflated, which needs the whole file.
    if (head.len() as u64) < len
        && head
            .windows(crate::dicom_lengths::DEFLATED.len())
            .any(|w| w == crate::dicom_lengths::DEFLATED)
    {
        head = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    }
    let preamble = has_preamble(&head);
    let skip = if preamble { 128 } else { 0 };
    crate::dicom_lengths::check_declared_lengths(&head[skip..], len - skip as u64, path)?;
    Ok(if preamble {
        ReadPreamble::Always
    } else {
        ReadPreamble::Never
    })
}

/// Decodes all frames of a greyscale image object as stored values (no modality LUT), frame
/// after frame, each row-major.
pub fn decode_stored(obj: &DefaultDicomObject, h: &DicomHeader, path: &Path) -> Result<Vec<f32>> {
    if h.samples_per_pixel != 1 {
        return Err(Error::dicom(
            path,
            format!(
                "{} samples per pixel ({}): only greyscale images are read",
                h.samples_per_pixel, h.photometric
            ),
        ));
    }
    let Some(pixel_data) = obj.get(tags::PIXEL_DATA) else {
        return Err(Error::dicom(path, "not an image: no PixelData"));
    };
    // Check the declared size before decoding, so a corrupt header cannot ask for gigabytes.
    let n = h
        .rows
        .checked_mul(h.columns)
        .and_then(|v| v.checked_mul(h.frames));
    let bits = uint(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    if !matches!(bits, 1 | 8 | 16 | 32 | 64) {
        return Err(Error::dicom(
            path,
            format!("BitsAllocated {bits} is not supported"),
        ));
    }
    let Some(n) = n.filter(|&n| n <= 1 << 31) else {
        return Err(Error::dicom(
            path,
            format!("{}x{}x{} frames is too large", h.rows, h.columns, h.frames),
        ));
    };
    if let dicom_core::value::Value::Primitive(p) = pixel_data.value() {
        let len = p.calculate_byte_len();
        let need = (n * bits).div_ceil(8);
        if len < need {
            return Err(Error::dicom(
                path,
                format!("truncated pixel data: {len} bytes, {need} expected"),
            ));
        }
    }
    if let dicom_core::value::Value::PixelSequence(seq) = pixel_data.value() {
        check_encapsulated(seq.fragments(), (n * bits).div_ceil(8), h, path)?;
    }
    // Fast path for the common CT case: native little-endian, 16 of 16 bits. The bytes are the
    // values; going through the generic converter costs more than the disk read.
    let native_le = matches!(
        h.transfer_syntax.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1"
    );
    let stored = uint(obj, tags::BITS_STORED).unwrap_or(bits);
    let signed = uint(obj, tags::PIXEL_REPRESENTATION) == Some(1);
    if native_le && bits == 16 && stored == 16 {
        if let dicom_core::value::Value::Primitive(p) = pixel_data.value() {
            let bytes = p.to_bytes();
            if bytes.len() >= 2 * n {
                return Ok(bytes[..2 * n]
                    .chunks_exact(2)
                    .map(|b| {
                        if signed {
                            i16::from_le_bytes([b[0], b[1]]) as f32
                        } else {
                            u16::from_le_bytes([b[0], b[1]]) as f32
                        }
                    })
                    .collect());
            }
        }
    }
    // dicom-rs 0.10's RLE decoder indexes out of bounds on some corrupt streams; a panic in a
    // decoder must not take down a program reading thousands of files, so it becomes an error.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<f32>> {
        let decoded = obj.decode_pixel_data().map_err(|e| {
            Error::dicom(
                path,
                format!("cannot decode pixel data ({}): {e}", h.transfer_syntax),
            )
        })?;
        let opts = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
        decoded
            .to_vec_with_options(&opts)
            .map_err(|e| Error::dicom(path, format!("cannot convert pixel data: {e}")))
    }));
    let v = match decoded {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::dicom(
                path,
                format!(
                    "pixel data decoder failed on corrupt data ({})",
                    h.transfer_syntax
                ),
            ))
        }
    };
    let want = h.rows * h.columns * h.frames;
    if v.len() != want {
        return Err(Error::dicom(
            path,
            format!(
                "decoded {} values, expected {}x{}x{} frames",
                v.len(),
                h.rows,
                h.columns,
                h.frames
            ),
        ));
    }
    Ok(v)
}

/// RLE Lossless (PS3.5 annex G).
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Bounds what decoding encapsulated pixel data may allocate by the compressed bytes, before any
/// decoder runs. PackBits (RLE) expands at most 64-fold (two bytes to 128); the other codecs are
/// allowed 1024-fold, and any file 64 MiB. An RLE frame's header must name at most 15 segments
/// (PS3.5 G.4): dicom-rs 0.10 allocates the count it reads before checking it.
fn check_encapsulated<F: AsRef<[u8]>>(
    fragments: &[F],
    decoded: usize,
    h: &DicomHeader,
    path: &Path,
) -> Result<()> {
    let compressed: usize = fragments.iter().map(|f| f.as_ref().len()).sum();
    let rle = h.transfer_syntax == RLE_LOSSLESS;
    let ratio = if rle { 64 } else { 1024 };
    let cap = compressed.saturating_mul(ratio).max(64 << 20);
    if decoded > cap {
        return Err(Error::dicom(
            path,
            format!(
                "{}x{}x{} frames would decode to {decoded} bytes from {compressed} compressed bytes \
                 (more than {ratio}:1)",
                h.rows, h.columns, h.frames
            ),
        ));
    }
    if rle {
        for (i, f) in fragments.iter().enumerate() {
            let f = f.as_ref();
            let segments = f
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            if f.len() < 64 || segments.is_none_or(|s| s > 15) {
                return Err(Error::dicom(
                    path,
                    format!(
                        "corrupt RLE frame {}: {} bytes, header names {} segments (at most 15)",
                        i + 1,
                        f.len(),
                        segments.map_or("no".to_string(), |s| s.to_string())
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Reads one DICOM image file as a volume of stored values (one slice per frame).
///
/// Geometry comes from PixelSpacing, ImagePositionPatient and ImageOrientationPatient; the slice
/// spacing of a single file is its SliceThickness (1 mm when absent), since there are no other
/// positions to derive it from. Modality LUT (slope/intercept) goes into `meta`.
pub fn read_dicom_file(path: impl AsRef<Path>) -> Result<Volume> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_dicom_bytes(&bytes, path)
}

/// [`read_dicom_file`] on a file held in memory (`path` only labels errors).
pub fn read_dicom_bytes(bytes: &[u8], path: &Path) -> Result<Volume> {
    let obj = parse(bytes, path, false)?;
    let h = DicomHeader::from_object(&obj, path)?;
    let data = decode_stored(&obj, &h, path)?;
    let (row, col) = h.directions();
    let ps = h.pixel_spacing.unwrap_or([1.0, 1.0]);
    let dz = h.slice_thickness.filter(|t| *t > 0.0).unwrap_or(1.0);
    let n = normal(row, col);
    let geometry = Geometry {
        spacing: [ps[1], ps[0], dz],
        origin: h.position.unwrap_or([0.0; 3]),
        direction: [
            [row[0], col[0], n[0]],
            [row[1], col[1], n[1]],
            [row[2], col[2], n[2]],
        ],
    };
    geometry
        .validate()
        .map_err(|e| Error::dicom(path, e.to_string()))?;
    let mut v = Volume::new(data, [h.columns, h.rows, h.frames], geometry)?;
    v.meta = VolumeMeta {
        modality: h.modality.clone(),
        rescale_slope: h.rescale_slope,
        rescale_intercept: h.rescale_intercept,
        intensity: Intensity::Raw,
        series_uid: h.series_uid.clone(),
    };
    Ok(v)
}
