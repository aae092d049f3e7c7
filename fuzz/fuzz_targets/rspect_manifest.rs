//! RSPECT labels (image-level `train.csv` or an exam-level CSV), with and without a DICOM root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in(std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into()))
        .expect("a temporary folder");
    std::fs::create_dir_all(dir.path().join("s1").join("r1")).expect("a series folder");
    let csv = dir.path().join("train.csv");
    std::fs::write(&csv, data).expect("write the labels");
    let _ = med_io::manifest::read_rspect_labels(&csv, Some(dir.path()));
    let _ = med_io::manifest::read_rspect_labels(&csv, None);
});
