use super::*;
use crate::arch::Arch;
use std::collections::BTreeMap;
use std::path::Path;

fn cell(s: &str, k: &str, a: Arch) -> Cell {
    Cell {
        scenario: s.into(),
        kernel: k.into(),
        arch: a,
    }
}

fn result(c: Cell, verdict: &str, ttr: Option<f64>) -> CellResult {
    CellResult {
        cell: c,
        verdict: verdict.into(),
        title: (verdict == "reproduced").then(|| "BUG: kernel NULL pointer dereference in f".into()),
        reason: "r <&> \"q\"".into(),
        started_s: 0.0,
        seconds: 5.0,
        time_to_reproduce: ttr,
        run_dir: Some("cells/x".into()),
        vmcores: vec![],
    }
}

fn nightly(cells: Vec<CellResult>) -> Nightly {
    Nightly {
        repro_version: "0".into(),
        started_at: 1_800_000_000,
        seconds: 10.0,
        shard: None,
        budget_s: None,
        cells,
        changes: BTreeMap::new(),
    }
}

#[test]
fn shards_are_disjoint_and_cover_the_matrix() {
    let mut cells = Vec::new();
    for s in ["a", "b", "c", "d", "e"] {
        for a in Arch::ALL {
            cells.push(cell(s, "k", a));
        }
    }
    for n in 1..=4 {
        let mut all: Vec<Cell> = (1..=n).flat_map(|i| shard(&cells, i, n)).collect();
        all.sort();
        let mut want = cells.clone();
        want.sort();
        assert_eq!(all, want, "n={n}");
        let sizes: Vec<usize> = (1..=n).map(|i| shard(&cells, i, n).len()).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
    }
    // The same whatever order the matrix came in.
    let mut rev = cells.clone();
    rev.reverse();
    assert_eq!(shard(&rev, 2, 3), shard(&cells, 2, 3));
    assert!(parse_shard("0/2").is_err());
    assert!(parse_shard("3/2").is_err());
    assert_eq!(parse_shard("2/4"), Ok((2, 4)));
}

#[test]
fn the_scheduler_stays_within_cores_memory_and_jobs() {
    let cap = Capacity {
        cores: 2,
        memory_mib: 3000,
        jobs: 4,
    };
    let small = Demand {
        cores: 1,
        memory_mib: 1280,
    };
    let two_nodes = Demand {
        cores: 2,
        memory_mib: 2560,
    };
    assert_eq!(pick(&[small], &[], cap), Some(0));
    assert_eq!(pick(&[small], &[small], cap), Some(0));
    assert_eq!(pick(&[small], &[small, small], cap), None, "cores are full");
    assert_eq!(pick(&[two_nodes, small], &[small], cap), Some(1), "the first that fits");
    // Bigger than the host: it still runs, alone.
    let huge = Demand {
        cores: 8,
        memory_mib: 64_000,
    };
    assert_eq!(pick(&[huge], &[], cap), Some(0));
    assert_eq!(pick(&[huge], &[small], cap), None);
    let one_job = Capacity { jobs: 1, ..cap };
    assert_eq!(pick(&[small], &[small], one_job), None);
    let low_mem = Capacity {
        memory_mib: 2000,
        ..cap
    };
    assert_eq!(pick(&[small], &[small], low_mem), None, "memory is full");
}

#[test]
fn changes_against_history() {
    assert_eq!(compare(&[], "reproduced"), Change::NewCrash);
    assert_eq!(compare(&[], "not-reproduced"), Change::New);
    assert_eq!(compare(&["not-reproduced"], "reproduced"), Change::NewCrash);
    assert_eq!(compare(&["reproduced"], "not-reproduced"), Change::Fixed);
    assert_eq!(compare(&["reproduced"], "crashed-differently"), Change::StillFailing);
    assert_eq!(
        compare(&["not-reproduced", "not-reproduced"], "not-reproduced"),
        Change::StillPassing
    );
    assert_eq!(compare(&["reproduced", "not-reproduced"], "reproduced"), Change::Flaky);
    // Untested results do not count as either.
    assert_eq!(
        compare(&["not-reproduced", "infra-error"], "reproduced"),
        Change::NewCrash
    );
    assert_eq!(compare(&["reproduced"], "infra-error"), Change::Untested);
    assert_eq!(compare(&["reproduced"], "not-run"), Change::Untested);
}

#[test]
fn exit_code_tells_ci_about_regressions() {
    let a = cell("a", "k", Arch::X86_64);
    let b = cell("b", "k", Arch::X86_64);
    let before = nightly(vec![
        result(a.clone(), "not-reproduced", None),
        result(b.clone(), "reproduced", Some(3.0)),
    ]);
    let mut now = nightly(vec![
        result(a.clone(), "reproduced", Some(2.0)),
        result(b.clone(), "not-reproduced", None),
    ]);
    now.compare_with(std::slice::from_ref(&before));
    assert_eq!(now.changes[&a.id()], Change::NewCrash);
    assert_eq!(now.changes[&b.id()], Change::Fixed);
    assert_eq!(now.exit_code(), 1);
    let mut same = nightly(vec![
        result(a.clone(), "not-reproduced", None),
        result(b, "infra-error", None),
    ]);
    same.compare_with(&[before]);
    assert_eq!(same.exit_code(), 125);
}

