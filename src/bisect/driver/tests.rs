//! The bisect loop over a tiny real git repository, with a fake tester that knows the culprit.

use super::*;
use crate::bisect::plan;
use crate::bisect::Params;
use crate::run::verdict::Verdict::{InfraError, NotReproduced, Reproduced};
use crate::tester::fake::{trial, Fake};
use git2::{Oid, Repository, Signature};
use std::sync::{Arc, Mutex};

const TOML: &str = "summary = \"s\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n[workload]\nscript = \"true\"\n";

struct History {
    dir: tempfile::TempDir,
    ids: Vec<Oid>,
}

/// `n` commits in a line, each touching one file.
fn history(n: usize) -> History {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let sig = Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let mut ids: Vec<Oid> = Vec::new();
    for i in 0..n {
        let parent = ids.last().map(|p| repo.find_commit(*p).unwrap());
        let base = parent.as_ref().map(|p| p.tree().unwrap());
        let mut tb = repo.treebuilder(base.as_ref()).unwrap();
        tb.insert(format!("f{i}"), repo.blob(i.to_string().as_bytes()).unwrap(), 0o100644)
            .unwrap();
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        ids.push(
            repo.commit(None, &sig, &sig, &format!("commit {i}"), &tree, &parents)
                .unwrap(),
        );
    }
    History { dir, ids }
}

fn record(h: &History, bad: usize) -> Record {
    Record {
        scenario: "s.toml".into(),
        arch: None,
        target: Target {
            kind: "kernel".into(),
            name: "k".into(),
            repo: h.dir.path().display().to_string(),
        },
        bad: h.ids[bad].to_string(),
        good: vec![h.ids[0].to_string()],
        paths: Vec::new(),
        params: Params {
            calibrate: 1,
            ..Params::default()
        },
        started_at: 0,
        steps: Vec::new(),
    }
}

/// The commit a candidate is built at.
fn rev(candidate: &Scenario) -> Oid {
    Oid::from_str(&candidate.kernel_source.as_ref().unwrap().rev).unwrap()
}

/// Reproduces at the culprit and after it.
fn culprit_at(h: &History, culprit: usize) -> Fake {
    let after: Vec<Oid> = h.ids[culprit..].to_vec();
    Fake::new(move |c, _| {
        let verdict = if after.contains(&rev(c)) {
            Reproduced
        } else {
            NotReproduced
        };
        trial(verdict, Some("BUG: kernel NULL pointer dereference in f"))
    })
}

async fn drive(fake: &Fake, record: Record, dir: &Path, cancel: watch::Receiver<bool>) -> (BisectResult, Vec<String>) {
    let scenario = crate::scenario::parse(Path::new("s.toml"), TOML, &["k".into()], &["i".into()]).unwrap();
    let (repo, search) = plan::open(&record).unwrap();
    let events = Mutex::new(Vec::new());
    let on = |e: &Event| events.lock().unwrap().push(format!("{e:?}"));
    let job = Job {
        scenario: &scenario,
        record,
        bisect: search,
        dir,
        repo: repo.as_ref(),
    };
    let result = bisect(fake, job, cancel, &on).await.unwrap();
    (result, events.into_inner().unwrap())
}

#[tokio::test(start_paused = true)]
async fn finds_the_culprit_and_keeps_a_record_that_replays() {
    let h = history(12);
    let fake = culprit_at(&h, 7);
    let out = tempfile::tempdir().unwrap();
    let (_, cancel) = watch::channel(false);
    let (result, events) = drive(&fake, record(&h, 11), out.path(), cancel).await;
    assert_eq!(result.outcome, Ended::Found);
    assert_eq!(result.commit.as_ref().unwrap().id, h.ids[7].to_string());
    assert_eq!(result.commit.as_ref().unwrap().subject, "commit 7");
    assert!(result.runs <= 6, "{} runs", result.runs);
    assert!(events[0].starts_with("Started"), "{events:?}");
    let saved = Record::load(out.path()).unwrap();
    assert_eq!(saved.steps.len(), result.runs);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(RESULT)).unwrap()).unwrap();
    assert_eq!(written["outcome"], "found");
    assert!(std::fs::read_to_string(out.path().join("log"))
        .unwrap()
        .contains("first bad commit"));
}

