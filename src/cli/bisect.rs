//! `repro bisect`: the search of `crate::bisect` driven by real builds and runs.
//!
//! Each step builds the candidate (a kernel from the repository at that commit, or an
//! out-of-tree module), then runs the scenario. A tree that does not build is skipped; a run
//! lost to an infrastructure error is retried and never counted. The record is rewritten after
//! every run, so `--resume` continues after a kill and `--log` prints it.

use super::{err, exit, scenario_for_run, signals};
use crate::arch::Arch;
use crate::bisect::log::{self, Record, Step, Target};
use crate::bisect::{Bisect, Graph, Next, OtherCrash, Outcome, Params, State};
use crate::def::load::Roots;
use crate::run::{self, verdict::Verdict};
use crate::scenario::{KernelSource, Overrides, Scenario};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BisectArgs {
    /// A scenario name or path.
    pub scenario: String,
    /// A revision where the crash does not happen (repeatable).
    #[arg(long)]
    pub good: Vec<String>,
    /// A revision where the crash happens.
    #[arg(long)]
    pub bad: Option<String>,
    /// The git repository to walk [default: the module's source, or the kernel's git source].
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Find the commit that fixed the crash: --bad is the older revision that crashes, --good
    /// the newer one that does not.
    #[arg(long)]
    pub fix: bool,
    /// Bisect this kernel definition (kind source), built from the repository at each step.
    #[arg(long, conflicts_with = "module")]
    pub kernel: Option<String>,
    /// Bisect this `[[module]]` of the scenario (default when it has one with a `rev`).
    #[arg(long)]
    pub module: Option<String>,
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Wanted probability that the answer is right.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Most runs of one commit.
    #[arg(long, default_value_t = 30)]
    pub max_runs: u32,
    /// Runs of the crashing end, to measure the reproduction rate.
    #[arg(long, default_value_t = 6)]
    pub calibrate: u32,
    /// What a crash other than the expected one means for a commit.
    #[arg(long, value_enum, default_value = "skip")]
    pub other_crash: OtherCrash,
    /// Infrastructure errors tolerated per commit before the bisect stops.
    #[arg(long, default_value_t = 2)]
    pub infra_retries: u32,
    /// The bisect directory [default: runs/<scenario>/bisect-<time>; with --resume or --log,
    /// the newest one].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Continue the bisect in --dir (or the newest one of the scenario).
    #[arg(long)]
    pub resume: bool,
    /// Print the log of the bisect in --dir (or the newest one) in `git bisect log` style.
    #[arg(long, conflicts_with = "resume")]
    pub log: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only commits touching these paths are candidates.
    #[arg(last = true)]
    pub paths: Vec<String>,
}

/// Exit codes.
const FOUND: i32 = 0;
const AMBIGUOUS: i32 = 2;

#[derive(Serialize)]
struct CommitLine {
    id: String,
    subject: String,
    /// good, bad, skip or undecided, in the user's terms (bad = crashes).
    verdict: &'static str,
    #[serde(flatten)]
    tally: crate::bisect::Tally,
}

#[derive(Serialize)]
struct CommitInfo {
    id: String,
    subject: String,
    author: String,
    date: String,
}

#[derive(Serialize)]
struct Output {
    scenario: String,
    target: Target,
    fix: bool,
    /// found, ambiguous, stopped or interrupted.
    outcome: &'static str,
    commit: Option<CommitInfo>,
    candidates: Vec<CommitInfo>,
    reason: Option<String>,
    confidence: f64,
    reproduction_rate: Option<f64>,
    runs_needed_for_clean: u32,
    runs: usize,
    commits_tested: usize,
    range: usize,
    seconds: f64,
    commits: Vec<CommitLine>,
    dir: String,
}

fn newest(base: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bisect-"))
                && p.join(log::FILE).is_file()
        })
        .collect();
    v.sort();
    v.pop()
}

fn commit_info(repo: &git2::Repository, id: &str, subject: &str) -> CommitInfo {
    let (author, date) = git2::Oid::from_str(id)
        .ok()
        .and_then(|o| repo.find_commit(o).ok())
        .map(|c| {
            let a = c.author();
            (
                format!("{} <{}>", a.name().unwrap_or("?"), a.email().unwrap_or("?")),
                crate::timefmt::utc(a.when().seconds()),
            )
        })
        .unwrap_or_default();
    CommitInfo {
        id: id.to_string(),
        subject: subject.to_string(),
        author,
        date,
    }
}

fn resolve(repo: &git2::Repository, rev: &str) -> Result<git2::Oid, String> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|e| format!("revision `{rev}`: {}", e.message()))
}

