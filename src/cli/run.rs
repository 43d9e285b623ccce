//! `repro run`.

use super::exit::{Done, Failure};
use super::load::{new_dir, scenario_for_run, timestamp};
use super::progress;
use super::signals::cancel_on_ctrl_c;
use crate::arch::Arch;
use crate::def::load::Roots;
use crate::run;
use crate::scenario::{Overrides, Scenario};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A scenario name (file stem in scenarios/) or a path to a .toml file.
    pub scenario: String,
    /// Use this kernel definition (from kernels/) on every node.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Run every node on this arch.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Print report.json on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// The run directory, which must not exist yet [default: runs/<scenario>/<time>-<arch>,
    /// suffixed -2, -3, ... when that name is taken]
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Apply this patch set of the scenario to every node's (source) kernel.
    #[arg(long)]
    pub set: Option<String>,
    /// Set a variable the scenario declares in [vars] (NAME=VALUE; repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// On a crash, save the guest's memory as a kdump-compressed vmcore (for crash(8)) in
    /// the node's run directory, beside its console log.
    #[arg(long)]
    pub vmcore: bool,
    /// Keep the scenario's disk and NVDIMM backing files in the run directory (deleted at
    /// the end of the run by default).
    #[arg(long)]
    pub keep_disks: bool,
    /// `full`: boot the kernel built with full DWARF and gdb scripts (source), or fetch the
    /// Debian `-dbg` package's vmlinux, for crash(8), drgn and gdb [default: the definition's].
    #[arg(long, value_enum)]
    pub debug_info: Option<crate::kernel::DebugInfo>,
    /// On a crash, keep the guest stopped and serve QEMU's gdbstub on a unix socket in the
    /// node's run directory; print the gdb command and wait until gdb detaches (or Ctrl-C).
    #[arg(long)]
    pub gdb: bool,
}

fn default_run_dir(s: &Scenario) -> PathBuf {
    let arch = s.nodes.first().map_or("x", |n| n.arch.as_str());
    PathBuf::from("runs")
        .join(&s.name)
        .join(format!("{}-{arch}", timestamp()))
}

pub async fn run(roots: &Roots, a: RunArgs) -> Result<Done, Failure> {
    let overrides = Overrides {
        kernel: a.kernel,
        arch: a.arch,
        vars: a.vars,
    };
    let mut s = scenario_for_run(roots, &a.scenario, &overrides, a.set.as_deref())?;
    s.full_debug_info = a.debug_info == Some(crate::kernel::DebugInfo::Full);
    let run_dir = new_dir(a.run_dir, || default_run_dir(&s))?;
    let cancel = cancel_on_ctrl_c();
    let (progress, shown) = tokio::sync::mpsc::unbounded_channel();
    let ui = tokio::spawn(progress::drive(shown, s.name.clone()));
    let mut report = run::run(run::Options {
        scenario: s,
        roots: roots.clone(),
        run_dir,
        progress,
        cancel: cancel.clone(),
        vmcore: a.vmcore,
        keep_disks: a.keep_disks,
        gdb: a.gdb,
    })
    .await;
    let _ = ui.await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        progress::summary(&report);
    }
    // A Ctrl-C after the run's last phase still means the user did not let it finish, unless
    // it ended a `--gdb` session, as it is meant to.
    let ended_debugging = report.debugger.iter().any(|s| s.ended == run::ENDED_BY_CTRL_C);
    report.interrupted |= *cancel.borrow() && !ended_debugging;
    Ok(Done::Run(Box::new(report)))
}
