//! The command line: the only place that prints or drives indicatif. Each command parses its
//! arguments, calls the library, prints, and ends in a [`Done`] or a [`Failure`], which
//! [`exit::code`] maps to the exit code in one place.

mod bisect;
mod build;
mod debug;
mod defs;
mod exit;
mod load;
mod new;
mod nightly;
mod progress;
mod run;
mod signals;
mod ui;
mod verify;

use crate::arch::Arch;
use crate::def::load::Roots;
use crate::process;
use clap::{Parser, Subcommand};
use exit::{Done, Failure};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    version,
    about = "Reproduce kernel crashes in QEMU guests, on real kernels and real filesystems"
)]
struct Cli {
    /// The project directory holding scenarios/, kernels/ and images/ [default: the current
    /// directory if it has scenarios/, else the checkout this binary was built in]
    #[arg(long, global = true, env = "REPRO_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Boot the scenario's guests, run its workload and report a verdict.
    Run(run::RunArgs),
    /// Run a scenario N times on its kernel and N times with a patch set applied, and conclude
    /// whether the set fixes it. Exits 0 fixed, 1 not fixed, 2 base does not reproduce, 125
    /// inconclusive.
    Verify(verify::VerifyArgs),
    /// Find the commit that introduced (or with --fix, fixed) the scenario's crash: builds and
    /// runs candidates chosen as git bisect does, flake-aware. Exits 0 found, 2 ambiguous
    /// (skipped commits), 125 stopped, 130 interrupted.
    Bisect(bisect::BisectArgs),
    /// Run a scenario × kernel × arch matrix with parallel guests, compare with earlier
    /// nightlies and write nightly.json, junit.xml and report.html. Exits 1 when a cell newly
    /// crashes, 125 when one could not be tested, else 0.
    Nightly(nightly::NightlyArgs),
    /// Open a finished run's vmcore in crash(8) (default) or drgn, with the kernel's vmlinux
    /// and the scenario's modules; --print shows the command only.
    Debug(debug::DebugArgs),
    /// Nightly reports.
    Report {
        #[command(subcommand)]
        command: ReportCmd,
    },
    /// Draft scenarios/NAME.toml from a crash log: the log's kernel pinned to the Debian
    /// archive's package, its arch, the crash's title and frames as `[expect]`, a storage
    /// setup guessed from the frames, and a placeholder workload for you to write.
    New(new::NewArgs),
    /// Validate scenarios without booting anything (all of them if none are named).
    Check { scenarios: Vec<String> },
    /// List scenarios with their summaries.
    List,
    /// Kernel definitions.
    Kernel {
        #[command(subcommand)]
        command: KernelCmd,
    },
    /// Guest images.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// Crash reports in saved console output.
    Oops {
        #[command(subcommand)]
        command: OopsCmd,
    },
    /// Fetch kernels and build images for scenarios, without booting (warms the cache).
    Prepare {
        scenarios: Vec<String>,
        /// Prepare for these arches instead of the scenarios' own.
        #[arg(long = "arch")]
        arches: Vec<Arch>,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCmd {
    /// Join the nightly directories of several shards into one report.
    Merge {
        /// Nightly directories (each with a nightly.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write an earlier nightly in KernelCI's KCIDB I/O JSON (schema 5.3).
    Kcidb {
        /// The nightly directory (with its nightly.json and cells/).
        dir: PathBuf,
        /// Known issues, for the links and notes of their KCIDB issues [default: none].
        #[arg(long)]
        known: Option<PathBuf>,
        /// Where to write it [default: stdout].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum KernelCmd {
    /// List kernel definitions; with --available, the Debian cloud kernels the archive has
    /// (each usable as `--kernel debian:ABI` without a definition file).
    List {
        #[arg(long)]
        json: bool,
        /// The archive's cloud kernels: name, upstream version, Debian version, and whether the
        /// -dbg and headers packages exist.
        #[arg(long)]
        available: bool,
        /// With --available: this arch only [default: both].
        #[arg(long, requires = "available")]
        arch: Option<Arch>,
    },
    /// Build a source kernel (cached: a second request is a lookup); other kinds are fetched.
    Build {
        name: String,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// With --set: apply this scenario's patch set.
        #[arg(long, requires = "set")]
        scenario: Option<String>,
        #[arg(long, requires = "scenario")]
        set: Option<String>,
        /// `full`: full DWARF and the gdb scripts (source kernels, another cached build), or
        /// the `-dbg` package's vmlinux (Debian kernels) [default: the definition's]
        #[arg(long, value_enum)]
        debug_info: Option<crate::kernel::DebugInfo>,
        #[arg(long)]
        json: bool,
    },
    /// Fetch (or locate) a kernel's artifacts for an arch.
    Fetch {
        name: String,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// As for `kernel build`.
        #[arg(long, value_enum)]
        debug_info: Option<crate::kernel::DebugInfo>,
    },
}

#[derive(Subcommand, Debug)]
enum OopsCmd {
    /// Parse a console log, dmesg or crash(8) `log` output. Exits 1 if it holds a crash, 0 if not.
    Parse {
        file: PathBuf,
        /// Print a JSON array of reports.
        #[arg(long)]
        json: bool,
        /// Symbolize frames (file:line, inlined functions) with this vmlinux's debug info.
        #[arg(long)]
        vmlinux: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Build an image (cached).
    Build {
        name: String,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
    },
}

/// Parses arguments, runs, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("REPRO_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if only_prints(&cli.command) {
        // `repro oops parse LOG | head`: a reader that went away ends the command quietly, as
        // it ends cat or grep, instead of println! panicking on the broken pipe. Not for the
        // commands that drive guests: their SSH and QMP sockets must get EPIPE, not a signal.
        // SAFETY: setting a signal's disposition before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let root = relative_to_cwd(find_root(cli.root.as_deref()));
    let roots = Roots::at(&root);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::CANNOT_TEST;
        }
    };
    // A panic is a bug in repro, never a verdict: it must not exit 101 (or anything below 128),
    // which `git bisect run` would read as "bad".
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(dispatch(cli.command, roots))
    }));
    process::kill_all();
    let result = match caught {
        Ok(result) => result,
        Err(payload) => {
            let why = crate::tester::panic_message(&*payload);
            eprintln!("error: repro panicked (a bug in repro; no verdict): {why}");
            return exit::PANICKED;
        }
    };
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    exit::code(&result)
}

