//! The bisect loop: each step asks the search for a commit, builds and runs it through a
//! [`Tester`], and records what it showed. A tree that does not build is skipped; a run lost to
//! an infrastructure error is retried and never counted. The record is rewritten after every
//! test, so `--resume` continues after a kill.

use super::confirm::{self, Confirmation, Status};
use super::log::{self, Attempt, Record, Target};
use super::plan::at_commit;
use super::{Bisect, Next, Observation, State, Tally};
use crate::errors::WriteError;
use crate::run::verdict::Verdict;
use crate::scenario::Scenario;
use crate::tester::{run_caught, BuildError, Part, Tester, Trial};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// The answer, as `result.json` holds it.
pub const RESULT: &str = "result.json";

/// A bisect to drive.
pub struct Job<'a> {
    /// The scenario, with the record's arch applied.
    pub scenario: &'a Scenario,
    pub record: Record,
    /// The search, with the record replayed.
    pub bisect: Bisect,
    pub dir: &'a Path,
    /// The repository walked (none when packages are bisected).
    pub repo: Option<&'a git2::Repository>,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        target: Target,
        commits: usize,
        fix: bool,
        record: PathBuf,
    },
    Testing {
        elapsed: f64,
        short: String,
        subject: String,
        /// Commits still in question.
        left: usize,
        runs_needed: u32,
        rate: Option<f64>,
    },
    Tested {
        short: String,
        shown: String,
        seconds: f64,
    },
    /// The found commit is being reverted on the reproducing end.
    Confirming {
        short: String,
    },
}

