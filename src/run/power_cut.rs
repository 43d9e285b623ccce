//! `[power_cut]`: reset the workload's node through QMP (the power fails: no sync, no unmount),
//! wait for it to boot again on the same root, disks and pmem, mount its storage again without
//! mkfs, and run the scenario's check, all while the console detector keeps watching.

use super::verdict::WorkloadOutcome;
use super::{setup, workload, NodeEvent, Observer, Phase, Progress};
use crate::console::ConsoleEvent;
use crate::scenario::{PowerCut, Scenario};
use crate::vm::{qmp, Instance};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long QEMU has to report the reset it was asked for.
const RESET_TIMEOUT: Duration = Duration::from_secs(10);

/// The log of the storage step that runs again after the power cut.
pub const SETUP_LOG: &str = "setup-after-power-cut.log";
/// The workload's stdout as it streamed, up to the power cut at its marker.
pub const STREAMED: &str = "workload-until-power-cut.stdout";
/// The check's output: `check.stdout` and `check.stderr`.
pub const CHECK_STEM: &str = "check";

pub struct Context<'a> {
    pub scenario: &'a Scenario,
    pub cut: &'a PowerCut,
    pub instance: &'a Instance,
    pub key: &'a Path,
    pub run_dir: &'a Path,
    pub progress: &'a mpsc::UnboundedSender<Progress>,
    /// Sees the check's stdout, like the workload's (for the data marker).
    pub on_stdout: Option<workload::OutputHook>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// The check's outcome, when it ran.
    pub check: Option<WorkloadOutcome>,
    /// An infrastructure failure: the reset, the boot, SSH or the storage step.
    pub infra: Option<String>,
    pub interrupted: bool,
    pub to_ssh: Option<f64>,
    pub check_secs: Option<f64>,
}

/// What the blocking half reports back.
pub(super) enum Done {
    Ssh(f64),
    Finished(Result<(WorkloadOutcome, f64), String>),
}

