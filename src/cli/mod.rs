//! The command line: the only place that prints or drives indicatif. Exit codes are mapped here.

mod bisect;
mod build;
mod nightly;
mod progress;
mod verify;

use build::kernel_build;
use verify::verify_cmd;

use crate::arch::Arch;
use crate::catalog::{self, Catalog};
use crate::def::load::Roots;
use crate::run;
use crate::scenario::{Overrides, Scenario};
use crate::{image, kernel, process};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit codes. 0/1/125 follow `git bisect run` (good / bad / skip); everything else is above 127
/// so that `git bisect run` aborts instead of marking a commit.
pub mod exit {
    pub const NOT_REPRODUCED: i32 = 0;
    pub const REPRODUCED: i32 = 1;
    pub const CANNOT_TEST: i32 = 125;
    /// Bad usage, or a scenario/kernel/image definition that does not parse.
    pub const USAGE: i32 = 128;
    pub const INTERRUPTED: i32 = 130;
}

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
    Run {
        /// A scenario name (file stem in scenarios/) or a path to a .toml file.
        scenario: String,
        /// Use this kernel definition (from kernels/) on every node.
        #[arg(long)]
        kernel: Option<String>,
        /// Run every node on this arch.
        #[arg(long)]
        arch: Option<Arch>,
        /// Print report.json on stdout instead of a summary.
        #[arg(long)]
        json: bool,
        /// Where to put the run directory [default: runs/<scenario>/<time>-<arch>]
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Apply this patch set of the scenario to every node's (source) kernel.
        #[arg(long)]
        set: Option<String>,
        /// Set a variable the scenario declares in [vars] (NAME=VALUE; repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// On a crash, save the guest's memory as a kdump-compressed vmcore (for crash(8)) in
        /// the node's run directory, beside its console log.
        #[arg(long)]
        vmcore: bool,
        /// Keep the scenario's disk and NVDIMM backing files in the run directory (deleted at
        /// the end of the run by default).
        #[arg(long)]
        keep_disks: bool,
    },
    /// Run a scenario N times on its kernel and N times with a patch set applied, and conclude
    /// whether the set fixes it. Exits 0 fixed, 1 not fixed, 2 base does not reproduce, 125
    /// inconclusive.
    Verify {
        scenario: String,
        /// The patch set (from the scenario's [patchsets]).
        #[arg(long)]
        set: String,
        /// Runs per kernel.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Run every node on this arch.
        #[arg(long)]
        arch: Option<Arch>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Set a variable the scenario declares in [vars] (NAME=VALUE; repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
    /// Find the commit that introduced (or with --fix, fixed) the scenario's crash: builds and
    /// runs candidates chosen as git bisect does, flake-aware. Exits 0 found, 2 ambiguous
    /// (skipped commits), 125 stopped, 130 interrupted.
    Bisect(bisect::BisectArgs),
    /// Run a scenario × kernel × arch matrix with parallel guests, compare with earlier
    /// nightlies and write nightly.json, junit.xml and report.html. Exits 1 when a cell newly
    /// crashes, 125 when one could not be tested, else 0.
    Nightly(nightly::NightlyArgs),
    /// Nightly reports.
    Report {
        #[command(subcommand)]
        command: ReportCmd,
    },
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
}

#[derive(Subcommand, Debug)]
enum KernelCmd {
    /// List kernel definitions.
    List {
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        json: bool,
    },
    /// Fetch (or locate) a kernel's artifacts for an arch.
    Fetch {
        name: String,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
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
    process::install_panic_hook();
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
    let root = relative_to_cwd(find_root(cli.root.as_deref()));
    let roots = Roots::at(&root);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::CANNOT_TEST;
        }
    };
    let code = rt.block_on(dispatch(cli.command, roots));
    process::kill_all();
    code
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

fn err(msg: impl std::fmt::Display) {
    eprintln!("error: {msg}");
}

async fn dispatch(cmd: Cmd, roots: Roots) -> i32 {
    match cmd {
        Cmd::Run {
            scenario,
            kernel,
            arch,
            json,
            run_dir,
            set,
            vars,
            vmcore,
            keep_disks,
        } => {
            run_cmd(
                &roots,
                &scenario,
                Overrides { kernel, arch, vars },
                set,
                json,
                run_dir,
                Keep { vmcore, keep_disks },
            )
            .await
        }
        Cmd::Bisect(a) => bisect::bisect_cmd(&roots, a).await,
        Cmd::Nightly(a) => nightly::nightly_cmd(&roots, a).await,
        Cmd::Report {
            command: ReportCmd::Merge { dirs, out },
        } => nightly::merge_cmd(&dirs, &out),
        Cmd::Verify {
            scenario,
            set,
            runs,
            arch,
            json,
            vars,
        } => verify_cmd(&roots, &scenario, &set, runs, arch, json, vars).await,
        Cmd::Kernel {
            command:
                KernelCmd::Build {
                    name,
                    arch,
                    scenario,
                    set,
                    json,
                },
        } => kernel_build(&roots, &name, arch, scenario.as_deref().zip(set.as_deref()), json).await,
        Cmd::Check { scenarios } => check(&roots, &scenarios),
        Cmd::List => list(&roots),
        Cmd::Kernel {
            command: KernelCmd::List { json },
        } => kernel_list(&roots, json),
        Cmd::Kernel {
            command: KernelCmd::Fetch { name, arch },
        } => {
            let fetched = blocking(move || {
                kernel::find(&roots.kernels, &name).and_then(|d| d.resolve(arch, &|m| eprintln!("{m}")))
            })
            .await;
            match fetched {
                Ok(a) => {
                    println!("{} {} {}", a.name, a.arch, a.origin);
                    println!("image: {}", a.image.display());
                    if let Some(m) = &a.modules {
                        println!("modules: {}", m.display());
                    }
                    0
                }
                Err(code) => code,
            }
        }
        Cmd::Image {
            command: ImageCmd::Build { name, arch },
        } => {
            let built = blocking(move || {
                image::find(&roots.images, &name).and_then(|d| image::build(&d, arch, &|m| eprintln!("{m}")))
            })
            .await;
            match built {
                Ok(b) => {
                    println!("{}", b.rootfs.display());
                    0
                }
                Err(code) => code,
            }
        }
        Cmd::Prepare { scenarios, arches } => prepare(&roots, &scenarios, &arches).await,
        Cmd::Oops {
            command: OopsCmd::Parse { file, json, vmlinux },
        } => oops_parse(&file, json, vmlinux.as_deref()),
    }
}

/// Runs blocking work off the async threads; a failure is printed with its whole source chain
/// and becomes the exit code.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, i32>
where
    T: Send + 'static,
    E: std::error::Error + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            err(crate::errors::chain(&e));
            Err(exit::CANNOT_TEST)
        }
        Err(e) => {
            err(e);
            Err(exit::CANNOT_TEST)
        }
    }
}

