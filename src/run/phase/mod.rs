//! The phases of a run, each a method on [`super::state::RunState`] that returns
//! `Result<(), Stop>`: prepare, boot, setup, workload, power cut, then drain and teardown.

mod boot;
pub mod debug;
mod power_cut;
mod prepare;
mod setup;
pub(crate) mod teardown;
mod workload;
