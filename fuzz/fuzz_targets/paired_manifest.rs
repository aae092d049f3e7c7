//! The paired-cohort CSV, with file paths resolved from a folder that holds a few files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in(std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into()))
        .expect("a temporary folder");
    for name in ["a.nii.gz", "b.png", "c.dcm"] {
        std::fs::write(dir.path().join(name), b"x").expect("write a file");
    }
    let csv = dir.path().join("cohort.csv");
    std::fs::write(&csv, data).expect("write the manifest");
    let _ = med_io::manifest::read_paired_manifest(&csv, Some(dir.path()), Some(dir.path()));
    let _ = med_io::manifest::read_paired_manifest(&csv, None, None);
});
