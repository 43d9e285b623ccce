//! Out-of-tree kernel modules declared by a scenario (`[[module]]`): a source directory or a git
//! revision, built against a node's kernel headers and put into its guest at
//! `/etc/repro/run/<name>.ko`. Builds are cached by (source content, kernel, arch).

use crate::arch::Arch;
use crate::cache;
use crate::def::module::ModuleSpec;
use crate::kernel::Artifacts;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A built module.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub name: String,
    pub ko: PathBuf,
    /// `git <commit>` or `dir <content hash>`.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] crate::kernel::Error),
    #[error(transparent)]
    Cache(#[from] cache::Error),
    #[error("module `{name}`: {}: {source}", path.display())]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module `{name}`: git: {why}")]
    Git { name: String, why: String },
    #[error("module `{name}` does not build against {kernel}:\n{log}")]
    Build { name: String, kernel: String, log: String },
}

/// What a module's source is, as a cache key and a way to write it out.
enum Snapshot {
    Tree {
        repo: git2::Repository,
        tree: git2::Oid,
        commit: git2::Oid,
    },
    Dir {
        files: Vec<(PathBuf, Vec<u8>, bool)>,
        hash: String,
    },
}

fn snapshot(m: &ModuleSpec) -> Result<Snapshot, Error> {
    let git = |e: git2::Error| Error::Git {
        name: m.name.clone(),
        why: e.message().to_string(),
    };
    if let Some(rev) = &m.rev {
        let repo = git2::Repository::open(&m.source).map_err(git)?;
        let (tree, commit) = {
            let c = repo
                .revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map_err(git)?;
            (c.tree_id(), c.id())
        };
        return Ok(Snapshot::Tree { repo, tree, commit });
    }
    let mut files = Vec::new();
    collect(&m.source, Path::new(""), &mut files).map_err(|source| Error::Io {
        name: m.name.clone(),
        path: m.source.clone(),
        source,
    })?;
    files.sort();
    let mut parts: Vec<&[u8]> = Vec::new();
    let names: Vec<String> = files.iter().map(|f| format!("{}:{}", f.0.display(), f.2)).collect();
    for (f, n) in files.iter().zip(&names) {
        parts.push(n.as_bytes());
        parts.push(&f.1);
    }
    let hash = cache::key(&parts);
    Ok(Snapshot::Dir { files, hash })
}

/// Source files under `dir` (recursively), skipping `.git` and build products.
fn collect(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>, bool)>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir.join(rel))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_product = [".o", ".ko", ".mod", ".mod.c", ".cmd", ".symvers", ".order"]
            .iter()
            .any(|x| name.ends_with(x));
        if name == ".git" || is_product {
            continue;
        }
        let meta = e.metadata()?;
        if meta.is_dir() {
            collect(dir, &rel.join(&name), out)?;
        } else if meta.is_file() {
            out.push((
                rel.join(&name),
                std::fs::read(e.path())?,
                meta.permissions().mode() & 0o111 != 0,
            ));
        }
    }
    Ok(())
}

fn write_tree(repo: &git2::Repository, tree: &git2::Tree, dir: &Path) -> Result<(), git2::Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    for entry in tree.iter() {
        let name = entry.name().unwrap_or("_");
        let path = dir.join(name);
        let obj = entry.to_object(repo)?;
        if let Some(t) = obj.as_tree() {
            write_tree(repo, t, &path)?;
        } else if let Some(b) = obj.as_blob() {
            std::fs::write(&path, b.content()).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            if entry.filemode() == 0o100755 {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            }
        }
    }
    Ok(())
}

/// The `make` arguments for a module build against `tree` for `arch`.
pub fn make_args(tree: &Path, src: &Path, arch: Arch) -> Vec<String> {
    let mut v = vec![
        "-C".to_string(),
        tree.display().to_string(),
        format!("M={}", src.display()),
    ];
    let cross = crate::kernel::build::cross_compile(arch);
    if !cross.is_empty() {
        v.push(format!("ARCH={}", arch.kernel()));
        v.push(format!("CROSS_COMPILE={cross}"));
    }
    v.push("modules".to_string());
    v
}

/// Builds `m` against `kernel` (cached), logging stages through `log`.
pub fn build(m: &ModuleSpec, kernel: &Artifacts, log: &dyn Fn(&str)) -> Result<Built, Error> {
    let snap = snapshot(m)?;
    let (content, origin) = match &snap {
        Snapshot::Tree { tree, commit, .. } => (tree.to_string(), format!("git {commit}")),
        Snapshot::Dir { hash, .. } => (hash.clone(), format!("dir {hash}")),
    };
    let key = cache::key(&[
        m.name.as_bytes(),
        content.as_bytes(),
        kernel.id.as_bytes(),
        kernel.arch.as_str().as_bytes(),
    ]);
    let entry = cache::dir("modules")?.join(format!("{}-{}-{key}", m.name, kernel.arch.as_str()));
    let ko = entry.join("src").join(format!("{}.ko", m.name));
    let io = |path: &Path| {
        let (name, path) = (m.name.clone(), path.to_path_buf());
        move |source| Error::Io { name, path, source }
    };
    let _lock = cache::lock(&entry)?;
    if cache::is_complete(&entry) && ko.is_file() {
        return Ok(Built {
            name: m.name.clone(),
            ko,
            origin,
        });
    }
    let tree = crate::kernel::module_tree(kernel, log)?;
    log(&format!(
        "building module {} ({origin}) against {}",
        m.name, kernel.name
    ));
    let _ = std::fs::remove_dir_all(&entry);
    let src = entry.join("src");
    std::fs::create_dir_all(&src).map_err(io(&src))?;
    match &snap {
        Snapshot::Tree { repo, tree, .. } => {
            let t = repo.find_tree(*tree).map_err(|e| Error::Git {
                name: m.name.clone(),
                why: e.message().to_string(),
            })?;
            write_tree(repo, &t, &src).map_err(|e| Error::Git {
                name: m.name.clone(),
                why: e.message().to_string(),
            })?;
        }
        Snapshot::Dir { files, .. } => {
            use std::os::unix::fs::PermissionsExt;
            for (rel, data, exec) in files {
                let p = src.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::write(&p, data).map_err(io(&p))?;
                if *exec {
                    let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
                }
            }
        }
    }
    let mut make = Command::new("make");
    make.args(make_args(&tree, &src, kernel.arch));
    let out = crate::process::output(&mut make).map_err(io(&src))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    std::fs::write(entry.join("build.log"), &text).map_err(io(&entry))?;
    if !out.status.success() || !ko.is_file() {
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let mut log = tail.join("\n");
        if out.status.success() {
            log.push_str(&format!("\n(make succeeded but produced no {}.ko)", m.name));
        }
        return Err(Error::Build {
            name: m.name.clone(),
            kernel: kernel.name.clone(),
            log,
        });
    }
    cache::mark_complete(&entry, format!("{origin}\n").as_bytes()).map_err(io(&entry))?;
    Ok(Built {
        name: m.name.clone(),
        ko,
        origin,
    })
}
