//! `repro verify`: does a patch set fix the scenario? The tally and conclusion are pure
//! ([`tally`]); [`driver`] runs the base and the patched kernel through a tester.

pub mod driver;
pub mod tally;

pub use tally::{conclude, rate, Conclusion, Finding, Tally};
