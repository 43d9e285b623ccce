//! The nightly's plan, pure: the matrix file, shards, the resource scheduler, comparison with
//! earlier nightlies, shard merge, and the data model of `nightly.json`.

use crate::arch::Arch;
use crate::def::diag::{from_toml, Diagnostic};
use crate::def::units::Secs;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: String,
    pub kernel: String,
    pub arch: Arch,
}

impl Cell {
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.scenario, self.kernel, self.arch)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    /// Total wall-time budget, e.g. "2h".
    budget: Option<Secs>,
    /// At most this many guests at once (the scheduler may run fewer).
    jobs: Option<u32>,
    #[serde(default)]
    entry: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// Scenario names; or:
    scenarios: Option<Vec<Spanned<String>>>,
    /// every scenario with one of these tags.
    tags: Option<Vec<String>>,
    /// Kernel definitions; default: each scenario's own.
    kernels: Option<Vec<Spanned<String>>>,
    /// Default: each scenario's own.
    arches: Option<Vec<Arch>>,
}

/// A parsed matrix file.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    pub budget: Option<std::time::Duration>,
    pub jobs: Option<u32>,
    pub cells: Vec<Cell>,
}

/// The default matrix: every scenario tagged `nightly`, on its own kernel and arch.
pub fn default_cells(scenarios: &[Scenario]) -> Vec<Cell> {
    let mut v: Vec<Cell> = scenarios
        .iter()
        .filter(|s| s.tags.iter().any(|t| t == "nightly"))
        .map(|s| Cell {
            scenario: s.name.clone(),
            kernel: s.nodes[0].kernel.clone(),
            arch: s.nodes[0].arch,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Parses a matrix file against the known scenarios and kernels, and the archive's packages for
/// selectors (`debian:6.1.*`). Errors name file, line and key.
pub fn parse(
    path: &Path,
    source: &str,
    scenarios: &[Scenario],
    kernels: &[String],
    archive: &[crate::archive::Package],
) -> Result<Matrix, Diagnostic> {
    let raw: RawMatrix = from_toml(path, source)?;
    let diag =
        |span: std::ops::Range<usize>, key: &str, msg: String| Diagnostic::at(path, source, Some(span), key, msg);
    let mut cells = Vec::new();
    for (i, e) in raw.entry.iter().enumerate() {
        let key = format!("entry[{i}]");
        let er = e.get_ref();
        let chosen: Vec<&Scenario> = match (&er.scenarios, &er.tags) {
            (Some(names), None) => {
                let mut v = Vec::new();
                for n in names {
                    v.push(scenarios.iter().find(|s| &s.name == n.get_ref()).ok_or_else(|| {
                        diag(
                            n.span(),
                            &format!("{key}.scenarios"),
                            format!("no scenario named `{}`", n.get_ref()),
                        )
                    })?);
                }
                v
            }
            (None, Some(tags)) => scenarios
                .iter()
                .filter(|s| s.tags.iter().any(|t| tags.contains(t)))
                .collect(),
            _ => {
                return Err(diag(
                    e.span(),
                    &key,
                    "an entry needs exactly one of `scenarios` or `tags`".into(),
                ))
            }
        };
        if let Some(ks) = &er.kernels {
            for k in ks.iter().filter(|k| !crate::archive::is_selector(k.get_ref())) {
                if let Err(why) = crate::archive::known_kernel(k.get_ref(), kernels) {
                    return Err(diag(k.span(), &format!("{key}.kernels"), why));
                }
            }
        }
        for s in chosen {
            let ks: Vec<String> = match &er.kernels {
                Some(ks) => ks.iter().map(|k| k.get_ref().clone()).collect(),
                None => vec![s.nodes[0].kernel.clone()],
            };
            let arches = er.arches.clone().unwrap_or_else(|| vec![s.nodes[0].arch]);
            for (k, a) in ks.iter().flat_map(|k| arches.iter().map(move |a| (k, *a))) {
                let names = match crate::archive::is_selector(k) {
                    false => vec![k.clone()],
                    true => {
                        let span = er
                            .kernels
                            .iter()
                            .flatten()
                            .find(|x| x.get_ref() == k)
                            .map_or(0..0, |x| x.span());
                        crate::archive::expand(k, archive, a)
                            .map_err(|why| diag(span, &format!("{key}.kernels"), why))?
                            .iter()
                            .map(|p| p.name.clone())
                            .collect()
                    }
                };
                for kernel in names {
                    cells.push(Cell {
                        scenario: s.name.clone(),
                        kernel,
                        arch: a,
                    });
                }
            }
        }
    }
    cells.sort();
    cells.dedup();
    Ok(Matrix {
        budget: raw.budget.map(|b| b.0),
        jobs: raw.jobs,
        cells,
    })
}

/// `--shard I/N`: `I` in 1..=N.
pub fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or("--shard: expected I/N, e.g. 2/4")?;
    let (i, n): (u32, u32) = (
        i.parse().map_err(|_| format!("--shard: `{i}` is not a number"))?,
        n.parse().map_err(|_| format!("--shard: `{n}` is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("--shard {s}: I must be between 1 and N"));
    }
    Ok((i, n))
}

/// The cells of shard `i` of `n`: every n-th cell of the sorted matrix, so that shards are
/// disjoint, cover the matrix, and do not depend on the machine.
pub fn shard(cells: &[Cell], i: u32, n: u32) -> Vec<Cell> {
    let mut sorted = cells.to_vec();
    sorted.sort();
    sorted
        .into_iter()
        .enumerate()
        .filter(|(k, _)| *k as u32 % n == i - 1)
        .map(|(_, c)| c)
        .collect()
}

/// What a guest (all nodes of a cell) takes from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// One busy host core per node: a TCG or KVM guest's vCPU threads mostly wait, its main
    /// emulation thread does not.
    pub cores: u32,
    pub memory_mib: u64,
}

/// QEMU's own memory beside the guest's, per node.
pub const QEMU_OVERHEAD_MIB: u64 = 256;

pub fn demand(s: &Scenario) -> Demand {
    Demand {
        cores: s.nodes.len() as u32,
        memory_mib: s.nodes.iter().map(|n| n.memory_mib + QEMU_OVERHEAD_MIB).sum(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub cores: u32,
    pub memory_mib: u64,
    pub jobs: u32,
}

/// The first pending cell that fits beside the running ones. When nothing runs, the first
/// pending cell starts even if it is bigger than the host (it would never fit otherwise).
pub fn pick(pending: &[Demand], running: &[Demand], cap: Capacity) -> Option<usize> {
    if pending.is_empty() {
        return None;
    }
    if running.is_empty() {
        return Some(0);
    }
    if running.len() as u32 >= cap.jobs {
        return None;
    }
    let cores: u32 = running.iter().map(|d| d.cores).sum();
    let mem: u64 = running.iter().map(|d| d.memory_mib).sum();
    pending
        .iter()
        .position(|d| cores + d.cores <= cap.cores && mem + d.memory_mib <= cap.memory_mib)
}

/// One cell's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub cell: Cell,
    /// reproduced, not-reproduced, crashed-differently, infra-error, or not-run (the budget ran
    /// out before it started).
    pub verdict: String,
    pub title: Option<String>,
    pub reason: String,
    /// When it started, in seconds after the nightly started.
    #[serde(default)]
    pub started_s: f64,
    pub seconds: f64,
    /// Workload start to the end of the run, when the run reproduced.
    pub time_to_reproduce: Option<f64>,
    /// Relative to the nightly's directory.
    pub run_dir: Option<String>,
    #[serde(default)]
    pub vmcores: Vec<String>,
    /// The known issue that explains this cell's crash (its title or regex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<String>,
}

/// A known issue in one nightly: where it showed, or how long it has been gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownStatus {
    pub name: String,
    pub link: Option<String>,
    pub note: Option<String>,
    /// Cell ids whose crash it explains in this nightly.
    pub cells: Vec<String>,
    /// Nightlies in a row, this one included, in which it showed nowhere.
    pub absent_for: u32,
    /// Absent for `gone_after` nightlies or more.
    pub possibly_fixed: bool,
}

/// How a cell compares with earlier nightlies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Passed (or was not there) before, crashes now: a regression.
    NewCrash,
    Fixed,
    StillFailing,
    /// Both passed and failed in the recent history.
    Flaky,
    StillPassing,
    /// No earlier result.
    New,
    /// Could not be tested this time (infra error or not run).
    Untested,
    /// Crashes, as a known issue says it does (`known-issues.toml`): no reason to fail.
    Known,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::NewCrash => "new crash",
            Change::Fixed => "fixed",
            Change::StillFailing => "still failing",
            Change::Flaky => "flaky",
            Change::StillPassing => "still passing",
            Change::New => "new",
            Change::Untested => "untested",
            Change::Known => "known",
        }
    }
}

