//! The CLI's view of a tester's builds and runs: a spinner per build, and a run's progress
//! (or nothing for runs the caller summarizes itself).

use super::build::BuildUi;
use super::progress;
use crate::kernel::build::Event;
use crate::run::Progress;
use crate::tester::{BuildView, Ui};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub struct Terminal {
    /// Show each run's phases (else only the caller's own lines).
    pub runs: bool,
}

impl BuildView for BuildUi {
    fn on(&self, event: Event) {
        BuildUi::on(self, event)
    }

    fn finish(&self) {
        BuildUi::finish(self)
    }
}

impl Ui for Terminal {
    fn build(&self, label: &str) -> Box<dyn BuildView> {
        Box::new(BuildUi::new(label))
    }

    fn run(&self, label: &str) -> (mpsc::UnboundedSender<Progress>, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let shown = match self.runs {
            true => tokio::spawn(progress::drive(rx, label.to_string())),
            false => tokio::spawn(async move { while rx.recv().await.is_some() {} }),
        };
        (tx, shown)
    }
}
