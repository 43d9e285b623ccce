//! The nightly loop with a fake tester, in paused time.

use super::*;
use crate::arch::Arch;
use crate::run::verdict::Verdict::{NotReproduced, Reproduced};
use crate::tester::fake::{trial, Fake};
use std::sync::Mutex;

const TOML: &str = "summary = \"s\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n[workload]\nscript = \"true\"\n";

fn cells(names: &[&str]) -> Vec<(Cell, Scenario)> {
    names
        .iter()
        .map(|n| {
            let path = PathBuf::from(format!("{n}.toml"));
            let s = crate::scenario::parse(&path, TOML, &["k".into()], &["i".into()]).unwrap();
            let cell = Cell {
                scenario: n.to_string(),
                kernel: "k".into(),
                arch: Arch::X86_64,
            };
            (cell, s)
        })
        .collect()
}

fn capacity(jobs: u32) -> Capacity {
    Capacity {
        cores: 8,
        memory_mib: 64 * 1024,
        jobs,
    }
}

async fn drive(fake: Fake, job: Job, cancel: watch::Receiver<bool>) -> (Ran, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let on = |e: &Event| events.lock().unwrap().push(e.clone());
    // The CLI makes the nightly's (new) directory; the driver writes into it.
    std::fs::create_dir_all(&job.out).unwrap();
    let ran = nightly(Arc::new(fake), job, cancel, &on).await.unwrap();
    (ran, events.into_inner().unwrap())
}

/// The most cells that ran at once.
fn most_at_once(events: &[Event]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for e in events {
        match e {
            Event::Started { .. } => {
                now += 1;
                most = most.max(now);
            }
            Event::Finished { .. } => now -= 1,
            Event::BudgetRanOut => {}
        }
    }
    most
}

#[tokio::test(start_paused = true)]
async fn every_cell_runs_at_most_jobs_at_once_and_the_reports_are_written() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("n1");
    let fake = Fake::new(|s, _| trial(if s.name == "b" { Reproduced } else { NotReproduced }, Some("BUG")));
    let job = Job {
        cells: cells(&["a", "b", "c"]),
        out: out.clone(),
        capacity: capacity(2),
        budget: None,
        shard: None,
        known: Default::default(),
    };
    let (_, cancel) = watch::channel(false);
    let (ran, events) = drive(fake, job, cancel).await;
    assert_eq!(most_at_once(&events), 2);
    let verdicts: Vec<&str> = ran.nightly.cells.iter().map(|c| c.verdict.as_str()).collect();
    assert_eq!(verdicts, ["not-reproduced", "reproduced", "not-reproduced"]);
    assert_eq!(ran.nightly.cells[1].time_to_reproduce, Some(4.0));
    assert_eq!(ran.nightly.cells[0].run_dir.as_deref(), Some("cells/a-k-x86_64"));
    // No earlier nightly: a crash is new.
    assert_eq!(ran.nightly.exit_code(), 1);
    for f in [store::NIGHTLY_JSON, "junit.xml", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_the_running_cell_and_leaves_the_rest_not_run() {
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::new(|_, _| trial(NotReproduced, None));
    let job = Job {
        cells: cells(&["a", "b", "c"]),
        out: root.path().join("n1"),
        capacity: capacity(1),
        budget: Some(Duration::from_secs(15)),
        shard: None,
        known: Default::default(),
    };
    let (_, cancel) = watch::channel(false);
    let (ran, events) = drive(fake, job, cancel).await;
    assert!(events.iter().any(|e| matches!(e, Event::BudgetRanOut)));
    let by_name = |n: &str| ran.nightly.cells.iter().find(|c| c.cell.scenario == n).unwrap();
    assert_eq!(by_name("a").verdict, "not-reproduced");
    assert_eq!(by_name("b").reason, "stopped: the time budget ran out");
    assert_eq!(by_name("c").verdict, "not-run");
    assert_eq!(by_name("c").reason, "the time budget ran out before it started");
    assert_eq!(ran.nightly.exit_code(), 125, "a cell that was not run is untested");
    assert!(!ran.interrupted);
}

#[tokio::test(start_paused = true)]
async fn a_crash_that_was_there_last_night_is_not_new() {
    let root = tempfile::tempdir().unwrap();
    let crashes = || Fake::new(|_, _| trial(Reproduced, Some("BUG")));
    let (_, cancel) = watch::channel(false);
    for night in ["n1", "n2"] {
        let job = Job {
            cells: cells(&["a"]),
            out: root.path().join(night),
            capacity: capacity(1),
            budget: None,
            shard: None,
            known: Default::default(),
        };
        let (ran, _) = drive(crashes(), job, cancel.clone()).await;
        let change = ran.nightly.changes["a/k/x86_64"];
        let want = if night == "n1" { "new crash" } else { "still failing" };
        assert_eq!(change.as_str(), want, "{night}");
    }
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_stops_the_nightly_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let (user, cancel) = watch::channel(false);
    let user = Mutex::new(Some(user));
    let fake = Fake::new(move |_, _| {
        if let Some(u) = user.lock().unwrap().take() {
            let _ = u.send(true);
        }
        trial(NotReproduced, None)
    });
    let job = Job {
        cells: cells(&["a", "b"]),
        out: root.path().join("n1"),
        capacity: capacity(1),
        budget: None,
        shard: None,
        known: Default::default(),
    };
    let (ran, _) = drive(fake, job, cancel).await;
    assert!(ran.interrupted);
    let b = ran.nightly.cells.iter().find(|c| c.cell.scenario == "b").unwrap();
    assert_eq!((b.verdict.as_str(), b.reason.as_str()), ("not-run", "interrupted"));
}

#[tokio::test(start_paused = true)]
async fn a_cell_whose_run_panics_is_its_infra_error_and_the_nightly_ends() {
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::new(|s, _| match s.name.as_str() {
        "b" => panic!("a bug in the run"),
        _ => trial(NotReproduced, None),
    });
    let job = Job {
        cells: cells(&["a", "b", "c"]),
        out: root.path().join("n"),
        capacity: capacity(2),
        budget: None,
        shard: None,
        known: Default::default(),
    };
    let (ran, _) = tokio::time::timeout(
        std::time::Duration::from_secs(3600),
        drive(fake, job, watch::channel(false).1),
    )
    .await
    .expect("the nightly waited for the cell that panicked");
    let by_name = |n: &str| ran.nightly.cells.iter().find(|c| c.cell.scenario == n).unwrap().clone();
    assert_eq!(by_name("b").verdict, "infra-error");
    assert!(
        by_name("b").reason.contains("a bug in the run"),
        "{}",
        by_name("b").reason
    );
    assert_eq!(by_name("a").verdict, "not-reproduced");
    assert_eq!(by_name("c").verdict, "not-reproduced");
}