/// Commands that only read files and print (no guests, no sockets).
fn only_prints(cmd: &Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Oops { .. }
            | Cmd::List
            | Cmd::Check { .. }
            | Cmd::Kernel {
                command: KernelCmd::List { .. }
            }
            | Cmd::Debug(_)
    )
}

/// Paths under the current directory are shown (and used) relative to it, so diagnostics read
/// `scenarios/x.toml:3:1` rather than a long absolute path.
fn relative_to_cwd(p: PathBuf) -> PathBuf {
    let Ok(cwd) = std::env::current_dir() else { return p };
    let abs = if p.is_absolute() { p.clone() } else { cwd.join(&p) };
    match abs
        .canonicalize()
        .ok()
        .and_then(|a| a.strip_prefix(cwd.canonicalize().ok()?).ok().map(Path::to_path_buf))
    {
        Some(rel) => rel,
        None => p,
    }
}

fn find_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Ok(cwd) = std::env::current_dir() {
        if cwd.join("scenarios").is_dir() {
            return cwd;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn dispatch(cmd: Cmd, roots: Roots) -> Result<Done, Failure> {
    match cmd {
        Cmd::Run(a) => run::run(&roots, a).await,
        Cmd::Verify(a) => verify::verify(&roots, a).await,
        Cmd::Bisect(a) => bisect::bisect(&roots, a).await,
        Cmd::Nightly(a) => nightly::nightly(&roots, a).await,
        Cmd::Debug(a) => debug::debug(a),
        Cmd::Report {
            command: ReportCmd::Merge { dirs, out },
        } => nightly::merge(&dirs, &out),
        Cmd::Report {
            command: ReportCmd::Kcidb { dir, known, out },
        } => nightly::kcidb(&dir, known.as_deref(), out.as_deref()),
        Cmd::New(a) => new::new(&roots, a),
        Cmd::Check { scenarios } => defs::check(&roots, &scenarios),
        Cmd::List => defs::list(&roots),
        Cmd::Kernel { command } => match command {
            KernelCmd::List {
                json, available: false, ..
            } => defs::kernel_list(&roots, json),
            KernelCmd::List { json, arch, .. } => defs::kernel_available(json, arch),
            KernelCmd::Build {
                name,
                arch,
                scenario,
                set,
                debug_info,
                json,
            } => {
                let set = scenario.as_deref().zip(set.as_deref());
                build::kernel_build(&roots, &name, arch, set, debug_info.unwrap_or_default(), json).await
            }
            KernelCmd::Fetch { name, arch, debug_info } => {
                defs::kernel_fetch(&roots, name, arch, debug_info.unwrap_or_default()).await
            }
        },
        Cmd::Image {
            command: ImageCmd::Build { name, arch },
        } => defs::image_build(&roots, name, arch).await,
        Cmd::Prepare { scenarios, arches } => defs::prepare(&roots, &scenarios, &arches).await,
        Cmd::Oops {
            command: OopsCmd::Parse { file, json, vmlinux },
        } => defs::oops_parse(&file, json, vmlinux.as_ref()),
    }
}
