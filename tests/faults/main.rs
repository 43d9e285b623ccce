//! Faults repro did not plan for, fed to the real binary: reused directories, panics, edited
//! files, wedged and killed processes, full disks, long paths, hostile /tmp entries, overload.
//! Each test names the guarantee it holds (ARCHITECTURE.md, "Under faults"). Tests that need a
//! guest boot the stock Debian kernel on x86_64 (`just prepare` warms the cache); they run one
//! at a time (nextest test group `guests`).
//!
//! `REPRO_BIN` runs the suite against another build of repro, which is how each test was seen
//! to fail before its fix.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repro() -> Command {
    let bin = std::env::var_os("REPRO_BIN")
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_repro")), PathBuf::from);
    let mut c = Command::new(bin);
    c.arg("--root").arg(repo());
    c.env_remove("REPRO_FAILPOINT");
    c
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_default()
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

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

fn assert_gone(pid: u32, what: &str) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} (pid {pid}) outlived repro"
        );
        std::thread::sleep(Duration::from_millis(50));
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
        &NO_SSH.replace("boot_timeout = \"25s\"", "memory = \"1000G\""),
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

const NO_SSH: &str = r#"summary = "a guest whose sshd never starts"
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
fn a_duration_that_would_overflow_the_clock_is_refused_at_parse_time() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario_file(
        tmp.path(),
        "huge-timeout",
        &NO_SSH.replace("\"25s\"", "\"9223372036854775807s\""),
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
