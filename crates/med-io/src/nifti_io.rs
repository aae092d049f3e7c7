//! NIfTI-1 and NIfTI-2 reading, NIfTI-1 writing (`.nii`, `.nii.gz`).
//!
//! NIfTI stores an affine to RAS+ world coordinates; [`Volume`] keeps LPS (DICOM) geometry, so the
//! first two world axes are negated on the way in and out. The affine chosen on reading follows
//! nibabel's `get_best_affine`: the sform when `sform_code > 0`, else the qform when
//! `qform_code > 0`, else nibabel's fallback (`diag(-dx, dy, dz)` centred on the volume).
//!
//! NIfTI-1 voxel data are decoded by the `nifti` crate; it cannot read NIfTI-2, whose header and
//! data this module reads itself. Every header is checked before any decoding (dimensions, data
//! type, `vox_offset`, file length), so malformed files give [`Error::Nifti`] naming the file
//! rather than a panic.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use nifti::{NiftiObject, NiftiVolume};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::volume::{Geometry, Intensity, Volume};

/// Largest decompressed file accepted (guards against gzip bombs and absurd headers).
const MAX_BYTES: u64 = 8 << 30;

/// The header fields that matter for geometry and decoding, from either NIfTI version.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeaderInfo {
    /// 1 or 2.
    pub version: u8,
    /// `dim[1..=dim[0]]`.
    pub dims: Vec<usize>,
    /// NIfTI datatype code (2 = u8, 4 = i16, 16 = f32, ...).
    pub datatype: i16,
    /// `pixdim[0..8]`; `pixdim[0]` is qfac.
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data.
    pub vox_offset: u64,
    /// `scl_slope` as stored on disk (0 or non-finite means no scaling).
    pub scl_slope: f64,
    /// `scl_inter` as stored on disk.
    pub scl_inter: f64,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    /// Whether the file is big-endian.
    pub big_endian: bool,
}

impl NiftiHeaderInfo {
    /// Size in bytes of one voxel of `datatype`, or `None` for types this crate does not read.
    fn bytes_per_voxel(&self) -> Option<usize> {
        Some(match self.datatype {
            2 | 256 => 1,
            4 | 512 => 2,
            8 | 16 | 768 => 4,
            64 | 1024 | 1280 => 8,
            _ => return None,
        })
    }

    /// Whether the stored scaling applies (nibabel ignores slope 0 and non-finite slopes).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        if self.scl_slope != 0.0 && self.scl_slope.is_finite() {
            let inter = if self.scl_inter.is_finite() {
                self.scl_inter
            } else {
                0.0
            };
            Some((self.scl_slope, inter))
        } else {
            None
        }
    }

    /// The 3x4 voxel-to-RAS affine nibabel would use (`get_best_affine`).
    pub fn best_affine_ras(&self) -> [[f64; 4]; 3] {
        if self.sform_code > 0 {
            self.srow
        } else if self.qform_code > 0 {
            self.qform_affine_ras()
        } else {
            // nibabel's Analyze-style fallback: x flipped, centred on the volume.
            let zooms = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
            let mut a = [[0.0; 4]; 3];
            for (c, z) in zooms.iter().enumerate() {
                let s = if c == 0 { -z } else { *z };
                let n = self.dims.get(c).copied().unwrap_or(1) as f64;
                a[c][c] = s;
                a[c][3] = -((n - 1.0) / 2.0) * s;
            }
            a
        }
    }

    /// The qform affine (quaternion, qfac, pixdim, qoffset) as in `nifti1_io.c`.
    pub fn qform_affine_ras(&self) -> [[f64; 4]; 3] {
        let [b, c, d] = self.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let zooms = [
            self.pixdim[1].abs(),
            self.pixdim[2].abs(),
            self.pixdim[3].abs() * qfac,
        ];
        let mut out = [[0.0; 4]; 3];
        for row in 0..3 {
            for col in 0..3 {
                out[row][col] = r[row][col] * zooms[col];
            }
            out[row][3] = self.qoffset[row];
        }
        out
    }
}

