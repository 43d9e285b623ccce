//! `[power_cut]`: reset the workload's node through QMP (the power fails: no sync, no unmount),
//! wait for it to boot again on the same root, disks and pmem, mount its storage again without
//! mkfs, and run the scenario's check, all while the console detector keeps watching.

use crate::console::ConsoleEvent;
use crate::run::event::{Event, NodeEvent};
use crate::run::infra::{InfraError, Stop};
use crate::run::outcome::WorkloadOutcome;
use crate::run::progress::{Phase, Progress};
use crate::run::setup;
use crate::run::state::RunState;
use crate::run::steps::run_on_session;
use crate::run::verdict::PowerCutObserved;
use crate::run::watch::Waiting;
use crate::run::workload::{line_hook, Job};
use crate::scenario::PowerCut;
use crate::vm::qmp;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long QEMU has to report the reset it was asked for.
const RESET_TIMEOUT: Duration = Duration::from_secs(10);
/// The log of the storage step that runs again after the power cut.
pub const SETUP_LOG: &str = "setup-after-power-cut.log";
/// The check's output: `check.stdout` and `check.stderr`.
pub const CHECK_STEM: &str = "check";

/// Where a run's power cut stands once the workload phase is over.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Cut now.
    Now,
    /// The scenario wanted a cut at a marker that the workload never printed.
    MarkerMissing,
    /// Not this run (the workload failed, crashed or was interrupted).
    No,
}

/// Decides whether to cut: at the marker when it was seen, else after a workload that passed.
pub fn due(cut: &PowerCut, seen_marker: bool, workload: &WorkloadOutcome) -> Due {
    match (&cut.marker, seen_marker, workload) {
        (Some(_), true, _) => Due::Now,
        (Some(_), false, WorkloadOutcome::Passed { .. }) => Due::MarkerMissing,
        (None, _, WorkloadOutcome::Passed { .. }) => Due::Now,
        _ => Due::No,
    }
}

impl RunState {
    pub async fn power_cut(&mut self) -> Result<(), Stop> {
        let Some(cut) = self.scenario.power_cut.clone() else {
            return Ok(());
        };
        self.watch.settle_report().await?;
        match due(&cut, self.cut_at_marker, &self.workload) {
            Due::No => return Ok(()),
            Due::MarkerMissing => {
                let marker = cut.marker.clone().unwrap_or_default();
                return Err(InfraError::PowerCutMarkerMissing { marker }.into());
            }
            Due::Now => {}
        }
        let node = cut.check.node;
        self.power_cut = Some(PowerCutObserved {
            at_marker: cut.marker.clone().filter(|_| self.cut_at_marker),
            check: WorkloadOutcome::NotRun,
            marker_line: None,
        });
        self.note(Progress::Phase {
            phase: Phase::PowerCut,
            detail: format!(
                "QMP system_reset of `{}`, then a boot on the same storage",
                self.name(node)
            ),
        });
        let started = Instant::now();
        // The guest's agent says hello again once the node has booted after the cut.
        let hellos = self.reach(node).hellos();
        self.guests.power_cut(node).await.map_err(|source| InfraError::Qmp {
            doing: "cutting the power",
            node: self.name(node),
            source,
        })?;
        self.await_reset(
            node,
            &Waiting::new(Phase::PowerCut, "QEMU's RESET after system_reset", RESET_TIMEOUT),
        )
        .await?;
        let check_marker = Arc::new(Mutex::new(None));
        let halt = self.halt_flag();
        let listening = self.start_check(&cut, check_marker.clone(), halt.clone(), hellos);
        let timeout = self.scenario.boot_timeout + super::setup::SETUP_TIMEOUT + cut.check.timeout;
        let mut waiting = Waiting::new(
            Phase::PowerCut,
            "the node to boot, mount its storage and run the check",
            timeout,
        );
        let result = self.await_check(node, &listening, &mut waiting, started).await;
        halt.store(true, Ordering::SeqCst);
        if let (Some(pc), Ok(line)) = (self.power_cut.as_mut(), check_marker.lock()) {
            pc.marker_line = line.clone();
        }
        result
    }

    /// Until the guest runs again, a reset must not end QEMU (SeaBIOS resets the machine once
    /// more on a warm start): the reboot action stays `reset` until SSH is back.
    pub async fn await_reset(&mut self, node: usize, waiting: &Waiting) -> Result<(), Stop> {
        loop {
            if let Event::Node(i, NodeEvent::Qmp(qmp::Event::Reset)) = self.watch.next(waiting).await? {
                if i == node {
                    return Ok(());
                }
            }
        }
    }

