//! What a bisect is about, before anything runs: the target (a source kernel or an out-of-tree
//! module) and its repository, a new record from the user's ends, and a record opened again as a
//! search over its commit graph.

use super::graph::Graph;
use super::log::{Record, Target};
use super::{Bisect, OtherCrash, Params};
use crate::def::load::Roots;
use crate::scenario::{KernelSource, Scenario};
use std::path::{Path, PathBuf};

/// A new bisect, as the user asks for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub good: Vec<String>,
    pub bad: Option<String>,
    /// The repository to walk [default: the module's source, or the kernel's git source].
    pub repo: Option<PathBuf>,
    pub fix: bool,
    /// Bisect this source kernel (else the scenario's first `[[module]]` with a `rev`).
    pub kernel: Option<String>,
    pub module: Option<String>,
    pub arch: Option<crate::arch::Arch>,
    pub confidence: f64,
    pub max_runs: u32,
    pub calibrate: u32,
    pub other_crash: OtherCrash,
    pub infra_retries: u32,
    pub paths: Vec<String>,
    /// `--debian FROM..TO`: bisect the archive's released packages instead of commits.
    pub debian: Option<String>,
    /// Confirm a found kernel culprit by revert (`--no-confirm`: false).
    pub confirm: bool,
}

/// The newest bisect directory (`bisect-*` with a record) under `base`.
pub fn newest(base: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bisect-"))
                && p.join(super::log::FILE).is_file()
        })
        .collect();
    v.sort();
    v.pop()
}

fn resolve(repo: &git2::Repository, rev: &str) -> Result<git2::Oid, String> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|e| format!("revision `{rev}`: {}", e.message()))
}

/// Works out what is bisected and in which repository.
pub fn target(roots: &Roots, scenario: &Scenario, req: &Request) -> Result<Target, String> {
    let module = match &req.module {
        Some(m) => Some(
            scenario
                .modules
                .iter()
                .find(|x| &x.name == m)
                .ok_or_else(|| format!("--module: scenario `{}` has no [[module]] named `{m}`", scenario.name))?,
        ),
        None if req.kernel.is_none() => scenario.modules.iter().find(|m| m.rev.is_some()),
        None => None,
    };
    if let Some(m) = module {
        let repo = req.repo.clone().unwrap_or_else(|| m.source.clone());
        return Ok(Target {
            kind: "module".into(),
            name: m.name.clone(),
            repo: repo.display().to_string(),
        });
    }
    let kdef = crate::run::node_kernel(roots, scenario, &scenario.nodes[0]).map_err(|e| crate::errors::chain(&*e))?;
    let repo = match (&req.repo, kdef.git_source()) {
        (Some(r), _) => r.display().to_string(),
        (None, Some((r, _))) if !r.contains("://") => r,
        _ => {
            return Err(format!(
                "kernel `{}` is not built from a local git repository: name one with --repo",
                kdef.name
            ))
        }
    };
    if kdef.kind != crate::kernel::Kind::Source {
        return Err(format!(
            "kernel `{}` is kind `{}`; bisecting a kernel needs kind `source` (its config recipe is used at every commit)",
            kdef.name,
            crate::kernel::kind_name(kdef.kind)
        ));
    }
    Ok(Target {
        kind: "kernel".into(),
        name: scenario.nodes[0].kernel.clone(),
        repo,
    })
}

