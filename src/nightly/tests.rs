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
        known: None,
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
        known: vec![],
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
    let m = parse(Path::new("m.toml"), src, &all, &kernels, &[]).unwrap();
    assert_eq!(m.budget, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(m.jobs, Some(2));
    assert_eq!(m.cells.len(), 5);
    assert!(m.cells.contains(&cell("oops", "k1", Arch::Aarch64)));
    assert!(m.cells.contains(&cell("other", "k2", Arch::X86_64)));
    let bad = "[[entry]]\nscenarios = [\"boot\"]\nkernels = [\"nope\"]\n";
    let e = parse(Path::new("m.toml"), bad, &all, &kernels, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.toml:3") && e.contains("entry[0].kernels") && e.contains("unknown kernel `nope`"),
        "{e}"
    );
    let typo = "[[entry]]\nscenario = [\"boot\"]\n";
    let e = parse(Path::new("m.toml"), typo, &all, &kernels, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.toml:2") && e.contains("scenario"), "{e}");
}

#[test]
fn kernel_selectors_expand_from_the_archive_per_arch() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("boot.toml");
    let src = "summary = \"s\"\nkernel = \"k1\"\narch = \"x86_64\"\nimage = \"img\"\n[workload]\nscript = \"true\"\n";
    let all = vec![crate::scenario::parse(&p, src, &["k1".into()], &["img".into()]).unwrap()];
    let names: Vec<&str> = include_str!("../archive/apt-cache-search.txt").lines().collect();
    let archive = crate::archive::parse_show(include_str!("../archive/apt-cache-show.txt"), &names);
    let m = "[[entry]]\nscenarios = [\"boot\"]\nkernels = [\"debian:6.12.*\", \"debian:latest\", \"k1\"]\narches = [\"x86_64\", \"aarch64\"]\n";
    let m = parse(Path::new("m.toml"), m, &all, &["k1".into()], &archive).unwrap();
    let on = |a: Arch| {
        m.cells
            .iter()
            .filter(|c| c.arch == a)
            .map(|c| c.kernel.as_str())
            .collect::<Vec<_>>()
    };
    // Seven 6.12 packages each, the newest-package name kept as it is (resolved when it runs).
    assert_eq!(on(Arch::X86_64).len(), 9, "{:?}", on(Arch::X86_64));
    assert!(on(Arch::X86_64).contains(&"debian:6.12.100+deb12") && on(Arch::X86_64).contains(&"debian:6.12.117+deb12"));
    assert!(on(Arch::Aarch64).contains(&"debian:latest") && on(Arch::Aarch64).contains(&"k1"));
    // arm64 has 6.1 ABIs amd64 lacks.
    let m6 = "[[entry]]\nscenarios = [\"boot\"]\nkernels = [\"debian:6.1.*\"]\narches = [\"x86_64\", \"aarch64\"]\n";
    let m6 = parse(Path::new("m.toml"), m6, &all, &["k1".into()], &archive).unwrap();
    let count = |a: Arch| m6.cells.iter().filter(|c| c.arch == a).count();
    assert_eq!((count(Arch::X86_64), count(Arch::Aarch64)), (11, 14));
    for (bad, why) in [
        ("debian:5.10.*", "names no package for x86_64"),
        ("debian:6.*", "is not a selector"),
        ("debian:6.1.1*", "is not a Debian kernel"),
    ] {
        let src = format!("[[entry]]\nscenarios = [\"boot\"]\nkernels = [\"{bad}\"]\n");
        let e = parse(Path::new("m.toml"), &src, &all, &["k1".into()], &archive)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.toml:3") && e.contains("entry[0].kernels") && e.contains(why),
            "{bad}: {e}"
        );
    }
}

const KNOWN: &str = r#"gone_after = 2

[[issue]]
title = "BUG: kernel NULL pointer dereference in f"
kernels = ["stock"]
link = "https://bugzilla.example/1"
note = "no upstream fix yet"

[[issue]]
regex = "^WARNING: .* in xfs_"
arches = ["aarch64"]
"#;

fn known() -> known::Known {
    known::parse(Path::new("known-issues.toml"), KNOWN).unwrap()
}

#[test]
fn a_known_crash_turns_a_red_nightly_green_and_an_unknown_one_keeps_it_red() {
    let red = || nightly(vec![result(cell("s", "stock", Arch::X86_64), "reproduced", Some(3.0))]);
    let mut n = red();
    n.compare_with(&[]);
    assert_eq!(n.exit_code(), 1, "a new crash");
    known::apply(&known(), &mut n, &[]);
    assert_eq!(n.changes["s/stock/x86_64"], Change::Known);
    assert_eq!(
        n.cells[0].known.as_deref(),
        Some("BUG: kernel NULL pointer dereference in f")
    );
    assert_eq!(n.exit_code(), 0, "known: nothing new");
    assert_eq!(n.known[0].cells, vec!["s/stock/x86_64".to_string()]);
    // The same crash on a kernel the issue does not name is new.
    let mut other = nightly(vec![result(cell("s", "patched", Arch::X86_64), "reproduced", None)]);
    other.compare_with(&[]);
    known::apply(&known(), &mut other, &[]);
    assert_eq!(other.exit_code(), 1);
    assert_eq!(other.cells[0].known, None);
    // JUnit shows the known one apart (skipped, not failed).
    let j = report::junit(&n);
    assert!(j.contains("failures=\"0\"") && j.contains("skipped=\"1\""), "{j}");
    assert!(
        j.contains("known issue `BUG: kernel NULL pointer dereference in f`"),
        "{j}"
    );
}