/// Converts a voxel-to-RAS affine into LPS [`Geometry`].
fn geometry_from_ras(a: &[[f64; 4]; 3]) -> Result<Geometry> {
    let mut g = Geometry::default();
    for c in 0..3 {
        let col = [a[0][c], a[1][c], a[2][c]];
        let norm = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(Error::Geometry(format!(
                "affine column {c} has zero or non-finite length"
            )));
        }
        g.spacing[c] = norm;
        // `+ 0.0` turns the -0.0 of negated zeros into 0.0 for readable output.
        g.direction[0][c] = -col[0] / norm + 0.0;
        g.direction[1][c] = -col[1] / norm + 0.0;
        g.direction[2][c] = col[2] / norm + 0.0;
    }
    g.origin = [-a[0][3] + 0.0, -a[1][3] + 0.0, a[2][3] + 0.0];
    g.validate()?;
    Ok(g)
}

/// The voxel-to-RAS affine of an LPS geometry.
pub fn ras_affine(g: &Geometry) -> [[f64; 4]; 3] {
    let lps = g.affine_lps();
    let mut a = [[0.0; 4]; 3];
    for c in 0..4 {
        a[0][c] = -lps[0][c];
        a[1][c] = -lps[1][c];
        a[2][c] = lps[2][c];
    }
    a
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 2];
    let mut buf = Vec::new();
    let mut reader = std::io::BufReader::new(file);
    let n = reader.read(&mut head).map_err(|e| Error::io(path, e))?;
    let chained = std::io::Cursor::new(head[..n].to_vec()).chain(reader);
    if n == 2 && head == [0x1f, 0x8b] {
        GzDecoder::new(chained)
            .take(MAX_BYTES)
            .read_to_end(&mut buf)
            .map_err(|e| Error::nifti(path, format!("gzip stream: {e}")))?;
    } else {
        chained
            .take(MAX_BYTES)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(buf)
}

struct Bytes<'a> {
    b: &'a [u8],
    big: bool,
}

impl Bytes<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.arr(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
}

