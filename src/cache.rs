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
    let path = lock_path(entry);
    flock(&path, libc::LOCK_EX).map_err(|source| Error::Lock { path, source })
}

/// Opens the lock file `path` and takes `op` (`LOCK_EX`, maybe with `LOCK_NB`) on it.
fn flock(path: &Path, op: i32) -> std::io::Result<Lock> {
    let file = File::options().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock on an fd we own.
    match unsafe { libc::flock(file.as_raw_fd(), op) } {
        0 => Ok(Lock { _file: file }),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// An entry's last use (its modification time), for [`prune`].
const USED: &str = ".used";

/// Records that `entry` is being used now.
pub fn touch(entry: &Path) {
    let _ = File::create(entry.join(USED));
}

/// Keeps the entry directories in `dir` under `cap` bytes by removing the least recently used
/// first (by their [`touch`] stamp, else their `.complete`), never one used within `fresh` or
/// one whose lock someone holds (it is being built or checked). Returns the bytes freed.
pub fn prune(dir: &Path, cap: u64, fresh: std::time::Duration) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    let mut found: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let p = e.path();
            let used = [USED, COMPLETE]
                .iter()
                .find_map(|f| std::fs::metadata(p.join(f)).and_then(|m| m.modified()).ok())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, tree_bytes(&p), p)
        })
        .collect();
    let mut total: u64 = found.iter().map(|f| f.1).sum();
    found.sort();
    let mut freed = 0;
    for (used, bytes, path) in found {
        if total <= cap {
            break;
        }
        let recent = now.duration_since(used).map_or(true, |age| age < fresh);
        let Some(_lock) = (!recent).then(|| try_lock(&path)).flatten() else {
            continue;
        };
        if std::fs::remove_dir_all(&path).is_ok() {
            total -= bytes;
            freed += bytes;
        }
    }
    freed
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The lock beside `entry`, if nobody holds it now.
fn try_lock(entry: &Path) -> Option<Lock> {
    flock(&lock_path(entry), libc::LOCK_EX | libc::LOCK_NB).ok()
}

/// `entry.lock`, the whole name kept: entries named by package versions
/// (`linux-image-…_6.1.176-1_amd64`) must not share a lock by what follows their last dot.
fn lock_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Marks a finished cache entry directory.
pub const COMPLETE: &str = ".complete";

/// An entry's seal: one line per file, `SIZE SHA256 PATH` (PATH relative to the entry), written
/// when the entry is made, after every file in it was flushed to disk.
const SEAL: &str = ".seal";

/// Files at an entry's top level up to this size (a kernel image, busybox, an initramfs) are
/// hashed again on every use; the rest (a 1 GiB root image, thousands of modules) are checked
/// by size, which a truncation from an interrupted write or a crash always changes.
const REHASH_UP_TO: u64 = 16 << 20;

/// Whether a cache entry directory is finished and intact: its `.complete` marker is there,
/// and every file its seal lists still has its size (and, if small, its hash). An entry made
/// before seals existed is trusted as it is.
pub fn is_complete(entry: &Path) -> bool {
    entry.join(COMPLETE).is_file() && intact(entry, &entry.join(SEAL))
}

/// Finishes the entry being built in `tmp`: flushes and seals its files, then writes the
/// `.complete` marker with `contents`. The caller renames `tmp` into place.
pub fn mark_complete(tmp: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut files = Vec::new();
    list_files(tmp, Path::new(""), &mut files)?;
    let mut seal = String::new();
    for rel in files {
        let (size, hash) = flush_and_hash(&tmp.join(&rel))?;
        seal.push_str(&format!("{size} {hash} {}\n", rel.display()));
    }
    write_durably(&tmp.join(SEAL), seal.as_bytes())?;
    write_durably(&tmp.join(COMPLETE), contents)
}

