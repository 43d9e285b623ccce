//! The bisect's durable record (`bisect.json`, rewritten atomically after every test) and its
//! rendering in the style of `git bisect log`.

use super::{Bisect, Next, Observation, Params, State};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "bisect.json";

/// What is bisected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    /// `kernel` or `module`.
    pub kind: String,
    /// The kernel definition or module name.
    pub name: String,
    /// The repository walked.
    pub repo: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub commit: String,
    #[serde(flatten)]
    pub outcome: Observation,
    pub run_dir: Option<String>,
    pub seconds: f64,
    /// The SHA-256 of the kernels the commit built (every node's image and modules), when the
    /// tester gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Not a run: the commit built the very kernels of this other commit, and takes what one
    /// of its runs showed (`run_dir` is that run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
}

impl Attempt {
    /// Counts this test of commit `i` in `b`: as a run, or as one taken from another commit.
    pub fn count(&self, b: &mut Bisect, i: usize) {
        match self.same_as {
            Some(_) => b.observe_taken(i, &self.outcome),
            None => b.observe(i, &self.outcome),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub scenario: String,
    pub arch: Option<crate::arch::Arch>,
    pub target: Target,
    /// Resolved commit ids of the ends as the user named them (`--bad`, `--good`).
    pub bad: String,
    pub good: Vec<String>,
    pub paths: Vec<String>,
    pub params: Params,
    pub started_at: u64,
    pub steps: Vec<Attempt>,
}

impl Record {
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{FILE}.tmp"));
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json + "\n")?;
        std::fs::rename(&tmp, dir.join(FILE))
    }

    pub fn load(dir: &Path) -> Result<Self, String> {
        let p = dir.join(FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let record: Record = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        record.check().map_err(|why| {
            format!(
                "{}: {why} (the file was edited or cut short; start a new bisect)",
                p.display()
            )
        })?;
        Ok(record)
    }

    /// What a record read back must hold before the bisect trusts it: both ends, commit ids,
    /// and parameters a new bisect would accept.
    fn check(&self) -> Result<(), String> {
        let package = self.target.kind == super::debian::KIND;
        let is_id = |s: &str| match package {
            true => matches!(crate::archive::Spec::of_name(s), Some(Ok(_))),
            false => s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        };
        if self.good.is_empty() {
            return Err("`good` is empty: a bisect needs at least one good commit".into());
        }
        if self.params.fix && self.good.len() > 1 {
            return Err("`good` holds more than one commit, but `params.fix` bisects from one".into());
        }
        if let Some(bad) = std::iter::once(&self.bad).chain(&self.good).find(|c| !is_id(c)) {
            let what = if package {
                "a `debian:` package name"
            } else {
                "a full commit id"
            };
            return Err(format!("`{bad}` in `good` or `bad` is not {what}"));
        }
        let p = &self.params;
        if !(0.5..1.0).contains(&p.confidence) {
            return Err("`params.confidence` must be at least 0.5 and below 1".into());
        }
        if p.max_runs == 0 || p.calibrate == 0 || p.calibrate > p.max_runs {
            return Err(
                "`params.max_runs` and `params.calibrate` must be at least 1, and `calibrate` at most `max_runs`"
                    .into(),
            );
        }
        Ok(())
    }

    /// The old and new ends in the bisect's terms.
    pub fn ends(&self) -> (Vec<String>, String) {
        if self.params.fix {
            (vec![self.bad.clone()], self.good[0].clone())
        } else {
            (self.good.clone(), self.bad.clone())
        }
    }

    /// Replays the steps into `b`.
    pub fn replay(&self, b: &mut Bisect) -> Result<(), String> {
        for s in &self.steps {
            let i = b
                .graph
                .index_of(&s.commit)
                .ok_or_else(|| format!("{FILE} names {} which is not in the range", s.commit))?;
            s.count(b, i);
        }
        Ok(())
    }
}

/// `git bisect log` style: comments with subjects, one `git bisect good|bad|skip` per decided
/// commit in the order it was decided, and the conclusion.
pub fn render(r: &Record, b: &Bisect) -> String {
    let g = &b.graph;
    let (bad_word, good_word) = ("bad", "good");
    let mut out = format!(
        "# repro bisect {} ({} {} in {}){}\n# confidence {:.3} wanted; reproduction rate {}\n",
        r.scenario,
        r.target.kind,
        r.target.name,
        r.target.repo,
        if r.params.fix {
            ", --fix: bad = still crashes, good = fixed"
        } else {
            ""
        },
        r.params.confidence,
        b.rate().map_or("unknown".to_string(), |p| format!("{p:.2}")),
    );
    out.push_str(&format!(
        "git bisect start '{}' {}{}\n",
        r.bad,
        r.good.iter().map(|g| format!("'{g}'")).collect::<Vec<_>>().join(" "),
        if r.paths.is_empty() {
            String::new()
        } else {
            format!(" -- {}", r.paths.join(" "))
        }
    ));
    // Replay step by step, writing a line when a commit's state becomes decided.
    let mut replay = Bisect::new(g.clone(), r.params.clone());
    let mut decided: Vec<Option<State>> = vec![None; g.len()];
    for s in &r.steps {
        let Some(i) = g.index_of(&s.commit) else { continue };
        s.count(&mut replay, i);
        let t = &replay.tallies[i];
        let what = s.outcome.describe();
        match s.same_as.as_deref().and_then(|c| g.index_of(c)) {
            Some(j) => out.push_str(&format!(
                "# no run {}: {what}, as {} showed (the same kernel image)\n",
                g.short(i),
                g.short(j)
            )),
            None => out.push_str(&format!("# run {}: {what} ({:.0}s)\n", g.short(i), s.seconds)),
        }
        let st = replay.state(i);
        if st != State::Pending && decided[i] != Some(st) {
            decided[i] = Some(st);
            let reproduces = t.reproduced > 0;
            let word = match st {
                State::Skip => "skip",
                _ if reproduces => bad_word,
                _ => good_word,
            };
            out.push_str(&format!(
                "# {word}: [{}] {} ({} run(s), {} reproduced)\ngit bisect {word} {}\n",
                g.ids[i], g.subjects[i], t.runs, t.reproduced, g.ids[i]
            ));
        }
    }
    match b.next() {
        Next::Found(i) => out.push_str(&format!(
            "# first {} commit: [{}] {}\n",
            if r.params.fix { "fixed" } else { "bad" },
            g.ids[i],
            g.subjects[i]
        )),
        Next::Ambiguous(v) => {
            out.push_str("# only skipped commits left to test; the first one is any of:\n");
            for i in v {
                out.push_str(&format!("# possible: [{}] {}\n", g.ids[i], g.subjects[i]));
            }
        }
        Next::Test(i) => out.push_str(&format!("# next: {} (not finished)\n", g.short(i))),
        Next::Stop(why) => out.push_str(&format!("# stopped: {why}\n")),
    }
    out
}
