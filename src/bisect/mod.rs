//! `repro bisect`: the search, independent of what a test is. [`Bisect`] holds the commit graph
//! of the range and every observation made so far; it proposes the next commit to test and
//! decides when a commit's state is known well enough. [`plan`] works out what is bisected and
//! opens a record; [`driver`] turns the search into builds and runs through a
//! [`crate::tester::Tester`]; tests drive both with fake testers.
//!
//! Terms: a commit is *old* (like `--good` in a normal bisect) or *new* (like `--bad`); the
//! answer is the first new commit. A commit's test outcome is *reproduced* or *clean*. In a normal
//! bisect reproduced means new; with `--fix`, clean means new (the first commit where the crash
//! is gone).
//!
//! Flakiness: one reproduction is proof, but a clean run is not. A commit is called clean only
//! after `k` clean runs, where `k` makes the chance of missing a reproducing commit at most
//! `alpha`, given the reproduction rate `p` measured at commits known to reproduce:
//! `(1 - p)^k <= alpha`. A deterministic bug (`p = 1`) needs one run.

pub mod confirm;
pub mod debian;
pub mod driver;
pub mod graph;
pub mod log;
pub mod plan;

pub use graph::State;

pub use graph::Graph;
use serde::{Deserialize, Serialize};

/// What one test of a commit showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Observation {
    /// The expected crash.
    Reproduced,
    /// The workload ran and nothing crashed.
    Clean,
    /// A crash, but not the expected one.
    OtherCrash { title: String },
    /// The commit does not build.
    BuildFailed { why: String },
    /// The test could not run (QEMU, SSH, ...). Retried; never counted.
    Infra { why: String },
}

impl Observation {
    /// One line for logs: the outcome and the first line of its reason.
    pub fn describe(&self) -> String {
        let first = |s: &str| s.lines().next().unwrap_or("").to_string();
        match self {
            Observation::Reproduced => "reproduced".into(),
            Observation::Clean => "clean".into(),
            Observation::OtherCrash { title } => format!("crashed differently: {title}"),
            Observation::BuildFailed { why } => format!("does not build: {}", first(why)),
            Observation::Infra { why } => format!("infra error (retried): {}", first(why)),
        }
    }
}

/// What to do with a crash other than the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OtherCrash {
    /// Skip the commit (it cannot say whether the expected crash is there).
    Skip,
    /// Count the run as clean for the expected crash.
    Clean,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// Wanted probability that the answer is right, given the measured reproduction rate.
    pub confidence: f64,
    /// Most runs of one commit.
    pub max_runs: u32,
    /// Runs of the end that reproduces, to measure the reproduction rate. Six runs that all
    /// reproduce leave a 5% chance that a bug reproducing 60% of the time looks deterministic.
    pub calibrate: u32,
    /// Infra errors tolerated per commit before the bisect stops (resumable).
    pub infra_retries: u32,
    pub other_crash: OtherCrash,
    /// `--fix`: find the first commit where the crash stops reproducing.
    pub fix: bool,
    /// Confirm a found kernel culprit by reverting it on the reproducing end (`--no-confirm`
    /// turns it off).
    #[serde(default = "yes")]
    pub confirm: bool,
}

fn yes() -> bool {
    true
}

impl Default for Params {
    fn default() -> Self {
        Params {
            confidence: 0.95,
            max_runs: 30,
            calibrate: 6,
            infra_retries: 2,
            other_crash: OtherCrash::Skip,
            fix: false,
            confirm: true,
        }
    }
}

/// Per-commit tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub runs: u32,
    pub reproduced: u32,
    pub clean: u32,
    pub other: u32,
    pub infra: u32,
    pub build_failed: bool,
    /// Of the reproduced and clean runs, those taken from another commit's run of the same
    /// kernels: they decide this commit's state, but the rate counts them once, where they ran.
    #[serde(skip_serializing_if = "is_zero")]
    pub same_kernel_reproduced: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub same_kernel_clean: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run a test of this commit (index into the graph).
    Test(usize),
    /// The first new commit.
    Found(usize),
    /// Skips hide it: one of these.
    Ambiguous(Vec<usize>),
    /// Cannot go on (an end is wrong, or tests keep failing for infrastructure reasons).
    Stop(String),
}

