//! `repro run`: prepare each node's kernel and image, boot the guests, run the workload over
//! SSH while the console detector watches, and decide a verdict.

mod power_cut;
mod prepare;
pub mod setup;
pub mod verdict;
mod workload;

pub use prepare::{node_kernel, prepare_node, Prepared, Roots};

use crate::console::ConsoleEvent;
use crate::report::{KernelInfo, NodeInfo, RunReport, Timings, WorkloadInfo};
use crate::scenario::Scenario;
use crate::vm::{qmp, Instance};
use repro_oops::Report;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use verdict::{Observed, WorkloadOutcome};

/// The phases a run goes through, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Image,
    Boot,
    Setup,
    Workload,
    Detection,
    Teardown,
    PowerCut,
    Check,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Image => "image",
            Phase::Boot => "boot",
            Phase::Setup => "setup",
            Phase::Workload => "workload",
            Phase::Detection => "detection",
            Phase::Teardown => "teardown",
            Phase::PowerCut => "power-cut",
            Phase::Check => "check",
        }
    }
}

/// Progress, consumed by the CLI (the only place that prints).
#[derive(Debug, Clone)]
pub enum Progress {
    Phase {
        phase: Phase,
        detail: String,
    },
    PhaseDone {
        phase: Phase,
        elapsed: Duration,
    },
    Note(String),
    /// A transient status line for the current phase (e.g. what `make` is compiling).
    Detail(String),
}

pub struct Options {
    pub scenario: Scenario,
    pub roots: Roots,
    pub run_dir: PathBuf,
    pub progress: mpsc::UnboundedSender<Progress>,
    /// Becomes true when the user interrupts.
    pub cancel: watch::Receiver<bool>,
    /// On a crash, save each crashed guest's memory as `vmcore` (kdump-compressed) in its
    /// node directory before tearing down.
    pub vmcore: bool,
    /// Keep the scenario's disk and NVDIMM backing files (`disk-*.img`, `pmem-*.img`) after the
    /// run; by default they are deleted at teardown (a filled 1 GiB NVDIMM is 1 GiB on disk).
    pub keep_disks: bool,
}

/// Files in the run directory.
pub const REPORT_JSON: &str = "report.json";

enum NodeEvent {
    Console(ConsoleEvent),
    Qmp(qmp::Event),
    Exited(Option<std::process::ExitStatus>),
    SshReady(Result<crate::guest::Session, String>),
    SetupDone(Result<(), String>),
}

struct Observer {
    crashes: Vec<Report>,
    /// The node of each crash in `crashes`.
    crash_nodes: Vec<usize>,
    /// Reports matching the scenario's `expect.ignore`.
    ignored: Vec<Report>,
    guest_panicked: bool,
    crash_started: Option<Instant>,
    detection: Option<Duration>,
    /// Set when a report that ends the run has completed.
    done: bool,
    exited: Option<(usize, String)>,
}

impl Observer {
    fn new() -> Self {
        Observer {
            crashes: Vec::new(),
            crash_nodes: Vec::new(),
            ignored: Vec::new(),
            guest_panicked: false,
            crash_started: None,
            detection: None,
            done: false,
            exited: None,
        }
    }

    fn on(&mut self, s: &Scenario, node: usize, ev: &NodeEvent, progress: &mpsc::UnboundedSender<Progress>) {
        match ev {
            NodeEvent::Console(ConsoleEvent::CrashStarted { at }) if self.crash_started.is_none() => {
                self.crash_started = Some(*at);
                let _ = progress.send(Progress::Phase {
                    phase: Phase::Detection,
                    detail: "crash report on the console".into(),
                });
            }
            NodeEvent::Console(ConsoleEvent::Crash { report, .. })
                if verdict::ignored(&s.expect, report, s.nodes[node].arch) =>
            {
                let _ = progress.send(Progress::Note(format!(
                    "{}: {} (a known splat this scenario ignores)",
                    s.nodes[node].name, report.title
                )));
                self.ignored.push((**report).clone());
                self.crash_started = None;
            }
            NodeEvent::Console(ConsoleEvent::Crash { report, at }) => {
                let ends = verdict::ends_run(&s.expect, report);
                let _ = progress.send(Progress::Note(format!("{}: {}", s.nodes[node].name, report.title)));
                if ends && !self.done {
                    self.done = true;
                    self.detection = self.crash_started.map(|t| at.saturating_duration_since(t));
                }
                self.crashes.push((**report).clone());
                self.crash_nodes.push(node);
                self.crash_started = None;
            }
            NodeEvent::Qmp(qmp::Event::GuestPanicked { .. }) => self.guest_panicked = true,
            NodeEvent::Exited(status) if self.exited.is_none() => {
                self.exited = Some((node, status.map_or("unknown status".into(), |s| s.to_string())));
            }
            _ => {}
        }
    }