#[tokio::test(start_paused = true)]
async fn a_tree_that_does_not_build_is_skipped_but_a_broken_tool_is_infra() {
    let h = history(8);
    let ids = h.ids.clone();
    // Commit 4 does not build; every other build works.
    let fake = culprit_at(&h, 4).builds(move |c| match rev(c) == ids[4] {
        true => Err(BuildError::Tree {
            part: Part::Kernel("k@4".into()),
            why: "error: expected ';'".into(),
        }),
        false => Ok(()),
    });
    let out = tempfile::tempdir().unwrap();
    let (_, cancel) = watch::channel(false);
    let (result, _) = drive(&fake, record(&h, 7), out.path(), cancel).await;
    // The culprit is hidden by the commit that does not build: 4 or 5.
    assert_eq!(result.outcome, Ended::Ambiguous, "{result:?}");
    let skipped = result.commits.iter().find(|c| c.id == h.ids[4].to_string()).unwrap();
    assert!(skipped.tally.build_failed);
    assert_eq!(skipped.verdict, "skip");

    assert!(matches!(
        built_wrong(
            &record(&h, 7).target,
            BuildError::Infra {
                why: "cc1: killed".into()
            }
        ),
        Observation::Infra { .. }
    ));
    // A module that does not build, while the kernel is bisected, says nothing of the kernel.
    let module_broke = BuildError::Tree {
        part: Part::Module("crashmod".into()),
        why: "x".into(),
    };
    assert!(matches!(
        built_wrong(&record(&h, 7).target, module_broke),
        Observation::Infra { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn infra_errors_are_retried_never_counted_then_stop_the_bisect() {
    let h = history(6);
    let fake = Fake::new(|_, _| trial(InfraError, None));
    let out = tempfile::tempdir().unwrap();
    let (_, cancel) = watch::channel(false);
    let (result, _) = drive(&fake, record(&h, 5), out.path(), cancel).await;
    assert_eq!(result.outcome, Ended::Stopped);
    assert!(result.commits.iter().all(|c| c.tally.runs == 0 && c.tally.infra > 0));
    assert!(result.reason.is_some());
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_bisect_resumes_from_its_record_without_testing_again() {
    let h = history(12);
    let out = tempfile::tempdir().unwrap();
    let (stop, cancel) = watch::channel(false);
    let stop = Arc::new(Mutex::new(Some(stop)));
    let after: Vec<Oid> = h.ids[7..].to_vec();
    let fake = Fake::new(move |c, n| {
        if n == 1 {
            // The user presses Ctrl-C during the second test.
            if let Some(s) = stop.lock().unwrap().take() {
                let _ = s.send(true);
            }
        }
        trial(
            if after.contains(&rev(c)) {
                Reproduced
            } else {
                NotReproduced
            },
            None,
        )
    });
    let (result, _) = drive(&fake, record(&h, 11), out.path(), cancel).await;
    assert_eq!(result.outcome, Ended::Interrupted);
    let saved = Record::load(out.path()).unwrap();
    assert_eq!(saved.steps.len(), 1, "the interrupted test is not recorded");

    let (_, cancel) = watch::channel(false);
    let again = culprit_at(&h, 7);
    let (result, _) = drive(&again, saved.clone(), out.path(), cancel).await;
    assert_eq!(result.outcome, Ended::Found);
    assert_eq!(result.commit.unwrap().id, h.ids[7].to_string());
    let first = &saved.steps[0].commit;
    let retested = again.log.lock().unwrap().iter().any(|(l, _)| l.ends_with(&first[..12]));
    assert!(!retested, "the recorded commit was tested again");
}
