//! The artifact cache: outside the git tree, under `$REPRO_CACHE` or the XDG cache dir.
//! Entries are directories completed atomically (built under a temporary name, then renamed),
//! and guarded by a lock file so that concurrent runs never build the same thing twice.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot determine a cache directory: set REPRO_CACHE or HOME")]
    NoHome,
    #[error("cannot create cache directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The cache root.
pub fn root() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("REPRO_CACHE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p).join("repro"));
    }
    let home = std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .ok_or(Error::NoHome)?;
    Ok(PathBuf::from(home).join(".cache").join("repro"))
}

/// `root()/sub`, created if missing.
pub fn dir(sub: &str) -> Result<PathBuf, Error> {
    let p = root()?.join(sub);
    std::fs::create_dir_all(&p).map_err(|source| Error::Create {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}

/// A short hex digest of some key material.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A file's modification time since the epoch (zero when unknown), for cache keys.
pub fn mtime(meta: &std::fs::Metadata) -> std::time::Duration {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// An exclusive advisory lock, released on drop.
pub struct Lock {
    _file: File,
}

/// Blocks until the lock beside `entry` (`entry.lock`) is ours.
pub fn lock(entry: &Path) -> Result<Lock, Error> {
    let path = entry.with_extension("lock");
    let err = |source| Error::Lock {
        path: path.clone(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    // SAFETY: flock on an fd we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(Lock { _file: file })
}

/// Marks a finished cache entry directory.
pub const COMPLETE: &str = ".complete";

pub fn is_complete(entry: &Path) -> bool {
    entry.join(COMPLETE).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_separates_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"x"]).len(), 16);
    }
}
