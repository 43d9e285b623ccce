//! Nightly directories on disk: the host's capacity, earlier nightlies beside one, writing a
//! nightly's reports, and merging shard directories.

use super::plan::{Capacity, Nightly};
use super::report;
use std::path::{Path, PathBuf};

/// A nightly's record in its directory.
pub const NIGHTLY_JSON: &str = "nightly.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the reports into {}", dir.display())]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Read { path: PathBuf, why: String },
}

/// The host's cores, its available memory less 1 GiB for everything else, and `jobs` (or the
/// cores).
pub fn host_capacity(jobs: Option<u32>) -> Capacity {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(4096, |kib| kib / 1024);
    Capacity {
        cores,
        memory_mib: avail.saturating_sub(1024),
        jobs: jobs.unwrap_or(cores).max(1),
    }
}

/// Earlier nightlies: directories beside `out` holding a nightly.json, oldest first.
pub fn history(out: &Path) -> Vec<(String, Nightly)> {
    let Some(parent) = out.parent() else { return Vec::new() };
    let me = out.file_name().map(|n| n.to_os_string());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.file_name().map(|n| n.to_os_string()) != me && d.join(NIGHTLY_JSON).is_file());
    dirs.sort();
    dirs.into_iter()
        .filter_map(|d| {
            let n: Nightly = serde_json::from_str(&std::fs::read_to_string(d.join(NIGHTLY_JSON)).ok()?).ok()?;
            Some((d.file_name()?.to_string_lossy().into_owned(), n))
        })
        .filter(|(_, n)| n.started_at > 0)
        .collect()
}

/// Writes nightly.json, junit.xml and report.html into `out`.
pub fn write_all(out: &Path, n: &Nightly, hist: &[(String, Nightly)]) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(n).map_err(std::io::Error::other)?;
        std::fs::write(out.join(NIGHTLY_JSON), json + "\n")?;
        std::fs::write(out.join("junit.xml"), report::junit(n))?;
        std::fs::write(out.join("report.html"), report::html(n, hist))
    };
    write().map_err(|source| Error::Write {
        dir: out.to_path_buf(),
        source,
    })
}

/// Shard directories joined into one nightly in `out` (links stay valid from there).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Nightly, Error> {
    std::fs::create_dir_all(out).map_err(|source| Error::Write {
        dir: out.to_path_buf(),
        source,
    })?;
    let out = out.canonicalize().unwrap_or(out.to_path_buf());
    let mut parts = Vec::new();
    for d in dirs {
        let path = d.join(NIGHTLY_JSON);
        let mut n: Nightly = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|why| Error::Read { path, why })?;
        let base = d.canonicalize().unwrap_or(d.clone());
        for c in &mut n.cells {
            let fix = |r: &str| relative(&out, &base.join(r));
            c.run_dir = c.run_dir.as_deref().map(fix);
            c.vmcores = c.vmcores.iter().map(|v| fix(v)).collect();
        }
        parts.push(n);
    }
    let merged = Nightly::merge(parts);
    write_all(&out, &merged, &history(&out))?;
    Ok(merged)
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

/// What KCIDB needs of each cell's run beyond nightly.json, read from the cell's report.json
/// in `dir` (a missing or unreadable report leaves the cell without kernel or log link).
pub fn cell_runs(dir: &Path, n: &Nightly) -> std::collections::BTreeMap<String, super::kcidb::CellRun> {
    let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    n.cells
        .iter()
        .filter_map(|c| {
            let run_dir = abs.join(c.run_dir.as_ref()?);
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(run_dir.join(crate::run::REPORT_JSON)).ok()?).ok()?;
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let kernel = report
                .get("kernel")
                .filter(|k| k.is_object())
                .map(|k| crate::report::KernelInfo {
                    name: text(&k["name"]).unwrap_or_default(),
                    release: text(&k["release"]),
                    origin: text(&k["origin"]).unwrap_or_default(),
                    vmlinux: None,
                    gdb_scripts: None,
                    modules: Vec::new(),
                });
            let outcome = report["workload"]["outcome"].as_str().unwrap_or("");
            let run = super::kcidb::CellRun {
                kernel,
                url: Some(format!("file://{}", run_dir.display())),
                test_failed: outcome.starts_with("Failed"),
            };
            Some((c.cell.id(), run))
        })
        .collect()
}

/// Writes the nightly in `dir` as a KCIDB I/O document to `file`.
pub fn write_kcidb(dir: &Path, n: &Nightly, known: &super::known::Known, file: &Path) -> Result<(), Error> {
    let doc = super::kcidb::render(n, &cell_runs(dir, n), known);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    std::fs::write(file, text).map_err(|source| Error::Write {
        dir: file.to_path_buf(),
        source,
    })
}

/// Reads the nightly.json in `dir`.
pub fn read(dir: &Path) -> Result<Nightly, Error> {
    let path = dir.join(NIGHTLY_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Read {
        path: path.clone(),
        why: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Read {
        path,
        why: e.to_string(),
    })
}
