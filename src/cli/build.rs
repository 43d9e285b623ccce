//! `repro kernel build`: a spinner showing what make is doing (plain lines when not a tty).

use super::defs::blocking;
use super::exit::{Done, Failure};
use crate::arch::Arch;
use crate::catalog::Catalog;
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

pub async fn kernel_build(
    roots: &Roots,
    name: &str,
    arch: Arch,
    set: Option<(&str, &str)>,
    debug_info: kernel::DebugInfo,
    json: bool,
) -> Result<Done, Failure> {
    let mut def = kernel::find(&roots.kernels, name).map_err(|e| match e {
        kernel::Error::Invalid(d) => Failure::Invalid(d),
        other => Failure::Usage(crate::errors::chain(&other)),
    })?;
    if let Some((scenario, set)) = set {
        let s = Catalog::new(roots.clone()).scenario(scenario)?;
        let Some(ps) = s.patchsets.get(set) else {
            return Err(Failure::Usage(format!(
                "scenario `{}` has no patch set `{set}`",
                s.name
            )));
        };
        def = def.with_steps(set, &ps.steps).map_err(Failure::Usage)?;
    }
    let def = def.with_debug_info(debug_info);
    let started = Instant::now();
    let label = format!("{} {arch}", def.name);
    let a = blocking(move || {
        let ui = BuildUi::new(&label);
        let built = def.build(arch, &|e| ui.on(e));
        ui.finish();
        built
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a).unwrap_or_default());
        return Ok(Done::Ok);
    }
    println!(
        "{} {} {} ({:.1}s)",
        a.name,
        a.arch,
        a.origin,
        started.elapsed().as_secs_f64()
    );
    println!("release: {}", a.release.as_deref().unwrap_or("?"));
    println!("image: {}", a.image.display());
    if let Some(v) = &a.vmlinux {
        println!("vmlinux: {}", v.display());
    }
    if let Some(g) = &a.gdb_scripts {
        println!("gdb scripts: {}", g.display());
    }
    if let Some(m) = &a.modules {
        println!("modules: {}", m.display());
    }
    Ok(Done::Ok)
}
