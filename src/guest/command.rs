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

/// What to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// A line for `/bin/sh -c`.
    Shell(String),
    /// A program, without a shell.
    Program(Program),
    /// Writes the command's stdin to the file `path` (mode 755; its directory is made if
    /// missing), then runs `then` with an empty stdin: a script and its first run in one round
    /// trip, with no process in the guest but the program. A file that cannot be written ends
    /// the command with [`WRITE_FAILED`].
    WriteThen { path: String, then: Program },
}

/// The status, and the last line of stderr, of a [`Run::WriteThen`] whose file could not be
/// written (the agent writes the reason on the line before).
pub const WRITE_FAILED: (i32, &str) = (97, "repro: cannot write the file to run");

impl Run {
    /// As a line for a POSIX shell: what SSH runs, and what an error names.
    pub fn shell_line(&self) -> String {
        match self {
            Run::Shell(line) => line.clone(),
            Run::Program(p) => p.shell_line(),
            Run::WriteThen { path, then } => {
                let (status, why) = WRITE_FAILED;
                format!(
                    "{{ {} || {{ echo '{why}' >&2; exit {status}; }}; }} && {} </dev/null",
                    write_line(path),
                    then.shell_line()
                )
            }
        }
    }
}

/// The shell line that writes its stdin to `path`, mode 755. The directory is made by the
/// guest's bring-up in the common case, so this execs one tool. The guest's devtmpfs has no
/// `/dev/stdin` link (no udev made it); `/proc/self/fd/0` is the same.
pub fn write_line(path: &str) -> String {
    let dir = path.rsplit_once('/').map_or(".", |(d, _)| d);
    let (dir, path) = (crate::shell::quote(dir), crate::shell::quote(path));
    format!("{{ [ -d {dir} ] || mkdir -p {dir}; }} && install -m 755 /proc/self/fd/0 {path}")
}

/// A program and its arguments, run without a shell in between (one process fewer, which under
/// emulation is tens of milliseconds), with `env` added to the environment it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
}

impl Program {
    /// The same as a line for a POSIX shell, each word quoted where it needs it: what SSH runs,
    /// and what an error names.
    pub fn shell_line(&self) -> String {
        let env = self.env.iter().map(|(k, v)| format!("{k}={} ", crate::shell::quote(v)));
        format!("{}exec {}", env.collect::<String>(), crate::shell::line(&self.argv))
    }

    /// The words the agent takes: `NAME=VALUE` ones first, then the program and its arguments,
    /// each ended by a NUL.
    pub fn words(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (k, val) in &self.env {
            v.extend_from_slice(format!("{k}={val}").as_bytes());
            v.push(0);
        }
        for w in &self.argv {
            v.extend_from_slice(w.as_bytes());
            v.push(0);
        }
        v
    }
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
    use super::Program;

    #[test]
    fn a_program_is_the_same_as_its_quoted_shell_line() {
        let p = Program {
            env: vec![("REPRO_ITERATION".into(), "3".into())],
            argv: vec!["/bin/bash".into(), "it's $HOME".into()],
        };
        assert_eq!(p.shell_line(), r#"REPRO_ITERATION=3 exec /bin/bash 'it'\''s $HOME'"#);
        assert_eq!(p.words(), b"REPRO_ITERATION=3\0/bin/bash\0it's $HOME\0");
    }

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
