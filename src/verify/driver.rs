//! The verification loop: build each side's kernels, run each side N times, stop the patched
//! side at its first reproduction, conclude, and write `verify.json`.

use super::tally::{conclude, Conclusion, Tally};
use crate::errors::WriteError;
use crate::run::verdict::Verdict;
use crate::scenario::Scenario;
use crate::tester::{run_caught, BuildError, Tester};
use serde::Serialize;
use std::path::Path;
use tokio::sync::watch;

/// The file the verification is recorded in, in its directory.
pub const FILE: &str = "verify.json";

/// What to verify.
pub struct Job<'a> {
    /// The scenario on its own kernel.
    pub base: &'a Scenario,
    /// The same with the patch set applied.
    pub patched: &'a Scenario,
    pub set: &'a str,
    /// Runs per side.
    pub runs: u32,
    /// Where the runs and `verify.json` go.
    pub dir: &'a Path,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub side: &'static str,
    pub index: u32,
    pub verdict: &'static str,
    pub crash: Option<String>,
    pub seconds: f64,
    pub run_dir: String,
}

/// `verify.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub scenario: String,
    pub set: String,
    pub runs_per_side: u32,
    pub base: Tally,
    pub patched: Tally,
    pub conclusion: Conclusion,
    pub runs: Vec<RunLine>,
    pub dir: String,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A side's kernel did not build: its runs count as infrastructure errors.
    BuildFailed {
        side: &'static str,
        why: String,
    },
    Ran(RunLine),
}

/// How a verification ended.
#[derive(Debug)]
pub enum Ended {
    Done(Box<Verification>),
    Interrupted,
}

pub async fn verify<T: Tester>(
    tester: &T,
    job: Job<'_>,
    cancel: watch::Receiver<bool>,
    on: &(dyn Fn(&Event) + Sync),
) -> Result<Ended, WriteError> {
    let mut tallies = [Tally::default(), Tally::default()];
    let mut lines = Vec::new();
    for (n, (side, scenario)) in [("base", job.base), ("patched", job.patched)].into_iter().enumerate() {
        if let Err(e) = tester.build(scenario).await {
            let why = match e {
                BuildError::Tree { why, .. } | BuildError::Infra { why } => why,
            };
            on(&Event::BuildFailed { side, why });
            (0..job.runs).for_each(|_| tallies[n].add(Verdict::InfraError));
            continue;
        }
        for index in 1..=job.runs {
            if *cancel.borrow() {
                return Ok(Ended::Interrupted);
            }
            let run_dir = job.dir.join(format!("{side}-{index}"));
            let label = format!("{} [{side} {index}/{}]", scenario.name, job.runs);
            let trial = run_caught(tester, scenario.clone(), run_dir, label, cancel.clone()).await;
            if trial.interrupted || *cancel.borrow() {
                return Ok(Ended::Interrupted);
            }
            tallies[n].add(trial.verdict);
            let line = RunLine {
                side,
                index,
                verdict: trial.verdict.as_str(),
                crash: trial.title,
                seconds: trial.seconds,
                run_dir: trial.run_dir.clone(),
            };
            on(&Event::Ran(line.clone()));
            lines.push(line);
            // One reproduction on the patched kernel settles it.
            if side == "patched" && tallies[n].reproduced > 0 {
                break;
            }
        }
    }
    let [base, patched] = tallies;
    let verification = Verification {
        scenario: job.base.name.clone(),
        set: job.set.to_string(),
        runs_per_side: job.runs,
        conclusion: conclude(&base, &patched),
        base,
        patched,
        runs: lines,
        dir: job.dir.display().to_string(),
    };
    let path = job.dir.join(FILE);
    let text = serde_json::to_string_pretty(&verification).map_err(std::io::Error::other);
    text.and_then(|t| std::fs::write(&path, t))
        .map_err(|source| WriteError { path, source })?;
    Ok(Ended::Done(Box::new(verification)))
}

#[cfg(test)]
mod tests;
