//! A scenario drafted from a crash log (`repro new NAME --from-log FILE`): the kernel the log
//! names, pinned to the archive's package, its arch, an `[expect]` from the crash's title and
//! most telling frames, a storage setup guessed from the frames, and a workload the user must
//! write. Pure: the CLI reads the log and the archive and writes the file.

use crate::arch::Arch;
use crate::archive::{self, Package, Spec, Upstream};
use crate::run::verdict::base_name as base;
use repro_oops::Report;

/// What the draft is made from.
pub struct Input<'a> {
    /// The scenario's name (its file stem).
    pub name: &'a str,
    /// The log's file name, for the description.
    pub log_name: &'a str,
    /// The log as read (for the boot banner when the report names no release).
    pub log: &'a str,
    /// The log's reports; the first is the one the scenario expects.
    pub reports: &'a [Report],
    /// `--kernel`: this kernel instead of the log's.
    pub kernel: Option<&'a str>,
    /// `--arch`: this arch instead of the log's.
    pub arch: Option<Arch>,
    /// The archive's cloud kernels.
    pub archive: &'a [Package],
    pub image: &'a str,
}

/// A drafted scenario.
#[derive(Debug)]
pub struct Draft {
    pub toml: String,
    pub kernel: String,
    pub arch: Arch,
    /// What was guessed, one line each, for the user.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{log}: no crash report in it (a console log, dmesg, crash(8) `log` output or a pasted oops)")]
    NoCrash { log: String },
    #[error("{log}: cannot tell the arch from the log; pass --arch x86_64 or --arch aarch64")]
    NoArch { log: String },
    #[error("{log}: the log names no kernel release; pass --kernel (a kernel definition, or `debian:ABI` from `repro kernel list --available`)")]
    NoRelease { log: String },
    #[error("{log}: the log's kernel `{release}` is not in the Debian archive; the closest cloud kernels it has: {closest}. Pass --kernel (one of those, or a source kernel such as linux-6.1) to write the scenario on another kernel")]
    NotInArchive {
        log: String,
        release: String,
        closest: String,
    },
}

/// Drafts the scenario for `input`'s first report.
pub fn draft(input: &Input) -> Result<Draft, Error> {
    let log = input.log_name.to_string();
    let report = input.reports.first().ok_or(Error::NoCrash { log: log.clone() })?;
    let release = report.release.clone().or_else(|| banner_release(input.log));
    let arch = input
        .arch
        .or_else(|| arch_of(release.as_deref(), report))
        .ok_or(Error::NoArch { log: log.clone() })?;
    let mut notes = Vec::new();
    let kernel = kernel_for(input, release.as_deref(), arch, &mut notes)?;
    let frames = telling_frames(report);
    let storage = guess_storage(report);
    notes.extend(
        storage
            .iter()
            .map(|s| format!("storage: {} (frames {})", s.what(), s.frames.join(", "))),
    );
    if storage.is_empty() {
        notes.push("storage: none guessed (no NFS, XFS, ext4, DAX or dm frames)".into());
    }
    if report.corrupted {
        notes.push("the report is marked corrupted: check its title and frames against the log".into());
    }
    let toml = render(input, report, &release, arch, &kernel, &frames, &storage);
    Ok(Draft {
        toml,
        kernel,
        arch,
        notes,
    })
}

