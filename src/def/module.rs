//! An out-of-tree kernel module, as a scenario's `[[module]]` declares it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The `.ko` name (`obj-m := <name>.o`).
    pub name: String,
    /// A directory with a Kbuild/Makefile, or a git repository when `rev` is set.
    pub source: PathBuf,
    /// A revision of the git repository at `source`; without it, the directory's files as they are.
    pub rev: Option<String>,
}
