//! The one wait loop of a run. [`Watch`] owns the event stream, the cancel signal and the
//! observer: every phase waits through [`Watch::next`], which feeds the observer, stops the run
//! on a crash that ends it, on QEMU exiting or on Ctrl-C, and fails with a timeout that names
//! what was waited for and for how long.

use super::event::{Event, Sender};
use super::infra::{InfraError, Stop};
use super::observer::{Happened, Observer, Seen};
use super::progress::{Phase, Progress};
use crate::vm::Tails;
use crate::wait::Timeout;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a phase waits for, and until when.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Named in errors: QEMU exiting now exited "during" this phase.
    pub phase: Phase,
    /// What is waited for, for the timeout's message.
    pub what: String,
    pub since: Instant,
    pub deadline: Instant,
}

impl Waiting {
    pub fn new(phase: Phase, what: impl Into<String>, timeout: Duration) -> Self {
        let since = Instant::now();
        Waiting {
            phase,
            what: what.into(),
            since,
            deadline: since + timeout,
        }
    }
}

/// How long a crash report in progress may take to complete (the detector closes a stalled
/// one after 3 s of quiet).
pub const REPORT_GRACE: Duration = Duration::from_secs(6);

pub struct Watch {
    events: mpsc::UnboundedReceiver<Event>,
    sender: Sender,
    cancel: watch::Receiver<bool>,
    /// The cancel's sender is gone: it can no longer fire.
    cancel_gone: bool,
    progress: mpsc::UnboundedSender<Progress>,
    pub observer: Observer,
    names: Vec<String>,
    tails: Vec<Option<Tails>>,
}

impl Watch {
    pub fn new(
        names: Vec<String>,
        observer: Observer,
        cancel: watch::Receiver<bool>,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let tails = names.iter().map(|_| None).collect();
        Watch {
            events,
            sender,
            cancel,
            cancel_gone: false,
            progress,
            observer,
            names,
            tails,
        }
    }

    /// Where background work sends its events.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Node `node`'s QEMU stderr and console, for the errors about it.
    /// Errors writing the nodes' console logs and QEMU stderr files.
    pub fn write_errors(&self) -> Vec<String> {
        self.tails.iter().flatten().flat_map(Tails::write_errors).collect()
    }

    pub fn attach(&mut self, node: usize, tails: Tails) {
        if let Some(slot) = self.tails.get_mut(node) {
            *slot = Some(tails);
        }
    }

    pub fn console_tail(&self, node: usize) -> String {
        self.tails
            .get(node)
            .and_then(|t| t.as_ref())
            .map_or(String::new(), |t| t.console(15))
    }

    /// `Err(Interrupted)` once the user has cancelled.
    pub fn check_cancel(&self) -> Result<(), Stop> {
        if *self.cancel.borrow() {
            Err(Stop::Interrupted)
        } else {
            Ok(())
        }
    }

    /// The next event, once the observer has seen it. Phases match on what they wait for and
    /// let the rest go.
    pub async fn next(&mut self, waiting: &Waiting) -> Result<Event, Stop> {
        loop {
            self.check_cancel()?;
            tokio::select! {
                event = self.events.recv() => {
                    // The watch holds a sender, so the stream never ends.
                    let Some(event) = event else { continue };
                    self.observe(&event, waiting.phase)?;
                    return Ok(event);
                }
                _ = tokio::time::sleep_until(waiting.deadline) => {
                    return Err(Timeout { what: waiting.what.clone(), waited: waiting.since.elapsed() }.into());
                }
                changed = self.cancel.changed(), if !self.cancel_gone => {
                    self.cancel_gone = changed.is_err();
                }
            }
        }
    }

    fn observe(&mut self, event: &Event, phase: Phase) -> Result<(), Stop> {
        let Some((node, mut seen)) = event.seen() else {
            return Ok(());
        };
        if let Seen::Crash { overloaded, .. } = &mut seen {
            *overloaded = host_overloaded();
        }
        let name = self.names.get(node).cloned().unwrap_or_default();
        match self.observer.on(node, seen) {
            Some(Happened::CrashStarted) => self.note(Progress::Phase {
                phase: Phase::Detection,
                detail: "crash report on the console".into(),
            }),
            Some(Happened::Ignored { title }) => self.note(Progress::Note(format!(
                "{name}: {title} (a known splat this scenario ignores)"
            ))),
            Some(Happened::Crash { title, ends_run }) => {
                self.note(Progress::Note(format!("{name}: {title}")));
                if ends_run {
                    return Err(Stop::Crash);
                }
            }
            Some(Happened::Exited { status }) => {
                let tails = self.tails.get(node).and_then(|t| t.as_ref());
                return Err(InfraError::QemuExited {
                    node: name,
                    phase,
                    status,
                    stderr: tails.map_or(String::new(), |t| t.stderr()),
                    console: tails.map_or(String::new(), |t| t.console(15)),
                }
                .into());
            }
            Some(Happened::Suspect { title, why }) => self.note(Progress::Note(format!(
                "{name}: {title}, while {why}: not counted as a crash (a starved guest stalls without a bug)"
            ))),
            Some(Happened::HostIoError { device, reason }) => {
                return Err(InfraError::HostStorage {
                    node: name,
                    device,
                    reason,
                }
                .into());
            }
            Some(Happened::GuestPanicked | Happened::ConsoleClosed) | None => {}
        }
        Ok(())
    }

    fn note(&self, p: Progress) {
        let _ = self.progress.send(p);
    }

    /// Waits while a crash report is in progress, so the next phase does not start under it.
    /// `Err(Crash)` if it ends the run.
    pub async fn settle_report(&mut self) -> Result<(), Stop> {
        let waiting = Waiting::new(
            Phase::Detection,
            "the crash report on the console to complete",
            REPORT_GRACE,
        );
        while self.observer.in_report() {
            match self.next(&waiting).await {
                Ok(_) => {}
                Err(Stop::Infra(InfraError::Timeout(_))) => break,
                Err(stop) => return Err(stop),
            }
        }
        Ok(())
    }
}

/// A host runs this many runnable threads per core before a guest's stall is suspect: two busy
/// 2-vCPU TCG guests on two cores stay below it, ten do not.
const OVERLOAD_PER_CORE: f64 = 3.0;

/// How the host is overloaded now, if it is: its 1-minute load average above
/// [`OVERLOAD_PER_CORE`] per core.
fn host_overloaded() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    overloaded(load, cores)
}

/// Pure half of [`host_overloaded`].
pub fn overloaded(load: f64, cores: usize) -> Option<String> {
    (load > OVERLOAD_PER_CORE * cores as f64)
        .then(|| format!("the host was overloaded (load {load:.1} on {cores} cores)"))
}
