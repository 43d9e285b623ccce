//! Faults repro did not plan for, fed to the real binary: reused directories, panics, edited
//! files, wedged and killed processes, full disks, long paths, hostile /tmp entries, overload.
//! Each test names the guarantee it holds (ARCHITECTURE.md, "Under faults"). Tests that need a
//! guest boot the stock Debian kernel on x86_64 (`just prepare` warms the cache); they run one
//! at a time (nextest test group `guests`).
//!
//! `REPRO_BIN` runs the suite against another build of repro, which is how each test was seen
//! to fail before its fix.

#[path = "../common/mod.rs"]
mod common;

use common::{alive, assert_gone, read, repo, UNREACHABLE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `REPRO_BIN`.
fn bin() -> PathBuf {
    std::env::var_os("REPRO_BIN")
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_repro")), PathBuf::from)
}

fn repro() -> Command {
    let mut c = Command::new(bin());
    c.arg("--root").arg(repo());
    c.env_remove("REPRO_FAILPOINT");
    c
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report JSON ({e}): {}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` to its end, or kills it after `limit` and fails the test: a hang is a finding.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("repro did not finish within {limit:?}");
        }
    }
}

fn scenario_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

// Reused and concurrent directories.

#[test]
fn a_reused_run_dir_is_refused_and_the_earlier_runs_files_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    let first = output_within(
        {
            let mut c = repro();
            c.args(["run", "smoke-boot", "--json", "--run-dir"]).arg(&d);
            c
        },
        Duration::from_secs(300),
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let report = read(&d, "report.json");
    let console = read(&d, "console.log");
    let second = output_within(
        {
            let mut c = repro();
            c.args(["run", "smoke-boot", "--json", "--run-dir"]).arg(&d);
            c
        },
        Duration::from_secs(300),
    );
    assert_eq!(
        second.status.code(),
        Some(128),
        "refused as bad usage: {}",
        stderr(&second)
    );
    assert!(stderr(&second).contains("already exists"), "{}", stderr(&second));
    assert_eq!(read(&d, "report.json"), report, "the earlier report was rewritten");
    assert_eq!(
        read(&d, "console.log"),
        console,
        "the earlier console log was rewritten"
    );
}

#[test]
fn a_reused_nightly_out_is_refused_and_the_earlier_nightly_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nightly");
    std::fs::create_dir_all(out.join("cells")).unwrap();
    std::fs::write(out.join("nightly.json"), "earlier").unwrap();
    let matrix = tmp.path().join("m.toml");
    std::fs::write(
        &matrix,
        "[[entry]]\nscenarios = [\"smoke-boot\"]\narches = [\"x86_64\"]\n",
    )
    .unwrap();
    let ran = output_within(
        {
            let mut c = repro();
            c.args(["nightly", "--matrix"]).arg(&matrix).arg("--out").arg(&out);
            c
        },
        Duration::from_secs(300),
    );
    assert_eq!(ran.status.code(), Some(128), "{}", stderr(&ran));
    assert!(stderr(&ran).contains("already exists"), "{}", stderr(&ran));
    assert_eq!(read(&out, "nightly.json"), "earlier");
    assert_eq!(std::fs::read_dir(out.join("cells")).unwrap().count(), 0);
}

#[test]
fn run_directories_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(
        tmp.path(),
        "no-qemu",
        &UNREACHABLE.replace("boot_timeout = \"25s\"", "memory = \"1000G\""),
    );
    let d = tmp.path().join("run");
    let mut c = repro();
    c.args(["run"]).arg(&s).arg("--run-dir").arg(&d);
    // SAFETY: pre_exec runs only async-signal-safe umask(2) in the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = output_within(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the run directory (QMP socket inside) is {mode:o}");
}

// Bad input: an error naming the file, line and key, never a panic.

#[test]
fn a_duration_that_would_overflow_the_clock_is_refused_at_parse_time() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(
        tmp.path(),
        "huge-timeout",
        &UNREACHABLE.replace("\"25s\"", "\"9223372036854775807s\""),
    );
    for verb in ["check", "run"] {
        let out = output_within(
            {
                let mut c = repro();
                c.arg(verb).arg(&s);
                c
            },
            Duration::from_secs(60),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(128), "repro {verb}: {err}");
        assert!(err.contains("huge-timeout.toml:7"), "file and line: {err}");
        assert!(err.contains("boot_timeout"), "the key: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// This repository's HEAD commit: a real commit for a bisect record to name.
fn head() -> String {
    let r = git2::Repository::open(repo()).unwrap();
    let id = r.head().unwrap().peel_to_commit().unwrap().id();
    id.to_string()
}

/// A bisect.json as a bisect writes it, for the ends given, over this repository.
fn bisect_record(good: &[&str], max_runs: u32, fix: bool) -> String {
    serde_json::json!({
        "scenario": "scenarios/smoke-boot.toml",
        "arch": null,
        "target": {"kind": "module", "name": "m", "repo": repo()},
        "bad": head(),
        "good": good,
        "paths": [],
        "params": {"confidence": 0.95, "max_runs": max_runs, "calibrate": 1, "infra_retries": 2,
                   "other_crash": "skip", "fix": fix},
        "started_at": 0,
        "steps": []
    })
    .to_string()
}

#[test]
fn an_edited_or_truncated_bisect_json_is_an_error_not_a_panic() {
    let good = head();
    let cases = [
        ("good = []", bisect_record(&[], 30, true), "`good` is empty"),
        ("max_runs = 0", bisect_record(&[&good], 0, false), "`params.max_runs`"),
        (
            "truncated",
            bisect_record(&[&good], 30, false)[..100].to_string(),
            "EOF",
        ),
    ];
    for (what, text, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bisect.json"), text).unwrap();
        for verb in ["--resume", "--log"] {
            let out = output_within(
                {
                    let mut c = repro();
                    c.args(["bisect", "smoke-boot", verb, "--dir"]).arg(dir.path());
                    c
                },
                Duration::from_secs(60),
            );
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(128), "{what}, {verb}: {err}");
            assert!(
                err.contains("bisect.json") && err.contains(says),
                "{what}, {verb}: {err}"
            );
        }
    }
}

// Panics: a bug in repro is never a verdict, and takes only its own run's guests.

#[test]
fn a_panic_exits_above_127_and_leaves_no_qemu() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    let mut c = repro();
    c.args(["run", "smoke-boot", "--run-dir"])
        .arg(&d)
        .env("REPRO_FAILPOINT", "run.boot");
    let out = output_within(c, Duration::from_secs(300));
    let code = out.status.code();
    assert!(code.is_some_and(|c| c >= 128), "exit {code:?}: {}", stderr(&out));
    assert!(stderr(&out).contains("repro panicked"), "{}", stderr(&out));
    let qemu: u32 = read(&d, "qemu.pid").trim().parse().expect("QEMU had started");
    assert_gone(qemu, "QEMU");
}

#[test]
fn a_panic_in_one_nightly_cell_is_its_infra_error_and_the_other_cells_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let matrix = tmp.path().join("m.toml");
    std::fs::write(
        &matrix,
        "jobs = 2\n[[entry]]\nscenarios = [\"smoke-boot\", \"smoke-oops\"]\narches = [\"x86_64\"]\n",
    )
    .unwrap();
    let out_dir = tmp.path().join("n");
    let mut c = repro();
    c.args(["nightly", "--json", "--matrix"])
        .arg(&matrix)
        .arg("--out")
        .arg(&out_dir)
        .env("REPRO_FAILPOINT", "run.boot@smoke-boot");
    let out = output_within(c, Duration::from_secs(600));
    let n = json(&out);
    let cell = |s: &str| {
        n["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["scenario"] == s)
            .cloned()
            .unwrap()
    };
    let boot = cell("smoke-boot");
    assert_eq!(boot["verdict"], "infra-error", "{n:#}");
    assert!(boot["reason"].as_str().unwrap().contains("panicked"), "{boot:#}");
    assert_eq!(
        cell("smoke-oops")["verdict"],
        "reproduced",
        "the neighbour was killed: {n:#}"
    );
    let qemu: u32 = read(&out_dir.join(boot["run_dir"].as_str().unwrap()), "qemu.pid")
        .trim()
        .parse()
        .expect("the panicked cell's QEMU had started");
    assert_gone(qemu, "the panicked cell's QEMU");
}

// A wedged QEMU: every QMP command has a deadline.

const WEDGE: &str = r#"summary = "a guest whose QEMU is stopped with SIGSTOP mid-workload"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[workload]
script = "echo repro-test-wedge > /dev/console; sleep 120"
timeout = "10m"

[[faults]]
action = "cont"
at = "15s"
"#;

#[test]
fn a_wedged_qemu_ends_the_run_in_infra_error_naming_the_qmp_command() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "wedge", WEDGE);
    let d = tmp.path().join("run");
    let mut c = repro();
    c.args(["run", "--json"]).arg(&s).arg("--run-dir").arg(&d);
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    let qemu = loop {
        let pid = read(&d, "qemu.pid").trim().parse::<u32>().ok();
        if let (Some(pid), true) = (pid, read(&d, "console.log").contains("repro-test-wedge")) {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "the workload never started");
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: plain syscall on the run's QEMU.
    unsafe { libc::kill(qemu as i32, libc::SIGSTOP) };
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(qemu as i32, libc::SIGKILL);
            }
            panic!("repro hung on the wedged QEMU");
        }
    };
    let r = json(&out);
    assert_eq!(r["verdict"], "infra-error", "{r:#}");
    assert_eq!(out.status.code(), Some(125));
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("`cont`") && reason.contains("no answer"), "{reason}");
    assert_gone(qemu, "the wedged QEMU");
}

// Paths a user can name: deep ones (a unix socket's path holds 107 bytes) and ones with commas
// (QEMU's option separator).

fn deep_dir_with_a_comma(tmp: &Path) -> PathBuf {
    tmp.join("nightly,shard-1")
        .join("c".repeat(60))
        .join("d".repeat(60))
        .join("run")
}

const WITH_DISK: &str = r#"summary = "a scenario disk in the run directory"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[[disks]]
name = "data"
size = "16M"

[workload]
script = "test -b /dev/repro/data && echo disk-is-there"
"#;

#[test]
fn a_deep_run_dir_with_a_comma_runs_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "with-disk", WITH_DISK);
    let d = deep_dir_with_a_comma(tmp.path());
    assert!(d.join("qmp.sock").as_os_str().len() > 107);
    let mut c = repro();
    c.args(["run", "--json"]).arg(&s).arg("--run-dir").arg(&d);
    let out = output_within(c, Duration::from_secs(300));
    let r = json(&out);
    assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
    assert!(read(&d, "workload.stdout").contains("disk-is-there"));
}

#[test]
fn a_two_node_link_works_under_a_deep_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let d = deep_dir_with_a_comma(tmp.path());
    let mut c = repro();
    c.args(["run", "nfs-two-node", "--json", "--run-dir"]).arg(&d);
    let out = output_within(c, Duration::from_secs(600));
    let r = json(&out);
    assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
}

// Children: nothing repro started outlives it, whatever it forked.

/// (pid, ppid, pgid, command name) of every process.
fn processes() -> Vec<(u32, u32, u32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        if let (Some(ppid), Some(pgid)) = (
            f.get(1).and_then(|x| x.parse().ok()),
            f.get(2).and_then(|x| x.parse().ok()),
        ) {
            v.push((pid, ppid, pgid, name));
        }
    }
    v
}

/// Every process below `root`.
fn descendants(ps: &[(u32, u32, u32, String)], root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(ps.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    found.remove(0);
    found
}

#[test]
fn sigkill_during_an_image_build_leaves_no_mmdebstrap_or_its_children() {
    let cache = tempfile::tempdir().unwrap();
    let mut c = repro();
    c.args(["image", "build", "debian-bookworm", "--arch", "x86_64"])
        .env("REPRO_CACHE", cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let me = child.id();
    let start = Instant::now();
    // Wait until mmdebstrap has forked something of its own (apt, dpkg, ...), and take the
    // whole tree under repro (the reaper, a child of repro too, is not a build process).
    let tree = loop {
        let ps = processes();
        let tree = descendants(&ps, me);
        let mm = ps.iter().find(|p| p.1 == me && p.3 == "mmdebstrap").map(|p| p.0);
        if mm.is_some_and(|mm| ps.iter().any(|p| p.1 == mm)) {
            break tree;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "mmdebstrap never forked");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(me as i32, libc::SIGKILL) };
    let _ = child.wait();
    let start = Instant::now();
    loop {
        let left: Vec<_> = processes().into_iter().filter(|p| tree.contains(&p.0)).collect();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Evidence: the output a user needs most is the output of the iteration that crashed.

const CRASH_AFTER_OUTPUT: &str = r#"summary = "prints, then crashes the kernel under its own iteration"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[workload]
script = """
echo the-last-words-before-the-crash
echo on-stderr-too >&2
sync
sleep 1
echo c > /proc/sysrq-trigger
"""
timeout = "60s"

[expect]
title = "kernel panic: sysrq triggered crash"
"#;

#[test]
fn the_output_of_the_iteration_that_crashed_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "crash-after-output", CRASH_AFTER_OUTPUT);
    let d = tmp.path().join("run");
    let mut c = repro();
    c.args(["run", "--json"]).arg(&s).arg("--run-dir").arg(&d);
    let out = output_within(c, Duration::from_secs(300));
    let r = json(&out);
    assert_eq!(r["verdict"], "reproduced", "{r:#}");
    let stdout = read(&d, "workload.stdout");
    assert!(stdout.contains("=== iteration 0: unfinished"), "{stdout}");
    assert!(stdout.contains("the-last-words-before-the-crash"), "{stdout}");
    assert!(read(&d, "workload.stderr").contains("on-stderr-too"));
    let parts: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "part files left: {parts:?}");
}

const LOUD: &str = r#"summary = "a workload that prints 200 MiB"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[workload]
script = "head -c 200M /dev/zero | tr '\\0' x; echo; echo done-printing"
timeout = "5m"
"#;

/// The peak resident set of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_guest_that_prints_hundreds_of_megabytes_does_not_take_them_from_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "loud", LOUD);
    let d = tmp.path().join("run");
    let mut c = repro();
    c.args(["run"]).arg(&s).arg("--run-dir").arg(&d);
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let (start, mut peak) = (Instant::now(), 0);
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let size = std::fs::metadata(d.join("workload.stdout")).unwrap().len();
    assert!(size > 200 << 20, "all of it is on disk: {size}");
    assert!(peak < 100 * 1024, "repro's peak RSS was {} MiB", peak / 1024);
}

// A full disk on the host: the guest is paused by QEMU, and that is the host's failure.

const FILLS_ITS_DISK: &str = r#"summary = "writes more to a scenario disk than the host has room for"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[[disks]]
name = "data"
size = "512M"

[workload]
script = "dd if=/dev/urandom of=/dev/repro/data bs=1M count=200 oflag=direct status=none; echo wrote-it"
timeout = "90s"
"#;

/// A tmpfs of `mib` MiB mounted at a new directory, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(mib: u32) -> SmallDisk {
        let t = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "repro-test-full"])
            .arg(t.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs needs root (CI runs as root)");
        SmallDisk(t)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_host_disk_is_an_infra_error_that_says_so_not_a_hung_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "fills-its-disk", FILLS_ITS_DISK);
    let disk = SmallDisk::new(48);
    let d = disk.0.path().join("run");
    let mut c = repro();
    c.args(["run", "--json"]).arg(&s).arg("--run-dir").arg(&d);
    let out = output_within(c, Duration::from_secs(300));
    let r = json(&out);
    assert_eq!(r["verdict"], "infra-error", "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("the host failed node `guest`'s storage"), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
}

const FLOODS_THE_CONSOLE: &str = r#"summary = "prints more to the console than the host disk holds"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

# The guest's own disk must not be what fills the host's first: QEMU would hit ENOSPC growing the
# overlay (a journal commit of atime updates), pause the guest, and the flood would stop before
# the console log's write failed. So no atime updates, and what is dirty is written first.
[workload]
script = "mount -o remount,noatime / && sync && head -c 12M /dev/zero | tr '\\0' x > /dev/console; echo done"
timeout = "3m"
"#;

#[test]
fn a_console_log_that_cannot_be_written_is_reported_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(tmp.path(), "floods", FLOODS_THE_CONSOLE);
    let disk = SmallDisk::new(8);
    let d = disk.0.path().join("run");
    let mut c = repro();
    c.args(["run", "--json"]).arg(&s).arg("--run-dir").arg(&d);
    let out = output_within(c, Duration::from_secs(300));
    let r = json(&out);
    let lost = r["evidence_lost"].as_array().cloned().unwrap_or_default();
    assert!(
        lost.iter().any(|l| l.as_str().unwrap().contains("console.log")),
        "{r:#}"
    );
    assert!(stderr(&out).is_empty() || !stderr(&out).contains("panicked"));
}

// Cache entries: a truncated one is rebuilt, never used again.

/// The cache repro uses here (as `cache::root` finds it).
fn real_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("REPRO_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("repro");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/repro")
}

#[test]
fn a_truncated_initramfs_in_the_cache_is_rebuilt_not_booted() {
    // A scratch cache that shares the real one's kernels and images but has its own initramfs.
    let cache = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(real_cache()).unwrap().flatten() {
        if e.file_name() != "initramfs" {
            std::os::unix::fs::symlink(e.path(), cache.path().join(e.file_name())).unwrap();
        }
    }
    let run = |name: &str| {
        let tmp = cache.path().join(name);
        let mut c = repro();
        c.args(["run", "smoke-boot", "--json", "--run-dir"])
            .arg(&tmp)
            .env("REPRO_CACHE", cache.path());
        json(&output_within(c, Duration::from_secs(300)))
    };
    assert_eq!(run("first")["verdict"], "not-reproduced");
    let cpio = std::fs::read_dir(cache.path().join("initramfs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cpio"))
        .expect("the boot initramfs");
    let size = std::fs::metadata(&cpio).unwrap().len();
    // What an interrupted write leaves: the first half.
    std::fs::File::options()
        .write(true)
        .open(&cpio)
        .unwrap()
        .set_len(size / 2)
        .unwrap();
    let again = run("again");
    assert_eq!(again["verdict"], "not-reproduced", "{again:#}");
    assert_eq!(std::fs::metadata(&cpio).unwrap().len(), size, "rebuilt whole");
}

// Overload: ten runs at once on a small host end with ten honest verdicts.

/// The SSH port is chosen free, but someone may take it before QEMU binds it (in CI, one of ten
/// runs at once ended an infra error: "Could not set up host forwarding rule"). A launch whose
/// port is taken tries another. The guest here is an aarch64 QEMU held at its first
/// instruction (a junk kernel: it never runs far enough to matter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_whose_ssh_port_was_taken_meanwhile_takes_another() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let config = repro::vm::Config {
        arch: repro::arch::Arch::Aarch64,
        accel: repro::vm::Accel::Tcg,
        cpus: 1,
        memory_mib: 256,
        kernel: junk.clone(),
        initrd: junk,
        cmdline: String::new(),
        disks: vec![],
        aio: repro::vm::aio::Aio::Threads,
        qmp_socket: PathBuf::new(),
        workdir: PathBuf::new(),
        ssh_port: taken,
        links: vec![],
        pmem: vec![],
        firmware: None,
        gdb_socket: None,
        agent_socket: None,
    };
    let mut guest = repro::vm::Instance::launch("guest", config, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = guest.config.ssh_port;
    assert_ne!(port, taken, "the launch kept the taken port");
    let cmdline = read(dir.path(), "qemu.cmdline");
    assert!(
        cmdline.contains(&format!("hostfwd=tcp:127.0.0.1:{port}-:22")),
        "{cmdline}"
    );
    guest.shutdown(Duration::from_secs(5)).await;
    drop(holder);
}

#[test]
fn ten_runs_at_once_end_with_ten_verdicts_in_ten_directories() {
    let cwd = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..10)
        .map(|_| {
            let mut c = repro();
            // Default run directories (runs/smoke-boot/<second>-x86_64): the same second for many.
            c.args(["run", "smoke-boot", "--json"])
                .current_dir(cwd.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut dirs = std::collections::BTreeSet::new();
    for out in &outs {
        let r = json(out);
        assert_eq!(r["verdict"], "not-reproduced", "slow is fine, wrong is not: {r:#}");
        assert_eq!(out.status.code(), Some(0));
        let dir = PathBuf::from(r["run_dir"].as_str().unwrap());
        assert!(read(&dir, "report.json").contains("not-reproduced"));
        if r["accel"] == "tcg" {
            // The stall detectors were scaled to emulation, and (smoke-boot is x86_64) the boot's
            // IO-APIC timer check, which a starved guest fails with a panic, is skipped.
            let cmdline = read(&dir, "workload.stdout");
            assert!(
                cmdline.contains("watchdog_thresh=50") && cmdline.contains("no_timer_check"),
                "{cmdline}"
            );
        }
        dirs.insert(dir);
    }
    assert_eq!(dirs.len(), 10, "{dirs:?}");
}

/// A "kernel tree" whose `make tinyconfig` leaves a grandchild behind (a `sleep` of its own
/// process group's, which the death signal of `make` never reaches) and then waits.
const FORKING_MAKEFILE: &str = "tinyconfig:\n\t( sleep 600.4242 </dev/null >/dev/null 2>&1 & ) ; sleep 600\n";

#[test]
fn sigkill_during_a_kernel_build_leaves_no_grandchild_of_make() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("Makefile"), FORKING_MAKEFILE).unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git").arg("-C").arg(&tree).args(args).output().unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "Makefile"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "a tree that forks",
    ]);
    let root = tmp.path().join("root");
    for d in ["kernels", "scenarios", "images"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("kernels/forks.toml"),
        format!(
            "summary = \"a tree whose make forks\"\nkind = \"source\"\n[source]\ngit = \"{}\"\nrev = \"HEAD\"\n[config]\nbase = \"tinyconfig\"\n",
            tree.display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Not `repro()`: this test has a root of its own.
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(&root)
        .args(["kernel", "build", "forks", "--arch", "x86_64"])
        .env("REPRO_CACHE", cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let grandchild = |ps: &[(u32, u32, u32, String)]| {
        ps.iter()
            .map(|p| p.0)
            .find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x00600.4242\x00"))
    };
    let start = Instant::now();
    let orphan = loop {
        if let Some(pid) = grandchild(&processes()) {
            break pid;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "make never forked");
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let start = Instant::now();
    while alive(orphan) {
        if start.elapsed() > Duration::from_secs(10) {
            // SAFETY: clean up what the test found, then fail.
            unsafe { libc::kill(orphan as i32, libc::SIGKILL) };
            panic!("make's grandchild (pid {orphan}) outlived repro");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn relative_paths_still_work_though_qemu_runs_in_the_node_directory() {
    // A relative cache (and so relative kernel, initramfs and image paths), from the directory
    // repro is started in; QEMU itself starts in the run's node directory.
    let cwd = tempfile::tempdir().unwrap();
    let cache = cwd.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for e in std::fs::read_dir(real_cache()).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), cache.join(e.file_name())).unwrap();
    }
    let mut c = repro();
    c.args(["run", "smoke-boot", "--json", "--run-dir", "run"])
        .current_dir(cwd.path())
        .env("REPRO_CACHE", "cache");
    let r = json(&output_within(c, Duration::from_secs(300)));
    assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
}
