//! Loading what a command names: scenarios with the command line's overrides applied.

use super::exit::Failure;
use crate::catalog::Catalog;
use crate::def::load::Roots;
use crate::rundir::RunDir;
use crate::scenario::{Overrides, Scenario};
use std::path::PathBuf;

/// Loads a scenario and applies the command-line overrides and patch set.
pub fn scenario_for_run(roots: &Roots, name: &str, o: &Overrides, set: Option<&str>) -> Result<Scenario, Failure> {
    let catalog = Catalog::new(roots.clone());
    let mut s = catalog.scenario(name)?;
    if let Some(d) = s.workload.placeholder.clone() {
        return Err(Failure::Invalid(d));
    }
    if let Some(k) = &o.kernel {
        crate::archive::known_kernel(k, &catalog.kernel_names())
            .map_err(|why| Failure::Usage(format!("--kernel: {why}")))?;
    }
    s.apply(o);
    for v in &o.vars {
        s.set_var(v).map_err(|e| Failure::Usage(format!("--var: {e}")))?;
    }
    if let Some(set) = set {
        s.select_set(set).map_err(Failure::Usage)?;
    }
    Ok(s)
}

/// UTC `YYYYmmdd-HHMMSS` for directory names.
pub fn timestamp() -> String {
    crate::timefmt::compact(crate::timefmt::now())
}

/// A new directory for a command's results. One the user named (`--run-dir`, `--out`) must
/// not exist yet; the default name gets a suffix when it is taken.
pub fn new_dir(named: Option<PathBuf>, default: impl FnOnce() -> PathBuf) -> Result<RunDir, Failure> {
    let made = match named {
        Some(dir) => RunDir::create(&dir),
        None => RunDir::create_unique(&default()),
    };
    made.map_err(|e| match e {
        crate::rundir::Error::Exists(_) => Failure::Usage(e.to_string()),
        other => Failure::CannotTest(crate::errors::chain(&other)),
    })
}
