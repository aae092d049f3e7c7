//! Atomic file output: write a temporary file in the destination's directory, then rename it over
//! the destination (the `tempfile` crate's `persist`), so a reader never sees a half-written table
//! or plot.

use crate::error::{EvalError, Result};
use std::io::Write;
use std::path::Path;
use tempfile::NamedTempFile;

fn io(path: &Path) -> impl Fn(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file next to `path` that keeps its extension (plotters picks the image format from
/// it); removed when dropped unless [`commit`]ted.
pub(crate) fn temp_file(path: &Path) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(".")
        .suffix(&ext)
        .tempfile_in(dir)
        .map_err(io(path))
}

/// Syncs the finished temporary file and renames it onto `path`.
pub(crate) fn commit(tmp: NamedTempFile, path: &Path) -> Result<()> {
    // fsync through this handle also covers bytes a backend wrote through its own.
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_file(path)?;
    tmp.write_all(bytes).map_err(io(path))?;
    commit(tmp, path)
}
