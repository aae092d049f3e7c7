//! A DICOM series folder: the input is split at each `\xff\xfe\xfd\xfc` marker into up to eight
//! files, written to a temporary folder and read as one series (sorting, spacing, orientation and
//! pixel checks across slices).
#![no_main]

use libfuzzer_sys::fuzz_target;

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

/// dicom-rs 0.10.1's pixel-data adapters (dicom-transfer-syntax-registry's `src/adapters/`) index
/// out of bounds on some corrupt streams (RLE, JPEG 2000); med-io runs them under `catch_unwind`
/// and returns the file's error (catalogue: `fuzz/rle_decoder_index_panic.dcm`,
/// `fuzz/jpeg2k_adapter_range_panic.dcm`). libFuzzer's panic hook aborts on every panic, caught or
/// not, so panics located in those adapters are let through to med-io's handler; any other panic
/// still aborts and is reported.
fn allow_caught_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let known = info
                .location()
                .is_some_and(|l| {
                    l.file().contains("dicom-transfer-syntax-registry")
                        && l.file().contains("/src/adapters/")
                });
            if !known {
                report(info);
            }
        }));
    });
}
