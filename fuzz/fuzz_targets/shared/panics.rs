//! What the DICOM fuzz targets share.

/// dicom-rs 0.10.1's pixel-data adapters (dicom-transfer-syntax-registry's `src/adapters/`) index
/// out of bounds on some corrupt streams (RLE, JPEG 2000); med-io runs them under `catch_unwind`
/// and returns the file's error (catalogue: `fuzz/rle_decoder_index_panic.dcm`,
/// `fuzz/jpeg2k_adapter_range_panic.dcm`). libFuzzer's panic hook aborts on every panic, caught or
/// not, so panics located in those adapters are let through to med-io's handler; any other panic
/// still aborts and is reported.
pub fn allow_caught_decoder_panics() {
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
