//! `just bench`: what repro costs on top of QEMU, and how fast the oops parser reads.
//!
//! 1. For each arch, a bare `qemu-system-*` boot of the same kernel, initramfs and image, timed
//!    from spawn to the guest's userland init printing `repro-guest: up`, against the wall time
//!    of `repro run smoke-boot` (which also waits for SSH, runs `uname -a` and tears down).
//! 2. The oops parser's throughput on a large log with many reports.
//! 3. Fast repeats: a snapshot restore against a cold boot.
//!
//! Figures are printed, never asserted: this is a benchmark, not a test.

use repro::arch::Arch;
use repro::catalog::Catalog;
use repro::def::load::Roots;
use repro::run::prepare_node;
use repro::scenario::Overrides;
use repro::vm::argv;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bare_boot(cfg: &repro::vm::Config) -> f64 {
    let mut a = argv::argv(cfg);
    a.retain(|x| x != "-S");
    if let Some(i) = a.iter().position(|x| x == "-qmp") {
        a.drain(i..i + 2);
    }
    let start = Instant::now();
    let mut cmd = Command::new(&a[0]);
    cmd.args(&a[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = repro::process::spawn_guarded(cmd).expect("start qemu");
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let t = loop {
        let n = out.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "QEMU exited before init: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains("repro-guest: up") {
            break start.elapsed().as_secs_f64();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "bare boot timed out");
    };
    repro::process::kill_group(child.id());
    let _ = child.wait();
    t
}

fn repro_run(arch: Arch) -> (f64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::remove_dir(dir.path()).unwrap(); // repro makes the run directory
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(["run", "smoke-boot", "--json", "--arch", arch.as_str(), "--run-dir"])
        .arg(dir.path())
        .output()
        .expect("run repro");
    let t = start.elapsed().as_secs_f64();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
    (t, r)
}

fn boot_bench() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let roots = Roots::at(&root);
    let catalog = Catalog::new(roots.clone());
    println!("## boot: bare QEMU to init vs repro run smoke-boot (median of {RUNS}, seconds)");
    println!(
        "{:<8} {:<5} {:>10} {:>10} {:>8} | repro phases: image boot-to-ssh workload teardown",
        "arch", "accel", "bare", "repro", "extra"
    );
    for arch in Arch::ALL {
        let mut s = catalog.scenario("smoke-boot").expect("smoke-boot");
        s.apply(&Overrides {
            arch: Some(arch),
            ..Default::default()
        });
        let tmp = tempfile::tempdir().unwrap();
        let key = repro::guest::keygen(&tmp.path().join("id")).unwrap();
        let p = prepare_node(&roots, &s, &s.nodes[0], tmp.path(), &key, &|_| {}).expect("prepare");
        let bare: Vec<f64> = (0..RUNS).map(|_| bare_boot(&p.config)).collect();
        let runs: Vec<(f64, serde_json::Value)> = (0..RUNS).map(|_| repro_run(arch)).collect();
        let phase = |k: &str| {
            median(
                runs.iter()
                    .map(|(_, r)| r["timings"][k].as_f64().unwrap_or(0.0))
                    .collect(),
            )
        };
        let (b, r) = (median(bare), median(runs.iter().map(|(t, _)| *t).collect()));
        println!(
            "{:<8} {:<5} {:>10.2} {:>10.2} {:>8.2} | {:.2} {:.2} {:.2} {:.2}",
            arch.as_str(),
            p.accel.accel.to_string(),
            b,
            r,
            r - b,
            phase("image"),
            phase("boot_to_ssh"),
            phase("workload"),
            phase("teardown")
        );
    }
}

fn parser_bench() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/oops/tests/data");
    let mut one = Vec::new();
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            one.extend(std::fs::read(&p).unwrap());
            one.push(b'\n');
        }
    }
    let mut log = Vec::new();
    while log.len() < 64 << 20 {
        log.extend_from_slice(&one);
    }
    let start = Instant::now();
    let reports = repro_oops::parse(&log);
    let t = start.elapsed().as_secs_f64();
    let mb = log.len() as f64 / (1 << 20) as f64;
    println!(
        "## oops parser: {mb:.0} MiB, {} reports, {t:.2} s, {:.0} MiB/s",
        reports.len(),
        mb / t
    );
    // What `repro oops parse` runs: the pasted-text check first.
    let start = Instant::now();
    let any = repro_oops::parse_any(&log);
    let t = start.elapsed().as_secs_f64();
    println!(
        "## oops parse_any (pasted-text check + parser): {} reports, {t:.2} s, {:.0} MiB/s",
        any.len(),
        mb / t
    );
    let start = Instant::now();
    let mut d = repro_oops::Detector::new();
    let mut n = 0;
    for chunk in log.chunks(4096) {
        n += d.feed(chunk).len();
    }
    n += d.finish().len();
    let t = start.elapsed().as_secs_f64();
    println!(
        "## oops detector (4 KiB chunks): {n} reports, {t:.2} s, {:.0} MiB/s",
        mb / t
    );
}

/// Fast repeats: restoring the post-setup snapshot (loadvm, then a new SSH session) against a
/// cold boot to SSH, from smoke-snapshot's report (3 iterations, so 2 restores per run).
fn restore_bench() {
    for arch in Arch::ALL {
        let (mut boots, mut restores, mut iters) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            std::fs::remove_dir(dir.path()).unwrap(); // repro makes the run directory
            let out = Command::new(env!("CARGO_BIN_EXE_repro"))
                .args(["run", "smoke-snapshot", "--json", "--arch", arch.as_str(), "--run-dir"])
                .arg(dir.path())
                .output()
                .expect("run repro");
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
            assert_eq!(r["verdict"], "not-reproduced", "{r:#}");
            boots.push(r["timings"]["boot_to_ssh"].as_f64().unwrap());
            restores.extend(
                r["timings"]["restores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_f64()),
            );
            // The workload phase holds 3 iterations and 2 restores with their reconnects.
            iters.push(r["timings"]["workload"].as_f64().unwrap() / 3.0);
        }
        println!(
            "## {arch}: cold boot to SSH {:.2} s; loadvm {:.2} s; workload phase per iteration {:.2} s (3 iterations, 2 restored with a new SSH session; medians of 3 runs)",
            median(boots),
            median(restores),
            median(iters)
        );
    }
}

fn main() {
    let only = std::env::args().nth(1).unwrap_or_default();
    if only.is_empty() || only == "boot" {
        boot_bench();
    }
    if only.is_empty() || only == "parser" {
        parser_bench();
    }
    if only.is_empty() || only == "restore" {
        restore_bench();
    }
}
