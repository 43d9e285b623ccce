//! Connecting to a unix socket at any path length. A socket address holds at most 107 bytes of
//! path, and a run directory the user names may be deeper: a longer path is reached through
//! `/proc/self/fd/N/NAME`, N an `O_PATH` descriptor of the socket's directory.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};

/// The longest path a socket address holds (`sun_path` is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

pub async fn connect(path: &Path) -> std::io::Result<UnixStream> {
    match short_path(path)? {
        None => UnixStream::connect(path).await,
        Some((short, dir)) => {
            let stream = UnixStream::connect(&short).await;
            drop(dir);
            stream
        }
    }
}

/// Listens on a new socket at `path`, whatever its length (it must not exist yet).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match short_path(path)? {
        None => UnixListener::bind(path),
        Some((short, dir)) => {
            let listener = UnixListener::bind(&short);
            drop(dir);
            listener
        }
    }
}

/// For a path too long for a socket address: `/proc/self/fd/N/NAME` and the descriptor N
/// (which must stay open while the short path is used).
fn short_path(path: &Path) -> std::io::Result<Option<(PathBuf, std::fs::File)>> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok(None);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let dir = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let short = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
    Ok(Some((short, dir)))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    #[tokio::test]
    async fn a_socket_deeper_than_sun_path_is_reached() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d".repeat(100)).join("e".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("qmp.sock");
        assert!(path.as_os_str().len() > super::SUN_PATH_MAX);
        // Bound through the directory (QEMU binds it relative to its working directory).
        let d = std::fs::File::open(&deep).unwrap();
        let listener =
            std::os::unix::net::UnixListener::bind(format!("/proc/self/fd/{}/qmp.sock", d.as_raw_fd())).unwrap();
        assert!(path.exists());
        assert!(
            tokio::net::UnixStream::connect(&path).await.is_err(),
            "too long for a plain connect"
        );
        let _s = super::connect(&path).await.unwrap();
        assert!(listener.accept().is_ok());
        // And one repro serves itself (`run --gdb`), bound the same way.
        let served = deep.join("gdb.sock");
        let l = super::bind(&served).unwrap();
        assert!(served.exists());
        let (_c, accepted) = tokio::join!(super::connect(&served), l.accept());
        assert!(accepted.is_ok());
    }
}