/// Works out what is bisected and in which repository.
fn target(roots: &Roots, s: &Scenario, a: &BisectArgs) -> Result<Target, String> {
    let module = match &a.module {
        Some(m) => Some(
            s.modules
                .iter()
                .find(|x| &x.name == m)
                .ok_or_else(|| format!("--module: scenario `{}` has no [[module]] named `{m}`", s.name))?,
        ),
        None if a.kernel.is_none() => s.modules.iter().find(|m| m.rev.is_some()),
        None => None,
    };
    if let Some(m) = module {
        let repo = a.repo.clone().unwrap_or_else(|| m.source.clone());
        return Ok(Target {
            kind: "module".into(),
            name: m.name.clone(),
            repo: repo.display().to_string(),
        });
    }
    let kdef = run::node_kernel(roots, s, &s.nodes[0]).map_err(|e| crate::errors::chain(&*e))?;
    let repo = match (&a.repo, kdef.git_source()) {
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
        name: s.nodes[0].kernel.clone(),
        repo,
    })
}

/// The scenario for one candidate commit.
fn at_commit(s: &Scenario, t: &Target, id: &str) -> Scenario {
    let mut s = s.clone();
    if t.kind == "module" {
        for m in s.modules.iter_mut().filter(|m| m.name == t.name) {
            m.source = PathBuf::from(&t.repo);
            m.rev = Some(id.to_string());
        }
    } else {
        s.kernel_source = Some(KernelSource {
            repo: PathBuf::from(&t.repo),
            rev: id.to_string(),
        });
    }
    s
}

/// Builds what the candidate needs, before running it, so that a tree that does not build is
/// told apart from a run that failed.
fn build(roots: &Roots, s: &Scenario, t: &Target) -> Result<(), Outcome> {
    for n in &s.nodes {
        let kdef = run::node_kernel(roots, s, n).map_err(|e| Outcome::Infra {
            why: crate::errors::chain(&*e),
        })?;
        let ui = super::build::BuildUi::new(&format!("{} {}", kdef.name, n.arch));
        let k = kdef.build(n.arch, &|e| ui.on(e));
        ui.finish();
        let k = k.map_err(|e| {
            let why = crate::errors::chain(&e);
            if e.is_build_failure() && t.kind == "kernel" {
                Outcome::BuildFailed { why }
            } else {
                Outcome::Infra { why }
            }
        })?;
        for m in &s.modules {
            crate::module::build(m, &k, &|_| {}).map_err(|e| {
                let why = crate::errors::chain(&e);
                match e {
                    crate::module::Error::Build { .. } | crate::module::Error::Git { .. } if m.name == t.name => {
                        Outcome::BuildFailed { why }
                    }
                    _ => Outcome::Infra { why },
                }
            })?;
        }
    }
    Ok(())
}

pub async fn bisect_cmd(roots: &Roots, a: BisectArgs) -> i32 {
    let o = Overrides {
        arch: a.arch,
        kernel: a.kernel.clone(),
        ..Default::default()
    };
    let s = match scenario_for_run(roots, &a.scenario, &o, None) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let base = PathBuf::from("runs").join(&s.name);
    let existing = a.resume || a.log;
    let dir = match (&a.dir, existing) {
        (Some(d), _) => d.clone(),
        (None, true) => match newest(&base) {
            Some(d) => d,
            None => {
                err(format!("no bisect of `{}` under {}", s.name, base.display()));
                return exit::USAGE;
            }
        },
        (None, false) => base.join(format!("bisect-{}", super::progress::timestamp())),
    };
    let rec = if existing {
        match Record::load(&dir) {
            Ok(r) => r,
            Err(e) => {
                err(e);
                return exit::USAGE;
            }
        }
    } else {
        match new_record(roots, &s, &a) {
            Ok(r) => r,
            Err(e) => {
                err(e);
                return exit::USAGE;
            }
        }
    };
    let repo = match git2::Repository::open(&rec.target.repo) {
        Ok(r) => r,
        Err(e) => {
            err(format!("{}: {}", rec.target.repo, e.message()));
            return exit::USAGE;
        }
    };
    let (olds, new) = rec.ends();
    let ids = |v: &[String]| -> Vec<git2::Oid> { v.iter().filter_map(|x| git2::Oid::from_str(x).ok()).collect() };
    let graph = match git2::Oid::from_str(&new)
        .map_err(|e| e.message().to_string())
        .and_then(|n| Graph::from_repo(&repo, n, &ids(&olds), &rec.paths).map_err(|e| e.to_string()))
    {
        Ok(g) => g,
        Err(e) => {
            err(format!("bisect range: {e}"));
            return exit::USAGE;
        }
    };
    let mut b = Bisect::new(graph, rec.params.clone());
    if let Err(e) = rec.replay(&mut b) {
        err(e);
        return exit::USAGE;
    }
    if a.log {
        print!("{}", log::render(&rec, &b));
        return 0;
    }
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| rec.save(&dir)) {
        err(format!("cannot write {}: {e}", dir.display()));
        return exit::CANNOT_TEST;
    }
    let s = match rec.arch {
        Some(arch) if a.arch.is_none() => {
            let mut s = s;
            s.apply(&Overrides {
                arch: Some(arch),
                ..Default::default()
            });
            s
        }
        _ => s,
    };
    drive(roots, &s, rec, b, &dir, &repo, a.json).await
}

