//! repro: a QEMU-driven kernel crash reproducer. See ARCHITECTURE.md for the map.

pub mod arch;
pub mod bisect;
pub mod cache;
pub mod cli;
pub mod console;
pub mod guest;
pub mod image;
pub mod kernel;
pub mod module;
pub mod nightly;
pub mod process;
pub mod report;
pub mod run;
pub mod scenario;
pub mod symbolize;
pub mod timefmt;
pub mod verify;
pub mod vm;
pub mod wait;

/// An error and all its sources, joined with ": ".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
