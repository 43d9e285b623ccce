//! `repro bisect`: parse the request, open or start the record, and drive the search of
//! [`crate::bisect::driver`] with real builds and runs.

use super::exit::{Done, Failure};
use super::load::{new_dir, scenario_for_run, timestamp};
use super::signals::cancel_on_ctrl_c;
use super::ui::Terminal;
use crate::arch::Arch;
use crate::bisect::driver::{self, BisectResult, Ended, Event, Job};
use crate::bisect::log::{self, Record};
use crate::bisect::plan::{self, Request};
use crate::bisect::{debian, OtherCrash};
use crate::def::load::Roots;
use crate::scenario::Overrides;
use crate::tester::Live;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct BisectArgs {
    /// A scenario name or path.
    pub scenario: String,
    /// A revision where the crash does not happen (repeatable).
    #[arg(long)]
    pub good: Vec<String>,
    /// A revision where the crash happens.
    #[arg(long)]
    pub bad: Option<String>,
    /// The git repository to walk [default: the module's source, or the kernel's git source].
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Find the commit that fixed the crash: --bad is the older revision that crashes, --good
    /// the newer one that does not.
    #[arg(long)]
    pub fix: bool,
    /// Bisect this kernel definition (kind source), built from the repository at each step.
    #[arg(long, conflicts_with = "module")]
    pub kernel: Option<String>,
    /// Bisect this `[[module]]` of the scenario (default when it has one with a `rev`).
    #[arg(long)]
    pub module: Option<String>,
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Wanted probability that the answer is right.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Most runs of one commit.
    #[arg(long, default_value_t = 30)]
    pub max_runs: u32,
    /// Runs of the crashing end, to measure the reproduction rate.
    #[arg(long, default_value_t = 6)]
    pub calibrate: u32,
    /// What a crash other than the expected one means for a commit.
    #[arg(long, value_enum, default_value = "skip")]
    pub other_crash: OtherCrash,
    /// Infrastructure errors tolerated per commit before the bisect stops.
    #[arg(long, default_value_t = 2)]
    pub infra_retries: u32,
    /// The bisect directory [default: runs/<scenario>/bisect-<time>; with --resume or --log,
    /// the newest one].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Continue the bisect in --dir (or the newest one of the scenario).
    #[arg(long)]
    pub resume: bool,
    /// Print the log of the bisect in --dir (or the newest one) in `git bisect log` style.
    #[arg(long, conflicts_with = "resume")]
    pub log: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Bisect the Debian archive's released cloud kernels from FROM to TO (ABIs or upstream
    /// versions: `6.1.0-47..6.1.0-57`, `6.1.170..6.1.192`) instead of commits: each step boots
    /// a package, nothing is compiled. Without --fix FROM is good; with --fix FROM crashes.
    #[arg(long, value_name = "FROM..TO", conflicts_with_all = ["good", "bad", "repo", "kernel", "module", "paths"])]
    pub debian: Option<String>,
    /// Report a found kernel commit without first building the reproducing end with it
    /// reverted and running that (the confirmation KernelCI does).
    #[arg(long)]
    pub no_confirm: bool,
    /// Only commits touching these paths are candidates.
    #[arg(last = true)]
    pub paths: Vec<String>,
}

fn request(a: &BisectArgs) -> Request {
    Request {
        good: a.good.clone(),
        bad: a.bad.clone(),
        repo: a.repo.clone(),
        fix: a.fix,
        kernel: a.kernel.clone(),
        module: a.module.clone(),
        arch: a.arch,
        confidence: a.confidence,
        max_runs: a.max_runs,
        calibrate: a.calibrate,
        other_crash: a.other_crash,
        infra_retries: a.infra_retries,
        paths: a.paths.clone(),
        debian: a.debian.clone(),
        confirm: !a.no_confirm,
    }
}