/// Parses and checks a NIfTI-1 or NIfTI-2 header from the start of `bytes`.
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<NiftiHeaderInfo> {
    if bytes.len() < 4 {
        return Err(Error::nifti(
            path,
            format!("file too short for a header ({} bytes)", bytes.len()),
        ));
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (version, big) = match (le, be) {
        (348, _) => (1, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        _ => {
            return Err(Error::nifti(
                path,
                format!("sizeof_hdr is {le}, not 348 (NIfTI-1) or 540 (NIfTI-2)"),
            ))
        }
    };
    let need = if version == 1 { 348 } else { 540 };
    if bytes.len() < need {
        return Err(Error::nifti(
            path,
            format!("truncated header: {} of {need} bytes", bytes.len()),
        ));
    }
    let r = Bytes { b: bytes, big };
    let h = if version == 1 {
        let magic = &bytes[344..348];
        if magic != b"n+1\0" {
            return Err(Error::nifti(
                path,
                format!(
                    "magic {:?} is not `n+1` (separate .hdr/.img pairs are not read)",
                    String::from_utf8_lossy(magic)
                ),
            ));
        }
        let ndim = r.i16(40);
        if !(1..=7).contains(&ndim) {
            return Err(Error::nifti(
                path,
                format!("dim[0] = {ndim} is not in 1..=7"),
            ));
        }
        let mut dims = Vec::new();
        for d in 1..=ndim as usize {
            let v = r.i16(40 + 2 * d);
            if v <= 0 {
                return Err(Error::nifti(
                    path,
                    format!("dim[{d}] = {v}: every dimension must be positive"),
                ));
            }
            dims.push(v as usize);
        }
        let mut pixdim = [0.0; 8];
        for (k, p) in pixdim.iter_mut().enumerate() {
            *p = r.f32(76 + 4 * k);
        }
        let vox = r.f32(108);
        if !(vox.is_finite() && vox >= 0.0) {
            return Err(Error::nifti(
                path,
                format!("vox_offset {vox} is not a valid offset"),
            ));
        }
        NiftiHeaderInfo {
            version,
            dims,
            datatype: r.i16(70),
            pixdim,
            vox_offset: (vox as u64).max(352),
            scl_slope: r.f32(112),
            scl_inter: r.f32(116),
            qform_code: r.i16(252) as i32,
            sform_code: r.i16(254) as i32,
            quatern: [r.f32(256), r.f32(260), r.f32(264)],
            qoffset: [r.f32(268), r.f32(272), r.f32(276)],
            srow: [
                [r.f32(280), r.f32(284), r.f32(288), r.f32(292)],
                [r.f32(296), r.f32(300), r.f32(304), r.f32(308)],
                [r.f32(312), r.f32(316), r.f32(320), r.f32(324)],
            ],
            big_endian: big,
        }
    } else {
        if &bytes[4..8] != b"n+2\0" {
            return Err(Error::nifti(
                path,
                "NIfTI-2 magic is not `n+2` (separate .hdr/.img pairs are not read)",
            ));
        }
        let ndim = r.i64(16);
        if !(1..=7).contains(&ndim) {
            return Err(Error::nifti(
                path,
                format!("dim[0] = {ndim} is not in 1..=7"),
            ));
        }
        let mut dims = Vec::new();
        for d in 1..=ndim as usize {
            let v = r.i64(16 + 8 * d);
            if v <= 0 || v > u32::MAX as i64 {
                return Err(Error::nifti(
                    path,
                    format!("dim[{d}] = {v}: every dimension must be positive"),
                ));
            }
            dims.push(v as usize);
        }
        let mut pixdim = [0.0; 8];
        for (k, p) in pixdim.iter_mut().enumerate() {
            *p = r.f64(104 + 8 * k);
        }
        let vox = r.i64(168);
        if vox < 0 {
            return Err(Error::nifti(path, format!("vox_offset {vox} is negative")));
        }
        let row = |at: usize| [r.f64(at), r.f64(at + 8), r.f64(at + 16), r.f64(at + 24)];
        NiftiHeaderInfo {
            version,
            dims,
            datatype: r.i16(12),
            pixdim,
            vox_offset: (vox as u64).max(544),
            scl_slope: r.f64(176),
            scl_inter: r.f64(184),
            qform_code: r.i32(344),
            sform_code: r.i32(348),
            quatern: [r.f64(352), r.f64(360), r.f64(368)],
            qoffset: [r.f64(376), r.f64(384), r.f64(392)],
            srow: [row(400), row(432), row(464)],
            big_endian: big,
        }
    };
    let bpv = h.bytes_per_voxel().ok_or_else(|| {
        Error::nifti(
            path,
            format!("datatype {} is not a supported scalar type", h.datatype),
        )
    })?;
    let nvox = h
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::nifti(path, format!("dimensions {:?} overflow", h.dims)))?;
    let need = nvox
        .checked_mul(bpv)
        .and_then(|n| n.checked_add(h.vox_offset as usize))
        .ok_or_else(|| Error::nifti(path, format!("dimensions {:?} overflow", h.dims)))?;
    if bytes.len() < need {
        return Err(Error::nifti(
            path,
            format!(
                "truncated: dimensions {:?} of datatype {} need {need} bytes, file has {}",
                h.dims,
                h.datatype,
                bytes.len()
            ),
        ));
    }
    Ok(h)
}

/// Reads a 3D NIfTI-1/NIfTI-2 volume (`.nii` or `.nii.gz`), applying `scl_slope`/`scl_inter`.
///
/// A 4-D file with more than one frame is an error (use [`read_nifti_frame`]); trailing
/// dimensions of size 1 are accepted.
pub fn read_nifti(path: impl AsRef<Path>) -> Result<Volume> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    let h = parse_header(&bytes, path)?;
    let frames: usize = h.dims.iter().skip(3).product();
    if frames > 1 {
        return Err(Error::nifti(
            path,
            format!(
                "{:?} holds {frames} frames; read one with read_nifti_frame",
                h.dims
            ),
        ));
    }
    decode(&bytes, &h, path, 0)
}

/// Reads frame `t` (the 4th dimension) of a NIfTI file as a volume.
pub fn read_nifti_frame(path: impl AsRef<Path>, t: usize) -> Result<Volume> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    let h = parse_header(&bytes, path)?;
    let frames: usize = h.dims.iter().skip(3).product();
    if t >= frames {
        return Err(Error::nifti(
            path,
            format!("frame {t} requested, file has {frames}"),
        ));
    }
    decode(&bytes, &h, path, t)
}

/// Reads only the header of a NIfTI-1/NIfTI-2 file.
pub fn read_nifti_header(path: impl AsRef<Path>) -> Result<NiftiHeaderInfo> {
    let path = path.as_ref();
    parse_header(&read_bytes(path)?, path)
}

/// Decodes a NIfTI file held in memory (`.nii` bytes, already decompressed).
pub fn read_nifti_bytes(bytes: &[u8], name: &Path) -> Result<Volume> {
    let h = parse_header(bytes, name)?;
    let frames: usize = h.dims.iter().skip(3).product();
    if frames > 1 {
        return Err(Error::nifti(
            name,
            format!("{:?} holds {frames} frames", h.dims),
        ));
    }
    decode(bytes, &h, name, 0)
}

