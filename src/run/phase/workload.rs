//! Workload: the scenario's script over SSH, its background steps beside it, faults fired at
//! their time or marker, snapshot restores between iterations, and the power-cut marker.

use crate::run::event::{Event, Sender};
use crate::run::infra::{InfraError, Stop};
use crate::run::outcome::WorkloadOutcome;
use crate::run::progress::{Phase, Progress};
use crate::run::state::RunState;
use crate::run::steps::run_background;
use crate::run::watch::Waiting;
use crate::run::workload::{line_hook, Job, Snapshot, STREAMED};
use crate::scenario::{FaultAction, FaultWhen};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The faults' record, in the run directory.
const FAULTS_LOG: &str = "faults.log";

impl RunState {
    pub async fn workload(&mut self) -> Result<(), Stop> {
        self.watch.settle_report().await?;
        let started = Instant::now();
        let workload = &self.scenario.workload;
        self.note(Progress::Phase {
            phase: Phase::Workload,
            detail: format!(
                "{} iteration(s), {} in parallel, on {}",
                workload.iterations,
                workload.parallel,
                self.name(workload.node)
            ),
        });
        let halt = self.halt_flag();
        self.start_background(&halt);
        let completed = self.start_job(&halt);
        let timers = self.schedule_faults(started);
        let waiting = Waiting::new(Phase::Workload, "the workload", self.scenario.workload.timeout);
        let ended = self.watch_workload(&waiting, started).await;
        halt.store(true, Ordering::SeqCst);
        timers.iter().for_each(JoinHandle::abort);
        self.completed = completed.load(Ordering::SeqCst);
        let elapsed = started.elapsed();
        self.timings.workload = Some(elapsed.as_secs_f64());
        if let (Some(at), Ok(WorkloadOutcome::Passed { .. })) = (self.restored_at.take(), &ended) {
            self.timings.restored_iterations.push(at.elapsed().as_secs_f64());
        }
        self.note(Progress::PhaseDone {
            phase: Phase::Workload,
            elapsed,
        });
        match ended {
            Ok(outcome) => {
                self.workload = outcome;
                Ok(())
            }
            Err(stop) => {
                self.workload = WorkloadOutcome::Interrupted;
                Err(stop)
            }
        }
    }

    /// Handles the workload's events until it ends, times out, or the run stops.
    pub async fn watch_workload(&mut self, waiting: &Waiting, started: Instant) -> Result<WorkloadOutcome, Stop> {
        let mut pending: Vec<bool> = self.scenario.faults.iter().map(|_| true).collect();
        let cut_marker = self.scenario.power_cut.as_ref().and_then(|pc| pc.marker.clone());
        loop {
            let event = match self.watch.next(waiting).await {
                Err(Stop::Infra(InfraError::Timeout(_))) => {
                    let after_secs = self.scenario.workload.timeout.as_secs();
                    return Ok(WorkloadOutcome::TimedOut { after_secs });
                }
                other => other?,
            };
            match event {
                Event::WorkloadDone(outcome) => return Ok(outcome),
                Event::Marker(m) if cut_marker.as_ref() == Some(&m) => {
                    // The power fails here: the workload is abandoned mid-flight.
                    self.cut_at_marker = true;
                    return Ok(WorkloadOutcome::Interrupted);
                }
                Event::Marker(m) => {
                    for i in fired_by(&self.scenario.faults, &mut pending, &FaultWhen::Marker(m)) {
                        self.fire_fault(i, started).await?;
                    }
                }
                Event::FaultDue(i) if pending.get(i) == Some(&true) => {
                    pending[i] = false;
                    self.fire_fault(i, started).await?;
                }
                Event::Snapshot(op, reply) => {
                    let done = self.snapshot(op).await;
                    let _ = reply.send(done);
                }
                _ => {}
            }
        }
    }

    fn start_background(&self, halt: &Arc<AtomicBool>) {
        for (i, step) in self.scenario.background.iter().enumerate() {
            if self.guests.ssh_port(step.node).is_none() {
                continue;
            }
            let (link, halt, dir, script) = (
                self.link(step.node),
                halt.clone(),
                self.run_dir.clone(),
                step.script.clone(),
            );
            std::thread::spawn(move || run_background(i, &link, &script, &dir, &halt));
        }
    }

    /// Starts the workload on its own thread; gives its count of completed iterations.
    fn start_job(&mut self, halt: &Arc<AtomicBool>) -> Arc<AtomicU32> {
        let workload = self.scenario.workload.clone();
        let first = self.sessions[workload.node].take();
        let mut job = Job::new(
            self.link(workload.node),
            workload.clone(),
            self.run_dir.clone(),
            halt.clone(),
            first,
        );
        job.on_stdout = self.output_hook();
        if workload.restore_snapshot {
            job.restore = Some(restore_hook(self.watch.sender()));
        }
        let completed = job.counter();
        let tx = self.watch.sender();
        std::thread::spawn(move || {
            let _ = tx.send(Event::WorkloadDone(job.run()));
        });
        completed
    }

