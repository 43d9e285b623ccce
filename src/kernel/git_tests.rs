//! git2 store tests over small real repositories (and a real tarball).

use super::git::{Error, Origin, Store};
use crate::def::patch::{PatchStep as Step, RevertTarget as Target};
use git2::{Repository, Signature};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn commit_files(repo: &Repository, files: &[(&str, &str)], msg: &str) -> git2::Oid {
    let wd = repo.workdir().unwrap().to_path_buf();
    let mut idx = repo.index().unwrap();
    for (path, text) in files {
        let p = wd.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        idx.add_path(Path::new(path)).unwrap();
    }
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = Signature::new("dev", "dev@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs).unwrap()
}

/// A user's repository: three commits on main.
struct UserRepo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// `buggy` changes fs/file.c; `later` adds fs/other.c.
    base: git2::Oid,
    buggy: git2::Oid,
    later: git2::Oid,
}

fn user_repo() -> UserRepo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linux");
    let repo = Repository::init(&path).unwrap();
    let base = commit_files(
        &repo,
        &[
            ("Makefile", "all:\n"),
            ("fs/file.c", "int f(void)\n{\n\treturn 0;\n}\n"),
        ],
        "base",
    );
    let buggy = commit_files(
        &repo,
        &[("fs/file.c", "int f(void)\n{\n\treturn *(int *)0;\n}\n")],
        "fs: break f",
    );
    let later = commit_files(&repo, &[("fs/other.c", "int g;\n")], "fs: add g");
    UserRepo {
        _dir: dir,
        path,
        base,
        buggy,
        later,
    }
}

/// Everything observable about a repository and its work tree: every file under it (including
/// all of .git) with its size, mtime and content hash.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let hash = if m.is_file() {
                crate::cache::key(&[&std::fs::read(&p).unwrap()])
            } else {
                String::new()
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (m.len(), m.modified().unwrap(), hash),
            );
        }
    }
    out
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

fn nolog(_: &str) {}

fn fix_patch(dir: &Path) -> PathBuf {
    let p = dir.join("0001-fix.patch");
    std::fs::write(
        &p,
        "From 1 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] fs: guard f\n\n---\n\
diff --git a/fs/file.c b/fs/file.c\n--- a/fs/file.c\n+++ b/fs/file.c\n@@ -1,4 +1,5 @@\n int f(void)\n {\n+\t/* guarded */\n \treturn 0;\n }\n",
    )
    .unwrap();
    p
}

#[test]
fn revert_apply_cherry_pick_and_checkout_leave_the_user_repo_untouched() {
    let u = user_repo();
    let before = snapshot(&u.path);
    let cache = tempfile::tempdir().unwrap();
    let origin = Origin::Git {
        repo: u.path.display().to_string(),
        rev: "HEAD~1".into(),
    };
    let (store, base) = Store::open(cache.path(), &origin, &nolog).unwrap();
    assert_eq!(base, u.buggy);

    let patch = fix_patch(cache.path());
    let steps = vec![
        Step::Revert(Target::Rev(u.buggy.to_string())),
        Step::Apply(patch.clone()),
        Step::CherryPick(u.later.to_string()),
    ];
    let applied = store.apply(base, &steps, &nolog).unwrap();
    let wt = cache.path().join("slot/src");
    store.checkout(applied.commit, &wt, "slot").unwrap();
    assert_eq!(
        read(&wt, "fs/file.c"),
        "int f(void)\n{\n\t/* guarded */\n\treturn 0;\n}\n"
    );
    assert_eq!(read(&wt, "fs/other.c"), "int g;\n");

    // Deterministic: the same series gives the same commit and tree.
    let again = store.apply(base, &steps, &nolog).unwrap();
    assert_eq!(again, applied);

    // Reverting a patch of the series by its file name undoes it.
    let mut undo = steps.clone();
    undo.push(Step::Revert(Target::Patch(patch)));
    let undone = store.apply(base, &undo, &nolog).unwrap();
    let t = store_tree_file(&store, undone.commit, "fs/file.c");
    assert_eq!(t, "int f(void)\n{\n\treturn 0;\n}\n");

    assert_eq!(snapshot(&u.path), before, "the user's repository changed");
    let repo = Repository::open(&u.path).unwrap();
    assert_eq!(repo.head().unwrap().target(), Some(u.later));
    assert!(repo.statuses(None).unwrap().is_empty());
    let _ = u.base;
}

