//! A catalogue of malformed inputs: each must give a typed error that names the file (or the row
//! or field), never a panic and never a result. The property tests in `properties.rs` throw random
//! bytes at the readers; this file states, case by case, what a user gets for the broken files that
//! occur in practice.

use std::path::{Path, PathBuf};

use med_io::manifest::{read_paired_manifest, read_rspect_labels};
use med_io::nifti_io::{encode_nifti, read_nifti_bytes};
use med_io::{
    read_dicom_file, read_dicom_series, read_nifti, read_nifti_frame, read_raster, CtPreprocess,
    Error, Geometry, NiftiDtype, Volume,
};

fn dicom(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dicom")
        .join(name)
}

fn volume(dims: [usize; 3]) -> Volume {
    let n = dims.iter().product();
    let data = (0..n).map(|i| (i % 7) as f32 * 10.0 - 20.0).collect();
    Volume::new(data, dims, Geometry::with_spacing([1.0, 1.0, 2.0])).unwrap()
}

/// A valid NIfTI-1 (`.nii`) of a 4 x 3 x 2 volume, 16-bit.
fn nifti() -> Vec<u8> {
    encode_nifti(&volume([4, 3, 2]), NiftiDtype::I16)
}

fn set_i16(bytes: &mut [u8], at: usize, v: i16) {
    bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Asserts that `r` is an error whose message contains every one of `needles`, and returns it.
#[track_caller]
fn fails<T: std::fmt::Debug>(r: med_io::Result<T>, needles: &[&str]) -> Error {
    let e = r.expect_err("a malformed input was accepted");
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "`{msg}` does not mention `{n}`");
    }
    e
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------- NIfTI ----------

#[test]
fn nifti_empty_file() {
    let e = fails(
        read_nifti_bytes(&[], Path::new("empty.nii")),
        &["empty.nii"],
    );
    assert!(matches!(e, Error::Nifti { .. }), "{e:?}");
}

#[test]
fn nifti_truncated_header() {
    let b = nifti();
    fails(
        read_nifti_bytes(&b[..200], Path::new("short.nii")),
        &["short.nii"],
    );
}

#[test]
fn nifti_truncated_voxels() {
    let b = nifti();
    let cut = b.len() - 5;
    fails(
        read_nifti_bytes(&b[..cut], Path::new("cut.nii")),
        &["cut.nii"],
    );
}

#[test]
fn nifti_wrong_header_size() {
    let mut b = nifti();
    b[0..4].copy_from_slice(&123i32.to_le_bytes());
    fails(read_nifti_bytes(&b, Path::new("size.nii")), &["size.nii"]);
}

#[test]
fn nifti_zero_rank() {
    let mut b = nifti();
    set_i16(&mut b, 40, 0);
    fails(read_nifti_bytes(&b, Path::new("rank0.nii")), &["rank0.nii"]);
}

#[test]
fn nifti_rank_above_seven() {
    let mut b = nifti();
    set_i16(&mut b, 40, 8);
    fails(read_nifti_bytes(&b, Path::new("rank8.nii")), &["rank8.nii"]);
}

#[test]
fn nifti_zero_dimension() {
    let mut b = nifti();
    set_i16(&mut b, 42, 0);
    fails(read_nifti_bytes(&b, Path::new("zero.nii")), &["zero.nii"]);
}

#[test]
fn nifti_negative_dimension() {
    let mut b = nifti();
    set_i16(&mut b, 44, -3);
    fails(read_nifti_bytes(&b, Path::new("neg.nii")), &["neg.nii"]);
}

#[test]
fn nifti_huge_dimensions_in_a_small_file_are_refused_before_allocating() {
    let mut b = nifti();
    for at in [42, 44, 46] {
        set_i16(&mut b, at, 30_000);
    }
    fails(read_nifti_bytes(&b, Path::new("huge.nii")), &["huge.nii"]);
}

#[test]
fn nifti_unknown_datatype() {
    let mut b = nifti();
    set_i16(&mut b, 70, 9999);
    fails(read_nifti_bytes(&b, Path::new("dtype.nii")), &["dtype.nii"]);
}

#[test]
fn nifti_voxel_offset_past_the_end() {
    let mut b = nifti();
    b[108..112].copy_from_slice(&1.0e6f32.to_le_bytes());
    fails(
        read_nifti_bytes(&b, Path::new("offset.nii")),
        &["offset.nii"],
    );
}