    /// The blocking half, on a thread: the node answering again (its agent's hello after the
    /// `hellos` it had said, or SSH), the storage again, then the check. It reports
    /// [`Event::CheckUp`] and [`Event::CheckDone`].
    fn start_check(
        &self,
        cut: &PowerCut,
        marker: Arc<Mutex<Option<String>>>,
        halt: Arc<AtomicBool>,
        hellos: u64,
    ) -> Arc<AtomicBool> {
        let node = cut.check.node;
        let listening = Arc::new(AtomicBool::new(false));
        let (reach, dir, up) = (self.reach(node), self.run_dir.clone(), listening.clone());
        let steps = setup::after_power_cut(&self.scenario, node);
        let (name, check, tx) = (self.name(node), cut.check.clone(), self.watch.sender());
        let hook = self
            .scenario
            .expect
            .marker
            .clone()
            .map(|data| line_hook(move |line: &str| super::workload::keep_marker_line(&marker, Some(&data), line)));
        let ssh_by = std::time::Instant::now() + self.scenario.boot_timeout;
        std::thread::spawn(move || {
            let since = std::time::Instant::now();
            let (session, link) = match reach.wait_up(hellos, ssh_by, &halt, &up) {
                Ok(up) => up,
                Err(e) => {
                    let _ = tx.send(Event::CheckDone(Err(InfraError::NotBack {
                        node: name,
                        source: Box::new(e),
                    })));
                    return;
                }
            };
            let _ = tx.send(Event::CheckUp(since.elapsed().as_secs_f64()));
            let since = std::time::Instant::now();
            // The steps run on the session that proved the node back: no second SSH handshake
            // with a guest that has just booted.
            if let Err(e) = run_on_session(&session, &steps, &name, &dir.join(SETUP_LOG)) {
                let _ = tx.send(Event::CheckDone(Err(InfraError::StorageAfterPowerCut(e))));
                return;
            }
            let mut job = Job::new(link, check, dir, halt, Some(session));
            job.on_stdout = hook;
            job.stem = CHECK_STEM;
            let outcome = job.run();
            let _ = tx.send(Event::CheckDone(Ok((outcome, since.elapsed().as_secs_f64()))));
        });
        listening
    }

    /// Waits for the check to finish; restores the reboot action once SSH is back (a guest that
    /// reboots on its own must end QEMU again).
    pub async fn await_check(
        &mut self,
        node: usize,
        listening: &AtomicBool,
        waiting: &mut Waiting,
        started: Instant,
    ) -> Result<(), Stop> {
        loop {
            match self.watch.next(waiting).await? {
                Event::Node(i, NodeEvent::Console(ConsoleEvent::SshdListening)) if i == node => {
                    listening.store(true, Ordering::SeqCst)
                }
                Event::CheckUp(secs) => {
                    self.timings.power_cut_to_ssh = Some(secs);
                    self.guests
                        .reboot_action(node, false)
                        .await
                        .map_err(|source| InfraError::Qmp {
                            doing: "restoring the reboot action after the power cut",
                            node: self.name(node),
                            source,
                        })?;
                    self.note(Progress::PhaseDone {
                        phase: Phase::PowerCut,
                        elapsed: started.elapsed(),
                    });
                    self.note(Progress::Phase {
                        phase: Phase::Check,
                        detail: format!("storage mounted again, then the check on `{}`", self.name(node)),
                    });
                    waiting.phase = Phase::Check;
                }
                Event::CheckDone(Ok((outcome, secs))) => {
                    if let Some(pc) = self.power_cut.as_mut() {
                        pc.check = outcome;
                    }
                    self.timings.check = Some(secs);
                    let elapsed = Duration::from_secs_f64(secs);
                    self.note(Progress::PhaseDone {
                        phase: Phase::Check,
                        elapsed,
                    });
                    return Ok(());
                }
                Event::CheckDone(Err(e)) => return Err(e.into()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Workload;
    use std::time::Duration;

    fn cut(marker: Option<&str>) -> PowerCut {
        PowerCut {
            marker: marker.map(str::to_string),
            check: Workload {
                script: "true".into(),
                node: 0,
                timeout: Duration::from_secs(1),
                iterations: 1,
                parallel: 1,
                shell: "/bin/bash".into(),
                restore_snapshot: false,
                placeholder: None,
            },
        }
    }

    #[test]
    fn cuts_at_the_marker_or_after_a_passing_workload_only() {
        let passed = WorkloadOutcome::Passed { iterations: 1 };
        let failed = WorkloadOutcome::Failed {
            iteration: 0,
            status: 1,
            stderr_tail: String::new(),
        };
        assert_eq!(due(&cut(None), false, &passed), Due::Now);
        assert_eq!(due(&cut(None), false, &failed), Due::No);
        assert_eq!(due(&cut(None), false, &WorkloadOutcome::Interrupted), Due::No);
        assert_eq!(due(&cut(Some("ready")), true, &WorkloadOutcome::Interrupted), Due::Now);
        assert_eq!(due(&cut(Some("ready")), false, &passed), Due::MarkerMissing);
        assert_eq!(due(&cut(Some("ready")), false, &failed), Due::No);
    }
}
