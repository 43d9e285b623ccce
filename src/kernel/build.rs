//! Building kernels from source: a git tree (after patches) plus a config recipe, built out of
//! tree, cached by what determines the result.
//!
//! - **Artifacts** (`cache/kernels/built/<arch>-<key>`): the boot image, vmlinux, .config,
//!   modules if any, and the build log. The key is the tree id after patches, the recipe, the
//!   arch and the toolchain, so a second request is a lookup.
//! - **Build slots** (`cache/kbuild/<arch>-<recipe>`): one source worktree and one `O=` directory
//!   per (arch, recipe). Another commit or patch set is checked out into the same worktree, which
//!   rewrites only the files that differ, so `make` rebuilds incrementally.

use super::artifacts::Artifacts;
use super::config::{self, Entry};
use super::git::{self, Origin, Store};
use crate::arch::Arch;
use crate::cache;
use crate::def::patch::PatchStep;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Git(#[from] git::Error),
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Cache(#[from] cache::Error),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `{command}` (is it installed? `./setup` installs the build tools)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); log: {}\n{tail}", log.display())]
    Make {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the build finished but {} is missing", path.display())]
    NoOutput { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

/// The base a config recipe starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Tinyconfig,
    Defconfig,
    File(PathBuf),
}

/// A config recipe, with `{arch}` already substituted in fragment paths.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub base: Base,
    pub fragments: Vec<PathBuf>,
}

impl Recipe {
    /// The fragments' entries, in order, and a digest of everything that shapes the config.
    fn load(&self) -> Result<(Vec<Entry>, String), Error> {
        let mut parts: Vec<Vec<u8>> = vec![b"recipe-v2".to_vec()];
        match &self.base {
            Base::Tinyconfig => parts.push(b"tinyconfig".to_vec()),
            Base::Defconfig => parts.push(b"defconfig".to_vec()),
            Base::File(p) => {
                parts.push(b"file".to_vec());
                parts.push(std::fs::read(p).map_err(io(p))?);
            }
        }
        let mut entries = Vec::new();
        for f in &self.fragments {
            let text = std::fs::read_to_string(f).map_err(io(f))?;
            let e = config::parse_fragment(f, &text)?;
            // The assignments, not the text: editing a comment must not cost a cold build.
            for x in &e {
                parts.push(format!("{}={}", x.name, x.value).into_bytes());
            }
            entries.extend(e);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Ok((entries, cache::key(&refs)))
    }
}

/// What to build.
pub struct Request<'a> {
    pub name: &'a str,
    pub arch: Arch,
    pub origin: &'a Origin,
    pub steps: &'a [PatchStep],
    pub recipe: &'a Recipe,
}

/// Progress while building.
pub enum Event<'a> {
    /// A new stage: "checkout", "config", "make", ...
    Stage(&'a str),
    /// One line of build output.
    Line(&'a str),
}

/// The compiler prefix for building `arch` kernels on this host.
pub fn cross_compile(arch: Arch) -> &'static str {
    if Arch::host() == Some(arch) {
        ""
    } else {
        match arch {
            Arch::X86_64 => "x86_64-linux-gnu-",
            Arch::Aarch64 => "aarch64-linux-gnu-",
        }
    }
}

/// The image target and where make leaves it.
fn image_target(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("bzImage", "arch/x86/boot/bzImage"),
        Arch::Aarch64 => ("Image", "arch/arm64/boot/Image"),
    }
}

/// The first line of `gcc --version` and `ld --version` for the arch's toolchain.
fn toolchain_id(arch: Arch) -> Result<String, Error> {
    let cross = cross_compile(arch);
    let mut id = String::new();
    for tool in ["gcc", "ld"] {
        let cmd = format!("{cross}{tool}");
        let out = Command::new(&cmd)
            .arg("--version")
            .output()
            .map_err(|source| Error::Spawn {
                command: cmd.clone(),
                source,
            })?;
        id.push_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or(""));
        id.push('\n');
    }
    Ok(id)
}

/// Applies the series and returns its result plus the artifact key, without building.
pub fn plan(req: &Request, log: &dyn Fn(&str)) -> Result<Plan, Error> {
    let (entries, recipe_key) = req.recipe.load()?;
    let (store, base) = Store::open(&cache::dir("git")?, req.origin, log)?;
    let applied = store.apply(base, req.steps, log)?;
    let toolchain = toolchain_id(req.arch)?;
    let key = cache::key(&[
        b"kbuild-v2",
        applied.tree.as_bytes(),
        recipe_key.as_bytes(),
        req.arch.as_str().as_bytes(),
        toolchain.as_bytes(),
    ]);
    Ok(Plan {
        store,
        base,
        applied,
        entries,
        recipe_key,
        key,
    })
}

