//! `repro nightly` and `repro report merge`.

use super::exit::{Done, Failure};
use super::load::{new_dir, timestamp};
use super::signals::cancel_on_ctrl_c;
use crate::catalog::Catalog;
use crate::def::load::Roots;
use crate::def::units::parse_duration;
use crate::nightly::driver::{self, Event, Job};
use crate::nightly::known::{self, Known};
use crate::nightly::{self, store, Cell, Matrix, Nightly};
use crate::scenario::{Overrides, Scenario};
use crate::tester::{Live, Quiet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct NightlyArgs {
    /// A matrix file [default: every scenario tagged `nightly`, on its own kernel and arch].
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// At most this many guests at once [default: the matrix's `jobs`, else the host's cores];
    /// fewer run when the host's cores or memory are short.
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Total time budget, e.g. 90m: cells not started by then are not run, running ones are
    /// stopped [default: the matrix's `budget`, else none].
    #[arg(long)]
    pub budget: Option<String>,
    /// Run only shard I of N (I/N) of the matrix, for many machines.
    #[arg(long)]
    pub shard: Option<String>,
    /// Where the nightly goes, a directory that must not exist yet [default:
    /// runs/nightly/<time>]; earlier nightlies are the other directories beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Known issues [default: known-issues.toml beside the matrix, or beside scenarios/ for the
    /// default matrix]: crashes they explain are `known`, not new.
    #[arg(long)]
    pub known: Option<PathBuf>,
    /// Also write the nightly in KernelCI's KCIDB I/O JSON (schema 5.3) to this file.
    #[arg(long)]
    pub kcidb: Option<PathBuf>,
    /// Save a kdump-compressed vmcore of every crashed guest.
    #[arg(long)]
    pub vmcore: bool,
    /// Print nightly.json on stdout.
    #[arg(long)]
    pub json: bool,
}

fn print_summary(n: &Nightly, out: &Path) {
    println!("nightly: {} cell(s) in {:.0}s", n.cells.len(), n.seconds);
    for c in &n.cells {
        let change = n.changes.get(&c.cell.id()).map_or("", |c| c.as_str());
        println!(
            "  {:<44} {:<20} {:<14} {}",
            c.cell.id(),
            c.verdict,
            change,
            c.title.as_deref().unwrap_or("")
        );
    }
    println!(
        "  reports: {} {} {}",
        out.join("report.html").display(),
        out.join("junit.xml").display(),
        out.join("nightly.json").display()
    );
}

fn all_scenarios(roots: &Roots) -> Result<Vec<Scenario>, Failure> {
    let catalog = Catalog::new(roots.clone());
    let all = catalog
        .scenarios()
        .map_err(|e| Failure::Usage(format!("{}: {e}", roots.scenarios.display())))?;
    all.into_iter().map(|(_, s)| s.map_err(Failure::from)).collect()
}

fn matrix(roots: &Roots, a: &NightlyArgs, scenarios: &[Scenario]) -> Result<Matrix, Failure> {
    let Some(p) = &a.matrix else {
        return Ok(Matrix {
            cells: nightly::default_cells(scenarios),
            ..Default::default()
        });
    };
    let src = std::fs::read_to_string(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
    let kernels = Catalog::new(roots.clone()).kernel_names();
    // Selectors (`debian:6.1.*`) expand from the archive; without one it is not read.
    let archive = match src.contains("debian:") {
        true => crate::kernel::available().map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?,
        false => Vec::new(),
    };
    nightly::parse(p, &src, scenarios, &kernels, &archive).map_err(|d| Failure::Invalid(Box::new(d)))
}

/// Each cell with its scenario, the cell's kernel and arch applied.
fn cell_scenarios(cells: &[Cell], scenarios: &[Scenario]) -> Vec<(Cell, Scenario)> {
    cells
        .iter()
        .filter_map(|c| {
            let mut s = scenarios.iter().find(|s| s.name == c.scenario)?.clone();
            s.apply(&Overrides {
                kernel: Some(c.kernel.clone()),
                arch: Some(c.arch),
                ..Default::default()
            });
            Some((c.clone(), s))
        })
        .collect()
}

pub async fn nightly(roots: &Roots, a: NightlyArgs) -> Result<Done, Failure> {
    let scenarios = all_scenarios(roots)?;
    let matrix = matrix(roots, &a, &scenarios)?;
    let budget = match &a.budget {
        Some(b) => Some(
            parse_duration(b)
                .ok_or_else(|| Failure::Usage(format!("--budget: `{b}` is not a duration (e.g. 90m, 2h, 600s)")))?,
        ),
        None => matrix.budget,
    };
    let shard = a
        .shard
        .as_deref()
        .map(nightly::parse_shard)
        .transpose()
        .map_err(Failure::Usage)?;
    let cells = match shard {
        Some((i, n)) => nightly::shard(&matrix.cells, i, n),
        None => matrix.cells.clone(),
    };
    if cells.is_empty() {
        return Err(Failure::Usage(
            "the matrix is empty (no scenario is tagged `nightly`, or the shard has no cells)".into(),
        ));
    }
    // A cell must never pass for a workload nobody has written.
    if let Some(d) = cells
        .iter()
        .filter_map(|c| scenarios.iter().find(|s| s.name == c.scenario))
        .find_map(|s| s.workload.placeholder.clone())
    {
        return Err(Failure::Invalid(d));
    }
    let known = known_issues(roots, a.known.as_deref(), a.matrix.as_deref())?;
    let out = new_dir(a.out.clone(), || PathBuf::from("runs/nightly").join(timestamp()))?;
    let out = out.path().to_path_buf();
    let capacity = store::host_capacity(a.jobs.or(matrix.jobs));
    eprintln!(
        "nightly: {} cell(s){}; up to {} guest(s) at once ({} cores, {} MiB for guests){}",
        cells.len(),
        shard.map_or(String::new(), |(i, n)| format!(" (shard {i}/{n})")),
        capacity.jobs,
        capacity.cores,
        capacity.memory_mib,
        budget.map_or(String::new(), |b| format!("; budget {}s", b.as_secs()))
    );
    let tester = Arc::new(Live {
        roots: roots.clone(),
        vmcore: a.vmcore,
        ui: Arc::new(Quiet),
    });
    let job = Job {
        cells: cell_scenarios(&cells, &scenarios),
        out: out.clone(),
        capacity,
        budget,
        shard,
        known: known.clone(),
    };
    let ran = driver::nightly(tester, job, cancel_on_ctrl_c(), &show)
        .await
        .map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?;
    if let Some(file) = &a.kcidb {
        store::write_kcidb(&out, &ran.nightly, &known, file)
            .map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?;
    }
    match a.json {
        true => println!("{}", serde_json::to_string_pretty(&ran.nightly).unwrap_or_default()),
        false => print_summary(&ran.nightly, &out),
    }
    Ok(Done::Nightly(Box::new(ran)))
}

fn show(e: &Event) {
    match e {
        Event::Started { at, cell } => eprintln!("[{at:>6.0}s] start  {cell}"),
        Event::Finished {
            at,
            cell,
            verdict,
            title,
        } => eprintln!(
            "[{at:>6.0}s] done   {cell} {verdict}{}",
            title.as_ref().map_or(String::new(), |t| format!(": {t}"))
        ),
        Event::BudgetRanOut => eprintln!("nightly: the budget ran out; stopping"),
    }
}

/// The known issues: `named` (which must exist), else `known-issues.toml` beside the matrix
/// (or at the top of the tree, beside scenarios/, for the default matrix) if there is one,
/// else none.
fn known_issues(roots: &Roots, named: Option<&Path>, matrix: Option<&Path>) -> Result<Known, Failure> {
    let beside = match matrix {
        Some(m) => m.parent().unwrap_or(Path::new(".")).join(known::FILE),
        None => roots.scenarios.parent().unwrap_or(Path::new(".")).join(known::FILE),
    };
    match named {
        Some(p) => read_known(p),
        None if beside.is_file() => read_known(&beside),
        None => Ok(Known::default()),
    }
}

fn read_known(path: &Path) -> Result<Known, Failure> {
    let src = std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    known::parse(path, &src).map_err(|d| Failure::Invalid(Box::new(d)))
}

/// `repro report kcidb DIR`: an earlier nightly in KCIDB's format.
pub fn kcidb(dir: &Path, known: Option<&Path>, out: Option<&Path>) -> Result<Done, Failure> {
    let n = store::read(dir).map_err(|e| Failure::Usage(e.to_string()))?;
    let known = known.map(read_known).transpose()?.unwrap_or_default();
    let doc = nightly::kcidb::render(&n, &store::cell_runs(dir, &n), &known);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    match out {
        Some(f) => std::fs::write(f, text).map_err(|e| Failure::CannotTest(format!("{}: {e}", f.display())))?,
        None => print!("{text}"),
    }
    Ok(Done::Ok)
}

/// `repro report merge DIR... --out DIR`: shard results joined into one report.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Done, Failure> {
    // A new directory: never one of the shards, never an earlier report.
    let out = new_dir(Some(out.to_path_buf()), PathBuf::new)?;
    let out = out.path();
    let merged = store::merge(dirs, out).map_err(|e| match e {
        store::Error::Read { .. } => Failure::Usage(e.to_string()),
        store::Error::Write { .. } => Failure::CannotTest(crate::errors::chain(&e)),
    })?;
    print_summary(&merged, &out.canonicalize().unwrap_or(out.to_path_buf()));
    Ok(Done::Merged(Box::new(merged)))
}
