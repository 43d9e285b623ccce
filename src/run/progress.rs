//! What a run tells its watcher as it goes: the phase it is in, and notes. The CLI is the only
//! consumer that prints them.

use std::time::Duration;

/// The phases a run goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Image,
    Boot,
    Setup,
    Workload,
    Detection,
    Teardown,
    PowerCut,
    Check,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Image => "image",
            Phase::Boot => "boot",
            Phase::Setup => "setup",
            Phase::Workload => "workload",
            Phase::Detection => "detection",
            Phase::Teardown => "teardown",
            Phase::PowerCut => "power-cut",
            Phase::Check => "check",
        }
    }

    /// The phase in a sentence: "QEMU exited during {}".
    pub fn during(self) -> &'static str {
        match self {
            Phase::Image => "the image phase",
            Phase::Boot => "boot",
            Phase::Setup => "setup",
            Phase::Workload => "the workload",
            Phase::Detection => "crash detection",
            Phase::Teardown => "teardown",
            Phase::PowerCut => "the power cut",
            Phase::Check => "the check after the power cut",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress, consumed by the CLI (the only place that prints).
#[derive(Debug, Clone)]
pub enum Progress {
    Phase {
        phase: Phase,
        detail: String,
    },
    PhaseDone {
        phase: Phase,
        elapsed: Duration,
    },
    Note(String),
    /// A transient status line for the current phase (e.g. what `make` is compiling).
    Detail(String),
}