pub(super) async fn run(
    c: Context<'_>,
    obs: &mut Observer,
    events: &mut mpsc::UnboundedReceiver<(usize, NodeEvent)>,
    cancel: &mut watch::Receiver<bool>,
) -> Outcome {
    let s = c.scenario;
    let node = c.cut.check.node;
    let name = &s.nodes[node].name;
    let mut out = Outcome::default();
    let _ = c.progress.send(Progress::Phase {
        phase: Phase::PowerCut,
        detail: format!("QMP system_reset of `{name}`, then a boot on the same storage"),
    });
    let t0 = Instant::now();
    if let Err(e) = c.instance.qmp.power_cut().await {
        out.infra = Some(format!("cutting the power of `{name}`: {}", crate::error_chain(&e)));
        return out;
    }
    // Until the guest runs again, a reset must not end QEMU (SeaBIOS resets the machine once
    // more on a warm start); once SSH is back, a guest that reboots on its own must end it.
    let reset_by = t0 + RESET_TIMEOUT;
    let mut reset = false;
    while !reset {
        tokio::select! {
            Some((i, ev)) = events.recv() => {
                obs.on(s, i, &ev, c.progress);
                match ev {
                    NodeEvent::Qmp(qmp::Event::Reset) if i == node => reset = true,
                    NodeEvent::Exited(st) if i == node => {
                        out.infra = Some(format!("QEMU for `{name}` exited at the power cut ({})", st.map_or("?".into(), |s| s.to_string())));
                        return out;
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(reset_by) => {
                out.infra = Some(format!("QEMU reported no RESET within {}s of system_reset", RESET_TIMEOUT.as_secs()));
                return out;
            }
        }
    }
    // The blocking half: SSH, the storage again, then the check.
    let stop = Arc::new(AtomicBool::new(false));
    let listening = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    {
        let port = c.instance.config.ssh_port;
        let key = c.key.to_path_buf();
        let dir: PathBuf = c.run_dir.to_path_buf();
        let (stop, listening) = (stop.clone(), listening.clone());
        let steps = setup::after_power_cut(s, node);
        let name = name.clone();
        let check = c.cut.check.clone();
        let hook = c.on_stdout.clone();
        let ssh_by = std::time::Instant::now() + s.boot_timeout;
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            let session = match workload::wait_ssh(port, &key, ssh_by, &stop, &listening) {
                Ok(session) => session,
                Err(e) => {
                    let why = format!("SSH did not come back after the power cut: {}", crate::error_chain(&*e));
                    let _ = done_tx.send(Done::Finished(Err(why)));
                    return;
                }
            };
            let _ = done_tx.send(Done::Ssh(t.elapsed().as_secs_f64()));
            let t = std::time::Instant::now();
            // The steps run on the session that proved SSH is back: no second handshake with a
            // guest that has just booted.
            let storage = std::fs::File::create(dir.join(SETUP_LOG))
                .map_err(|e| format!("{SETUP_LOG}: {e}"))
                .and_then(|mut log| {
                    steps
                        .iter()
                        .enumerate()
                        .try_for_each(|(n, st)| super::run_step(&session, n, st, &name, &mut log))
                });
            if let Err(e) = storage {
                let _ = done_tx.send(Done::Finished(Err(format!("after the power cut: {e}"))));
                return;
            }
            let mut job = workload::Job::new(port, key, check, dir, stop, Some(session));
            job.on_stdout = hook;
            job.stem = CHECK_STEM;
            let outcome = job.run();
            let _ = done_tx.send(Done::Finished(Ok((outcome, t.elapsed().as_secs_f64()))));
        });
    }
    let deadline = Instant::now() + s.boot_timeout + super::SETUP_TIMEOUT + c.cut.check.timeout;
    let t_boot = Instant::now();
    loop {
        if obs.done {
            // The crash is the story; the check is moot.
            out.check = Some(WorkloadOutcome::Interrupted);
            break;
        }
        tokio::select! {
            Some((i, ev)) = events.recv() => {
                obs.on(s, i, &ev, c.progress);
                match ev {
                    NodeEvent::Console(ConsoleEvent::SshdListening) if i == node => listening.store(true, Ordering::SeqCst),
                    NodeEvent::Exited(st) if i == node => {
                        out.infra = Some(format!("QEMU for `{name}` exited after the power cut ({})", st.map_or("?".into(), |s| s.to_string())));
                        break;
                    }
                    _ => {}
                }
            }
            Some(d) = done_rx.recv() => match d {
                Done::Ssh(secs) => {
                    out.to_ssh = Some(secs);
                    if let Err(e) = c.instance.qmp.reboot_action(false).await {
                        out.infra = Some(format!("restoring the reboot action after the power cut: {}", crate::error_chain(&e)));
                        break;
                    }
                    let _ = c.progress.send(Progress::PhaseDone { phase: Phase::PowerCut, elapsed: t_boot.elapsed() });
                    let _ = c.progress.send(Progress::Phase {
                        phase: Phase::Check,
                        detail: format!("storage mounted again, then the check on `{name}`"),
                    });
                }
                Done::Finished(Ok((outcome, secs))) => {
                    out.check = Some(outcome);
                    out.check_secs = Some(secs);
                    let _ = c.progress.send(Progress::PhaseDone { phase: Phase::Check, elapsed: Duration::from_secs_f64(secs) });
                    break;
                }
                Done::Finished(Err(why)) => {
                    out.infra = Some(why);
                    break;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                out.infra = Some(format!(
                    "the node did not boot, mount its storage and finish the check within {}s of the power cut",
                    (deadline - t_boot).as_secs()
                ));
                break;
            }
            _ = cancel.changed() => {
                out.interrupted = true;
                break;
            }
        }
    }
    // A report still being printed after the check is waited for by the caller.
    stop.store(true, Ordering::SeqCst);
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Workload;

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
