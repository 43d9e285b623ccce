//! The verdict of a run, decided from what was observed. Pure: no I/O.
//!
//! Order of precedence: a crash matching the expectation is `reproduced`; any other crash
//! report is `crashed-differently`; otherwise any infrastructure problem is `infra-error`; only
//! a workload that ran to completion cleanly, with nothing on the console, is `not-reproduced`.

use crate::scenario::Expect;
use repro_oops::{CrashKind, Report};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    CrashedDifferently,
    InfraError,
}

impl Verdict {
    /// Exit codes, compatible with `git bisect run`: 0 good, 1 bad, 125 cannot test.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::NotReproduced => 0,
            Verdict::Reproduced => 1,
            Verdict::CrashedDifferently | Verdict::InfraError => 125,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not-reproduced",
            Verdict::CrashedDifferently => "crashed-differently",
            Verdict::InfraError => "infra-error",
        }
    }
}

/// How the workload ended, as far as the host could tell.
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
    /// The SSH connection broke mid-workload.
    Lost { why: String },
    /// The workload outlived its timeout.
    TimedOut { after_secs: u64 },
    /// The run ended before the workload did (a crash, or the guest stopped).
    Interrupted,
    /// The workload never got to run (boot failed).
    NotRun,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Complete crash reports, in console order.
    pub crashes: Vec<Report>,
    pub workload: WorkloadOutcome,
    /// An infrastructure failure (QEMU died, boot or SSH timeout, build failure, ...).
    pub infra: Option<String>,
    /// QMP reported GUEST_PANICKED.
    pub guest_panicked: bool,
    /// The first workload output line containing the scenario's `expect.marker`.
    pub marker_line: Option<String>,
    /// `[power_cut]` happened: the node was reset and booted again, and its check ran.
    pub power_cut: Option<PowerCutObserved>,
}

#[derive(Debug, Clone)]
pub struct PowerCutObserved {
    /// The workload line that triggered the cut; `None`: the cut came after the workload.
    pub at_marker: Option<String>,
    /// The check script's outcome, after the boot on the same storage.
    pub check: WorkloadOutcome,
    /// The first check output line containing the scenario's `expect.marker`.
    pub marker_line: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: String,
    /// Index into `Observed::crashes` of the crash the verdict is about.
    #[serde(skip)]
    pub crash: Option<usize>,
}

/// Does `report` match the scenario's expectation?
pub fn matches(expect: &Expect, report: &Report) -> bool {
    // A scenario about data (marker or exit status only) is not reproduced by any crash.
    if !expect.names_a_crash() && expect.names_data() {
        return false;
    }
    if let Some(t) = &expect.title {
        if &report.title != t {
            return false;
        }
    }
    if let Some(re) = &expect.title_regex {
        if !re.is_match(&report.title) {
            return false;
        }
    }
    // A frame counts whether the trace printed it or debug info shows it inlined there.
    let inlined = |f: &repro_oops::Frame, want: &str| f.source.iter().any(|s| base_name(&s.function) == want);
    expect.frames.iter().all(|want| {
        report
            .frames
            .iter()
            .any(|f| base_name(&f.function) == want || inlined(f, want))
            || report.faulting_function.as_deref().map(base_name) == Some(want.as_str())
            || report.faulting_frame.as_ref().is_some_and(|f| inlined(f, want))
    })
}

/// Is `report` a known splat the scenario does not count, on `arch`? Never true for a report
/// that matches the expectation.
pub fn ignored(expect: &Expect, report: &Report, arch: crate::arch::Arch) -> bool {
    !matches(expect, report)
        && expect
            .ignore
            .iter()
            .any(|i| i.arch.is_none_or(|a| a == arch) && i.title_regex.is_match(&report.title))
}

/// `foo.isra.0` → `foo`.
fn base_name(f: &str) -> &str {
    f.split('.').next().unwrap_or(f)
}

/// Kinds after which the kernel carries on, so the run may too, unless the report is the one
/// the scenario is about.
pub fn is_fatal(kind: &CrashKind) -> bool {
    matches!(
        kind,
        CrashKind::NullDeref
            | CrashKind::PagingFault
            | CrashKind::GeneralProtection
            | CrashKind::Bug
            | CrashKind::Panic
            | CrashKind::Oops
    )
}

/// Should this report end the run right away?
pub fn ends_run(expect: &Expect, report: &Report) -> bool {
    matches(expect, report) || is_fatal(&report.kind)
}

