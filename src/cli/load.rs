//! Loading what a command names: scenarios with the command line's overrides applied.

use super::exit::Failure;
use crate::catalog::Catalog;
use crate::def::load::Roots;
use crate::scenario::{Overrides, Scenario};

/// Loads a scenario and applies the command-line overrides and patch set.
pub fn scenario_for_run(roots: &Roots, name: &str, o: &Overrides, set: Option<&str>) -> Result<Scenario, Failure> {
    let catalog = Catalog::new(roots.clone());
    let mut s = catalog.scenario(name)?;
    if let Some(k) = &o.kernel {
        if !catalog.kernel_names().contains(k) {
            return Err(Failure::Usage(format!(
                "--kernel: no kernel named `{k}` in {}",
                roots.kernels.display()
            )));
        }
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

/// Creates `dir` and gives it back absolute.
pub fn make_dir(dir: std::path::PathBuf) -> Result<std::path::PathBuf, Failure> {
    std::fs::create_dir_all(&dir).map_err(|e| Failure::CannotTest(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.canonicalize().unwrap_or(dir))
}