pub async fn bisect(roots: &Roots, a: BisectArgs) -> Result<Done, Failure> {
    let overrides = Overrides {
        arch: a.arch,
        kernel: a.kernel.clone(),
        ..Default::default()
    };
    let mut s = scenario_for_run(roots, &a.scenario, &overrides, None)?;
    let base = PathBuf::from("runs").join(&s.name);
    let existing = a.resume || a.log;
    let dir = match (&a.dir, existing) {
        (Some(d), _) => d.clone(),
        (None, true) => plan::newest(&base)
            .ok_or_else(|| Failure::Usage(format!("no bisect of `{}` under {}", s.name, base.display())))?,
        (None, false) => base.join(format!("bisect-{}", timestamp())),
    };
    let record = match existing {
        true => Record::load(&dir),
        false => plan::new_record(roots, &s, &request(&a)),
    }
    .map_err(Failure::Usage)?;
    let (repo, search) = plan::open(&record).map_err(Failure::Usage)?;
    if a.log {
        print!("{}", log::render(&record, &search));
        return Ok(Done::Ok);
    }
    // A new bisect gets a new directory; --resume continues in the one it names.
    let dir = match existing {
        true => dir,
        false => new_dir(a.dir.clone(), || dir)?.path().to_path_buf(),
    };
    record
        .save(&dir)
        .map_err(|e| Failure::CannotTest(format!("cannot write {}: {e}", dir.display())))?;
    if let (Some(arch), None) = (record.arch, a.arch) {
        s.apply(&Overrides {
            arch: Some(arch),
            ..Default::default()
        });
    }
    let tester = Live {
        roots: roots.clone(),
        vmcore: false,
        ui: Arc::new(Terminal { runs: false }),
    };
    let job = Job {
        scenario: &s,
        record,
        bisect: search,
        dir: &dir,
        repo: repo.as_ref(),
    };
    let mut result = driver::bisect(&tester, job, cancel_on_ctrl_c(), &show)
        .await
        .map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?;
    if result.target.kind == debian::KIND {
        packages_answer(&mut result, &s, &dir);
    }
    match a.json {
        true => println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default()),
        false => summary(&result),
    }
    Ok(Done::Bisect(Box::new(result)))
}

/// For a bisect of packages that found one: the changelog between it and the package before
/// it, kept in the result (and result.json). A changelog that cannot be read is a warning: the
/// answer stands without it.
fn packages_answer(result: &mut BisectResult, s: &crate::scenario::Scenario, dir: &std::path::Path) {
    let Some(found) = &result.commit else { return };
    let arch = s.nodes[0].arch;
    let all = match crate::kernel::available() {
        Ok(a) => a,
        Err(e) => return eprintln!("warning: no changelog: {}", crate::errors::chain(&e)),
    };
    let list: Vec<&crate::archive::Package> = all.iter().filter(|p| p.arch == arch).collect();
    let Some(at) = list.iter().position(|p| p.name == found.id).filter(|&i| i > 0) else {
        return;
    };
    let (package, previous) = (list[at], list[at - 1]);
    let text = match crate::kernel::changelog(package, &|m| eprintln!("{m}")) {
        Ok(t) => t,
        Err(e) => return eprintln!("warning: no changelog: {}", crate::errors::chain(&e)),
    };
    let words = debian::words(&s.expect.frames, s.expect.title.as_deref());
    match debian::answer(package, previous, &text, &words, dir) {
        Ok(a) => {
            result.debian = Some(a);
            let text = serde_json::to_string_pretty(&*result).unwrap_or_default();
            let _ = std::fs::write(dir.join(driver::RESULT), format!("{text}\n"));
        }
        Err(e) => eprintln!("warning: cannot write {}: {e}", dir.join("changelog.txt").display()),
    }
}

/// The loop's progress, on stderr.
fn show(e: &Event) {
    match e {
        Event::Started {
            target,
            commits,
            fix,
            record,
        } => eprintln!(
            "bisecting {} {} in {} ({commits} {} in range{}); record: {}",
            target.kind,
            target.name,
            target.repo,
            if target.kind == debian::KIND {
                "packages"
            } else {
                "commits"
            },
            if *fix { ", looking for the fix" } else { "" },
            record.display()
        ),
        Event::Testing {
            elapsed,
            short,
            subject,
            left,
            runs_needed,
            rate,
        } => eprintln!(
            "[{elapsed:>6.0}s] {short} {subject} — {left} commit(s) in question, clean needs {runs_needed} run(s){}",
            rate.map_or(String::new(), |p| format!(", reproduction rate {p:.2}"))
        ),
        Event::Tested { short, shown, seconds } => eprintln!("          {short}: {shown} ({seconds:.0}s)"),
        Event::Confirming { short } => eprintln!("confirming {short}: the reproducing end with it reverted"),
    }
}

