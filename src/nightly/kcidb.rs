//! A nightly in KernelCI's KCIDB I/O format (schema 5.3), pure: a checkout per kernel, a build
//! per kernel and arch, a test per cell, an issue per crash title and an incident per crashed
//! cell. Statuses as KCIDB defines them: a crash is FAIL (the tested code is faulty), an
//! infra-error is MISS (the harness failed, nothing is known) or ERROR when the workload itself
//! could not complete, a cell never run is SKIP, not-reproduced is PASS.

use super::known::Known;
use super::plan::{CellResult, Nightly};
use crate::report::KernelInfo;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The origin repro's objects carry (KCIDB: `^[a-z0-9_]+$`).
pub const ORIGIN: &str = "repro";

/// What the report knows of each cell's run, beyond nightly.json: its kernel, and where its
/// files are (an absolute path or URL prefix for `log_url`).
#[derive(Debug, Clone, Default)]
pub struct CellRun {
    pub kernel: Option<KernelInfo>,
    /// The run directory as a URL (`file:///...` or a web server's), without a trailing slash.
    pub url: Option<String>,
    /// The workload itself could not complete (a KCIDB ERROR rather than MISS).
    pub test_failed: bool,
}

/// ISO 8601 with its zone, as KCIDB's `date-time` wants it.
fn iso(t: f64) -> String {
    format!("{}+00:00", super::report::iso(t.floor() as u64))
}

/// The arch names KernelCI reports use.
fn arch(a: crate::arch::Arch) -> &'static str {
    match a {
        crate::arch::Arch::X86_64 => "x86_64",
        crate::arch::Arch::Aarch64 => "arm64",
    }
}

/// A stable id part: KCIDB ids are `origin:anything`; ours stay readable.
fn part(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
        .collect()
}

/// The issue id of a crash title: the same title is the same issue in every nightly.
pub fn issue_id(title: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(title.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{ORIGIN}:title-{hex}")
}

pub fn status(c: &CellResult, run: &CellRun) -> &'static str {
    match c.verdict.as_str() {
        "reproduced" | "crashed-differently" => "FAIL",
        "not-reproduced" => "PASS",
        "not-run" => "SKIP",
        _ if run.test_failed => "ERROR",
        _ => "MISS",
    }
}

/// The whole nightly as one KCIDB I/O document.
pub fn render(n: &Nightly, runs: &BTreeMap<String, CellRun>, known: &Known) -> Value {
    let night = format!("n{}", n.started_at);
    let empty = CellRun::default();
    let run_of = |c: &CellResult| runs.get(&c.cell.id()).unwrap_or(&empty);
    let mut checkouts = BTreeMap::new();
    let mut builds = BTreeMap::new();
    let (mut tests, mut issues, mut incidents) = (Vec::new(), BTreeMap::new(), Vec::new());
    for c in &n.cells {
        let run = run_of(c);
        let checkout_id = format!("{ORIGIN}:{night}-{}", part(&c.cell.kernel));
        let build_id = format!("{checkout_id}-{}", arch(c.cell.arch));
        let test_id = format!("{build_id}-{}", part(&c.cell.scenario));
        checkouts
            .entry(checkout_id.clone())
            .or_insert_with(|| checkout(&checkout_id, &c.cell.kernel, run.kernel.as_ref(), n.started_at));
        builds
            .entry(build_id.clone())
            .or_insert_with(|| build(&build_id, &checkout_id, c, run.kernel.as_ref()));
        tests.push(test(&test_id, &build_id, c, run, n));
        let crashed = matches!(c.verdict.as_str(), "reproduced" | "crashed-differently");
        if let (true, Some(title)) = (crashed, c.title.as_deref()) {
            let issue = issue_id(title);
            let explained = known.explaining(c);
            issues.entry(issue.clone()).or_insert_with(|| {
                let mut v = json!({
                    "id": issue, "version": 1, "origin": ORIGIN,
                    "report_subject": title, "culprit": {"code": true},
                });
                if let Some(k) = explained {
                    if let Some(l) = &k.link {
                        v["report_url"] = json!(l);
                    }
                    v["comment"] = json!(k.note.clone().unwrap_or_else(|| format!("known issue: {}", k.name)));
                }
                v
            });
            incidents.push(json!({
                "id": format!("{test_id}-{}", issue.trim_start_matches("repro:")),
                "origin": ORIGIN, "issue_id": issue, "issue_version": 1,
                "test_id": test_id, "present": true,
            }));
        }
    }
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts.into_values().collect::<Vec<_>>(),
        "builds": builds.into_values().collect::<Vec<_>>(),
        "tests": tests,
        "issues": issues.into_values().collect::<Vec<_>>(),
        "incidents": incidents,
    })
}

fn checkout(id: &str, kernel: &str, info: Option<&KernelInfo>, started_at: u64) -> Value {
    let mut v = json!({
        "id": id, "origin": ORIGIN, "tree_name": kernel,
        "start_time": iso(started_at as f64), "valid": true,
    });
    if let Some(k) = info {
        v["comment"] = json!(format!("{} ({})", k.release.as_deref().unwrap_or("?"), k.origin));
        v["misc"] = json!({"release": k.release, "origin": k.origin});
    }
    v
}

fn build(id: &str, checkout_id: &str, c: &CellResult, info: Option<&KernelInfo>) -> Value {
    let mut v = json!({
        "id": id, "checkout_id": checkout_id, "origin": ORIGIN,
        "architecture": arch(c.cell.arch), "config_name": c.cell.kernel,
    });
    if let Some(k) = info {
        // The kernel booted for this cell: it was built (or is a distro package) and usable.
        v["status"] = json!("PASS");
        v["comment"] = json!(k.origin);
    }
    v
}

fn test(id: &str, build_id: &str, c: &CellResult, run: &CellRun, n: &Nightly) -> Value {
    let change = n.changes.get(&c.cell.id()).map(|ch| ch.as_str());
    let mut v = json!({
        "id": id, "build_id": build_id, "origin": ORIGIN,
        "path": format!("repro.{}", part(&c.cell.scenario).replace('.', "_")),
        "status": status(c, run),
        "start_time": iso(n.started_at as f64 + c.started_s),
        "duration": c.seconds,
        "comment": c.title.clone().unwrap_or_else(|| c.reason.lines().next().unwrap_or("").to_string()),
        "misc": {"verdict": c.verdict, "change": change, "known": c.known, "cell": c.cell.id()},
    });
    if let Some(url) = &run.url {
        v["log_url"] = json!(format!("{url}/console.log"));
    }
    v
}
