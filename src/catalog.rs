//! A project's definitions by name: scenarios read, parsed and checked against the kernels and
//! images the project defines. What the CLI and the drivers load scenarios through.

use crate::def::diag::Diagnostic;
use crate::def::load::{self, Roots};
use crate::scenario::{self, Scenario};
use crate::{image, kernel};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] load::Error),
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Invalid(Box::new(d))
    }
}

/// The definitions under one project root.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub roots: Roots,
}

impl Catalog {
    pub fn new(roots: Roots) -> Self {
        Catalog { roots }
    }

    /// A scenario by name (a file stem in `scenarios/`) or path.
    pub fn scenario(&self, arg: &str) -> Result<Scenario, Error> {
        let path = load::resolve(&self.roots.scenarios, "scenario", arg)?;
        self.scenario_file(&path)
    }

    /// The scenario in `path`: read, parsed, and its directories checked.
    pub fn scenario_file(&self, path: &Path) -> Result<Scenario, Error> {
        let text = load::read(path)?;
        let s = scenario::parse(path, &text, &self.kernel_names(), &self.image_names())?;
        load::check(&s.needs_dirs)?;
        Ok(s)
    }

    /// Every scenario file, in name order, each loaded or with its error.
    pub fn scenarios(&self) -> std::io::Result<Vec<(std::path::PathBuf, Result<Scenario, Error>)>> {
        let files = load::list_files(&self.roots.scenarios)?;
        Ok(files
            .into_iter()
            .map(|f| {
                let s = self.scenario_file(&f);
                (f, s)
            })
            .collect())
    }

    pub fn kernel_names(&self) -> Vec<String> {
        kernel::names(&self.roots.kernels)
    }

    pub fn image_names(&self) -> Vec<String> {
        image::names(&self.roots.images)
    }
}
