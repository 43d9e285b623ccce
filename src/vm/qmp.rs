//! A QMP client on the `qapi` crate over tokio: handshake, commands, and the event stream.
//! Every command and event is appended to the run's QMP log as one JSON line.

use futures::StreamExt;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

type Service = QapiService<QmpStreamTokio<WriteHalf<UnixStream>>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("QMP handshake on {}", socket.display())]
    Handshake {
        socket: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP command `{command}`: {message}")]
    Command { command: &'static str, message: String },
    /// QEMU did not answer: it is wedged (stopped, livelocked) or the host is starved.
    #[error("QMP command `{command}` got no answer")]
    NoAnswer {
        command: &'static str,
        #[source]
        source: crate::wait::Timeout,
    },
}

/// How long QEMU may take to answer a command that does no I/O of its own.
const ANSWER: Duration = Duration::from_secs(20);
/// Commands that write or read the whole guest (savevm, loadvm, a memory dump).
const ANSWER_WHOLE_GUEST: Duration = Duration::from_secs(300);

/// The guest-lifecycle events repro acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Shutdown {
        guest: bool,
        reason: String,
    },
    Reset,
    GuestPanicked {
        action: String,
    },
    Stop,
    Resume,
    /// QEMU could not read or write a disk's backing file on the host (a full disk pauses the
    /// guest: `nospace`).
    BlockIoError {
        device: String,
        reason: String,
        nospace: bool,
    },
    Other(String),
}

pub struct Qmp {
    service: Service,
    log: Arc<Mutex<std::fs::File>>,
    /// A command went unanswered: QEMU is wedged, and the client, which cannot abandon a
    /// command cleanly, sends nothing more.
    wedged: std::sync::atomic::AtomicBool,
}