pub fn decide(expect: &Expect, o: &Observed) -> Decision {
    if let Some(i) = o.crashes.iter().position(|r| matches(expect, r)) {
        return Decision {
            verdict: Verdict::Reproduced,
            reason: format!("crash matched: {}", o.crashes[i].title),
            crash: Some(i),
        };
    }
    // A data-integrity signal the scenario defines as reproduced, unless a fatal crash that is
    // not the expected one came first (then the data check's failure proves nothing).
    let fatal_other = o.crashes.iter().position(|r| is_fatal(&r.kind));
    if fatal_other.is_none() {
        if let Some(line) = &o.marker_line {
            return Decision {
                verdict: Verdict::Reproduced,
                reason: format!("the workload printed the scenario's marker: {}", line.trim()),
                crash: None,
            };
        }
        if let Some(line) = o.power_cut.as_ref().and_then(|pc| pc.marker_line.as_ref()) {
            return Decision {
                verdict: Verdict::Reproduced,
                reason: format!(
                    "the check after the power cut printed the scenario's marker: {}",
                    line.trim()
                ),
                crash: None,
            };
        }
        let (last, who) = match &o.power_cut {
            Some(pc) => (&pc.check, "the check after the power cut"),
            None => (&o.workload, "the workload"),
        };
        if let (Some(want), WorkloadOutcome::Failed { status, .. }) = (expect.exit_status, last) {
            if *status == want {
                return Decision {
                    verdict: Verdict::Reproduced,
                    reason: format!("{who} exited {status}, which this scenario defines as reproduced"),
                    crash: None,
                };
            }
        }
    }
    if let Some(i) = fatal_other.or(if o.crashes.is_empty() { None } else { Some(0) }) {
        return Decision {
            verdict: Verdict::CrashedDifferently,
            reason: format!(
                "the kernel reported `{}`, which is not the expected crash",
                o.crashes[i].title
            ),
            crash: Some(i),
        };
    }
    if o.guest_panicked {
        return Decision {
            verdict: Verdict::InfraError,
            reason: "the guest panicked (QMP GUEST_PANICKED) but no crash report could be parsed from the console"
                .into(),
            crash: None,
        };
    }
    if let Some(why) = &o.infra {
        return Decision {
            verdict: Verdict::InfraError,
            reason: why.clone(),
            crash: None,
        };
    }
    let infra = |reason: String| Decision {
        verdict: Verdict::InfraError,
        reason,
        crash: None,
    };
    if let Some(pc) = &o.power_cut {
        let cut = match &pc.at_marker {
            Some(m) => format!("the power was cut when the workload printed `{m}`"),
            None => format!("the power was cut after the workload ({})", outcome_words(&o.workload)),
        };
        return match &pc.check {
            WorkloadOutcome::Passed { .. } => Decision {
                verdict: Verdict::NotReproduced,
                reason: format!("{cut}; after the reboot the check passed, with no crash on the console"),
                crash: None,
            },
            other => infra(format!("{cut}; after the reboot the check {}", outcome_words(other))),
        };
    }
    match &o.workload {
        WorkloadOutcome::Passed { iterations } => Decision {
            verdict: Verdict::NotReproduced,
            reason: format!("{iterations} workload iteration(s) completed with no crash on the console"),
            crash: None,
        },
        WorkloadOutcome::Failed {
            iteration,
            status,
            stderr_tail,
        } => infra(format!(
            "workload iteration {iteration} exited with status {status} and no crash was seen{}",
            if stderr_tail.is_empty() {
                String::new()
            } else {
                format!(": {stderr_tail}")
            }
        )),
        WorkloadOutcome::CouldNotStart { why } => infra(format!("the workload could not start: {why}")),
        WorkloadOutcome::Lost { why } => infra(format!("lost the SSH connection with no crash on the console: {why}")),
        WorkloadOutcome::TimedOut { after_secs } => infra(format!(
            "the workload did not finish within {after_secs}s and the console shows no crash (hung guest?)"
        )),
        WorkloadOutcome::Interrupted => {
            infra("the run ended before the workload finished, with no crash on the console".into())
        }
        WorkloadOutcome::NotRun => infra("the workload never ran".into()),
    }
}

/// A short account of an outcome, for reasons that are not about the workload itself.
fn outcome_words(w: &WorkloadOutcome) -> String {
    match w {
        WorkloadOutcome::Passed { iterations } => format!("{iterations} iteration(s) passed"),
        WorkloadOutcome::Failed {
            status, stderr_tail, ..
        } if stderr_tail.is_empty() => {
            format!("exited with status {status} and no crash was seen")
        }
        WorkloadOutcome::Failed {
            status, stderr_tail, ..
        } => {
            format!("exited with status {status} and no crash was seen: {stderr_tail}")
        }
        WorkloadOutcome::CouldNotStart { why } => format!("could not start: {why}"),
        WorkloadOutcome::Lost { why } => format!("lost its SSH connection with no crash on the console: {why}"),
        WorkloadOutcome::TimedOut { after_secs } => {
            format!("did not finish within {after_secs}s and the console shows no crash (hung guest?)")
        }
        WorkloadOutcome::Interrupted => "was cut short with no crash on the console".into(),
        WorkloadOutcome::NotRun => "never ran".into(),
    }
}

#[cfg(test)]
mod tests;