#[test]
fn nifti_gzip_that_is_not_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.nii.gz",
        b"\x1f\x8b\x08garbage that is not deflate",
    );
    fails(read_nifti(&p), &["bad.nii.gz"]);
}

#[test]
fn nifti_bitpix_that_disagrees_with_the_datatype_is_read_by_the_datatype_as_nibabel_does() {
    // Found by the fuzzer: the nifti crate sized the voxel data by bitpix and panicked.
    let good = nifti();
    let mut b = good.clone();
    set_i16(&mut b, 72, 0);
    let a = read_nifti_bytes(&good, Path::new("a.nii")).unwrap();
    let z = read_nifti_bytes(&b, Path::new("z.nii")).unwrap();
    assert_eq!(a.data(), z.data());
}

#[test]
fn nifti_missing_file() {
    fails(
        read_nifti("/no/such/dir/ct.nii.gz"),
        &["/no/such/dir/ct.nii.gz"],
    );
}

/// A 4-D NIfTI (a time series) is refused by `read_nifti` with a message that says how to read
/// it, and read frame by frame by `read_nifti_frame`, as nibabel's `dataobj[..., t]` reads it.
#[test]
fn nifti_four_dimensional() {
    let dir = tempfile::tempdir().unwrap();
    let single = read_nifti_bytes(&nifti(), Path::new("one.nii")).unwrap();
    let mut b = nifti();
    set_i16(&mut b, 40, 4);
    set_i16(&mut b, 48, 2);
    let offset = f32::from_le_bytes(b[108..112].try_into().unwrap()) as usize;
    let frame_bytes = b.len() - offset;
    let first = b[offset..].to_vec();
    b.extend_from_slice(&first);
    assert_eq!(b.len(), offset + 2 * frame_bytes);
    let p = write(dir.path(), "series.nii", &b);
    fails(read_nifti(&p), &["series.nii", "read_nifti_frame"]);
    // Both frames hold the 3-D file's voxels (the second is a copy of the first).
    for t in 0..2 {
        let f = read_nifti_frame(&p, t).unwrap();
        assert_eq!(f.dims(), single.dims());
        assert_eq!(f.data(), single.data());
    }
    fails(read_nifti_frame(&p, 2), &["series.nii"]);
}

// ---------- DICOM ----------

#[test]
fn dicom_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.dcm", &[]);
    let e = fails(read_dicom_file(&p), &["empty.dcm"]);
    assert!(matches!(e, Error::Dicom { .. }), "{e:?}");
}

#[test]
fn dicom_random_bytes_behind_a_valid_preamble() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = vec![0u8; 128];
    b.extend_from_slice(b"DICM");
    b.extend((0..300).map(|i| (i * 37 % 251) as u8));
    let p = write(dir.path(), "noise.dcm", &b);
    fails(read_dicom_file(&p), &["noise.dcm"]);
}

#[test]
fn dicom_truncated_pixel_data() {
    let e = fails(
        read_dicom_file(dicom("MR_truncated.dcm")),
        &["MR_truncated.dcm"],
    );
    assert!(matches!(e, Error::Dicom { .. }), "{e:?}");
}

#[test]
fn dicom_cut_in_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(dicom("CT_small.dcm")).unwrap();
    let p = write(dir.path(), "cut.dcm", &b[..400]);
    fails(read_dicom_file(&p), &["cut.dcm"]);
}

#[test]
fn dicom_without_pixel_data() {
    // An RT plan carries no image.
    fails(read_dicom_file(dicom("rtplan.dcm")), &["rtplan.dcm"]);
}

/// CT_small.dcm (explicit VR little endian) with the US element `(group, element)` set to `v`.
fn ct_small_with_us(group: u16, element: u16, v: u16) -> Vec<u8> {
    let mut b = std::fs::read(dicom("CT_small.dcm")).unwrap();
    let mut key = Vec::new();
    key.extend_from_slice(&group.to_le_bytes());
    key.extend_from_slice(&element.to_le_bytes());
    key.extend_from_slice(b"US\x02\x00");
    let at = b.windows(8).position(|w| w == key.as_slice()).unwrap() + 8;
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn dicom_rgb_is_refused_as_not_greyscale() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "rgb.dcm", &ct_small_with_us(0x0028, 0x0002, 3));
    let e = fails(read_dicom_file(&p), &["rgb.dcm", "3 samples per pixel"]);
    assert!(matches!(e, Error::Dicom { .. }), "{e:?}");
    fails(med_io::read_cxr_dicom(&p), &["rgb.dcm"]);
}

