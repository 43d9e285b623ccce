//! Scenario files: TOML in `scenarios/` turned into a validated [`Scenario`], one validator per
//! section. Pure: it reads no file (the loader in `def::load` does, and checks the directories a
//! scenario names).

mod actions;
mod check;
mod model;
mod parse;
mod raw;
mod storage;

pub use model::*;
pub use parse::{parse, SCHEMA};

#[cfg(test)]
mod tests;
