//! The run's one event stream: what each node's console, QMP and QEMU process report, and what
//! the run's own background work (waiters for the guest to answer, setup, the workload, the power cut's check)
//! reports back.

use super::infra::{InfraError, StepError};
use super::observer::Seen;
use super::outcome::WorkloadOutcome;
use super::workload::Snapshot;
use crate::console::ConsoleEvent;
use crate::guest::{Link, Session};
use crate::vm::{qmp, Instance};
use std::process::ExitStatus;
use tokio::sync::mpsc;

pub enum Event {
    /// From node N's console, QMP or process.
    Node(usize, NodeEvent),
    /// Node N's waiter: a session on its agent or SSH, and the link it came by; or why there
    /// is none.
    Up(usize, Result<(Session, Link), String>),
    /// The setup steps ended.
    SetupDone(Result<(), StepError>),
    /// A workload output line holds a fault's or the power cut's marker.
    Marker(String),
    /// The time of fault N (`at = ...`) has come.
    FaultDue(usize),
    /// The workload asks for a snapshot save or restore; the reply is the seconds it took.
    Snapshot(Snapshot, std::sync::mpsc::Sender<Result<f64, String>>),
    WorkloadDone(WorkloadOutcome),
    /// After a power cut: the node answers again (agent or SSH), this many seconds after the
    /// reset.
    CheckUp(f64),
    /// After a power cut: the storage is back and the check ran (its outcome and seconds).
    CheckDone(Result<(WorkloadOutcome, f64), InfraError>),
    /// `--gdb`: node N's debugging session ended (or its relay failed: why).
    DebuggerDone(usize, Result<crate::vm::gdb::Ended, String>),
}

pub enum NodeEvent {
    Console(ConsoleEvent),
    Qmp(qmp::Event),
    Exited(Option<ExitStatus>),
}

pub type Sender = mpsc::UnboundedSender<Event>;

impl Event {
    /// What the observer is to be told of this event, and about which node.
    pub fn seen(&self) -> Option<(usize, Seen)> {
        let Event::Node(node, event) = self else { return None };
        let seen = match event {
            NodeEvent::Console(ConsoleEvent::CrashStarted { at }) => Seen::CrashStarted { at: *at },
            NodeEvent::Console(ConsoleEvent::Crash { report, at }) => Seen::Crash {
                report: report.clone(),
                at: *at,
                overloaded: None,
            },
            NodeEvent::Console(ConsoleEvent::Eof) => Seen::ConsoleClosed,
            NodeEvent::Qmp(qmp::Event::GuestPanicked { .. }) => Seen::GuestPanicked,
            NodeEvent::Qmp(qmp::Event::BlockIoError { device, reason, .. }) => Seen::HostIoError {
                device: device.clone(),
                reason: reason.clone(),
            },
            NodeEvent::Exited(status) => Seen::Exited {
                status: status.map_or("unknown status".into(), |s| s.to_string()),
            },
            _ => return None,
        };
        Some((*node, seen))
    }
}

/// Forwards an instance's console, QMP events and exit into the run's event stream.
pub fn forward(node: usize, instance: &mut Instance, tx: Sender) {
    if let Some(mut console) = instance.console.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = console.recv().await {
                if tx.send(Event::Node(node, NodeEvent::Console(ev))).is_err() {
                    break;
                }
            }
        });
    }
    if let Some(mut qmp_events) = instance.qmp_events.take() {
        let tx = tx.clone();
        let control = instance.console_control.clone();
        tokio::spawn(async move {
            while let Some(ev) = qmp_events.recv().await {
                if matches!(ev, qmp::Event::GuestPanicked { .. }) {
                    // The guest is paused: whatever report is on the console is all there is.
                    control.flush();
                }
                if tx.send(Event::Node(node, NodeEvent::Qmp(ev))).is_err() {
                    break;
                }
            }
        });
    }
    let mut exit = instance.exit_watch();
    tokio::spawn(async move {
        let status = exit.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s);
        let _ = tx.send(Event::Node(node, NodeEvent::Exited(status)));
    });
}