    /// Sees each workload line: fault and power-cut markers become events, the data marker is
    /// kept, and before a power cut at a marker the output is kept as it streams.
    fn output_hook(&self) -> Option<crate::run::workload::OutputHook> {
        let cut = self.scenario.power_cut.as_ref().and_then(|pc| pc.marker.clone());
        let mut markers: Vec<String> = self
            .scenario
            .faults
            .iter()
            .filter_map(|f| match &f.when {
                FaultWhen::Marker(m) => Some(m.clone()),
                FaultWhen::At(_) => None,
            })
            .collect();
        markers.extend(cut.clone());
        let data = self.scenario.expect.marker.clone();
        if markers.is_empty() && data.is_none() {
            return None;
        }
        let streamed = cut
            .and_then(|_| std::fs::File::create(self.run_dir.join(STREAMED)).ok())
            .map(Mutex::new);
        let (tx, seen) = (self.watch.sender(), self.marker_line.clone());
        Some(line_hook(move |line: &str| {
            if let Some(Ok(mut f)) = streamed.as_ref().map(|f| f.lock()) {
                let _ = writeln!(f, "{line}");
            }
            for m in markers.iter().filter(|m| line.contains(m.as_str())) {
                let _ = tx.send(Event::Marker(m.clone()));
            }
            keep_marker_line(&seen, data.as_deref(), line);
        }))
    }

    /// Each fault with a time gets a timer that sends [`Event::FaultDue`].
    fn schedule_faults(&self, started: Instant) -> Vec<JoinHandle<()>> {
        let faults = self.scenario.faults.iter().enumerate();
        faults
            .filter_map(|(i, f)| match f.when {
                FaultWhen::At(after) => Some((i, after)),
                FaultWhen::Marker(_) => None,
            })
            .map(|(i, after)| {
                let tx = self.watch.sender();
                tokio::spawn(async move {
                    tokio::time::sleep_until(started + after).await;
                    let _ = tx.send(Event::FaultDue(i));
                })
            })
            .collect()
    }

    /// Performs fault `i` through QMP and records it in `faults.log`. A fault that could not be
    /// made ends the run: the scenario was not tested as written.
    async fn fire_fault(&mut self, i: usize, started: Instant) -> Result<(), Stop> {
        let fault = self.scenario.faults[i].clone();
        let done = self.guests.fault(fault.node, fault.action).await;
        let what = match fault.action {
            FaultAction::Stop => "stop",
            FaultAction::Cont => "cont",
            FaultAction::LinkDown => "link-down",
            FaultAction::LinkUp => "link-up",
        };
        let line = format!(
            "{:.2}s {what} on node `{}`: {}",
            started.elapsed().as_secs_f64(),
            self.name(fault.node),
            match &done {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("failed: {e}"),
            }
        );
        self.note(Progress::Note(format!("fault: {line}")));
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.run_dir.join(FAULTS_LOG));
        if let Ok(mut log) = log {
            let _ = writeln!(log, "{line}");
        }
        done.map_err(|source| {
            Stop::Infra(InfraError::Qmp {
                doing: "making a scenario fault",
                node: self.name(fault.node),
                source,
            })
        })
    }

    /// Saves or restores the workload node's snapshot; the seconds it took.
    async fn snapshot(&mut self, op: Snapshot) -> Result<f64, String> {
        let started = std::time::Instant::now();
        if op == Snapshot::Load {
            // The iteration before this restore began with the previous one.
            if let Some(at) = self.restored_at.replace(Instant::now()) {
                self.timings.restored_iterations.push(at.elapsed().as_secs_f64());
            }
        }
        let done = self.guests.snapshot(self.scenario.workload.node, op).await;
        let secs = started.elapsed().as_secs_f64();
        match (op, &done) {
            (Snapshot::Save, Ok(())) => self.timings.snapshot_save = Some(secs),
            (Snapshot::Load, Ok(())) => self.timings.restores.push(secs),
            _ => {}
        }
        done.map(|()| secs).map_err(|e| crate::errors::chain(&*e))
    }
}

/// The pending faults `when` fires, now no longer pending.
fn fired_by(faults: &[crate::scenario::Fault], pending: &mut [bool], when: &FaultWhen) -> Vec<usize> {
    let hit: Vec<usize> = (0..faults.len())
        .filter(|&i| pending[i] && faults[i].when == *when)
        .collect();
    for &i in &hit {
        pending[i] = false;
    }
    hit
}

/// Keeps the first line that holds the data marker.
pub fn keep_marker_line(seen: &Mutex<Option<String>>, marker: Option<&str>, line: &str) {
    if let (Some(m), Ok(mut kept)) = (marker, seen.lock()) {
        if line.contains(m) {
            kept.get_or_insert_with(|| line.to_string());
        }
    }
}

/// A restore hook that asks the run (through its events) for a snapshot and waits for it.
fn restore_hook(tx: Sender) -> crate::run::workload::RestoreHook {
    Arc::new(move |op| {
        let (reply, answer) = std::sync::mpsc::channel();
        tx.send(Event::Snapshot(op, reply))
            .map_err(|_| "the run ended".to_string())?;
        answer.recv().map_err(|_| "the run ended".to_string())?
    })
}
