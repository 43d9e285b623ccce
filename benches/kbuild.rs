//! `just bench` (kernel builds): what a source kernel costs.
//!
//! 1. Cold: `linux-6.1` for x86_64 in a scratch cache (tarball import, worktree checkout,
//!    config, make from nothing). Skipped with `REPRO_BENCH_COLD=0`, which uses the real cache.
//! 2. Warm: the same request again (a cache hit).
//! 3. Incremental: `seed-000-nfs`, which is linux-6.1 plus a one-file patch, in the same build
//!    slot (checkout of one file, make).
//!
//! Stage times come from the build's own progress events. Figures are printed, never asserted.

use repro::arch::Arch;
use repro::kernel::{self, build::Event};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

fn build(name: &str) -> (f64, Vec<(String, f64)>) {
    let kdir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let def = kernel::find(&kdir, name).expect("kernel definition");
    let t0 = Instant::now();
    let stages: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());
    def.build(Arch::X86_64, &|e| {
        if let Event::Stage(s) = e {
            stages.lock().unwrap().push((
                s.split_whitespace().take(2).collect::<Vec<_>>().join(" "),
                t0.elapsed().as_secs_f64(),
            ));
        }
    })
    .unwrap_or_else(|e| panic!("building {name}: {}", repro::errors::chain(&e)));
    (t0.elapsed().as_secs_f64(), stages.into_inner().unwrap())
}

fn show(label: &str, (total, stages): &(f64, Vec<(String, f64)>)) {
    println!("{label:<28} {total:>8.1}s");
    for (s, t) in stages {
        println!("    {s:<24} at {t:>7.1}s");
    }
}

fn main() {
    let cold = std::env::var("REPRO_BENCH_COLD").map_or(true, |v| v != "0");
    let scratch = tempfile::tempdir().expect("scratch dir");
    if cold {
        std::env::set_var("REPRO_CACHE", scratch.path());
        println!(
            "kernel builds (x86_64, {} cores), scratch cache {}",
            num_cpus(),
            scratch.path().display()
        );
    } else {
        println!("kernel builds (x86_64, {} cores), real cache", num_cpus());
    }
    let first = build("linux-6.1");
    show(
        if cold {
            "linux-6.1 cold"
        } else {
            "linux-6.1 (real cache)"
        },
        &first,
    );
    let warm = build("linux-6.1");
    show("linux-6.1 warm (cache hit)", &warm);
    let inc = build("seed-000-nfs");
    show("seed-000-nfs (+1 file)", &inc);
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
