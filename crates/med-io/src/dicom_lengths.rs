//! Declared element lengths checked against the file's size before dicom-rs reads the file.
//!
//! dicom-rs 0.10 reserves and zero-fills a value's declared length before reading it, so a 40 kB
//! file whose PixelData claims 4 GB costs 4 GB of memory and seconds of page faults before the read
//! fails (dicom-rs issues #543, #547). This pass reads the file meta group as dicom-rs reads it
//! (its group length first), then the data set with dicom-rs's own data set reader, token by
//! token, checking each header before the value it announces is read, so the framing is exactly
//! the one the full read uses. Every definite value length must fit in what is left of the file
//! (of the inflated data set, for a deflated one) and sequences nest at most [`MAX_DEPTH`] deep. Where the bytes cannot
//! be framed the pass stops and leaves the error to dicom-rs: the values it read up to there fit.

use std::path::Path;

use crate::error::{Error, Result};

/// Sequences nested deeper than this are refused (real files nest a few levels).
const MAX_DEPTH: usize = 32;
const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);

/// Why the walk ended early without finding a fault.
enum Stop {
    /// The bytes at hand ran out or could not be framed: nothing more is checked.
    Unknown,
    /// A declared length does not fit.
    Fault(String),
}

type Walk<T> = std::result::Result<T, Stop>;

struct Cursor<'a> {
    /// The bytes at hand: the file from its `DICM` marker, or a prefix of it.
    buf: &'a [u8],
    /// Where the file (from the same origin) really ends.
    file_len: u64,
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Walk<&[u8]> {
        let end = self.pos.checked_add(n).ok_or(Stop::Unknown)?;
        let s = self.buf.get(self.pos..end).ok_or(Stop::Unknown)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Walk<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Walk<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Where a value of declared length `len` starting here ends; a fault if past the file's end.
    fn end_of(&self, len: u32, tag: (u16, u16)) -> Walk<u64> {
        let end = self.pos as u64 + u64::from(len);
        if end > self.file_len {
            return Err(Stop::Fault(format!(
                "element ({:04X},{:04X}) declares {len} bytes at offset {}, but the file has only {} more",
                tag.0,
                tag.1,
                self.pos,
                self.file_len.saturating_sub(self.pos as u64)
            )));
        }
        Ok(end)
    }

    /// Moves to `end`; past the bytes at hand (a prefix of the file) nothing more is checked.
    fn seek(&mut self, end: u64) -> Walk<()> {
        match usize::try_from(end) {
            Ok(e) if e <= self.buf.len() => {
                self.pos = e;
                Ok(())
            }
            _ => Err(Stop::Unknown),
        }
    }
}

/// Value representations whose explicit-VR header has a 16-bit length (PS3.5 7.1.2); every other
/// one, and any two bytes that name no VR (read as UN, as dicom-rs does), has two reserved bytes
/// and a 32-bit length.
fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// The declared length of an explicit-VR element header, read after its tag.
fn explicit_length(c: &mut Cursor) -> Walk<u32> {
    let vr = c.take(2)?;
    if short_vr(vr) {
        Ok(u32::from(c.u16()?))
    } else {
        c.take(2)?;
        c.u32()
    }
}

/// What a raw deflate stream inflates to, up to its end or its first corrupt byte. Deflate expands
/// at most 1032-fold, so this is bounded by the file's size.
fn inflate(compressed: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut d = flate2::read::DeflateDecoder::new(compressed);
    let mut chunk = [0u8; 1 << 14];
    while let Ok(n) = d.read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out
}

/// The transfer syntax UID of deflated explicit VR little endian, as it appears in a file's meta.
pub(crate) const DEFLATED: &[u8] = b"1.2.840.10008.1.2.1.99";