fn store_tree_file(store: &Store, commit: git2::Oid, path: &str) -> String {
    let repo = Repository::open_bare(store.dir()).unwrap();
    let c = repo.find_commit(commit).unwrap();
    let e = c.tree().unwrap().get_path(Path::new(path)).unwrap();
    let b = repo.find_blob(e.id()).unwrap();
    String::from_utf8(b.content().to_vec()).unwrap()
}

#[test]
fn a_patch_that_does_not_apply_names_patch_and_file_and_changes_nothing() {
    let u = user_repo();
    let before = snapshot(&u.path);
    let cache = tempfile::tempdir().unwrap();
    let origin = Origin::Git {
        repo: u.path.display().to_string(),
        rev: "main".into(),
    };
    let origin = match Store::open(cache.path(), &origin, &nolog) {
        Ok(_) => origin,
        // Older git defaults to `master`.
        Err(_) => Origin::Git {
            repo: u.path.display().to_string(),
            rev: "HEAD".into(),
        },
    };
    let (store, base) = Store::open(cache.path(), &origin, &nolog).unwrap();
    // Check out the base first: a failed series must not touch an existing worktree either.
    let wt = cache.path().join("slot/src");
    store.checkout(base, &wt, "slot").unwrap();
    let wt_before = snapshot(&wt);

    // The fix patch expects `return 0;` but HEAD has the buggy line.
    let patch = fix_patch(cache.path());
    let e = store.apply(base, &[Step::Apply(patch.clone())], &nolog).unwrap_err();
    match &e {
        Error::PatchFailed { patch: p, file, .. } => {
            assert_eq!(p, &patch);
            assert_eq!(file.as_deref(), Some("fs/file.c"));
        }
        other => panic!("unexpected error: {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("0001-fix.patch") && msg.contains("fs/file.c"), "{msg}");
    assert_eq!(snapshot(&wt), wt_before, "the worktree changed after a failed patch");
    assert_eq!(snapshot(&u.path), before, "the user's repository changed");
}

#[test]
fn a_conflicting_revert_names_the_files() {
    let u = user_repo();
    let repo = Repository::open(&u.path).unwrap();
    // A later change to the same lines makes reverting `buggy` conflict.
    let top = commit_files(
        &repo,
        &[("fs/file.c", "int f(void)\n{\n\treturn *(int *)8;\n}\n")],
        "fs: other",
    );
    let before = snapshot(&u.path);
    let cache = tempfile::tempdir().unwrap();
    let (store, base) = Store::open(
        cache.path(),
        &Origin::Git {
            repo: u.path.display().to_string(),
            rev: top.to_string(),
        },
        &nolog,
    )
    .unwrap();
    let e = store
        .apply(base, &[Step::Revert(Target::Rev(u.buggy.to_string()))], &nolog)
        .unwrap_err();
    match e {
        Error::Conflict { op, files, .. } => {
            assert_eq!(op, "revert");
            assert_eq!(files, vec!["fs/file.c".to_string()]);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(snapshot(&u.path), before);
}

#[test]
fn an_unknown_revision_is_a_clear_error() {
    let u = user_repo();
    let cache = tempfile::tempdir().unwrap();
    let e = Store::open(
        cache.path(),
        &Origin::Git {
            repo: u.path.display().to_string(),
            rev: "v9.9".into(),
        },
        &nolog,
    )
    .err()
    .expect("must fail");
    assert!(e.to_string().contains("revision `v9.9` not found"), "{e}");
}

#[test]
fn checkout_rewrites_only_changed_files() {
    let u = user_repo();
    let cache = tempfile::tempdir().unwrap();
    let origin = Origin::Git {
        repo: u.path.display().to_string(),
        rev: u.base.to_string(),
    };
    let (store, base) = Store::open(cache.path(), &origin, &nolog).unwrap();
    let wt = cache.path().join("slot/src");
    store.checkout(base, &wt, "slot").unwrap();
    let make_before = std::fs::metadata(wt.join("Makefile")).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let next = store.resolve(&u.later.to_string()).unwrap();
    store.checkout(next, &wt, "slot").unwrap();
    assert_eq!(read(&wt, "fs/file.c"), "int f(void)\n{\n\treturn *(int *)0;\n}\n");
    assert_eq!(read(&wt, "fs/other.c"), "int g;\n");
    let make_after = std::fs::metadata(wt.join("Makefile")).unwrap().modified().unwrap();
    assert_eq!(make_before, make_after, "an unchanged file was rewritten");
    // And back: the added file goes away.
    store.checkout(base, &wt, "slot").unwrap();
    assert!(!wt.join("fs/other.c").exists());
}

/// A build slot is per recipe, so its worktree can belong to another store (a tarball's, then a
/// repository's when `repro bisect --repo` builds the same recipe).
#[test]
fn a_slot_worktree_of_another_store_checks_out_this_stores_commit() {
    let u = user_repo();
    let cache = tempfile::tempdir().unwrap();
    let first = Origin::Git {
        repo: u.path.display().to_string(),
        rev: u.base.to_string(),
    };
    let (a, base) = Store::open(&cache.path().join("a"), &first, &nolog).unwrap();
    let wt = cache.path().join("slot/src");
    a.checkout(base, &wt, "slot").unwrap();
    let second = Origin::Git {
        repo: u.path.display().to_string(),
        rev: u.later.to_string(),
    };
    let (b, later) = Store::open(&cache.path().join("b"), &second, &nolog).unwrap();
    b.checkout(later, &wt, "slot").unwrap();
    assert_eq!(read(&wt, "fs/file.c"), "int f(void)\n{\n\treturn *(int *)0;\n}\n");
    let head = Repository::open(&wt).unwrap().head().unwrap().target().unwrap();
    assert_eq!(head, later);
}

#[test]
fn a_tarball_is_imported_once_with_modes_and_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("linux-source-9.9");
    std::fs::create_dir_all(top.join("scripts")).unwrap();
    std::fs::create_dir_all(top.join("empty")).unwrap();
    kernel_top(&top);
    std::fs::write(top.join("Makefile"), "VERSION = 9\n").unwrap();
    std::fs::write(top.join("scripts/gen.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(top.join("scripts/gen.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("gen.sh", top.join("scripts/link.sh")).unwrap();
    let tarball = tmp.path().join("linux-source-9.9.tar.xz");
    let ok = std::process::Command::new("tar")
        .arg("-cJf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .arg("linux-source-9.9")
        .status()
        .unwrap();
    assert!(ok.success());
    let cache = tempfile::tempdir().unwrap();
    let imports = std::cell::Cell::new(0);
    let log = |m: &str| {
        if m.starts_with("importing") {
            imports.set(imports.get() + 1);
        }
    };
    let (store, c1) = Store::open(cache.path(), &Origin::Tarball(tarball.clone()), &log).unwrap();
    let (_, c2) = Store::open(cache.path(), &Origin::Tarball(tarball), &log).unwrap();
    assert_eq!(c1, c2);
    assert_eq!(imports.get(), 1);
    let repo = Repository::open_bare(store.dir()).unwrap();
    let tree = repo.find_commit(c1).unwrap().tree().unwrap();
    let mode = |p: &str| tree.get_path(Path::new(p)).unwrap().filemode();
    assert_eq!(mode("Makefile"), 0o100644);
    assert_eq!(mode("scripts/gen.sh"), 0o100755);
    assert_eq!(mode("scripts/link.sh"), 0o120000);
    assert!(
        tree.get_path(Path::new("empty")).is_err(),
        "git does not keep empty directories"
    );
    let wt = cache.path().join("wt");
    store.checkout(c1, &wt, "wt").unwrap();
    assert_eq!(read(&wt, "Makefile"), "VERSION = 9\n");
    assert_eq!(
        std::fs::read_link(wt.join("scripts/link.sh")).unwrap(),
        Path::new("gen.sh")
    );
}

#[test]
fn a_url_source_is_fetched_into_the_store() {
    let u = user_repo();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", u.path.display());
    let (store, c) = Store::open(
        cache.path(),
        &Origin::Git {
            repo: url,
            rev: u.buggy.to_string(),
        },
        &nolog,
    )
    .unwrap();
    assert_eq!(c, u.buggy);
    assert!(store.dir().starts_with(cache.path()));
}

/// The top of a kernel tree, as every source tarball has it.
fn kernel_top(top: &Path) {
    for d in ["arch", "fs", "kernel", "scripts"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
        std::fs::write(top.join(d).join("Kconfig"), "# kconfig\n").unwrap();
    }
    std::fs::write(top.join("Makefile"), "VERSION = 9\n").unwrap();
    std::fs::write(top.join("Kconfig"), "mainmenu \"x\"\n").unwrap();
}

/// A tarball of a kernel-like tree with `files` files under fs/.
fn kernel_tarball(dir: &Path, files: usize) -> PathBuf {
    let top = dir.join("linux-source-9.8");
    kernel_top(&top);
    for i in 0..files {
        std::fs::write(top.join(format!("fs/f{i}.c")), format!("int f{i};\n")).unwrap();
    }
    let tarball = dir.join("linux-source-9.8.tar");
    let ok = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .arg("linux-source-9.8")
        .status()
        .unwrap();
    assert!(ok.success());
    tarball
}

#[test]
fn builds_that_import_one_tarball_at_once_get_one_whole_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = kernel_tarball(tmp.path(), 4000);
    let cache = tempfile::tempdir().unwrap();
    let opened: Vec<Result<git2::Oid, String>> = std::thread::scope(|s| {
        let open = || {
            s.spawn(|| {
                Store::open(cache.path(), &Origin::Tarball(tarball.clone()), &|_| {})
                    .map(|(_, c)| c)
                    .map_err(|e| crate::errors::chain(&e))
            })
        };
        let (a, b) = (open(), open());
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let (a, b) = (opened[0].clone().unwrap(), opened[1].clone().unwrap());
    assert_eq!(a, b, "two imports raced");
    let (store, _) = Store::open(cache.path(), &Origin::Tarball(tarball), &|_| {}).unwrap();
    let repo = Repository::open_bare(store.dir()).unwrap();
    let fs = repo
        .find_commit(a)
        .unwrap()
        .tree()
        .unwrap()
        .get_name("fs")
        .unwrap()
        .id();
    assert_eq!(
        repo.find_tree(fs).unwrap().len(),
        4001,
        "every file of fs/ was imported"
    );
}

#[test]
fn an_incomplete_imported_base_is_imported_again() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = kernel_tarball(tmp.path(), 3);
    let cache = tempfile::tempdir().unwrap();
    let (store, good) = Store::open(cache.path(), &Origin::Tarball(tarball.clone()), &|_| {}).unwrap();
    // What a half-unpacked import left behind: a base without most of the tree.
    let repo = Repository::open_bare(store.dir()).unwrap();
    let mut b = repo.treebuilder(None).unwrap();
    let blob = repo.blob(b"VERSION = 9\n").unwrap();
    b.insert("Makefile", blob, 0o100644).unwrap();
    let half = repo.find_tree(b.write().unwrap()).unwrap();
    let sig = git2::Signature::new("x", "x@x", &git2::Time::new(0, 0)).unwrap();
    let c = repo.commit(None, &sig, &sig, "half", &half, &[]).unwrap();
    repo.reference("refs/repro/base", c, true, "half").unwrap();
    let imports = std::cell::Cell::new(0);
    let log = |m: &str| imports.set(imports.get() + usize::from(m.starts_with("importing")));
    let (_, again) = Store::open(cache.path(), &Origin::Tarball(tarball), &log).unwrap();
    assert_eq!(imports.get(), 1, "the incomplete base was trusted");
    assert_eq!(again, good);
}