/// How the bisect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    Found,
    /// A commit was found, but reverting it did not make the crash go (with --fix, come
    /// back), or the revert does not apply: it is a candidate, not the culprit.
    Unconfirmed,
    /// Skipped commits hide the answer.
    Ambiguous,
    Stopped,
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitInfo {
    pub id: String,
    pub subject: String,
    pub author: String,
    pub date: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitLine {
    pub id: String,
    pub subject: String,
    /// good, bad, skip or undecided, in the user's terms (bad = crashes).
    pub verdict: &'static str,
    #[serde(flatten)]
    pub tally: Tally,
}

/// `result.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BisectResult {
    pub scenario: String,
    pub target: Target,
    pub fix: bool,
    pub outcome: Ended,
    pub commit: Option<CommitInfo>,
    pub candidates: Vec<CommitInfo>,
    pub reason: Option<String>,
    pub confidence: f64,
    pub reproduction_rate: Option<f64>,
    pub runs_needed_for_clean: u32,
    /// Runs made (confirmation runs not included).
    pub runs: usize,
    /// Tests that took an earlier run of the same kernels instead of running.
    pub same_kernel_tests: usize,
    pub commits_tested: usize,
    pub range: usize,
    pub seconds: f64,
    pub commits: Vec<CommitLine>,
    pub dir: String,
    /// Bisecting packages: where to look next (the changelog between the answer and the
    /// package before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian: Option<super::debian::Answer>,
    /// The found kernel commit built on the reproducing end with it reverted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

pub async fn bisect<T: Tester>(
    tester: &T,
    mut job: Job<'_>,
    cancel: watch::Receiver<bool>,
    on: &(dyn Fn(&Event) + Sync),
) -> Result<BisectResult, WriteError> {
    let started = Instant::now();
    on(&Event::Started {
        target: job.record.target.clone(),
        commits: job.bisect.graph.range().len(),
        fix: job.record.params.fix,
        record: job.dir.join(log::FILE),
    });
    let next = loop {
        let next = job.bisect.next();
        let Next::Test(i) = next else { break next };
        if *cancel.borrow() {
            break next;
        }
        on(&testing(&job.bisect, i, started));
        let attempt = test(tester, &job, i, &cancel).await;
        let Some(attempt) = attempt else { break Next::Test(i) };
        let short = job.bisect.graph.short(i);
        let shown = match attempt.same_as.as_deref().and_then(|c| job.bisect.graph.index_of(c)) {
            Some(j) => format!(
                "{}, as {} showed: the same kernel image, not run",
                attempt.outcome.describe(),
                job.bisect.graph.short(j)
            ),
            None => attempt.outcome.describe(),
        };
        on(&Event::Tested {
            short,
            shown,
            seconds: attempt.seconds,
        });
        attempt.count(&mut job.bisect, i);
        job.record.steps.push(attempt);
        job.record.save(job.dir).map_err(|source| WriteError {
            path: job.dir.join(log::FILE),
            source,
        })?;
    };
    let checked = check_culprit(tester, &job, &next, &cancel, on).await;
    let interrupted = *cancel.borrow();
    let _ = std::fs::write(job.dir.join("log"), log::render(&job.record, &job.bisect));
    let mut result = result(&job, &next, interrupted, started.elapsed().as_secs_f64());
    checked.apply(&job, &mut result);
    let text = serde_json::to_string_pretty(&result).unwrap_or_default();
    let _ = std::fs::write(job.dir.join(RESULT), format!("{text}\n"));
    Ok(result)
}

/// What was checked about a found kernel commit before it is reported.
#[derive(Default)]
struct Checked {
    /// Its parent builds a byte-identical kernel image.
    identical_to: Option<usize>,
    confirmation: Option<Confirmation>,
}

/// A found kernel commit: is its image its parent's, and (unless --no-confirm) does reverting
/// it on the reproducing end take the crash away? Modules and packages are reported as found.
async fn check_culprit<T: Tester>(
    tester: &T,
    job: &Job<'_>,
    next: &Next,
    cancel: &watch::Receiver<bool>,
    on: &(dyn Fn(&Event) + Sync),
) -> Checked {
    let Next::Found(i) = *next else {
        return Checked::default();
    };
    if job.record.target.kind != "kernel" || *cancel.borrow() {
        return Checked::default();
    }
    let job = &confirm::Job {
        scenario: job.scenario,
        record: &job.record,
        bisect: &job.bisect,
        dir: job.dir,
    };
    if let Some(p) = confirm::identical_parent(tester, job, i).await {
        return Checked {
            identical_to: Some(p),
            confirmation: None,
        };
    }
    if !job.record.params.confirm {
        return Checked::default();
    }
    on(&Event::Confirming {
        short: job.bisect.graph.short(i),
    });
    Checked {
        identical_to: None,
        confirmation: confirm::by_revert(tester, job, i, cancel).await,
    }
}

impl Checked {
    fn apply(self, job: &Job<'_>, r: &mut BisectResult) {
        let g = &job.bisect.graph;
        if let Some((p, c)) = self.identical_to.and_then(|p| Some((p, r.commit.take()?))) {
            r.outcome = Ended::Ambiguous;
            r.reason = Some(format!(
                "{} builds a kernel image byte-identical to its parent {}'s: the verdicts differ for another reason (a clean run that missed a flaky crash, or the workload), so neither is named alone",
                g.short(g.index_of(&c.id).unwrap_or(p)),
                g.short(p)
            ));
            let parent = commit_info(job.repo, &g.ids[p], &g.subjects[p]);
            r.candidates = vec![c, parent];
        }
        if let Some(c) = self.confirmation {
            if c.status == Status::NotConfirmed && r.outcome == Ended::Found {
                r.outcome = Ended::Unconfirmed;
                r.reason = Some(format!("not confirmed: {}", c.why));
            }
            r.confirmation = Some(c);
        }
    }
}

fn testing(search: &Bisect, i: usize, started: Instant) -> Event {
    let states: Vec<State> = (0..search.graph.len()).map(|j| search.state(j)).collect();
    Event::Testing {
        elapsed: started.elapsed().as_secs_f64(),
        short: search.graph.short(i),
        subject: search.graph.subjects[i].clone(),
        left: search.graph.search(&states).0.len(),
        runs_needed: search.runs_needed(),
        rate: search.rate(),
    }
}

/// One test of commit `i`: build, then run. `None` when the user interrupted it.
async fn test<T: Tester>(tester: &T, job: &Job<'_>, i: usize, cancel: &watch::Receiver<bool>) -> Option<Attempt> {
    let id = job.bisect.graph.ids[i].clone();
    let short = job.bisect.graph.short(i);
    let target = &job.record.target;
    let candidate = at_commit(job.scenario, target, &id);
    let started = Instant::now();
    let tally = &job.bisect.tallies[i];
    let run_dir = job.dir.join(format!("{short}-{}", tally.runs + tally.infra + 1));
    let mut image = None;
    let (outcome, run_dir) = match tester.build(&candidate).await {
        // A build stopped by Ctrl-C says nothing about the commit.
        Err(_) if *cancel.borrow() => return None,
        Err(e) => (built_wrong(target, e), None),
        Ok(built) => {
            image = built.image;
            if let Some(run) = same_kernels(job, i, image.as_deref()) {
                return Some(Attempt {
                    commit: id,
                    outcome: run.outcome.clone(),
                    run_dir: run.run_dir.clone(),
                    seconds: started.elapsed().as_secs_f64(),
                    image,
                    same_as: Some(run.commit.clone()),
                });
            }
            let label = format!("{} at {short}", job.scenario.name);
            let trial = run_caught(tester, candidate, run_dir, label, cancel.clone()).await;
            if trial.interrupted || *cancel.borrow() {
                return None;
            }
            let run_dir = Some(trial.run_dir.clone());
            (observation(trial), run_dir)
        }
    };
    Some(Attempt {
        commit: id,
        outcome,
        run_dir,
        seconds: started.elapsed().as_secs_f64(),
        image,
        same_as: None,
    })
}

/// A run of another commit that booted the very kernels commit `i` built, and that `i` has
/// not taken yet: what it showed holds for `i`, without a run. `i` takes those runs one per
/// test, in the order they ran; when they are used up, `i` runs itself. Infra errors and
/// builds that failed say nothing about the kernels and are never taken.
fn same_kernels<'a>(job: &'a Job<'_>, i: usize, image: Option<&str>) -> Option<&'a Attempt> {
    let image = image?;
    let id = &job.bisect.graph.ids[i];
    let steps = &job.record.steps;
    let taken = steps.iter().filter(|s| &s.commit == id && s.same_as.is_some()).count();
    steps
        .iter()
        .filter(|s| &s.commit != id && s.same_as.is_none() && s.image.as_deref() == Some(image))
        .filter(|s| {
            matches!(
                s.outcome,
                Observation::Reproduced | Observation::Clean | Observation::OtherCrash { .. }
            )
        })
        .nth(taken)
}

/// A build failure is a fact about the commit only when the bisected tree itself does not build.
fn built_wrong(target: &Target, e: BuildError) -> Observation {
    match e {
        BuildError::Tree {
            part: Part::Kernel(_),
            why,
        } if target.kind == "kernel" || target.kind == super::debian::KIND => Observation::BuildFailed { why },
        BuildError::Tree {
            part: Part::Module(name),
            why,
        } if target.kind == "module" && name == target.name => Observation::BuildFailed { why },
        BuildError::Tree { why, .. } | BuildError::Infra { why } => Observation::Infra { why },
    }
}

fn observation(trial: Trial) -> Observation {
    match trial.verdict {
        Verdict::Reproduced => Observation::Reproduced,
        Verdict::NotReproduced => Observation::Clean,
        Verdict::CrashedDifferently => Observation::OtherCrash {
            title: trial.title.unwrap_or_default(),
        },
        Verdict::InfraError => Observation::Infra { why: trial.reason },
    }
}

fn commit_info(repo: Option<&git2::Repository>, id: &str, subject: &str) -> CommitInfo {
    let (author, date) = git2::Oid::from_str(id)
        .ok()
        .and_then(|o| repo?.find_commit(o).ok())
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

fn result(job: &Job<'_>, next: &Next, interrupted: bool, seconds: f64) -> BisectResult {
    let (search, graph) = (&job.bisect, &job.bisect.graph);
    let info = |i: usize| commit_info(job.repo, &graph.ids[i], &graph.subjects[i]);
    let (outcome, commit, candidates, reason) = match next {
        _ if interrupted => (Ended::Interrupted, None, vec![], None),
        Next::Found(i) => (Ended::Found, Some(info(*i)), vec![], None),
        Next::Ambiguous(v) => (
            Ended::Ambiguous,
            None,
            v.iter().map(|&i| info(i)).collect(),
            Some("skipped commits hide the answer".to_string()),
        ),
        Next::Stop(why) => (Ended::Stopped, None, vec![], Some(why.clone())),
        Next::Test(_) => (Ended::Stopped, None, vec![], None),
    };
    let tested = |i: &usize| search.tallies[*i].runs > 0 || search.tallies[*i].build_failed;
    BisectResult {
        scenario: job.scenario.name.clone(),
        target: job.record.target.clone(),
        fix: job.record.params.fix,
        outcome,
        commit,
        candidates,
        reason,
        confidence: search.confidence(),
        reproduction_rate: search.rate(),
        runs_needed_for_clean: search.runs_needed(),
        runs: job.record.steps.iter().filter(|s| s.same_as.is_none()).count(),
        same_kernel_tests: job.record.steps.iter().filter(|s| s.same_as.is_some()).count(),
        commits_tested: (0..graph.len()).filter(tested).count(),
        range: graph.range().len(),
        seconds,
        commits: (0..graph.len())
            .filter(|i| tested(i) || search.tallies[*i].infra > 0)
            .map(|i| CommitLine {
                id: graph.ids[i].clone(),
                subject: graph.subjects[i].clone(),
                verdict: match search.state(i) {
                    State::Skip => "skip",
                    State::Pending => "undecided",
                    _ if search.tallies[i].reproduced > 0 => "bad",
                    _ => "good",
                },
                tally: search.tallies[i].clone(),
            })
            .collect(),
        dir: job.dir.display().to_string(),
        debian: None,
        confirmation: None,
    }
}

#[cfg(test)]
mod tests;