fn decode(bytes: &[u8], h: &NiftiHeaderInfo, path: &Path, frame: usize) -> Result<Volume> {
    let dims3 = [
        h.dims[0],
        h.dims.get(1).copied().unwrap_or(1),
        h.dims.get(2).copied().unwrap_or(1),
    ];
    let per_frame = dims3[0] * dims3[1] * dims3[2];
    let data = if h.version == 1 {
        decode_nifti1(bytes, h, path, frame, per_frame)?
    } else {
        decode_raw(bytes, h, frame, per_frame)
    };
    let geometry = geometry_from_ras(&h.best_affine_ras())
        .map_err(|e| Error::nifti(path, format!("unusable affine: {e}")))?;
    let mut v = Volume::new(data, dims3, geometry)?;
    // scl_slope/scl_inter are applied above (as nibabel's get_fdata does): nothing left to apply.
    v.meta.rescale_slope = 1.0;
    v.meta.rescale_intercept = 0.0;
    v.meta.intensity = Intensity::Raw;
    v.meta.series_uid = path.file_name().map(|n| {
        let n = n.to_string_lossy();
        n.trim_end_matches(".gz")
            .trim_end_matches(".nii")
            .to_string()
    });
    Ok(v)
}

/// NIfTI-1 voxel decoding through the `nifti` crate (header already validated).
fn decode_nifti1(
    bytes: &[u8],
    h: &NiftiHeaderInfo,
    path: &Path,
    frame: usize,
    per_frame: usize,
) -> Result<Vec<f32>> {
    // Where the nifti crate reads a header differently from nibabel, the copy it gets is patched
    // to what nibabel reads: it multiplies by a NaN slope (nibabel ignores it), and it sizes the
    // voxel data by `bitpix` where nibabel uses `datatype` (a mismatch made it panic).
    let bitpix = Bytes {
        b: bytes,
        big: h.big_endian,
    }
    .i16(72);
    let want_bitpix = h.bytes_per_voxel().map(|b| 8 * b as i16);
    let nan_slope = h.scaling().is_none() && h.scl_slope != 0.0;
    let patched;
    let src: &[u8] = if nan_slope || want_bitpix.is_some_and(|b| b != bitpix) {
        let mut o = bytes.to_vec();
        // Written in the file's byte order (the `Bytes` reader's convention: little-endian
        // bytes, reversed for a big-endian file).
        let mut put = |at: usize, mut le: Vec<u8>| {
            if h.big_endian {
                le.reverse();
            }
            o[at..at + le.len()].copy_from_slice(&le);
        };
        if nan_slope {
            put(112, 0f32.to_le_bytes().to_vec());
        }
        if let Some(b) = want_bitpix {
            put(72, b.to_le_bytes().to_vec());
        }
        patched = o;
        &patched
    } else {
        bytes
    };
    // Any other panic inside the nifti crate on a corrupt file becomes this file's error.
    let decoded = std::panic::catch_unwind(|| -> Result<_> {
        let obj = nifti::InMemNiftiObject::from_reader(std::io::Cursor::new(src))
            .map_err(|e| Error::nifti(path, e.to_string()))?;
        let vol = obj.into_volume();
        let n: usize = vol.dim().iter().map(|&d| d as usize).product();
        let arr = nifti::IntoNdArray::into_ndarray::<f32>(vol)
            .map_err(|e| Error::nifti(path, e.to_string()))?;
        Ok((n, arr))
    })
    .map_err(|_| Error::nifti(path, "the NIfTI decoder failed on corrupt data"))?;
    let (n, arr) = decoded?;
    if arr.len() != n {
        return Err(Error::nifti(
            path,
            "decoded voxel count does not match the header",
        ));
    }
    // The array is indexed [i, j, k, ...]; reversing the axes and iterating in logical order gives
    // i fastest, the layout of Volume, whatever the memory order.
    let rev = arr.reversed_axes();
    Ok(rev
        .iter()
        .skip(frame * per_frame)
        .take(per_frame)
        .copied()
        .collect())
}

