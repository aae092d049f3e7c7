//! One DICOM file held in memory: the CT reader (header, pixel data, geometry) and the radiograph
//! reader (modality and VOI LUTs). Any input must give a value or an error, never a panic or an
//! allocation beyond libFuzzer's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "shared/panics.rs"]
mod panics;
use panics::allow_caught_decoder_panics;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    allow_caught_decoder_panics();
    let _ = med_io::dicom_io::read_dicom_bytes(data, Path::new("fuzz.dcm"));
    let _ = med_io::cxr::read_cxr_dicom_bytes(data, Path::new("fuzz.dcm"));
});
