//! A fake [`Tester`] for the drivers' tests: builds and runs answered by closures, every call
//! recorded.

use super::{BuildError, Built, Tester, Trial};
use crate::run::verdict::Verdict;
use crate::scenario::Scenario;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

type Runs = dyn Fn(&Scenario, usize) -> Trial + Send + Sync;
type Builds = dyn Fn(&Scenario) -> Result<(), BuildError> + Send + Sync;
type Images = dyn Fn(&Scenario) -> Option<String> + Send + Sync;

pub struct Fake {
    /// The trial of a run of a candidate; the number is how many runs came before it.
    runs: Box<Runs>,
    builds: Box<Builds>,
    images: Box<Images>,
    /// Each run takes this long (paused time in tests).
    pub takes: Duration,
    /// Every run: its label and directory.
    pub log: Mutex<Vec<(String, PathBuf)>>,
    pub built: Mutex<Vec<String>>,
}

impl Fake {
    pub fn new(runs: impl Fn(&Scenario, usize) -> Trial + Send + Sync + 'static) -> Self {
        Fake {
            runs: Box::new(runs),
            builds: Box::new(|_| Ok(())),
            images: Box::new(|_| None),
            takes: Duration::from_secs(10),
            log: Mutex::new(Vec::new()),
            built: Mutex::new(Vec::new()),
        }
    }

    pub fn builds(mut self, builds: impl Fn(&Scenario) -> Result<(), BuildError> + Send + Sync + 'static) -> Self {
        self.builds = Box::new(builds);
        self
    }

    /// The image digest a build of a candidate gives.
    pub fn images(mut self, images: impl Fn(&Scenario) -> Option<String> + Send + Sync + 'static) -> Self {
        self.images = Box::new(images);
        self
    }

    pub fn labels(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().map(|(l, _)| l.clone()).collect()
    }
}

/// A trial with this verdict (and crash title).
pub fn trial(verdict: Verdict, title: Option<&str>) -> Trial {
    Trial {
        verdict,
        title: title.map(str::to_string),
        reason: format!("fake {}", verdict.as_str()),
        infra: None,
        interrupted: false,
        seconds: 10.0,
        time_to_reproduce: (verdict == Verdict::Reproduced).then_some(4.0),
        vmcores: Vec::new(),
        run_dir: String::new(),
    }
}

impl Tester for Fake {
    async fn build(&self, candidate: &Scenario) -> Result<Built, BuildError> {
        self.built.lock().unwrap().push(candidate.name.clone());
        (self.builds)(candidate).map(|()| Built {
            image: (self.images)(candidate),
        })
    }

    async fn run(&self, candidate: Scenario, run_dir: PathBuf, label: String, cancel: watch::Receiver<bool>) -> Trial {
        let before = {
            let mut log = self.log.lock().unwrap();
            log.push((label, run_dir.clone()));
            log.len() - 1
        };
        tokio::time::sleep(self.takes).await;
        let mut t = (self.runs)(&candidate, before);
        t.interrupted |= *cancel.borrow();
        t.run_dir = run_dir.display().to_string();
        t
    }
}
