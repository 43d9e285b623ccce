//! `repro kernel build`: a spinner showing what make is doing (plain lines when not a tty).

use super::{blocking, err, exit, load_scenario, report_scenario_error};
use crate::arch::Arch;
use crate::def::load::Roots;
use crate::kernel::{self, build::Event};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shows build events: stages as lines, make output as the spinner's message (or a line every
/// 20 s without a terminal).
pub struct BuildUi {
    bar: Option<ProgressBar>,
    start: Instant,
    last: Mutex<Instant>,
}

impl BuildUi {
    pub fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner()
                .with_style(
                    ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                )
                .with_prefix(what.to_string());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        BuildUi {
            bar,
            start: Instant::now(),
            last: Mutex::new(Instant::now()),
        }
    }

    pub fn on(&self, e: Event) {
        let t = self.start.elapsed().as_secs_f64();
        match (e, &self.bar) {
            (Event::Stage(m), Some(b)) => b.println(format!("  {m}")),
            (Event::Stage(m), None) => eprintln!("[{t:6.1}s] {m}"),
            (Event::Line(l), Some(b)) => b.set_message(l.trim().to_string()),
            (Event::Line(l), None) => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(20) {
                    *last = Instant::now();
                    eprintln!("[{t:6.1}s]   ... {}", l.trim());
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub async fn kernel_build(roots: &Roots, name: &str, arch: Arch, set: Option<(&str, &str)>, json: bool) -> i32 {
    let mut def = match kernel::find(&roots.kernels, name) {
        Ok(d) => d,
        Err(kernel::Error::Invalid(d)) => {
            eprintln!("error: {d}");
            return exit::USAGE;
        }
        Err(e) => {
            err(crate::errors::chain(&e));
            return exit::USAGE;
        }
    };
    if let Some((scenario, set)) = set {
        let s = match load_scenario(roots, scenario) {
            Ok(s) => s,
            Err(e) => {
                report_scenario_error(&e);
                return exit::USAGE;
            }
        };
        let Some(ps) = s.patchsets.get(set) else {
            err(format!("scenario `{}` has no patch set `{set}`", s.name));
            return exit::USAGE;
        };
        def = match def.with_steps(set, &ps.steps) {
            Ok(d) => d,
            Err(e) => {
                err(e);
                return exit::USAGE;
            }
        };
    }
    let t0 = Instant::now();
    let label = format!("{} {arch}", def.name);
    let built = blocking(move || {
        let ui = BuildUi::new(&label);
        let r = def.build(arch, &|e| ui.on(e));
        ui.finish();
        r
    })
    .await;
    match built {
        Ok(a) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&a).unwrap_or_default());
            } else {
                println!(
                    "{} {} {} ({:.1}s)",
                    a.name,
                    a.arch,
                    a.origin,
                    t0.elapsed().as_secs_f64()
                );
                println!("release: {}", a.release.as_deref().unwrap_or("?"));
                println!("image: {}", a.image.display());
                if let Some(v) = &a.vmlinux {
                    println!("vmlinux: {}", v.display());
                }
                if let Some(m) = &a.modules {
                    println!("modules: {}", m.display());
                }
            }
            0
        }
        Err(code) => code,
    }
}
