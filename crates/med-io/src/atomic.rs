//! Atomic file output: write a temporary file in the target's folder, then rename it over the
//! target (the `tempfile` crate's `persist`), so readers never see a half-written file and a failed
//! write leaves the old file as it was.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers never see a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(Error::Param {
            name: "path",
            reason: format!("{} has no file name", path.display()),
        });
    }
    let result = (|| {
        let mut f = tempfile::Builder::new().prefix(".").tempfile_in(dir)?;
        f.write_all(bytes)?;
        f.as_file().sync_all()?;
        f.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    result.map_err(|e| Error::io(path, e))
}
