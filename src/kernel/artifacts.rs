//! What a kernel definition resolves to on disk, for one arch.

use crate::arch::Arch;
use serde::Serialize;
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
}