/// Voxel decoding for NIfTI-2, which the `nifti` crate cannot read.
fn decode_raw(bytes: &[u8], h: &NiftiHeaderInfo, frame: usize, per_frame: usize) -> Vec<f32> {
    let bpv = h.bytes_per_voxel().unwrap_or(1);
    let start = h.vox_offset as usize + frame * per_frame * bpv;
    let raw = &bytes[start..start + per_frame * bpv];
    let r = Bytes {
        b: raw,
        big: h.big_endian,
    };
    let (slope, inter) = h.scaling().unwrap_or((1.0, 0.0));
    let conv = |k: usize| -> f64 {
        let at = k * bpv;
        match h.datatype {
            2 => raw[at] as f64,
            256 => raw[at] as i8 as f64,
            4 => r.i16(at) as f64,
            512 => r.i16(at) as u16 as f64,
            8 => r.i32(at) as f64,
            768 => r.i32(at) as u32 as f64,
            16 => r.f32(at),
            64 => r.f64(at),
            1024 => r.i64(at) as f64,
            _ => r.i64(at) as u64 as f64,
        }
    };
    (0..per_frame)
        .map(|k| (conv(k) * slope + inter) as f32)
        .collect()
}

/// Voxel type written to disk by [`write_nifti`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NiftiDtype {
    /// 32-bit float (datatype 16): exact.
    #[default]
    F32,
    /// 16-bit signed integer (datatype 4): values rounded and clamped; suits HU volumes.
    I16,
    /// 8-bit unsigned integer (datatype 2): values rounded and clamped; suits masks.
    U8,
}

/// Quaternion (b, c, d) and qfac of an orthonormal rotation, as `nifti_mat44_to_quatern`.
fn quaternion(r: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let mut r = r;
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, mut b, mut c, mut d): (f64, f64, f64, f64);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    ([b, c, d], qfac)
}

/// Encodes a volume as NIfTI-1 bytes (uncompressed `.nii`).
pub fn encode_nifti(volume: &Volume, dtype: NiftiDtype) -> Vec<u8> {
    let [nx, ny, nz] = volume.dims();
    let g = volume.geometry();
    let aff = ras_affine(g);
    let mut rot = [[0.0; 3]; 3];
    for (r, row) in rot.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = aff[r][c] / g.spacing[c];
        }
    }
    let (q, qfac) = quaternion(rot);
    let (code, bitpix, bpv): (i16, i16, usize) = match dtype {
        NiftiDtype::F32 => (16, 32, 4),
        NiftiDtype::I16 => (4, 16, 2),
        NiftiDtype::U8 => (2, 8, 1),
    };
    let mut h = vec![0u8; 352];
    let put = |h: &mut Vec<u8>, at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(&mut h, 0, &348i32.to_le_bytes());
    let dim: [i16; 8] = [3, nx as i16, ny as i16, nz as i16, 1, 1, 1, 1];
    for (k, d) in dim.iter().enumerate() {
        put(&mut h, 40 + 2 * k, &d.to_le_bytes());
    }
    put(&mut h, 70, &code.to_le_bytes());
    put(&mut h, 72, &bitpix.to_le_bytes());
    let pixdim = [
        qfac,
        g.spacing[0],
        g.spacing[1],
        g.spacing[2],
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (k, p) in pixdim.iter().enumerate() {
        put(&mut h, 76 + 4 * k, &(*p as f32).to_le_bytes());
    }
    put(&mut h, 108, &352f32.to_le_bytes());
    put(&mut h, 112, &1f32.to_le_bytes());
    put(&mut h, 116, &0f32.to_le_bytes());
    h[123] = 2; // xyzt_units: millimetres
    let descrip = b"med-io";
    put(&mut h, 148, descrip);
    put(&mut h, 252, &1i16.to_le_bytes()); // qform_code: scanner
    put(&mut h, 254, &1i16.to_le_bytes()); // sform_code: scanner
    for k in 0..3 {
        put(&mut h, 256 + 4 * k, &(q[k] as f32).to_le_bytes());
        put(&mut h, 268 + 4 * k, &(aff[k][3] as f32).to_le_bytes());
        for c in 0..4 {
            put(
                &mut h,
                280 + 16 * k + 4 * c,
                &(aff[k][c] as f32).to_le_bytes(),
            );
        }
    }
    put(&mut h, 344, b"n+1\0");
    h.reserve(volume.len() * bpv);
    for &v in volume.data() {
        match dtype {
            NiftiDtype::F32 => h.extend_from_slice(&v.to_le_bytes()),
            NiftiDtype::I16 => {
                let x = if v.is_nan() {
                    0.0
                } else {
                    v.round().clamp(i16::MIN as f32, i16::MAX as f32)
                };
                h.extend_from_slice(&(x as i16).to_le_bytes())
            }
            NiftiDtype::U8 => {
                let x = if v.is_nan() {
                    0.0
                } else {
                    v.round().clamp(0.0, 255.0)
                };
                h.push(x as u8)
            }
        }
    }
    h
}

