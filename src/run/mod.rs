//! `repro run`: prepare each node's kernel and image, boot the guests, run the workload over
//! SSH while the console detector watches, and decide a verdict.
//!
//! [`run`] reads as its phases. Each is a method on [`state::RunState`] (in `phase/`) that
//! returns `Result<(), Stop>`, so `?` ends the run at the first stop; every wait goes through
//! the one loop in [`watch`]; the verdict is decided once, in [`verdict`], and the report is
//! assembled by a pure function ([`assemble`]).

pub mod assemble;
pub mod event;
pub mod guests;
pub mod infra;
pub mod observer;
pub mod outcome;
mod phase;
mod prepare;
pub mod progress;
pub mod setup;
pub mod state;
mod steps;
pub mod verdict;
pub mod watch;
mod workload;

pub use infra::{InfraError, Stop};
pub use phase::debug::ENDED_BY_CTRL_C;
pub use prepare::{node_kernel, prepare_node, Prepared};
pub use progress::{Phase, Progress};
pub use state::Options;

use crate::report::RunReport;
use state::RunState;
use std::path::Path;

/// Files in the run directory.
pub const REPORT_JSON: &str = "report.json";

/// Runs the scenario and writes `report.json`. Never fails: every failure is a verdict.
pub async fn run(options: Options) -> RunReport {
    let mut state = RunState::new(options);
    let mut stopped = phases(&mut state).await.err();
    if state.drain(stopped.as_ref()).await {
        stopped = Some(Stop::Interrupted);
    }
    if matches!(stopped, Some(Stop::Crash)) {
        state.debug().await;
    }
    let interrupted = matches!(stopped, Some(Stop::Interrupted));
    state.teardown(interrupted).await;
    state.symbolize().await;
    state.timings.total = state.started.elapsed().as_secs_f64();
    let mut report = assemble::report(state.facts(stopped));
    if let Err(e) = write_report(&state.run_dir, &report) {
        report.evidence_lost.push(e);
    }
    report
}

/// The phases, in order, until the first stop.
async fn phases(state: &mut RunState) -> Result<(), Stop> {
    state.prepare().await?;
    state.boot().await?;
    state.setup().await?;
    state.workload().await?;
    state.power_cut().await
}

/// Writes `report.json`; the error names the file.
fn write_report(run_dir: &Path, report: &RunReport) -> Result<(), String> {
    let path = run_dir.join(REPORT_JSON);
    let json = serde_json::to_string_pretty(report).map_err(|e| format!("rendering {}: {e}", path.display()))?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