fn oops_parse(file: &Path, json: bool, vmlinux: Option<&Path>) -> i32 {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            err(format!("cannot read {}: {e}", file.display()));
            return exit::USAGE;
        }
    };
    let mut reports = repro_oops::parse(&bytes);
    if let Some(v) = vmlinux {
        match crate::symbolize::Symbolizer::open(v) {
            Ok(sym) => {
                for r in &mut reports {
                    sym.report(r);
                }
            }
            Err(e) => {
                err(crate::errors::chain(&e));
                return exit::USAGE;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
    } else {
        for r in &reports {
            let corrupted = if r.corrupted { " (corrupted)" } else { "" };
            println!("{}  [{}]{corrupted}", r.title, r.kind);
            if let Some(f) = r.faulting_frame.as_ref().filter(|f| !f.source.is_empty()) {
                println!("    fault at:");
                for l in crate::symbolize::describe(f) {
                    println!("      {l}");
                }
            }
            for f in r.frames.iter().filter(|f| f.reliable).take(8) {
                println!(
                    "    {}{}",
                    f.function,
                    f.module.as_deref().map(|m| format!(" [{m}]")).unwrap_or_default()
                );
                for l in crate::symbolize::describe(f) {
                    println!("      {l}");
                }
            }
        }
    }
    if reports.is_empty() {
        0
    } else {
        1
    }
}

fn load_scenario(roots: &Roots, arg: &str) -> Result<Scenario, catalog::Error> {
    Catalog::new(roots.clone()).scenario(arg)
}

fn report_scenario_error(e: &catalog::Error) {
    match e {
        catalog::Error::Invalid(d) => eprintln!("error: {d}"),
        other => err(crate::errors::chain(other)),
    }
}

fn check(roots: &Roots, names: &[String]) -> i32 {
    let args: Vec<String> = if names.is_empty() {
        crate::def::load::list_files(&roots.scenarios)
            .unwrap_or_default()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        names.to_vec()
    };
    let mut bad = 0;
    for a in &args {
        match load_scenario(roots, a) {
            Ok(s) => println!("ok: {} ({})", s.name, s.path.display()),
            Err(e) => {
                bad += 1;
                report_scenario_error(&e);
            }
        }
    }
    if bad > 0 {
        exit::USAGE
    } else {
        0
    }
}

fn list(roots: &Roots) -> i32 {
    let files = match crate::def::load::list_files(&roots.scenarios) {
        Ok(f) => f,
        Err(e) => {
            err(format!("cannot read {}: {e}", roots.scenarios.display()));
            return exit::USAGE;
        }
    };
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    // The name column is 28 wide, wider when a file stem needs it.
    let width = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.len()))
        .fold(28, usize::max);
    for f in files {
        match Catalog::new(roots.clone()).scenario_file(&f) {
            Ok(s) => {
                let arches: Vec<&str> = s.nodes.iter().map(|n| n.arch.as_str()).collect();
                let _ = writeln!(out, "{:<width$} {:<8} {}", s.name, arches.join(","), s.summary);
            }
            Err(e) => {
                report_scenario_error(&e);
                code = exit::USAGE;
            }
        }
    }
    code
}

