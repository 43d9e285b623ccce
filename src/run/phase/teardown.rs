//! After the phases: drain (late console output and a report in progress), teardown (vmcores,
//! QEMU, disk images), symbolization, and the facts the report is made of.

use crate::console::{ConsoleEvent, SETTLED};
use crate::report::{KernelInfo, ModuleInfo};
use crate::run::assemble::{Facts, NodeFacts};
use crate::run::event::{Event, NodeEvent};
use crate::run::guests::NoGuests;
use crate::run::infra::Stop;
use crate::run::phase::power_cut::CHECK_STEM;
use crate::run::prepare::Prepared;
use crate::run::progress::{Phase, Progress};
use crate::run::state::RunState;
use crate::run::verdict::Observed;
use crate::run::watch::{Waiting, REPORT_GRACE};
use crate::run::workload;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// After a run that did not end on a crash, console output this late still counts (a crash
/// printed as the workload ended), unless every node's console has shown the line repro wrote
/// to its `/dev/kmsg` after the workload ([`RunState::mark_consoles`]) before then.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);
/// How long the line written to `/dev/kmsg` may take to be written.
const MARK_TIMEOUT: Duration = Duration::from_secs(5);

impl RunState {
    /// Lets late console output in and waits (at most [`REPORT_GRACE`]) for a crash report in
    /// progress and for the consoles of QEMUs that exited. True if the user interrupted it.
    pub async fn drain(&mut self, stopped: Option<&Stop>) -> bool {
        let settle = match stopped {
            Some(Stop::Interrupted) => return false,
            Some(Stop::Crash) => Duration::ZERO,
            _ => SETTLE,
        };
        let mut unmarked = if settle.is_zero() {
            Vec::new()
        } else {
            self.mark_consoles()
        };
        let marked = !unmarked.is_empty();
        let quiet_from = Instant::now() + settle;
        let waiting = Waiting::new(Phase::Detection, "the console to settle", REPORT_GRACE);
        loop {
            let now = Instant::now();
            let observer = &self.watch.observer;
            let busy = observer.in_report() || !observer.consoles_closed();
            let settled = (marked && unmarked.is_empty()) || now >= quiet_from;
            if (settled && !busy) || now >= waiting.deadline {
                return false;
            }
            let mut step = waiting.clone();
            if !busy {
                // Wake at the end of the settle time, unless something comes first.
                step.deadline = quiet_from;
            }
            match self.watch.next(&step).await {
                Err(Stop::Interrupted) => return true,
                Ok(Event::Node(i, NodeEvent::Console(ConsoleEvent::Settled { token }))) if token == self.token => {
                    unmarked.retain(|&n| n != i);
                }
                _ => {}
            }
        }
    }

    /// Writes a line with the run's token to `/dev/kmsg` on every node that answers, each on a
    /// thread of its own; gives those nodes. Once a node's console shows the line, the kernel
    /// has printed everything it logged before it: the run need not wait out [`SETTLE`]. A
    /// node whose line never comes (its guest went away) is waited for that long, no longer.
    fn mark_consoles(&self) -> Vec<usize> {
        let line = format!("<0>{SETTLED}{}", self.token);
        (0..self.scenario.nodes.len())
            .filter(|&i| self.links.get(i).is_some_and(Option::is_some))
            .inspect(|&i| {
                let (link, cmd) = (self.link(i), format!("echo '{line}' > /dev/kmsg"));
                std::thread::spawn(move || link.connect(MARK_TIMEOUT).map(|s| s.exec(&cmd, b"")));
            })
            .collect()
    }

    /// Saves vmcores of crashed guests (unless interrupted), stops every QEMU and deletes the
    /// disk and NVDIMM backing files (unless kept).
    pub async fn teardown(&mut self, interrupted: bool) {
        self.halt_all();
        if let Some(d) = self.watch.observer.detection {
            self.timings.detection = Some(d.as_secs_f64());
            self.note(Progress::PhaseDone {
                phase: Phase::Detection,
                elapsed: d,
            });
        }
        let started = Instant::now();
        self.note(Progress::Phase {
            phase: Phase::Teardown,
            detail: String::new(),
        });
        self.qemu_commands = self.guests.command_lines();
        if self.vmcore && !interrupted {
            self.save_vmcores().await;
        }
        self.guests.shutdown().await;
        self.guests = Box::new(NoGuests);
        // With QEMU gone, an iteration that was cut short (a crash, a timeout) keeps its output.
        for stem in [workload::STEM, CHECK_STEM] {
            workload::collect_unfinished(&self.run_dir, stem);
        }
        if !self.keep_disks {
            let removed = remove_disk_images(&self.prepared);
            if removed > 0 {
                self.note(Progress::Note(format!(
                    "removed {removed} disk/NVDIMM backing file(s); `--keep-disks` keeps them"
                )));
            }
        }
        self.timings.teardown = Some(started.elapsed().as_secs_f64());
    }