pub struct Plan {
    store: Store,
    pub base: git2::Oid,
    pub applied: git::Applied,
    entries: Vec<Entry>,
    recipe_key: String,
    /// The artifact cache key.
    pub key: String,
}

/// Builds (or finds in the cache) the kernel `req` describes.
pub fn build(req: &Request, on: &dyn Fn(Event)) -> Result<Artifacts, Error> {
    let log = |m: &str| on(Event::Stage(m));
    let plan = plan(req, &log)?;
    let out = cache::dir("kernels/built")?.join(format!("{}-{}", req.arch, plan.key));
    let _lock = cache::lock(&out)?;
    if cache::is_complete(&out) {
        return artifacts(req, &plan, &out);
    }
    let slot_name = format!("{}-{}", req.arch, plan.recipe_key);
    let slot = cache::dir("kbuild")?.join(&slot_name);
    let _slot_lock = cache::lock(&slot)?;
    let src = slot.join("src");
    let obj = slot.join("out");
    std::fs::create_dir_all(&obj).map_err(io(&obj))?;

    on(Event::Stage(&format!(
        "checking out {} into {}",
        short(plan.applied.tree),
        src.display()
    )));
    plan.store.checkout(plan.applied.commit, &src, &slot_name)?;

    let make = Make::new(req.arch, &src, &obj, plan.applied.time, &slot.join("build.log"))?;
    on(Event::Stage("configuring"));
    configure(&make, &req.recipe.base, &plan.entries, &obj, on)?;

    let (target, image_rel) = image_target(req.arch);
    let cfg_path = obj.join(".config");
    let cfg = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let modules = config::values(&cfg).get("MODULES").is_some_and(|v| v == "y");
    let mut targets = vec![target.to_string(), "vmlinux".into()];
    if modules {
        targets.push("modules".into());
    }
    on(Event::Stage("make"));
    make.run(&targets, on)?;

    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for (from, to) in [(image_rel, "image"), ("vmlinux", "vmlinux"), (".config", "config")] {
        let f = obj.join(from);
        if !f.is_file() {
            return Err(Error::NoOutput { path: f });
        }
        std::fs::copy(&f, tmp.join(to)).map_err(io(&f))?;
    }
    let rel_path = obj.join("include/config/kernel.release");
    let release = std::fs::read_to_string(&rel_path).map_err(io(&rel_path))?;
    std::fs::write(tmp.join("release"), release.trim()).map_err(io(&tmp))?;
    if modules {
        on(Event::Stage("modules_install"));
        make.run(
            &[
                "modules_install".into(),
                format!("INSTALL_MOD_PATH={}", tmp.join("mod").display()),
                "INSTALL_MOD_STRIP=1".into(),
            ],
            on,
        )?;
    }
    let _ = std::fs::copy(slot.join("build.log"), tmp.join("build.log"));
    let desc = serde_json::json!({
        "name": req.name,
        "arch": req.arch,
        "base_commit": plan.base.to_string(),
        "commit": plan.applied.commit.to_string(),
        "tree": plan.applied.tree.to_string(),
        "steps": req.steps.iter().map(|s| s.describe()).collect::<Vec<_>>(),
        "release": release.trim(),
    });
    std::fs::write(tmp.join("source.json"), desc.to_string()).map_err(io(&tmp))?;
    std::fs::write(tmp.join(cache::COMPLETE), b"").map_err(io(&tmp))?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    artifacts(req, &plan, &out)
}

fn short(oid: git2::Oid) -> String {
    oid.to_string()[..12].to_string()
}

fn artifacts(req: &Request, plan: &Plan, out: &Path) -> Result<Artifacts, Error> {
    let release = std::fs::read_to_string(out.join("release")).ok();
    let modules = release
        .as_ref()
        .map(|r| out.join("mod/lib/modules").join(r))
        .filter(|p| p.join("modules.dep").is_file());
    Ok(Artifacts {
        name: req.name.to_string(),
        arch: req.arch,
        release,
        origin: format!(
            "built from tree {} ({} step(s) on {})",
            short(plan.applied.tree),
            req.steps.len(),
            short(plan.base)
        ),
        image: out.join("image"),
        modules,
        vmlinux: Some(out.join("vmlinux")),
        headers: None,
        id: plan.key.clone(),
    })
}