pub struct Bisect {
    pub graph: Graph,
    pub params: Params,
    pub tallies: Vec<Tally>,
    /// Index of the given new end and old ends.
    new_end: usize,
    old_ends: Vec<usize>,
    /// alpha per clean verdict, fixed at the start from the range size.
    alpha: f64,
}

impl Bisect {
    /// `graph` holds the range: ancestors of the new end that are not ancestors of an old end,
    /// plus the old ends themselves.
    pub fn new(graph: Graph, params: Params) -> Self {
        let n = graph.len();
        let steps = ((graph.range().len() + 1) as f64).log2().ceil().max(1.0);
        let alpha = ((1.0 - params.confidence) / (steps + 1.0)).clamp(1e-9, 0.5);
        Bisect {
            tallies: vec![Tally::default(); n],
            new_end: graph.new_end(),
            old_ends: graph.old_ends().to_vec(),
            graph,
            params,
            alpha,
        }
    }

    /// Records one test of commit `i`.
    pub fn observe(&mut self, i: usize, o: &Observation) {
        self.count(i, o, false);
    }

    /// Records a test of commit `i` that took another commit's run of the same kernels.
    pub fn observe_taken(&mut self, i: usize, o: &Observation) {
        self.count(i, o, true);
    }

    fn count(&mut self, i: usize, o: &Observation, taken: bool) {
        let t = &mut self.tallies[i];
        let counter = match o {
            Observation::Reproduced => &mut t.reproduced,
            Observation::Clean => &mut t.clean,
            Observation::OtherCrash { .. } => match self.params.other_crash {
                OtherCrash::Skip => &mut t.other,
                OtherCrash::Clean => &mut t.clean,
            },
            Observation::BuildFailed { .. } => {
                t.build_failed = true;
                return;
            }
            Observation::Infra { .. } => {
                t.infra += 1;
                return;
            }
        };
        *counter += 1;
        t.runs += 1;
        if taken {
            match o {
                Observation::Reproduced => t.same_kernel_reproduced += 1,
                Observation::Clean => t.same_kernel_clean += 1,
                Observation::OtherCrash { .. } if self.params.other_crash == OtherCrash::Clean => {
                    t.same_kernel_clean += 1
                }
                _ => {}
            }
        }
    }

    /// The reproduction rate measured at commits known to reproduce (their runs up to and
    /// including each reproduction): `None` before any reproduction. A run taken by a commit
    /// that built the same kernels is counted once, at the commit that ran it.
    pub fn rate(&self) -> Option<f64> {
        let (mut r, mut n) = (0u32, 0u32);
        for t in &self.tallies {
            let reproduced = t.reproduced - t.same_kernel_reproduced;
            if reproduced > 0 {
                r += reproduced;
                n += reproduced + t.clean - t.same_kernel_clean;
            }
        }
        (r > 0).then(|| f64::from(r) / f64::from(n))
    }

    /// Clean runs needed before a commit counts as clean.
    pub fn runs_needed(&self) -> u32 {
        needed(self.rate().unwrap_or(1.0), self.alpha, self.params.max_runs)
    }

    fn reproduces_is_new(&self) -> bool {
        !self.params.fix
    }

    pub fn state(&self, i: usize) -> State {
        let t = &self.tallies[i];
        let as_state = |reproduced: bool| {
            if reproduced == self.reproduces_is_new() {
                State::New
            } else {
                State::Old
            }
        };
        if t.reproduced > 0 {
            as_state(true)
        } else if t.build_failed || t.other > 0 {
            State::Skip
        } else if t.clean >= self.runs_needed() {
            as_state(false)
        } else {
            State::Pending
        }
    }

    /// Probability that a commit called clean really is: `1 - (1 - p)^clean` per clean commit,
    /// multiplied over the clean commits that decide the answer.
    pub fn confidence(&self) -> f64 {
        let p = self.rate().unwrap_or(1.0);
        self.tallies
            .iter()
            .filter(|t| t.reproduced == 0 && t.clean > 0 && !t.build_failed && t.other == 0)
            .map(|t| 1.0 - (1.0 - p).powi(t.clean as i32))
            .product()
    }