/// A single-file entry (`out`, e.g. an initramfs) is usable: there, and as its seal
/// (`out.seal`) says, if it has one.
pub fn file_is_intact(out: &Path) -> bool {
    let seal = PathBuf::from(format!("{}{SEAL}", out.display()));
    out.is_file() && intact(out.parent().unwrap_or(Path::new("/")), &seal)
}

/// Moves the finished file `tmp` to `out` with a seal beside it (flushed first, so that a
/// crash cannot leave a short file under the final name).
pub fn install_file(tmp: &Path, out: &Path) -> std::io::Result<()> {
    let (size, hash) = flush_and_hash(tmp)?;
    let name = out.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let seal = PathBuf::from(format!("{}{SEAL}", out.display()));
    let _ = std::fs::remove_file(&seal);
    std::fs::rename(tmp, out)?;
    write_durably(&seal, format!("{size} {hash} {name}\n").as_bytes())
}

/// Whether every file `seal` lists (relative to `base`) has its recorded size, and the small
/// ones their hash. No seal: an entry from before seals, trusted.
fn intact(base: &Path, seal: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(seal) else {
        return !seal.exists();
    };
    text.lines().all(|line| {
        let mut f = line.splitn(3, ' ');
        let (Some(size), Some(hash), Some(rel)) = (f.next(), f.next(), f.next()) else {
            return false;
        };
        let path = base.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return false;
        };
        let size_ok = size.parse::<u64>().is_ok_and(|s| s == meta.len());
        let top = !rel.contains('/');
        size_ok && (!top || meta.len() > REHASH_UP_TO || hash_file(&path).is_ok_and(|h| h == hash))
    })
}

fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let kind = e.file_type()?;
        let r = rel.join(e.file_name());
        if kind.is_dir() {
            list_files(root, &r, out)?;
        } else if kind.is_file() && ![SEAL, COMPLETE, USED].iter().any(|f| r == Path::new(f)) {
            out.push(r);
        }
    }
    out.sort();
    Ok(())
}

/// The SHA-256 of a file, in hex.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(h))
}

/// The SHA-256 of some bytes, in hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(Sha256::new_with_prefix(bytes))
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a directory's regular files: each one's path under `root` and its bytes, in
/// path order (symbolic links are not followed). In hex.
pub fn hash_tree(root: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    list_files(root, Path::new(""), &mut files)?;
    let mut h = Sha256::new();
    for rel in files {
        let name = rel.to_string_lossy();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(hash_file(&root.join(&rel))?.as_bytes());
    }
    Ok(hex(h))
}

fn flush_and_hash(path: &Path) -> std::io::Result<(u64, String)> {
    // fsync works on a read-only descriptor, and a cached file may be read-only.
    let f = File::open(path)?;
    f.sync_all()?;
    Ok((f.metadata()?.len(), hash_file(path)?))
}

