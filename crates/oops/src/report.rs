//! The public data types: crash kinds, stack frames and reports.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What sort of crash a report is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
    /// x86 `BUG: kernel NULL pointer dereference` / arm64 `Unable to handle kernel NULL pointer dereference`.
    NullDeref,
    /// Page faults on a non-NULL kernel address.
    PagingFault,
    /// x86 `general protection fault`.
    GeneralProtection,
    /// `BUG: KASAN: *use-after-free`.
    KasanUseAfterFree,
    /// `BUG: KASAN: *out-of-bounds`.
    KasanOutOfBounds,
    /// Any other KASAN report.
    Kasan,
    /// `BUG: KFENCE: ...`.
    Kfence,
    /// `BUG: KCSAN: ...` (data races).
    Kcsan,
    /// `BUG: KMSAN: ...` (uses of uninitialized memory, infoleaks).
    Kmsan,
    /// kmemleak's `unreferenced object` (syzbot's `BUG: memory leak`).
    MemoryLeak,
    /// `UBSAN: ...`.
    Ubsan,
    /// `WARNING: CPU: ... at ...` (WARN_ON and friends).
    Warning,
    /// `kernel BUG at ...` (BUG_ON).
    Bug,
    /// A standalone `Kernel panic - not syncing: ...`.
    Panic,
    /// `INFO: task ... blocked for more than ... seconds`.
    HungTask,
    /// `INFO: rcu_* detected stall(s)`.
    RcuStall,
    /// `watchdog: BUG: soft lockup`.
    SoftLockup,
    /// Lockdep splats (possible deadlock, inconsistent lock state, ...).
    Lockdep,
    /// Anything else (other `BUG:` lines, bare `Oops:` / `Internal error:`, ...).
    Oops,
}

/// The kebab-case name of a kind, as used in JSON (`null-deref`, `kasan-use-after-free`, ...).
pub fn kind_name(kind: &CrashKind) -> &'static str {
    match kind {
        CrashKind::NullDeref => "null-deref",
        CrashKind::PagingFault => "paging-fault",
        CrashKind::GeneralProtection => "general-protection",
        CrashKind::KasanUseAfterFree => "kasan-use-after-free",
        CrashKind::KasanOutOfBounds => "kasan-out-of-bounds",
        CrashKind::Kasan => "kasan",
        CrashKind::Kfence => "kfence",
        CrashKind::Kcsan => "kcsan",
        CrashKind::Kmsan => "kmsan",
        CrashKind::MemoryLeak => "memory-leak",
        CrashKind::Ubsan => "ubsan",
        CrashKind::Warning => "warning",
        CrashKind::Bug => "bug",
        CrashKind::Panic => "panic",
        CrashKind::HungTask => "hung-task",
        CrashKind::RcuStall => "rcu-stall",
        CrashKind::SoftLockup => "soft-lockup",
        CrashKind::Lockdep => "lockdep",
        CrashKind::Oops => "oops",
    }
}

impl fmt::Display for CrashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(kind_name(self))
    }
}

/// One stack frame, e.g. ` ? nfs_updatepage+0x1a/0x40 [nfs]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Symbol name as printed (compiler suffixes such as `.isra.0` kept).
    pub function: String,
    /// Offset into the function (the `0x1a` of `+0x1a/0x40`).
    pub offset: Option<u64>,
    /// Size of the function (the `0x40` of `+0x1a/0x40`).
    pub size: Option<u64>,
    /// Module name from a trailing `[mod]`.
    pub module: Option<String>,
    /// False for frames the unwinder printed with `?`.
    pub reliable: bool,
    /// Source locations from debug info, when symbolized: the innermost (inlined) function
    /// first, the frame's own function last. Empty without debug info.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<SourceLoc>,
}

/// One function at a source location, from DWARF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLoc {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Inlined into the next entry.
    pub inlined: bool,
}

/// One crash found in the console output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// syzbot-style title, e.g. `BUG: kernel NULL pointer dereference in nfs_updatepage`.
    pub title: String,
    /// The crash kind (serialized as `type`).
    #[serde(rename = "type")]
    pub kind: CrashKind,
    /// Byte offset of the first byte of the report's first line, counted over all input.
    pub start: usize,
    /// Byte offset just past the last byte of the report's last line (its line terminator excluded).
    pub end: usize,
    /// The report's lines, cleaned (timestamps and caller ids stripped, CR removed), joined by `\n`.
    pub text: String,
    /// The primary call trace, innermost frame first.
    pub frames: Vec<Frame>,
    /// Function of the faulting instruction (`RIP:` / `pc :`, or `lr :` when `pc` is useless).
    pub faulting_function: Option<String>,
    /// The faulting instruction as a frame (`do_raw_spin_lock+0x7/0x15`), for symbolization.
    #[serde(default)]
    pub faulting_frame: Option<Frame>,
    /// Kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub release: Option<String>,
    /// Taint flags as printed (e.g. `G        W`), or `Not tainted`.
    pub taint: Option<String>,
    /// Command name of the current (or, for hung tasks, the blocked) task.
    pub comm: Option<String>,
    /// Its PID.
    pub pid: Option<u32>,
    /// The CPU that printed the report (`CPU: 1 PID: ...`): the thread to select in a debugger.
    #[serde(default)]
    pub cpu: Option<u32>,
    /// The report was truncated (input ended before its natural end, or it hit the line cap)
    /// or was interleaved with other output so that its frames may be unreliable.
    pub corrupted: bool,
}
