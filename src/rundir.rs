//! Run directories: every run, verify side, bisect step and nightly cell gets a directory of its
//! own that did not exist before, private to the user who runs repro (0700 whatever the umask:
//! it holds the guest's QMP and network sockets). Nothing here ever writes into a directory it did
//! not create, so an earlier run's evidence is never overwritten.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory created for one run (absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir(PathBuf);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{} already exists: repro never reuses a directory, so that an earlier run's files stay as they were; name a new one",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot create the directory {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How many suffixed names [`RunDir::create_unique`] tries before it gives up.
const MAX_SUFFIX: u32 = 10_000;

impl RunDir {
    /// Creates `path` (and its missing parents) as a new directory, mode 0700. An existing path
    /// is refused, empty or not.
    pub fn create(path: &Path) -> Result<RunDir, Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Create {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists(path.to_path_buf())),
            Err(source) => {
                return Err(Error::Create {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let create = |source| Error::Create {
            path: path.to_path_buf(),
            source,
        };
        // The umask can only take bits away from 0700; set it anyway, so that the mode is exact.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(create)?;
        let abs = path.canonicalize().map_err(create)?;
        Ok(RunDir(abs))
    }

    /// Creates `base`, or else `base-2`, `base-3`, ...: the first name nobody has taken. Two
    /// runs started in the same second, or a bisect step tried again after a kill, each get
    /// their own.
    pub fn create_unique(base: &Path) -> Result<RunDir, Error> {
        let mut last = None;
        for candidate in names(base) {
            match RunDir::create(&candidate) {
                Err(Error::Exists(p)) => last = Some(p),
                other => return other,
            }
        }
        Err(Error::Exists(last.unwrap_or_else(|| base.to_path_buf())))
    }

    /// The name [`RunDir::create_unique`] would take for `base` now.
    pub fn next_free(base: &Path) -> PathBuf {
        names(base)
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| base.to_path_buf())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

/// `base`, then `base-2`, `base-3`, ... up to [`MAX_SUFFIX`]: the names a run may take.
fn names(base: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    (1..=MAX_SUFFIX).map(move |n| match n {
        1 => base.to_path_buf(),
        n => {
            let mut name = base.file_name().unwrap_or_default().to_os_string();
            name.push(format!("-{n}"));
            base.with_file_name(name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("run");
        RunDir::create(&d).unwrap();
        std::fs::write(d.join("report.json"), "earlier").unwrap();
        let err = RunDir::create(&d).unwrap_err();
        assert!(matches!(err, Error::Exists(_)), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(d.join("report.json")).unwrap(), "earlier");
    }

    #[test]
    fn unique_names_get_a_suffix_and_parents_are_made() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("a/b/20261201-111111-x86_64");
        let first = RunDir::create_unique(&base).unwrap();
        let second = RunDir::create_unique(&base).unwrap();
        let third = RunDir::create_unique(&base).unwrap();
        assert_eq!(first.path().file_name().unwrap(), "20261201-111111-x86_64");
        assert_eq!(second.path().file_name().unwrap(), "20261201-111111-x86_64-2");
        assert_eq!(third.path().file_name().unwrap(), "20261201-111111-x86_64-3");
        assert!(first.path().is_absolute());
    }

    #[test]
    fn the_directory_is_private_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        // SAFETY: umask is process-wide; this test restores it, and the only other effect is
        // on files created meanwhile by other tests, which set their own modes or do not care.
        let old = unsafe { libc::umask(0) };
        let d = RunDir::create(&t.path().join("open"));
        unsafe { libc::umask(old) };
        assert_eq!(mode(d.unwrap().path()), 0o700);
    }
}
