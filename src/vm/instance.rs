//! One running QEMU guest, owned: dropping it kills QEMU and its process group.

use super::argv::{self, Config};
use super::qmp::{self, Qmp};
use crate::console::{self, ConsoleEvent, Tail};
use crate::process;
use crate::wait;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU exited ({status}) before QMP came up\ncommand: {command}\nstderr:\n{stderr}")]
    EarlyExit {
        status: String,
        command: String,
        stderr: String,
    },
    #[error("QMP did not come up within {}s\ncommand: {command}\nstderr:\n{stderr}", waited.as_secs())]
    QmpTimeout {
        waited: Duration,
        command: String,
        stderr: String,
    },
    #[error("QMP: {source}\ncommand: {command}\nstderr:\n{stderr}")]
    Qmp {
        command: String,
        stderr: String,
        #[source]
        source: qmp::Error,
    },
    #[error("QEMU did not connect to the guest agent's socket within {}s\ncommand: {command}\nstderr:\n{stderr}", waited.as_secs())]
    AgentSocket {
        waited: Duration,
        command: String,
        stderr: String,
    },
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// QEMU could not bind the SSH forward's host port: someone else holds it.
    fn is_port_taken(&self) -> bool {
        matches!(self, Error::EarlyExit { stderr, .. } if stderr.contains("Could not set up host forwarding rule"))
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Files an instance writes into its directory.
pub const CONSOLE_LOG: &str = "console.log";
pub const QEMU_CMDLINE: &str = "qemu.cmdline";
pub const QEMU_STDERR: &str = "qemu.stderr";
pub const QEMU_PID: &str = "qemu.pid";
pub const QMP_LOG: &str = "qmp.log";
const QMP_SOCKET: &str = "qmp.sock";
const AGENT_SOCKET: &str = "agent.sock";
/// QEMU connects its chardevs before it serves QMP: once QMP is up, the agent's connection is
/// at most this far away.
const AGENT_ACCEPT: Duration = Duration::from_secs(5);

pub struct Instance {
    pub node: String,
    pub config: Config,
    pub argv: Vec<String>,
    pid: u32,
    pub qmp: Qmp,
    /// Taken by whoever watches the guest.
    pub qmp_events: Option<mpsc::UnboundedReceiver<qmp::Event>>,
    /// Taken by whoever watches the guest.
    pub console: Option<mpsc::UnboundedReceiver<ConsoleEvent>>,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// Tells the console capture that the guest stopped (a report in progress is complete) or
    /// is about to be reset (its next boot is expected).
    pub console_control: console::Control,
    /// The guest agent's channel (its hello comes once the guest has booted).
    pub agent: Arc<crate::guest::agent::Conn>,
    stderr_tail: Arc<Mutex<Tail>>,
    console_tail: Arc<Mutex<Tail>>,
}

/// How many ports a launch tries for the SSH forward before it gives up.
const PORT_TRIES: usize = 5;

impl Instance {
    /// Starts QEMU stopped, connects QMP, and lets the guest run. The SSH port was free when it
    /// was chosen, but another process (ten runs at once, or any client's ephemeral port) may
    /// take it before QEMU binds it: QEMU then exits at once, and the launch tries a new port.
    pub async fn launch(node: &str, mut config: Config, dir: &Path) -> Result<Instance, Error> {
        for _ in 1..PORT_TRIES {
            match Self::launch_once(node, config.clone(), dir).await {
                Err(e) if e.is_port_taken() => {
                    config.ssh_port = free_port().map_err(|source| Error::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?
                }
                launched => return launched,
            }
        }
        Self::launch_once(node, config, dir).await
    }

    async fn launch_once(node: &str, mut config: Config, dir: &Path) -> Result<Instance, Error> {
        config.qmp_socket = dir.join(QMP_SOCKET);
        config.agent_socket = Some(dir.join(AGENT_SOCKET));
        config.workdir = dir.to_path_buf();
        // QEMU runs in `dir`: every file it is given must not depend on repro's working directory.
        absolutize(&mut config).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let _ = std::fs::remove_file(&config.qmp_socket);
        let agent_socket = dir.join(AGENT_SOCKET);
        let _ = std::fs::remove_file(&agent_socket);
        let agent_listener = super::unix::bind(&agent_socket).map_err(|source| Error::Io {
            path: agent_socket.clone(),
            source,
        })?;
        let argv = argv::argv(&config);
        let line = argv::shell_line(&argv);
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        std::fs::write(dir.join(QEMU_CMDLINE), format!("{line}\n")).map_err(io(dir.join(QEMU_CMDLINE)))?;

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&config.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn_guarded(cmd).map_err(|source| Error::Spawn {
            command: line.clone(),
            source,
        })?;
        let pid = child.id();
        std::fs::write(dir.join(QEMU_PID), format!("{pid}\n")).map_err(io(dir.join(QEMU_PID)))?;

        let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().expect("piped stdout"))
            .map_err(io(dir.join(CONSOLE_LOG)))?;
        let stderr = tokio::process::ChildStderr::from_std(child.stderr.take().expect("piped stderr"))
            .map_err(io(dir.join(QEMU_STDERR)))?;
        let (exit_tx, exit) = watch::channel(None);
        std::thread::Builder::new()
            .name(format!("wait-{node}"))
            .spawn(move || {
                let status = child.wait();
                process::forget(pid);
                let _ = exit_tx.send(status.ok());
            })
            .map_err(io(dir.to_path_buf()))?;

        let console_tail = Arc::new(Mutex::new(Tail::new(64 * 1024)));
        let (console, console_control) = console::capture(stdout, &dir.join(CONSOLE_LOG), console_tail.clone())
            .map_err(io(dir.join(CONSOLE_LOG)))?;
        let stderr_tail = Arc::new(Mutex::new(Tail::new(16 * 1024)));
        spawn_stderr(stderr, dir.join(QEMU_STDERR), stderr_tail.clone());

        let mut partial = Partial {
            pid,
            exit: exit.clone(),
            stderr_tail: stderr_tail.clone(),
            line: line.clone(),
        };
        let (qmp, qmp_events) = partial.connect_qmp(&config.qmp_socket, &dir.join(QMP_LOG)).await?;
        let agent = partial.accept_agent(&agent_listener, node).await?;
        qmp.cont().await.map_err(|source| Error::Qmp {
            command: line.clone(),
            stderr: partial.stderr(),
            source,
        })?;
        partial.pid = 0; // ownership moves to the Instance
        Ok(Instance {
            node: node.to_string(),
            config,
            argv,
            pid,
            qmp,
            qmp_events: Some(qmp_events),
            console: Some(console),
            exit,
            console_control,
            agent,
            stderr_tail,
            console_tail,
        })
    }

    /// The exit status, once QEMU has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// A receiver that holds the exit status once QEMU has exited.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.clone()
    }

    /// Resolves when QEMU exits.
    pub async fn wait_exit(&self) -> Option<ExitStatus> {
        let mut rx = self.exit.clone();
        let r = rx.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s);
        r
    }

    /// The last words of QEMU's stderr and of the console, readable after QEMU is gone.
    pub fn tails(&self) -> Tails {
        Tails {
            stderr: self.stderr_tail.clone(),
            console: self.console_tail.clone(),
        }
    }

    pub fn command_line(&self) -> String {
        argv::shell_line(&self.argv)
    }

    /// Asks QEMU to quit, and kills it if it has not gone within `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        if self.exited().is_none() {
            let _ = tokio::time::timeout(grace, self.qmp.quit()).await;
            let _ = tokio::time::timeout(grace, self.wait_exit()).await;
        }
        process::kill_group(self.pid);
    }
}