#[test]
fn a_regex_issue_applies_to_its_arches_only() {
    let mut c = result(cell("x", "k", Arch::Aarch64), "crashed-differently", None);
    c.title = Some("WARNING: at fs/xfs/x.c in xfs_trans_cancel".into());
    let k = known();
    assert!(k.explaining(&c).is_some());
    c.cell.arch = Arch::X86_64;
    assert!(k.explaining(&c).is_none());
    c.cell.arch = Arch::Aarch64;
    c.verdict = "not-reproduced".into();
    assert!(k.explaining(&c).is_none(), "only a crash is explained");
}

#[test]
fn a_known_issue_gone_for_n_nightlies_is_possibly_fixed() {
    let crashed = || nightly(vec![result(cell("s", "stock", Arch::X86_64), "reproduced", None)]);
    let clean = || nightly(vec![result(cell("s", "stock", Arch::X86_64), "not-reproduced", None)]);
    let status = |now: Nightly, earlier: Vec<Nightly>| known().status(&now, &earlier)[0].clone();
    let s = status(clean(), vec![crashed()]);
    assert_eq!((s.absent_for, s.possibly_fixed), (1, false));
    let s = status(clean(), vec![crashed(), clean()]);
    assert_eq!((s.absent_for, s.possibly_fixed), (2, true));
    let s = status(crashed(), vec![clean(), clean()]);
    assert_eq!((s.absent_for, s.possibly_fixed), (0, false));
    // Nightlies that could not test the cell say nothing about the issue.
    let broken = || nightly(vec![result(cell("s", "stock", Arch::X86_64), "infra-error", None)]);
    let s = status(broken(), vec![crashed(), broken(), broken()]);
    assert_eq!((s.absent_for, s.possibly_fixed), (0, false));
    let s = status(clean(), vec![crashed(), broken(), clean()]);
    assert_eq!((s.absent_for, s.possibly_fixed), (2, true));
}

#[test]
fn a_known_issues_file_with_both_or_neither_matcher_names_the_key() {
    let err = known::parse(Path::new("k.toml"), "[[issue]]\nlink = \"x\"\n").unwrap_err();
    assert!(
        err.to_string().contains("k.toml:1") && err.to_string().contains("issue[0]"),
        "{err}"
    );
    let err = known::parse(Path::new("k.toml"), "[[issue]]\nregex = \"(\"\n").unwrap_err();
    assert!(err.to_string().contains("issue[0].regex"), "{err}");
}

#[test]
fn kcidb_statuses_follow_kcidb_definitions() {
    use kcidb::{status, CellRun};
    let run = CellRun::default();
    let s = |v: &str| status(&result(cell("s", "k", Arch::X86_64), v, None), &run);
    assert_eq!(s("reproduced"), "FAIL");
    assert_eq!(s("crashed-differently"), "FAIL");
    assert_eq!(s("not-reproduced"), "PASS");
    assert_eq!(s("not-run"), "SKIP");
    assert_eq!(s("infra-error"), "MISS");
    let failed = CellRun {
        test_failed: true,
        ..Default::default()
    };
    assert_eq!(
        status(&result(cell("s", "k", Arch::X86_64), "infra-error", None), &failed),
        "ERROR"
    );
}

#[test]
fn kcidb_has_one_issue_per_title_and_an_incident_per_crashed_cell() {
    let mut n = nightly(vec![
        result(cell("a", "stock", Arch::X86_64), "reproduced", None),
        result(cell("b", "stock", Arch::Aarch64), "reproduced", None),
        result(cell("c", "stock", Arch::X86_64), "not-reproduced", None),
    ]);
    n.compare_with(&[]);
    known::apply(&known(), &mut n, &[]);
    let doc = kcidb::render(&n, &Default::default(), &known());
    assert_eq!(doc["version"]["major"], 5);
    assert_eq!(doc["checkouts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["builds"].as_array().unwrap().len(), 2, "x86_64 and arm64");
    assert_eq!(doc["tests"].as_array().unwrap().len(), 3);
    let issues = doc["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["report_url"], "https://bugzilla.example/1");
    assert_eq!(
        issues[0]["id"],
        kcidb::issue_id("BUG: kernel NULL pointer dereference in f")
    );
    assert_eq!(doc["incidents"].as_array().unwrap().len(), 2);
    assert_eq!(doc["tests"][0]["path"], "repro.a");
}

#[test]
fn the_shipped_known_issues_file_parses_and_explains_seed_002s_crash() {
    let k = known::parse(Path::new("known-issues.toml"), include_str!("../../known-issues.toml")).unwrap();
    let mut c = result(
        cell("xfs-symlink-getlink-null", "linux-6.1", Arch::X86_64),
        "reproduced",
        None,
    );
    c.title = Some("BUG: kernel NULL pointer dereference in step_into".into());
    assert!(k.explaining(&c).is_some());
    c.title = Some("BUG: kernel NULL pointer dereference in nfs_updatepage".into());
    assert!(k.explaining(&c).is_none(), "another NULL dereference is not seed 002");
}