/// pass / fail / none (untested) for one verdict.
fn outcome(verdict: &str) -> Option<bool> {
    match verdict {
        "not-reproduced" => Some(true),
        "reproduced" | "crashed-differently" => Some(false),
        _ => None,
    }
}

/// The change for a cell, given its verdicts in earlier nightlies (oldest first) and now.
pub fn compare(history: &[&str], now: &str) -> Change {
    let Some(pass) = outcome(now) else {
        return Change::Untested;
    };
    let past: Vec<bool> = history.iter().filter_map(|v| outcome(v)).collect();
    let Some(&last) = past.last() else {
        return if pass { Change::New } else { Change::NewCrash };
    };
    // Recent history: the last five tested results and now.
    let recent: Vec<bool> = past[past.len().saturating_sub(5)..]
        .iter()
        .copied()
        .chain(std::iter::once(pass))
        .collect();
    let flips = recent.windows(2).filter(|w| w[0] != w[1]).count();
    if flips >= 2 {
        return Change::Flaky;
    }
    match (last, pass) {
        (true, false) => Change::NewCrash,
        (false, true) => Change::Fixed,
        (false, false) => Change::StillFailing,
        (true, true) => Change::StillPassing,
    }
}

/// A whole nightly, as `nightly.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nightly {
    pub repro_version: String,
    pub started_at: u64,
    pub seconds: f64,
    pub shard: Option<(u32, u32)>,
    pub budget_s: Option<u64>,
    pub cells: Vec<CellResult>,
    /// Cell id → how it compares with the earlier nightlies in the same directory.
    pub changes: BTreeMap<String, Change>,
    /// Each known issue: where it showed this time, or for how long it has not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<KnownStatus>,
}

