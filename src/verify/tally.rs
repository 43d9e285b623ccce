//! Does a patch set fix the scenario? Pure tallying and the conclusion; the driver runs the
//! scenario.
//!
//! The conclusion is `fixed` only when the base kernel reproduced, the patched kernel never did,
//! and no patched run was lost to an infrastructure error or a different crash. Its confidence is
//! the probability that a kernel that still had the bug would have shown it at least once in the
//! patched runs, using the base's reproduction rate with Laplace smoothing ((k+1)/(n+2)), so one
//! lucky base run never claims certainty.

use crate::run::verdict::Verdict;
use serde::Serialize;

/// Verdict counts for one side (base or patched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub runs: u32,
    pub reproduced: u32,
    pub not_reproduced: u32,
    pub crashed_differently: u32,
    pub infra_error: u32,
}

impl Tally {
    pub fn add(&mut self, v: Verdict) {
        self.runs += 1;
        match v {
            Verdict::Reproduced => self.reproduced += 1,
            Verdict::NotReproduced => self.not_reproduced += 1,
            Verdict::CrashedDifferently => self.crashed_differently += 1,
            Verdict::InfraError => self.infra_error += 1,
        }
    }

    /// Runs that tested the kernel (reproduced or cleanly not).
    pub fn valid(&self) -> u32 {
        self.reproduced + self.not_reproduced
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    Fixed,
    NotFixed,
    BaseDoesNotReproduce,
    Inconclusive,
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Fixed => "fixed",
            Finding::NotFixed => "not fixed",
            Finding::BaseDoesNotReproduce => "base does not reproduce",
            Finding::Inconclusive => "inconclusive",
        }
    }

    /// 0 fixed, 1 not fixed, 2 base does not reproduce, 125 inconclusive.
    pub fn exit_code(self) -> i32 {
        match self {
            Finding::Fixed => 0,
            Finding::NotFixed => 1,
            Finding::BaseDoesNotReproduce => 2,
            Finding::Inconclusive => 125,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conclusion {
    pub outcome: Finding,
    /// For `fixed`: P(at least one reproduction in the patched runs | still buggy).
    pub confidence: Option<f64>,
    /// The smoothed base reproduction rate used.
    pub base_rate: Option<f64>,
    pub reason: String,
}

/// The smoothed reproduction rate of `t`.
pub fn rate(t: &Tally) -> f64 {
    (f64::from(t.reproduced) + 1.0) / (f64::from(t.valid()) + 2.0)
}

pub fn conclude(base: &Tally, patched: &Tally) -> Conclusion {
    let c = |outcome, confidence, base_rate, reason: String| Conclusion {
        outcome,
        confidence,
        base_rate,
        reason,
    };
    if patched.reproduced > 0 {
        return c(
            Finding::NotFixed,
            None,
            None,
            format!(
                "the patched kernel reproduced in {}/{} runs",
                patched.reproduced, patched.runs
            ),
        );
    }
    if base.reproduced == 0 {
        if base.infra_error > 0 || base.crashed_differently > 0 {
            return c(
                Finding::Inconclusive,
                None,
                None,
                format!(
                    "the base never reproduced, and {} of its {} runs were lost to infrastructure errors or other crashes",
                    base.infra_error + base.crashed_differently,
                    base.runs
                ),
            );
        }
        return c(
            Finding::BaseDoesNotReproduce,
            None,
            None,
            format!("the base kernel did not reproduce in {} runs", base.runs),
        );
    }
    if patched.infra_error > 0 {
        return c(
            Finding::Inconclusive,
            None,
            None,
            format!(
                "{}/{} patched runs ended in infrastructure errors",
                patched.infra_error, patched.runs
            ),
        );
    }
    if patched.crashed_differently > 0 {
        return c(
            Finding::Inconclusive,
            None,
            None,
            format!(
                "the patched kernel crashed differently in {}/{} runs",
                patched.crashed_differently, patched.runs
            ),
        );
    }
    let p = rate(base);
    let conf = 1.0 - (1.0 - p).powi(patched.not_reproduced as i32);
    c(
        Finding::Fixed,
        Some(conf),
        Some(p),
        format!(
            "base reproduced {}/{}, patched 0/{}; a still-buggy kernel reproducing at the base's rate (~{:.2}) would have shown it with probability {:.3}",
            base.reproduced,
            base.runs,
            patched.runs,
            p,
            conf
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[Verdict]) -> Tally {
        let mut t = Tally::default();
        for x in v {
            t.add(*x);
        }
        t
    }
    use Verdict::*;

    #[test]
    fn fixed_needs_base_reproducing_and_patched_clean() {
        let c = conclude(&t(&[Reproduced; 3]), &t(&[NotReproduced; 3]));
        assert_eq!(c.outcome, Finding::Fixed);
        // rate (3+1)/(3+2) = 0.8; 1 - 0.2^3 = 0.992
        assert!((c.confidence.unwrap() - 0.992).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn a_flaky_base_gives_lower_confidence() {
        let base = t(&[Reproduced, NotReproduced, NotReproduced, NotReproduced]);
        let c = conclude(&base, &t(&[NotReproduced; 4]));
        assert_eq!(c.outcome, Finding::Fixed);
        // rate 2/6; 1 - (2/3)^4 = 0.802
        assert!((c.confidence.unwrap() - (1.0 - (2.0f64 / 3.0).powi(4))).abs() < 1e-9);
    }

    #[test]
    fn one_reproduction_on_the_patched_kernel_is_not_fixed() {
        let c = conclude(&t(&[Reproduced; 3]), &t(&[NotReproduced, Reproduced, InfraError]));
        assert_eq!(c.outcome, Finding::NotFixed);
    }

    #[test]
    fn infra_errors_never_become_fixed() {
        let c = conclude(&t(&[Reproduced; 3]), &t(&[NotReproduced, InfraError, NotReproduced]));
        assert_eq!(c.outcome, Finding::Inconclusive);
        let c = conclude(&t(&[Reproduced]), &t(&[InfraError]));
        assert_eq!(c.outcome, Finding::Inconclusive);
    }

    #[test]
    fn a_different_crash_on_the_patched_kernel_is_inconclusive() {
        let c = conclude(&t(&[Reproduced; 2]), &t(&[NotReproduced, CrashedDifferently]));
        assert_eq!(c.outcome, Finding::Inconclusive);
    }

    #[test]
    fn base_that_never_reproduces() {
        let c = conclude(&t(&[NotReproduced; 3]), &t(&[NotReproduced; 3]));
        assert_eq!(c.outcome, Finding::BaseDoesNotReproduce);
        let c = conclude(&t(&[NotReproduced, InfraError]), &t(&[NotReproduced; 2]));
        assert_eq!(c.outcome, Finding::Inconclusive);
    }
}
