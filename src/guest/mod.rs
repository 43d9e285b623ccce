//! SSH into guests with the `ssh2` crate: connect with a per-run key, run commands with their
//! exit status and output, copy files in. Blocking; callers run it on blocking threads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("SSH handshake with {addr}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: ssh2::Error,
    },
    #[error("SSH authentication as {user} at {addr} with {}", key.display())]
    Auth {
        user: String,
        addr: SocketAddr,
        key: PathBuf,
        #[source]
        source: ssh2::Error,
    },
    #[error("SSH channel for `{command}`")]
    Channel {
        command: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("SSH I/O while running `{command}`")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run ssh-keygen")]
    Keygen(#[source] std::io::Error),
    #[error("ssh-keygen failed: {0}")]
    KeygenFailed(String),
}

/// What a command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

pub struct Session {
    session: ssh2::Session,
    pub addr: SocketAddr,
}

/// Generates an ed25519 key pair at `path` (and `path.pub`); returns the public key line.
pub fn keygen(path: &Path) -> Result<String, Error> {
    let mut keygen = std::process::Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "repro-run", "-f"])
        .arg(path);
    let out = crate::process::output(&mut keygen).map_err(Error::Keygen)?;
    if !out.status.success() {
        return Err(Error::KeygenFailed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    std::fs::read_to_string(path.with_extension("pub")).map_err(Error::Keygen)
}

/// How much of each output stream a command's [`Output`] keeps, from its end.
pub const KEPT_OUTPUT: usize = 1 << 20;

/// Appends `data` to `buf`, keeping about the last [`KEPT_OUTPUT`] bytes (amortized: the front
/// is dropped once the buffer holds twice that).
fn keep_tail(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > 2 * KEPT_OUTPUT {
        buf.drain(..buf.len() - KEPT_OUTPUT);
    }
}

impl Session {
    /// One attempt: TCP connect, handshake, public-key authentication as root.
    pub fn connect(port: u16, key: &Path, timeout: Duration) -> Result<Session, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|source| Error::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let mut session = ssh2::Session::new().map_err(|source| Error::Handshake { addr, source })?;
        session.set_tcp_stream(tcp);
        session.set_timeout(timeout.as_millis() as u32);
        session
            .handshake()
            .map_err(|source| Error::Handshake { addr, source })?;
        session
            .userauth_pubkey_file("root", None, key, None)
            .map_err(|source| Error::Auth {
                user: "root".into(),
                addr,
                key: key.to_path_buf(),
                source,
            })?;
        // Commands may run for a long time; their deadline is the caller's.
        session.set_timeout(0);
        session.set_keepalive(true, 5);
        Ok(Session { session, addr })
    }

    /// Runs `command`, feeding `stdin`, and collects both output streams separately (the last
    /// [`KEPT_OUTPUT`] bytes of each: a guest that prints a gigabyte must not take a gigabyte
    /// of the host's memory; [`Session::exec_with`]'s callback sees all of it).
    pub fn exec(&self, command: &str, stdin: &[u8]) -> Result<Output, Error> {
        self.exec_with(command, stdin, &mut |_, _| {})
    }

    /// [`Session::exec`], also handing each chunk of output to `live` as it arrives
    /// (`stream` 0 is stdout, 1 is stderr).
    pub fn exec_with(&self, command: &str, stdin: &[u8], live: &mut dyn FnMut(u8, &[u8])) -> Result<Output, Error> {
        let start = Instant::now();
        let ch_err = |source| Error::Channel {
            command: command.to_string(),
            source,
        };
        let io_err = |source| Error::Io {
            command: command.to_string(),
            source,
        };
        let mut ch = self.session.channel_session().map_err(ch_err)?;
        ch.exec(command).map_err(ch_err)?;
        ch.write_all(stdin).map_err(io_err)?;
        ch.send_eof().map_err(ch_err)?;
        // Read both streams without blocking on either, so neither can fill its window and stall.
        self.session.set_blocking(false);
        let result = (|| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut buf = [0u8; 16384];
            loop {
                let mut progressed = false;
                for stream in [0, 1] {
                    let r = if stream == 0 {
                        ch.read(&mut buf)
                    } else {
                        ch.stderr().read(&mut buf)
                    };
                    match r {
                        Ok(0) => {}
                        Ok(n) => {
                            progressed = true;
                            live(stream, &buf[..n]);
                            keep_tail(if stream == 0 { &mut out } else { &mut err }, &buf[..n]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(io_err(e)),
                    }
                }
                if ch.eof() && !progressed {
                    break;
                }
                if !progressed {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Ok((out, err))
        })();
        self.session.set_blocking(true);
        let (stdout, stderr) = result?;
        ch.wait_close().map_err(ch_err)?;
        let status = ch.exit_status().map_err(ch_err)?;
        Ok(Output {
            status,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        })
    }

    /// Writes `data` to `path` in the guest with mode `mode`.
    pub fn write_file(&self, path: &str, data: &[u8], mode: u32) -> Result<(), Error> {
        let cmd = format!("cat > '{path}' && chmod {mode:o} '{path}'");
        let out = self.exec(&cmd, data)?;
        if out.status != 0 {
            return Err(Error::Io {
                command: cmd,
                source: std::io::Error::other(format!(
                    "exit status {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_kept_in_memory_is_bounded_and_is_its_end() {
        let mut buf = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..100 {
            super::keep_tail(&mut buf, &chunk);
        }
        super::keep_tail(&mut buf, b"the end");
        assert!(buf.len() <= 2 * super::KEPT_OUTPUT, "{}", buf.len());
        assert!(buf.len() >= super::KEPT_OUTPUT);
        assert!(buf.ends_with(b"the end"));
    }
}
