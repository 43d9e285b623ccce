//! The nightly loop: start cells as the scheduler lets them (cores, memory, jobs), stop at the
//! budget or Ctrl-C, collect each cell's result, compare with earlier nightlies, write the
//! reports.

use super::known::Known;
use super::plan::{demand, pick, Capacity, Cell, CellResult, Demand, Nightly};
use super::store;
use crate::scenario::Scenario;
use crate::tester::{run_caught, Tester, Trial};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A nightly to run.
pub struct Job {
    /// Each cell with its scenario (the cell's kernel and arch applied).
    pub cells: Vec<(Cell, Scenario)>,
    /// The nightly's directory; earlier nightlies are beside it.
    pub out: PathBuf,
    pub capacity: Capacity,
    pub budget: Option<Duration>,
    pub shard: Option<(u32, u32)>,
    /// Crashes already filed: their cells are `known`, not new crashes.
    pub known: Known,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        at: f64,
        cell: String,
    },
    Finished {
        at: f64,
        cell: String,
        verdict: String,
        title: Option<String>,
    },
    BudgetRanOut,
}

/// A finished nightly, written.
#[derive(Debug)]
pub struct Ran {
    pub nightly: Nightly,
    /// The user stopped it.
    pub interrupted: bool,
}

/// How often the loop looks at the budget and the scheduler when no cell ends.
const TICK: Duration = Duration::from_millis(500);

struct Loop<'a, T> {
    tester: Arc<T>,
    job: &'a Job,
    started: Instant,
    cancel: watch::Receiver<bool>,
    /// Tells running cells to stop (budget or Ctrl-C).
    stop: watch::Sender<bool>,
    pending: Vec<(Cell, Scenario)>,
    running: Vec<(Cell, Demand)>,
    results: Vec<CellResult>,
    budget_hit: bool,
}

pub async fn nightly<T: Tester + 'static>(
    tester: Arc<T>,
    job: Job,
    cancel: watch::Receiver<bool>,
    on: &(dyn Fn(&Event) + Sync),
) -> Result<Ran, store::Error> {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut run = Loop {
        tester,
        pending: job.cells.clone(),
        job: &job,
        started: Instant::now(),
        cancel,
        stop: watch::channel(false).0,
        running: Vec::new(),
        results: Vec::new(),
        budget_hit: false,
    };
    let mut tasks = JoinSet::new();
    loop {
        run.check_budget(on);
        run.start_cells(&mut tasks, on);
        if run.running.is_empty() && run.pending.is_empty() {
            break;
        }
        tokio::select! {
            Some(Ok((cell, trial, started_s))) = tasks.join_next() => run.finished(cell, trial, started_s, on),
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    run.results.sort_by(|a, b| a.cell.cmp(&b.cell));
    let hist = store::history(&job.out);
    let mut nightly = Nightly {
        repro_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        seconds: run.started.elapsed().as_secs_f64(),
        shard: job.shard,
        budget_s: job.budget.map(|b| b.as_secs()),
        cells: std::mem::take(&mut run.results),
        changes: Default::default(),
        known: Vec::new(),
    };
    let earlier: Vec<Nightly> = hist.iter().map(|(_, nightly)| nightly.clone()).collect();
    nightly.compare_with(&earlier);
    super::known::apply(&job.known, &mut nightly, &earlier);
    store::write_all(&job.out, &nightly, &hist)?;
    let interrupted = *run.cancel.borrow();
    Ok(Ran { nightly, interrupted })
}

impl<T: Tester + 'static> Loop<'_, T> {
    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// At the budget or on Ctrl-C: running cells are told to stop, pending ones are not run.
    fn check_budget(&mut self, on: &(dyn Fn(&Event) + Sync)) {
        if !self.budget_hit && self.job.budget.is_some_and(|b| self.started.elapsed() >= b) {
            self.budget_hit = true;
            let _ = self.stop.send(true);
            on(&Event::BudgetRanOut);
        }
        let interrupted = *self.cancel.borrow();
        if interrupted {
            let _ = self.stop.send(true);
        }
        if !(self.budget_hit || interrupted) {
            return;
        }
        let why = if self.budget_hit {
            "the time budget ran out before it started"
        } else {
            "interrupted"
        };
        for (cell, _) in std::mem::take(&mut self.pending) {
            self.results.push(CellResult {
                cell,
                verdict: "not-run".into(),
                title: None,
                reason: why.into(),
                started_s: self.at(),
                seconds: 0.0,
                time_to_reproduce: None,
                run_dir: None,
                vmcores: Vec::new(),
                known: None,
            });
        }
    }

    /// Starts every pending cell the scheduler lets run now.
    fn start_cells(&mut self, tasks: &mut JoinSet<(Cell, Trial, f64)>, on: &(dyn Fn(&Event) + Sync)) {
        while let Some(i) = {
            let wanted: Vec<Demand> = self.pending.iter().map(|(_, s)| demand(s)).collect();
            let running: Vec<Demand> = self.running.iter().map(|(_, d)| *d).collect();
            pick(&wanted, &running, self.job.capacity)
        } {
            let (cell, scenario) = self.pending.remove(i);
            let name = format!("{}-{}-{}", cell.scenario, cell.kernel, cell.arch);
            let run_dir = self.job.out.join("cells").join(&name);
            on(&Event::Started {
                at: self.at(),
                cell: cell.id(),
            });
            self.running.push((cell.clone(), demand(&scenario)));
            let (tester, stop, started_s) = (self.tester.clone(), self.stop.subscribe(), self.at());
            tasks.spawn(async move {
                let trial = run_caught(&*tester, scenario, run_dir, name, stop).await;
                (cell, trial, started_s)
            });
        }
    }

    fn finished(&mut self, cell: Cell, trial: Trial, started_s: f64, on: &(dyn Fn(&Event) + Sync)) {
        self.running.retain(|(c, _)| *c != cell);
        let reason = match (trial.interrupted, self.budget_hit) {
            (true, true) => "stopped: the time budget ran out".to_string(),
            (true, false) => "interrupted".to_string(),
            (false, _) => trial.reason.clone(),
        };
        on(&Event::Finished {
            at: self.at(),
            cell: cell.id(),
            verdict: trial.verdict.as_str().into(),
            title: trial.title.clone(),
        });
        let out = &self.job.out;
        self.results.push(CellResult {
            cell,
            verdict: trial.verdict.as_str().to_string(),
            title: trial.title,
            reason,
            started_s,
            seconds: trial.seconds,
            time_to_reproduce: trial.time_to_reproduce,
            run_dir: Some(relative_to(out, &trial.run_dir)),
            vmcores: trial.vmcores.iter().map(|v| relative_to(out, v)).collect(),
            known: None,
        });
    }
}

/// `path` relative to the nightly's directory, when it is inside it.
fn relative_to(out: &Path, path: &str) -> String {
    Path::new(path)
        .strip_prefix(out)
        .map(|x| x.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

#[cfg(test)]
mod tests;