fn kernel_list(roots: &Roots, json: bool) -> i32 {
    match kernel::load_all(&roots.kernels) {
        Ok(defs) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&defs).unwrap_or_default());
            } else {
                for d in defs {
                    let arches: Vec<&str> = d.arches().iter().map(|a| a.as_str()).collect();
                    println!(
                        "{:<24} {:<7} {:<15} {}",
                        d.name,
                        kernel::kind_name(d.kind),
                        arches.join(","),
                        d.summary
                    );
                }
            }
            0
        }
        Err(kernel::Error::Invalid(d)) => {
            eprintln!("error: {d}");
            exit::USAGE
        }
        Err(e) => {
            err(crate::errors::chain(&e));
            exit::USAGE
        }
    }
}

async fn prepare(roots: &Roots, names: &[String], arches: &[Arch]) -> i32 {
    for name in names {
        let s = match load_scenario(roots, name) {
            Ok(s) => s,
            Err(e) => {
                report_scenario_error(&e);
                return exit::USAGE;
            }
        };
        let mut pairs: Vec<(String, Arch)> = Vec::new();
        for n in &s.nodes {
            let list = if arches.is_empty() {
                vec![n.arch]
            } else {
                arches.to_vec()
            };
            for a in list {
                if !pairs.contains(&(n.kernel.clone(), a)) {
                    pairs.push((n.kernel.clone(), a));
                }
            }
        }
        for (k, a) in pairs {
            let (roots, image) = (roots.clone(), s.image.clone());
            let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let log = |m: &str| eprintln!("{m}");
                let kd = kernel::find(&roots.kernels, &k).map_err(|e| crate::errors::chain(&e))?;
                let ka = kd.resolve(a, &log).map_err(|e| crate::errors::chain(&e))?;
                let id = image::find(&roots.images, &image).map_err(|e| crate::errors::chain(&e))?;
                let b = image::build(&id, a, &log).map_err(|e| crate::errors::chain(&e))?;
                image::boot_initramfs(&ka, &b).map_err(|e| crate::errors::chain(&e))?;
                image::modules_disk(&ka).map_err(|e| crate::errors::chain(&e))?;
                eprintln!("prepared {k} on {a}: {} + {}", ka.origin, b.rootfs.display());
                Ok(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    err(e);
                    return exit::CANNOT_TEST;
                }
                Err(e) => {
                    err(e);
                    return exit::CANNOT_TEST;
                }
            }
        }
    }
    0
}

