//! The scenario file as written: serde's view, with spans for diagnostics.

use super::model::Original;
use crate::arch::Arch;
use crate::def::patch::RawPatchStep;
use crate::def::units::{MiB, Secs};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) schema: Option<Spanned<u32>>,
    pub(super) summary: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) kernel: Spanned<String>,
    pub(super) arch: Arch,
    pub(super) image: Spanned<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) vm: RawVm,
    #[serde(default)]
    pub(super) nodes: Vec<RawNode>,
    pub(super) workload: RawWorkload,
    #[serde(default)]
    pub(super) expect: RawExpect,
    /// The kernel the crash was first seen on, as the user names it (documentation).
    pub(super) original: Option<Original>,
    /// Named patch sets that `repro verify --set` and `repro run --set` apply on top of each
    /// node's (source) kernel.
    #[serde(default)]
    pub(super) patchsets: BTreeMap<Spanned<String>, RawPatchSet>,
    /// An NFS server and its clients, set up before the workload.
    pub(super) nfs: Option<RawNfs>,
    /// Extra setup steps, in order, after the generated ones.
    #[serde(default)]
    pub(super) setup: Vec<RawStepOn>,
    /// Scripts that run during the workload and are stopped when it ends.
    #[serde(default)]
    pub(super) background: Vec<RawStepOn>,
    /// Host-side actions on guests through QMP, at a time or on a workload marker line.
    #[serde(default)]
    pub(super) faults: Vec<Spanned<RawFault>>,
    /// Extra virtio disks, backed by sparse files in the run directory.
    #[serde(default)]
    pub(super) disks: Vec<RawDisk>,
    /// NVDIMMs with an fsdax namespace (x86_64; aarch64 boots through UEFI for the NFIT).
    #[serde(default)]
    pub(super) pmem: Vec<RawDisk>,
    /// Device-mapper devices over disks or pmem.
    #[serde(default)]
    pub(super) dm: Vec<RawDm>,
    /// Filesystems made and mounted during setup.
    #[serde(default)]
    pub(super) filesystems: Vec<RawFs>,
    /// Out-of-tree kernel modules built against each node's kernel, put into the guest at
    /// `/etc/repro/run/<name>.ko`.
    #[serde(default)]
    pub(super) module: Vec<RawModule>,
    /// Variables exported to the setup, background and workload scripts (`--var K=V` overrides).
    #[serde(default)]
    pub(super) vars: BTreeMap<Spanned<String>, String>,
    /// Cut the workload node's power, boot it again on the same disks and pmem, and run a check.
    pub(super) power_cut: Option<Spanned<RawPowerCut>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPowerCut {
    /// Cut when a workload output line contains this; without it, after the workload passes.
    pub(super) marker: Option<String>,
    /// Runs on the node once it is back up with its filesystems mounted again (no mkfs).
    pub(super) script: String,
    pub(super) timeout: Option<Secs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModule {
    pub(super) name: Spanned<String>,
    /// A directory (relative to the scenario file), or a git repository when `rev` is set.
    pub(super) source: Spanned<String>,
    pub(super) rev: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisk {
    pub(super) node: Option<Spanned<String>>,
    pub(super) name: Spanned<String>,
    pub(super) size: MiB,
    /// Fill with this byte during setup (before any mkfs).
    pub(super) fill: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDm {
    pub(super) node: Option<Spanned<String>>,
    pub(super) name: Spanned<String>,
    pub(super) target: Spanned<String>,
    pub(super) device: Spanned<String>,
    /// flakey: seconds up, then seconds down.
    pub(super) up: Option<u32>,
    pub(super) down: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFs {
    pub(super) node: Option<Spanned<String>>,
    pub(super) device: Spanned<String>,
    pub(super) fs: Spanned<String>,
    #[serde(default)]
    pub(super) mkfs_options: String,
    pub(super) mountpoint: String,
    #[serde(default)]
    pub(super) mount_options: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNfs {
    pub(super) server: Option<Spanned<String>>,
    pub(super) export: Option<String>,
    pub(super) fs: Option<Spanned<String>>,
    /// A declared disk/pmem/dm device to put the ext4/xfs export on (default: a loop file).
    pub(super) device: Option<Spanned<String>>,
    pub(super) size: Option<MiB>,
    pub(super) options: Option<String>,
    pub(super) versions: Option<Vec<Spanned<String>>>,
    pub(super) threads: Option<u32>,
    #[serde(default)]
    pub(super) clients: Vec<RawNfsClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNfsClient {
    pub(super) node: Option<Spanned<String>>,
    pub(super) mountpoint: Option<String>,
    pub(super) version: Spanned<String>,
    #[serde(default)]
    pub(super) options: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStepOn {
    pub(super) node: Option<Spanned<String>>,
    pub(super) script: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub(super) node: Option<Spanned<String>>,
    pub(super) action: Spanned<String>,
    pub(super) at: Option<Secs>,
    pub(super) marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPatchSet {
    pub(super) summary: String,
    #[serde(default)]
    pub(super) patch: Vec<Spanned<RawPatchStep>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    pub(super) cpus: Option<Spanned<u32>>,
    pub(super) memory: Option<MiB>,
    pub(super) boot_timeout: Option<Secs>,
    #[serde(default)]
    pub(super) cmdline: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: Spanned<String>,
    pub(super) kernel: Option<Spanned<String>>,
    pub(super) arch: Option<Arch>,
    pub(super) cpus: Option<Spanned<u32>>,
    pub(super) memory: Option<MiB>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub(super) script: String,
    pub(super) node: Option<Spanned<String>>,
    pub(super) timeout: Option<Secs>,
    pub(super) iterations: Option<Spanned<u32>>,
    pub(super) parallel: Option<Spanned<u32>>,
    pub(super) shell: Option<String>,
    /// `snapshot`: save the guest after setup and restore it before every iteration after the
    /// first (QMP savevm/loadvm), instead of running iterations on one booted guest.
    pub(super) restore: Option<Spanned<String>>,
    /// The script is a stand-in (`repro new`): nothing runs until it is written.
    pub(super) placeholder: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub(super) title: Option<String>,
    pub(super) title_regex: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) frames: Vec<String>,
    /// Known splats that do not count (neither reproduced nor crashed-differently).
    #[serde(default)]
    pub(super) ignore: Vec<RawIgnore>,
    /// A workload output line containing this means reproduced (a data-integrity failure).
    pub(super) marker: Option<String>,
    /// This workload exit status means reproduced.
    pub(super) exit_status: Option<Spanned<i32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIgnore {
    pub(super) title_regex: Spanned<String>,
    /// Only on this arch; default every arch.
    pub(super) arch: Option<Arch>,
}
