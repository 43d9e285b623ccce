//! How the workload (or a power cut's check) ended, as far as the host could tell. Pure.

/// How the workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadOutcome {
    /// Every iteration ran and exited 0.
    Passed { iterations: u32 },
    /// An iteration exited non-zero.
    Failed {
        iteration: u32,
        status: i32,
        stderr_tail: String,
    },
    /// The workload could not be started (upload or exec failed).
    CouldNotStart { why: String },
    /// The connection to the guest (its agent or SSH) broke mid-workload.
    Lost { why: String },
    /// The workload outlived its timeout.
    TimedOut { after_secs: u64 },
    /// The run ended before the workload did (a crash, or the guest stopped).
    Interrupted,
    /// The workload never got to run (boot failed).
    NotRun,
}

impl WorkloadOutcome {
    /// Why this outcome of the workload is no verdict about the kernel (when nothing crashed).
    pub fn failure(&self) -> String {
        match self {
            WorkloadOutcome::Passed { iterations } => {
                format!("{iterations} workload iteration(s) completed with no crash on the console")
            }
            WorkloadOutcome::Failed {
                iteration,
                status,
                stderr_tail,
            } => format!(
                "workload iteration {iteration} exited with status {status} and no crash was seen{}",
                tail(stderr_tail)
            ),
            WorkloadOutcome::CouldNotStart { why } => format!("the workload could not start: {why}"),
            WorkloadOutcome::Lost { why } => {
                format!("lost the connection to the guest with no crash on the console: {why}")
            }
            WorkloadOutcome::TimedOut { after_secs } => {
                format!("the workload did not finish within {after_secs}s and the console shows no crash (hung guest?)")
            }
            WorkloadOutcome::Interrupted => {
                "the run ended before the workload finished, with no crash on the console".into()
            }
            WorkloadOutcome::NotRun => "the workload never ran".into(),
        }
    }

    /// A short account, for a sentence about something else: "the check {}".
    pub fn words(&self) -> String {
        match self {
            WorkloadOutcome::Passed { iterations } => format!("{iterations} iteration(s) passed"),
            WorkloadOutcome::Failed {
                status, stderr_tail, ..
            } => format!("exited with status {status} and no crash was seen{}", tail(stderr_tail)),
            WorkloadOutcome::CouldNotStart { why } => format!("could not start: {why}"),
            WorkloadOutcome::Lost { why } => {
                format!("lost its connection to the guest with no crash on the console: {why}")
            }
            WorkloadOutcome::TimedOut { after_secs } => {
                format!("did not finish within {after_secs}s and the console shows no crash (hung guest?)")
            }
            WorkloadOutcome::Interrupted => "was cut short with no crash on the console".into(),
            WorkloadOutcome::NotRun => "never ran".into(),
        }
    }
}

fn tail(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        String::new()
    } else {
        format!(": {stderr_tail}")
    }
}
