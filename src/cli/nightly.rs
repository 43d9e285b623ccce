//! `repro nightly` and `repro report merge`.

use super::{err, exit, load_scenario, report_scenario_error, signals};
use crate::def::load::Roots;
use crate::def::units::parse_duration;
use crate::nightly::{self, report, Capacity, Cell, CellResult, Nightly};
use crate::run;
use crate::scenario::{Overrides, Scenario};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Where the nightly goes [default: runs/nightly/<time>]; earlier nightlies are the other
    /// directories beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Save a kdump-compressed vmcore of every crashed guest.
    #[arg(long)]
    pub vmcore: bool,
    /// Print nightly.json on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Earlier nightlies: directories beside `out` holding a nightly.json, oldest first.
fn history(out: &Path) -> Vec<(String, Nightly)> {
    let Some(parent) = out.parent() else { return Vec::new() };
    let me = out.file_name().map(|n| n.to_os_string());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.file_name().map(|n| n.to_os_string()) != me && d.join("nightly.json").is_file());
    dirs.sort();
    dirs.into_iter()
        .filter_map(|d| {
            let n: Nightly = serde_json::from_str(&std::fs::read_to_string(d.join("nightly.json")).ok()?).ok()?;
            Some((d.file_name()?.to_string_lossy().into_owned(), n))
        })
        .filter(|(_, n)| n.started_at > 0)
        .collect()
}

/// Writes nightly.json, junit.xml and report.html into `out`.
fn write_all(out: &Path, n: &Nightly, hist: &[(String, Nightly)]) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(n).map_err(std::io::Error::other)?;
    std::fs::write(out.join("nightly.json"), json + "\n")?;
    std::fs::write(out.join("junit.xml"), report::junit(n))?;
    std::fs::write(out.join("report.html"), report::html(n, hist))
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

fn all_scenarios(roots: &Roots) -> Result<Vec<Scenario>, i32> {
    let files = crate::def::load::list_files(&roots.scenarios).map_err(|e| {
        err(format!("{}: {e}", roots.scenarios.display()));
        exit::USAGE
    })?;
    files
        .iter()
        .map(|f| {
            load_scenario(roots, &f.display().to_string()).map_err(|e| {
                report_scenario_error(&e);
                exit::USAGE
            })
        })
        .collect()
}

