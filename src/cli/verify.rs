//! `repro verify SCENARIO --set NAME --runs N`.

use super::exit::{Done, Failure};
use super::load::{new_dir, scenario_for_run, timestamp};
use super::signals::cancel_on_ctrl_c;
use super::ui::Terminal;
use crate::arch::Arch;
use crate::def::load::Roots;
use crate::scenario::Overrides;
use crate::tester::Live;
use crate::verify::driver::{self, Ended, Event, Job, Verification};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    pub scenario: String,
    /// The patch set (from the scenario's [patchsets]).
    #[arg(long)]
    pub set: String,
    /// Runs per kernel.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Run every node on this arch.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Set a variable the scenario declares in [vars] (NAME=VALUE; repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

pub async fn verify(roots: &Roots, a: VerifyArgs) -> Result<Done, Failure> {
    if a.runs == 0 {
        return Err(Failure::Usage("--runs must be at least 1".into()));
    }
    let overrides = Overrides {
        arch: a.arch,
        vars: a.vars,
        ..Default::default()
    };
    let base = scenario_for_run(roots, &a.scenario, &overrides, None)?;
    let patched = scenario_for_run(roots, &a.scenario, &overrides, Some(&a.set))?;
    let arch = base.nodes.first().map_or("x", |n| n.arch.as_str());
    let name = format!("verify-{}-{}-{arch}", timestamp(), a.set);
    let dir = new_dir(None, || PathBuf::from("runs").join(&base.name).join(name))?;
    let dir = dir.path();
    let tester = Live {
        roots: roots.clone(),
        vmcore: false,
        ui: Arc::new(Terminal { runs: true }),
    };
    let job = Job {
        base: &base,
        patched: &patched,
        set: &a.set,
        runs: a.runs,
        dir,
    };
    let ended = driver::verify(&tester, job, cancel_on_ctrl_c(), &show(a.runs))
        .await
        .map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?;
    if let Ended::Done(v) = &ended {
        match a.json {
            true => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            false => summary(v),
        }
    }
    Ok(Done::Verify(ended))
}

/// One line per build failure and per run, on stderr.
fn show(runs: u32) -> impl Fn(&Event) + Sync {
    move |e| match e {
        Event::BuildFailed { side, why } => eprintln!("error: building the {side} kernel: {why}"),
        Event::Ran(line) => eprintln!(
            "{} {}/{runs}: {}{} ({:.1}s)",
            line.side,
            line.index,
            line.verdict,
            line.crash.as_deref().map(|c| format!(": {c}")).unwrap_or_default(),
            line.seconds
        ),
    }
}

fn summary(v: &Verification) {
    let c = &v.conclusion;
    println!("{} --set {}: {}", v.scenario, v.set, c.outcome.as_str());
    for (side, t) in [("base:   ", &v.base), ("patched:", &v.patched)] {
        println!(
            "  {side} reproduced {}/{} (not {}, other crash {}, infra {})",
            t.reproduced, t.runs, t.not_reproduced, t.crashed_differently, t.infra_error
        );
    }
    if let Some(conf) = c.confidence {
        println!("  confidence: {conf:.3}");
    }
    println!("  {}", c.reason);
    println!("  dir: {}", v.dir);
}
