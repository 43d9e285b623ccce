//! Why a run could not test the kernel: one variant per failing operation, carried to the
//! verdict and the report, and turned into text once (the report's `reason`). Pure.

use super::outcome::WorkloadOutcome;
use super::progress::Phase;
use crate::wait::Timeout;
use std::path::PathBuf;

/// The error an operation failed with, whatever its type.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(
        "the host failed node `{node}`'s storage ({device}: {reason}); QEMU paused the guest. \
         This is the host's disk, not the kernel: free space where the run directory is"
    )]
    HostStorage {
        node: String,
        device: String,
        reason: String,
    },
    #[error("`{title}` came while {why}: a guest starved under emulation stalls without a bug, so it proves nothing; run fewer guests at once")]
    SuspectStall { title: String, why: String },
    #[error("repro panicked during the run (a bug in repro, not a fact about the kernel): {0}")]
    Panicked(String),
    #[error("making the run's directory")]
    RunDir(#[source] Source),
    #[error("generating the run's SSH key")]
    Keygen(#[source] Source),
    #[error("preparing node `{node}`")]
    Prepare {
        node: String,
        #[source]
        source: Source,
    },
    #[error("starting QEMU for node `{node}`")]
    QemuStart {
        node: String,
        #[source]
        source: Source,
    },
    #[error("QEMU for node `{node}` exited during {} ({status})\nstderr:\n{stderr}\nconsole tail:\n{console}", phase.during())]
    QemuExited {
        node: String,
        phase: Phase,
        status: String,
        stderr: String,
        console: String,
    },
    #[error("node `{node}` never answered (repro's agent or SSH): {why}\nconsole tail:\n{console}")]
    NeverUp { node: String, why: String, console: String },
    /// A phase's deadline passed.
    #[error(transparent)]
    Timeout(#[from] Timeout),
    /// The scenario's setup could not be turned into steps.
    #[error("setup: {0}")]
    SetupPlan(String),
    #[error(transparent)]
    Setup(StepError),
    #[error("{doing} on node `{node}`")]
    Qmp {
        doing: &'static str,
        node: String,
        #[source]
        source: Source,
    },
    #[error("the workload finished without printing the power-cut marker `{marker}`")]
    PowerCutMarkerMissing { marker: String },
    #[error("the node did not answer again after the power cut (repro's agent or SSH)")]
    NotBack {
        node: String,
        #[source]
        source: Source,
    },
    #[error("after the power cut")]
    StorageAfterPowerCut(#[source] StepError),
    #[error("the guest panicked (QMP GUEST_PANICKED) but no crash report could be parsed from the console")]
    UnparsedPanic,
    /// The user stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The workload did not pass, and nothing crashed.
    #[error("{}", .0.failure())]
    Workload(WorkloadOutcome),
    /// After a power cut, the check did not pass, and nothing crashed.
    #[error("{}; after the reboot the check {}", cut_words(at_marker.as_deref(), workload), check.words())]
    Check {
        /// The workload line the power was cut at; `None`: after the workload.
        at_marker: Option<String>,
        workload: WorkloadOutcome,
        check: WorkloadOutcome,
    },
}

/// How the power was cut, in a sentence.
pub fn cut_words(at_marker: Option<&str>, workload: &WorkloadOutcome) -> String {
    match at_marker {
        Some(m) => format!("the power was cut when the workload printed `{m}`"),
        None => format!("the power was cut after the workload ({})", workload.words()),
    }
}

/// A setup step that failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("setup step `{step}` on node `{node}`")]
    Ssh {
        step: String,
        node: String,
        #[source]
        source: Source,
    },
    #[error("setup step `{step}` on node `{node}` failed (exit {status}):\n{tail}")]
    Failed {
        step: String,
        node: String,
        status: i32,
        tail: String,
    },
    #[error("cannot write {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a phase ended the run early. `?` on it ends the phases; what was seen decides the verdict.
#[derive(Debug)]
pub enum Stop {
    /// A crash report that ends the run has completed.
    Crash,
    Infra(InfraError),
    /// The user pressed Ctrl-C (or the nightly's budget ran out).
    Interrupted,
}

impl From<InfraError> for Stop {
    fn from(e: InfraError) -> Self {
        Stop::Infra(e)
    }
}

impl From<Timeout> for Stop {
    fn from(t: Timeout) -> Self {
        Stop::Infra(InfraError::Timeout(t))
    }
}
