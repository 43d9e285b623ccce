//! Kernel sources as git trees, in repositories repro owns (under the cache), via git2.
//!
//! - A user's repository is only ever opened to resolve a revision. Its objects are borrowed
//!   through `objects/info/alternates` of repro's own bare store, so nothing is copied and
//!   nothing is written to it: no worktree, ref, index or object.
//! - A source tarball (Debian's linux-source-6.1) is imported once as a root commit.
//! - Patch files, reverts and cherry-picks are applied to trees in memory, each step becoming a
//!   commit in the store. A step that fails leaves nothing behind but the error, which names the
//!   step and the file.
//! - Build trees are git worktrees of the store, updated in place so that unchanged files keep
//!   their mtimes and `make` rebuilds only what changed.

use crate::def::patch::{PatchStep, RevertTarget};
use git2::{build::CheckoutBuilder, ApplyOptions, Diff, Oid, Repository, Signature, Time};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("git: {what}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot unpack {}: {why}", tarball.display())]
    Unpack { tarball: PathBuf, why: String },
    #[error("{} is not a git repository", path.display())]
    NotARepo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("revision `{rev}` not found in {repo}")]
    NoRev {
        rev: String,
        repo: String,
        #[source]
        source: git2::Error,
    },
    #[error("patch {} does not apply{}: {msg}", patch.display(), file.as_ref().map(|f| format!(" to {f}")).unwrap_or_default())]
    PatchFailed {
        patch: PathBuf,
        file: Option<String>,
        msg: String,
    },
    #[error("patch {} cannot be parsed: {msg}", patch.display())]
    PatchSyntax { patch: PathBuf, msg: String },
    #[error("{op} of {commit} conflicts in {}", files.join(", "))]
    Conflict {
        op: &'static str,
        commit: String,
        files: Vec<String>,
    },
    #[error("cannot revert {}: it is not a patch applied earlier in this series", patch.display())]
    NotInSeries { patch: PathBuf },
}

fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
    let what = what.into();
    move |source| Error::Git { what, source }
}

/// Where a kernel tree comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A source tarball (any compression tar understands), imported once.
    Tarball(PathBuf),
    /// A git repository, by path or URL, at a revision.
    Git { repo: String, rev: String },
}

/// A tree produced by a series: the commit in the store and its tree id (the cache key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub commit: Oid,
    pub tree: Oid,
    /// Commit time of the base, used as the build timestamp.
    pub time: i64,
}

/// A bare repository repro owns, holding one source's history plus its patched trees.
pub struct Store {
    repo: Repository,
    dir: PathBuf,
    /// The user's repository, read-only: revisions resolve there and their objects are copied.
    upstream: Option<Repository>,
}

const BASE_REF: &str = "refs/repro/base";

/// What the top of every kernel source tree holds.
const KERNEL_TOP: [&str; 6] = ["Makefile", "Kconfig", "arch", "fs", "kernel", "scripts"];

/// The store directory of `tarball` under `cache_dir`, named by its path, size and mtime (so a
/// new tarball at the same path gets a store of its own), and the mtime in seconds.
pub fn tarball_store(cache_dir: &Path, tarball: &Path) -> Result<(PathBuf, u64), Error> {
    let meta = std::fs::metadata(tarball).map_err(|source| Error::Io {
        path: tarball.to_path_buf(),
        source,
    })?;
    let mtime = crate::cache::mtime(&meta).as_secs();
    let key = crate::cache::key(&[
        tarball.to_string_lossy().as_bytes(),
        &meta.len().to_le_bytes(),
        &mtime.to_le_bytes(),
    ]);
    Ok((cache_dir.join(format!("tar-{key}.git")), mtime))
}

