//! The debuggers that open a reproduced crash, as command lines: crash(8) and drgn on a saved
//! vmcore, gdb on a stopped guest's gdbstub. Pure: whether the files exist is the caller's to
//! check.

use crate::arch::Arch;
use std::path::{Path, PathBuf};

/// What a debugger needs of the crashed kernel.
pub struct Kernel<'a> {
    /// The vmlinux with debug info.
    pub vmlinux: &'a Path,
    /// The scenario's out-of-tree modules: (name, `.ko` with debug info).
    pub modules: &'a [(String, PathBuf)],
    /// `vmlinux-gdb.py`, when the kernel was built with its gdb scripts.
    pub gdb_scripts: Option<&'a Path>,
    /// The kernel allocates with SLOB (tinyconfig's choice), whose caches crash(8) cannot read.
    pub slob: bool,
}

/// `crash VMLINUX VMCORE`, then `extra`. Modules are loaded by the commands of
/// [`crash_module_commands`], given to crash as an input file (`-i FILE`). On a SLOB kernel crash
/// starts without its slab cache data (`--no_kmem_cache`), or it stops at `kmem_cache_init`.
pub fn crash(k: &Kernel, vmcore: &Path, input: Option<&Path>, extra: &[String]) -> Vec<String> {
    let mut v = vec!["crash".to_string()];
    if k.slob {
        v.push("--no_kmem_cache".into());
    }
    v.extend([show(k.vmlinux), show(vmcore)]);
    if let Some(i) = input {
        v.extend(["-i".to_string(), show(i)]);
    }
    v.extend(extra.iter().cloned());
    v
}

/// crash's commands that load the out-of-tree modules' debug info.
pub fn crash_module_commands(k: &Kernel) -> String {
    k.modules
        .iter()
        .map(|(name, ko)| format!("mod -s {name} {}\n", ko.display()))
        .collect()
}

/// The crash(8) that Debian packages reads dumps of the host's own arch only.
pub fn crash_reads(host: Option<Arch>, dump: Arch) -> bool {
    host == Some(dump)
}

/// `drgn -c VMCORE -s VMLINUX [-s KO]...`, then `extra` (a script and its arguments).
pub fn drgn(k: &Kernel, vmcore: &Path, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "drgn".to_string(),
        "-c".into(),
        show(vmcore),
        "-s".into(),
        show(k.vmlinux),
    ];
    for (_, ko) in k.modules {
        v.extend(["-s".to_string(), show(ko)]);
    }
    v.extend(extra.iter().cloned());
    v
}

/// gdb on the vmlinux, with the kernel's gdb scripts when it has them, attached to the gdbstub
/// at `socket`, on the thread of the CPU that printed the report (gdb numbers QEMU's vCPUs
/// from 1). A guest of another arch than the host needs Debian's gdb-multiarch.
pub fn gdb(k: &Kernel, socket: &Path, cpu: Option<u32>, guest: Arch) -> Vec<String> {
    let program = if Arch::host() == Some(guest) {
        "gdb"
    } else {
        "gdb-multiarch"
    };
    let mut v = vec![program.to_string(), "-q".into(), show(k.vmlinux)];
    if let Some(s) = k.gdb_scripts {
        v.extend(["-ex".to_string(), format!("source {}", s.display())]);
    }
    v.extend(["-ex".to_string(), format!("target remote {}", socket.display())]);
    if let Some(c) = cpu {
        v.extend(["-ex".to_string(), format!("thread {}", c + 1)]);
    }
    v
}

/// The longest path a unix socket address holds; gdb refuses a longer one.
const SUN_PATH_MAX: usize = 107;

