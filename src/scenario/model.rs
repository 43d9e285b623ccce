//! A validated scenario: what `repro run` needs to know, with every name resolved to an index.

use crate::arch::Arch;
use crate::def::diag::NeedsDir;
use crate::def::module::ModuleSpec;
use crate::def::patch::PatchStep;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where the crash came from: free-form facts kept with the scenario and shown in reports.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Original {
    /// e.g. `openEuler 4.19.90-23.8`.
    pub kernel: String,
    #[serde(default)]
    pub arch: Option<String>,
    /// The upstream commit that fixed it, if any (`22876f540bdf ("...")`).
    #[serde(default)]
    pub upstream_fix: Option<String>,
    /// The commit or change that introduced it, if known.
    #[serde(default)]
    pub introduced_by: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The NFS server a scenario sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsServer {
    /// Index into [`Scenario::nodes`].
    pub node: usize,
    pub export: String,
    pub fs: NfsBacking,
    pub size_mib: u64,
    /// A declared block device (by name) instead of a loop file.
    pub device: Option<String>,
    pub options: String,
    /// Served versions, from "3", "4.0", "4.1", "4.2".
    pub versions: Vec<String>,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfsBacking {
    Tmpfs,
    Ext4,
    Xfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsClient {
    pub node: usize,
    pub mountpoint: String,
    pub version: String,
    pub options: String,
}

/// A script to run as root on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOn {
    pub node: usize,
    pub script: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// QMP `set_link` off on the node's private link(s).
    LinkDown,
    LinkUp,
    /// QMP `stop` / `cont`: freeze and thaw the whole guest.
    Stop,
    Cont,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultWhen {
    /// After the workload starts.
    At(Duration),
    /// When a workload output line contains this text.
    Marker(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub node: usize,
    pub action: FaultAction,
    pub when: FaultWhen,
}

/// A block device a scenario declares; in the guest it is `/dev/repro/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    pub node: usize,
    pub name: String,
    pub size_mib: u64,
    pub fill: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmTarget {
    Linear,
    /// Up for `up` seconds, then failing I/O for `down` seconds.
    Flakey {
        up: u32,
        down: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dm {
    pub node: usize,
    pub name: String,
    pub target: DmTarget,
    /// A disk or pmem name.
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub node: usize,
    /// A disk, pmem or dm name.
    pub device: String,
    /// `xfs` or `ext4`.
    pub fs: String,
    pub mkfs_options: String,
    pub mountpoint: String,
    pub mount_options: String,
}

/// A named patch set: steps appended to the kernel's own series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchSet {
    pub summary: String,
    pub steps: Vec<PatchStep>,
}

/// A splat a scenario knows about and does not count.
#[derive(Debug, Clone)]
pub struct Ignore {
    pub title_regex: regex::Regex,
    pub arch: Option<Arch>,
}

/// One guest of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub kernel: String,
    pub arch: Arch,
    pub cpus: u32,
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub script: String,
    /// Index into [`Scenario::nodes`].
    pub node: usize,
    pub timeout: Duration,
    pub iterations: u32,
    pub parallel: u32,
    pub shell: String,
    /// Restore the post-setup snapshot before every iteration after the first.
    pub restore_snapshot: bool,
    /// `placeholder = true` (what `repro new` writes): the workload is not written yet, and
    /// running it is this error, pointing at the key.
    pub placeholder: Option<Box<crate::def::diag::Diagnostic>>,
}

/// What counts as reproduced. Empty means "any crash".
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub title: Option<String>,
    pub title_regex: Option<regex::Regex>,
    pub frames: Vec<String>,
    pub ignore: Vec<Ignore>,
    /// A workload output line containing this means reproduced.
    pub marker: Option<String>,
    /// This workload exit status means reproduced.
    pub exit_status: Option<i32>,
}

impl Expect {
    /// Does it say which crash (title, title regex or frames)?
    pub fn names_a_crash(&self) -> bool {
        self.title.is_some() || self.title_regex.is_some() || !self.frames.is_empty()
    }

    /// Does it name a data signal (marker line or exit status)?
    pub fn names_data(&self) -> bool {
        self.marker.is_some() || self.exit_status.is_some()
    }

    pub fn is_any(&self) -> bool {
        !self.names_a_crash() && !self.names_data()
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file stem.
    pub name: String,
    pub path: PathBuf,
    pub summary: String,
    pub description: String,
    pub image: String,
    pub tags: Vec<String>,
    pub nodes: Vec<Node>,
    pub boot_timeout: Duration,
    pub cmdline: Vec<String>,
    pub workload: Workload,
    pub expect: Expect,
    pub original: Option<Original>,
    pub patchsets: BTreeMap<String, PatchSet>,
    pub nfs_server: Option<NfsServer>,
    pub nfs_clients: Vec<NfsClient>,
    pub setup: Vec<StepOn>,
    pub background: Vec<StepOn>,
    pub faults: Vec<Fault>,
    pub disks: Vec<BlockDev>,
    pub pmem: Vec<BlockDev>,
    pub dm: Vec<Dm>,
    pub filesystems: Vec<Filesystem>,
    /// The patch set in effect for this run, if any (see [`Scenario::select_set`]).
    pub active_set: Option<String>,
    pub modules: Vec<ModuleSpec>,
    /// Directories the scenario names (module sources), for the loader to check.
    pub needs_dirs: Vec<NeedsDir>,
    pub vars: BTreeMap<String, String>,
    /// Builds every node's (source) kernel from this repository and revision instead of its
    /// definition's source; set by `repro bisect`.
    pub kernel_source: Option<KernelSource>,
    /// Boots every node's kernel with full debug info (`repro run --debug-info full`).
    pub full_debug_info: bool,
    pub power_cut: Option<PowerCut>,
}

/// `[power_cut]`: QMP `system_reset` of the workload's node (no sync, no unmount: the power
/// fails), a boot on the same disks, pmem and root, the node's storage mounted again without
/// mkfs, then a check script whose output counts for `expect` like the workload's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerCut {
    /// Cut when a workload output line contains this (the workload is abandoned there);
    /// `None`: after every iteration passed.
    pub marker: Option<String>,
    /// The check, on the workload's node, one iteration.
    pub check: Workload,
}

/// A kernel tree to build instead of a definition's own source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSource {
    pub repo: PathBuf,
    pub rev: String,
}

/// `export K='v'` lines for a shell script, values quoted.
pub fn exports(vars: &BTreeMap<String, String>) -> String {
    vars.iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
        .collect()
}

/// Overrides from the command line, applied to every node.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub kernel: Option<String>,
    pub arch: Option<Arch>,
    /// `NAME=VALUE` assignments to declared `[vars]`.
    pub vars: Vec<String>,
}

impl Scenario {
    /// Sets a `[vars]` value from the command line (`K=V`); the name must be declared.
    pub fn set_var(&mut self, assignment: &str) -> Result<(), String> {
        let Some((k, v)) = assignment.split_once('=') else {
            return Err(format!("`--var {assignment}`: expected NAME=VALUE"));
        };
        match self.vars.get_mut(k) {
            Some(slot) => {
                *slot = v.to_string();
                Ok(())
            }
            None => {
                let known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                Err(format!(
                    "scenario `{}` declares no variable `{k}` in [vars]; it declares: {}",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            }
        }
    }

    /// The scenario's own scripts (setup, background, workload) with `[vars]` exported first.
    pub fn with_vars_exported(mut self) -> Self {
        if self.vars.is_empty() {
            return self;
        }
        let head = exports(&self.vars);
        for st in self.setup.iter_mut().chain(self.background.iter_mut()) {
            st.script = format!("{head}{}", st.script);
        }
        self.workload.script = format!("{head}{}", self.workload.script);
        if let Some(pc) = &mut self.power_cut {
            pc.check.script = format!("{head}{}", pc.check.script);
        }
        self
    }

    /// Makes patch set `name` apply to every node's kernel in this run.
    pub fn select_set(&mut self, name: &str) -> Result<(), String> {
        if !self.patchsets.contains_key(name) {
            let known: Vec<&str> = self.patchsets.keys().map(String::as_str).collect();
            return Err(format!(
                "scenario `{}` has no patch set `{name}`; it defines: {}",
                self.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        self.active_set = Some(name.to_string());
        Ok(())
    }

    /// Applies command-line overrides to every node.
    pub fn apply(&mut self, overrides: &Overrides) {
        for node in &mut self.nodes {
            if let Some(kernel) = &overrides.kernel {
                node.kernel = kernel.clone();
            }
            if let Some(arch) = overrides.arch {
                node.arch = arch;
            }
        }
    }
}
