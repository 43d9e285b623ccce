//! Setup: the generated steps (links, storage, NFS) and the scenario's own, in order, over SSH.

use crate::run::event::Event;
use crate::run::infra::{InfraError, Stop};
use crate::run::progress::{Phase, Progress};
use crate::run::setup;
use crate::run::state::RunState;
use crate::run::steps::run_setup;
use crate::run::watch::Waiting;
use std::time::Duration;
use tokio::time::Instant;

/// How long the whole setup phase may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
/// The setup steps' output.
const SETUP_LOG: &str = "setup.log";

impl RunState {
    pub async fn setup(&mut self) -> Result<(), Stop> {
        self.watch.settle_report().await?;
        let steps = setup::steps(&self.scenario).map_err(InfraError::SetupPlan)?;
        if steps.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.note(Progress::Phase {
            phase: Phase::Setup,
            detail: format!("{} step(s)", steps.len()),
        });
        let nodes = self.scenario.nodes.len();
        let links: Vec<_> = (0..nodes).map(|i| self.link(i)).collect();
        let names: Vec<String> = (0..nodes).map(|i| self.name(i)).collect();
        let (log, tx) = (self.run_dir.join(SETUP_LOG), self.watch.sender());
        std::thread::spawn(move || {
            let done = run_setup(&steps, &links, &names, &log);
            let _ = tx.send(Event::SetupDone(done));
        });
        let result = self
            .await_setup(&Waiting::new(Phase::Setup, "the setup steps", SETUP_TIMEOUT))
            .await;
        self.timings.setup = Some(started.elapsed().as_secs_f64());
        self.note(Progress::PhaseDone {
            phase: Phase::Setup,
            elapsed: started.elapsed(),
        });
        result
    }

    pub async fn await_setup(&mut self, waiting: &Waiting) -> Result<(), Stop> {
        loop {
            if let Event::SetupDone(done) = self.watch.next(waiting).await? {
                return done.map_err(|e| InfraError::Setup(e).into());
            }
        }
    }
}