#[test]
fn merged_shards_hold_every_cell_once() {
    let a = cell("a", "k", Arch::X86_64);
    let b = cell("b", "k", Arch::Aarch64);
    let mut p1 = nightly(vec![result(a.clone(), "reproduced", Some(1.0))]);
    p1.shard = Some((1, 2));
    p1.changes.insert(a.id(), Change::NewCrash);
    let mut p2 = nightly(vec![result(b.clone(), "not-reproduced", None)]);
    p2.shard = Some((2, 2));
    p2.seconds = 30.0;
    let m = Nightly::merge(vec![p2, p1]);
    assert_eq!(
        m.cells.iter().map(|c| c.cell.clone()).collect::<Vec<_>>(),
        vec![a.clone(), b]
    );
    assert_eq!(m.shard, None);
    assert_eq!(m.seconds, 30.0);
    assert_eq!(m.changes[&a.id()], Change::NewCrash);
}

#[test]
fn junit_counts_and_escapes() {
    let n = nightly(vec![
        result(cell("a", "k", Arch::X86_64), "reproduced", Some(1.0)),
        result(cell("b", "k", Arch::X86_64), "not-reproduced", None),
        result(cell("c", "k", Arch::X86_64), "infra-error", None),
        result(cell("d", "k", Arch::X86_64), "not-run", None),
    ]);
    let x = report::junit(&n);
    assert!(
        x.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""),
        "{x}"
    );
    assert!(x.contains("name=\"a[k,x86_64]\""), "{x}");
    assert!(x.contains("r &lt;&amp;&gt; &quot;q&quot;"), "{x}");
    assert!(!x.contains("<&>"));
    assert!(x.contains("timestamp=\"2027-01-15T08:00:00\""), "{x}");
}

#[test]
fn html_shows_the_matrix_history_and_times() {
    let a = cell("a", "k", Arch::X86_64);
    let old = nightly(vec![result(a.clone(), "reproduced", Some(4.0))]);
    let mut n = nightly(vec![result(a.clone(), "reproduced", Some(2.0))]);
    n.compare_with(std::slice::from_ref(&old));
    let h = report::html(&n, &[("nightly-1".into(), old)]);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("BUG: kernel NULL pointer dereference in f"));
    assert!(h.contains("still failing"));
    assert!(h.contains("href=\"cells/x/console.log\""));
    assert_eq!(h.matches("<polyline").count(), 1);
    assert_eq!(
        h.matches("<rect x=").count(),
        2 + 1,
        "two history squares and a chart legend"
    );
    assert!(!h.contains("<script"));
}

#[test]
fn matrix_files_expand_and_report_errors_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let scen = |name: &str, tags: &str| {
        let src = format!(
            "summary = \"s\"\nkernel = \"k1\"\narch = \"x86_64\"\nimage = \"img\"\ntags = [{tags}]\n[workload]\nscript = \"true\"\n"
        );
        let p = dir.path().join(format!("{name}.toml"));
        crate::scenario::parse(&p, &src, &["k1".into(), "k2".into()], &["img".into()]).unwrap()
    };
    let all = vec![
        scen("boot", "\"nightly\", \"smoke\""),
        scen("oops", "\"smoke\""),
        scen("other", ""),
    ];
    assert_eq!(default_cells(&all), vec![cell("boot", "k1", Arch::X86_64)]);
    let kernels = vec!["k1".to_string(), "k2".to_string()];
    let src = "budget = \"30m\"\njobs = 2\n[[entry]]\ntags = [\"smoke\"]\narches = [\"x86_64\", \"aarch64\"]\n[[entry]]\nscenarios = [\"other\"]\nkernels = [\"k2\"]\n";
    let m = parse(Path::new("m.toml"), src, &all, &kernels).unwrap();
    assert_eq!(m.budget, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(m.jobs, Some(2));
    assert_eq!(m.cells.len(), 5);
    assert!(m.cells.contains(&cell("oops", "k1", Arch::Aarch64)));
    assert!(m.cells.contains(&cell("other", "k2", Arch::X86_64)));
    let bad = "[[entry]]\nscenarios = [\"boot\"]\nkernels = [\"nope\"]\n";
    let e = parse(Path::new("m.toml"), bad, &all, &kernels).unwrap_err().to_string();
    assert!(
        e.contains("m.toml:3") && e.contains("entry[0].kernels") && e.contains("unknown kernel `nope`"),
        "{e}"
    );
    let typo = "[[entry]]\nscenario = [\"boot\"]\n";
    let e = parse(Path::new("m.toml"), typo, &all, &kernels)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.toml:2") && e.contains("scenario"), "{e}");
}
