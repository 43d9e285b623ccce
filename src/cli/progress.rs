//! Progress on stderr: an indicatif spinner per phase on a terminal, plain lines otherwise.

use crate::report::RunReport;
use crate::run::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub async fn drive(mut rx: mpsc::UnboundedReceiver<Progress>, scenario: String) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut bar: Option<(Phase, ProgressBar)> = None;
    let mut last_detail = Instant::now();
    let style = ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    if !tty {
        eprintln!("[{:6.1}s] run {scenario}", 0.0);
    }
    while let Some(p) = rx.recv().await {
        let t = start.elapsed().as_secs_f64();
        match p {
            Progress::Phase { phase, detail } => {
                if tty {
                    if let Some((_, b)) = bar.take() {
                        b.finish();
                    }
                    let b = ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(phase.as_str())
                        .with_message(detail);
                    b.enable_steady_tick(Duration::from_millis(100));
                    bar = Some((phase, b));
                } else {
                    eprintln!("[{t:6.1}s] {}: {detail}", phase.as_str());
                }
            }
            Progress::PhaseDone { phase, elapsed } => {
                if tty {
                    if let Some((p, b)) = bar.take() {
                        if p == phase {
                            b.finish_with_message(format!("done in {:.1}s", elapsed.as_secs_f64()));
                        } else {
                            bar = Some((p, b));
                        }
                    }
                } else {
                    eprintln!("[{t:6.1}s] {} done in {:.1}s", phase.as_str(), elapsed.as_secs_f64());
                }
            }
            Progress::Detail(m) => match &bar {
                Some((_, b)) if tty => b.set_message(m),
                _ => {
                    if last_detail.elapsed() >= Duration::from_secs(20) {
                        last_detail = Instant::now();
                        eprintln!("[{t:6.1}s]   ... {m}");
                    }
                }
            },
            Progress::Note(m) => match &bar {
                Some((_, b)) if tty => b.println(format!("  {m}")),
                _ => eprintln!("[{t:6.1}s]   {m}"),
            },
        }
    }
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
}

pub fn summary(r: &RunReport) {
    println!("{}: {}", r.scenario, r.verdict.as_str());
    if let Some(c) = &r.crash {
        println!("  crash: {}", c.title);
        // Where it happened, from debug info (when the kernel has a vmlinux).
        // The frame the title names, else the faulting instruction, else the first reliable one.
        let named = c.frames.iter().find(|f| {
            let base = f.function.split('.').next().unwrap_or("");
            !f.source.is_empty() && c.title.ends_with(&format!(" in {base}"))
        });
        let at = named.or_else(|| {
            c.faulting_frame
                .iter()
                .chain(c.frames.iter().filter(|f| f.reliable))
                .find(|f| !f.source.is_empty())
        });
        if let Some(f) = at {
            for l in crate::symbolize::describe(f) {
                println!("    {l}");
            }
        }
    }
    println!("  reason: {}", r.reason.lines().next().unwrap_or(""));
    for l in r.reason.lines().skip(1) {
        println!("    {l}");
    }
    for lost in &r.evidence_lost {
        eprintln!("warning: evidence lost: {lost}");
    }
    if let Some(k) = &r.kernel {
        println!(
            "  kernel: {} {} ({}) on {} {}",
            k.name,
            k.release.as_deref().unwrap_or("?"),
            k.origin,
            r.arch,
            r.accel.map_or("-".to_string(), |a| a.to_string())
        );
    }
    let t = &r.timings;
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}s"));
    let cut = if t.power_cut_to_ssh.is_some() || t.check.is_some() {
        format!(" power-cut-to-ssh {} check {}", f(t.power_cut_to_ssh), f(t.check))
    } else {
        String::new()
    };
    let setup = t.setup.map_or(String::new(), |s| format!(" setup {s:.1}s"));
    println!(
        "  timings: image {} boot-to-ssh {}{setup} workload {}{cut} detection {} total {:.1}s",
        f(t.image),
        f(t.boot_to_ssh),
        f(t.workload),
        f(t.detection),
        t.total
    );
    println!("  run dir: {}", r.run_dir);
}