#[test]
fn dicom_zero_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "rows0.dcm",
        &ct_small_with_us(0x0028, 0x0010, 0),
    );
    fails(read_dicom_file(&p), &["rows0.dcm"]);
}

#[test]
fn dicom_huge_rows_and_columns_in_a_small_file_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ct_small_with_us(0x0028, 0x0010, u16::MAX);
    let cols = ct_small_with_us(0x0028, 0x0011, u16::MAX);
    let at = b.iter().zip(&cols).position(|(x, y)| x != y).unwrap();
    b[at..at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    let p = write(dir.path(), "huge.dcm", &b);
    fails(read_dicom_file(&p), &["huge.dcm", "pixel data"]);
}

#[test]
fn dicom_unsupported_bits_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bits12.dcm",
        &ct_small_with_us(0x0028, 0x0100, 12),
    );
    fails(read_dicom_file(&p), &["bits12.dcm", "BitsAllocated 12"]);
}

#[test]
fn dicom_element_length_past_the_end_of_the_file_is_refused_before_allocating() {
    // PixelData declares 4 GB in a 39 kB file (dicom-rs issues #543/#547: unbounded allocation).
    let dir = tempfile::tempdir().unwrap();
    let mut b = std::fs::read(dicom("CT_small.dcm")).unwrap();
    let at = b
        .windows(8)
        .position(|w| w == b"\xe0\x7f\x10\x00OW\x00\x00")
        .unwrap()
        + 8;
    b[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let p = write(dir.path(), "long.dcm", &b);
    fails(read_dicom_file(&p), &["long.dcm"]);
    fails(med_io::read_cxr_dicom(&p), &["long.dcm"]);
}

/// Inputs the fuzzer (fuzz/, docs/fuzzing.md) found, each once an allocation of gigabytes.
#[test]
fn dicom_fuzz_findings_are_refused_before_allocating() {
    for (name, element) in [
        // the meta group's length puts the data set where zeros and an unknown VR (read as UN,
        // 32-bit length) claim 1.4 GB
        ("meta_group_length_then_un_4gb.dcm", "declares"),
        // an OB of 3.7 GB inside a deflated data set
        ("deflated_ob_3gb.dcm", "deflated"),
        // a value of 1.3 GB inside an item of a sequence of undefined length
        ("sequence_item_lo_1gb.dcm", "declares"),
        // a JPEG 2000 file that dicom-rs frames differently from its lazy reader (1.3 GB)
        ("jpeg2k_meta_then_implicit_1gb.dcm", "declares"),
        // a second `DICM` 128 bytes after the first: dicom-rs looked for a preamble again and
        // read other bytes than the ones checked (a 1.4 GB value); now it reads the same bytes
        ("second_dicm_marker_1gb.dcm", "second_dicm_marker_1gb.dcm"),
    ] {
        let p = dicom(&format!("fuzz/{name}"));
        assert!(p.exists(), "{}", p.display());
        fails(read_dicom_file(&p), &[name, element]);
        fails(med_io::read_cxr_dicom(&p), &[name]);
        fails(med_io::read_dicom_header(&p), &[name]);
    }
    // An RLE frame header naming more than 15 segments (dicom-rs allocated 5.5 GB for them): the
    // header reads, the pixel data is refused before the decoder runs.
    let p = dicom("fuzz/rle_header_segment_count_5gb.dcm");
    med_io::read_dicom_header(&p).unwrap();
    fails(
        read_dicom_file(&p),
        &["rle_header_segment_count_5gb.dcm", "RLE"],
    );
    fails(
        med_io::read_cxr_dicom(&p),
        &["rle_header_segment_count_5gb.dcm"],
    );
}

/// dicom-rs 0.10.1's RLE and JPEG 2000 adapters panic (index out of bounds) on these corrupt
/// streams (found by the fuzzer); the panic must become the file's error.
#[test]
fn dicom_streams_that_panic_dicom_rs_decoders() {
    for name in [
        "rle_decoder_index_panic.dcm",
        "jpeg2k_adapter_range_panic.dcm",
    ] {
        let p = dicom(&format!("fuzz/{name}"));
        let e = fails(read_dicom_file(&p), &[name]);
        assert!(matches!(e, Error::Dicom { .. }), "{e:?}");
    }
}

#[test]
fn dicom_series_folder_missing() {
    fails(read_dicom_series("/no/such/series"), &["/no/such/series"]);
}

#[test]
fn dicom_series_folder_empty() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(
        read_dicom_series(dir.path()),
        &[&dir.path().display().to_string()],
    );
    assert!(matches!(e, Error::Series { .. }), "{e:?}");
}