/// `Linux version 6.1.0-50-cloud-amd64 (...)` from the boot banner.
fn banner_release(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let rest = &l[l.find("Linux version ")? + "Linux version ".len()..];
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// The arch from the release's suffix, else from what only one arch prints: x86's `RIP:`,
/// `<TASK>` and syscall entry frames, arm64's `pc : ` and exception-level frames.
fn arch_of(release: Option<&str>, report: &Report) -> Option<Arch> {
    let by_release = release.and_then(|r| {
        let tail = r.rsplit(['-', '.']).next().unwrap_or_default();
        tail.parse::<Arch>().ok()
    });
    let text = &report.text;
    let frame = |prefixes: &[&str]| {
        report
            .frames
            .iter()
            .any(|f| prefixes.iter().any(|p| f.function.starts_with(p)))
    };
    let x86 = ["RIP: ", "<TASK>", "Hardware name: QEMU Standard PC"]
        .iter()
        .any(|m| text.contains(m))
        || frame(&[
            "entry_SYSCALL_64",
            "do_syscall_64",
            "asm_exc_",
            "asm_sysvec_",
            "x64_sys_call",
        ]);
    let arm64 = [
        "pc : ",
        "lr : ",
        "Hardware name: linux,dummy-virt",
        "QEMU KVM Virtual Machine",
    ]
    .iter()
    .any(|m| text.contains(m))
        || frame(&["el0_", "el0t_", "el1_", "el1h_", "do_el0_svc", "invoke_syscall"]);
    by_release.or(match (x86, arm64) {
        (true, false) => Some(Arch::X86_64),
        (false, true) => Some(Arch::Aarch64),
        _ => None,
    })
}

/// The kernel the scenario boots: `--kernel`, else the archive's package for the log's Debian
/// release.
fn kernel_for(input: &Input, release: Option<&str>, arch: Arch, notes: &mut Vec<String>) -> Result<String, Error> {
    let log = input.log_name.to_string();
    if let Some(k) = input.kernel {
        notes.push(format!(
            "kernel: {k} (--kernel; the log's is {})",
            release.unwrap_or("not named")
        ));
        return Ok(k.to_string());
    }
    let release = release.ok_or(Error::NoRelease { log: log.clone() })?;
    let spec = Spec::of_release(release);
    let found = spec.as_ref().and_then(|s| archive::select(s, input.archive, arch).ok());
    if let Some(p) = found {
        let cloud = release.ends_with("-cloud-amd64") || release.ends_with("-cloud-arm64");
        notes.push(if cloud {
            format!("kernel: {} ({} {}), the log's own", p.name, p.package, p.version)
        } else {
            format!(
                "kernel: {} ({} {}): the cloud flavour of the log's {release} (same source and ABI)",
                p.name, p.package, p.version
            )
        });
        return Ok(p.name.clone());
    }
    let near = spec.unwrap_or_else(|| Spec::Upstream(Upstream::leading(release).unwrap_or(Upstream(0, 0, 0))));
    let closest = archive::closest(&near, input.archive, arch);
    Err(Error::NotInArchive {
        log,
        release: release.to_string(),
        closest: archive::closest_text(&closest),
    })
}

/// Frames every crash of a kind shares: entry and syscall glue, the fault and warning
/// machinery, workqueue and softirq plumbing, and the lock primitives. They say how the kernel
/// got there, not which bug it is.
const GENERIC: &[&str] = &[
    "entry_SYSCALL_64",
    "do_syscall_64",
    "x64_sys_call",
    "__x64_sys_",
    "__ia32_sys_",
    "__arm64_sys_",
    "__do_sys_",
    "__se_sys_",
    "ksys_",
    "invoke_syscall",
    "el0_",
    "el0t_",
    "el1_",
    "el1h_",
    "do_el0_svc",
    "ret_from_fork",
    "kthread",
    "worker_thread",
    "process_one_work",
    "asm_exc_",
    "exc_",
    "asm_sysvec_",
    "sysvec_",
    "handle_bug",
    "report_bug",
    "__warn",
    "warn_slowpath",
    "panic",
    "dump_stack",
    "dump_stack_",
    "show_stack",
    "_printk",
    "printk",
    "do_trap",
    "do_error_trap",
    "die",
    "__die",
    "oops_end",
    "page_fault_oops",
    "do_user_addr_fault",
    "do_page_fault",
    "no_context",
    "__bad_area_nosemaphore",
    "bad_area_nosemaphore",
    "do_mem_abort",
    "do_translation_fault",
    "__do_kernel_fault",
    "die_kernel_fault",
    "__do_softirq",
    "do_softirq",
    "irq_exit",
    "call_timer_fn",
    "_raw_spin_lock",
    "do_raw_spin_lock",
    "queued_spin_lock_slowpath",
    "native_queued_spin_lock_slowpath",
    "mutex_lock",
    "down_read",
    "down_write",
    "vfs_",
    "new_sync_",
];

fn is_generic(f: &str) -> bool {
    GENERIC
        .iter()
        .any(|g| if g.ends_with('_') { f.starts_with(g) } else { f == *g })
}

/// Up to three frames that name this crash: the title's function first, then the next
/// distinct frames of the trace that are not [`GENERIC`] (reliable ones, unless the unwinder
/// marked every frame `?`).
pub fn telling_frames(report: &Report) -> Vec<String> {
    let reliable: Vec<&str> = report
        .frames
        .iter()
        .filter(|f| f.reliable)
        .map(|f| base(&f.function))
        .collect();
    let trace: Vec<&str> = if reliable.is_empty() {
        report.frames.iter().map(|f| base(&f.function)).collect()
    } else {
        reliable
    };
    let guilty = report.title.rsplit_once(" in ").map(|(_, f)| base(f));
    let mut out: Vec<String> = Vec::new();
    let known = |f: &str| trace.contains(&f) || report.faulting_function.as_deref().map(base) == Some(f);
    if let Some(g) = guilty.filter(|g| known(g) && !g.contains(' ')) {
        out.push(g.to_string());
    }
    for f in trace {
        if out.len() >= 3 {
            break;
        }
        if !is_generic(f) && !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    out
}

/// One storage piece the frames point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    pub kind: Storage,
    /// The frames that point at it.
    pub frames: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    NfsClient,
    NfsServer,
    Xfs,
    Ext4,
    Dax,
    Dm,
}

impl Guess {
    fn what(&self) -> &'static str {
        match self.kind {
            Storage::NfsClient => "an NFS client (with its loopback server)",
            Storage::NfsServer => "an NFS server (with a loopback client)",
            Storage::Xfs => "XFS on a virtio disk",
            Storage::Ext4 => "ext4 on a virtio disk",
            Storage::Dax => "XFS with DAX on emulated pmem",
            Storage::Dm => "a device-mapper target over a disk",
        }
    }
}

