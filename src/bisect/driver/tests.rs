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

/// The commit the candidate's active patch set reverts, if it reverts one.
fn reverted(candidate: &Scenario) -> Option<Oid> {
    let set = candidate.patchsets.get(candidate.active_set.as_ref()?)?;
    set.steps.iter().find_map(|s| match s {
        crate::def::patch::PatchStep::Revert(crate::def::patch::RevertTarget::Rev(r)) => Oid::from_str(r).ok(),
        _ => None,
    })
}

/// Reproduces at the culprit and after it, unless the culprit is reverted.
fn culprit_at(h: &History, culprit: usize) -> Fake {
    let after: Vec<Oid> = h.ids[culprit..].to_vec();
    let bug = h.ids[culprit];
    Fake::new(move |c, _| {
        let verdict = if after.contains(&rev(c)) && reverted(c) != Some(bug) {
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

/// Reproduces everywhere from the culprit on, reverted or not: a commit that is not the cause.
fn not_the_cause(h: &History, culprit: usize) -> Fake {
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

async fn confirmed(fake: &Fake, record: Record) -> BisectResult {
    let out = tempfile::tempdir().unwrap();
    let (_, cancel) = watch::channel(false);
    drive(fake, record, out.path(), cancel).await.0
}

#[tokio::test(start_paused = true)]
async fn a_culprit_is_confirmed_when_reverting_it_on_the_bad_end_takes_the_crash_away() {
    let h = history(12);
    let fake = culprit_at(&h, 7);
    let r = confirmed(&fake, record(&h, 11)).await;
    assert_eq!(r.outcome, Ended::Found);
    let c = r.confirmation.expect("confirmed");
    assert_eq!(c.status, Status::Confirmed);
    assert_eq!((c.reverted, c.on), (h.ids[7].to_string(), h.ids[11].to_string()));
    assert_eq!((c.runs, c.reproduced), (confirm::MIN_RUNS, 0));
    assert_eq!(c.confidence, Some(1.0));
    let short = &h.ids[7].to_string()[..12];
    let reverted_runs = fake
        .labels()
        .iter()
        .filter(|l| l.ends_with(&format!("with {short} reverted")))
        .count();
    assert_eq!(reverted_runs, 3, "{:?}", fake.labels());
    assert!(
        c.run_dirs.iter().all(|d| d.contains(&format!("confirm-{short}-"))),
        "{:?}",
        c.run_dirs
    );
}

#[tokio::test(start_paused = true)]
async fn a_culprit_that_still_crashes_reverted_is_a_candidate_not_the_answer() {
    let h = history(12);
    let r = confirmed(&not_the_cause(&h, 7), record(&h, 11)).await;
    assert_eq!(r.outcome, Ended::Unconfirmed);
    assert_eq!(r.commit.as_ref().unwrap().id, h.ids[7].to_string());
    let c = r.confirmation.unwrap();
    assert_eq!((c.status, c.runs, c.reproduced), (Status::NotConfirmed, 1, 1));
    assert!(
        r.reason.unwrap().contains("with") && c.why.ends_with("reverted still reproduces"),
        "{}",
        c.why
    );
}

#[tokio::test(start_paused = true)]
async fn a_revert_that_does_not_apply_is_not_a_confirmation() {
    let h = history(12);
    let fake = culprit_at(&h, 7).builds(|c| match reverted(c) {
        Some(_) => Err(BuildError::Tree {
            part: Part::Kernel("k".into()),
            why: "revert of abc: conflict in f7".into(),
        }),
        None => Ok(()),
    });
    let r = confirmed(&fake, record(&h, 11)).await;
    assert_eq!(r.outcome, Ended::Unconfirmed);
    let c = r.confirmation.unwrap();
    assert_eq!((c.status, c.runs), (Status::NotConfirmed, 0));
    assert!(
        c.why
            .contains("does not build (the revert may not apply): revert of abc: conflict in f7"),
        "{}",
        c.why
    );
}

/// A step of a record, as a run of `commit` that recorded no image (a record from before images).
fn ran(commit: Oid, outcome: Observation) -> Attempt {
    Attempt {
        commit: commit.to_string(),
        outcome,
        run_dir: None,
        seconds: 10.0,
        image: None,
        same_as: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_culprit_that_builds_its_parents_image_is_never_named_alone() {
    let h = history(12);
    let same = [h.ids[6], h.ids[7]];
    let fake = culprit_at(&h, 7).images(move |c| {
        let r = rev(c);
        Some(if same.contains(&r) {
            "same".into()
        } else {
            r.to_string()
        })
    });
    // Runs that knew no images said 6 is clean and 7 reproduces (a flaky miss at 6, or a
    // workload that differs): nothing told the search that the two are one kernel.
    let mut rec = record(&h, 11);
    rec.steps = vec![
        ran(h.ids[6], Observation::Clean),
        ran(h.ids[7], Observation::Reproduced),
    ];
    let r = confirmed(&fake, rec).await;
    assert_eq!(r.outcome, Ended::Ambiguous);
    assert!(r.commit.is_none());
    let names: Vec<&str> = r.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(names, [h.ids[7].to_string(), h.ids[6].to_string()]);
    assert!(r.reason.unwrap().contains("byte-identical to its parent"));
    assert!(r.confirmation.is_none());
    assert!(!fake.labels().iter().any(|l| l.contains("reverted")));
}

#[tokio::test(start_paused = true)]
async fn no_confirm_reports_the_commit_without_reverting_it() {
    let h = history(12);
    let mut rec = record(&h, 11);
    rec.params.confirm = false;
    let fake = not_the_cause(&h, 7);
    let r = confirmed(&fake, rec).await;
    assert_eq!(r.outcome, Ended::Found);
    assert!(r.confirmation.is_none());
    assert!(!fake.labels().iter().any(|l| l.contains("reverted")));
}

#[tokio::test(start_paused = true)]
async fn a_fix_is_confirmed_when_reverting_it_brings_the_crash_back() {
    let h = history(12);
    let (before, fix) = (h.ids[..7].to_vec(), h.ids[7]);
    let fake = Fake::new(move |c, _| {
        let verdict = if before.contains(&rev(c)) || reverted(c) == Some(fix) {
            Reproduced
        } else {
            NotReproduced
        };
        trial(verdict, Some("BUG: kernel NULL pointer dereference in f"))
    });
    let mut rec = record(&h, 0);
    rec.params.fix = true;
    rec.good = vec![h.ids[11].to_string()];
    let r = confirmed(&fake, rec).await;
    assert_eq!(r.outcome, Ended::Found, "{:?}", r.reason);
    assert_eq!(r.commit.as_ref().unwrap().id, h.ids[7].to_string());
    let c = r.confirmation.unwrap();
    assert_eq!((c.status, c.reproduced), (Status::Confirmed, 1));
    assert_eq!(c.on, h.ids[11].to_string());
}

/// Runs of each commit, from the fake's labels.
fn runs_of(fake: &Fake, commit: Oid) -> usize {
    let short = crate::bisect::graph::short(&commit.to_string());
    fake.labels()
        .iter()
        .filter(|l| l.ends_with(&format!("at {short}")))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_builds_the_kernel_of_one_already_run_takes_its_result_without_a_run() {
    let h = history(12);
    // Only commit 7 changes the kernel image: the others build the image of their parent.
    let new: Vec<Oid> = h.ids[7..].to_vec();
    let images = move |c: &Scenario| Some(if new.contains(&rev(c)) { "after" } else { "before" }.to_string());
    let fake = culprit_at(&h, 7).images(images);
    let r = confirmed(&fake, record(&h, 11)).await;
    assert_eq!(r.outcome, Ended::Found, "{:?}", r.reason);
    assert_eq!(r.commit.as_ref().unwrap().id, h.ids[7].to_string());
    assert!(r.same_kernel_tests > 0, "{r:?}");
    // Each commit tested ran at most once, or took the result of a commit with its image.
    let blind = culprit_at(&h, 7);
    let without = confirmed(&blind, record(&h, 11)).await;
    assert_eq!(without.same_kernel_tests, 0);
    assert!(
        r.runs < without.runs,
        "{} runs with images, {} without",
        r.runs,
        without.runs
    );
    assert_eq!(r.runs + r.same_kernel_tests, without.runs, "the same tests, fewer runs");
    let bisect_runs = fake.labels().iter().filter(|l| !l.contains("reverted")).count();
    assert_eq!(bisect_runs, r.runs, "{:?}", fake.labels());
    for c in r
        .commits
        .iter()
        .filter(|c| c.tally.same_kernel_reproduced + c.tally.same_kernel_clean > 0)
    {
        let id = Oid::from_str(&c.id).unwrap();
        assert_eq!(runs_of(&fake, id), 0, "{} ran although it took another's run", c.id);
        let i = h.ids.iter().position(|x| *x == id).unwrap();
        assert_eq!(c.verdict, if i >= 7 { "bad" } else { "good" }, "{c:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_runs_of_the_same_kernel_are_taken_one_per_test_and_never_an_infra_error() {
    let h = history(12);
    let (bad, good) = (h.ids[11], h.ids[0]);
    // The bad end's first run is lost to the infrastructure; then it reproduces every other
    // run. Commit 10 builds the bad end's image, and commit 1 the good end's; nothing else
    // shares an image.
    let runs_at_bad = Arc::new(Mutex::new(0usize));
    let fake = Fake::new(move |c, _| {
        if rev(c) != bad {
            return trial(if rev(c) == good { NotReproduced } else { Reproduced }, None);
        }
        let mut n = runs_at_bad.lock().unwrap();
        *n += 1;
        match *n {
            1 => trial(InfraError, None),
            n if n % 2 == 0 => trial(Reproduced, None),
            _ => trial(NotReproduced, None),
        }
    });
    let ids = h.ids.clone();
    let fake = fake.images(move |c| {
        let r = rev(c);
        let i = ids.iter().position(|x| *x == r).unwrap();
        Some(match i {
            10 | 11 => "bad end".to_string(),
            0 | 1 => "good end".to_string(),
            _ => format!("commit {i}"),
        })
    });
    let mut rec = record(&h, 11);
    rec.params.calibrate = 4;
    rec.params.confirm = false;
    let out = tempfile::tempdir().unwrap();
    let (_, cancel) = watch::channel(false);
    let (r, _) = drive(&fake, rec, out.path(), cancel).await;
    let saved = Record::load(out.path()).unwrap();
    let taken: Vec<&Attempt> = saved.steps.iter().filter(|s| s.same_as.is_some()).collect();
    for s in &taken {
        assert!(!matches!(s.outcome, Observation::Infra { .. }), "{s:?}");
        let from = s.same_as.as_deref().unwrap();
        assert_eq!(
            saved.steps.iter().find(|x| x.commit == from).map(|x| &x.image),
            Some(&s.image)
        );
    }
    // Commit 10, if tested, took the bad end's first counted run (a reproduction) and never ran.
    if let Some(t) = saved.steps.iter().find(|s| s.commit == h.ids[10].to_string()) {
        assert_eq!(t.outcome, Observation::Reproduced, "{t:?}");
        assert_eq!(t.same_as.as_deref(), Some(bad.to_string().as_str()));
        assert_eq!(runs_of(&fake, h.ids[10]), 0);
    }
    // Commit 1 needs several clean runs (the bug is flaky); it took them from the good end, one
    // per test, in the order they ran, and never ran itself.
    let one: Vec<&Attempt> = saved
        .steps
        .iter()
        .filter(|s| s.commit == h.ids[1].to_string())
        .collect();
    let good_runs: Vec<&Attempt> = saved.steps.iter().filter(|s| s.commit == good.to_string()).collect();
    assert!(one.len() > 1 && one.len() <= good_runs.len(), "{one:?}");
    for (took, ran) in one.iter().zip(&good_runs) {
        assert_eq!(took.same_as.as_deref(), Some(good.to_string().as_str()));
        assert_eq!((&took.outcome, &took.run_dir), (&ran.outcome, &ran.run_dir));
    }
    assert_eq!(runs_of(&fake, h.ids[1]), 0);
    let line = r.commits.iter().find(|c| c.id == h.ids[1].to_string()).unwrap();
    assert_eq!(
        (line.verdict, line.tally.same_kernel_clean as usize),
        ("good", one.len())
    );
    assert_eq!(
        r.commit.as_ref().map(|c| c.id.clone()),
        Some(h.ids[2].to_string()),
        "{r:?}"
    );
}