/// The ends of a new bisect, resolved (commit ids, or `debian:` package names), with its
/// target: (target, bad, good).
fn resolve_ends(roots: &Roots, scenario: &Scenario, req: &Request) -> Result<(Target, String, Vec<String>), String> {
    if let Some(range) = &req.debian {
        let arch = req.arch.unwrap_or(scenario.nodes[0].arch);
        let all = crate::kernel::available().map_err(|e| crate::errors::chain(&e))?;
        let (older, newer) = super::debian::ends(range, arch, &all)?;
        let target = Target {
            kind: super::debian::KIND.into(),
            name: format!("cloud kernels for {arch}"),
            repo: "the Debian archive".into(),
        };
        // Without --fix the older package is good; with --fix it is the one that crashes.
        return Ok(match req.fix {
            false => (target, newer.name, vec![older.name]),
            true => (target, older.name, vec![newer.name]),
        });
    }
    let (Some(bad), false) = (&req.bad, req.good.is_empty()) else {
        return Err("a new bisect needs --bad REV and at least one --good REV (or --debian FROM..TO)".into());
    };
    if req.fix && req.good.len() > 1 {
        return Err("--fix takes one --good (the fixed revision)".into());
    }
    let target = target(roots, scenario, req)?;
    let repo = git2::Repository::open(&target.repo).map_err(|e| format!("{}: {}", target.repo, e.message()))?;
    let bad = resolve(&repo, bad)?.to_string();
    let good = req
        .good
        .iter()
        .map(|g| resolve(&repo, g).map(|o| o.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((target, bad, good))
}

/// A new record for `req`, with its ends resolved to commits (or packages).
pub fn new_record(roots: &Roots, scenario: &Scenario, req: &Request) -> Result<Record, String> {
    if !(0.5..1.0).contains(&req.confidence) {
        return Err("--confidence must be at least 0.5 and below 1".into());
    }
    if req.max_runs == 0 || req.calibrate == 0 || req.calibrate > req.max_runs {
        return Err("--max-runs and --calibrate must be at least 1, and --calibrate at most --max-runs".into());
    }
    let (target, bad, good) = resolve_ends(roots, scenario, req)?;
    let arch = match target.kind.as_str() {
        super::debian::KIND => Some(req.arch.unwrap_or(scenario.nodes[0].arch)),
        _ => req.arch,
    };
    Ok(Record {
        scenario: scenario.path.display().to_string(),
        arch,
        target,
        bad,
        good,
        paths: req.paths.clone(),
        params: Params {
            confidence: req.confidence,
            max_runs: req.max_runs,
            calibrate: req.calibrate,
            infra_retries: req.infra_retries,
            other_crash: req.other_crash,
            fix: req.fix,
            confirm: req.confirm,
        },
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        steps: Vec::new(),
    })
}

/// The record's repository (none for packages), and the search over its range with every
/// recorded test replayed.
pub fn open(record: &Record) -> Result<(Option<git2::Repository>, Bisect), String> {
    if record.target.kind == super::debian::KIND {
        let (olds, new) = record.ends();
        let arch = record.arch.unwrap_or(crate::arch::Arch::X86_64);
        let all = crate::kernel::available().map_err(|e| crate::errors::chain(&e))?;
        let graph = super::debian::graph(&all, arch, &olds[0], &new)?;
        let mut bisect = Bisect::new(graph, record.params.clone());
        record.replay(&mut bisect)?;
        return Ok((None, bisect));
    }
    let repo =
        git2::Repository::open(&record.target.repo).map_err(|e| format!("{}: {}", record.target.repo, e.message()))?;
    let (olds, new) = record.ends();
    let ids: Vec<git2::Oid> = olds.iter().filter_map(|x| git2::Oid::from_str(x).ok()).collect();
    let graph = git2::Oid::from_str(&new)
        .map_err(|e| e.message().to_string())
        .and_then(|n| Graph::from_repo(&repo, n, &ids, &record.paths).map_err(|e| e.to_string()))
        .map_err(|e| format!("bisect range: {e}"))?;
    let mut bisect = Bisect::new(graph, record.params.clone());
    record.replay(&mut bisect)?;
    Ok((Some(repo), bisect))
}

/// The scenario for one candidate commit (or package: every node boots it).
pub fn at_commit(scenario: &Scenario, target: &Target, id: &str) -> Scenario {
    let mut scenario = scenario.clone();
    if target.kind == super::debian::KIND {
        for n in &mut scenario.nodes {
            n.kernel = id.to_string();
        }
    } else if target.kind == "module" {
        for m in scenario.modules.iter_mut().filter(|m| m.name == target.name) {
            m.source = PathBuf::from(&target.repo);
            m.rev = Some(id.to_string());
        }
    } else {
        scenario.kernel_source = Some(KernelSource {
            repo: PathBuf::from(&target.repo),
            rev: id.to_string(),
        });
    }
    scenario
}
