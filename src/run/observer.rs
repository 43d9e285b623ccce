//! What the consoles and QEMUs showed: crash reports (kept, ignored, or ending the run), a guest
//! panic, exits. Pure: it is told what was seen and says what happened; the wait loop acts on it.

use super::verdict;
use crate::arch::Arch;
use crate::scenario::Expect;
use repro_oops::Report;
use std::time::Duration;
use tokio::time::Instant;

/// Something a node's console or QEMU showed.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A crash report has begun on the console.
    CrashStarted { at: Instant },
    /// A complete crash report; `overloaded` says how the host was overloaded when it came, if
    /// it was.
    Crash {
        report: Box<Report>,
        at: Instant,
        overloaded: Option<String>,
    },
    /// QMP reported GUEST_PANICKED.
    GuestPanicked,
    /// The console reached its end (QEMU's last words are in).
    ConsoleClosed,
    /// QEMU exited.
    Exited { status: String },
    /// QEMU could not read or write a disk's file on the host.
    HostIoError { device: String, reason: String },
}

/// What that means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// The first line of a crash report.
    CrashStarted,
    /// A crash report the run keeps; `ends_run` when it is the expected one or a fatal one.
    Crash {
        title: String,
        ends_run: bool,
    },
    /// A known splat the scenario ignores.
    Ignored {
        title: String,
    },
    GuestPanicked,
    ConsoleClosed,
    /// QEMU exited (reported once per node).
    Exited {
        status: String,
    },
    /// The host failed the guest's storage (a full disk): the run cannot go on.
    HostIoError {
        device: String,
        reason: String,
    },
    /// A stall that came while the host was overloaded: recorded, not a crash.
    Suspect {
        title: String,
        why: String,
    },
}

#[derive(Debug)]
pub struct Observer {
    expect: Expect,
    /// Each node's arch (ignore rules can name one).
    arches: Vec<Arch>,
    /// Complete crash reports, in console order, and the node of each.
    pub crashes: Vec<Report>,
    pub crash_nodes: Vec<usize>,
    /// Reports matching the scenario's `expect.ignore`.
    pub ignored: Vec<Report>,
    /// Stalls (hung task, soft lockup, RCU stall) that came while the host was overloaded, with
    /// how: under emulation a starved guest stalls without any bug, so these are not crashes.
    pub suspect: Vec<(Report, String)>,
    pub guest_panicked: bool,
    crash_started: Option<Instant>,
    /// First line to completion of the report that ended the run.
    pub detection: Option<Duration>,
    /// A report that ends the run has completed.
    pub done: bool,
    exited: Vec<bool>,
    console_closed: Vec<bool>,
}

/// The kinds of report a starved guest prints without any bug in its kernel.
pub fn is_stall(report: &Report) -> bool {
    use repro_oops::CrashKind as K;
    matches!(report.kind, K::HungTask | K::RcuStall | K::SoftLockup)
}

impl Observer {
    pub fn new(expect: Expect, arches: Vec<Arch>) -> Self {
        let n = arches.len();
        Observer {
            expect,
            arches,
            crashes: Vec::new(),
            crash_nodes: Vec::new(),
            ignored: Vec::new(),
            suspect: Vec::new(),
            guest_panicked: false,
            crash_started: None,
            detection: None,
            done: false,
            exited: vec![false; n],
            console_closed: vec![false; n],
        }
    }

    pub fn on(&mut self, node: usize, seen: Seen) -> Option<Happened> {
        match seen {
            Seen::CrashStarted { at } if self.crash_started.is_none() => {
                self.crash_started = Some(at);
                Some(Happened::CrashStarted)
            }
            Seen::CrashStarted { .. } => None,
            Seen::Crash {
                report,
                overloaded: Some(why),
                ..
            } if is_stall(&report) => {
                let title = report.title.clone();
                self.suspect.push((*report, why.clone()));
                Some(Happened::Suspect { title, why })
            }
            Seen::Crash { report, at, .. } => Some(self.crash(node, *report, at)),
            Seen::GuestPanicked => {
                self.guest_panicked = true;
                Some(Happened::GuestPanicked)
            }
            Seen::ConsoleClosed => {
                *self.console_closed.get_mut(node)? = true;
                Some(Happened::ConsoleClosed)
            }
            Seen::Exited { status } => {
                let first = !std::mem::replace(self.exited.get_mut(node)?, true);
                first.then_some(Happened::Exited { status })
            }
            Seen::HostIoError { device, reason } => Some(Happened::HostIoError { device, reason }),
        }
    }

    fn crash(&mut self, node: usize, report: Report, at: Instant) -> Happened {
        let arch = self.arches.get(node).copied().unwrap_or(Arch::X86_64);
        let started = self.crash_started.take();
        let title = report.title.clone();
        if verdict::ignored(&self.expect, &report, arch) {
            self.ignored.push(report);
            return Happened::Ignored { title };
        }
        let ends_run = verdict::ends_run(&self.expect, &report);
        if ends_run && !self.done {
            self.done = true;
            self.detection = started.map(|t| at.saturating_duration_since(t));
        }
        self.crashes.push(report);
        self.crash_nodes.push(node);
        Happened::Crash { title, ends_run }
    }

    /// A crash report has begun and not completed yet.
    pub fn in_report(&self) -> bool {
        self.crash_started.is_some()
    }

    /// Every QEMU that exited has had its console read to the end.
    pub fn consoles_closed(&self) -> bool {
        self.exited
            .iter()
            .zip(&self.console_closed)
            .all(|(exited, closed)| !exited || *closed)
    }
}