pub async fn nightly_cmd(roots: &Roots, a: NightlyArgs) -> i32 {
    let scenarios = match all_scenarios(roots) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let kernels = crate::kernel::names(&roots.kernels);
    let matrix = match &a.matrix {
        None => nightly::Matrix {
            cells: nightly::default_cells(&scenarios),
            ..Default::default()
        },
        Some(p) => {
            let src = match std::fs::read_to_string(p) {
                Ok(s) => s,
                Err(e) => {
                    err(format!("{}: {e}", p.display()));
                    return exit::USAGE;
                }
            };
            match nightly::parse(p, &src, &scenarios, &kernels) {
                Ok(m) => m,
                Err(d) => {
                    eprintln!("error: {d}");
                    return exit::USAGE;
                }
            }
        }
    };
    let budget = match &a.budget {
        Some(b) => match parse_duration(b) {
            Some(d) => Some(d),
            None => {
                err(format!("--budget: `{b}` is not a duration (e.g. 90m, 2h, 600s)"));
                return exit::USAGE;
            }
        },
        None => matrix.budget,
    };
    let shard = match a.shard.as_deref().map(nightly::parse_shard).transpose() {
        Ok(s) => s,
        Err(e) => {
            err(e);
            return exit::USAGE;
        }
    };
    let cells = match shard {
        Some((i, n)) => nightly::shard(&matrix.cells, i, n),
        None => matrix.cells.clone(),
    };
    if cells.is_empty() {
        err("the matrix is empty (no scenario is tagged `nightly`, or the shard has no cells)");
        return exit::USAGE;
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/nightly").join(super::progress::timestamp()));
    if let Err(e) = std::fs::create_dir_all(out.join("cells")) {
        err(format!("cannot create {}: {e}", out.display()));
        return exit::CANNOT_TEST;
    }
    let out = out.canonicalize().unwrap_or(out);
    let cap = Capacity::of_host(a.jobs.or(matrix.jobs));
    eprintln!(
        "nightly: {} cell(s){}; up to {} guest(s) at once ({} cores, {} MiB for guests){}",
        cells.len(),
        shard.map_or(String::new(), |(i, n)| format!(" (shard {i}/{n})")),
        cap.jobs,
        cap.cores,
        cap.memory_mib,
        budget.map_or(String::new(), |b| format!("; budget {}s", b.as_secs()))
    );

    // Each cell's scenario, with the cell's kernel and arch.
    let mut pending: Vec<(Cell, Scenario)> = Vec::new();
    for c in &cells {
        let Some(s) = scenarios.iter().find(|s| s.name == c.scenario) else {
            continue;
        };
        let mut s = s.clone();
        s.apply(&Overrides {
            kernel: Some(c.kernel.clone()),
            arch: Some(c.arch),
            ..Default::default()
        });
        pending.push((c.clone(), s));
    }

    let t0 = Instant::now();
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (user_tx, user_cancel) = tokio::sync::watch::channel(false);
    tokio::spawn(signals(user_tx));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut running: Vec<(Cell, nightly::Demand)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<CellResult> = Vec::new();
    let mut budget_hit = false;
    let interrupted = || *user_cancel.borrow();
    loop {
        if !budget_hit && budget.is_some_and(|b| t0.elapsed() >= b) {
            budget_hit = true;
            let _ = stop_tx.send(true);
            eprintln!("nightly: the budget ran out; stopping");
        }
        if interrupted() {
            let _ = stop_tx.send(true);
        }
        if budget_hit || interrupted() {
            for (c, _) in pending.drain(..) {
                results.push(CellResult {
                    cell: c,
                    verdict: "not-run".into(),
                    title: None,
                    reason: if budget_hit {
                        "the time budget ran out before it started"
                    } else {
                        "interrupted"
                    }
                    .into(),
                    started_s: t0.elapsed().as_secs_f64(),
                    seconds: 0.0,
                    time_to_reproduce: None,
                    run_dir: None,
                    vmcores: Vec::new(),
                });
            }
        }
        while let Some(i) = {
            let d: Vec<nightly::Demand> = pending.iter().map(|(_, s)| nightly::demand(s)).collect();
            let r: Vec<nightly::Demand> = running.iter().map(|(_, d)| *d).collect();
            nightly::pick(&d, &r, cap)
        } {
            let (cell, s) = pending.remove(i);
            let name = format!("{}-{}-{}", cell.scenario, cell.kernel, cell.arch);
            let run_dir = out.join("cells").join(&name);
            let _ = std::fs::create_dir_all(&run_dir);
            eprintln!("[{:>6.0}s] start  {}", t0.elapsed().as_secs_f64(), cell.id());
            running.push((cell.clone(), nightly::demand(&s)));
            let (roots, stop, vmcore) = (roots.clone(), stop.clone(), a.vmcore);
            let started_s = t0.elapsed().as_secs_f64();
            tasks.spawn(async move {
                let r = run::run_quiet(s, roots, run_dir, stop, vmcore).await;
                (cell, name, r, started_s)
            });
        }
        if running.is_empty() && pending.is_empty() {
            break;
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                let Ok((cell, name, r, started_s)) = done else { continue };
                running.retain(|(c, _)| *c != cell);
                let stopped = *stop.borrow();
                let verdict = r.verdict.as_str().to_string();
                let reason = if stopped && r.reason.contains("interrupted") {
                    if budget_hit { "stopped: the time budget ran out".to_string() } else { "interrupted".to_string() }
                } else {
                    r.reason.clone()
                };
                eprintln!(
                    "[{:>6.0}s] done   {} {verdict}{}",
                    t0.elapsed().as_secs_f64(),
                    cell.id(),
                    r.crash.as_ref().map_or(String::new(), |c| format!(": {}", c.title))
                );
                let rel = |p: &str| {
                    Path::new(p)
                        .strip_prefix(&out)
                        .map(|x| x.display().to_string())
                        .unwrap_or_else(|_| p.to_string())
                };
                results.push(CellResult {
                    cell,
                    title: r.crash.as_ref().or(r.crashes.first()).map(|c| c.title.clone()),
                    time_to_reproduce: (r.verdict == run::verdict::Verdict::Reproduced)
                        .then_some(r.timings.workload)
                        .flatten(),
                    started_s,
                    seconds: r.timings.total,
                    run_dir: Some(format!("cells/{name}")),
                    vmcores: r.vmcores.iter().map(|v| rel(v)).collect(),
                    verdict,
                    reason,
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    results.sort_by(|a, b| a.cell.cmp(&b.cell));
    let hist = history(&out);
    let mut n = Nightly {
        repro_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        seconds: t0.elapsed().as_secs_f64(),
        shard,
        budget_s: budget.map(|b| b.as_secs()),
        cells: results,
        changes: Default::default(),
    };
    let earlier: Vec<Nightly> = hist.iter().map(|(_, n)| n.clone()).collect();
    n.compare_with(&earlier);
    if let Err(e) = write_all(&out, &n, &hist) {
        err(format!("cannot write the reports into {}: {e}", out.display()));
        return exit::CANNOT_TEST;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&n).unwrap_or_default());
    } else {
        print_summary(&n, &out);
    }
    if interrupted() {
        return exit::INTERRUPTED;
    }
    n.exit_code()
}

/// `repro report merge DIR... --out DIR`: shard results joined into one report.
pub fn merge_cmd(dirs: &[PathBuf], out: &Path) -> i32 {
    let mut parts = Vec::new();
    if let Err(e) = std::fs::create_dir_all(out) {
        err(format!("cannot create {}: {e}", out.display()));
        return exit::CANNOT_TEST;
    }
    let out = out.canonicalize().unwrap_or(out.to_path_buf());
    for d in dirs {
        let p = d.join("nightly.json");
        let mut n: Nightly = match std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(n) => n,
            Err(e) => {
                err(format!("{}: {e}", p.display()));
                return exit::USAGE;
            }
        };
        // Links stay valid from the merged report's directory.
        let base = d.canonicalize().unwrap_or(d.clone());
        for c in &mut n.cells {
            let fix = |r: &str| relative(&out, &base.join(r));
            c.run_dir = c.run_dir.as_deref().map(fix);
            c.vmcores = c.vmcores.iter().map(|v| fix(v)).collect();
        }
        parts.push(n);
    }
    let merged = Nightly::merge(parts);
    if let Err(e) = write_all(&out, &merged, &history(&out)) {
        err(format!("cannot write the reports into {}: {e}", out.display()));
        return exit::CANNOT_TEST;
    }
    print_summary(&merged, &out);
    merged.exit_code()
}

/// `to` as a path relative to the directory `from` (both absolute).
fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p.display().to_string()
}
