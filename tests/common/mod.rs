//! What the real-binary test suites (`tests/guests`, `tests/faults`) share: the repository,
//! reading a run's files, whether a process is gone, and a guest that never gets SSH.

#![allow(dead_code)] // each suite uses its own subset

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of a run directory, empty when it is not there.
pub fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_default()
}

/// Whether `pid` runs. A zombie is dead for our purpose; /proc/PID/stat's state field says so.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// Waits (at most 10 s) for `pid`, a `what`, to be gone.
pub fn assert_gone(pid: u32, what: &str) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} (pid {pid}) outlived repro"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A guest whose agent and sshd are kept down: it boots, and the run can never test the kernel.
pub const UNREACHABLE: &str = r#"summary = "a guest whose agent and sshd are kept down"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[vm]
boot_timeout = "25s"
cmdline = ["repro.nossh", "repro.noagent"]

[workload]
script = "true"
"#;
