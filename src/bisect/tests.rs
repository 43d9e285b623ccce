//! The search on tiny real git repositories, with fake testers that know the culprit.

use super::*;
use git2::{Oid, Repository, Signature};

struct Repo {
    _dir: tempfile::TempDir,
    repo: Repository,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        Repo { _dir: dir, repo }
    }

    /// A commit with `parents` that writes `file` = `content` on top of the first parent's tree.
    fn commit(&self, parents: &[Oid], file: &str, content: &str, msg: &str) -> Oid {
        let sig = Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let base = parents
            .first()
            .map(|p| self.repo.find_commit(*p).unwrap().tree().unwrap());
        let mut tb = self.repo.treebuilder(base.as_ref()).unwrap();
        let blob = self.repo.blob(content.as_bytes()).unwrap();
        tb.insert(file, blob, 0o100644).unwrap();
        let tree = self.repo.find_tree(tb.write().unwrap()).unwrap();
        let ps: Vec<git2::Commit> = parents.iter().map(|p| self.repo.find_commit(*p).unwrap()).collect();
        let refs: Vec<&git2::Commit> = ps.iter().collect();
        self.repo.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
    }

    fn linear(&self, n: usize) -> Vec<Oid> {
        let mut v: Vec<Oid> = Vec::new();
        for i in 0..n {
            let parents: Vec<Oid> = v.last().copied().into_iter().collect();
            v.push(self.commit(
                &parents,
                &format!("f{}", i % 3),
                &format!("{i}"),
                &format!("commit {i}"),
            ));
        }
        v
    }

    /// Does `commit` contain `culprit` (is it the culprit or a descendant)?
    fn contains(&self, commit: Oid, culprit: Oid) -> bool {
        commit == culprit || self.repo.graph_descendant_of(commit, culprit).unwrap()
    }
}

/// A small seeded generator (xorshift64*), so trials are reproducible.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Done {
    next: Next,
    tests: u32,
    commits_tested: usize,
}

/// Runs the bisect to its end with `tester` giving each test's outcome.
fn drive(b: &mut Bisect, mut tester: impl FnMut(&str) -> Observation) -> Done {
    let mut tests = 0;
    loop {
        match b.next() {
            Next::Test(i) => {
                let o = tester(&b.graph.ids[i]);
                b.observe(i, &o);
                tests += 1;
                assert!(tests < 10_000, "the bisect does not end");
            }
            next => {
                let commits_tested = b.tallies.iter().filter(|t| t.runs > 0 || t.build_failed).count();
                return Done {
                    next,
                    tests,
                    commits_tested,
                };
            }
        }
    }
}

fn found(b: &Bisect, d: &Done) -> Option<String> {
    match &d.next {
        Next::Found(i) => Some(b.graph.ids[*i].clone()),
        _ => None,
    }
}

fn deterministic(r: &Repo, culprit: Oid) -> impl FnMut(&str) -> Observation + '_ {
    move |id| {
        if r.contains(Oid::from_str(id).unwrap(), culprit) {
            Observation::Reproduced
        } else {
            Observation::Clean
        }
    }
}

#[test]
fn runs_needed_follow_the_reproduction_rate() {
    assert_eq!(needed(1.0, 0.01, 30), 1);
    assert_eq!(needed(0.5, 0.01, 30), 7); // 0.5^7 = 0.0078
    assert_eq!(needed(0.3, 0.01, 30), 13); // 0.7^13 = 0.0097
    assert_eq!(needed(0.01, 0.01, 30), 30); // capped
}

#[test]
fn linear_history_finds_the_culprit_in_about_log2_tests() {
    let r = Repo::new();
    let c = r.linear(33);
    for culprit_at in [1, 5, 16, 31, 32] {
        let g = Graph::from_repo(&r.repo, c[32], &[c[0]], &[]).unwrap();
        let mut b = Bisect::new(g, Params::default());
        let d = drive(&mut b, deterministic(&r, c[culprit_at]));
        assert_eq!(
            found(&b, &d),
            Some(c[culprit_at].to_string()),
            "culprit at {culprit_at}: {:?}",
            d.next
        );
        // 32 candidates: 5 halvings, plus the two ends.
        assert!(d.commits_tested <= 5 + 2 + 1, "{} commits tested", d.commits_tested);
        // A deterministic bug: the bad end is calibrated (6 runs), every other commit runs once.
        assert_eq!(d.tests as usize, d.commits_tested + 5);
    }
}