/// Writes a volume as NIfTI-1, gzip-compressed when `path` ends in `.gz`, atomically.
///
/// The qform and sform (both code 1, scanner) hold the geometry, so nibabel, SimpleITK and
/// [`read_nifti`] recover the same spacing, origin and direction.
pub fn write_nifti(volume: &Volume, path: impl AsRef<Path>, dtype: NiftiDtype) -> Result<()> {
    let path = path.as_ref();
    let [nx, ny, nz] = volume.dims();
    if [nx, ny, nz].iter().any(|&d| d > i16::MAX as usize) {
        return Err(Error::nifti(
            path,
            format!("dimensions {:?} exceed NIfTI-1's 32767", volume.dims()),
        ));
    }
    let bytes = encode_nifti(volume, dtype);
    let gz = path.extension().is_some_and(|e| e == "gz");
    if gz {
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&bytes).map_err(|e| Error::io(path, e))?;
        let out = enc.finish().map_err(|e| Error::io(path, e))?;
        write_atomic(path, &out)
    } else {
        write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Geometry {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        Geometry {
            spacing: [0.7, 0.9, 2.5],
            origin: [-120.0, 35.5, 410.0],
            direction: [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]],
        }
    }

    fn sample() -> Volume {
        let data: Vec<f32> = (0..5 * 4 * 3).map(|v| v as f32 * 1.5 - 20.0).collect();
        Volume::new(data, [5, 4, 3], oblique()).unwrap()
    }

    #[test]
    fn write_read_round_trip_keeps_geometry_and_values() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.nii", "a.nii.gz"] {
            let p = dir.path().join(name);
            let v = sample();
            write_nifti(&v, &p, NiftiDtype::F32).unwrap();
            let back = read_nifti(&p).unwrap();
            assert_eq!(back.dims(), v.dims());
            assert_eq!(back.data(), v.data());
            let (a, b) = (back.geometry(), v.geometry());
            for r in 0..3 {
                assert!((a.spacing[r] - b.spacing[r]).abs() < 1e-5);
                assert!((a.origin[r] - b.origin[r]).abs() < 1e-3);
                for c in 0..3 {
                    assert!((a.direction[r][c] - b.direction[r][c]).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn qform_alone_matches_sform() {
        let v = sample();
        let mut bytes = encode_nifti(&v, NiftiDtype::I16);
        bytes[254..256].copy_from_slice(&0i16.to_le_bytes()); // drop the sform
        let back = read_nifti_bytes(&bytes, Path::new("q.nii")).unwrap();
        let (a, b) = (back.geometry(), v.geometry());
        for r in 0..3 {
            assert!((a.origin[r] - b.origin[r]).abs() < 1e-3);
            for c in 0..3 {
                assert!(
                    (a.direction[r][c] - b.direction[r][c]).abs() < 1e-5,
                    "{a:?} vs {b:?}"
                );
            }
        }
        let want: Vec<f32> = v.data().iter().map(|x| x.round()).collect();
        assert_eq!(back.data(), &want[..]);
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let p = Path::new("bad.nii");
        let good = encode_nifti(&sample(), NiftiDtype::U8);
        assert!(matches!(
            read_nifti_bytes(&good[..100], p),
            Err(Error::Nifti { .. })
        ));
        assert!(matches!(
            read_nifti_bytes(&good[..good.len() - 1], p),
            Err(Error::Nifti { .. })
        ));
        let mut zero = good.clone();
        zero[44..46].copy_from_slice(&0i16.to_le_bytes());
        let err = read_nifti_bytes(&zero, p).unwrap_err().to_string();
        assert!(err.contains("bad.nii") && err.contains("dim[2]"), "{err}");
        let mut dt = good.clone();
        dt[70..72].copy_from_slice(&128i16.to_le_bytes());
        assert!(matches!(read_nifti_bytes(&dt, p), Err(Error::Nifti { .. })));
        assert!(matches!(
            read_nifti(Path::new("/nonexistent/x.nii")),
            Err(Error::Io { .. })
        ));
    }
}