/// Makes every file path in `c` absolute (the sockets are placed by [`Instance::launch`]).
fn absolutize(c: &mut Config) -> std::io::Result<()> {
    let abs = |p: &mut PathBuf| -> std::io::Result<()> {
        *p = std::path::absolute(&*p)?;
        Ok(())
    };
    abs(&mut c.kernel)?;
    abs(&mut c.initrd)?;
    if let Some(f) = c.firmware.as_mut() {
        abs(f)?;
    }
    for d in &mut c.disks {
        abs(&mut d.path)?;
    }
    for p in &mut c.pmem {
        abs(&mut p.path)?;
    }
    for l in &mut c.links {
        abs(&mut l.socket)?;
    }
    Ok(())
}

/// An instance's stderr and console tails.
#[derive(Clone)]
pub struct Tails {
    stderr: Arc<Mutex<Tail>>,
    console: Arc<Mutex<Tail>>,
}

impl Tails {
    /// QEMU's last 20 lines of stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|t| t.lines(20)).unwrap_or_default()
    }

    /// Errors writing `qemu.stderr` or `console.log`, if any.
    pub fn write_errors(&self) -> Vec<String> {
        [&self.stderr, &self.console]
            .iter()
            .filter_map(|t| t.lock().ok().and_then(|t| t.write_error.clone()))
            .collect()
    }

    /// The console's last `lines` lines.
    pub fn console(&self, lines: usize) -> String {
        self.console.lock().map(|t| t.lines(lines)).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        process::kill_group(self.pid);
    }
}