    /// Which end has to reproduce (the new end in a normal bisect, the old ends with `--fix`).
    fn reproducing_ends(&self) -> Vec<usize> {
        if self.params.fix {
            self.old_ends.clone()
        } else {
            vec![self.new_end]
        }
    }

    /// The next step. The ends are tested first: the reproducing end `calibrate` times (it must
    /// reproduce at least once in `max_runs`), then the clean end until it counts as clean.
    pub fn next(&self) -> Next {
        for (i, t) in self.tallies.iter().enumerate() {
            if t.infra > self.params.infra_retries {
                return Next::Stop(format!(
                    "{} failed {} times for infrastructure reasons; fix that and run `repro bisect --resume`",
                    self.graph.short(i),
                    t.infra
                ));
            }
        }
        let repro_ends = self.reproducing_ends();
        for &e in &repro_ends {
            let t = &self.tallies[e];
            if let Some(stop) = self.untestable_end(e) {
                return stop;
            }
            if t.reproduced == 0 && t.runs >= self.params.max_runs {
                return Next::Stop(format!(
                    "the {} end {} did not reproduce in {} runs",
                    self.end_word(e),
                    self.graph.short(e),
                    t.runs
                ));
            }
            if t.reproduced == 0 || t.runs < self.params.calibrate {
                return Next::Test(e);
            }
        }
        let clean_ends: Vec<usize> = if self.params.fix {
            vec![self.new_end]
        } else {
            self.old_ends.clone()
        };
        let need = self.runs_needed();
        for &e in &clean_ends {
            let t = &self.tallies[e];
            if t.reproduced > 0 {
                return Next::Stop(format!(
                    "the {} end {} reproduces the crash",
                    self.end_word(e),
                    self.graph.short(e)
                ));
            }
            if let Some(stop) = self.untestable_end(e) {
                return stop;
            }
            if t.clean < need {
                return Next::Test(e);
            }
        }
        // A commit tested but not yet decided is finished first (more clean runs).
        let states: Vec<State> = (0..self.graph.len()).map(|i| self.state(i)).collect();
        let (range, best) = self.graph.search(&states);
        if let Some(&i) = range
            .iter()
            .find(|&&i| states[i] == State::Pending && self.tallies[i].runs > 0)
        {
            return Next::Test(i);
        }
        match best {
            Some(i) => Next::Test(i),
            None => {
                let undecided: Vec<usize> = range
                    .iter()
                    .copied()
                    .filter(|&i| states[i] != State::New && self.graph.interesting[i])
                    .collect();
                let first = self.graph.bottom(&range, &states);
                if undecided.is_empty() {
                    Next::Found(first)
                } else {
                    let mut all = undecided;
                    all.push(first);
                    Next::Ambiguous(all)
                }
            }
        }
    }

    /// An end that does not build or crashes differently stops the bisect.
    fn untestable_end(&self, e: usize) -> Option<Next> {
        let t = &self.tallies[e];
        let why = if t.build_failed {
            "it does not build"
        } else if t.other > 0 {
            "it crashed differently"
        } else {
            return None;
        };
        Some(Next::Stop(format!(
            "the {} end {} cannot be tested ({why})",
            self.end_word(e),
            self.graph.short(e)
        )))
    }

    fn end_word(&self, i: usize) -> &'static str {
        match (i == self.new_end, self.params.fix) {
            (true, false) => "bad",
            (true, true) => "good",
            (false, false) => "good",
            (false, true) => "bad",
        }
    }
}

/// Smallest k with `(1 - p)^k <= alpha`, at least 1, at most `max`.
pub fn needed(p: f64, alpha: f64, max: u32) -> u32 {
    if p >= 1.0 - 1e-12 {
        return 1;
    }
    if p <= 0.0 {
        return max;
    }
    let k = (alpha.ln() / (1.0 - p).ln()).ceil();
    (k as u32).clamp(1, max)
}

#[cfg(test)]
mod tests;