/// [`gdb`] as a shell line. A socket path that gdb cannot take as it is (longer than a socket
/// address holds, or with a `:` or a space, which gdb reads as host:port or a second argument)
/// is given relative to its directory, which the line changes to first.
pub fn gdb_line(k: &Kernel, socket: &Path, cpu: Option<u32>, guest: Arch) -> String {
    let text = socket.to_string_lossy();
    let usable = text.len() <= SUN_PATH_MAX && !text.contains([':', ' ', '\t']);
    match (usable, socket.parent(), socket.file_name()) {
        (false, Some(dir), Some(name)) => format!(
            "cd {} && {}",
            crate::shell::quote(&dir.to_string_lossy()),
            crate::shell::line(&gdb(k, &Path::new(".").join(name), cpu, guest))
        ),
        _ => crate::shell::line(&gdb(k, socket, cpu, guest)),
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel<'a>(modules: &'a [(String, PathBuf)], scripts: Option<&'a Path>) -> Kernel<'a> {
        Kernel {
            vmlinux: Path::new("/k/vmlinux"),
            modules,
            gdb_scripts: scripts,
            slob: false,
        }
    }

    #[test]
    fn crash_and_drgn_get_the_dump_the_vmlinux_and_the_modules() {
        let mods = [("crashmod".to_string(), PathBuf::from("/m/crashmod.ko"))];
        let k = kernel(&mods, None);
        assert_eq!(
            crash(&k, Path::new("/r/vmcore"), Some(Path::new("/t/in")), &[]),
            ["crash", "/k/vmlinux", "/r/vmcore", "-i", "/t/in"]
        );
        assert_eq!(crash_module_commands(&k), "mod -s crashmod /m/crashmod.ko\n");
        let slob = Kernel { slob: true, ..k };
        assert_eq!(
            crash(&slob, Path::new("/r/vmcore"), None, &[]),
            ["crash", "--no_kmem_cache", "/k/vmlinux", "/r/vmcore"]
        );
        assert_eq!(
            drgn(&k, Path::new("/r/vmcore"), &["bt.py".into()]),
            [
                "drgn",
                "-c",
                "/r/vmcore",
                "-s",
                "/k/vmlinux",
                "-s",
                "/m/crashmod.ko",
                "bt.py"
            ]
        );
    }

    #[test]
    fn gdb_sources_the_scripts_attaches_and_picks_the_crashing_cpu() {
        let k = kernel(&[], Some(Path::new("/k/vmlinux-gdb.py")));
        let host = Arch::host().unwrap();
        assert_eq!(
            gdb(&k, Path::new("/r/gdb.sock"), Some(1), host),
            [
                "gdb",
                "-q",
                "/k/vmlinux",
                "-ex",
                "source /k/vmlinux-gdb.py",
                "-ex",
                "target remote /r/gdb.sock",
                "-ex",
                "thread 2"
            ]
        );
        assert_eq!(gdb(&kernel(&[], None), Path::new("/s"), None, host).len(), 5);
        let other = Arch::ALL.into_iter().find(|&a| a != host).unwrap();
        assert_eq!(gdb(&k, Path::new("/s"), None, other)[0], "gdb-multiarch");
    }

    #[test]
    fn a_socket_path_gdb_cannot_take_is_reached_from_its_directory() {
        let k = kernel(&[], None);
        let host = Arch::host().unwrap();
        assert_eq!(
            gdb_line(&k, Path::new("/r/gdb.sock"), None, host),
            "gdb -q /k/vmlinux -ex 'target remote /r/gdb.sock'"
        );
        let deep = format!("/{}/gdb.sock", "d".repeat(120));
        assert_eq!(
            gdb_line(&k, Path::new(&deep), None, host),
            format!(
                "cd /{} && gdb -q /k/vmlinux -ex 'target remote ./gdb.sock'",
                "d".repeat(120)
            )
        );
        assert_eq!(
            gdb_line(&k, Path::new("/runs/a:b c/gdb.sock"), None, host),
            "cd '/runs/a:b c' && gdb -q /k/vmlinux -ex 'target remote ./gdb.sock'"
        );
    }

    #[test]
    fn crash_reads_only_the_hosts_arch() {
        assert!(crash_reads(Some(Arch::X86_64), Arch::X86_64));
        assert!(!crash_reads(Some(Arch::X86_64), Arch::Aarch64));
        assert!(!crash_reads(None, Arch::X86_64));
    }
}