    /// Saves the vmcores of the crashed guests, once (`--gdb` saves them before its session).
    pub async fn save_vmcores(&mut self) {
        if std::mem::replace(&mut self.dumped, true) {
            return;
        }
        let mut crashed = self.watch.observer.crash_nodes.clone();
        crashed.sort_unstable();
        crashed.dedup();
        for i in crashed {
            self.note(Progress::Note(format!("{}: saving vmcore", self.name(i))));
            let started = Instant::now();
            match self.guests.dump(i, self.node_dir(i)).await {
                Ok(path) => {
                    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                    self.note(Progress::Note(format!(
                        "{}: saved {} ({} MiB in {:.1}s)",
                        self.name(i),
                        path.display(),
                        size >> 20,
                        started.elapsed().as_secs_f64()
                    )));
                    self.vmcores.push(path.display().to_string());
                }
                Err(why) => self.note(Progress::Note(format!("vmcore of `{}`: {why}", self.name(i)))),
            }
        }
    }

    /// Symbolizes the crashes with the kernel's vmlinux and the modules' `.ko` files (when every
    /// node runs the same kernel), so inlined functions count for the expectation and the
    /// report has file:line.
    pub async fn symbolize(&mut self) {
        let kernels: Vec<&crate::kernel::Artifacts> = self.prepared.iter().flatten().map(|p| &p.kernel).collect();
        let Some(kernel) = kernels.first().filter(|k| kernels.iter().all(|o| o.id == k.id)) else {
            return;
        };
        let vmlinux = kernel.vmlinux.clone().filter(|v| v.is_file());
        let kos: Vec<(String, PathBuf)> = self
            .prepared
            .iter()
            .flatten()
            .next()
            .map(|p| p.modules.iter().map(|m| (m.name.clone(), m.ko.clone())).collect())
            .unwrap_or_default();
        let observer = &mut self.watch.observer;
        if (vmlinux.is_none() && kos.is_empty()) || (observer.crashes.is_empty() && observer.ignored.is_empty()) {
            return;
        }
        let (mut crashes, mut ignored) = (
            std::mem::take(&mut observer.crashes),
            std::mem::take(&mut observer.ignored),
        );
        let symbolized = tokio::task::spawn_blocking(move || {
            match crate::symbolize::Symbolizer::new(vmlinux.as_deref(), &kos) {
                Ok(sym) => crashes.iter_mut().chain(ignored.iter_mut()).for_each(|c| {
                    sym.report(c);
                }),
                Err(e) => tracing::warn!("symbolization: {}", crate::errors::chain(&e)),
            }
            (crashes, ignored)
        })
        .await;
        if let Ok((crashes, ignored)) = symbolized {
            observer.crashes = crashes;
            observer.ignored = ignored;
        }
    }

    /// What the report is made of, once the run is over.
    pub fn facts(&self, stopped: Option<Stop>) -> Facts<'_> {
        let (infra, interrupted) = match stopped {
            Some(Stop::Infra(e)) => (Some(Arc::new(e)), false),
            Some(Stop::Interrupted) => (None, true),
            Some(Stop::Crash) | None => (None, false),
        };
        let observer = &self.watch.observer;
        let nodes = (0..self.scenario.nodes.len())
            .map(|i| {
                let prepared = self.prepared[i].as_ref();
                NodeFacts {
                    kernel: prepared.map(kernel_info),
                    accel: prepared.map(|p| p.accel.accel),
                    accel_reason: prepared.map(|p| p.accel.reason.clone()),
                    qemu_command: self.qemu_commands.get(i).cloned().flatten(),
                    link: self.links.get(i).and_then(|l| l.as_ref()).map(|l| l.kind()),
                }
            })
            .collect();
        Facts {
            scenario: &self.scenario,
            nodes,
            observed: Observed {
                crashes: observer.crashes.clone(),
                suspect: observer.suspect.clone(),
                workload: self.workload.clone(),
                infra,
                interrupted,
                guest_panicked: observer.guest_panicked,
                marker_line: self.marker_line.lock().map(|m| m.clone()).unwrap_or(None),
                power_cut: self.power_cut.clone(),
            },
            ignored: observer.ignored.clone(),
            timings: self.timings.clone(),
            completed: self.completed,
            run_dir: self.run_dir.display().to_string(),
            started_at: self.started_at,
            vmcores: self.vmcores.clone(),
            debugger: self.debugger.clone(),
            evidence_lost: self.watch.write_errors(),
        }
    }
}

fn kernel_info(prepared: &Prepared) -> KernelInfo {
    KernelInfo {
        name: prepared.kernel.name.clone(),
        release: prepared.kernel.release.clone(),
        origin: prepared.kernel.origin.clone(),
        vmlinux: prepared.kernel.vmlinux.clone(),
        gdb_scripts: prepared.kernel.gdb_scripts.clone(),
        modules: prepared
            .modules
            .iter()
            .map(|m| ModuleInfo {
                name: m.name.clone(),
                ko: m.ko.clone(),
                origin: m.origin.clone(),
            })
            .collect(),
    }
}

/// Deletes the backing files `prepare_node` made for the scenario's disks (the ones with a
/// serial) and NVDIMMs; returns how many were removed.
fn remove_disk_images(prepared: &[Option<Prepared>]) -> usize {
    prepared
        .iter()
        .flatten()
        .flat_map(|p| {
            let disks = p.config.disks.iter().filter(|d| d.serial.is_some()).map(|d| &d.path);
            disks.chain(p.config.pmem.iter().map(|m| &m.path))
        })
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count()
}