#[test]
fn dicom_series_of_files_that_are_not_dicom() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.dcm", b"not a dicom file");
    write(dir.path(), "b.dcm", b"nor this one");
    fails(
        read_dicom_series(dir.path()),
        &[&dir.path().display().to_string()],
    );
}

// ---------- Volumes and images ----------

#[test]
fn volume_data_of_the_wrong_length() {
    let e = Volume::new(vec![0.0; 5], [2, 2, 2], Geometry::with_spacing([1.0; 3])).unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e:?}");
}

#[test]
fn volume_with_nan_voxels_is_refused_by_the_ct_preprocessing() {
    let mut v = volume([8, 8, 4]);
    v.data_mut()[5] = f32::NAN;
    fails(CtPreprocess::default().apply(&v), &["NaN", "(5, 0, 0)"]);
}

#[test]
fn png_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let img = med_io::Image2d::new(vec![0.5; 64], 8, 8).unwrap();
    let full = dir.path().join("full.png");
    med_io::write_png(&img, &full, med_io::PngDepth::Eight, (0.0, 1.0)).unwrap();
    let b = std::fs::read(&full).unwrap();
    let p = write(dir.path(), "cut.png", &b[..b.len() / 2]);
    fails(read_raster(&p), &["cut.png"]);
}

// ---------- Manifests ----------

fn manifest(dir: &Path, body: &str) -> PathBuf {
    write(
        dir,
        "cohort.csv",
        format!("CT_Accession_number,cxr_Accession_number,PE,ct_path,cxr_path\n{body}").as_bytes(),
    )
}

fn touch(dir: &Path, name: &str) {
    write(dir, name, b"x");
}

#[test]
fn manifest_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "x1.png");
    let p = manifest(dir.path(), "c1,x1,1,c1.nii.gz,x1.png\n");
    fails(
        read_paired_manifest(&p, None, None),
        &["c1.nii.gz", "line 2"],
    );
}

#[test]
fn manifest_with_duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["c1.nii", "x1.png", "x2.png"] {
        touch(dir.path(), f);
    }
    let p = manifest(dir.path(), "c1,x1,1,c1.nii,x1.png\nc1,x2,0,c1.nii,x2.png\n");
    fails(read_paired_manifest(&p, None, None), &["c1", "line 3"]);
}

#[test]
fn manifest_with_a_label_that_is_not_binary() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["c1.nii", "x1.png"] {
        touch(dir.path(), f);
    }
    let p = manifest(dir.path(), "c1,x1,maybe,c1.nii,x1.png\n");
    fails(read_paired_manifest(&p, None, None), &["PE", "line 2"]);
}

#[test]
fn manifest_without_a_required_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "cohort.csv", b"CT_Accession_number,PE\nc1,1\n");
    fails(
        read_paired_manifest(&p, None, None),
        &["cxr_Accession_number"],
    );
}

#[test]
fn manifest_with_an_empty_accession() {
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "x1.png");
    let p = manifest(dir.path(), ",x1,1,,x1.png\n");
    fails(read_paired_manifest(&p, None, None), &["line 2"]);
}

#[test]
fn manifest_with_a_short_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = manifest(dir.path(), "c1,x1\n");
    fails(read_paired_manifest(&p, None, None), &["cohort.csv"]);
}

#[test]
fn rspect_labels_with_inconsistent_exam_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "train.csv",
        b"StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,negative_exam_for_pe\n\
          s1,r1,i1,1\ns1,r1,i2,0\n",
    );
    fails(read_rspect_labels(&p, None), &["s1", "line 3"]);
}

#[test]
fn rspect_labels_naming_a_missing_series_folder() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "train.csv",
        b"StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\ns1,r1,1\n",
    );
    fails(read_rspect_labels(&p, Some(dir.path())), &["r1"]);
}

#[test]
fn rspect_labels_with_two_series_in_one_study() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "train.csv",
        b"StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,negative_exam_for_pe\n\
          s1,r1,i1,1\ns1,r2,i2,1\n",
    );
    fails(read_rspect_labels(&p, None), &["s1"]);
}
