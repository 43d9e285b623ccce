//! What a kernel definition resolves to on disk, for one arch.

use crate::arch::Arch;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a kernel definition resolves to on disk, for one arch.
#[derive(Debug, Clone, Serialize)]
pub struct Artifacts {
    pub name: String,
    pub arch: Arch,
    /// `uname -r`, when known.
    pub release: Option<String>,
    /// Human description of where it came from (package and version, or path).
    pub origin: String,
    pub image: PathBuf,
    /// `lib/modules/<release>` with `modules.dep`.
    pub modules: Option<PathBuf>,
    pub vmlinux: Option<PathBuf>,
    /// The kernel's `vmlinux-gdb.py` (source kernels built with full debug info), beside its
    /// `scripts/gdb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdb_scripts: Option<PathBuf>,
    /// A stable id of these exact artifacts, for cache keys of derived layers.
    pub id: String,
    /// Where the headers for out-of-tree modules come from, when there are any.
    #[serde(skip)]
    pub headers: Option<Headers>,
}

/// The source of a kernel's module build tree (`make -C <tree> M=<module>`).
#[derive(Debug, Clone)]
pub enum Headers {
    /// Debian's `linux-headers-<release>` for this image package and version.
    Debian { image_package: String, version: String },
    /// A source kernel's own module build tree, exported from its build (`kernel::headers`).
    Tree(PathBuf),
}

/// How much debug information a kernel's artifacts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DebugInfo {
    /// Source kernels: reduced DWARF (file:line and inlined frames for reports, a quick build).
    /// Debian kernels: none (symbols from the console's own names).
    #[default]
    Default,
    /// Source kernels: full DWARF and the kernel's gdb scripts (another recipe, so another
    /// cached build). Debian kernels: the vmlinux of the matching `-dbg` package, fetched once.
    /// What crash(8), drgn and gdb need.
    Full,
}