/// Writes `bytes` to `path` through a temporary file that is flushed before it is renamed.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = PathBuf::from(format!("{}.new", path.display()));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_hash_follows_every_file_and_its_place() {
        let t = tempfile::tempdir().unwrap();
        let tree = |name: &str, files: &[(&str, &[u8])]| {
            let d = t.path().join(name);
            for (rel, data) in files {
                let p = d.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, data).unwrap();
            }
            hash_tree(&d).unwrap()
        };
        let base = tree("a", &[("kernel/fs/nfs.ko", b"nfs"), ("modules.dep", b"dep")]);
        assert_eq!(
            base,
            tree("b", &[("modules.dep", b"dep"), ("kernel/fs/nfs.ko", b"nfs")])
        );
        assert_ne!(
            base,
            tree("c", &[("kernel/fs/nfs.ko", b"nfs!"), ("modules.dep", b"dep")])
        );
        assert_ne!(base, tree("d", &[("kernel/nfs.ko", b"nfs"), ("modules.dep", b"dep")]));
        assert_ne!(base, tree("e", &[("kernel/fs/nfs.ko", b"nfs")]));
    }

    #[test]
    fn a_truncated_or_altered_entry_is_not_complete_and_a_legacy_one_is() {
        let t = tempfile::tempdir().unwrap();
        let e = t.path().join("entry");
        std::fs::create_dir_all(e.join("sub")).unwrap();
        std::fs::write(e.join("rootfs.ext4"), vec![7u8; 4096]).unwrap();
        std::fs::write(e.join("busybox"), b"busybox").unwrap();
        std::fs::write(e.join("sub/module.ko"), b"module").unwrap();
        mark_complete(&e, b"origin\n").unwrap();
        assert!(is_complete(&e));
        assert_eq!(std::fs::read(e.join(COMPLETE)).unwrap(), b"origin\n");
        // Same size, other bytes: caught by the hash (a small file at the top).
        std::fs::write(e.join("busybox"), b"BUSYBOX").unwrap();
        assert!(!is_complete(&e));
        std::fs::write(e.join("busybox"), b"busybox").unwrap();
        assert!(is_complete(&e));
        // Deeper files are checked by size.
        std::fs::write(e.join("sub/module.ko"), b"modul").unwrap();
        assert!(!is_complete(&e));
        std::fs::write(e.join("sub/module.ko"), b"module").unwrap();
        // Cut short, as a crash before the data reached the disk leaves it.
        let f = std::fs::File::options()
            .write(true)
            .open(e.join("rootfs.ext4"))
            .unwrap();
        f.set_len(1000).unwrap();
        assert!(!is_complete(&e));
        // Gone.
        std::fs::remove_file(e.join("rootfs.ext4")).unwrap();
        assert!(!is_complete(&e));
        // An entry from before seals: trusted.
        let legacy = t.path().join("legacy");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join(COMPLETE), b"").unwrap();
        assert!(is_complete(&legacy));
    }

    #[test]
    fn a_single_file_entry_is_checked_against_its_seal() {
        let t = tempfile::tempdir().unwrap();
        let (tmp, out) = (t.path().join("x.tmp"), t.path().join("x.cpio"));
        std::fs::write(&tmp, b"cpio bytes").unwrap();
        install_file(&tmp, &out).unwrap();
        assert!(file_is_intact(&out));
        std::fs::write(&out, b"cpio").unwrap();
        assert!(!file_is_intact(&out));
    }

    #[test]
    fn entries_that_differ_after_a_dot_have_their_own_locks() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64");
        let b = d.path().join("linux-image-6.1.0-50-cloud-amd64_6.1.180-1_amd64");
        let _held = lock(&a).unwrap();
        assert!(try_lock(&a).is_none());
        assert!(
            try_lock(&b).is_some(),
            "another version's entry waits on this one's lock"
        );
        assert!(d
            .path()
            .join("linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.lock")
            .is_file());
    }

    #[test]
    fn pruning_removes_the_least_recently_used_but_never_a_fresh_or_locked_entry() {
        let t = tempfile::tempdir().unwrap();
        let day = std::time::Duration::from_secs(86400);
        let entry = |name: &str, age_days: u64| {
            let e = t.path().join(name);
            std::fs::create_dir_all(&e).unwrap();
            std::fs::write(e.join("bzImage"), vec![0u8; 1000]).unwrap();
            touch(&e);
            let when = std::time::SystemTime::now() - day * age_days as u32;
            File::options()
                .write(true)
                .open(e.join(USED))
                .unwrap()
                .set_modified(when)
                .unwrap();
            e
        };
        let (oldest, old, locked, fresh) = (entry("a", 30), entry("b", 20), entry("c", 40), entry("d", 0));
        let _held = lock(&locked).unwrap();
        // Room for two of the four: the oldest unlocked goes, then the next.
        let freed = prune(t.path(), 2000, day);
        assert_eq!(freed, 2000);
        assert!(!oldest.exists() && !old.exists());
        assert!(locked.exists(), "someone holds its lock");
        assert!(fresh.exists(), "used today");
        assert_eq!(prune(t.path(), 2000, day), 0, "under the cap");
    }

    #[test]
    fn key_separates_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"x"]).len(), 16);
    }
}
