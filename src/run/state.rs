//! What a run knows as it goes: its options, each node's preparation and guest, the watch over
//! its events, and what was observed. Each phase is a method on [`RunState`].

use super::guests::{Guests, NoGuests};
use super::observer::Observer;
use super::outcome::WorkloadOutcome;
use super::prepare::Prepared;
use super::progress::Progress;
use super::verdict::PowerCutObserved;
use super::watch::Watch;
use crate::def::load::Roots;
use crate::guest::{Link, Reach, Session};
use crate::report::Timings;
use crate::rundir::RunDir;
use crate::scenario::Scenario;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub struct Options {
    pub scenario: Scenario,
    pub roots: Roots,
    /// A directory made for this run (never an earlier run's).
    pub run_dir: RunDir,
    pub progress: mpsc::UnboundedSender<Progress>,
    /// Becomes true when the user interrupts.
    pub cancel: watch::Receiver<bool>,
    /// On a crash, save each crashed guest's memory as `vmcore` (kdump-compressed) in its
    /// node directory before tearing down.
    pub vmcore: bool,
    /// Keep the scenario's disk and NVDIMM backing files (`disk-*.img`, `pmem-*.img`) after the
    /// run; by default they are deleted at teardown (a filled 1 GiB NVDIMM is 1 GiB on disk).
    pub keep_disks: bool,
    /// On a crash, keep the crashed guests stopped and serve their gdbstubs until gdb detaches.
    pub gdb: bool,
}

pub struct RunState {
    /// The scenario, with its `[vars]` exported into its scripts.
    pub scenario: Scenario,
    pub roots: Roots,
    pub run_dir: PathBuf,
    pub vmcore: bool,
    pub keep_disks: bool,
    pub gdb: bool,
    /// The debugging sessions `--gdb` offered, and how each ended.
    pub debugger: Vec<crate::report::DebugSession>,
    /// The vmcores have been saved (or tried).
    pub dumped: bool,
    pub progress: mpsc::UnboundedSender<Progress>,
    pub started: Instant,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// The run's SSH key.
    pub key: PathBuf,
    /// Unique to the run: marks the line it writes to each guest's `/dev/kmsg` at the end.
    pub token: String,
    pub prepared: Vec<Option<Prepared>>,
    pub guests: Box<dyn Guests>,
    /// The session that proved each node up, until the workload takes it.
    pub sessions: Vec<Option<Session>>,
    /// How each node's commands reach it (its agent, or SSH), once it is up.
    pub links: Vec<Option<Link>>,
    pub watch: Watch,
    /// Flags that tell the run's blocking threads (SSH waiters, the workload, background
    /// steps, the power cut's check) to stop: each phase sets its own when it ends, teardown
    /// sets them all.
    halts: Vec<Arc<AtomicBool>>,
    pub timings: Timings,
    pub workload: WorkloadOutcome,
    /// Workload iterations completed.
    pub completed: u32,
    /// The first workload line with the scenario's data marker.
    pub marker_line: Arc<Mutex<Option<String>>>,
    /// The workload printed the power-cut marker.
    pub cut_at_marker: bool,
    /// When the latest snapshot restore started (`restore = "snapshot"`).
    pub restored_at: Option<Instant>,
    pub power_cut: Option<PowerCutObserved>,
    pub vmcores: Vec<String>,
    pub qemu_commands: Vec<Option<String>>,
}

/// A token unique to the run: the time and the process.
fn run_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}.{:x}", std::process::id())
}

impl RunState {
    pub fn new(options: Options) -> Self {
        let scenario = options.scenario.with_vars_exported();
        let names = scenario.nodes.iter().map(|n| n.name.clone()).collect();
        let arches = scenario.nodes.iter().map(|n| n.arch).collect();
        let observer = Observer::new(scenario.expect.clone(), arches);
        let watch = Watch::new(names, observer, options.cancel, options.progress.clone());
        let nodes = scenario.nodes.len();
        RunState {
            key: options.run_dir.join("id_ed25519"),
            token: run_token(),
            prepared: (0..nodes).map(|_| None).collect(),
            sessions: (0..nodes).map(|_| None).collect(),
            links: (0..nodes).map(|_| None).collect(),
            scenario,
            roots: options.roots,
            run_dir: options.run_dir.path().to_path_buf(),
            vmcore: options.vmcore,
            keep_disks: options.keep_disks,
            gdb: options.gdb,
            debugger: Vec::new(),
            dumped: false,
            progress: options.progress,
            started: Instant::now(),
            started_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            guests: Box::new(NoGuests),
            watch,
            halts: Vec::new(),
            timings: Timings::default(),
            workload: WorkloadOutcome::NotRun,
            completed: 0,
            marker_line: Arc::new(Mutex::new(None)),
            cut_at_marker: false,
            restored_at: None,
            power_cut: None,
            vmcores: Vec::new(),
            qemu_commands: Vec::new(),
        }
    }

    pub fn note(&self, p: Progress) {
        let _ = self.progress.send(p);
    }

    /// A new flag for a phase's blocking threads.
    pub fn halt_flag(&mut self) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.halts.push(flag.clone());
        flag
    }

    /// Tells every blocking thread of the run to stop.
    pub fn halt_all(&self) {
        for flag in &self.halts {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Where node `i` may answer as it boots: its agent's channel and its SSH port.
    pub fn reach(&self, i: usize) -> Reach {
        Reach {
            agent: self.guests.agent(i),
            port: self.guests.ssh_port(i).unwrap_or(0),
            key: self.key.clone(),
        }
    }

    /// How node `i`'s commands reach it; before it is up, SSH to its port (which then fails
    /// as a connection would).
    pub fn link(&self, i: usize) -> Link {
        self.links.get(i).cloned().flatten().unwrap_or_else(|| Link::Ssh {
            port: self.guests.ssh_port(i).unwrap_or(0),
            key: self.key.clone(),
        })
    }

    /// Node `i`'s name.
    pub fn name(&self, i: usize) -> String {
        self.scenario.nodes.get(i).map(|n| n.name.clone()).unwrap_or_default()
    }

    /// Where node `node`'s files go: straight into the run directory for one node, a
    /// subdirectory each for several.
    pub fn node_dir(&self, node: usize) -> PathBuf {
        if self.scenario.nodes.len() == 1 {
            self.run_dir.clone()
        } else {
            self.run_dir.join(&self.scenario.nodes[node].name)
        }
    }
}
