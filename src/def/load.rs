//! The definition loader: the only part of `def` that touches the file system. It finds
//! definition files under a project root, reads them, and checks the paths a parsed definition
//! needs (so the parsers themselves stay pure).

use super::diag::{Diagnostic, NeedsDir};
use std::path::{Path, PathBuf};

/// Where a project's definitions live.
#[derive(Debug, Clone)]
pub struct Roots {
    pub scenarios: PathBuf,
    pub kernels: PathBuf,
    pub images: PathBuf,
}

impl Roots {
    pub fn at(root: &Path) -> Self {
        Roots {
            scenarios: root.join("scenarios"),
            kernels: root.join("kernels"),
            images: root.join("images"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {what} named `{name}` in {}", dir.display())]
    NotFound {
        what: &'static str,
        name: String,
        dir: PathBuf,
    },
}

/// A definition file's text, with its path.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The first directory in `needs` that does not exist, as its diagnostic.
pub fn check(needs: &[NeedsDir]) -> Result<(), Diagnostic> {
    match needs.iter().find(|n| !n.path.is_dir()) {
        Some(n) => Err(n.diagnostic.clone()),
        None => Ok(()),
    }
}

/// Resolves a command-line argument naming a `what` (scenario, ...): a path to a `.toml` file,
/// or a file stem in `dir`.
pub fn resolve(dir: &Path, what: &'static str, arg: &str) -> Result<PathBuf, Error> {
    let p = Path::new(arg);
    if arg.ends_with(".toml") || p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    let candidate = dir.join(format!("{arg}.toml"));
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Error::NotFound {
            what,
            name: arg.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The `.toml` files directly inside `dir`, sorted by name (the stem: `a.toml` before
/// `a-b.toml`, which a sort of whole paths would reverse).
pub fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort_by(|a, b| a.file_stem().cmp(&b.file_stem()));
    Ok(v)
}

/// The file stems of the definitions in `dir` (no parsing).
pub fn names(dir: &Path) -> Vec<String> {
    list_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_takes_names_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "").unwrap();
        assert_eq!(resolve(dir.path(), "scenario", "a").unwrap(), dir.path().join("a.toml"));
        assert_eq!(
            resolve(dir.path(), "scenario", "x/b.toml").unwrap(),
            PathBuf::from("x/b.toml")
        );
        let e = resolve(dir.path(), "scenario", "b").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no scenario named `b` in {}", dir.path().display())
        );
    }

    #[test]
    fn lists_sort_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["seed-002-xfs.toml", "seed-002-xfs-trace.toml", "notes.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        assert_eq!(names(dir.path()), vec!["seed-002-xfs", "seed-002-xfs-trace"]);
    }
}
