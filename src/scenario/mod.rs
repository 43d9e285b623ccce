//! Scenario files: TOML in `scenarios/` turned into a validated [`Scenario`].
//!
//! Reads only the files it is given; no processes, no network.

mod diag;
mod units;

pub use diag::{from_toml, Diagnostic};
pub use units::{parse_duration, parse_mib, MiB, Secs};

use crate::arch::Arch;
use crate::kernel::git::Step;
use crate::kernel::RawStep;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The schema version this build understands.
pub const SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("no scenario named `{name}` in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Invalid(Box::new(d))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    schema: Option<Spanned<u32>>,
    summary: String,
    #[serde(default)]
    description: String,
    kernel: Spanned<String>,
    arch: Arch,
    image: Spanned<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    vm: RawVm,
    #[serde(default)]
    nodes: Vec<RawNode>,
    workload: RawWorkload,
    #[serde(default)]
    expect: RawExpect,
    /// The kernel the crash was first seen on, as the user names it (documentation).
    original: Option<Original>,
    /// Named patch sets that `repro verify --set` and `repro run --set` apply on top of each
    /// node's (source) kernel.
    #[serde(default)]
    patchsets: BTreeMap<String, RawPatchSet>,
    /// An NFS server and its clients, set up before the workload.
    nfs: Option<RawNfs>,
    /// Extra setup steps, in order, after the generated ones.
    #[serde(default)]
    setup: Vec<RawStepOn>,
    /// Scripts that run during the workload and are stopped when it ends.
    #[serde(default)]
    background: Vec<RawStepOn>,
    /// Host-side actions on guests through QMP, at a time or on a workload marker line.
    #[serde(default)]
    faults: Vec<Spanned<RawFault>>,
    /// Extra virtio disks, backed by sparse files in the run directory.
    #[serde(default)]
    disks: Vec<RawDisk>,
    /// NVDIMMs with an fsdax namespace (x86_64; aarch64 boots through UEFI for the NFIT).
    #[serde(default)]
    pmem: Vec<RawDisk>,
    /// Device-mapper devices over disks or pmem.
    #[serde(default)]
    dm: Vec<RawDm>,
    /// Filesystems made and mounted during setup.
    #[serde(default)]
    filesystems: Vec<RawFs>,
    /// Out-of-tree kernel modules built against each node's kernel, put into the guest at
    /// `/etc/repro/run/<name>.ko`.
    #[serde(default)]
    module: Vec<RawModule>,
    /// Variables exported to the setup, background and workload scripts (`--var K=V` overrides).
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, String>,
    /// Cut the workload node's power, boot it again on the same disks and pmem, and run a check.
    power_cut: Option<Spanned<RawPowerCut>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPowerCut {
    /// Cut when a workload output line contains this; without it, after the workload passes.
    marker: Option<String>,
    /// Runs on the node once it is back up with its filesystems mounted again (no mkfs).
    script: String,
    timeout: Option<Secs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    name: Spanned<String>,
    /// A directory (relative to the scenario file), or a git repository when `rev` is set.
    source: Spanned<String>,
    rev: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    node: Option<Spanned<String>>,
    name: Spanned<String>,
    size: MiB,
    /// Fill with this byte during setup (before any mkfs).
    fill: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDm {
    node: Option<Spanned<String>>,
    name: Spanned<String>,
    target: Spanned<String>,
    device: Spanned<String>,
    /// flakey: seconds up, then seconds down.
    up: Option<u32>,
    down: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFs {
    node: Option<Spanned<String>>,
    device: Spanned<String>,
    fs: Spanned<String>,
    #[serde(default)]
    mkfs_options: String,
    mountpoint: String,
    #[serde(default)]
    mount_options: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNfs {
    server: Option<Spanned<String>>,
    export: Option<String>,
    fs: Option<Spanned<String>>,
    /// A declared disk/pmem/dm device to put the ext4/xfs export on (default: a loop file).
    device: Option<Spanned<String>>,
    size: Option<MiB>,
    options: Option<String>,
    versions: Option<Vec<Spanned<String>>>,
    threads: Option<u32>,
    #[serde(default)]
    clients: Vec<RawNfsClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNfsClient {
    node: Option<Spanned<String>>,
    mountpoint: Option<String>,
    version: Spanned<String>,
    #[serde(default)]
    options: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStepOn {
    node: Option<Spanned<String>>,
    script: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    node: Option<Spanned<String>>,
    action: Spanned<String>,
    at: Option<Secs>,
    marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatchSet {
    summary: String,
    #[serde(default)]
    patch: Vec<Spanned<RawStep>>,
}

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
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    cpus: Option<Spanned<u32>>,
    memory: Option<MiB>,
    boot_timeout: Option<Secs>,
    #[serde(default)]
    cmdline: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    kernel: Option<Spanned<String>>,
    arch: Option<Arch>,
    cpus: Option<Spanned<u32>>,
    memory: Option<MiB>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    script: String,
    node: Option<Spanned<String>>,
    timeout: Option<Secs>,
    iterations: Option<Spanned<u32>>,
    parallel: Option<Spanned<u32>>,
    shell: Option<String>,
    /// `snapshot`: save the guest after setup and restore it before every iteration after the
    /// first (QMP savevm/loadvm), instead of running iterations on one booted guest.
    restore: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    title: Option<String>,
    title_regex: Option<Spanned<String>>,
    #[serde(default)]
    frames: Vec<String>,
    /// Known splats that do not count (neither reproduced nor crashed-differently).
    #[serde(default)]
    ignore: Vec<RawIgnore>,
    /// A workload output line containing this means reproduced (a data-integrity failure).
    marker: Option<String>,
    /// This workload exit status means reproduced.
    exit_status: Option<Spanned<i32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    title_regex: Spanned<String>,
    /// Only on this arch; default every arch.
    arch: Option<Arch>,
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
    pub modules: Vec<crate::module::Module>,
    pub vars: BTreeMap<String, String>,
    /// Builds every node's (source) kernel from this repository and revision instead of its
    /// definition's source; set by `repro bisect`.
    pub kernel_source: Option<KernelSource>,
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

/// A name usable as a shell variable.
fn is_var_name(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `export K='v'` lines for a shell script, values quoted.
pub fn exports(vars: &BTreeMap<String, String>) -> String {
    vars.iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
        .collect()
}

const DEFAULT_CPUS: u32 = 2;
const DEFAULT_MEMORY_MIB: u64 = 1024;
const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_CPUS: u32 = 64;

/// Overrides from the command line, applied to every node.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub kernel: Option<String>,
    pub arch: Option<Arch>,
    /// `NAME=VALUE` assignments to declared `[vars]`.
    pub vars: Vec<String>,
}

impl Scenario {
    /// Parses and validates `source`, read from `path`. `known_kernels` and `known_images` are
    /// the names defined in `kernels/` and `images/`.
    pub fn parse(path: &Path, source: &str, known_kernels: &[String], known_images: &[String]) -> Result<Self, Error> {
        let raw: Raw = from_toml(path, source)?;
        let diag = |span: std::ops::Range<usize>, key: &str, msg: String| {
            Error::from(Diagnostic::at(path, source, Some(span), key, msg))
        };

        if let Some(schema) = &raw.schema {
            if *schema.get_ref() != SCHEMA {
                return Err(diag(
                    schema.span(),
                    "schema",
                    format!(
                        "unsupported schema version {}, this repro reads version {SCHEMA}",
                        schema.get_ref()
                    ),
                ));
            }
        }
        let check_kernel = |k: &Spanned<String>, key: &str| -> Result<String, Error> {
            if known_kernels.iter().any(|n| n == k.get_ref()) {
                Ok(k.get_ref().clone())
            } else {
                Err(diag(
                    k.span(),
                    key,
                    format!(
                        "unknown kernel `{}`, defined kernels: {}",
                        k.get_ref(),
                        known_kernels.join(", ")
                    ),
                ))
            }
        };
        let check_cpus = |c: &Spanned<u32>, key: &str| -> Result<u32, Error> {
            let n = *c.get_ref();
            if (1..=MAX_CPUS).contains(&n) {
                Ok(n)
            } else {
                Err(diag(
                    c.span(),
                    key,
                    format!("cpus must be between 1 and {MAX_CPUS}, got {n}"),
                ))
            }
        };
        let kernel = check_kernel(&raw.kernel, "kernel")?;
        if !known_images.iter().any(|n| n == raw.image.get_ref()) {
            return Err(diag(
                raw.image.span(),
                "image",
                format!(
                    "unknown image `{}`, defined images: {}",
                    raw.image.get_ref(),
                    known_images.join(", ")
                ),
            ));
        }
        let cpus = match &raw.vm.cpus {
            Some(c) => check_cpus(c, "vm.cpus")?,
            None => DEFAULT_CPUS,
        };
        let memory_mib = raw.vm.memory.map_or(DEFAULT_MEMORY_MIB, |m| m.0);

        let mut nodes = Vec::new();
        if raw.nodes.is_empty() {
            nodes.push(Node {
                name: "guest".into(),
                kernel: kernel.clone(),
                arch: raw.arch,
                cpus,
                memory_mib,
            });
        }
        for (i, n) in raw.nodes.iter().enumerate() {
            let name = n.name.get_ref();
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(diag(
                    n.name.span(),
                    &format!("nodes[{i}].name"),
                    format!("node name `{name}` must be non-empty and use only letters, digits, `-` and `_`"),
                ));
            }
            if nodes.iter().any(|m: &Node| &m.name == name) {
                return Err(diag(
                    n.name.span(),
                    &format!("nodes[{i}].name"),
                    format!("duplicate node name `{name}`"),
                ));
            }
            nodes.push(Node {
                name: name.clone(),
                kernel: match &n.kernel {
                    Some(k) => check_kernel(k, &format!("nodes[{i}].kernel"))?,
                    None => kernel.clone(),
                },
                arch: n.arch.unwrap_or(raw.arch),
                cpus: match &n.cpus {
                    Some(c) => check_cpus(c, &format!("nodes[{i}].cpus"))?,
                    None => cpus,
                },
                memory_mib: n.memory.map_or(memory_mib, |m| m.0),
            });
        }

        let w = &raw.workload;
        let node = match &w.node {
            None => 0,
            Some(n) => nodes
                .iter()
                .position(|m| &m.name == n.get_ref())
                .ok_or_else(|| diag(n.span(), "workload.node", format!("no node named `{}`", n.get_ref())))?,
        };
        let positive = |v: &Option<Spanned<u32>>, key: &str| -> Result<u32, Error> {
            match v {
                None => Ok(1),
                Some(s) if *s.get_ref() >= 1 => Ok(*s.get_ref()),
                Some(s) => Err(diag(s.span(), key, "must be at least 1".into())),
            }
        };
        let workload = Workload {
            script: w.script.clone(),
            node,
            timeout: w.timeout.map_or(DEFAULT_WORKLOAD_TIMEOUT, |t| t.0),
            iterations: positive(&w.iterations, "workload.iterations")?,
            parallel: positive(&w.parallel, "workload.parallel")?,
            shell: w.shell.clone().unwrap_or_else(|| "/bin/bash".into()),
            restore_snapshot: match w.restore.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                None | Some(("none", _)) => false,
                Some(("snapshot", span)) => {
                    let why = if nodes.len() > 1 {
                        Some("restoring a snapshot works with one node only")
                    } else if w.parallel.as_ref().is_some_and(|p| *p.get_ref() > 1) {
                        Some("restoring a snapshot runs iterations one at a time: drop `parallel`")
                    } else if !raw.disks.is_empty() {
                        Some("restoring a snapshot needs every writable disk to be qcow2, and [[disks]] are raw")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(diag(span, "workload.restore", why.into()));
                    }
                    true
                }
                Some((other, span)) => {
                    return Err(diag(
                        span,
                        "workload.restore",
                        format!("unknown restore `{other}`, expected none or snapshot"),
                    ))
                }
            },
        };

        let title_regex = match &raw.expect.title_regex {
            None => None,
            Some(r) => Some(regex::Regex::new(r.get_ref()).map_err(|e| {
                diag(
                    r.span(),
                    "expect.title_regex",
                    format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")),
                )
            })?),
        };

        let mut ignore = Vec::new();
        for (i, ig) in raw.expect.ignore.iter().enumerate() {
            let r = &ig.title_regex;
            ignore.push(Ignore {
                title_regex: regex::Regex::new(r.get_ref()).map_err(|e| {
                    diag(
                        r.span(),
                        &format!("expect.ignore[{i}].title_regex"),
                        format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")),
                    )
                })?,
                arch: ig.arch,
            });
        }

        let exit_status = match &raw.expect.exit_status {
            Some(e) if *e.get_ref() == 0 || !(1..=255).contains(e.get_ref()) => {
                return Err(diag(
                    e.span(),
                    "expect.exit_status",
                    "must be between 1 and 255 (0 means the workload passed)".into(),
                ))
            }
            e => e.as_ref().map(|e| *e.get_ref()),
        };

        let base = path.parent().unwrap_or(Path::new("."));
        let mut patchsets = BTreeMap::new();
        for (name, set) in &raw.patchsets {
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(diag(
                    0..0,
                    &format!("patchsets.{name}"),
                    "a patch set name uses only letters, digits, `-` and `_`".into(),
                ));
            }
            let mut steps = Vec::new();
            for (i, st) in set.patch.iter().enumerate() {
                steps.push(st.get_ref().resolve(base).ok_or_else(|| {
                    diag(
                        st.span(),
                        &format!("patchsets.{name}.patch[{i}]"),
                        "a patch step needs exactly one of `apply`, `revert`, `cherry_pick`".into(),
                    )
                })?);
            }
            patchsets.insert(
                name.clone(),
                PatchSet {
                    summary: set.summary.clone(),
                    steps,
                },
            );
        }

        let node_index = |n: &Option<Spanned<String>>, key: &str, default: usize| -> Result<usize, Error> {
            match n {
                None => Ok(default),
                Some(n) => nodes
                    .iter()
                    .position(|m| &m.name == n.get_ref())
                    .ok_or_else(|| diag(n.span(), key, format!("no node named `{}`", n.get_ref()))),
            }
        };
        let mut nfs_server = None;
        let mut nfs_clients = Vec::new();
        if let Some(n) = &raw.nfs {
            let node = node_index(&n.server, "nfs.server", 0)?;
            let fs = match n.fs.as_ref().map(|f| f.get_ref().as_str()) {
                None | Some("tmpfs") => NfsBacking::Tmpfs,
                Some("ext4") => NfsBacking::Ext4,
                Some("xfs") => NfsBacking::Xfs,
                Some(other) => {
                    return Err(diag(
                        n.fs.as_ref().map_or(0..0, |f| f.span()),
                        "nfs.fs",
                        format!("unknown backing filesystem `{other}`, expected tmpfs, ext4 or xfs"),
                    ))
                }
            };
            let all = ["3", "4.0", "4.1", "4.2"];
            let mut versions = Vec::new();
            for v in n.versions.iter().flatten() {
                if !all.contains(&v.get_ref().as_str()) {
                    return Err(diag(
                        v.span(),
                        "nfs.versions",
                        format!("unknown NFS version `{}`, expected 3, 4.0, 4.1 or 4.2", v.get_ref()),
                    ));
                }
                versions.push(v.get_ref().clone());
            }
            if versions.is_empty() {
                versions = all.iter().map(|v| v.to_string()).collect();
            }
            let size_mib = n.size.map_or(512, |m| m.0);
            if fs == NfsBacking::Xfs && size_mib < 300 {
                return Err(diag(
                    0..0,
                    "nfs.size",
                    format!("mkfs.xfs refuses filesystems under 300 MiB; got {size_mib} MiB"),
                ));
            }
            for (i, c) in n.clients.iter().enumerate() {
                let key = format!("nfs.clients[{i}]");
                let cnode = node_index(&c.node, &format!("{key}.node"), node)?;
                if cnode != node && cnode != 0 && node != 0 {
                    return Err(diag(
                        c.node.as_ref().map_or(0..0, |n| n.span()),
                        &format!("{key}.node"),
                        "guests are linked to the first node only: put the server or this client on it".into(),
                    ));
                }
                let v = c.version.get_ref();
                if !versions.contains(v) {
                    return Err(diag(
                        c.version.span(),
                        &format!("{key}.version"),
                        format!(
                            "the server does not serve version `{v}` (it serves {})",
                            versions.join(", ")
                        ),
                    ));
                }
                nfs_clients.push(NfsClient {
                    node: cnode,
                    mountpoint: c.mountpoint.clone().unwrap_or_else(|| "/mnt/nfs".into()),
                    version: v.clone(),
                    options: c.options.clone(),
                });
            }
            nfs_server = Some(NfsServer {
                node,
                export: n.export.clone().unwrap_or_else(|| "/srv/nfs".into()),
                fs,
                size_mib,
                device: n.device.as_ref().map(|d| d.get_ref().clone()),
                options: n
                    .options
                    .clone()
                    .unwrap_or_else(|| "rw,fsid=0,no_subtree_check,no_root_squash,insecure,sync".into()),
                versions,
                threads: n.threads.unwrap_or(8),
            });
        }
        let steps_on = |v: &[RawStepOn], what: &str| -> Result<Vec<StepOn>, Error> {
            v.iter()
                .enumerate()
                .map(|(i, st)| {
                    Ok(StepOn {
                        node: node_index(&st.node, &format!("{what}[{i}].node"), 0)?,
                        script: st.script.clone(),
                    })
                })
                .collect()
        };
        let setup = steps_on(&raw.setup, "setup")?;
        let background = steps_on(&raw.background, "background")?;
        let mut faults = Vec::new();
        for (i, f) in raw.faults.iter().enumerate() {
            let key = format!("faults[{i}]");
            let fr = f.get_ref();
            let action = match fr.action.get_ref().as_str() {
                "link-down" => FaultAction::LinkDown,
                "link-up" => FaultAction::LinkUp,
                "stop" => FaultAction::Stop,
                "cont" => FaultAction::Cont,
                other => {
                    return Err(diag(
                        fr.action.span(),
                        &format!("{key}.action"),
                        format!("unknown action `{other}`, expected link-down, link-up, stop or cont"),
                    ))
                }
            };
            let when = match (&fr.at, &fr.marker) {
                (Some(t), None) => FaultWhen::At(t.0),
                (None, Some(m)) if !m.is_empty() => FaultWhen::Marker(m.clone()),
                _ => {
                    return Err(diag(
                        f.span(),
                        &key,
                        "a fault needs exactly one of `at` (a time after the workload starts) or `marker`".into(),
                    ))
                }
            };
            let node = node_index(&fr.node, &format!("{key}.node"), 0)?;
            if matches!(action, FaultAction::LinkDown | FaultAction::LinkUp) && nodes.len() < 2 {
                return Err(diag(
                    fr.action.span(),
                    &format!("{key}.action"),
                    "link faults need a second node: a single guest has no private link".into(),
                ));
            }
            faults.push(Fault { node, action, when });
        }

        let mut modules: Vec<crate::module::Module> = Vec::new();
        for (i, m) in raw.module.iter().enumerate() {
            let name = m.name.get_ref();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(diag(
                    m.name.span(),
                    &format!("module[{i}].name"),
                    format!("module name `{name}` must use only letters, digits, `-` and `_`"),
                ));
            }
            if modules.iter().any(|o| &o.name == name) {
                return Err(diag(
                    m.name.span(),
                    &format!("module[{i}].name"),
                    format!("duplicate module `{name}`"),
                ));
            }
            let source = base.join(m.source.get_ref());
            if !source.is_dir() {
                return Err(diag(
                    m.source.span(),
                    &format!("module[{i}].source"),
                    format!("{} is not a directory", source.display()),
                ));
            }
            modules.push(crate::module::Module {
                name: name.clone(),
                source,
                rev: m.rev.clone(),
            });
        }
        let mut vars = BTreeMap::new();
        for (k, v) in &raw.vars {
            if !is_var_name(k.get_ref()) {
                return Err(diag(
                    k.span(),
                    &format!("vars.{}", k.get_ref()),
                    "a variable name uses letters, digits and `_`, and does not start with a digit".into(),
                ));
            }
            vars.insert(k.get_ref().clone(), v.clone());
        }

        let mut names: Vec<(usize, String)> = Vec::new();
        let dev_name =
            |names: &mut Vec<(usize, String)>, node: usize, n: &Spanned<String>, key: &str| -> Result<String, Error> {
                let v = n.get_ref();
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(diag(
                        n.span(),
                        key,
                        format!("device name `{v}` must use only letters, digits, `-` and `_`"),
                    ));
                }
                if names.contains(&(node, v.clone())) {
                    return Err(diag(n.span(), key, format!("duplicate device name `{v}` on this node")));
                }
                names.push((node, v.clone()));
                Ok(v.clone())
            };
        let mut disks = Vec::new();
        for (i, d) in raw.disks.iter().enumerate() {
            let node = node_index(&d.node, &format!("disks[{i}].node"), 0)?;
            disks.push(BlockDev {
                node,
                name: dev_name(&mut names, node, &d.name, &format!("disks[{i}].name"))?,
                size_mib: d.size.0,
                fill: d.fill,
            });
        }
        let mut pmem = Vec::new();
        for (i, d) in raw.pmem.iter().enumerate() {
            let node = node_index(&d.node, &format!("pmem[{i}].node"), 0)?;
            pmem.push(BlockDev {
                node,
                name: dev_name(&mut names, node, &d.name, &format!("pmem[{i}].name"))?,
                size_mib: d.size.0,
                fill: d.fill,
            });
        }
        let mut dm = Vec::new();
        for (i, d) in raw.dm.iter().enumerate() {
            let node = node_index(&d.node, &format!("dm[{i}].node"), 0)?;
            let target = match d.target.get_ref().as_str() {
                "linear" => DmTarget::Linear,
                "flakey" => DmTarget::Flakey {
                    up: d.up.unwrap_or(5),
                    down: d.down.unwrap_or(1),
                },
                other => {
                    return Err(diag(
                        d.target.span(),
                        &format!("dm[{i}].target"),
                        format!("unknown target `{other}`, expected linear or flakey (error tables are swapped in with repro-dm-error)"),
                    ))
                }
            };
            if !names.contains(&(node, d.device.get_ref().clone())) {
                return Err(diag(
                    d.device.span(),
                    &format!("dm[{i}].device"),
                    format!(
                        "no disk or pmem named `{}` on this node (declare it before the dm device)",
                        d.device.get_ref()
                    ),
                ));
            }
            dm.push(Dm {
                node,
                name: dev_name(&mut names, node, &d.name, &format!("dm[{i}].name"))?,
                target,
                device: d.device.get_ref().clone(),
            });
        }
        let mut filesystems = Vec::new();
        for (i, f) in raw.filesystems.iter().enumerate() {
            let node = node_index(&f.node, &format!("filesystems[{i}].node"), 0)?;
            if !names.contains(&(node, f.device.get_ref().clone())) {
                return Err(diag(
                    f.device.span(),
                    &format!("filesystems[{i}].device"),
                    format!("no disk, pmem or dm device named `{}` on this node", f.device.get_ref()),
                ));
            }
            if !["xfs", "ext4"].contains(&f.fs.get_ref().as_str()) {
                return Err(diag(
                    f.fs.span(),
                    &format!("filesystems[{i}].fs"),
                    format!("unknown filesystem `{}`, expected xfs or ext4", f.fs.get_ref()),
                ));
            }
            filesystems.push(Filesystem {
                node,
                device: f.device.get_ref().clone(),
                fs: f.fs.get_ref().clone(),
                mkfs_options: f.mkfs_options.clone(),
                mountpoint: f.mountpoint.clone(),
                mount_options: f.mount_options.clone(),
            });
        }

        if let (Some(srv), Some(n)) = (&nfs_server, &raw.nfs) {
            if let Some(d) = &n.device {
                if srv.fs == NfsBacking::Tmpfs {
                    return Err(diag(
                        d.span(),
                        "nfs.device",
                        "a tmpfs export has no device; set `fs` to ext4 or xfs".into(),
                    ));
                }
                if !names.contains(&(srv.node, d.get_ref().clone())) {
                    return Err(diag(
                        d.span(),
                        "nfs.device",
                        format!(
                            "no disk, pmem or dm device named `{}` on the server's node",
                            d.get_ref()
                        ),
                    ));
                }
            }
        }

        let power_cut = match &raw.power_cut {
            None => None,
            Some(pc) => {
                let span = pc.span();
                let node = workload.node;
                let why = if workload.restore_snapshot {
                    Some("a power cut cannot follow a snapshot restore: drop `workload.restore`")
                } else if nfs_server.as_ref().is_some_and(|n: &NfsServer| n.node == node)
                    || nfs_clients.iter().any(|c: &NfsClient| c.node == node)
                {
                    Some("after a power cut repro mounts local storage again, not NFS: the workload's node must not be an NFS server or client")
                } else if pc.get_ref().marker.as_deref() == Some("") {
                    Some("an empty `marker` would match every line: drop it to cut after the workload")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(diag(span, "power_cut", why.into()));
                }
                let pc = pc.get_ref();
                Some(PowerCut {
                    marker: pc.marker.clone(),
                    check: Workload {
                        script: pc.script.clone(),
                        node,
                        timeout: pc.timeout.map_or(DEFAULT_WORKLOAD_TIMEOUT, |t| t.0),
                        iterations: 1,
                        parallel: 1,
                        shell: workload.shell.clone(),
                        restore_snapshot: false,
                    },
                })
            }
        };

        Ok(Scenario {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            summary: raw.summary,
            description: raw.description,
            image: raw.image.into_inner(),
            tags: raw.tags,
            nodes,
            boot_timeout: raw.vm.boot_timeout.map_or(DEFAULT_BOOT_TIMEOUT, |t| t.0),
            cmdline: raw.vm.cmdline,
            workload,
            expect: Expect {
                title: raw.expect.title,
                title_regex,
                frames: raw.expect.frames,
                ignore,
                marker: raw.expect.marker.filter(|m| !m.is_empty()),
                exit_status,
            },
            disks,
            pmem,
            dm,
            filesystems,
            original: raw.original,
            patchsets,
            nfs_server,
            nfs_clients,
            setup,
            background,
            faults,
            active_set: None,
            modules,
            vars,
            kernel_source: None,
            power_cut,
        })
    }

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

    /// Reads and parses a scenario file.
    pub fn load(path: &Path, known_kernels: &[String], known_images: &[String]) -> Result<Self, Error> {
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &source, known_kernels, known_images)
    }

    /// Applies command-line overrides to every node.
    pub fn apply(&mut self, o: &Overrides) {
        for n in &mut self.nodes {
            if let Some(k) = &o.kernel {
                n.kernel = k.clone();
            }
            if let Some(a) = o.arch {
                n.arch = a;
            }
        }
    }
}

/// Resolves a scenario argument: a path to a `.toml` file, or a name in `dir`.
pub fn resolve(dir: &Path, arg: &str) -> Result<PathBuf, Error> {
    let p = Path::new(arg);
    if arg.ends_with(".toml") || p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    let candidate = dir.join(format!("{arg}.toml"));
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Error::NotFound {
            name: arg.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The `.toml` files directly inside `dir`, sorted by name (the stem: `a.toml` before
/// `a-b.toml`, which a sort of whole paths would reverse).
pub fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort_by(|a, b| a.file_stem().cmp(&b.file_stem()));
    Ok(v)
}

#[cfg(test)]
mod tests;
