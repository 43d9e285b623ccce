//! QEMU 7.2 writes `dump-guest-memory` kdump output in makedumpfile's *flattened* form (a
//! stream of (offset, size, data) records, for pipes). Tools expect the plain kdump-compressed
//! file, so it is reassembled: every record's data written at its offset.

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

#[cfg(test)]
mod tests {
    use super::*;

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
