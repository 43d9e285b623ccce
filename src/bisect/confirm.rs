//! Before a culprit is reported: the kernel image it builds is compared with its parent's (a
//! commit that changes nothing in the binary cannot be why the verdicts differ), and the end
//! that reproduces is built with the culprit reverted and run again, as KernelCI does before
//! it reports a bisection: reverted, the crash must be gone (with `--fix`, back).

use super::log::Record;
use super::plan::at_commit;
use super::Bisect;
use crate::def::patch::{PatchStep, RevertTarget};
use crate::run::verdict::Verdict;
use crate::scenario::{PatchSet, Scenario};
use crate::tester::{run_caught, BuildError, Tester};
use serde::Serialize;
use tokio::sync::watch;

/// The patch set a confirmation build applies.
const REVERT_SET: &str = "confirm-revert";

/// The fewest runs of the reverted kernel (KernelCI's three).
pub const MIN_RUNS: u32 = 3;

/// The finished search a culprit comes from.
pub struct Job<'a> {
    pub scenario: &'a Scenario,
    pub record: &'a Record,
    pub bisect: &'a Bisect,
    /// The bisect directory (the confirmation's runs go in it).
    pub dir: &'a std::path::Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Reverted, the crash is gone (with --fix: back).
    Confirmed,
    /// Reverted, it still reproduces (with --fix: still does not), or the revert does not
    /// apply or build.
    NotConfirmed,
    /// It could not be tested (infrastructure errors); says nothing about the commit.
    Untested,
}

/// What the revert showed.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    pub status: Status,
    /// The commit reverted, and the end it was reverted on.
    pub reverted: String,
    pub on: String,
    pub runs: u32,
    pub reproduced: u32,
    /// With `Confirmed` and no --fix: the chance that this many clean runs would have shown a
    /// crash reproducing at the measured rate.
    pub confidence: Option<f64>,
    pub why: String,
    pub run_dirs: Vec<String>,
}

/// Builds the end that reproduces (with --fix, the fixed end) with commit `i` reverted and runs
/// it until the answer is clear. `None` when the user interrupted.
pub async fn by_revert<T: Tester>(
    tester: &T,
    job: &Job<'_>,
    i: usize,
    cancel: &watch::Receiver<bool>,
) -> Option<Confirmation> {
    let graph = &job.bisect.graph;
    let fix = job.record.params.fix;
    let end = graph.new_end();
    let (reverted, on) = (graph.ids[i].clone(), graph.ids[end].clone());
    let mut candidate = at_commit(job.scenario, &job.record.target, &on);
    candidate.patchsets.insert(
        REVERT_SET.to_string(),
        PatchSet {
            summary: format!("revert {}", graph.short(i)),
            steps: vec![PatchStep::Revert(RevertTarget::Rev(reverted.clone()))],
        },
    );
    candidate.active_set = Some(REVERT_SET.to_string());
    let mut c = Confirmation {
        status: Status::Untested,
        reverted,
        on,
        runs: 0,
        reproduced: 0,
        confidence: None,
        why: String::new(),
        run_dirs: Vec::new(),
    };
    let (short, on_short) = (graph.short(i), graph.short(end));
    match tester.build(&candidate).await {
        Err(_) if *cancel.borrow() => return None,
        Err(BuildError::Tree { why, .. }) => {
            c.status = Status::NotConfirmed;
            c.why = format!("{on_short} with {short} reverted does not build (the revert may not apply): {why}");
            return Some(c);
        }
        Err(BuildError::Infra { why }) => {
            c.why = format!("could not build {on_short} with {short} reverted: {why}");
            return Some(c);
        }
        Ok(_) => {}
    }
    let want = MIN_RUNS.max(job.bisect.runs_needed());
    let mut infra = 0;
    while c.runs < want {
        let dir = job.dir.join(format!("confirm-{short}-{}", c.runs + infra + 1));
        let label = format!("{} at {on_short} with {short} reverted", job.scenario.name);
        let trial = run_caught(tester, candidate.clone(), dir, label, cancel.clone()).await;
        if trial.interrupted || *cancel.borrow() {
            return None;
        }
        c.run_dirs.push(trial.run_dir.clone());
        match trial.verdict {
            Verdict::InfraError => {
                infra += 1;
                if infra > job.record.params.infra_retries {
                    c.why = format!(
                        "the reverted kernel failed {infra} times for infrastructure reasons: {}",
                        trial.reason
                    );
                    return Some(c);
                }
                continue;
            }
            Verdict::CrashedDifferently => {
                c.runs += 1;
                c.status = Status::NotConfirmed;
                c.why = format!(
                    "with {short} reverted, {on_short} crashed differently: {}",
                    trial.title.unwrap_or_default()
                );
                return Some(c);
            }
            Verdict::Reproduced => {
                c.runs += 1;
                c.reproduced += 1;
                (c.status, c.why) = match fix {
                    false => (
                        Status::NotConfirmed,
                        format!("{on_short} with {short} reverted still reproduces"),
                    ),
                    true => (
                        Status::Confirmed,
                        format!("{on_short} with the fix {short} reverted reproduces again"),
                    ),
                };
                return Some(c);
            }
            Verdict::NotReproduced => c.runs += 1,
        }
    }
    let p = job.bisect.rate().unwrap_or(1.0);
    (c.status, c.why) = match fix {
        false => (
            Status::Confirmed,
            format!(
                "{on_short} with {short} reverted did not reproduce in {} run(s)",
                c.runs
            ),
        ),
        true => (
            Status::NotConfirmed,
            format!(
                "{on_short} with the fix {short} reverted still does not reproduce in {} run(s)",
                c.runs
            ),
        ),
    };
    if !fix {
        c.confidence = Some(1.0 - (1.0 - p).powi(c.runs as i32));
    }
    Some(c)
}

/// The image digests recorded for commit `i`, else a build of it (a cache hit when it was
/// built before). `None` when it cannot be built or the tester gives no digest.
pub async fn image_of<T: Tester>(tester: &T, job: &Job<'_>, i: usize) -> Option<String> {
    let id = &job.bisect.graph.ids[i];
    if let Some(d) = job
        .record
        .steps
        .iter()
        .filter(|s| &s.commit == id)
        .find_map(|s| s.image.clone())
    {
        return Some(d);
    }
    let candidate = at_commit(job.scenario, &job.record.target, id);
    tester.build(&candidate).await.ok().and_then(|b| b.image)
}

/// The parent of `i` whose kernel image is byte-identical to `i`'s, if one is.
pub async fn identical_parent<T: Tester>(tester: &T, job: &Job<'_>, i: usize) -> Option<usize> {
    let mine = image_of(tester, job, i).await?;
    for &p in &job.bisect.graph.parents[i] {
        if image_of(tester, job, p).await.as_deref() == Some(mine.as_str()) {
            return Some(p);
        }
    }
    None
}
