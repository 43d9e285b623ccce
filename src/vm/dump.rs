//! QEMU 7.2 writes `dump-guest-memory` kdump output in makedumpfile's *flattened* form (a
//! stream of (offset, size, data) records, for pipes). Tools expect the plain kdump-compressed
//! file, so it is reassembled: every record's data written at its offset.
//!
//! QEMU also leaves the header's utsname empty except `machine` (`Unknown` on aarch64), and
//! libkdumpfile (so drgn) believes a header's utsname only when every field is set and takes
//! the arch from `machine`: without them, "KDUMP_ATTR_ARCH_NAME: Key has no value".
//! [`fill_utsname`] fills them as makedumpfile would.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const SIGNATURE: &[u8] = b"makedumpfile";
/// The flattened header is padded to this size.
const HEADER: u64 = 4096;

/// Is `path` in the flattened form?
pub fn is_flattened(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let mut sig = [0u8; 16];
    Ok(f.read_exact(&mut sig).is_ok() && sig.starts_with(SIGNATURE) && sig[SIGNATURE.len()..].iter().all(|&b| b == 0))
}

/// Reassembles the flattened dump `src` into `dst` (kdump-compressed, starting `KDUMP   `).
pub fn reassemble(src: &Path, dst: &Path) -> std::io::Result<()> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {m}", src.display()));
    let mut r = std::io::BufReader::new(std::fs::File::open(src)?);
    if !is_flattened(src)? {
        return Err(bad("not a flattened makedumpfile dump"));
    }
    r.seek(SeekFrom::Start(HEADER))?;
    let mut w = std::fs::File::create(dst)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let mut head = [0u8; 16];
        r.read_exact(&mut head).map_err(|_| bad("truncated: no end record"))?;
        let offset = i64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let size = i64::from_be_bytes(head[8..].try_into().unwrap_or_default());
        if offset == -1 && size == -1 {
            break;
        }
        if offset < 0 || size < 0 {
            return Err(bad("a record with a negative offset or size"));
        }
        w.seek(SeekFrom::Start(offset as u64))?;
        let mut left = size as u64;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..n]).map_err(|_| bad("truncated record"))?;
            w.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    w.flush()
}

/// The utsname fields of a kdump header that QEMU leaves empty (or, for `machine`, unknown).
pub struct Uts<'a> {
    pub sysname: &'a str,
    pub nodename: &'a str,
    pub release: &'a str,
    pub version: &'a str,
    /// `uname -m`: `x86_64`, `aarch64`.
    pub machine: &'a str,
}

/// Where the utsname starts (after the signature and the header version), and each field's size.
const UTS_AT: u64 = 12;
const UTS_FIELD: usize = 65;

/// Writes `uts` into the empty utsname fields of the kdump-compressed dump at `path` (a field
/// QEMU set is kept, but for a `machine` of `Unknown`).
pub fn fill_utsname(path: &Path, uts: &Uts) -> std::io::Result<()> {
    let mut f = std::fs::File::options().read(true).write(true).open(path)?;
    let mut head = vec![0u8; UTS_AT as usize + 5 * UTS_FIELD];
    f.read_exact(&mut head)?;
    if !head.starts_with(b"KDUMP   ") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a kdump-compressed dump", path.display()),
        ));
    }
    let fields = [uts.sysname, uts.nodename, uts.release, uts.version, uts.machine];
    for (i, value) in fields.iter().enumerate() {
        let at = UTS_AT as usize + i * UTS_FIELD;
        let unknown = head[at..].starts_with(b"Unknown\0");
        if (head[at] != 0 && !unknown) || value.is_empty() {
            continue;
        }
        let mut field = [0u8; UTS_FIELD];
        let n = value.len().min(UTS_FIELD - 1);
        field[..n].copy_from_slice(&value.as_bytes()[..n]);
        f.seek(SeekFrom::Start(at as u64))?;
        f.write_all(&field)?;
    }
    f.flush()
}

/// The release and version (`#1 SMP ...`) of the kernel's `Linux version ...` boot banner.
pub fn banner(console: &str) -> Option<(&str, &str)> {
    let line = console
        .lines()
        .find_map(|l| l.split_once("Linux version ").map(|(_, r)| r))?;
    let release = line.split_whitespace().next()?;
    let version = line.find(" #").map(|i| line[i + 1..].trim_end())?;
    Some((release, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_utsname_fields_are_filled_and_qemus_machine_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vmcore");
        let mut h = b"KDUMP   \x06\0\0\0".to_vec();
        h.resize(UTS_AT as usize + 5 * UTS_FIELD + 100, 0);
        h[UTS_AT as usize + 4 * UTS_FIELD..][..6].copy_from_slice(b"x86_64");
        std::fs::write(&p, &h).unwrap();
        let console = "[    0.000000] Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) \
            (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)\n";
        let (release, version) = banner(console).unwrap();
        assert_eq!(release, "6.1.0-57-cloud-amd64");
        assert_eq!(version, "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)");
        let uts = Uts {
            sysname: "Linux",
            nodename: "guest",
            release,
            version,
            machine: "aarch64",
        };
        fill_utsname(&p, &uts).unwrap();
        let out = std::fs::read(&p).unwrap();
        let field = |i: usize| {
            let f = &out[UTS_AT as usize + i * UTS_FIELD..][..UTS_FIELD];
            String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap()]).into_owned()
        };
        assert_eq!(
            (0..5).map(field).collect::<Vec<_>>(),
            ["Linux", "guest", release, version, "x86_64"]
        );
        assert_eq!(out.len(), h.len());
        // QEMU's aarch64 dumps say `Unknown`.
        h[UTS_AT as usize + 4 * UTS_FIELD..][..8].copy_from_slice(b"Unknown\0");
        std::fs::write(&p, &h).unwrap();
        fill_utsname(&p, &uts).unwrap();
        let out = std::fs::read(&p).unwrap();
        assert!(out[UTS_AT as usize + 4 * UTS_FIELD..].starts_with(b"aarch64\0"));
        std::fs::write(&p, b"ELF").unwrap();
        assert!(fill_utsname(&p, &uts).is_err());
        assert_eq!(banner("no banner here"), None);
    }

    fn record(out: &mut Vec<u8>, offset: i64, data: &[u8]) {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(data.len() as i64).to_be_bytes());
        out.extend_from_slice(data);
    }

    #[test]
    fn records_land_at_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Vec::new();
        f.extend_from_slice(SIGNATURE);
        f.resize(HEADER as usize, 0);
        record(&mut f, 8, b"BODY");
        record(&mut f, 0, b"KDUMP   ");
        f.extend_from_slice(&(-1i64).to_be_bytes());
        f.extend_from_slice(&(-1i64).to_be_bytes());
        let (src, dst) = (dir.path().join("flat"), dir.path().join("vmcore"));
        std::fs::write(&src, &f).unwrap();
        assert!(is_flattened(&src).unwrap());
        reassemble(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"KDUMP   BODY");
        assert!(!is_flattened(&dst).unwrap());
        // Without the end record it is an error, not a silently short dump.
        std::fs::write(&src, &f[..f.len() - 16]).unwrap();
        assert!(reassemble(&src, &dst).unwrap_err().to_string().contains("truncated"));
    }
}
