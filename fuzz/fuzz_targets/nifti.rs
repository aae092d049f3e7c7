//! A NIfTI-1/2 file held in memory, plain or gzip-compressed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = med_io::nifti_io::read_nifti_bytes(data, Path::new("fuzz.nii"));
});