impl Nightly {
    /// Fills `changes` from earlier nightlies (oldest first).
    pub fn compare_with(&mut self, earlier: &[Nightly]) {
        self.changes.clear();
        for c in &self.cells {
            let id = c.cell.id();
            let hist: Vec<&str> = earlier
                .iter()
                .filter_map(|n| n.cells.iter().find(|x| x.cell.id() == id))
                .map(|x| x.verdict.as_str())
                .collect();
            self.changes.insert(id, compare(&hist, &c.verdict));
        }
    }

    /// 1 when anything newly crashes, 125 when a cell could not be tested, else 0 (a known
    /// issue is no reason to fail).
    pub fn exit_code(&self) -> i32 {
        if self.changes.values().any(|c| *c == Change::NewCrash) {
            1
        } else if self.changes.values().any(|c| *c == Change::Untested) {
            125
        } else {
            0
        }
    }

    /// Joins shard results into one nightly.
    pub fn merge(parts: Vec<Nightly>) -> Nightly {
        let mut cells: Vec<CellResult> = parts.iter().flat_map(|p| p.cells.iter().cloned()).collect();
        cells.sort_by(|a, b| a.cell.cmp(&b.cell));
        cells.dedup_by(|a, b| a.cell == b.cell);
        let mut changes = BTreeMap::new();
        for p in &parts {
            changes.extend(p.changes.iter().map(|(k, v)| (k.clone(), *v)));
        }
        Nightly {
            repro_version: parts.first().map(|p| p.repro_version.clone()).unwrap_or_default(),
            started_at: parts.iter().map(|p| p.started_at).min().unwrap_or(0),
            seconds: parts.iter().map(|p| p.seconds).fold(0.0, f64::max),
            shard: None,
            budget_s: parts.first().and_then(|p| p.budget_s),
            cells,
            changes,
            known: merge_known(&parts),
        }
    }
}

/// The shards' known-issue statuses as one: the cells of all, absent only where absent in all.
fn merge_known(parts: &[Nightly]) -> Vec<KnownStatus> {
    let mut merged: Vec<KnownStatus> = Vec::new();
    for k in parts.iter().flat_map(|p| &p.known) {
        match merged.iter_mut().find(|m| m.name == k.name) {
            Some(m) => {
                m.cells.extend(k.cells.iter().cloned());
                m.absent_for = m.absent_for.min(k.absent_for);
                m.possibly_fixed &= k.possibly_fixed;
            }
            None => merged.push(k.clone()),
        }
    }
    merged
}