fn log_line(log: &Mutex<std::fs::File>, v: serde_json::Value) {
    if let Ok(mut f) = log.lock() {
        let _ = writeln!(f, "{v}");
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn classify(e: &qmp::Event) -> Event {
    match e {
        qmp::Event::SHUTDOWN { data, .. } => Event::Shutdown {
            guest: data.guest,
            reason: format!("{:?}", data.reason).to_lowercase(),
        },
        qmp::Event::RESET { .. } => Event::Reset,
        qmp::Event::GUEST_PANICKED { data, .. } => Event::GuestPanicked {
            action: format!("{:?}", data.action).to_lowercase(),
        },
        qmp::Event::STOP { .. } => Event::Stop,
        qmp::Event::BLOCK_IO_ERROR { data, .. } => Event::BlockIoError {
            device: data.device.clone(),
            reason: data.reason.clone(),
            nospace: data.nospace.unwrap_or(false),
        },
        qmp::Event::RESUME { .. } => Event::Resume,
        other => Event::Other(
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| "?".into()),
        ),
    }
}

/// Opens the QMP socket at `socket`, however long its path.
async fn open(
    socket: &Path,
) -> std::io::Result<
    qapi::futures::QmpStreamNegotiation<QmpStreamTokio<ReadHalf<UnixStream>>, QmpStreamTokio<WriteHalf<UnixStream>>>,
> {
    let stream = super::unix::connect(socket).await?;
    let (r, w) = tokio::io::split(stream);
    QmpStreamTokio::open_split(r, w).await
}

impl Qmp {
    /// Connects and negotiates. Events go to the returned channel until QEMU closes the socket.
    pub async fn connect(socket: &Path, log_path: &Path) -> Result<(Qmp, mpsc::UnboundedReceiver<Event>), Error> {
        let hs = |source| Error::Handshake {
            socket: socket.to_path_buf(),
            source,
        };
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(hs)?;
        let log = Arc::new(Mutex::new(log));
        let timed_out = |e: crate::wait::Timeout| hs(std::io::Error::new(std::io::ErrorKind::TimedOut, e));
        let negotiation = crate::wait::within("the QMP greeting", ANSWER, open(socket))
            .await
            .map_err(timed_out)?
            .map_err(hs)?;
        log_line(
            &log,
            serde_json::json!({"t": now(), "greeting": serde_json::to_value(&negotiation.capabilities).unwrap_or_default()}),
        );
        let stream = crate::wait::within("QMP capabilities negotiation", ANSWER, negotiation.negotiate())
            .await
            .map_err(timed_out)?
            .map_err(hs)?;
        let (service, mut events) = stream.into_parts();
        let (tx, rx) = mpsc::unbounded_channel();
        let elog = log.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) => {
                        log_line(
                            &elog,
                            serde_json::json!({"t": now(), "event": serde_json::to_value(&ev).unwrap_or_default()}),
                        );
                        if tx.send(classify(&ev)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        log_line(&elog, serde_json::json!({"t": now(), "error": e.to_string()}));
                        break;
                    }
                }
            }
        });
        Ok((
            Qmp {
                service,
                log,
                wedged: Default::default(),
            },
            rx,
        ))
    }

    async fn exec<C>(&self, name: &'static str, cmd: C) -> Result<C::Ok, Error>
    where
        C: qapi::Command + qmp::QmpCommand + serde::Serialize + Send + 'static,
        C::Ok: serde::Serialize,
    {
        self.exec_within(name, ANSWER, cmd).await
    }

    /// Runs `cmd`, waiting at most `limit` for QEMU's answer.
    async fn exec_within<C>(&self, name: &'static str, limit: Duration, cmd: C) -> Result<C::Ok, Error>
    where
        C: qapi::Command + qmp::QmpCommand + serde::Serialize + Send + 'static,
        C::Ok: serde::Serialize,
    {
        log_line(
            &self.log,
            serde_json::json!({"t": now(), "execute": name, "arguments": serde_json::to_value(&cmd).unwrap_or_default()}),
        );
        use std::sync::atomic::Ordering;
        if self.wedged.load(Ordering::SeqCst) {
            return Err(Error::Command {
                command: name,
                message: "not sent: an earlier command got no answer".into(),
            });
        }
        let what = format!("QEMU's answer to QMP `{name}`");
        let r = match crate::wait::within(&what, limit, self.service.execute(cmd)).await {
            Ok(r) => r,
            Err(source) => {
                self.wedged.store(true, Ordering::SeqCst);
                log_line(&self.log, serde_json::json!({"t": now(), "error": source.to_string()}));
                return Err(Error::NoAnswer { command: name, source });
            }
        };
        match r {
            Ok(v) => {
                log_line(
                    &self.log,
                    serde_json::json!({"t": now(), "return": serde_json::to_value(&v).unwrap_or_default()}),
                );
                Ok(v)
            }
            Err(e) => {
                log_line(&self.log, serde_json::json!({"t": now(), "error": e.to_string()}));
                Err(Error::Command {
                    command: name,
                    message: e.to_string(),
                })
            }
        }
    }

    pub async fn cont(&self) -> Result<(), Error> {
        self.exec("cont", qmp::cont {}).await.map(drop)
    }

    pub async fn stop(&self) -> Result<(), Error> {
        self.exec("stop", qmp::stop {}).await.map(drop)
    }

    /// The run state, e.g. `running`, `paused`, `guest-panicked`.
    pub async fn status(&self) -> Result<String, Error> {
        let s = self.exec("query-status", qmp::query_status {}).await?;
        Ok(serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default())
    }

    pub async fn set_link(&self, name: &str, up: bool) -> Result<(), Error> {
        self.exec(
            "set_link",
            qmp::set_link {
                name: name.to_string(),
                up,
            },
        )
        .await
        .map(drop)
    }

    /// Writes the guest's memory to `path` in kdump-compressed (zlib) form, which crash(8) and
    /// makedumpfile read. Synchronous: returns when the file is complete.
    pub async fn dump_kdump(&self, path: &Path) -> Result<(), Error> {
        self.exec_within(
            "dump-guest-memory",
            ANSWER_WHOLE_GUEST,
            qmp::dump_guest_memory {
                paging: false,
                protocol: format!("file:{}", path.display()),
                detach: Some(false),
                begin: None,
                length: None,
                format: Some(qmp::DumpGuestMemoryFormat::kdump_zlib),
            },
        )
        .await
        .map(drop)
    }

    /// An HMP command (savevm, loadvm: whole-guest work); its output (HMP reports errors as
    /// text).
    async fn hmp(&self, line: &str) -> Result<String, Error> {
        self.exec_within(
            "human-monitor-command",
            ANSWER_WHOLE_GUEST,
            qmp::human_monitor_command {
                command_line: line.to_string(),
                cpu_index: None,
            },
        )
        .await
    }

    /// Saves the whole guest (RAM, devices, internal qcow2 disk snapshots) as `tag`.
    pub async fn savevm(&self, tag: &str) -> Result<(), Error> {
        self.hmp_quiet("savevm", &format!("savevm {tag}")).await
    }

    /// Restores the guest saved as `tag`; it keeps running from that point.
    pub async fn loadvm(&self, tag: &str) -> Result<(), Error> {
        self.hmp_quiet("loadvm", &format!("loadvm {tag}")).await
    }

    async fn hmp_quiet(&self, name: &'static str, line: &str) -> Result<(), Error> {
        let out = self.hmp(line).await?;
        if out.trim().is_empty() {
            Ok(())
        } else {
            Err(Error::Command {
                command: name,
                message: out.trim().to_string(),
            })
        }
    }

    /// A hard reset, as a power cut: nothing in the guest runs first. With `-no-reboot` QEMU
    /// turns any reset into a shutdown, so the reboot action is `reset` while it happens; call
    /// [`Qmp::reboot_action`] with `false` after the RESET event to restore it.
    pub async fn power_cut(&self) -> Result<(), Error> {
        self.reboot_action(true).await?;
        self.exec("system_reset", qmp::system_reset {}).await.map(drop)
    }

    /// What a reset does: `true` resets the guest, `false` ends QEMU (like `-no-reboot`).
    pub async fn reboot_action(&self, reset: bool) -> Result<(), Error> {
        self.exec(
            "set-action",
            qmp::set_action {
                reboot: Some(if reset {
                    qmp::RebootAction::reset
                } else {
                    qmp::RebootAction::shutdown
                }),
                panic: None,
                shutdown: None,
                watchdog: None,
            },
        )
        .await
        .map(drop)
    }

    pub async fn quit(&self) -> Result<(), Error> {
        self.exec("quit", qmp::quit {}).await.map(drop)
    }
}
