//! The record of a run, written as `report.json` in its run directory. Data only: no I/O here
//! beyond serialization.

use crate::arch::Arch;
use crate::run::infra::InfraError;
use crate::run::verdict::Verdict;
use crate::vm::table::Accel;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub repro_version: &'static str,
    pub scenario: String,
    pub scenario_file: String,
    pub verdict: Verdict,
    pub reason: String,
    pub exit_code: i32,
    /// The crash the verdict is about.
    pub crash: Option<repro_oops::Report>,
    /// Every crash report seen, in console order (including `crash`).
    pub crashes: Vec<repro_oops::Report>,
    /// Known splats the scenario ignores (`expect.ignore`), in console order.
    pub ignored_crashes: Vec<repro_oops::Report>,
    /// The workload node's kernel.
    pub kernel: Option<KernelInfo>,
    pub arch: Arch,
    pub accel: Option<Accel>,
    pub accel_reason: Option<String>,
    pub nodes: Vec<NodeInfo>,
    pub workload: WorkloadInfo,
    pub timings: Timings,
    pub run_dir: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// kdump-compressed guest memory saved on a crash (`--vmcore`), beside the console log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vmcores: Vec<String>,
    /// `--gdb`: the debugging sessions offered on crashed guests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub debugger: Vec<DebugSession>,
    /// Evidence that could not be saved (a console log, QEMU's stderr, report.json itself):
    /// the verdict stands, but the files behind it are incomplete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence_lost: Vec<String>,
    /// Stalls seen while the host was overloaded: not counted as crashes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspect_stalls: Vec<SuspectStall>,
    /// The infrastructure failure behind an `infra-error` verdict, typed (not in report.json:
    /// `reason` is its text).
    #[serde(skip)]
    pub infra: Option<Arc<InfraError>>,
    /// The user (or a nightly's budget) stopped the run.
    #[serde(skip)]
    pub interrupted: bool,
}

/// A debugging session `repro run --gdb` offered on a crashed guest.
#[derive(Debug, Clone, Serialize)]
pub struct DebugSession {
    pub node: String,
    /// The socket gdb connects to (`target remote PATH`).
    pub socket: PathBuf,
    /// The gdb command printed for it.
    pub command: String,
    /// How it ended: `detached`, `ended by Ctrl-C`, or what went wrong.
    pub ended: String,
}

/// A stall that came while the host was overloaded.
#[derive(Debug, Clone, Serialize)]
pub struct SuspectStall {
    pub title: String,
    /// How the host was overloaded.
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelInfo {
    pub name: String,
    pub release: Option<String>,
    pub origin: String,
    /// The vmlinux with symbols and debug info, when the kernel has one (what `repro debug`
    /// opens the dump with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmlinux: Option<PathBuf>,
    /// The kernel's `vmlinux-gdb.py` (full debug info builds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdb_scripts: Option<PathBuf>,
    /// The scenario's out-of-tree modules built for this kernel.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleInfo>,
}

/// An out-of-tree module built for the kernel.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    pub name: String,
    pub ko: PathBuf,
    /// `git <commit>` or `dir <content hash>`.
    pub origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub arch: Arch,
    pub kernel: Option<KernelInfo>,
    pub accel: Option<Accel>,
    pub cpus: u32,
    pub memory_mib: u64,
    pub qemu_command: Option<String>,
    /// How repro's commands reached the node: `agent` (repro's agent on a virtio-serial port)
    /// or `ssh` (a guest without the agent's port); null if it never answered.
    pub link: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub node: String,
    pub iterations: u32,
    pub parallel: u32,
    pub timeout_s: u64,
    pub iterations_completed: u32,
    pub outcome: String,
}

/// Phase timings in seconds. A phase that did not happen is `null`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Kernel fetch, image build (both cached), and the per-run layers.
    pub image: Option<f64>,
    /// QEMU start to every node answering: its agent's hello, or an authenticated SSH session
    /// (the name is from when SSH was the only way in).
    pub boot_to_ssh: Option<f64>,
    /// The setup steps (storage, links, NFS), when the scenario has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<f64>,
    pub workload: Option<f64>,
    /// First console line of the crash report to the report being complete.
    pub detection: Option<f64>,
    pub teardown: Option<f64>,
    pub total: f64,
    /// `restore = "snapshot"`: saving the guest after setup, and each restore (loadvm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_save: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<f64>,
    /// Each iteration after a restore, whole: the restore, a new SSH session, the run, its
    /// output collected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restored_iterations: Vec<f64>,
    /// `[power_cut]`: the reset to an authenticated SSH session on the booted-again node, and
    /// the storage mounted again plus the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_cut_to_ssh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<f64>,
}