impl Store {
    /// Opens (creating if needed) the store for `origin` under `cache_dir` and resolves the base
    /// commit. A tarball is imported on first use.
    pub fn open(cache_dir: &Path, origin: &Origin, log: &dyn Fn(&str)) -> Result<(Store, Oid), Error> {
        match origin {
            Origin::Tarball(path) => {
                let (dir, mtime) = tarball_store(cache_dir, path)?;
                // One import at a time: builds that start together on a cold cache (a nightly)
                // would otherwise unpack into the same directory and hash each other's halves.
                let _lock = crate::cache::lock(&dir).map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: std::io::Error::other(e),
                })?;
                let store = Store::init(&dir)?;
                if let Some(r) = store.checked_base(log) {
                    return Ok((store, r));
                }
                log(&format!("importing {} into a git store (once)", path.display()));
                let c = store.import_tarball(path, mtime as i64)?;
                Ok((store, c))
            }
            Origin::Git { repo, rev } if repo.contains("://") => {
                let store = Store::init(&cache_dir.join(format!("url-{}.git", crate::cache::key(&[repo.as_bytes()]))))?;
                let c = match store.resolve(rev) {
                    Ok(c) => c,
                    Err(_) => {
                        log(&format!("fetching {repo}"));
                        let mut remote = store
                            .repo
                            .remote_anonymous(repo)
                            .map_err(git(format!("remote {repo}")))?;
                        remote
                            .fetch(
                                &["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                                None,
                                None,
                            )
                            .map_err(git(format!("fetch {repo}")))?;
                        store.resolve(rev).map_err(|e| match e {
                            Error::NoRev { rev, source, .. } => Error::NoRev {
                                rev,
                                repo: repo.clone(),
                                source,
                            },
                            e => e,
                        })?
                    }
                };
                Ok((store, c))
            }
            Origin::Git { repo, rev } => {
                let path = PathBuf::from(repo);
                // Read-only: the user's repository is opened to resolve revisions and read
                // objects, which are copied into the store. It is not used as an alternate,
                // because writing an object that an alternate already has "freshens" (touches)
                // the alternate's files.
                let user = Repository::open(&path).map_err(|source| Error::NotARepo {
                    path: path.clone(),
                    source,
                })?;
                let gitdir = std::fs::canonicalize(user.path()).map_err(|source| Error::Io {
                    path: user.path().to_path_buf(),
                    source,
                })?;
                let key = crate::cache::key(&[gitdir.to_string_lossy().as_bytes()]);
                let mut store = Store::init(&cache_dir.join(format!("repo-{key}.git")))?;
                store.upstream = Some(user);
                let commit = store.resolve(rev).map_err(|e| match e {
                    Error::NoRev { rev, source, .. } => Error::NoRev {
                        rev,
                        repo: repo.clone(),
                        source,
                    },
                    e => e,
                })?;
                Ok((store, commit))
            }
        }
    }

    fn init(dir: &Path) -> Result<Store, Error> {
        let repo = if dir.join("HEAD").is_file() {
            Repository::open_bare(dir)
        } else {
            Repository::init_bare(dir)
        }
        .map_err(git(format!("store {}", dir.display())))?;
        Ok(Store {
            repo,
            dir: dir.to_path_buf(),
            upstream: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A revision: in the user's repository when there is one (its commit, tree and parents are
    /// then copied into the store), else in the store.
    pub fn resolve(&self, rev: &str) -> Result<Oid, Error> {
        if let Some(up) = &self.upstream {
            let c = up
                .revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map_err(|source| Error::NoRev {
                    rev: rev.to_string(),
                    repo: up.path().display().to_string(),
                    source,
                })?;
            self.copy_commit(up, &c)?;
            for p in c.parents() {
                self.copy_commit(up, &p)?;
            }
            return Ok(c.id());
        }
        self.repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|source| Error::NoRev {
                rev: rev.to_string(),
                repo: self.dir.display().to_string(),
                source,
            })
    }

    /// Copies a commit and its tree (only subtrees the store lacks) from `up`.
    fn copy_commit(&self, up: &Repository, c: &git2::Commit) -> Result<(), Error> {
        let (src, dst) = (
            up.odb().map_err(git("odb"))?,
            self.repo.odb().map_err(git("store odb"))?,
        );
        copy_object(&src, &dst, c.tree_id())?;
        copy_object(&src, &dst, c.id())?;
        Ok(())
    }

    /// The imported base, if there is one that looks like a whole kernel tree (its top-level
    /// Makefile, Kconfig and a few directories). A base that does not, from an import that went
    /// wrong, is dropped so that it is imported again.
    fn checked_base(&self, log: &dyn Fn(&str)) -> Option<Oid> {
        let base = self.repo.refname_to_id(BASE_REF).ok()?;
        let tree = self.repo.find_commit(base).and_then(|c| c.tree()).ok()?;
        let whole = KERNEL_TOP.iter().all(|name| tree.get_name(name).is_some());
        if whole {
            return Some(base);
        }
        log("the imported tree is incomplete; importing it again");
        if let Ok(mut r) = self.repo.find_reference(BASE_REF) {
            let _ = r.delete();
        }
        None
    }

    fn import_tarball(&self, tarball: &Path, time: i64) -> Result<Oid, Error> {
        let tmp = self.dir.join("import.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        let mut tar = Command::new("tar");
        tar.arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&tmp)
            .arg("--strip-components=1");
        let out = crate::process::output(&mut tar).map_err(|e| Error::Unpack {
            tarball: tarball.to_path_buf(),
            why: e.to_string(),
        })?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Unpack {
                tarball: tarball.to_path_buf(),
                why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let tree = write_dir(&self.repo, &tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        let tree = tree?;
        let tree = self.repo.find_tree(tree).map_err(git("import tree"))?;
        let name = tarball.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let sig = signature(time)?;
        let c = self
            .repo
            .commit(Some(BASE_REF), &sig, &sig, &format!("Import {name}\n"), &tree, &[])
            .map_err(git("import commit"))?;
        Ok(c)
    }

    /// Applies `steps` on top of `base`. Each step becomes a commit; identical inputs give
    /// identical commits (the signature time is the base's).
    pub fn apply(&self, base: Oid, steps: &[PatchStep], log: &dyn Fn(&str)) -> Result<Applied, Error> {
        let base_commit = self.repo.find_commit(base).map_err(git(format!("commit {base}")))?;
        let time = base_commit.time().seconds();
        let sig = signature(time)?;
        let mut cur = base_commit;
        let mut applied: Vec<(PathBuf, Oid)> = Vec::new();
        for step in steps {
            log(&step.describe());
            let (tree, message) = match step {
                PatchStep::Apply(patch) => {
                    let tree = self.apply_patch(&cur, patch)?;
                    let name = patch.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    (tree, format!("repro: apply {name}\n"))
                }
                PatchStep::Revert(target) => {
                    let victim = match target {
                        RevertTarget::Rev(r) => self.resolve(r)?,
                        RevertTarget::Patch(p) => applied
                            .iter()
                            .rev()
                            .find(|(q, _)| same_file(p, q))
                            .map(|(_, c)| *c)
                            .ok_or_else(|| Error::NotInSeries { patch: p.clone() })?,
                    };
                    let victim = self.repo.find_commit(victim).map_err(git("revert target"))?;
                    let mainline = u32::from(victim.parent_count() > 1);
                    let idx = self
                        .repo
                        .revert_commit(&victim, &cur, mainline, None)
                        .map_err(git(format!("revert {}", victim.id())))?;
                    let tree = self.index_tree(idx, "revert", victim.id())?;
                    let subject = victim.summary().unwrap_or("").to_string();
                    (
                        tree,
                        format!("Revert \"{subject}\"\n\nThis reverts commit {}.\n", victim.id()),
                    )
                }
                PatchStep::CherryPick(rev) => {
                    let pick = self.resolve(rev)?;
                    let pick = self.repo.find_commit(pick).map_err(git("cherry-pick target"))?;
                    let mainline = u32::from(pick.parent_count() > 1);
                    let idx = self
                        .repo
                        .cherrypick_commit(&pick, &cur, mainline, None)
                        .map_err(git(format!("cherry-pick {}", pick.id())))?;
                    let tree = self.index_tree(idx, "cherry-pick", pick.id())?;
                    let msg = pick.message().unwrap_or("").trim_end().to_string();
                    (tree, format!("{msg}\n\n(cherry picked from commit {})\n", pick.id()))
                }
            };
            let tree = self.repo.find_tree(tree).map_err(git("tree"))?;
            let c = self
                .repo
                .commit(None, &sig, &sig, &message, &tree, &[&cur])
                .map_err(git("commit"))?;
            if let PatchStep::Apply(p) = step {
                applied.push((p.clone(), c));
            }
            cur = self.repo.find_commit(c).map_err(git("commit"))?;
        }
        // Keep the result reachable so a `git gc` in the store never drops it.
        let _ = self
            .repo
            .reference(&format!("refs/repro/trees/{}", cur.tree_id()), cur.id(), true, "repro");
        Ok(Applied {
            commit: cur.id(),
            tree: cur.tree_id(),
            time,
        })
    }

    fn apply_patch(&self, cur: &git2::Commit, patch: &Path) -> Result<Oid, Error> {
        let bytes = std::fs::read(patch).map_err(|source| Error::Io {
            path: patch.to_path_buf(),
            source,
        })?;
        let diff = Diff::from_buffer(&bytes).map_err(|e| Error::PatchSyntax {
            patch: patch.to_path_buf(),
            msg: e.message().to_string(),
        })?;
        let tree = cur.tree().map_err(git("tree"))?;
        let current = RefCell::new(None::<String>);
        let mut opts = ApplyOptions::new();
        opts.delta_callback(|d| {
            if let Some(d) = d {
                let p = d.new_file().path().or(d.old_file().path());
                *current.borrow_mut() = p.map(|p| p.display().to_string());
            }
            true
        });
        let idx = self
            .repo
            .apply_to_tree(&tree, &diff, Some(&mut opts))
            .map_err(|e| Error::PatchFailed {
                patch: patch.to_path_buf(),
                file: current.borrow().clone(),
                msg: e.message().to_string(),
            });
        drop(opts);
        let mut idx = idx?;
        idx.write_tree_to(&self.repo).map_err(git("write tree"))
    }

    fn index_tree(&self, mut idx: git2::Index, op: &'static str, commit: Oid) -> Result<Oid, Error> {
        if idx.has_conflicts() {
            let mut files: Vec<String> = idx
                .conflicts()
                .map_err(git("conflicts"))?
                .filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect();
            files.dedup();
            return Err(Error::Conflict {
                op,
                commit: commit.to_string(),
                files,
            });
        }
        idx.write_tree_to(&self.repo).map_err(git("write tree"))
    }

    /// Makes `dir` a worktree of the store at `commit`, creating it if needed. Only files that
    /// differ are rewritten.
    pub fn checkout(&self, commit: Oid, dir: &Path, name: &str) -> Result<(), Error> {
        let c = self.repo.find_commit(commit).map_err(git(format!("commit {commit}")))?;
        let branch = format!("repro-{name}");
        if !dir.join(".git").exists() {
            if let Ok(wt) = self.repo.find_worktree(name) {
                let mut p = git2::WorktreePruneOptions::new();
                p.valid(true).working_tree(true);
                let _ = wt.prune(Some(&mut p));
            }
            let _ = std::fs::remove_dir_all(dir);
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let br = self.repo.branch(&branch, &c, true).map_err(git("branch"))?;
            let mut opts = git2::WorktreeAddOptions::new();
            opts.reference(Some(br.get()));
            self.repo
                .worktree(name, dir, Some(&opts))
                .map_err(git(format!("worktree {}", dir.display())))?;
            return Ok(());
        }
        let wt = Repository::open(dir).map_err(git(format!("worktree {}", dir.display())))?;
        // The slot's worktree may belong to another store (a build slot is per recipe, and the
        // same recipe can build a tarball and a repository): give that store the objects.
        if wt.find_object(commit, None).is_err() {
            let (src, dst) = (
                self.repo.odb().map_err(git("store odb"))?,
                wt.odb().map_err(git("worktree odb"))?,
            );
            copy_object(&src, &dst, c.tree_id())?;
            copy_object(&src, &dst, commit)?;
        }
        let obj = wt.find_object(commit, None).map_err(git("object"))?;
        let mut co = CheckoutBuilder::new();
        co.force().remove_untracked(true);
        wt.checkout_tree(&obj, Some(&mut co)).map_err(git("checkout"))?;
        // Move the worktree's branch (not HEAD detached) so the store's refs keep it reachable.
        // (In the worktree's own store, which the store at hand may not be.)
        wt.reference(&format!("refs/heads/{branch}"), commit, true, "repro checkout")
            .map_err(git("branch"))?;
        wt.set_head(&format!("refs/heads/{branch}")).map_err(git("set head"))?;
        Ok(())
    }

    /// The one-line summary of a commit, for reports.
    pub fn describe(&self, commit: Oid) -> String {
        self.repo
            .find_commit(commit)
            .ok()
            .and_then(|c| c.summary().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Copies one object, recursing into trees; stops at objects the destination already has.
fn copy_object(src: &git2::Odb, dst: &git2::Odb, id: Oid) -> Result<(), Error> {
    if dst.exists(id) {
        return Ok(());
    }
    let obj = src.read(id).map_err(git(format!("read object {id}")))?;
    if obj.kind() == git2::ObjectType::Tree {
        // Entries: "<mode> <name>\0<20-byte id>".
        let data = obj.data();
        let mut i = 0;
        while i < data.len() {
            let Some(nul) = data[i..].iter().position(|&b| b == 0) else {
                break;
            };
            let header = &data[i..i + nul];
            let start = i + nul + 1;
            let Some(raw) = data.get(start..start + 20) else { break };
            let child = Oid::from_bytes(raw).map_err(git("tree entry"))?;
            // Submodule entries (mode 160000) point at commits in other repositories.
            if !header.starts_with(b"160000") {
                copy_object(src, dst, child)?;
            }
            i = start + 20;
        }
    }
    let written = dst
        .write(obj.kind(), obj.data())
        .map_err(git(format!("write object {id}")))?;
    debug_assert_eq!(written, id);
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn signature(time: i64) -> Result<Signature<'static>, Error> {
    Signature::new("repro", "repro@localhost", &Time::new(time, 0)).map_err(git("signature"))
}

/// Writes `dir` (files, executables, symlinks; no empty directories, as git) as a tree.
fn write_dir(repo: &Repository, dir: &Path) -> Result<Oid, Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    let mut tb = repo.treebuilder(None).map_err(git("treebuilder"))?;
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let ft = e.file_type().map_err(io(&path))?;
        if ft.is_dir() {
            let sub = write_dir(repo, &path)?;
            if repo.find_tree(sub).map(|t| t.is_empty()).unwrap_or(true) {
                continue;
            }
            tb.insert(&name, sub, 0o040000).map_err(git("tree insert"))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            let blob = repo.blob(target.as_os_str().as_encoded_bytes()).map_err(git("blob"))?;
            tb.insert(&name, blob, 0o120000).map_err(git("tree insert"))?;
        } else if ft.is_file() {
            let mode = e.metadata().map_err(io(&path))?.permissions().mode();
            let blob = repo.blob_path(&path).map_err(git(format!("blob {}", path.display())))?;
            let m = if mode & 0o111 != 0 { 0o100755 } else { 0o100644 };
            tb.insert(&name, blob, m).map_err(git("tree insert"))?;
        }
    }
    tb.write().map_err(git("tree write"))
}
