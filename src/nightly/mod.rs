//! `repro nightly`: a scenario × kernel × arch matrix, run with a resource-bounded scheduler,
//! compared with earlier nightlies and reported as JSON, JUnit XML and one static HTML file.
//! [`plan`] and [`report`] are pure; [`driver`] runs the cells through a tester and [`store`]
//! reads and writes nightly directories.

pub mod driver;
pub mod kcidb;
pub mod known;
pub mod plan;
pub mod report;
pub mod store;

pub use plan::*;

#[cfg(test)]
mod tests;
