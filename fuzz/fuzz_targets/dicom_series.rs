//! A DICOM series folder: the input is split at each `\xff\xfe\xfd\xfc` marker into up to eight
//! files, written to a temporary folder and read as one series (sorting, spacing, orientation and
//! pixel checks across slices).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "shared/panics.rs"]
mod panics;
use panics::allow_caught_decoder_panics;

const SPLIT: &[u8] = b"\xff\xfe\xfd\xfc";

fuzz_target!(|data: &[u8]| {
    allow_caught_decoder_panics();
    let dir = tempfile::tempdir_in(std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into()))
        .expect("a temporary folder");
    let mut rest = data;
    for i in 0..8 {
        let (file, next) = match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(at) => (&rest[..at], Some(&rest[at + SPLIT.len()..])),
            None => (rest, None),
        };
        std::fs::write(dir.path().join(format!("{i}.dcm")), file).expect("write a slice");
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let _ = med_io::read_dicom_series(dir.path());
});