/// Checks the declared lengths of `buf` (the file from its `DICM` marker, or a prefix of it) against
/// `file_len` (the length of the same from the marker).
pub(crate) fn check_declared_lengths(buf: &[u8], file_len: u64, path: &Path) -> Result<()> {
    let mut c = Cursor {
        buf,
        file_len,
        pos: 4,
    };
    let fault = |m: String| Error::dicom(path, format!("corrupt file: {m}"));
    // File meta information, explicit VR little endian: dicom-rs reads the group length first and
    // then elements (of any group) until that many bytes are consumed.
    let mut syntax = String::new();
    let meta = (|| -> Walk<()> {
        let tag = (c.u16()?, c.u16()?);
        let len = explicit_length(&mut c)?;
        if tag != (0x0002, 0x0000) || len != 4 {
            return Err(Stop::Unknown);
        }
        let group_length = u64::from(c.u32()?);
        let start = c.pos as u64;
        while (c.pos as u64) - start < group_length {
            let tag = (c.u16()?, c.u16()?);
            let len = if tag.0 == 0xFFFE {
                c.u32()?
            } else {
                explicit_length(&mut c)?
            };
            if len == UNDEFINED {
                return Err(Stop::Unknown);
            }
            let value = c.pos;
            let end = c.end_of(len, tag)?;
            c.seek(end)?;
            if tag == (0x0002, 0x0010) {
                syntax = String::from_utf8_lossy(&buf[value..c.pos])
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            }
        }
        Ok(())
    })();
    match meta {
        Ok(()) => {}
        Err(Stop::Unknown) => return Ok(()),
        Err(Stop::Fault(m)) => return Err(fault(m)),
    }
    // The data set, framed by dicom-rs's own reader.
    let deflated = syntax.as_bytes() == DEFLATED;
    let inflated;
    let (source, total, syntax) = if deflated {
        inflated = inflate(&buf[c.pos..]);
        (&inflated[..], inflated.len() as u64, "1.2.840.10008.1.2.1")
    } else {
        (&buf[c.pos..], file_len - c.pos as u64, syntax.as_str())
    };
    match token_walk(source, total, syntax) {
        Ok(()) | Err(Stop::Unknown) => Ok(()),
        Err(Stop::Fault(m)) if deflated => Err(fault(format!("in the deflated data set, {m}"))),
        Err(Stop::Fault(m)) => Err(fault(m)),
    }
}

/// Counts the bytes the parser has consumed.
struct Counting<'a> {
    inner: &'a [u8],
    pos: std::rc::Rc<std::cell::Cell<u64>>,
}

impl std::io::Read for Counting<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

