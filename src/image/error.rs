//! What can go wrong with images.

use crate::cache;
use crate::def::diag::Diagnostic;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("no image named `{name}` in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("cannot run `{command}` (is it installed?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); see {}", log.display())]
    Tool {
        command: String,
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("image I/O on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image has no {what} at {}", path.display())]
    Layout { what: &'static str, path: PathBuf },
    #[error(transparent)]
    Cache(#[from] cache::Error),
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