fn new_record(roots: &Roots, s: &Scenario, a: &BisectArgs) -> Result<Record, String> {
    let (Some(bad), false) = (&a.bad, a.good.is_empty()) else {
        return Err("a new bisect needs --bad REV and at least one --good REV".into());
    };
    if !(0.5..1.0).contains(&a.confidence) {
        return Err("--confidence must be at least 0.5 and below 1".into());
    }
    if a.max_runs == 0 || a.calibrate == 0 || a.calibrate > a.max_runs {
        return Err("--max-runs and --calibrate must be at least 1, and --calibrate at most --max-runs".into());
    }
    if a.fix && a.good.len() > 1 {
        return Err("--fix takes one --good (the fixed revision)".into());
    }
    let t = target(roots, s, a)?;
    let repo = git2::Repository::open(&t.repo).map_err(|e| format!("{}: {}", t.repo, e.message()))?;
    let bad = resolve(&repo, bad)?.to_string();
    let good = a
        .good
        .iter()
        .map(|g| resolve(&repo, g).map(|o| o.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record {
        scenario: s.path.display().to_string(),
        arch: a.arch,
        target: t,
        bad,
        good,
        paths: a.paths.clone(),
        params: Params {
            confidence: a.confidence,
            max_runs: a.max_runs,
            calibrate: a.calibrate,
            infra_retries: a.infra_retries,
            other_crash: a.other_crash,
            fix: a.fix,
        },
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        steps: Vec::new(),
    })
}

async fn drive(
    roots: &Roots,
    s: &Scenario,
    mut rec: Record,
    mut b: Bisect,
    dir: &Path,
    repo: &git2::Repository,
    json: bool,
) -> i32 {
    let t0 = Instant::now();
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    tokio::spawn(signals(cancel_tx));
    eprintln!(
        "bisecting {} {} in {} ({} commits in range{}); record: {}",
        rec.target.kind,
        rec.target.name,
        rec.target.repo,
        b.graph.range().len(),
        if rec.params.fix { ", looking for the fix" } else { "" },
        dir.join(log::FILE).display()
    );
    let mut interrupted = false;
    let next = loop {
        let next = b.next();
        let Next::Test(i) = next else { break next };
        if *cancel.borrow() {
            interrupted = true;
            break next;
        }
        let id = b.graph.ids[i].clone();
        let short = b.graph.short(i);
        let states: Vec<State> = (0..b.graph.len()).map(|j| b.state(j)).collect();
        let left = b.graph.search(&states).0.len();
        eprintln!(
            "[{:>6.0}s] {short} {} — {left} commit(s) in question, clean needs {} run(s){}",
            t0.elapsed().as_secs_f64(),
            b.graph.subjects[i],
            b.runs_needed(),
            b.rate()
                .map_or(String::new(), |p| format!(", reproduction rate {p:.2}"))
        );
        let cand = at_commit(s, &rec.target, &id);
        let started = Instant::now();
        let (roots2, cand2, t2) = (roots.clone(), cand.clone(), rec.target.clone());
        let built = tokio::task::spawn_blocking(move || build(&roots2, &cand2, &t2))
            .await
            .unwrap_or_else(|e| Err(Outcome::Infra { why: e.to_string() }));
        let n = b.tallies[i].runs + b.tallies[i].infra + 1;
        let run_dir = dir.join(format!("{short}-{n}"));
        let (outcome, run_dir) = match built {
            Err(o) => (o, None),
            Ok(()) => {
                let _ = std::fs::create_dir_all(&run_dir);
                let report = run::run_quiet(cand, roots.clone(), run_dir.clone(), cancel.clone(), false).await;
                if *cancel.borrow() {
                    interrupted = true;
                    break Next::Test(i);
                }
                let title = report
                    .crash
                    .as_ref()
                    .or(report.crashes.first())
                    .map(|c| c.title.clone());
                let o = match report.verdict {
                    Verdict::Reproduced => Outcome::Reproduced,
                    Verdict::NotReproduced => Outcome::Clean,
                    Verdict::CrashedDifferently => Outcome::OtherCrash {
                        title: title.unwrap_or_default(),
                    },
                    Verdict::InfraError => Outcome::Infra { why: report.reason },
                };
                (o, Some(run_dir.display().to_string()))
            }
        };
        let shown = outcome.describe();
        eprintln!("          {short}: {shown} ({:.0}s)", started.elapsed().as_secs_f64());
        b.observe(i, &outcome);
        rec.steps.push(Step {
            commit: id,
            outcome,
            run_dir,
            seconds: started.elapsed().as_secs_f64(),
        });
        if let Err(e) = rec.save(dir) {
            err(format!("cannot write {}: {e}", dir.join(log::FILE).display()));
            return exit::CANNOT_TEST;
        }
    };
    let _ = std::fs::write(dir.join("log"), log::render(&rec, &b));
    let g = &b.graph;
    let (outcome, commit, candidates, reason, code) = match &next {
        _ if interrupted => ("interrupted", None, vec![], None, exit::INTERRUPTED),
        Next::Found(i) => (
            "found",
            Some(commit_info(repo, &g.ids[*i], &g.subjects[*i])),
            vec![],
            None,
            FOUND,
        ),
        Next::Ambiguous(v) => (
            "ambiguous",
            None,
            v.iter()
                .map(|&i| commit_info(repo, &g.ids[i], &g.subjects[i]))
                .collect(),
            Some("skipped commits hide the answer".to_string()),
            AMBIGUOUS,
        ),
        Next::Stop(why) => ("stopped", None, vec![], Some(why.clone()), exit::CANNOT_TEST),
        Next::Test(_) => ("stopped", None, vec![], None, exit::CANNOT_TEST),
    };
    let out = Output {
        scenario: s.name.clone(),
        target: rec.target.clone(),
        fix: rec.params.fix,
        outcome,
        commit,
        candidates,
        reason,
        confidence: b.confidence(),
        reproduction_rate: b.rate(),
        runs_needed_for_clean: b.runs_needed(),
        runs: rec.steps.len(),
        commits_tested: b.tallies.iter().filter(|t| t.runs > 0 || t.build_failed).count(),
        range: g.range().len(),
        seconds: t0.elapsed().as_secs_f64(),
        commits: (0..g.len())
            .filter(|&i| b.tallies[i].runs > 0 || b.tallies[i].build_failed || b.tallies[i].infra > 0)
            .map(|i| CommitLine {
                id: g.ids[i].clone(),
                subject: g.subjects[i].clone(),
                verdict: match b.state(i) {
                    State::Skip => "skip",
                    State::Pending => "undecided",
                    _ if b.tallies[i].reproduced > 0 => "bad",
                    _ => "good",
                },
                tally: b.tallies[i].clone(),
            })
            .collect(),
        dir: dir.display().to_string(),
    };
    let text = serde_json::to_string_pretty(&out).unwrap_or_default();
    let _ = std::fs::write(dir.join("result.json"), format!("{text}\n"));
    if json {
        println!("{text}");
    } else {
        summary(&out);
    }
    code
}

fn summary(o: &Output) {
    println!("bisect {}: {}", o.scenario, o.outcome);
    let word = if o.fix {
        "first fixed commit"
    } else {
        "first bad commit"
    };
    if let Some(c) = &o.commit {
        println!("  {word}: {} {}", c.id, c.subject);
        println!("    author {}, {}", c.author, c.date);
    }
    for c in &o.candidates {
        println!("  possible: {} {}", c.id, c.subject);
    }
    if let Some(r) = &o.reason {
        println!("  reason: {r}");
    }
    println!(
        "  confidence {:.3} (reproduction rate {}; a clean verdict needs {} run(s))",
        o.confidence,
        o.reproduction_rate.map_or("unknown".into(), |p| format!("{p:.2}")),
        o.runs_needed_for_clean
    );
    println!(
        "  {} run(s) on {} of {} commit(s) in {:.0}s",
        o.runs, o.commits_tested, o.range, o.seconds
    );
    for c in &o.commits {
        println!(
            "    {:<8} {} {:>2} run(s) {:>2} reproduced{}{}  {}",
            c.verdict,
            &c.id[..12],
            c.tally.runs,
            c.tally.reproduced,
            if c.tally.other > 0 {
                format!(", {} other crash(es)", c.tally.other)
            } else {
                String::new()
            },
            if c.tally.build_failed { ", does not build" } else { "" },
            c.subject
        );
    }
    println!("  log: repro bisect {} --log --dir {}", o.scenario, o.dir);
}