fn default_run_dir(s: &Scenario) -> PathBuf {
    let arch = s.nodes.first().map_or("x", |n| n.arch.as_str());
    let stamp = progress::timestamp();
    PathBuf::from("runs").join(&s.name).join(format!("{stamp}-{arch}"))
}

/// Loads a scenario and applies the command-line overrides and patch set, or prints why not.
fn scenario_for_run(roots: &Roots, name: &str, o: &Overrides, set: Option<&str>) -> Result<Scenario, i32> {
    let mut s = load_scenario(roots, name).map_err(|e| {
        report_scenario_error(&e);
        exit::USAGE
    })?;
    if let Some(k) = &o.kernel {
        if !kernel::names(&roots.kernels).contains(k) {
            err(format!(
                "--kernel: no kernel named `{k}` in {}",
                roots.kernels.display()
            ));
            return Err(exit::USAGE);
        }
    }
    s.apply(o);
    for v in &o.vars {
        s.set_var(v).map_err(|e| {
            err(format!("--var: {e}"));
            exit::USAGE
        })?;
    }
    if let Some(set) = set {
        s.select_set(set).map_err(|e| {
            err(e);
            exit::USAGE
        })?;
    }
    Ok(s)
}

/// What `repro run` keeps in the run directory besides the logs and the report.
struct Keep {
    vmcore: bool,
    keep_disks: bool,
}

async fn run_cmd(
    roots: &Roots,
    name: &str,
    o: Overrides,
    set: Option<String>,
    json: bool,
    run_dir: Option<PathBuf>,
    Keep { vmcore, keep_disks }: Keep,
) -> i32 {
    let s = match scenario_for_run(roots, name, &o, set.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let run_dir = run_dir.unwrap_or_else(|| default_run_dir(&s));
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        err(format!("cannot create the run directory {}: {e}", run_dir.display()));
        return exit::CANNOT_TEST;
    }
    let run_dir = run_dir.canonicalize().unwrap_or(run_dir);

    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    tokio::spawn(signals(cancel_tx));
    let (ptx, prx) = tokio::sync::mpsc::unbounded_channel();
    let ui = tokio::spawn(progress::drive(prx, s.name.clone()));
    let report = run::run(run::Options {
        scenario: s,
        roots: roots.clone(),
        run_dir,
        progress: ptx,
        cancel: cancel.clone(),
        vmcore,
        keep_disks,
    })
    .await;
    let _ = ui.await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        progress::summary(&report);
    }
    if *cancel.borrow() {
        return exit::INTERRUPTED;
    }
    report.exit_code
}

/// First SIGINT/SIGTERM/SIGHUP: cancel the run (guests are torn down, the report is written).
/// A second one: kill every guest and exit now.
async fn signals(cancel: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            eprintln!("\ninterrupted: stopping the guests (again to kill them at once)");
            let _ = cancel.send(true);
        } else {
            process::kill_all();
            std::process::exit(exit::INTERRUPTED);
        }
    }
}
