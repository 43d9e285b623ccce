//! What a command in the guest left behind, and why one could not run. Pure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    #[error("repro's agent in the guest never answered: {why}")]
    AgentNeverUp { why: String },
    #[error("repro's agent in the guest went away while running `{command}`: {why}")]
    AgentGone { command: String, why: String },
    #[error("repro's agent in the guest could not start `{command}`: {why}")]
    AgentRefused { command: String, why: String },
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

/// How much of each output stream a command's [`Output`] keeps, from its end.
pub const KEPT_OUTPUT: usize = 1 << 20;

/// Appends `data` to `buf`, keeping about the last [`KEPT_OUTPUT`] bytes (amortized: the front
/// is dropped once the buffer holds twice that).
pub(super) fn keep_tail(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > 2 * KEPT_OUTPUT {
        buf.drain(..buf.len() - KEPT_OUTPUT);
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
