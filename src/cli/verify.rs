//! `repro verify SCENARIO --set NAME --runs N`.

use super::{err, exit, progress, scenario_for_run, signals};
use crate::arch::Arch;
use crate::def::load::Roots;
use crate::run;
use crate::scenario::{Overrides, Scenario};
use crate::verify::{conclude, Tally};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Serialize)]
struct RunLine {
    side: &'static str,
    index: u32,
    verdict: &'static str,
    crash: Option<String>,
    seconds: f64,
    run_dir: String,
}

#[derive(Serialize)]
struct Output {
    scenario: String,
    set: String,
    runs_per_side: u32,
    base: Tally,
    patched: Tally,
    conclusion: crate::verify::Conclusion,
    runs: Vec<RunLine>,
    dir: String,
}

/// Builds every node's kernel for `s` up front, so a build failure ends the verification at once
/// (as inconclusive) instead of costing N runs.
async fn build_kernels(roots: &Roots, s: &Scenario) -> Result<(), String> {
    for n in &s.nodes {
        let (roots, s2, n2) = (roots.clone(), s.clone(), n.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let d = run::node_kernel(&roots, &s2, &n2).map_err(|e| crate::errors::chain(&*e))?;
            let ui = super::build::BuildUi::new(&format!("{} {}", d.name, n2.arch));
            let r = d.build(n2.arch, &|e| ui.on(e)).map_err(|e| crate::errors::chain(&e));
            ui.finish();
            r.map(|_| ())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

pub async fn verify_cmd(
    roots: &Roots,
    name: &str,
    set: &str,
    runs: u32,
    arch: Option<Arch>,
    json: bool,
    vars: Vec<String>,
) -> i32 {
    if runs == 0 {
        err("--runs must be at least 1");
        return exit::USAGE;
    }
    let o = Overrides {
        arch,
        vars,
        ..Default::default()
    };
    let base = match scenario_for_run(roots, name, &o, None) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let patched = match scenario_for_run(roots, name, &o, Some(set)) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let arch_s = base.nodes.first().map_or("x", |n| n.arch.as_str());
    let dir = PathBuf::from("runs")
        .join(&base.name)
        .join(format!("verify-{}-{set}-{arch_s}", progress::timestamp()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        err(format!("cannot create {}: {e}", dir.display()));
        return exit::CANNOT_TEST;
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    tokio::spawn(signals(cancel_tx));

    let mut tb = Tally::default();
    let mut tp = Tally::default();
    let mut lines = Vec::new();
    for (side, s) in [("base", &base), ("patched", &patched)] {
        if let Err(e) = build_kernels(roots, s).await {
            err(format!("building the {side} kernel: {e}"));
            let t = if side == "base" { &mut tb } else { &mut tp };
            for _ in 0..runs {
                t.add(run::verdict::Verdict::InfraError);
            }
            continue;
        }
        for i in 1..=runs {
            if *cancel.borrow() {
                return exit::INTERRUPTED;
            }
            let run_dir = dir.join(format!("{side}-{i}"));
            let _ = std::fs::create_dir_all(&run_dir);
            let (ptx, prx) = tokio::sync::mpsc::unbounded_channel();
            let ui = tokio::spawn(progress::drive(prx, format!("{} [{side} {i}/{runs}]", s.name)));
            let r = run::run(run::Options {
                scenario: s.clone(),
                roots: roots.clone(),
                run_dir: run_dir.clone(),
                progress: ptx,
                cancel: cancel.clone(),
                vmcore: false,
                keep_disks: false,
            })
            .await;
            let _ = ui.await;
            if *cancel.borrow() {
                return exit::INTERRUPTED;
            }
            let t = if side == "base" { &mut tb } else { &mut tp };
            t.add(r.verdict);
            let line = RunLine {
                side,
                index: i,
                verdict: r.verdict.as_str(),
                crash: r.crash.as_ref().map(|c| c.title.clone()),
                seconds: r.timings.total,
                run_dir: run_dir.display().to_string(),
            };
            eprintln!(
                "{side} {i}/{runs}: {}{} ({:.1}s)",
                line.verdict,
                line.crash.as_deref().map(|c| format!(": {c}")).unwrap_or_default(),
                line.seconds
            );
            lines.push(line);
            // One reproduction on the patched kernel settles it.
            if side == "patched" && tp.reproduced > 0 {
                break;
            }
        }
    }
    let c = conclude(&tb, &tp);
    let out = Output {
        scenario: base.name.clone(),
        set: set.to_string(),
        runs_per_side: runs,
        base: tb,
        patched: tp,
        conclusion: c.clone(),
        runs: lines,
        dir: dir.display().to_string(),
    };
    let text = serde_json::to_string_pretty(&out).unwrap_or_default();
    let _ = std::fs::write(dir.join("verify.json"), &text);
    if json {
        println!("{text}");
    } else {
        println!("{} --set {set}: {}", base.name, c.outcome.as_str());
        println!(
            "  base:    reproduced {}/{} (not {}, other crash {}, infra {})",
            tb.reproduced, tb.runs, tb.not_reproduced, tb.crashed_differently, tb.infra_error
        );
        println!(
            "  patched: reproduced {}/{} (not {}, other crash {}, infra {})",
            tp.reproduced, tp.runs, tp.not_reproduced, tp.crashed_differently, tp.infra_error
        );
        if let Some(conf) = c.confidence {
            println!("  confidence: {conf:.3}");
        }
        println!("  {}", c.reason);
        println!("  dir: {}", dir.display());
    }
    c.outcome.exit_code()
}