/// Function prefixes and the storage they point at.
const STORAGE: &[(&str, Storage)] = &[
    ("nfsd", Storage::NfsServer),
    ("svc_", Storage::NfsServer),
    ("nfs", Storage::NfsClient),
    ("rpc_", Storage::NfsClient),
    ("xprt_", Storage::NfsClient),
    ("xs_", Storage::NfsClient),
    ("dax_", Storage::Dax),
    ("xfs_", Storage::Xfs),
    ("iomap_", Storage::Xfs),
    ("ext4_", Storage::Ext4),
    ("jbd2_", Storage::Ext4),
    ("dm_", Storage::Dm),
];

/// The storage the report's frames point at, in [`STORAGE`] order, each with its frames.
pub fn guess_storage(report: &Report) -> Vec<Guess> {
    let mut fns: Vec<&str> = report.faulting_function.iter().map(|f| base(f)).collect();
    fns.extend(report.frames.iter().map(|f| base(&f.function)));
    let mut out: Vec<Guess> = Vec::new();
    for f in fns {
        let Some((_, kind)) = STORAGE.iter().find(|(p, _)| f.starts_with(p)) else {
            continue;
        };
        match out.iter_mut().find(|g| g.kind == *kind) {
            Some(g) if !g.frames.iter().any(|x| x == f) => g.frames.push(f.to_string()),
            Some(_) => {}
            None => out.push(Guess {
                kind: *kind,
                frames: vec![f.to_string()],
            }),
        }
    }
    // iomap frames under an ext4 crash are ext4's.
    if out.iter().any(|g| g.kind == Storage::Ext4) && !report.frames.iter().any(|f| f.function.starts_with("xfs_")) {
        out.retain(|g| g.kind != Storage::Xfs);
    }
    out.sort_by_key(|g| STORAGE.iter().position(|(_, k)| *k == g.kind));
    out
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn render(
    input: &Input,
    report: &Report,
    release: &Option<String>,
    arch: Arch,
    kernel: &str,
    frames: &[String],
    storage: &[Guess],
) -> String {
    let has = |k: Storage| storage.iter().any(|g| g.kind == k);
    let mut t = String::new();
    let file = input.log_name.rsplit('/').next().unwrap_or(input.log_name);
    t.push_str(&format!(
        "summary = {}\n",
        q(&format!("{} (from {file})", report.title))
    ));
    t.push_str(&format!(
        "description = \"\"\"\nDrafted by `repro new` from {}. The crash as the log shows it:\n\n{}\n\"\"\"\n",
        input.log_name,
        excerpt(report).replace('\\', "\\\\").replace("\"\"\"", "\\\"\"\"")
    ));
    t.push_str(&format!(
        "kernel = {}\narch = {}\nimage = {}\n\n",
        q(kernel),
        q(arch.as_str()),
        q(input.image)
    ));
    t.push_str("[original]\n");
    t.push_str(&format!(
        "kernel = {}\n",
        q(release.as_deref().unwrap_or("not named in the log"))
    ));
    t.push_str(&format!("arch = {}\n\n", q(arch.as_str())));
    t.push_str(&format!(
        "[vm]\ncpus = 2\nmemory = {}\n\n",
        q(if has(Storage::Dax) { "2G" } else { "1G" })
    ));
    t.push_str(&render_storage(storage));
    t.push_str(&format!(
        "[workload]\n# `repro new` cannot know what makes this crash happen. Replace the script with the steps\n# that do, then delete `placeholder`: until then `repro run` stops with an error, never a\n# verdict.\nplaceholder = true\ntimeout = \"300s\"\nscript = \"\"\"\necho 'placeholder workload: write the steps in scenarios/{}.toml' >&2\nexit 1\n\"\"\"\n\n",
        input.name
    ));
    t.push_str("[expect]\n# The crash's title and its most telling frames, from the log.\n");
    t.push_str(&format!("title = {}\n", q(&report.title)));
    if !frames.is_empty() {
        let list: Vec<String> = frames.iter().map(|f| q(f)).collect();
        t.push_str(&format!("frames = [{}]\n", list.join(", ")));
    }
    t
}

/// The report's first lines (its header and the start of its trace), without the register
/// dump and code bytes.
fn excerpt(report: &Report) -> String {
    let lines: Vec<&str> = report.text.lines().filter(|l| !is_register_line(l)).collect();
    let mut out: Vec<&str> = lines.iter().take(24).copied().collect();
    if lines.len() > out.len() {
        out.push("...");
    }
    out.join("\n")
}

/// `RAX: 0000…`, `x29: ffff…`, `Code: 48 8b …`: a register dump or code bytes (the faulting
/// `RIP:` line is kept).
fn is_register_line(l: &str) -> bool {
    let mut t = l.split_whitespace();
    let (Some(first), Some(second)) = (t.next(), t.next()) else {
        return false;
    };
    if first == "Code:" {
        return true;
    }
    first != "RIP:"
        && first.len() <= 6
        && first.ends_with(':')
        && second.len() >= 4
        && second.chars().take(4).all(|c| c.is_ascii_hexdigit())
}

fn render_storage(storage: &[Guess]) -> String {
    let has = |k: Storage| storage.iter().any(|g| g.kind == k);
    let why = |k: Storage| {
        storage
            .iter()
            .find(|g| g.kind == k)
            .map(|g| format!("# Guessed from {}: {}.\n", g.frames.join(", "), g.what()))
            .unwrap_or_default()
    };
    let mut t = String::new();
    let local_fs = if has(Storage::Xfs) {
        Some("xfs")
    } else if has(Storage::Ext4) {
        Some("ext4")
    } else {
        None
    };
    let nfs = has(Storage::NfsClient) || has(Storage::NfsServer);
    if nfs {
        t.push_str(&why(Storage::NfsClient));
        t.push_str(&why(Storage::NfsServer));
        t.push_str("# The guest exports /srv/nfs and mounts it at /mnt/nfs over 127.0.0.1.\n[nfs]\n");
        match local_fs {
            Some(fs) => t.push_str(&format!(
                "{}fs = {}\nsize = \"400M\"\n",
                why(Storage::Xfs) + &why(Storage::Ext4),
                q(fs)
            )),
            None => t.push_str("fs = \"tmpfs\"\nsize = \"64M\"\n"),
        }
        t.push_str("versions = [\"4.1\"]\n\n[[nfs.clients]]\nversion = \"4.1\"\n\n");
    }
    if has(Storage::Dax) {
        t.push_str(&why(Storage::Dax));
        t.push_str("# 1026M, not 1G: after the label the region must be a whole multiple of its alignment.\n");
        t.push_str("[[pmem]]\nname = \"pm\"\nsize = \"1026M\"\n\n");
        t.push_str("[[filesystems]]\ndevice = \"pm\"\nfs = \"xfs\"\nmkfs_options = \"-m reflink=0\"\nmountpoint = \"/mnt/dax\"\nmount_options = \"dax=always\"\n\n");
    }
    let disk_fs = local_fs.filter(|_| !nfs);
    if disk_fs.is_some() || has(Storage::Dm) {
        t.push_str("[[disks]]\nname = \"data\"\nsize = \"1G\"\n\n");
    }
    let mut device = "data";
    if has(Storage::Dm) {
        t.push_str(&why(Storage::Dm));
        t.push_str("# linear passes I/O through; see the README for flakey and error tables.\n");
        t.push_str("[[dm]]\nname = \"dm0\"\ntarget = \"linear\"\ndevice = \"data\"\n\n");
        device = "dm0";
    }
    if let Some(fs) = disk_fs.or(has(Storage::Dm).then_some("xfs")) {
        t.push_str(&why(if fs == "xfs" { Storage::Xfs } else { Storage::Ext4 }));
        t.push_str(&format!(
            "[[filesystems]]\ndevice = {}\nfs = {}\nmountpoint = {}\n\n",
            q(device),
            q(fs),
            q(&format!("/mnt/{fs}"))
        ));
    }
    t
}

#[cfg(test)]
mod tests;