fn ended_word(e: Ended) -> &'static str {
    match e {
        Ended::Found => "found",
        Ended::Unconfirmed => "found, not confirmed",
        Ended::Ambiguous => "ambiguous",
        Ended::Stopped => "stopped",
        Ended::Interrupted => "interrupted",
    }
}

fn summary(o: &BisectResult) {
    println!("bisect {}: {}", o.scenario, ended_word(o.outcome));
    let thing = if o.target.kind == debian::KIND {
        "package"
    } else {
        "commit"
    };
    let word = if o.fix {
        format!("first fixed {thing}")
    } else {
        format!("first bad {thing}")
    };
    let word = match o.outcome {
        Ended::Unconfirmed => format!("{word} (a candidate: not confirmed)"),
        _ => word,
    };
    if let Some(c) = &o.commit {
        println!("  {word}: {} {}", c.id, c.subject);
        if !c.author.is_empty() {
            println!("    author {}, {}", c.author, c.date);
        }
    }
    if let Some(c) = &o.confirmation {
        let status = match c.status {
            crate::bisect::confirm::Status::Confirmed => "confirmed",
            crate::bisect::confirm::Status::NotConfirmed => "NOT confirmed",
            crate::bisect::confirm::Status::Untested => "not confirmed (could not test)",
        };
        println!(
            "  {status}: {}{}",
            c.why,
            c.confidence.map_or(String::new(), |p| format!(" (confidence {p:.3})"))
        );
    }
    if let Some(d) = &o.debian {
        let side = if o.fix { "still crashes" } else { "last good" };
        println!("  {side}: {} {}", d.previous.name, debian::subject(&d.previous));
        println!(
            "  upstream {}: {} changelog entr{} between them ({})",
            d.upstream_range,
            d.entries.len(),
            if d.entries.len() == 1 { "y" } else { "ies" },
            d.changelog_file
        );
        for c in &d.stable_changelogs {
            println!("    {c}");
        }
        for m in d.mentioning.iter().take(20) {
            println!("    mentions the crash: {m}");
        }
    }
    for c in &o.candidates {
        println!("  possible: {} {}", c.id, c.subject);
    }
    if let Some(r) = &o.reason {
        println!("  reason: {r}");
    }
    println!(
        "  confidence {:.3} (reproduction rate {}; a clean verdict needs {} run(s))",
        o.confidence,
        o.reproduction_rate.map_or("unknown".into(), |p| format!("{p:.2}")),
        o.runs_needed_for_clean
    );
    println!(
        "  {} run(s) on {} of {} commit(s) in {:.0}s{}",
        o.runs,
        o.commits_tested,
        o.range,
        o.seconds,
        match o.same_kernel_tests {
            0 => String::new(),
            n => format!("; {n} test(s) not run: the same kernel image as a commit already run"),
        }
    );
    for c in &o.commits {
        println!(
            "    {:<8} {} {:>2} run(s) {:>2} reproduced{}{}{}  {}",
            c.verdict,
            crate::bisect::graph::short(&c.id),
            c.tally.runs,
            c.tally.reproduced,
            match c.tally.same_kernel_reproduced + c.tally.same_kernel_clean {
                0 => String::new(),
                n => format!(" ({n} from the same kernel image)"),
            },
            if c.tally.other > 0 {
                format!(", {} other crash(es)", c.tally.other)
            } else {
                String::new()
            },
            if c.tally.build_failed { ", does not build" } else { "" },
            c.subject
        );
    }
    println!("  log: repro bisect {} --log --dir {}", o.scenario, o.dir);
}
