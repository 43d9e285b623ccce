//! What a command ended with, and the one mapping from that to the process's exit code.
//!
//! 0/1/125 follow `git bisect run` (good / bad / skip); everything else is above 127 so that
//! `git bisect run` aborts instead of marking a commit.

use crate::bisect::driver::{BisectResult, Ended as BisectEnded};
use crate::def::diag::Diagnostic;
use crate::nightly::driver::Ran;
use crate::nightly::Nightly;
use crate::report::RunReport;
use crate::verify::driver::Ended as VerifyEnded;

pub const NOT_REPRODUCED: i32 = 0;
pub const REPRODUCED: i32 = 1;
/// `repro bisect`: skipped commits hide the answer. `repro verify`: the base never reproduced.
pub const AMBIGUOUS: i32 = 2;
pub const CANNOT_TEST: i32 = 125;
/// Bad usage, or a scenario/kernel/image definition that does not parse.
pub const USAGE: i32 = 128;
pub const INTERRUPTED: i32 = 130;
/// repro itself panicked (a bug): no verdict, and nothing `git bisect run` takes for one.
pub const PANICKED: i32 = 134;

/// A command that did its work (its output is printed).
pub enum Done {
    /// Nothing to judge: a listing, a build, a log.
    Ok,
    Run(Box<RunReport>),
    Verify(VerifyEnded),
    Bisect(Box<BisectResult>),
    Nightly(Box<Ran>),
    Merged(Box<Nightly>),
    /// `repro check` and `repro list`: how many definitions did not load.
    Checked {
        invalid: usize,
    },
    /// `repro oops parse`: how many crash reports the log holds.
    Parsed {
        reports: usize,
    },
}

/// A command that could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("{0}")]
    CannotTest(String),
}

/// The exit code of what a command ended with.
pub fn code(result: &Result<Done, Failure>) -> i32 {
    match result {
        Ok(Done::Ok) => 0,
        Ok(Done::Run(r)) if r.interrupted => INTERRUPTED,
        Ok(Done::Run(r)) => r.exit_code,
        Ok(Done::Verify(VerifyEnded::Done(v))) => v.conclusion.outcome.exit_code(),
        Ok(Done::Verify(VerifyEnded::Interrupted)) => INTERRUPTED,
        Ok(Done::Bisect(b)) => match b.outcome {
            BisectEnded::Found => 0,
            BisectEnded::Ambiguous | BisectEnded::Unconfirmed => AMBIGUOUS,
            BisectEnded::Stopped => CANNOT_TEST,
            BisectEnded::Interrupted => INTERRUPTED,
        },
        Ok(Done::Nightly(n)) if n.interrupted => INTERRUPTED,
        Ok(Done::Nightly(n)) => n.nightly.exit_code(),
        Ok(Done::Merged(n)) => n.exit_code(),
        Ok(Done::Checked { invalid }) => {
            if *invalid > 0 {
                USAGE
            } else {
                0
            }
        }
        Ok(Done::Parsed { reports }) => {
            if *reports > 0 {
                REPRODUCED
            } else {
                NOT_REPRODUCED
            }
        }
        Err(Failure::Usage(_) | Failure::Invalid(_)) => USAGE,
        Err(Failure::CannotTest(_)) => CANNOT_TEST,
    }
}

impl From<crate::catalog::Error> for Failure {
    fn from(e: crate::catalog::Error) -> Self {
        match e {
            crate::catalog::Error::Invalid(d) => Failure::Invalid(d),
            other => Failure::Usage(crate::errors::chain(&other)),
        }
    }
}
