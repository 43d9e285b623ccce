//! The verdict of a run, decided from what was observed. Pure: no I/O.
//!
//! Order of precedence: a crash matching the expectation is `reproduced`; any other crash
//! report is `crashed-differently`; otherwise any infrastructure problem is `infra-error`; only
//! a workload that ran to completion cleanly, with nothing on the console, is `not-reproduced`.

use super::infra::InfraError;
pub use super::outcome::WorkloadOutcome;
use crate::scenario::Expect;
use repro_oops::{CrashKind, Report};
use serde::Serialize;
use std::sync::Arc;

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

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Complete crash reports, in console order.
    pub crashes: Vec<Report>,
    /// Stalls seen while the host was overloaded, with how (not crashes).
    pub suspect: Vec<(Report, String)>,
    pub workload: WorkloadOutcome,
    /// The infrastructure failure that stopped the run (QEMU died, boot or SSH timeout, ...).
    pub infra: Option<Arc<InfraError>>,
    /// The user stopped the run.
    pub interrupted: bool,
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
    /// With `infra-error`: the failure, typed (`reason` is its text).
    #[serde(skip)]
    pub infra: Option<Arc<InfraError>>,
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
pub fn base_name(f: &str) -> &str {
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

/// The one place that ranks what was seen: the expected crash, then a data signal, then any
/// other crash; only then an infrastructure failure; and `not-reproduced` only for a workload
/// (and check) that passed.
pub fn decide(expect: &Expect, observed: &Observed) -> Decision {
    if let Some(d) = crash_or_signal(expect, observed) {
        return d;
    }
    // The expected stall, but on a starved host: it may be the host's doing, so no verdict.
    if let Some((r, why)) = observed.suspect.iter().find(|(r, _)| matches(expect, r)) {
        return infra(Arc::new(InfraError::SuspectStall {
            title: r.title.clone(),
            why: why.clone(),
        }));
    }
    if observed.guest_panicked {
        return infra(Arc::new(InfraError::UnparsedPanic));
    }
    if observed.interrupted {
        return infra(Arc::new(InfraError::Interrupted));
    }
    if let Some(e) = &observed.infra {
        return infra(e.clone());
    }
    let clean = |reason: String| Decision {
        verdict: Verdict::NotReproduced,
        reason,
        crash: None,
        infra: None,
    };
    if let Some(pc) = &observed.power_cut {
        return match &pc.check {
            WorkloadOutcome::Passed { .. } => clean(format!(
                "{}; after the reboot the check passed, with no crash on the console",
                super::infra::cut_words(pc.at_marker.as_deref(), &observed.workload)
            )),
            check => infra(Arc::new(InfraError::Check {
                at_marker: pc.at_marker.clone(),
                workload: observed.workload.clone(),
                check: check.clone(),
            })),
        };
    }
    match &observed.workload {
        passed @ WorkloadOutcome::Passed { .. } => clean(passed.failure()),
        other => infra(Arc::new(InfraError::Workload(other.clone()))),
    }
}

fn infra(e: Arc<InfraError>) -> Decision {
    Decision {
        verdict: Verdict::InfraError,
        reason: crate::errors::chain(&*e),
        crash: None,
        infra: Some(e),
    }
}

/// A crash, or a data signal the scenario defines as reproduced.
fn crash_or_signal(expect: &Expect, observed: &Observed) -> Option<Decision> {
    let decision = |verdict, reason, crash| Decision {
        verdict,
        reason,
        crash,
        infra: None,
    };
    if let Some(i) = observed.crashes.iter().position(|r| matches(expect, r)) {
        let reason = format!("crash matched: {}", observed.crashes[i].title);
        return Some(decision(Verdict::Reproduced, reason, Some(i)));
    }
    // A data-integrity signal the scenario defines as reproduced, unless a fatal crash that is
    // not the expected one came first (then the data check's failure proves nothing).
    let fatal_other = observed.crashes.iter().position(|r| is_fatal(&r.kind));
    if fatal_other.is_none() {
        if let Some(reason) = data_signal(expect, observed) {
            return Some(decision(Verdict::Reproduced, reason, None));
        }
    }
    let other = fatal_other.or(if observed.crashes.is_empty() { None } else { Some(0) })?;
    let reason = format!(
        "the kernel reported `{}`, which is not the expected crash",
        observed.crashes[other].title
    );
    Some(decision(Verdict::CrashedDifferently, reason, Some(other)))
}

/// The scenario's marker in the workload's (or the check's) output, or its exit status.
fn data_signal(expect: &Expect, observed: &Observed) -> Option<String> {
    if let Some(line) = &observed.marker_line {
        return Some(format!("the workload printed the scenario's marker: {}", line.trim()));
    }
    if let Some(line) = observed.power_cut.as_ref().and_then(|pc| pc.marker_line.as_ref()) {
        return Some(format!(
            "the check after the power cut printed the scenario's marker: {}",
            line.trim()
        ));
    }
    let (last, who) = match &observed.power_cut {
        Some(pc) => (&pc.check, "the check after the power cut"),
        None => (&observed.workload, "the workload"),
    };
    match (expect.exit_status, last) {
        (Some(want), WorkloadOutcome::Failed { status, .. }) if *status == want => Some(format!(
            "{who} exited {status}, which this scenario defines as reproduced"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
