//! The seam between the drivers (bisect, verify, nightly) and real work: a [`Tester`] builds a
//! candidate and runs it, and says what the run showed. [`Live`] does both for real; the
//! drivers' tests use fakes (syzkaller's `pkg/bisect` takes an `Env` the same way).

use crate::def::load::Roots;
use crate::kernel::build::Event as BuildEvent;
use crate::report::RunReport;
use crate::run::verdict::Verdict;
use crate::run::{self, InfraError, Progress};
use crate::rundir::RunDir;
use crate::scenario::Scenario;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What one run of a candidate showed.
#[derive(Debug, Clone)]
pub struct Trial {
    pub verdict: Verdict,
    /// The crash the verdict is about, else the first one seen.
    pub title: Option<String>,
    pub reason: String,
    /// The infrastructure failure behind an `infra-error`.
    pub infra: Option<Arc<InfraError>>,
    /// The run was stopped (Ctrl-C, a budget).
    pub interrupted: bool,
    pub seconds: f64,
    /// The workload's seconds, when it reproduced.
    pub time_to_reproduce: Option<f64>,
    pub vmcores: Vec<String>,
    /// The directory the run made (the base asked for, or a suffixed name when that was taken).
    pub run_dir: String,
}

impl From<&RunReport> for Trial {
    fn from(r: &RunReport) -> Self {
        Trial {
            verdict: r.verdict,
            title: r.crash.as_ref().or(r.crashes.first()).map(|c| c.title.clone()),
            reason: r.reason.clone(),
            infra: r.infra.clone(),
            interrupted: r.interrupted,
            seconds: r.timings.total,
            time_to_reproduce: (r.verdict == Verdict::Reproduced)
                .then_some(r.timings.workload)
                .flatten(),
            vmcores: r.vmcores.clone(),
            run_dir: r.run_dir.clone(),
        }
    }
}

impl Trial {
    /// A run that could not start: an infrastructure failure before there was a report.
    pub fn infra(e: InfraError, run_dir: &std::path::Path) -> Trial {
        Trial {
            verdict: Verdict::InfraError,
            title: None,
            reason: crate::errors::chain(&e),
            interrupted: false,
            infra: Some(Arc::new(e)),
            seconds: 0.0,
            time_to_reproduce: None,
            vmcores: Vec::new(),
            run_dir: run_dir.display().to_string(),
        }
    }
}

/// What of a candidate did not build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Kernel(String),
    Module(String),
}

/// Why a candidate could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The part's source does not build: a compile error, a patch that does not apply, a
    /// config recipe it cannot satisfy. A fact about the tree.
    Tree { part: Part, why: String },
    /// Anything else (a missing tool, I/O, the cache): no fact about the tree.
    Infra { why: String },
}

/// What a build made that a driver compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Built {
    /// The SHA-256 of what the candidate boots: every node's kernel image and its modules.
    /// Two commits that build the same bytes cannot differ in how those kernels behave. None
    /// when a part could not be read, or when the candidate builds out-of-tree modules (they
    /// are not in it).
    pub image: Option<String>,
}

pub trait Tester: Send + Sync {
    /// Builds every kernel and module `candidate` needs (a cache hit when built before).
    fn build(&self, candidate: &Scenario) -> impl Future<Output = Result<Built, BuildError>> + Send;
    /// Runs `candidate` in a new directory named `run_dir` (suffixed when the name is taken);
    /// `label` names the run in progress output.
    fn run(
        &self,
        candidate: Scenario,
        run_dir: PathBuf,
        label: String,
        cancel: watch::Receiver<bool>,
    ) -> impl Future<Output = Trial> + Send;
}

/// How [`Live`] shows its builds and runs (the CLI's progress display, or nothing).
pub trait Ui: Send + Sync {
    /// A view of one build, named `label` (kernel and arch).
    fn build(&self, label: &str) -> Box<dyn BuildView>;
    /// Where one run's progress goes, and the task that shows it (it ends after the run).
    fn run(&self, label: &str) -> (mpsc::UnboundedSender<Progress>, JoinHandle<()>);
}

pub trait BuildView: Send + Sync {
    fn on(&self, event: BuildEvent);
    fn finish(&self);
}

/// Shows nothing.
pub struct Quiet;

struct NoView;

impl BuildView for NoView {
    fn on(&self, _: BuildEvent) {}
    fn finish(&self) {}
}

impl Ui for Quiet {
    fn build(&self, _: &str) -> Box<dyn BuildView> {
        Box::new(NoView)
    }

    fn run(&self, _: &str) -> (mpsc::UnboundedSender<Progress>, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        (tx, tokio::spawn(async move { while rx.recv().await.is_some() {} }))
    }
}

/// Real builds (kernel definitions, modules) and real runs (`run::run`).
pub struct Live {
    pub roots: Roots,
    /// Save a vmcore of each crashed guest.
    pub vmcore: bool,
    pub ui: Arc<dyn Ui>,
}

