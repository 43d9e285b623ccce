//! Running commands in a guest: over repro's agent on a virtio-serial port when the guest has
//! one (its kernel has `virtio_console`), else over SSH. A [`Link`] says which a node uses; a
//! [`Session`] runs commands with their exit status and output. Blocking; callers run it on
//! plain threads.

pub mod agent;
mod command;
mod ssh;

pub use command::{write_line, Error, Output, Program, Run, KEPT_OUTPUT, WRITE_FAILED};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How a node's commands reach it, once it is up.
#[derive(Clone)]
pub enum Link {
    Agent(Arc<agent::Conn>),
    Ssh { port: u16, key: PathBuf },
}

/// A way to run commands in the guest. Agent sessions share their node's one channel.
pub enum Session {
    Agent(Arc<agent::Conn>),
    Ssh(ssh::Session),
}

impl Link {
    /// A session: the agent's channel at once, or a new SSH connection (one attempt).
    pub fn connect(&self, timeout: Duration) -> Result<Session, Error> {
        match self {
            Link::Agent(conn) => Ok(Session::Agent(conn.clone())),
            Link::Ssh { port, key } => ssh::Session::connect(*port, key, timeout).map(Session::Ssh),
        }
    }

    /// What the link is, for the report: `agent` or `ssh`.
    pub fn kind(&self) -> &'static str {
        match self {
            Link::Agent(_) => "agent",
            Link::Ssh { .. } => "ssh",
        }
    }
}

/// Where a booting node may answer: its agent's channel (when QEMU has one) and its forwarded
/// SSH port.
#[derive(Clone)]
pub struct Reach {
    pub agent: Option<Arc<agent::Conn>>,
    pub port: u16,
    pub key: PathBuf,
}

/// Without a `Server listening` line on the console (an image whose sshd logs elsewhere),
/// SSH attempts start anyway after this long.
const BLIND_AFTER: Duration = Duration::from_secs(20);
/// One SSH attempt's limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(150);
/// How often the wait looks at the agent's hellos and the flags.
const POLL: Duration = Duration::from_millis(10);

impl Reach {
    /// How many times the agent has started so far (0 without one): [`Reach::wait_up`] after a
    /// reset waits for more.
    pub fn hellos(&self) -> u64 {
        self.agent.as_ref().map_or(0, |a| a.hellos())
    }

    /// Waits until the guest answers: its agent says hello (more than `hellos` times), or SSH
    /// authenticates, whichever comes first; until `deadline` or `stop`.
    ///
    /// The guest starts sshd only when it has no agent port. SSH attempts wait for `listening`
    /// (sshd said so on the console): a connection made before the guest's network is up is
    /// held by user-mode networking through TCP SYN retransmits, which costs seconds.
    pub fn wait_up(
        &self,
        hellos: u64,
        deadline: Instant,
        stop: &AtomicBool,
        listening: &AtomicBool,
    ) -> Result<(Session, Link), Error> {
        let start = Instant::now();
        let agent_up = || self.agent.as_ref().filter(|a| a.hellos() > hellos).cloned();
        let mut last: Option<Error> = None;
        loop {
            if let Some(conn) = agent_up() {
                return Ok((Session::Agent(conn.clone()), Link::Agent(conn)));
            }
            if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
                return Err(last.unwrap_or(Error::AgentNeverUp {
                    why: "neither it nor sshd answered before the deadline".into(),
                }));
            }
            if !listening.load(Ordering::SeqCst) && start.elapsed() < BLIND_AFTER {
                match &self.agent {
                    Some(agent) => agent.await_hello(hellos, POLL),
                    None => std::thread::sleep(POLL),
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match ssh::Session::connect(
                self.port,
                &self.key,
                ATTEMPT_TIMEOUT.min(left.max(Duration::from_millis(100))),
            ) {
                Ok(s) => {
                    let link = Link::Ssh {
                        port: self.port,
                        key: self.key.clone(),
                    };
                    return Ok((Session::Ssh(s), link));
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(RETRY);
        }
    }
}

impl Session {
    /// Runs `command`, feeding `stdin`, and collects both output streams separately (the last
    /// [`KEPT_OUTPUT`] bytes of each: a guest that prints a gigabyte must not take a gigabyte
    /// of the host's memory; [`Session::exec_with`]'s callback sees all of it).
    pub fn exec(&self, command: &str, stdin: &[u8]) -> Result<Output, Error> {
        self.exec_with(command, stdin, &mut |_, _| {})
    }

    /// [`Session::exec`], also handing each chunk of output to `live` as it arrives
    /// (`stream` 0 is stdout, 1 is stderr).
    pub fn exec_with(&self, command: &str, stdin: &[u8], live: &mut dyn FnMut(u8, &[u8])) -> Result<Output, Error> {
        self.run_with(&Run::Shell(command.to_string()), stdin, live)
    }

    /// [`Session::exec_with`] for a shell line or a program: the agent starts a program itself,
    /// without a shell; SSH runs the equivalent shell line.
    pub fn run_with(&self, run: &Run, stdin: &[u8], live: &mut dyn FnMut(u8, &[u8])) -> Result<Output, Error> {
        match self {
            Session::Agent(conn) => conn.exec_with(run, stdin, live),
            Session::Ssh(s) => s.exec_with(&run.shell_line(), stdin, live),
        }
    }
}
