//! Real guests: QEMU boots the Debian kernels on x86_64 and aarch64 (TCG here, KVM where it
//! works). Run one at a time (nextest test group `guests`); `just prepare` warms the cache first.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repro() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repro"));
    c.arg("--root").arg(repo());
    c
}

/// Runs a scenario into a fresh run directory; returns (exit code, report.json, run dir).
fn run(scenario: &str, extra: &[&str]) -> (i32, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = repro()
        .args(["run", scenario, "--json", "--run-dir"])
        .arg(dir.path())
        .args(extra)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report JSON ({e}): {}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report, dir)
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_default()
}

fn smoke_boot(arch: &str) {
    let (code, r, dir) = run("smoke-boot", &["--arch", arch]);
    assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
    assert_eq!(code, 0);
    assert_eq!(r["arch"], arch);
    assert!(r["crash"].is_null());
    assert!(
        read(dir.path(), "workload.stdout").contains("Linux guest 6.1.0"),
        "{}",
        read(dir.path(), "workload.stdout")
    );
    assert!(read(dir.path(), "workload.stdout").contains(arch));
    assert!(read(dir.path(), "console.log").contains("repro-guest: up 6.1.0"));
    assert!(read(dir.path(), "qemu.cmdline").starts_with(&format!("qemu-system-{arch} ")));
    assert!(read(dir.path(), "qmp.log").contains("\"execute\":\"cont\""));
    for phase in ["image", "boot_to_ssh", "workload", "total"] {
        assert!(
            r["timings"][phase].as_f64().is_some_and(|t| t > 0.0),
            "timing {phase}: {r:#}"
        );
    }
    assert!(r["timings"]["detection"].is_null());
}

fn smoke_oops(arch: &str) {
    let (code, r, dir) = run("smoke-oops", &["--arch", arch]);
    assert_eq!(r["verdict"], "reproduced", "{r:#}");
    assert_eq!(code, 1);
    assert_eq!(r["crash"]["title"], "kernel panic: sysrq triggered crash");
    assert_eq!(r["crash"]["type"], "panic");
    let frames: Vec<&str> = r["crash"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(frames.contains(&"write_sysrq_trigger"), "{frames:?}");
    // On arm64 the return address after the noreturn panic() resolves to the next symbol.
    if arch == "x86_64" {
        assert!(frames.contains(&"sysrq_handle_crash"), "{frames:?}");
    }
    // The run ended on the crash, not on the 60 s workload timeout.
    assert!(r["timings"]["workload"].as_f64().unwrap() < 30.0, "{r:#}");
    assert!(r["timings"]["detection"].as_f64().is_some());
    assert!(read(dir.path(), "console.log").contains("Kernel panic - not syncing: sysrq triggered crash"));
    let qmp = read(dir.path(), "qmp.log");
    if arch == "x86_64" {
        // The panic reached QEMU through pvpanic as well as through the console.
        assert!(qmp.contains("GUEST_PANICKED"), "{qmp}");
    } else {
        // Debian's arm64 cloud kernel has no pvpanic driver: panic=-1 resets the guest, and
        // -no-reboot turns that into a shutdown. The console is what caught it.
        assert!(qmp.contains("GUEST_PANICKED") || qmp.contains("guest-reset"), "{qmp}");
    }
}

#[test]
fn smoke_boot_x86_64() {
    smoke_boot("x86_64");
}

#[test]
fn smoke_boot_aarch64() {
    smoke_boot("aarch64");
}

#[test]
fn smoke_oops_x86_64() {
    smoke_oops("x86_64");
}

#[test]
fn smoke_oops_aarch64() {
    smoke_oops("aarch64");
}

const NO_SSH: &str = r#"summary = "a guest whose sshd is kept down"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[vm]
boot_timeout = "25s"
cmdline = ["repro.nossh"]

[workload]
script = "true"
"#;

#[test]
fn ssh_that_never_comes_up_is_infra_error_not_not_reproduced() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("no-ssh.toml");
    std::fs::write(&scenario, NO_SSH).unwrap();
    let (code, r, dir) = run(scenario.to_str().unwrap(), &[]);
    assert_eq!(r["verdict"], "infra-error", "{r:#}");
    assert_eq!(code, 125);
    assert!(r["reason"].as_str().unwrap().contains("SSH"), "{r:#}");
    // The guest itself booted fine: this is SSH, not the kernel.
    assert!(read(dir.path(), "console.log").contains("repro-guest: up"));
}

const SLEEPER: &str = r#"summary = "a workload that sleeps, to be killed"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[workload]
script = "echo repro-test-sleeping > /dev/console; sleep 600"
timeout = "10m"
"#;

/// Starts a long run and waits until its workload is running. The caller waits for the child.
#[allow(clippy::zombie_processes)]
fn start_sleeper() -> (Child, tempfile::TempDir, u32) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("sleeper.toml");
    std::fs::write(&scenario, SLEEPER).unwrap();
    let run_dir = tmp.path().join("run");
    let child = repro()
        .args(["run"])
        .arg(&scenario)
        .arg("--run-dir")
        .arg(&run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let pid = read(&run_dir, "qemu.pid").trim().parse::<u32>().ok();
        if let (Some(pid), true) = (pid, read(&run_dir, "console.log").contains("repro-test-sleeping")) {
            return (child, tmp, pid);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the sleeper never reached its workload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose; /proc/PID/stat's state field says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

fn assert_gone(pid: u32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "QEMU pid {pid} outlived repro"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_of_repro_leaves_no_qemu() {
    let (mut child, _tmp, qemu) = start_sleeper();
    assert!(alive(qemu));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    assert_gone(qemu);
}

#[test]
fn ctrl_c_stops_the_guest_and_reports_interrupted() {
    let (mut child, tmp, qemu) = start_sleeper();
    assert!(alive(qemu));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_gone(qemu);
    let r: Value = serde_json::from_str(&read(&tmp.path().join("run"), "report.json")).unwrap();
    assert_eq!(r["verdict"], "infra-error");
    assert_eq!(r["reason"], "interrupted");
}

#[test]
fn qemu_that_cannot_start_is_infra_error_with_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("huge.toml");
    // More memory than this machine can give: QEMU fails at startup.
    std::fs::write(
        &scenario,
        NO_SSH.replace("boot_timeout = \"25s\"", "memory = \"4096G\""),
    )
    .unwrap();
    let (code, r, _dir) = run(scenario.to_str().unwrap(), &[]);
    assert_eq!(r["verdict"], "infra-error", "{r:#}");
    assert_eq!(code, 125);
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("QEMU exited"), "{reason}");
    assert!(
        reason.contains("qemu-system-x86_64"),
        "the command line is in the error: {reason}"
    );
    assert!(reason.contains("stderr:"), "{reason}");
}
