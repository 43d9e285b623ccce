//! `just bench`: what repro costs against a QEMU line written by hand, and how fast the oops
//! parser reads.
//!
//! 1. For each arch and kernel (Debian's and the tinyconfig source kernel), three boots of the
//!    same kernel, initramfs and disks, alternating, timed from spawn:
//!    - `hand`: the QEMU line a kernel engineer writes by hand ([`hand_written`]), to the
//!      guest's init printing `repro-guest: up`;
//!    - `line`: repro's own QEMU line without QMP, to the same line;
//!    - `run`: the whole `repro run smoke-boot` (boot, the guest agent, `uname -a`, teardown, report).
//!
//!    The ratio is `run / hand`: the target is at most 1.0.
//! 2. The oops parser's throughput on a large log with many reports.
//! 3. Fast repeats: a snapshot restore against a cold boot.
//!
//! Figures are printed, never asserted: this is a benchmark, not a test. `REPRO_BENCH_RUNS`
//! sets the number of rounds (5 by default); `REPRO_BENCH_ONLY` picks boot rows ([`wanted`]).

use repro::arch::Arch;
use repro::catalog::Catalog;
use repro::def::load::Roots;
use repro::run::prepare_node;
use repro::scenario::Overrides;
use repro::vm::{argv, Accel, Config};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kernels the boot bench compares on: Debian's cloud kernel, and the tinyconfig source
/// kernel (built on first use: about 8 minutes per arch, cached after).
const KERNELS: [&str; 2] = ["debian-6.1-cloud", "linux-6.1"];

/// `REPRO_BENCH_ONLY=WORD,...` keeps the boot bench's rows whose arch or kernel is one of the
/// words (`x86_64`, `debian-6.1-cloud`): a row's first linux-6.1 build takes minutes.
fn wanted(arch: Arch, kernel: &str) -> bool {
    let Ok(only) = std::env::var("REPRO_BENCH_ONLY") else {
        return true;
    };
    let words: Vec<&str> = only.split(',').map(str::trim).collect();
    let arches: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| Arch::ALL.iter().any(|a| a.as_str() == *w))
        .collect();
    let kernels: Vec<&str> = words.iter().copied().filter(|w| KERNELS.contains(w)).collect();
    (arches.is_empty() || arches.contains(&arch.as_str())) && (kernels.is_empty() || kernels.contains(&kernel))
}