#[test]
fn merges_are_bisected_through_both_sides() {
    // base - a1 - a2 - a3 ------- merge - after
    //          \                 /
    //           b1 - b2 - b3 - b4
    let r = Repo::new();
    let base = r.commit(&[], "f", "0", "base");
    let a1 = r.commit(&[base], "a", "1", "a1");
    let a2 = r.commit(&[a1], "a", "2", "a2");
    let a3 = r.commit(&[a2], "a", "3", "a3");
    let b1 = r.commit(&[a1], "b", "1", "b1");
    let b2 = r.commit(&[b1], "b", "2", "b2");
    let b3 = r.commit(&[b2], "b", "3", "b3");
    let b4 = r.commit(&[b3], "b", "4", "b4");
    let merge = r.commit(&[a3, b4], "m", "1", "merge");
    let after = r.commit(&[merge], "z", "1", "after");
    for culprit in [a2, b3, b1, merge, after] {
        let g = Graph::from_repo(&r.repo, after, &[base], &[]).unwrap();
        let mut b = Bisect::new(g, Params::default());
        let d = drive(&mut b, deterministic(&r, culprit));
        assert_eq!(found(&b, &d), Some(culprit.to_string()), "{:?}", d.next);
    }
}

#[test]
fn skipped_commits_are_worked_around_or_reported() {
    let r = Repo::new();
    let c = r.linear(17);
    let culprit = c[9];
    // Commits 4..=6 do not build: the culprit is still found.
    let g = Graph::from_repo(&r.repo, c[16], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let broken: Vec<String> = c[4..=6].iter().map(|o| o.to_string()).collect();
    let mut det = deterministic(&r, culprit);
    let d = drive(&mut b, |id| {
        if broken.iter().any(|x| x == id) {
            Observation::BuildFailed { why: "error: x".into() }
        } else {
            det(id)
        }
    });
    assert_eq!(found(&b, &d), Some(culprit.to_string()), "{:?}", d.next);

    // The culprit's parent crashes differently: the answer is honestly ambiguous.
    let g = Graph::from_repo(&r.repo, c[16], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let mut det = deterministic(&r, culprit);
    let parent = c[8].to_string();
    let d = drive(&mut b, |id| {
        if id == parent {
            Observation::OtherCrash {
                title: "WARNING in something_else".into(),
            }
        } else {
            det(id)
        }
    });
    let Next::Ambiguous(v) = &d.next else {
        panic!("expected ambiguous, got {:?}", d.next)
    };
    let mut ids: Vec<&str> = v.iter().map(|&i| b.graph.ids[i].as_str()).collect();
    ids.sort();
    let mut want = vec![parent.as_str(), c[9].to_string().leak() as &str];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn a_different_crash_is_never_counted_as_bad() {
    let r = Repo::new();
    let c = r.linear(9);
    // Every commit from 3 on crashes differently; the expected crash comes at 6.
    let g = Graph::from_repo(&r.repo, c[8], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(
        g,
        Params {
            other_crash: OtherCrash::Skip,
            ..Params::default()
        },
    );
    let ids: Vec<String> = c.iter().map(|o| o.to_string()).collect();
    let pos = |id: &str| ids.iter().position(|x| x == id).unwrap();
    let d = drive(&mut b, |id| match pos(id) {
        p if p >= 6 => Observation::Reproduced,
        p if p >= 3 => Observation::OtherCrash { title: "other".into() },
        _ => Observation::Clean,
    });
    match &d.next {
        Next::Ambiguous(v) => {
            assert!(v.iter().all(|&i| (3..=6).contains(&pos(&b.graph.ids[i]))), "{v:?}");
            assert!(v.iter().any(|&i| pos(&b.graph.ids[i]) == 6));
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
}

#[test]
fn infra_errors_are_retried_then_stop_the_bisect() {
    let r = Repo::new();
    let c = r.linear(9);
    let g = Graph::from_repo(&r.repo, c[8], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let mut det = deterministic(&r, c[5]);
    let mut flaky_infra = 0;
    // The first two tests of every commit are lost to infra errors: retried, never counted.
    let mut seen: std::collections::HashMap<String, u32> = Default::default();
    let d = drive(&mut b, |id| {
        let n = seen.entry(id.to_string()).or_default();
        *n += 1;
        if *n <= 2 {
            flaky_infra += 1;
            Observation::Infra { why: "ssh".into() }
        } else {
            det(id)
        }
    });
    assert_eq!(found(&b, &d), Some(c[5].to_string()));
    assert!(flaky_infra > 0);

    let g = Graph::from_repo(&r.repo, c[8], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let d = drive(&mut b, |_| Observation::Infra {
        why: "qemu died".into(),
    });
    assert!(
        matches!(&d.next, Next::Stop(w) if w.contains("infrastructure")),
        "{:?}",
        d.next
    );
}

#[test]
fn wrong_ends_stop_with_a_reason() {
    let r = Repo::new();
    let c = r.linear(5);
    let g = Graph::from_repo(&r.repo, c[4], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let d = drive(&mut b, |_| Observation::Reproduced);
    assert!(
        matches!(&d.next, Next::Stop(w) if w.contains("good end")),
        "{:?}",
        d.next
    );

    let g = Graph::from_repo(&r.repo, c[4], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let d = drive(&mut b, |_| Observation::Clean);
    assert!(
        matches!(&d.next, Next::Stop(w) if w.contains("did not reproduce")),
        "{:?}",
        d.next
    );
    assert!(Graph::from_repo(&r.repo, c[0], &[c[4]], &[]).is_err());
}

#[test]
fn fix_mode_finds_the_first_commit_without_the_crash() {
    let r = Repo::new();
    let c = r.linear(20);
    let fix = c[13];
    let g = Graph::from_repo(&r.repo, c[19], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(
        g,
        Params {
            fix: true,
            ..Params::default()
        },
    );
    let d = drive(&mut b, |id| {
        if r.contains(Oid::from_str(id).unwrap(), fix) {
            Observation::Clean
        } else {
            Observation::Reproduced
        }
    });
    assert_eq!(found(&b, &d), Some(fix.to_string()), "{:?}", d.next);
}

#[test]
fn paths_limit_the_candidates() {
    let r = Repo::new();
    let mut v = vec![r.commit(&[], "other", "0", "base")];
    for i in 1..=12 {
        let file = if i % 4 == 0 { "nfs-write.c" } else { "Documentation" };
        v.push(r.commit(&[v[i - 1]], file, &format!("{i}"), &format!("c{i}")));
    }
    let culprit = v[8]; // touches nfs-write.c
    let g = Graph::from_repo(&r.repo, v[12], &[v[0]], &["nfs-write.c".to_string()]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let mut tested = Vec::new();
    let mut det = deterministic(&r, culprit);
    let d = drive(&mut b, |id| {
        tested.push(id.to_string());
        det(id)
    });
    assert_eq!(found(&b, &d), Some(culprit.to_string()), "{:?}", d.next);
    let ends = [v[0].to_string(), v[12].to_string()];
    for t in tested.iter().filter(|t| !ends.contains(t)) {
        let i = v.iter().position(|o| o.to_string() == *t).unwrap();
        assert_eq!(i % 4, 0, "commit {i} does not touch nfs-write.c but was tested");
    }
}

/// Flaky bugs: over many seeded trials, how often the right commit is found. The floor is below
/// the wanted confidence (0.95) because the rate itself is estimated from few runs.
#[test]
fn flaky_bugs_are_found_with_the_wanted_confidence() {
    let r = Repo::new();
    let c = r.linear(33);
    let trials = 200;
    for (p, floor) in [(0.3, 0.9), (0.6, 0.9)] {
        let mut right = 0;
        let mut tests = 0;
        for seed in 0..trials {
            let culprit = c[1 + (seed * 7) % 31];
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed as u64 + 1));
            let g = Graph::from_repo(&r.repo, c[32], &[c[0]], &[]).unwrap();
            let mut b = Bisect::new(g, Params::default());
            let d = drive(&mut b, |id| {
                if r.contains(Oid::from_str(id).unwrap(), culprit) && rng.next_f64() < p {
                    Observation::Reproduced
                } else {
                    Observation::Clean
                }
            });
            tests += d.tests;
            if found(&b, &d) == Some(culprit.to_string()) {
                right += 1;
            }
        }
        let rate = f64::from(right) / trials as f64;
        eprintln!(
            "p={p}: right {right}/{trials} ({rate:.3}), {:.1} tests per bisect",
            f64::from(tests) / trials as f64
        );
        assert!(rate >= floor, "p={p}: right in {rate:.3} of trials, floor {floor}");
    }
}

#[test]
fn the_record_replays_to_the_same_state_and_renders_a_log() {
    let r = Repo::new();
    let c = r.linear(9);
    let g = Graph::from_repo(&r.repo, c[8], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g.clone(), Params::default());
    let mut steps = Vec::new();
    let mut det = deterministic(&r, c[6]);
    let d = drive(&mut b, |id| {
        let o = det(id);
        steps.push(log::Attempt {
            commit: id.to_string(),
            outcome: o.clone(),
            run_dir: None,
            seconds: 1.0,
            image: None,
            same_as: None,
        });
        o
    });
    let rec = log::Record {
        scenario: "s".into(),
        arch: None,
        target: log::Target {
            kind: "module".into(),
            name: "m".into(),
            repo: "/r".into(),
        },
        bad: c[8].to_string(),
        good: vec![c[0].to_string()],
        paths: vec![],
        params: Params::default(),
        started_at: 0,
        steps,
    };
    let dir = tempfile::tempdir().unwrap();
    rec.save(dir.path()).unwrap();
    let back = log::Record::load(dir.path()).unwrap();
    assert_eq!(back, rec);
    let mut b2 = Bisect::new(g, Params::default());
    back.replay(&mut b2).unwrap();
    assert_eq!(b2.next(), d.next);
    let text = log::render(&back, &b2);
    assert!(text.contains(&format!("git bisect bad {}", c[6])), "{text}");
    assert!(text.contains(&format!("git bisect good {}", c[5])), "{text}");
    assert!(
        text.contains(&format!("# first bad commit: [{}] commit 6", c[6])),
        "{text}"
    );
}

#[test]
fn a_hand_edited_record_is_an_error_naming_the_key_not_a_panic() {
    let id = "a".repeat(40);
    let rec = log::Record {
        scenario: "s".into(),
        arch: None,
        target: log::Target {
            kind: "kernel".into(),
            name: "k".into(),
            repo: "/r".into(),
        },
        bad: id.clone(),
        good: vec![id.replace('a', "b")],
        paths: vec![],
        params: Params::default(),
        started_at: 0,
        steps: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bisect.json");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::to_value(&rec).unwrap();
        f(&mut v);
        std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        log::Record::load(dir.path())
    };
    assert!(edit(&|_| {}).is_ok());
    let err = edit(&|v| v["good"] = serde_json::json!([])).unwrap_err();
    assert!(err.contains("`good` is empty") && err.contains("bisect.json"), "{err}");
    let err = edit(&|v| v["params"]["max_runs"] = serde_json::json!(0)).unwrap_err();
    assert!(err.contains("`params.max_runs`"), "{err}");
    let err = edit(&|v| v["bad"] = serde_json::json!("HEAD")).unwrap_err();
    assert!(err.contains("not a full commit id"), "{err}");
    std::fs::write(&file, "{\"scenario\": \"s\", \"arch\"").unwrap();
    let err = log::Record::load(dir.path()).unwrap_err();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn a_run_taken_for_the_same_kernel_decides_the_commit_but_counts_once_in_the_rate() {
    let r = Repo::new();
    let c = r.linear(9);
    let g = Graph::from_repo(&r.repo, c[8], &[c[0]], &[]).unwrap();
    let mut b = Bisect::new(g, Params::default());
    let (bad, twin) = (
        b.graph.index_of(&c[8].to_string()).unwrap(),
        b.graph.index_of(&c[7].to_string()).unwrap(),
    );
    // The bad end reproduced once in four runs.
    for o in [
        Observation::Clean,
        Observation::Clean,
        Observation::Clean,
        Observation::Reproduced,
    ] {
        b.observe(bad, &o);
    }
    assert_eq!(b.rate(), Some(0.25));
    // Its twin builds the same kernel and takes the reproduction: it is new, and the rate is
    // still the bad end's one in four, not two in five.
    b.observe_taken(twin, &Observation::Reproduced);
    assert_eq!(b.state(twin), State::New);
    assert_eq!(b.rate(), Some(0.25));
    // The same reproduction run at the twin itself is a second sample.
    b.observe(twin, &Observation::Reproduced);
    assert_eq!(b.rate(), Some(2.0 / 5.0));
}