/// Every declared length in `source` (a data set of `total` bytes, of which `source` may be a
/// prefix) must fit in what is left of it; sequences may nest at most [`MAX_DEPTH`] deep. The
/// data set is read with dicom-rs's own reader, as `dicom-object` reads it, one token at a time:
/// each header is checked before the value it announces is read.
fn token_walk(source: &[u8], total: u64, syntax: &str) -> Walk<()> {
    use dicom_parser::dataset::{DataSetReader, DataToken};
    use dicom_transfer_syntax_registry::TransferSyntaxIndex;
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let Some(ts) = registry.get(syntax) else {
        return Err(Stop::Unknown);
    };
    let pos = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counting = Counting {
        inner: source,
        pos: pos.clone(),
    };
    let reader = DataSetReader::new_with_ts_options(counting, ts, Default::default())
        .map_err(|_| Stop::Unknown)?;
    let mut depth = 0usize;
    for token in reader {
        let (len, tag) = match token.map_err(|_| Stop::Unknown)? {
            DataToken::SequenceStart { .. } | DataToken::PixelSequenceStart => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Stop::Fault(format!(
                        "sequences nested more than {MAX_DEPTH} deep"
                    )));
                }
                continue;
            }
            DataToken::SequenceEnd => {
                depth = depth.saturating_sub(1);
                continue;
            }
            DataToken::ElementHeader(h) => (h.len.0, (h.tag.0, h.tag.1)),
            DataToken::ItemStart { len } => (len.0, ITEM),
            _ => continue,
        };
        let at = pos.get();
        if len != UNDEFINED && at.saturating_add(u64::from(len)) > total {
            return Err(Stop::Fault(format!(
                "element ({:04X},{:04X}) declares {len} bytes at offset {at} of the data set, \
                 which has only {} more",
                tag.0,
                tag.1,
                total.saturating_sub(at)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/dicom")
            .join(name);
        std::fs::read(p).unwrap()[128..].to_vec()
    }

    fn check(b: &[u8]) -> Result<()> {
        check_declared_lengths(b, b.len() as u64, Path::new("t.dcm"))
    }

    /// Explicit VR little endian element header with a 32-bit length.
    fn long_header(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&group.to_le_bytes());
        h.extend_from_slice(&element.to_le_bytes());
        h.extend_from_slice(vr);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&len.to_le_bytes());
        h
    }

    fn item(len: u32) -> Vec<u8> {
        let mut h = vec![0xFE, 0xFF, 0x00, 0xE0];
        h.extend_from_slice(&len.to_le_bytes());
        h
    }

    /// The file meta group of CT_small.dcm (explicit VR little endian) followed by `data`.
    fn with_data_set(data: &[u8]) -> Vec<u8> {
        let b = body("CT_small.dcm");
        let mut at = 4;
        while u16::from_le_bytes([b[at], b[at + 1]]) == 0x0002 {
            let short = u16::from_le_bytes([b[at + 6], b[at + 7]]) as usize;
            at += if !short_vr(&b[at + 4..at + 6]) {
                12 + u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize
            } else {
                8 + short
            };
        }
        let mut out = b[..at].to_vec();
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn valid_files_pass_in_every_encoding() {
        for name in [
            "CT_small.dcm",
            "MR_small.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_RLE.dcm",
            "JPEG2000.dcm",
            "MR_small_jp2klossless.dcm",
            "rtplan.dcm",
            "image_dfl.dcm",
            "cxr_mono1_voilut.dcm",
        ] {
            check(&body(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn a_deflated_data_set_is_walked_inflated() {
        use std::io::Write;
        let b = body("image_dfl.dcm");
        let at = b
            .windows(DEFLATED.len())
            .position(|w| w == DEFLATED)
            .unwrap();
        // The meta ends where its group length says; the rest is the raw deflate stream.
        let group = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
        assert!(at < 16 + group);
        let data = inflate(&b[16 + group..]);
        assert!(data.len() > b.len() - 16 - group, "inflated {}", data.len());
        // An OB claiming 1 GB inside the deflated data set is found.
        let mut bad = data.clone();
        bad.extend(long_header(0x0009, 0x0010, b"OB", 1 << 30));
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&bad).unwrap();
        let mut file = b[..16 + group].to_vec();
        file.extend(z.finish().unwrap());
        let e = check(&file).unwrap_err().to_string();
        assert!(e.contains("deflated") && e.contains("(0009,0010)"), "{e}");
    }

    #[test]
    fn a_truncated_file_is_refused_naming_the_element() {
        let e = check(&body("MR_truncated.dcm")).unwrap_err().to_string();
        assert!(e.contains("(7FE0,0010)") && e.contains("t.dcm"), "{e}");
    }

    #[test]
    fn a_length_inside_a_nested_item_is_checked_against_the_file() {
        // A sequence of undefined length whose item holds an OB claiming 1 GB.
        let mut d = long_header(0x0008, 0x1140, b"SQ", UNDEFINED);
        d.extend(item(UNDEFINED));
        d.extend(long_header(0x0009, 0x0010, b"OB", 1 << 30));
        d.extend([0u8; 16]);
        let e = check(&with_data_set(&d)).unwrap_err().to_string();
        assert!(e.contains("(0009,0010)") && e.contains("1073741824"), "{e}");

        // The same in a sequence and item of definite lengths.
        let inner = {
            let mut v = long_header(0x0009, 0x0010, b"OB", 1 << 30);
            v.extend([0u8; 4]);
            v
        };
        let mut it = item(inner.len() as u32);
        it.extend(&inner);
        let mut d = long_header(0x0008, 0x1140, b"SQ", it.len() as u32);
        d.extend(it);
        assert!(check(&with_data_set(&d)).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut d = Vec::new();
        for _ in 0..40 {
            d.extend(long_header(0x0008, 0x1140, b"SQ", UNDEFINED));
            d.extend(item(UNDEFINED));
        }
        let e = check(&with_data_set(&d)).unwrap_err().to_string();
        assert!(e.contains("nested"), "{e}");
    }

    #[test]
    fn a_prefix_checks_what_it_holds_and_trusts_the_rest() {
        let b = body("CT_small.dcm");
        let len = b.len() as u64;
        check_declared_lengths(&b[..2000], len, Path::new("t.dcm")).unwrap();
        // The same prefix of a file that is really shorter than its pixel data claims.
        let e = check_declared_lengths(&b, 38_000, Path::new("t.dcm")).unwrap_err();
        assert!(e.to_string().contains("(7FE0,0010)"), "{e}");
    }
}