fn rounds() -> usize {
    std::env::var("REPRO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The anchor: how a kernel engineer boots this guest by hand. QEMU's defaults for the machine
/// (`pc` on x86_64), firmware and devices, `-nographic` for the serial console, virtio disks and
/// a user-mode NIC, and the kernel command line init needs. The CPU model is repro's (on aarch64
/// `max` alone is about four times slower under TCG), so the anchor is not slow by choice.
/// `-snapshot` keeps the disks as prepared, so no boot replays an earlier one's journal.
fn hand_written(c: &Config) -> Vec<String> {
    let spec = repro::vm::table::spec(c.arch);
    let mut a: Vec<String> = vec![spec.qemu.into()];
    if c.arch == Arch::Aarch64 {
        a.extend(["-machine".into(), "virt".into()]);
    }
    let accel = match c.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    a.extend(["-accel".into(), accel.into(), "-cpu".into(), spec.cpu(c.accel).into()]);
    a.extend([
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        format!("{}M", c.memory_mib),
    ]);
    a.extend(["-nographic".into(), "-kernel".into(), c.kernel.display().to_string()]);
    a.extend(["-initrd".into(), c.initrd.display().to_string()]);
    a.extend(["-append".into(), format!("console={} rdinit=/init", spec.console)]);
    for d in &c.disks {
        let ro = if d.readonly { ",readonly=on" } else { "" };
        let file = argv::opt_path(&d.path);
        a.extend([
            "-drive".into(),
            format!("file={file},if=virtio,format={}{ro}", d.format),
        ]);
    }
    a.extend(["-nic".into(), "user,model=virtio-net-pci".into(), "-snapshot".into()]);
    a
}

/// repro's own QEMU line, run without QMP (nothing would continue a `-S` start).
fn repro_line(c: &Config) -> Vec<String> {
    let mut a = argv::argv(c);
    a.retain(|x| x != "-S");
    if let Some(i) = a.iter().position(|x| x == "-qmp") {
        a.drain(i..i + 2);
    }
    a.push("-snapshot".into());
    a
}

/// Seconds from spawning `a` to the guest's `repro-guest: up` line on its serial console.
fn boot_to_init(a: &[String]) -> f64 {
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
        assert!(start.elapsed() < Duration::from_secs(120), "boot to init timed out");
    };
    repro::process::kill_group(child.id());
    let _ = child.wait();
    t
}

fn repro_run(arch: Arch, kernel: &str) -> (f64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::remove_dir(dir.path()).unwrap(); // repro makes the run directory
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_repro"))
        .args([
            "run",
            "smoke-boot",
            "--json",
            "--arch",
            arch.as_str(),
            "--kernel",
            kernel,
            "--run-dir",
        ])
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
    let n = rounds();
    println!("## boot: a hand-written QEMU line and repro's own line to init, against `repro run smoke-boot`");
    println!("## (alternating, median of {n}, seconds; ratio = run / hand, the target is <= 1.00)");
    println!(
        "{:<8} {:<17} {:<5} {:>6} {:>6} {:>6} {:>6} | run's phases: image boot-to-answer workload teardown",
        "arch", "kernel", "accel", "hand", "line", "run", "ratio"
    );
    for kernel in KERNELS {
        for arch in Arch::ALL {
            if !wanted(arch, kernel) {
                continue;
            }
            let mut s = catalog.scenario("smoke-boot").expect("smoke-boot");
            s.apply(&Overrides {
                arch: Some(arch),
                kernel: Some(kernel.to_string()),
                ..Default::default()
            });
            let tmp = tempfile::tempdir().unwrap();
            let key = repro::guest::keygen(&tmp.path().join("id")).unwrap();
            let p = prepare_node(&roots, &s, &s.nodes[0], tmp.path(), &key, &|_| {}).expect("prepare");
            let (hand, line) = (hand_written(&p.config), repro_line(&p.config));
            let (mut h, mut l, mut runs) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..n {
                h.push(boot_to_init(&hand));
                l.push(boot_to_init(&line));
                runs.push(repro_run(arch, kernel));
            }
            let phase = |k: &str| {
                median(
                    runs.iter()
                        .map(|(_, r)| r["timings"][k].as_f64().unwrap_or(0.0))
                        .collect(),
                )
            };
            let (h, l, r) = (median(h), median(l), median(runs.iter().map(|(t, _)| *t).collect()));
            println!(
                "{:<8} {:<17} {:<5} {:>6.2} {:>6.2} {:>6.2} {:>6.2} | {:.2} {:.2} {:.2} {:.2}",
                arch.as_str(),
                kernel,
                p.accel.accel.to_string(),
                h,
                l,
                r,
                r / h,
                phase("image"),
                phase("boot_to_ssh"),
                phase("workload"),
                phase("teardown")
            );
        }
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

/// Fast repeats: an iteration on the guest restored to its post-setup snapshot (loadvm, the
/// run over the agent's channel, its output), against a cold boot until the guest answers, from
/// smoke-snapshot's report
/// (3 iterations, so 2 restores per run). The target is 0.5 s on x86_64.
fn restore_bench() {
    let n = rounds();
    for arch in Arch::ALL {
        let (mut boots, mut loads, mut iters) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
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
            let all = |k: &str| -> Vec<f64> {
                r["timings"][k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .collect()
            };
            loads.extend(all("restores"));
            iters.extend(all("restored_iterations"));
        }
        println!(
            "## {arch}: a restored iteration {:.2} s (of which loadvm {:.2} s); a cold boot until the guest answers {:.2} s (medians of {} iterations and {n} boots)",
            median(iters.clone()),
            median(loads),
            median(boots),
            iters.len()
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
