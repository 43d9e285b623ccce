//! `repro debug RUN_DIR`: opens a finished run's vmcore in crash(8) or drgn with the kernel's
//! vmlinux and the scenario's modules, or prints that command. What is missing (no dump, no
//! debug info, no tool) is named with how to get it.

use super::exit::{Done, Failure};
use crate::arch::Arch;
use crate::debugger;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct DebugArgs {
    /// A finished run's directory (with its report.json).
    pub run_dir: PathBuf,
    /// Open the vmcore in crash(8) [the default].
    #[arg(long, conflicts_with = "drgn")]
    pub crash: bool,
    /// Open the vmcore in drgn.
    #[arg(long)]
    pub drgn: bool,
    /// Print the command line instead of running it.
    #[arg(long)]
    pub print: bool,
    /// The node whose dump to open, in a multi-node run [default: the first with a vmcore].
    #[arg(long)]
    pub node: Option<String>,
    /// Passed on to the tool after repro's arguments (a drgn script and its arguments, crash
    /// options).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// What the run left for a debugger, read from its report.
struct Pieces {
    node: String,
    arch: Arch,
    kernel: String,
    vmcore: PathBuf,
    vmlinux: PathBuf,
    modules: Vec<(String, PathBuf)>,
}

pub fn debug(a: DebugArgs) -> Result<Done, Failure> {
    let pieces = pieces(&a.run_dir, a.node.as_deref())?;
    let modules = &pieces.modules;
    let config = std::fs::read_to_string(pieces.vmlinux.with_file_name("config")).unwrap_or_default();
    let set = |option: &str| config.lines().any(|l| l == format!("CONFIG_{option}=y"));
    let kernel = debugger::Kernel {
        vmlinux: &pieces.vmlinux,
        modules,
        gdb_scripts: None,
        slob: set("SLOB"),
    };
    if set("DEBUG_INFO_REDUCED") {
        eprintln!(
            "warning: kernel `{}` has reduced DWARF: crash(8) refuses the dump and drgn lacks the types it needs; \
             `repro run ... --debug-info full` boots it with full DWARF",
            pieces.kernel
        );
    }
    if a.drgn {
        let mut argv = debugger::drgn(&kernel, &pieces.vmcore, &a.args);
        argv[0] = drgn_program();
        return show_or_exec(&argv, a.print);
    }
    let commands = debugger::crash_module_commands(&kernel);
    let readable = debugger::crash_reads(Arch::host(), pieces.arch);
    let refused = format!(
        "node `{}` is {}, and Debian's crash(8) reads dumps of this host's arch only: use --drgn",
        pieces.node, pieces.arch
    );
    if !readable && !a.print {
        return Err(Failure::Usage(refused));
    }
    if a.print {
        if !readable {
            println!("# {refused}");
        }
        println!(
            "{}",
            crate::shell::line(&debugger::crash(&kernel, &pieces.vmcore, None, &a.args))
        );
        for c in commands.lines() {
            println!("# then, for the module's symbols: {c}");
        }
        return Ok(Done::Ok);
    }
    let input = (!commands.is_empty()).then(|| crash_input(&commands));
    let input = input
        .transpose()
        .map_err(|e| Failure::Usage(format!("crash's module commands: {e}")))?;
    let argv = debugger::crash(&kernel, &pieces.vmcore, input.as_deref(), &a.args);
    show_or_exec(&argv, false)
}

/// Prints the command line, or becomes the tool.
fn show_or_exec(argv: &[String], print: bool) -> Result<Done, Failure> {
    if print {
        println!("{}", crate::shell::line(argv));
        return Ok(Done::Ok);
    }
    Err(exec(argv))
}

/// The dump, vmlinux and modules of the run in `dir` (of `node`, or the first node with a dump).
fn pieces(dir: &Path, node: Option<&str>) -> Result<Pieces, Failure> {
    let path = dir.join(crate::run::REPORT_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::Usage(format!(
            "{}: {e} (is {} a run directory?)",
            path.display(),
            dir.display()
        ))
    })?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{}: not a run report: {e}", path.display())))?;
    let nodes = report["nodes"].as_array().cloned().unwrap_or_default();
    let vmcores: Vec<PathBuf> = report["vmcores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(PathBuf::from))
        .collect();
    // A single node's dump is in the run directory; each node of several has its own.
    let node_of = |v: &Path| {
        let parent = v
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        nodes
            .iter()
            .find(|n| nodes.len() == 1 || parent.as_deref() == n["name"].as_str())
            .cloned()
    };
    let found = vmcores
        .iter()
        .filter_map(|v| Some((v.clone(), node_of(v)?)))
        .find(|(_, n)| node.is_none_or(|want| n["name"].as_str() == Some(want)));
    let verdict = report["verdict"].as_str().unwrap_or("?");
    let Some((vmcore, n)) = found else {
        let scenario = report["scenario"].as_str().unwrap_or("SCENARIO");
        return Err(Failure::Usage(match node {
            Some(want) if !nodes.iter().any(|n| n["name"].as_str() == Some(want)) => {
                format!("the run has no node `{want}`")
            }
            _ => format!(
                "{} has no vmcore{} (verdict: {verdict}); a crash leaves one with `repro run {scenario} --vmcore --debug-info full`",
                dir.display(),
                node.map(|n| format!(" of node `{n}`")).unwrap_or_default()
            ),
        }));
    };
    let name = n["name"].as_str().unwrap_or("").to_string();
    if !vmcore.is_file() {
        return Err(Failure::Usage(format!("{}: the vmcore is gone", vmcore.display())));
    }
    let arch: Arch = serde_json::from_value(n["arch"].clone())
        .map_err(|_| Failure::Usage(format!("{}: node `{name}` has no arch", path.display())))?;
    let k = &n["kernel"];
    let kernel = k["name"].as_str().unwrap_or("?").to_string();
    let rebuild = format!("`repro kernel build {kernel} --arch {arch} --debug-info full` makes one");
    let vmlinux = match k["vmlinux"].as_str() {
        Some(v) if Path::new(v).is_file() => PathBuf::from(v),
        Some(v) => {
            return Err(Failure::Usage(format!(
                "kernel `{kernel}`: its vmlinux {v} is no longer in the cache; {rebuild}"
            )))
        }
        None => {
            return Err(Failure::Usage(format!(
                "kernel `{kernel}` has no vmlinux with debug info (a Debian kernel's is in its -dbg package); \
                 run again with --debug-info full, or {rebuild}"
            )))
        }
    };
    let modules = k["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["name"].as_str()?.to_string(), PathBuf::from(m["ko"].as_str()?))))
        .filter(|(_, ko)| ko.is_file())
        .collect();
    Ok(Pieces {
        node: name,
        arch,
        kernel,
        vmcore,
        vmlinux,
        modules,
    })
}

/// The module commands as a file crash reads with `-i`: an unlinked temporary file, reached
/// as `/dev/fd/N` by the tool this process becomes, so nothing is left behind.
fn crash_input(commands: &str) -> std::io::Result<PathBuf> {
    use std::io::{Seek, Write};
    use std::os::fd::IntoRawFd;
    let mut f = tempfile::tempfile()?;
    f.write_all(commands.as_bytes())?;
    f.rewind()?;
    let fd = f.into_raw_fd();
    // SAFETY: fcntl on a descriptor this process owns; clearing FD_CLOEXEC keeps it across exec.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(PathBuf::from(format!("/dev/fd/{fd}")))
}

/// The drgn `./setup` installs from PyPI (Debian's 0.0.22 picks the wrong crashed thread of a
/// QEMU dump), else the one on PATH.
fn drgn_program() -> String {
    let venv = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".local/share/repro/drgn-venv/bin/drgn"))
        .filter(|p| p.is_file());
    venv.map_or("drgn".to_string(), |p| p.display().to_string())
}

/// Becomes the tool (its terminal, its Ctrl-C, its exit status). Returns only if that failed.
fn exec(argv: &[String]) -> Failure {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    let hint = match argv[0].as_str() {
        "crash" => " (apt-get install crash; ./setup installs it)",
        "drgn" => " (pip install drgn, or apt-get install python3-drgn; ./setup installs it)",
        _ => "",
    };
    Failure::Usage(format!("cannot run `{}`: {err}{hint}", argv[0]))
}