impl Tester for Live {
    async fn build(&self, candidate: &Scenario) -> Result<Built, BuildError> {
        let (roots, candidate, ui) = (self.roots.clone(), candidate.clone(), self.ui.clone());
        tokio::task::spawn_blocking(move || build_blocking(&roots, &candidate, &*ui))
            .await
            .unwrap_or_else(|e| Err(BuildError::Infra { why: e.to_string() }))
    }

    async fn run(&self, candidate: Scenario, run_dir: PathBuf, label: String, cancel: watch::Receiver<bool>) -> Trial {
        let run_dir = match RunDir::create_unique(&run_dir) {
            Ok(d) => d,
            Err(e) => return Trial::infra(InfraError::RunDir(Box::new(e)), &run_dir),
        };
        let (progress, shown) = self.ui.run(&label);
        let report = run::run(run::Options {
            scenario: candidate,
            roots: self.roots.clone(),
            run_dir,
            progress,
            cancel,
            vmcore: self.vmcore,
            keep_disks: false,
            gdb: false,
        })
        .await;
        let _ = shown.await;
        Trial::from(&report)
    }
}

/// Runs `candidate` like [`Tester::run`], but a panic in the run (a bug in repro) becomes this
/// trial's infrastructure error instead of taking down the caller: the run's guests die with it
/// (an instance kills its QEMU when dropped), and a nightly's other cells go on.
pub async fn run_caught<T: Tester + ?Sized>(
    tester: &T,
    candidate: Scenario,
    run_dir: PathBuf,
    label: String,
    cancel: watch::Receiver<bool>,
) -> Trial {
    use futures::FutureExt;
    // Where the run will be: a driver runs one trial per name at a time, so the directory the
    // tester makes is the first free one now.
    let made = RunDir::next_free(&run_dir);
    match std::panic::AssertUnwindSafe(tester.run(candidate, run_dir, label, cancel))
        .catch_unwind()
        .await
    {
        Ok(trial) => trial,
        Err(payload) => Trial::infra(InfraError::Panicked(panic_message(&*payload)), &made),
    }
}

/// The text a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".into(),
    }
}

fn build_blocking(roots: &Roots, candidate: &Scenario, ui: &dyn Ui) -> Result<Built, BuildError> {
    let infra = |e: &(dyn std::error::Error + 'static)| BuildError::Infra {
        why: crate::errors::chain(e),
    };
    let mut kernels = Vec::new();
    for node in &candidate.nodes {
        let def = run::node_kernel(roots, candidate, node).map_err(|e| infra(&*e))?;
        let view = ui.build(&format!("{} {}", def.name, node.arch));
        let built = def.build(node.arch, &|e| view.on(e));
        view.finish();
        let kernel = built.map_err(|e| match e.is_build_failure() {
            true => BuildError::Tree {
                part: Part::Kernel(def.name.clone()),
                why: crate::errors::chain(&e),
            },
            false => infra(&e),
        })?;
        kernels.push(kernel_identity(&kernel));
        for m in &candidate.modules {
            crate::module::build(m, &kernel, &|_| {}).map_err(|e| match e {
                crate::module::Error::Build { .. } | crate::module::Error::Git { .. } => BuildError::Tree {
                    part: Part::Module(m.name.clone()),
                    why: crate::errors::chain(&e),
                },
                // No headers for this package: the kernel, not the module, cannot be tested.
                crate::module::Error::Kernel(k) if k.archive_lacks() => BuildError::Tree {
                    part: Part::Kernel(def.name.clone()),
                    why: crate::errors::chain(&k),
                },
                other => infra(&other),
            })?;
        }
    }
    let image = match candidate.modules.is_empty() {
        true => kernels
            .into_iter()
            .collect::<Option<Vec<String>>>()
            .map(|k| identity(&k)),
        false => None,
    };
    Ok(Built { image })
}

/// One node's kernel: its image's SHA-256, and its modules' when it has them.
fn kernel_identity(kernel: &crate::kernel::Artifacts) -> Option<String> {
    let image = crate::cache::hash_file(&kernel.image).ok()?;
    match &kernel.modules {
        Some(m) => Some(format!("{image} modules {}", crate::cache::hash_tree(m).ok()?)),
        None => Some(image),
    }
}

/// The nodes' kernels as one SHA-256; one node without modules is its image's own hash.
fn identity(kernels: &[String]) -> String {
    match kernels {
        [one] if !one.contains(' ') => one.clone(),
        _ => crate::cache::hash_bytes(kernels.join("\n").as_bytes()),
    }
}

#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests {
    use super::identity;

    #[test]
    fn the_kernels_identity_covers_every_node_not_just_the_first() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        // One node without modules: its image's own hash, as `identical_parent` compares.
        assert_eq!(identity(std::slice::from_ref(&a)), a);
        // An NFS server on a stock kernel first, the bisected client second.
        let one = identity(&[a.clone(), a.clone()]);
        let other = identity(&[a.clone(), b.clone()]);
        assert_ne!(one, other);
        assert_ne!(
            identity(&[b.clone(), a.clone()]),
            other,
            "the order of the nodes counts"
        );
        // The same image with other modules is another kernel.
        let with = format!("{a} modules {b}");
        assert_ne!(identity(&[with]), a);
    }
}
