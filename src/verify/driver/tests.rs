use super::*;
use crate::run::verdict::Verdict::{InfraError, NotReproduced, Reproduced};
use crate::tester::fake::{trial, Fake};
use crate::tester::Part;
use crate::verify::Finding;
use std::sync::Mutex;

const TOML: &str = "summary = \"s\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n\
    [workload]\nscript = \"true\"\n[patchsets.fix]\nsummary = \"the fix\"\n";

fn sides() -> (Scenario, Scenario) {
    let base = crate::scenario::parse(Path::new("s.toml"), TOML, &["k".into()], &["i".into()]).unwrap();
    let mut patched = base.clone();
    patched.select_set("fix").unwrap();
    (base, patched)
}

fn is_patched(s: &Scenario) -> bool {
    s.active_set.is_some()
}

async fn run(
    fake: &Fake,
    runs: u32,
    cancel: watch::Receiver<bool>,
) -> (Result<Ended, WriteError>, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (base, patched) = sides();
    let events = Mutex::new(Vec::new());
    let job = Job {
        base: &base,
        patched: &patched,
        set: "fix",
        runs,
        dir: dir.path(),
    };
    let on = |e: &Event| events.lock().unwrap().push(format!("{e:?}"));
    let ended = verify(fake, job, cancel, &on).await;
    let events = events.into_inner().unwrap();
    (ended, events, dir)
}

fn done(ended: Result<Ended, WriteError>) -> Verification {
    match ended {
        Ok(Ended::Done(v)) => *v,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_fix_is_concluded_from_a_reproducing_base_and_a_clean_patched_kernel() {
    let fake = Fake::new(|s, _| trial(if is_patched(s) { NotReproduced } else { Reproduced }, Some("BUG")));
    let (_, cancel) = watch::channel(false);
    let (ended, events, dir) = run(&fake, 3, cancel).await;
    let v = done(ended);
    assert_eq!(v.conclusion.outcome, Finding::Fixed);
    assert_eq!((v.base.reproduced, v.patched.not_reproduced), (3, 3));
    assert_eq!(events.len(), 6);
    assert_eq!(fake.labels()[0], "s [base 1/3]");
    assert_eq!(fake.labels()[5], "s [patched 3/3]");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(FILE)).unwrap()).unwrap();
    assert_eq!(written["conclusion"]["outcome"], "fixed");
    assert_eq!(written["runs"].as_array().unwrap().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn one_reproduction_on_the_patched_kernel_ends_its_runs() {
    let fake = Fake::new(|_, _| trial(Reproduced, Some("BUG")));
    let (_, cancel) = watch::channel(false);
    let v = done(run(&fake, 3, cancel).await.0);
    assert_eq!(v.conclusion.outcome, Finding::NotFixed);
    assert_eq!(v.patched.runs, 1);
    assert_eq!(fake.labels().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_side_that_does_not_build_counts_as_infra_and_is_never_fixed() {
    let fake = Fake::new(|_, _| trial(NotReproduced, None)).builds(|s| match is_patched(s) {
        true => Err(BuildError::Tree {
            part: Part::Kernel("k+fix".into()),
            why: "patch does not apply".into(),
        }),
        false => Ok(()),
    });
    let (_, cancel) = watch::channel(false);
    let (ended, events, _dir) = run(&fake, 2, cancel).await;
    let v = done(ended);
    assert_eq!(v.patched.infra_error, 2);
    assert_ne!(v.conclusion.outcome, Finding::Fixed);
    assert!(
        events
            .iter()
            .any(|e| e.contains("BuildFailed") && e.contains("patch does not apply")),
        "{events:?}"
    );
    assert_eq!(fake.labels().len(), 2, "only the base ran");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_verification_writes_no_conclusion() {
    let (stop, cancel) = watch::channel(false);
    let fake = Fake::new(move |_, n| {
        if n == 1 {
            let _ = stop.send(true);
        }
        trial(Reproduced, None)
    });
    let (ended, _, dir) = run(&fake, 3, cancel).await;
    assert!(matches!(ended, Ok(Ended::Interrupted)), "{ended:?}");
    assert!(!dir.path().join(FILE).exists());
    assert_eq!(fake.labels().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn infra_errors_are_tallied_not_hidden() {
    let fake = Fake::new(|s, _| trial(if is_patched(s) { InfraError } else { Reproduced }, None));
    let (_, cancel) = watch::channel(false);
    let v = done(run(&fake, 2, cancel).await.0);
    assert_eq!(v.patched.infra_error, 2);
    assert_eq!(v.conclusion.outcome, Finding::Inconclusive);
}