/// A QEMU that has been spawned but is not yet an [`Instance`]: killed on drop too.
struct Partial {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr_tail: Arc<Mutex<Tail>>,
    line: String,
}

const QMP_DEADLINE: Duration = Duration::from_secs(15);

impl Partial {
    fn stderr(&self) -> String {
        // Give the stderr reader a moment to catch QEMU's last words.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr_tail.lock().map(|t| t.lines(20)).unwrap_or_default()
    }

    async fn connect_qmp(
        &mut self,
        socket: &Path,
        log: &Path,
    ) -> Result<(Qmp, mpsc::UnboundedReceiver<qmp::Event>), Error> {
        let exit = self.exit.clone();
        let attempt = wait::until("QMP to come up", QMP_DEADLINE, Duration::from_millis(20), || {
            let exited = *exit.borrow();
            async move {
                if let Some(status) = exited {
                    return Some(Err(status));
                }
                if !socket.exists() {
                    return None;
                }
                Qmp::connect(socket, log).await.ok().map(Ok)
            }
        })
        .await;
        match attempt {
            Ok(Ok(q)) => Ok(q),
            Ok(Err(status)) => Err(Error::EarlyExit {
                status: status.to_string(),
                command: self.line.clone(),
                stderr: self.stderr(),
            }),
            Err(t) => Err(Error::QmpTimeout {
                waited: t.waited,
                command: self.line.clone(),
                stderr: self.stderr(),
            }),
        }
    }
}

impl Partial {
    /// QEMU's connection to the agent's socket, served from then on.
    async fn accept_agent(
        &self,
        listener: &tokio::net::UnixListener,
        node: &str,
    ) -> Result<Arc<crate::guest::agent::Conn>, Error> {
        let timed_out = || Error::AgentSocket {
            waited: AGENT_ACCEPT,
            command: self.line.clone(),
            stderr: self.stderr(),
        };
        let (stream, _) = tokio::time::timeout(AGENT_ACCEPT, listener.accept())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| timed_out())?;
        let io = |source| Error::Io {
            path: PathBuf::from(AGENT_SOCKET),
            source,
        };
        let stream = stream.into_std().map_err(io)?;
        stream.set_nonblocking(false).map_err(io)?;
        crate::guest::agent::Conn::new(stream, node).map_err(io)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.pid != 0 {
            process::kill_group(self.pid);
        }
    }
}

fn spawn_stderr(mut src: tokio::process::ChildStderr, path: PathBuf, tail: Arc<Mutex<Tail>>) {
    tokio::spawn(async move {
        use std::io::Write;
        let mut file = std::fs::File::create(&path);
        if let (Err(e), Ok(mut t)) = (&file, tail.lock()) {
            t.note_write_error(&path, e);
        }
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = src.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let written = file.as_mut().map(|f| f.write_all(&buf[..n]));
            if let Ok(mut t) = tail.lock() {
                t.push(&buf[..n]);
                if let Ok(Err(e)) = &written {
                    t.note_write_error(&path, e);
                }
            }
        }
    });
}