/// Writes the base config, merges the fragments, runs olddefconfig and checks the result. When
/// the final config is byte-identical to the previous build's, its mtime is kept so that kbuild
/// sees nothing new.
fn configure(make: &Make, base: &Base, entries: &[Entry], obj: &Path, on: &dyn Fn(Event)) -> Result<(), Error> {
    let cfg = obj.join(".config");
    let before = std::fs::read(&cfg).ok();
    let before_mtime = std::fs::metadata(&cfg).and_then(|m| m.modified()).ok();
    match base {
        Base::Tinyconfig => make.run(&["tinyconfig".into()], on)?,
        Base::Defconfig => make.run(&["defconfig".into()], on)?,
        Base::File(p) => {
            std::fs::copy(p, &cfg).map_err(io(p))?;
            make.run(&["olddefconfig".into()], on)?;
        }
    }
    let text = std::fs::read_to_string(&cfg).map_err(io(&cfg))?;
    std::fs::write(&cfg, config::merge(&text, entries)).map_err(io(&cfg))?;
    make.run(&["olddefconfig".into()], on)?;
    let fin = std::fs::read_to_string(&cfg).map_err(io(&cfg))?;
    config::check(&fin, entries)?;
    if let (Some(b), Some(t)) = (before, before_mtime) {
        if b == fin.as_bytes() {
            if let Ok(f) = std::fs::File::options().write(true).open(&cfg) {
                let _ = f.set_modified(t);
            }
        }
    }
    Ok(())
}

/// `make` in the source worktree with `O=`, ARCH, CROSS_COMPILE and fixed build identity.
struct Make {
    base: Vec<String>,
    src: PathBuf,
    log: PathBuf,
}

impl Make {
    fn new(arch: Arch, src: &Path, obj: &Path, time: i64, log: &Path) -> Result<Self, Error> {
        let cross = cross_compile(arch);
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut base = vec![
            format!("-j{jobs}"),
            format!("O={}", obj.display()),
            format!("ARCH={}", arch.kernel()),
            format!("KBUILD_BUILD_TIMESTAMP={}", crate::timefmt::utc(time)),
            "KBUILD_BUILD_USER=repro".into(),
            "KBUILD_BUILD_HOST=repro".into(),
            // Set (even empty) so setlocalversion does not append "+" for the git worktree.
            "LOCALVERSION=".into(),
        ];
        if !cross.is_empty() {
            base.push(format!("CROSS_COMPILE={cross}"));
        }
        if which("ccache") {
            base.push(format!("CC=ccache {cross}gcc"));
        }
        std::fs::File::create(log).map_err(io(log))?;
        Ok(Make {
            base,
            src: src.to_path_buf(),
            log: log.to_path_buf(),
        })
    }

    fn run(&self, targets: &[String], on: &dyn Fn(Event)) -> Result<(), Error> {
        let mut cmd = Command::new("make");
        cmd.current_dir(&self.src)
            .args(&self.base)
            .args(targets)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("make {}", targets.join(" "));
        let mut log = std::fs::File::options()
            .append(true)
            .open(&self.log)
            .map_err(io(&self.log))?;
        let _ = writeln!(log, "$ make {} {}", self.base.join(" "), targets.join(" "));
        let mut child = crate::process::spawn_guarded(cmd).map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        let pid = child.id();
        // stderr on a thread, stdout here; both into the log and the callback.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let err = child.stderr.take().map(|e| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
        });
        if let Some(o) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(o).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        } else {
            drop(tx);
        }
        let mut tail: std::collections::VecDeque<String> = Default::default();
        for line in rx {
            let _ = writeln!(log, "{line}");
            on(Event::Line(&line));
            if tail.len() == 25 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        if let Some(t) = err {
            let _ = t.join();
        }
        let status = child.wait().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        crate::process::forget(pid);
        if !status.success() {
            return Err(Error::Make {
                command,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(())
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

#[cfg(test)]
mod recipe_tests {
    use super::*;

    #[test]
    fn the_recipe_key_ignores_comments_but_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.config");
        let key = |text: &str| {
            std::fs::write(&f, text).unwrap();
            let r = Recipe {
                base: Base::Tinyconfig,
                fragments: vec![f.clone()],
            };
            r.load().unwrap().1
        };
        let a = key("# one comment\nCONFIG_XFS_FS=y\n");
        assert_eq!(a, key("# another comment\n\nCONFIG_XFS_FS=y\n"));
        assert_ne!(a, key("CONFIG_XFS_FS=m\n"));
    }
}
