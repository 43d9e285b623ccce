//! `repro new NAME --from-log FILE`: a scenario drafted from a crash log.

use super::exit::{Done, Failure};
use crate::arch::Arch;
use crate::def::load::Roots;
use crate::draft::{self, Input};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The scenario's name: writes scenarios/NAME.toml (never over an existing file).
    pub name: String,
    /// A console log, dmesg, crash(8) `log` output, or a mail or bug report with the oops
    /// pasted in.
    #[arg(long = "from-log", value_name = "FILE")]
    pub from_log: PathBuf,
    /// Boot this kernel instead of the log's (required when the archive does not have it).
    #[arg(long)]
    pub kernel: Option<String>,
    /// The arch, when the log does not tell.
    #[arg(long)]
    pub arch: Option<Arch>,
    #[arg(long, default_value = "debian-bookworm")]
    pub image: String,
}

pub fn new(roots: &Roots, a: NewArgs) -> Result<Done, Failure> {
    if !crate::def::name::is_name(&a.name) {
        return Err(Failure::Usage(crate::def::name::rule("scenario", &a.name)));
    }
    let path = roots.scenarios.join(format!("{}.toml", a.name));
    if path.exists() {
        return Err(Failure::Usage(format!(
            "{} exists; repro new never overwrites a scenario (pick another NAME)",
            path.display()
        )));
    }
    let bytes =
        std::fs::read(&a.from_log).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", a.from_log.display())))?;
    let log = String::from_utf8_lossy(&bytes);
    let reports = repro_oops::parse_any(&bytes);
    let catalog = crate::catalog::Catalog::new(roots.clone());
    if let Some(k) = &a.kernel {
        crate::archive::known_kernel(k, &catalog.kernel_names())
            .map_err(|why| Failure::Usage(format!("--kernel: {why}")))?;
    }
    // The archive is only needed to pin the log's own kernel.
    let archive = match &a.kernel {
        Some(_) => Vec::new(),
        None => crate::kernel::available().map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?,
    };
    let log_name = a.from_log.display().to_string();
    let input = Input {
        name: &a.name,
        log_name: &log_name,
        log: &log,
        reports: &reports,
        kernel: a.kernel.as_deref(),
        arch: a.arch,
        archive: &archive,
        image: &a.image,
    };
    let d = draft::draft(&input).map_err(|e| Failure::Usage(e.to_string()))?;
    write_new(&path, &d.toml)?;
    // What was written must load: a draft `repro check` rejects is a bug in repro new.
    if let Err(e) = catalog.scenario_file(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(Failure::CannotTest(format!(
            "repro new wrote a scenario that does not check (a bug; removed): {}",
            crate::errors::chain(&e)
        )));
    }
    println!("wrote {}", path.display());
    for n in &d.notes {
        println!("  {n}");
    }
    println!(
        "next: write the workload in {} (then delete `placeholder`), and `repro run {}`",
        path.display(),
        a.name
    );
    Ok(Done::Ok)
}

/// Creates `path` with `text`; an existing file is never replaced.
fn write_new(path: &std::path::Path, text: &str) -> Result<(), Failure> {
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    made.map_err(|e| Failure::Usage(format!("cannot create {}: {e}", path.display())))
}
