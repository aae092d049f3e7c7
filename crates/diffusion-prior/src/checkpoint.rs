//! Layout of a trainer checkpoint directory that a crash cannot leave mixed.
//!
//! ```text
//! dir/trainer.json               the commit point: settings, step, and a manifest (size and
//!                                content hash of every file of the snapshot it names)
//! dir/snapshot-<step>-<nonce>/   model/, optimizer.safetensors, ema.safetensors
//! ```
//!
//! A save writes a fresh snapshot folder, then replaces `trainer.json` atomically (the only step
//! that changes what the directory means), then deletes the snapshots it no longer names. A crash
//! before the rename leaves the previous `trainer.json` naming the previous, untouched snapshot; a
//! crash after it leaves only stale folders that the next save removes. Loading checks every file
//! against the manifest, so a directory mixed by hand or by an older layout gives a typed error
//! naming the file instead of silently combining weights from one step with moments of another.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Prefix of snapshot folder names.
const SNAPSHOT_PREFIX: &str = "snapshot-";

/// Size and content hash of one file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileDigest {
    /// Path relative to the snapshot folder, `/`-separated.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// [`content_hash`] as 16 hex digits.
    pub hash: String,
}

/// 64-bit hash of a byte stream: FNV-1a over little-endian 8-byte words (the tail zero-padded),
/// finished with a 64-bit avalanche. Not cryptographic: it detects files from another save, not
/// tampering. Defined here so that it never changes with a toolchain or dependency.
fn content_hash(mut reader: impl Read) -> std::io::Result<(u64, u64)> {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut pending = 0usize;
    loop {
        let n = reader.read(&mut buf[pending..])?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let filled = pending + n;
        let whole = filled / 8 * 8;
        for w in buf[..whole].chunks_exact(8) {
            h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(PRIME);
        }
        buf.copy_within(whole..filled, 0);
        pending = filled - whole;
    }
    if pending > 0 {
        let mut w = [0u8; 8];
        w[..pending].copy_from_slice(&buf[..pending]);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    h ^= total;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    Ok((h, total))
}

fn digest_file(path: &Path) -> Result<(u64, u64)> {
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    content_hash(std::io::BufReader::new(f)).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A new, empty snapshot folder for `step` inside `dir` (a unique name, never an existing one).
pub(crate) fn new_snapshot(dir: &Path, step: usize) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for attempt in 0u32.. {
        let name = format!(
            "{SNAPSHOT_PREFIX}{step:08}-{:x}{:x}{attempt:x}",
            nanos,
            std::process::id()
        );
        let path = dir.join(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok((name, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&path, e)),
        }
    }
    unreachable!("u32 attempts exhausted")
}

/// Digests of `files` (relative, `/`-separated) inside `snapshot`, after syncing each to disk.
pub(crate) fn manifest(snapshot: &Path, files: &[&str]) -> Result<Vec<FileDigest>> {
    files
        .iter()
        .map(|rel| {
            let path = snapshot.join(rel);
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&path, e))?;
            let (hash, bytes) = digest_file(&path)?;
            Ok(FileDigest {
                path: rel.to_string(),
                bytes,
                hash: format!("{hash:016x}"),
            })
        })
        .collect()
}

/// Checks every file of the manifest inside `snapshot`; the error names the first file that is
/// missing or differs from what the commit point recorded.
pub(crate) fn verify(snapshot: &Path, files: &[FileDigest]) -> Result<()> {
    for f in files {
        let path = snapshot.join(&f.path);
        if !path.is_file() {
            return Err(Error::CheckpointMismatch {
                path,
                reason: "missing: the snapshot named by trainer.json is incomplete".into(),
            });
        }
        let (hash, bytes) = digest_file(&path)?;
        let hash = format!("{hash:016x}");
        if bytes != f.bytes || hash != f.hash {
            return Err(Error::CheckpointMismatch {
                path,
                reason: format!(
                    "content differs from trainer.json's record ({bytes} bytes, hash {hash}; \
                     recorded {} bytes, hash {}): the file belongs to another save",
                    f.bytes, f.hash
                ),
            });
        }
    }
    Ok(())
}

/// Makes the directory entry of a rename durable (best effort where directories cannot be opened).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes every snapshot folder in `dir` except `keep` (earlier saves and interrupted ones).
pub(crate) fn remove_stale(dir: &Path, keep: &str) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(SNAPSHOT_PREFIX) && name != keep && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let h = |b: &[u8]| content_hash(b).unwrap();
        let base: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(h(&base), h(&base.clone()));
        assert_eq!(h(&base).1, 1000);
        for i in [0, 7, 8, 999] {
            let mut b = base.clone();
            b[i] ^= 1;
            assert_ne!(h(&b).0, h(&base).0, "byte {i}");
        }
        // Trailing zeros change the length, hence the hash.
        let mut longer = base.clone();
        longer.push(0);
        assert_ne!(h(&longer).0, h(&base).0);
        // Reads split anywhere give the same result as one read.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(3).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        assert_eq!(content_hash(Dribble(&base)).unwrap(), h(&base));
    }
}
