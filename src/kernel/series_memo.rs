//! What a source tarball and a series of patch files resolve to in the tarball's git store (the
//! base commit, and the commit and tree the series makes of it), remembered in the store's
//! directory: a run whose kernel the cache holds built then opens no store (opening the linux
//! store and resolving the series took 25 ms of every run).
//!
//! Only tarballs and patch files: the store is named by the tarball's path, size and mtime, and
//! the memo by each step's file and bytes, so the answer cannot change under it. A revision (a
//! git source, a revert or cherry-pick of a commit) can move, and is resolved every time.
//!
//! The ids stay hex text here: the first use of libgit2 in a process (its global init) alone
//! costs 20 ms, and a memo that answers must not pay it.

use super::git::{Applied, Error, Origin};
use crate::def::patch::{PatchStep, RevertTarget};
use std::path::{Path, PathBuf};

/// The base commit and what the series made of it, as 40-digit hex ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub base: String,
    pub commit: String,
    pub tree: String,
}

impl Resolved {
    pub fn new(base: git2::Oid, applied: &Applied) -> Resolved {
        Resolved {
            base: base.to_string(),
            commit: applied.commit.to_string(),
            tree: applied.tree.to_string(),
        }
    }

    /// The tree id's 20 bytes.
    pub fn tree_bytes(&self) -> Vec<u8> {
        (0..self.tree.len() / 2)
            .filter_map(|i| u8::from_str_radix(&self.tree[2 * i..2 * i + 2], 16).ok())
            .collect()
    }
}

/// Where the memo for `origin` and `steps` is kept, when they can have one.
pub fn path(cache_dir: &Path, origin: &Origin, steps: &[PatchStep]) -> Result<Option<PathBuf>, Error> {
    let Origin::Tarball(tarball) = origin else {
        return Ok(None);
    };
    let (store, _) = super::git::tarball_store(cache_dir, tarball)?;
    let mut parts: Vec<Vec<u8>> = vec![b"series-v1".to_vec()];
    for step in steps {
        let (kind, file) = match step {
            PatchStep::Apply(p) => ("apply", p),
            PatchStep::Revert(RevertTarget::Patch(p)) => ("revert", p),
            PatchStep::Revert(RevertTarget::Rev(_)) | PatchStep::CherryPick(_) => return Ok(None),
        };
        let bytes = std::fs::read(file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        parts.extend([
            kind.as_bytes().to_vec(),
            file.to_string_lossy().as_bytes().to_vec(),
            bytes,
        ]);
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Some(store.join("repro-series").join(crate::cache::key(&parts))))
}

/// The remembered answer, if there is a whole one.
pub fn read(memo: &Path) -> Option<Resolved> {
    let text = std::fs::read_to_string(memo).ok()?;
    parse(&text)
}

/// Remembers `resolved` at `memo`. Best effort: a memo that could not be written is asked again.
pub fn write(memo: &Path, resolved: &Resolved) {
    let Some(dir) = memo.parent() else { return };
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, render(resolved)))
        .and_then(|()| std::fs::rename(&tmp, memo));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn render(r: &Resolved) -> String {
    format!("{} {} {}\n", r.base, r.commit, r.tree)
}

fn parse(text: &str) -> Option<Resolved> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [base, commit, tree] = words[..] else {
        return None;
    };
    let id = |w: &str| (w.len() == 40 && w.bytes().all(|b| b.is_ascii_hexdigit())).then(|| w.to_string());
    Some(Resolved {
        base: id(base)?,
        commit: id(commit)?,
        tree: id(tree)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_reads_back_whole_and_a_torn_one_is_not_an_answer() {
        let tree = git2::Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        let applied = Applied {
            commit: git2::Oid::from_str("597284f8dd5c0102030405060708090a0b0c0d0e").unwrap(),
            tree,
            time: 1_700_000_000,
        };
        let r = Resolved::new(
            git2::Oid::from_str("6be59a1dfce5c1a2b3c4d5e6f708192a3b4c5d6e").unwrap(),
            &applied,
        );
        assert_eq!(r.tree_bytes(), tree.as_bytes(), "the key's bytes are the tree id's");
        let text = render(&r);
        assert_eq!(parse(&text), Some(r));
        assert_eq!(parse(&text[..text.len() / 2]), None);
        assert_eq!(parse(&text.replace('a', "g")), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn only_tarballs_and_patch_files_are_remembered_and_a_patchs_bytes_name_its_memo() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("linux.tar");
        std::fs::write(&tarball, b"not really a tarball").unwrap();
        let patch = tmp.path().join("fix.patch");
        std::fs::write(&patch, b"--- a/x\n+++ b/x\n").unwrap();
        let origin = Origin::Tarball(tarball);
        let series = [PatchStep::Apply(patch.clone())];
        let first = path(tmp.path(), &origin, &series).unwrap().unwrap();
        assert_eq!(path(tmp.path(), &origin, &series).unwrap(), Some(first.clone()));
        assert_ne!(path(tmp.path(), &origin, &[]).unwrap(), Some(first.clone()));
        std::fs::write(&patch, b"--- a/x\n+++ b/y\n").unwrap();
        assert_ne!(path(tmp.path(), &origin, &series).unwrap(), Some(first));
        let moving = [PatchStep::CherryPick("HEAD".into())];
        assert_eq!(path(tmp.path(), &origin, &moving).unwrap(), None);
        let git = Origin::Git {
            repo: "/src/linux".into(),
            rev: "v6.1".into(),
        };
        assert_eq!(path(tmp.path(), &git, &[]).unwrap(), None);
    }
}