    fn in_report(&self) -> bool {
        self.crash_started.is_some()
    }
}

/// [`run`] with its progress discarded (for callers that print their own lines per run).
pub async fn run_quiet(
    scenario: Scenario,
    roots: Roots,
    run_dir: PathBuf,
    cancel: watch::Receiver<bool>,
    vmcore: bool,
) -> RunReport {
    let (progress, mut rx) = mpsc::unbounded_channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let r = run(Options {
        scenario,
        roots,
        run_dir,
        progress,
        cancel,
        vmcore,
        keep_disks: false,
    })
    .await;
    let _ = drain.await;
    r
}

/// Runs the scenario and writes `report.json`. Never fails: every failure is a verdict.
pub async fn run(mut o: Options) -> RunReport {
    let t0 = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let s = o.scenario.clone().with_vars_exported();
    let mut timings = Timings::default();
    let mut obs = Observer::new();
    let mut workload_outcome = WorkloadOutcome::NotRun;
    let mut completed = 0u32;
    let mut infra: Option<String> = None;
    let mut prepared: Vec<Option<Prepared>> = s.nodes.iter().map(|_| None).collect();
    let mut instances: Vec<Instance> = Vec::new();
    let progress = o.progress.clone();
    let note = |p: Progress| {
        let _ = progress.send(p);
    };

    // Phase 1: kernels, images and the per-run layers.
    note(Progress::Phase {
        phase: Phase::Image,
        detail: "kernel and image".into(),
    });
    let key_path = o.run_dir.join("id_ed25519");
    let pubkey = match crate::guest::keygen(&key_path) {
        Ok(k) => Some(k),
        Err(e) => {
            infra = Some(format!("generating the run's SSH key: {}", crate::error_chain(&e)));
            None
        }
    };
    if let Some(pubkey) = &pubkey {
        for (i, node) in s.nodes.iter().enumerate() {
            let dir = node_dir(&o.run_dir, &s, i);
            let (roots, node_c, scenario, pk) = (o.roots.clone(), node.clone(), s.clone(), pubkey.clone());
            let p2 = progress.clone();
            let r = tokio::task::spawn_blocking(move || {
                prepare_node(&roots, &scenario, &node_c, &dir, &pk, &|p| {
                    let _ = p2.send(p);
                })
            })
            .await;
            match r {
                Ok(Ok(p)) => prepared[i] = Some(p),
                Ok(Err(e)) => {
                    infra = Some(format!("preparing node `{}`: {}", node.name, crate::error_chain(&*e)));
                    break;
                }
                Err(e) => {
                    infra = Some(format!("preparing node `{}`: {e}", node.name));
                    break;
                }
            }
        }
    }
    if o.vmcore {
        // Keep a panicked guest alive for the dump: without a pvpanic driver (Debian's arm64
        // kernels have none) `panic=-1` would reset it, and -no-reboot would end QEMU.
        for p in prepared.iter_mut().flatten() {
            p.config.cmdline.push_str(" panic=0");
        }
    }
    let image_elapsed = t0.elapsed();
    timings.image = Some(image_elapsed.as_secs_f64());
    note(Progress::PhaseDone {
        phase: Phase::Image,
        elapsed: image_elapsed,
    });

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(usize, NodeEvent)>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut interrupted = *o.cancel.borrow();
    let mut sessions: Vec<Option<crate::guest::Session>> = s.nodes.iter().map(|_| None).collect();

    // Phase 2: boot every node in parallel and wait for SSH on each.
    if infra.is_none() && !interrupted {
        let t_boot = Instant::now();
        note(Progress::Phase {
            phase: Phase::Boot,
            detail: format!("{} node(s), {}", s.nodes.len(), accel_summary(&prepared)),
        });
        let launches = prepared.iter().enumerate().map(|(i, p)| {
            let p = p.as_ref().expect("prepared");
            let dir = node_dir(&o.run_dir, &s, i);
            let name = s.nodes[i].name.clone();
            let cfg = p.config.clone();
            async move { Instance::launch(&name, cfg, &dir).await }
        });
        // A node that listens on a private link starts first, so the others can connect.
        let mut launches: Vec<_> = launches.map(Some).collect();
        let mut results = Vec::new();
        if s.nodes.len() > 1 {
            if let Some(first) = launches[0].take() {
                results.push(first.await);
            }
        }
        results.extend(futures::future::join_all(launches.into_iter().flatten()).await);
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(mut inst) => {
                    forward(i, &mut inst, ev_tx.clone());
                    instances.push(inst);
                }
                Err(e) => {
                    infra.get_or_insert(format!(
                        "starting QEMU for node `{}`: {}",
                        s.nodes[i].name,
                        crate::error_chain(&e)
                    ));
                }
            }
        }
        if infra.is_none() {
            let listening: Vec<Arc<AtomicBool>> = instances.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
            for (i, inst) in instances.iter().enumerate() {
                let port = inst.config.ssh_port;
                let (key, stop, tx, up) = (key_path.clone(), stop.clone(), ev_tx.clone(), listening[i].clone());
                let deadline = std::time::Instant::now() + s.boot_timeout;
                std::thread::spawn(move || {
                    let r = workload::wait_ssh(port, &key, deadline, &stop, &up).map_err(|e| crate::error_chain(&*e));
                    let _ = tx.send((i, NodeEvent::SshReady(r)));
                });
            }
            let deadline = t_boot + s.boot_timeout;
            let mut ready = 0;
            while ready < instances.len() && infra.is_none() && !obs.done {
                tokio::select! {
                    Some((i, ev)) = ev_rx.recv() => {
                        obs.on(&s, i, &ev, &progress);
                        match ev {
                            NodeEvent::Console(ConsoleEvent::SshdListening) => listening[i].store(true, Ordering::SeqCst),
                            NodeEvent::SshReady(Ok(session)) => {
                                ready += 1;
                                sessions[i] = Some(session);
                            }
                            NodeEvent::SshReady(Err(e)) => infra = Some(format!("SSH to node `{}` never came up: {e}\nconsole tail:\n{}", s.nodes[i].name, instances[i].console_tail(15))),
                            NodeEvent::Exited(st) => infra = Some(format!("QEMU for node `{}` exited during boot ({})\nstderr:\n{}\nconsole tail:\n{}", s.nodes[i].name, st.map_or("?".into(), |s| s.to_string()), instances[i].stderr_tail(), instances[i].console_tail(15))),
                            _ => {}
                        }
                    }
                    _ = tokio::time::sleep_until(deadline + Duration::from_secs(5)) => {
                        infra = Some(format!("SSH did not come up within {}s", s.boot_timeout.as_secs()));
                    }
                    _ = o.cancel.changed() => { interrupted = true; break; }
                }
            }
            if obs.done || obs.in_report() {
                infra = None; // a crash during boot is the story, not the missing SSH
            }
        }
        let boot = t_boot.elapsed();
        timings.boot_to_ssh = Some(boot.as_secs_f64());
        note(Progress::PhaseDone {
            phase: Phase::Boot,
            elapsed: boot,
        });
    }

    // The first workload line with the scenario's data marker, if any.
    let marker_line: Arc<std::sync::Mutex<Option<String>>> = Arc::new(std::sync::Mutex::new(None));
    let mut power_cut_seen: Option<verdict::PowerCutObserved> = None;

    // Phase 3: setup (links, NFS, the scenario's own steps), in order, over SSH.
    let mut setup_done = false;
    if infra.is_none() && !interrupted && !obs.done && !obs.in_report() {
        match setup::steps(&s) {
            Err(e) => infra = Some(format!("setup: {e}")),
            Ok(steps) if steps.is_empty() => setup_done = true,
            Ok(steps) => {
                let t_setup = Instant::now();
                note(Progress::Phase {
                    phase: Phase::Setup,
                    detail: format!("{} step(s)", steps.len()),
                });
                let ports: Vec<u16> = instances.iter().map(|i| i.config.ssh_port).collect();
                let names: Vec<String> = s.nodes.iter().map(|n| n.name.clone()).collect();
                let (key, dir, tx) = (key_path.clone(), o.run_dir.clone(), ev_tx.clone());
                std::thread::spawn(move || {
                    let r = run_setup(&steps, &ports, &names, &key, &dir, "setup.log");
                    let _ = tx.send((0, NodeEvent::SetupDone(r)));
                });
                let deadline = t_setup + SETUP_TIMEOUT;
                while !obs.done && infra.is_none() {
                    tokio::select! {
                        Some((i, ev)) = ev_rx.recv() => {
                            obs.on(&s, i, &ev, &progress);
                            match ev {
                                NodeEvent::SetupDone(Ok(())) => { setup_done = true; break; }
                                NodeEvent::SetupDone(Err(e)) => infra = Some(e),
                                _ => {}
                            }
                            if let Some((i, st)) = &obs.exited {
                                infra = Some(format!("QEMU for node `{}` exited during setup ({st})", s.nodes[*i].name));
                            }
                        }
                        _ = tokio::time::sleep_until(deadline) => {
                            infra = Some(format!("setup did not finish within {}s", SETUP_TIMEOUT.as_secs()));
                        }
                        _ = o.cancel.changed() => { interrupted = true; break; }
                    }
                }
                if obs.done || obs.in_report() {
                    infra = None; // a crash during setup is the story
                }
                note(Progress::PhaseDone {
                    phase: Phase::Setup,
                    elapsed: t_setup.elapsed(),
                });
            }
        }
    }

    // Phase 4: the workload, watched by the console detector, with background steps and faults.
    if setup_done && infra.is_none() && !interrupted && !obs.done && !obs.in_report() {
        for (bi, b) in s.background.iter().enumerate() {
            let (port, key, stop, dir) = (
                instances[b.node].config.ssh_port,
                key_path.clone(),
                stop.clone(),
                o.run_dir.clone(),
            );
            let script = b.script.clone();
            std::thread::spawn(move || run_background(bi, port, &key, &script, &dir, &stop));
        }
        let (marker_tx, mut marker_rx) = mpsc::unbounded_channel::<String>();
        let data_marker = s.expect.marker.clone();
        // Lines the run loop acts on: fault markers and the power-cut marker.
        let cut_marker = s.power_cut.as_ref().and_then(|pc| pc.marker.clone());
        let markers: Vec<String> = s
            .faults
            .iter()
            .filter_map(|f| match &f.when {
                crate::scenario::FaultWhen::Marker(m) => Some(m.clone()),
                _ => None,
            })
            .chain(cut_marker.iter().cloned())
            .collect();
        let mut fault_pending: Vec<bool> = s.faults.iter().map(|_| true).collect();
        let t_work = Instant::now();
        let w = s.workload.clone();
        note(Progress::Phase {
            phase: Phase::Workload,
            detail: format!(
                "{} iteration(s), {} in parallel, on {}",
                w.iterations, w.parallel, s.nodes[w.node].name
            ),
        });
        let port = instances[w.node].config.ssh_port;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let job = workload::Job::new(
            port,
            key_path.clone(),
            w.clone(),
            o.run_dir.clone(),
            stop.clone(),
            sessions[w.node].take(),
        );
        let mut job = job;
        let (restore_tx, mut restore_rx) = mpsc::unbounded_channel();
        if w.restore_snapshot {
            job.restore = Some(restore_tx);
        } else {
            drop(restore_tx);
        }
        // A workload cut by the power never finishes its iteration, so the output it streamed
        // until then is kept as it arrives.
        let streamed = cut_marker.as_ref().and_then(|_| {
            std::fs::File::create(o.run_dir.join(power_cut::STREAMED))
                .ok()
                .map(std::sync::Mutex::new)
        });
        if !markers.is_empty() || data_marker.is_some() {
            let record = note_marker(marker_line.clone(), data_marker);
            job.on_stdout = Some(workload::line_hook(move |line: &str| {
                if let Some(Ok(mut f)) = streamed.as_ref().map(|f| f.lock()) {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                for m in &markers {
                    if line.contains(m.as_str()) {
                        let _ = marker_tx.send(m.clone());
                    }
                }
                record(line);
            }));
        }
        let counter = job.counter();
        std::thread::spawn(move || {
            let _ = tx.send(job.run());
        });
        let deadline = t_work + w.timeout;
        let mut settle: Option<Instant> = None;
        let mut cut_seen = false;
        loop {
            if obs.done {
                workload_outcome = WorkloadOutcome::Interrupted;
                break;
            }
            if let Some((i, st)) = &obs.exited {
                // The console's last words are flushed before Eof; give them a moment.
                if settle.is_none() {
                    settle = Some(Instant::now() + Duration::from_millis(500));
                    infra = Some(format!(
                        "QEMU for node `{}` exited during the workload ({st})",
                        s.nodes[*i].name
                    ));
                }
            }
            let settle_at = settle.map(|t| if obs.in_report() { t + Duration::from_secs(5) } else { t });
            let next_timed = s
                .faults
                .iter()
                .enumerate()
                .filter(|(i, _)| fault_pending[*i])
                .filter_map(|(i, f)| match f.when {
                    crate::scenario::FaultWhen::At(d) => Some((i, t_work + d)),
                    _ => None,
                })
                .min_by_key(|(_, t)| *t);
            tokio::select! {
                _ = sleep_until_opt(next_timed.map(|(_, t)| t)), if settle.is_none() => {
                    if let Some((fi, _)) = next_timed {
                        fault_pending[fi] = false;
                        fire_fault(&s, fi, &instances, &o.run_dir, t_work, &progress).await;
                    }
                }
                Some(m) = marker_rx.recv() => {
                    if cut_marker.as_ref() == Some(&m) && !cut_seen {
                        // The power fails here: the workload is abandoned mid-flight.
                        cut_seen = true;
                        workload_outcome = WorkloadOutcome::Interrupted;
                        break;
                    }
                    let hit: Vec<usize> = s.faults.iter().enumerate()
                        .filter(|(i, f)| fault_pending[*i] && matches!(&f.when, crate::scenario::FaultWhen::Marker(x) if *x == m))
                        .map(|(i, _)| i)
                        .collect();
                    for fi in hit {
                        fault_pending[fi] = false;
                        fire_fault(&s, fi, &instances, &o.run_dir, t_work, &progress).await;
                    }
                }
                Some((i, ev)) = ev_rx.recv() => obs.on(&s, i, &ev, &progress),
                Some((op, reply)) = restore_rx.recv() => {
                    let t = std::time::Instant::now();
                    let qmp = &instances[w.node].qmp;
                    let r = match op {
                        workload::Snapshot::Save => qmp.savevm(SNAPSHOT_TAG).await,
                        workload::Snapshot::Load => qmp.loadvm(SNAPSHOT_TAG).await,
                    };
                    let secs = t.elapsed().as_secs_f64();
                    match (op, &r) {
                        (workload::Snapshot::Save, Ok(())) => timings.snapshot_save = Some(secs),
                        (workload::Snapshot::Load, Ok(())) => timings.restores.push(secs),
                        _ => {}
                    }
                    let _ = reply.send(r.map(|()| secs).map_err(|e| crate::error_chain(&e)));
                }
                r = &mut rx, if settle.is_none() => {
                    workload_outcome = r.unwrap_or(WorkloadOutcome::Lost { why: "the workload thread died".into() });
                    // Late console output from the last iteration: a short settle, longer if a
                    // report is being printed.
                    settle = Some(Instant::now() + Duration::from_millis(200));
                }
                _ = sleep_until_opt(settle_at) => break,
                _ = tokio::time::sleep_until(deadline), if settle.is_none() => {
                    workload_outcome = WorkloadOutcome::TimedOut { after_secs: w.timeout.as_secs() };
                    settle = Some(Instant::now() + Duration::from_millis(200));
                }
                _ = o.cancel.changed() => { interrupted = true; break; }
            }
        }
        stop.store(true, Ordering::SeqCst);
        completed = counter.load(Ordering::SeqCst);
        let e = t_work.elapsed();
        timings.workload = Some(e.as_secs_f64());
        note(Progress::PhaseDone {
            phase: Phase::Workload,
            elapsed: e,
        });

        // Phase 4b: the power cut, the boot on the same storage, and the check.
        if let Some(pc) = &s.power_cut {
            let quiet = infra.is_none() && !interrupted && !obs.done && !obs.in_report();
            match power_cut::due(pc, cut_seen, &workload_outcome) {
                _ if !quiet => {}
                power_cut::Due::No => {}
                power_cut::Due::MarkerMissing => {
                    infra = Some(format!(
                        "the workload finished without printing the power-cut marker `{}`",
                        pc.marker.as_deref().unwrap_or_default()
                    ))
                }
                power_cut::Due::Now => {
                    // The check's output is searched for the data marker too.
                    let check_marker_line = Arc::new(std::sync::Mutex::new(None));
                    let hook =
                        s.expect.marker.as_ref().map(|_| {
                            workload::line_hook(note_marker(check_marker_line.clone(), s.expect.marker.clone()))
                        });
                    let c = power_cut::Context {
                        scenario: &s,
                        cut: pc,
                        instance: &instances[w.node],
                        key: &key_path,
                        run_dir: &o.run_dir,
                        progress: &progress,
                        on_stdout: hook,
                    };
                    let r = power_cut::run(c, &mut obs, &mut ev_rx, &mut o.cancel).await;
                    timings.power_cut_to_ssh = r.to_ssh;
                    timings.check = r.check_secs;
                    interrupted |= r.interrupted;
                    if let Some(why) = r.infra {
                        infra.get_or_insert(why);
                    }
                    power_cut_seen = Some(verdict::PowerCutObserved {
                        at_marker: cut_seen.then(|| pc.marker.clone()).flatten(),
                        check: r.check.unwrap_or(WorkloadOutcome::NotRun),
                        marker_line: check_marker_line.lock().map(|m| m.clone()).unwrap_or(None),
                    });
                }
            }
        }
    }
    // A report still being printed: wait for it to complete (the detector flushes a stalled one).
    let grace = Instant::now() + Duration::from_secs(6);
    while obs.in_report() && !interrupted && Instant::now() < grace {
        tokio::select! {
            Some((i, ev)) = ev_rx.recv() => obs.on(&s, i, &ev, &progress),
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    if let Some(d) = obs.detection {
        timings.detection = Some(d.as_secs_f64());
        note(Progress::PhaseDone {
            phase: Phase::Detection,
            elapsed: d,
        });
    }
    stop.store(true, Ordering::SeqCst);
    if interrupted {
        infra = Some("interrupted".into());
    }

    // Phase 4: tear down.
    let t_down = Instant::now();
    note(Progress::Phase {
        phase: Phase::Teardown,
        detail: String::new(),
    });
    let qemu_commands: Vec<Option<String>> = (0..s.nodes.len())
        .map(|i| instances.get(i).map(|x| x.command_line()))
        .collect();
    let mut vmcores = Vec::new();
    if o.vmcore && !interrupted {
        let mut crashed = obs.crash_nodes.clone();
        crashed.sort_unstable();
        crashed.dedup();
        for i in crashed {
            let Some(inst) = instances.get(i) else { continue };
            note(Progress::Note(format!("{}: saving vmcore", s.nodes[i].name)));
            match save_vmcore(inst, &node_dir(&o.run_dir, &s, i)).await {
                Ok(path) => vmcores.push(path.display().to_string()),
                Err(why) => note(Progress::Note(format!("vmcore of `{}`: {why}", s.nodes[i].name))),
            }
        }
    }
    for inst in instances.iter_mut() {
        inst.shutdown(Duration::from_secs(2)).await;
    }
    drop(instances);
    if !o.keep_disks {
        let removed = remove_disk_images(&prepared);
        if removed > 0 {
            note(Progress::Note(format!(
                "removed {removed} disk/NVDIMM backing file(s); `--keep-disks` keeps them"
            )));
        }
    }
    timings.teardown = Some(t_down.elapsed().as_secs_f64());

    // Symbolize the crashes with the kernel's vmlinux (when every node runs the same kernel), so
    // that inlined functions count for the expectation and the report has file:line.
    let kernels: Vec<&crate::kernel::Artifacts> = prepared.iter().flatten().map(|p| &p.kernel).collect();
    let same_kernel = kernels.first().filter(|k| kernels.iter().all(|o| o.id == k.id));
    let vmlinux = same_kernel.and_then(|k| k.vmlinux.clone()).filter(|v| v.is_file());
    let kos: Vec<(String, PathBuf)> = match same_kernel {
        Some(_) => prepared
            .iter()
            .flatten()
            .next()
            .map(|p| p.modules.iter().map(|m| (m.name.clone(), m.ko.clone())).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let anything = vmlinux.is_some() || !kos.is_empty();
    if anything && !(obs.crashes.is_empty() && obs.ignored.is_empty()) {
        let (mut crashes, mut ignored) = (std::mem::take(&mut obs.crashes), std::mem::take(&mut obs.ignored));
        let r = tokio::task::spawn_blocking(move || {
            match crate::symbolize::Symbolizer::new(vmlinux.as_deref(), &kos) {
                Ok(sym) => {
                    for c in crashes.iter_mut().chain(ignored.iter_mut()) {
                        sym.report(c);
                    }
                }
                Err(e) => tracing::warn!("symbolization: {}", crate::error_chain(&e)),
            }
            (crashes, ignored)
        })
        .await;
        if let Ok((c, i)) = r {
            obs.crashes = c;
            obs.ignored = i;
        }
    }
    let observed = Observed {
        crashes: obs.crashes.clone(),
        workload: workload_outcome.clone(),
        infra,
        guest_panicked: obs.guest_panicked,
        marker_line: marker_line.lock().map(|m| m.clone()).unwrap_or(None),
        power_cut: power_cut_seen,
    };
    let decision = verdict::decide(&s.expect, &observed);
    timings.total = t0.elapsed().as_secs_f64();
    let kernel_info = |p: &Prepared| KernelInfo {
        name: p.kernel.name.clone(),
        release: p.kernel.release.clone(),
        origin: p.kernel.origin.clone(),
        modules: p.modules.clone(),
    };
    let w = &s.workload;
    let report = RunReport {
        repro_version: env!("CARGO_PKG_VERSION"),
        scenario: s.name.clone(),
        scenario_file: s.path.display().to_string(),
        verdict: decision.verdict,
        reason: decision.reason.clone(),
        exit_code: decision.verdict.exit_code(),
        crash: decision.crash.map(|i| observed.crashes[i].clone()),
        crashes: observed.crashes.clone(),
        ignored_crashes: obs.ignored.clone(),
        kernel: prepared[w.node].as_ref().map(kernel_info),
        arch: s.nodes[w.node].arch,
        accel: prepared[w.node].as_ref().map(|p| p.accel.accel),
        accel_reason: prepared[w.node].as_ref().map(|p| p.accel.reason.clone()),
        nodes: s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeInfo {
                name: n.name.clone(),
                arch: n.arch,
                kernel: prepared[i].as_ref().map(kernel_info),
                accel: prepared[i].as_ref().map(|p| p.accel.accel),
                cpus: n.cpus,
                memory_mib: n.memory_mib,
                qemu_command: qemu_commands[i].clone(),
            })
            .collect(),
        workload: WorkloadInfo {
            node: s.nodes[w.node].name.clone(),
            iterations: w.iterations,
            parallel: w.parallel,
            timeout_s: w.timeout.as_secs(),
            iterations_completed: completed,
            outcome: format!("{workload_outcome:?}"),
        },
        timings,
        run_dir: o.run_dir.display().to_string(),
        started_at,
        vmcores,
    };
    if let Ok(json) = serde_json::to_string_pretty(&report) {
        let _ = std::fs::write(o.run_dir.join(REPORT_JSON), json + "\n");
    }
    report
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

/// Keeps the first line that contains the data marker (if the scenario has one).
fn note_marker(seen: Arc<std::sync::Mutex<Option<String>>>, marker: Option<String>) -> impl Fn(&str) + Send + Sync {
    move |line: &str| {
        if let Some(m) = &marker {
            if line.contains(m.as_str()) {
                if let Ok(mut l) = seen.lock() {
                    l.get_or_insert_with(|| line.to_string());
                }
            }
        }
    }
}

/// Dumps `inst`'s memory into `dir`/vmcore: QEMU's flattened kdump output, reassembled.
async fn save_vmcore(inst: &Instance, dir: &Path) -> Result<PathBuf, String> {
    let (flat, path) = (dir.join("vmcore.flat"), dir.join("vmcore"));
    tokio::time::timeout(Duration::from_secs(300), inst.qmp.dump_kdump(&flat))
        .await
        .map_err(|_| "timed out after 300s".to_string())?
        .map_err(|e| crate::error_chain(&e))?;
    let (f, p) = (flat.clone(), path.clone());
    tokio::task::spawn_blocking(move || {
        let r = crate::vm::dump::reassemble(&f, &p);
        let _ = std::fs::remove_file(&f);
        r
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The internal snapshot `restore = "snapshot"` saves after setup.
const SNAPSHOT_TAG: &str = "repro-setup";

/// How long the whole setup phase may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the setup steps in order, each in a fresh SSH session, logging to `setup.log`. A step
/// that exits non-zero stops the sequence.
fn run_setup(
    steps: &[setup::Step],
    ports: &[u16],
    names: &[String],
    key: &Path,
    dir: &Path,
    log_name: &str,
) -> Result<(), String> {
    let mut log = std::fs::File::create(dir.join(log_name)).map_err(|e| format!("{log_name}: {e}"))?;
    for (n, st) in steps.iter().enumerate() {
        let session = crate::guest::Session::connect(ports[st.node], key, Duration::from_secs(10)).map_err(|e| {
            format!(
                "setup step `{}` on node `{}`: {}",
                st.label,
                names[st.node],
                crate::error_chain(&e)
            )
        })?;
        run_step(&session, n, st, &names[st.node], &mut log)?;
    }
    Ok(())
}

/// Runs setup step number `n` on `session` (a session to the step's node, named `node`) and
/// appends its output to `log`. A failure names the step and ends with its last words.
fn run_step(
    session: &crate::guest::Session,
    n: usize,
    st: &setup::Step,
    node: &str,
    log: &mut std::fs::File,
) -> Result<(), String> {
    use std::io::Write;
    let what = format!("setup step `{}` on node `{node}`", st.label);
    // The script's output goes to a file that `cat` returns, so a daemon it starts never
    // holds the SSH channel open.
    let f = format!("/run/repro/setup-{n}");
    let cmd = format!(
        "mkdir -p /run/repro && cat > {f}.sh && bash {f}.sh < /dev/null > {f}.log 2>&1; rc=$?; cat {f}.log; \
         [ $rc -eq 0 ] || dmesg | tail -n 6 | sed 's/^/dmesg: /'; exit $rc"
    );
    let out = session
        .exec(&cmd, st.script.as_bytes())
        .map_err(|e| format!("{what}: {}", crate::error_chain(&e)))?;
    let _ = writeln!(
        log,
        "=== {n}: {} on {node}: exit {} after {:.2}s ===",
        st.label,
        out.status,
        out.elapsed.as_secs_f64()
    );
    let _ = log.write_all(&out.stdout);
    if !out.stdout.is_empty() && !out.stdout.ends_with(b"\n") {
        let _ = log.write_all(b"\n");
    }
    if out.status != 0 {
        // The step's own last words first, then the kernel's.
        let text = String::from_utf8_lossy(&out.stdout);
        let (kernel, own): (Vec<&str>, Vec<&str>) = text.trim().lines().partition(|l| l.starts_with("dmesg: "));
        let tail = own[own.len().saturating_sub(5)..]
            .iter()
            .chain(&kernel[kernel.len().saturating_sub(3)..])
            .copied()
            .collect::<Vec<_>>();
        return Err(format!("{what} failed (exit {}):\n{}", out.status, tail.join("\n")));
    }
    Ok(())
}

/// A background step: runs until it ends or the run stops (the guest goes away). Its output is
/// appended live to `background-N.log`.
fn run_background(i: usize, port: u16, key: &Path, script: &str, dir: &Path, stop: &AtomicBool) {
    use std::io::Write;
    let log_path = dir.join(format!("background-{i}.log"));
    let Ok(mut log) = std::fs::File::create(&log_path) else {
        return;
    };
    let session = match crate::guest::Session::connect(port, key, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(log, "repro: cannot connect: {}", crate::error_chain(&e));
            return;
        }
    };
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let f = format!("/run/repro/background-{i}.sh");
    let cmd = format!("mkdir -p /run/repro && cat > {f} && exec bash {f} < /dev/null");
    let r = session.exec_with(&cmd, script.as_bytes(), &mut |_, data| {
        let _ = log.write_all(data);
    });
    if let Ok(o) = r {
        let _ = writeln!(log, "repro: background step exited {}", o.status);
    }
}

/// Performs fault `fi` through QMP and records it in `faults.log`.
async fn fire_fault(
    s: &Scenario,
    fi: usize,
    instances: &[Instance],
    run_dir: &Path,
    t_work: Instant,
    progress: &mpsc::UnboundedSender<Progress>,
) {
    use crate::scenario::FaultAction;
    let f = &s.faults[fi];
    let Some(inst) = instances.get(f.node) else { return };
    let links: Vec<String> = inst.config.links.iter().map(|l| format!("nic-{}", l.id)).collect();
    let (what, r) = match f.action {
        FaultAction::Stop => ("stop", inst.qmp.stop().await.map_err(|e| e.to_string())),
        FaultAction::Cont => ("cont", inst.qmp.cont().await.map_err(|e| e.to_string())),
        FaultAction::LinkDown | FaultAction::LinkUp => {
            let up = f.action == FaultAction::LinkUp;
            let mut r = Ok(());
            for l in &links {
                if let Err(e) = inst.qmp.set_link(l, up).await {
                    r = Err(e.to_string());
                }
            }
            (if up { "link-up" } else { "link-down" }, r)
        }
    };
    let line = format!(
        "{:.2}s {what} on node `{}`: {}",
        t_work.elapsed().as_secs_f64(),
        s.nodes[f.node].name,
        match &r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        }
    );
    let _ = progress.send(Progress::Note(format!("fault: {line}")));
    use std::io::Write;
    if let Ok(mut fl) = std::fs::File::options()
        .create(true)
        .append(true)
        .open(run_dir.join("faults.log"))
    {
        let _ = writeln!(fl, "{line}");
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn accel_summary(p: &[Option<Prepared>]) -> String {
    p.iter()
        .flatten()
        .map(|p| format!("{} {}", p.config.arch, p.accel.accel))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One node: files go straight into the run directory; several: one subdirectory each.
pub fn node_dir(run_dir: &Path, s: &Scenario, i: usize) -> PathBuf {
    if s.nodes.len() == 1 {
        run_dir.to_path_buf()
    } else {
        run_dir.join(&s.nodes[i].name)
    }
}

/// Forwards an instance's console, QMP and exit into the run's single event stream.
fn forward(i: usize, inst: &mut Instance, tx: mpsc::UnboundedSender<(usize, NodeEvent)>) {
    if let Some(mut c) = inst.console.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = c.recv().await {
                if tx.send((i, NodeEvent::Console(ev))).is_err() {
                    break;
                }
            }
        });
    }
    if let Some(mut q) = inst.qmp_events.take() {
        let tx = tx.clone();
        let flush = inst.flush.clone();
        tokio::spawn(async move {
            while let Some(ev) = q.recv().await {
                if matches!(ev, qmp::Event::GuestPanicked { .. }) {
                    // The guest is paused: whatever report is on the console is all there is.
                    flush.request();
                }
                if tx.send((i, NodeEvent::Qmp(ev))).is_err() {
                    break;
                }
            }
        });
    }
    let exit = inst.exit_watch();
    tokio::spawn(async move {
        let mut exit = exit;
        let status = exit.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s);
        let _ = tx.send((i, NodeEvent::Exited(status)));
    });
}
