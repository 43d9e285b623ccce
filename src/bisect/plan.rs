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

/// A new record for `req`, with its ends resolved to commits.
pub fn new_record(roots: &Roots, scenario: &Scenario, req: &Request) -> Result<Record, String> {
    let (Some(bad), false) = (&req.bad, req.good.is_empty()) else {
        return Err("a new bisect needs --bad REV and at least one --good REV".into());
    };
    if !(0.5..1.0).contains(&req.confidence) {
        return Err("--confidence must be at least 0.5 and below 1".into());
    }
    if req.max_runs == 0 || req.calibrate == 0 || req.calibrate > req.max_runs {
        return Err("--max-runs and --calibrate must be at least 1, and --calibrate at most --max-runs".into());
    }
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
    Ok(Record {
        scenario: scenario.path.display().to_string(),
        arch: req.arch,
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
        },
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        steps: Vec::new(),
    })
}

/// The record's repository, and the search over its range with every recorded test replayed.
pub fn open(record: &Record) -> Result<(git2::Repository, Bisect), String> {
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
    Ok((repo, bisect))
}

/// The scenario for one candidate commit.
pub fn at_commit(scenario: &Scenario, target: &Target, id: &str) -> Scenario {
    let mut scenario = scenario.clone();
    if target.kind == "module" {
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
