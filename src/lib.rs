//! repro: a QEMU-driven kernel crash reproducer. See ARCHITECTURE.md for the map.

pub mod arch;
pub mod bisect;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod console;
pub mod def;
pub mod errors;
pub mod failpoint;
pub mod guest;
pub mod image;
pub mod kernel;
pub mod module;
pub mod nightly;
pub mod process;
pub mod report;
pub mod run;
pub mod rundir;
pub mod scenario;
pub mod symbolize;
pub mod tester;
pub mod timefmt;
pub mod verify;
pub mod vm;
pub mod wait;
