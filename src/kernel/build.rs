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
use super::series_memo;
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
    /// `make` failed for a reason of the host's, not the tree's (see [`host_cause`]): no fact
    /// about the commit, so a bisect tries it again rather than call it unbuildable.
    #[error("`{command}` failed because of the host, not the source: {why}; log: {}\n{tail}", log.display())]
    Host {
        command: String,
        why: String,
        log: PathBuf,
        tail: String,
    },
}

/// Built kernels are kept under this many GiB (`REPRO_KERNEL_CACHE_GIB`, default 20): a
/// bisect leaves one per step (a tinyconfig kernel with its vmlinux is about 55 MiB).
fn built_cap() -> u64 {
    let gib = std::env::var("REPRO_KERNEL_CACHE_GIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20);
    gib << 30
}

/// A built kernel used within this long is never pruned (a run in progress may be using it).
const KEEP_FRESH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Below this much free space in the build directory, a failed build is blamed on the disk.
const LOW_DISK: u64 = 256 << 20;

/// What in a build log line shows that the host, not the source, failed: the OOM killer (gcc
/// reports its cc1 `Killed`), a full disk, memory that could not be had, a tool that is not
/// installed.
pub fn host_sign(line: &str) -> Option<&'static str> {
    const SIGNS: [(&str, &str); 5] = [
        (
            "Killed signal terminated program",
            "a compiler process was killed (out of memory?)",
        ),
        (
            "internal compiler error: Killed",
            "a compiler process was killed (out of memory?)",
        ),
        ("No space left on device", "the disk is full"),
        ("Cannot allocate memory", "the host ran out of memory"),
        ("virtual memory exhausted", "the host ran out of memory"),
    ];
    let line = line.trim_end();
    // make's report of a step that died by SIGKILL (the OOM killer's signal: 128 + 9), or whose
    // command could not be found (127); the shell's own word for a killed child.
    if line.ends_with("] Killed") || line.ends_with("] Error 137") || line == "Killed" {
        return Some("a build step was killed (out of memory?)");
    }
    if missing_tool(line) {
        return Some("a tool the build runs is not installed");
    }
    SIGNS.iter().find(|(s, _)| line.contains(s)).map(|(_, why)| *why)
}

/// A command looked up on PATH that is not there: `sh: 1: bc: not found`, `make: bc: No such
/// file or directory`, `bc: Command not found`. A missing file of the tree (`scripts/x.sh:
/// not found`, a path) is the tree's failure, not the host's.
fn missing_tool(line: &str) -> bool {
    fn command(rest: &str) -> Option<&str> {
        rest.rsplit(": ").next().map(str::trim).filter(|c| !c.is_empty())
    }
    let on_path = |c: &str| !c.contains('/') && !c.contains(' ');
    if let Some(rest) = line
        .strip_suffix(": not found")
        .or_else(|| line.strip_suffix(": Command not found"))
    {
        return command(rest).is_some_and(on_path);
    }
    if let Some(rest) = line
        .strip_prefix("make: ")
        .and_then(|r| r.strip_suffix(": No such file or directory"))
    {
        return on_path(rest.trim());
    }
    false
}

/// Why a failed `make` is the host's fault, if it is: a signal ended make itself, a line of its
/// output shows a host failure, or the disk is (nearly) full. `None`: the tree did not build.
pub fn host_cause(signal: Option<i32>, sign: Option<&str>, free_bytes: Option<u64>) -> Option<String> {
    if let Some(sig) = signal {
        return Some(format!("make was ended by signal {sig}"));
    }
    if let Some(why) = sign {
        return Some(why.to_string());
    }
    free_bytes
        .filter(|&b| b < LOW_DISK)
        .map(|b| format!("the disk is nearly full ({} MiB free)", b >> 20))
}

/// Free bytes on the filesystem that holds `p`.
fn free_bytes(p: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
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
    /// Fragments repro itself supplies, (name, text), after the files.
    pub builtin: Vec<(&'static str, &'static str)>,
}

/// The fragment `debug_info = "full"` adds: full DWARF and the gdb scripts.
pub const DEBUG_INFO_FULL: (&str, &str) = ("repro:debug-info-full.config", include_str!("debug-info-full.config"));

/// The fragment `debug_checks = true` adds: the debug checkers and loadable modules.
pub const DEBUG_CHECKS: (&str, &str) = ("repro:debug-checks.config", include_str!("debug-checks.config"));

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
        let mut texts = Vec::new();
        for f in &self.fragments {
            texts.push((f.clone(), std::fs::read_to_string(f).map_err(io(f))?));
        }
        for (name, text) in &self.builtin {
            texts.push((PathBuf::from(name), text.to_string()));
        }
        for (f, text) in &texts {
            let e = config::parse_fragment(f, text)?;
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
    let memo = cache::dir("toolchain").ok();
    let mut id = String::new();
    for tool in ["gcc", "ld"] {
        let cmd = format!("{cross}{tool}");
        id.push_str(&version_line(&cmd, memo.as_deref())?);
        id.push('\n');
    }
    Ok(id)
}

/// The first line of `tool --version`, remembered in `memo` under the identity of the binary
/// `tool` resolves to (its real path, size, inode and times): asking gcc and ld took 20 ms of
/// every run of a source kernel, and installing another version replaces the binary, which is
/// then asked again. Without `memo`, or when `tool` is not found on `PATH`, it is asked.
fn version_line(tool: &str, memo: Option<&Path>) -> Result<String, Error> {
    let entry = memo
        .zip(on_path(tool).as_deref().and_then(identity))
        .map(|(dir, id)| dir.join(cache::key(&[id.as_bytes()])));
    if let Some(line) = entry.as_ref().and_then(|e| std::fs::read_to_string(e).ok()) {
        return Ok(line);
    }
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|source| Error::Spawn {
            command: tool.to_string(),
            source,
        })?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    if let Some(entry) = entry.filter(|_| out.status.success() && !line.is_empty()) {
        // Best effort: a memo that cannot be written is asked again next time.
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &line).is_ok() && std::fs::rename(&tmp, &entry).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(line)
}

/// Where `PATH` finds `tool`.
fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// What changes when the binary `path` leads to is replaced or rewritten.
fn identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&real).ok()?;
    Some(format!(
        "{}\0{}\0{}\0{}.{}\0{}.{}",
        real.display(),
        m.len(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The plan the series' memo at `memo` gives ([`super::series_memo`]), without opening the
/// store.
fn remembered(req: &Request, memo: Option<&Path>) -> Result<Option<Plan>, Error> {
    match memo.and_then(series_memo::read) {
        Some(resolved) => keyed(req, resolved).map(Some),
        None => Ok(None),
    }
}

/// The plan, resolved in the store (which a build checks out from, at the commit also given);
/// remembered at `memo` for the next.
fn resolve(req: &Request, memo: Option<&Path>, log: &dyn Fn(&str)) -> Result<(Plan, Store, git2::Oid), Error> {
    let (store, base) = Store::open(&cache::dir("git")?, req.origin, log)?;
    let applied = store.apply(base, req.steps, log)?;
    let resolved = series_memo::Resolved::new(base, &applied);
    if let Some(memo) = memo {
        series_memo::write(memo, &resolved);
    }
    Ok((keyed(req, resolved)?, store, applied.commit))
}

/// The plan for `resolved`: its config entries and its artifact cache key.
fn keyed(req: &Request, resolved: series_memo::Resolved) -> Result<Plan, Error> {
    let (entries, recipe_key) = req.recipe.load()?;
    let toolchain = toolchain_id(req.arch)?;
    let key = cache::key(&[
        b"kbuild-v2",
        &resolved.tree_bytes(),
        recipe_key.as_bytes(),
        req.arch.as_str().as_bytes(),
        toolchain.as_bytes(),
    ]);
    Ok(Plan {
        resolved,
        entries,
        recipe_key,
        key,
    })
}

struct Plan {
    /// The base commit, and the commit and tree the series made of it.
    pub resolved: series_memo::Resolved,
    entries: Vec<Entry>,
    recipe_key: String,
    /// The artifact cache key.
    pub key: String,
}

/// Builds (or finds in the cache) the kernel `req` describes.
pub fn build(req: &Request, on: &dyn Fn(Event)) -> Result<Artifacts, Error> {
    let log = |m: &str| on(Event::Stage(m));
    let memo = series_memo::path(&cache::dir("git")?, req.origin, req.steps)?;
    if let Some(plan) = remembered(req, memo.as_deref())? {
        let out = built_dir(req, &plan)?;
        let _lock = cache::lock(&out)?;
        if let Some(found) = found(req, &plan, &out)? {
            return Ok(found);
        }
    }
    let (plan, store, commit) = resolve(req, memo.as_deref(), &log)?;
    let out = built_dir(req, &plan)?;
    let _lock = cache::lock(&out)?;
    if let Some(found) = found(req, &plan, &out)? {
        return Ok(found);
    }
    let slot_name = format!("{}-{}", req.arch, plan.recipe_key);
    let slot = cache::dir("kbuild")?.join(&slot_name);
    let _slot_lock = cache::lock(&slot)?;
    let src = slot.join("src");
    let obj = slot.join("out");
    std::fs::create_dir_all(&obj).map_err(io(&obj))?;

    on(Event::Stage(&format!(
        "checking out {} into {}",
        short(&plan.resolved.tree),
        src.display()
    )));
    store.checkout(commit, &src, &slot_name)?;

    let make = Make::new(req.arch, &src, &obj, &slot.join("build.log"))?;
    on(Event::Stage("configuring"));
    configure(&make, &req.recipe.base, &plan.entries, &obj, on)?;

    let (target, image_rel) = image_target(req.arch);
    let cfg_path = obj.join(".config");
    let cfg = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let values = config::values(&cfg);
    let modules = values.get("MODULES").is_some_and(|v| v == "y");
    let gdb_scripts = values.get("GDB_SCRIPTS").is_some_and(|v| v == "y");
    let mut targets = vec![target.to_string(), "vmlinux".into()];
    if modules {
        targets.push("modules".into());
    }
    if gdb_scripts {
        targets.push("scripts_gdb".into());
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
    if gdb_scripts {
        copy_gdb_scripts(&obj, &tmp)?;
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
        on(Event::Stage("module build tree"));
        let tree = tmp.join(super::headers::DIR);
        super::headers::export(&src, &obj, req.arch, &tree).map_err(io(&tree))?;
    }
    let _ = std::fs::copy(slot.join("build.log"), tmp.join("build.log"));
    let desc = serde_json::json!({
        "name": req.name,
        "arch": req.arch,
        "base_commit": plan.resolved.base,
        "commit": plan.resolved.commit,
        "tree": plan.resolved.tree,
        "steps": req.steps.iter().map(|s| s.describe()).collect::<Vec<_>>(),
        "release": release.trim(),
    });
    std::fs::write(tmp.join("source.json"), desc.to_string()).map_err(io(&tmp))?;
    cache::mark_complete(&tmp, b"").map_err(io(&tmp))?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    cache::touch(&out);
    drop(_lock);
    if let Some(dir) = out.parent() {
        let freed = cache::prune(dir, built_cap(), KEEP_FRESH);
        if freed > 0 {
            log(&format!(
                "cache: removed {} MiB of least recently used kernels",
                freed >> 20
            ));
        }
    }
    artifacts(req, &plan, &out)
}

/// The gdb scripts as the build left them (links into the worktree, which the next build in this
/// slot rewrites, plus generated files), copied as plain files: `vmlinux-gdb.py` beside the
/// vmlinux and the `scripts/gdb` package it imports.
fn copy_gdb_scripts(obj: &Path, out: &Path) -> Result<(), Error> {
    fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(to).map_err(io(to))?;
        for e in std::fs::read_dir(from).map_err(io(from))? {
            let path = e.map_err(io(from))?.path();
            let dest = to.join(path.file_name().unwrap_or_default());
            // `metadata` follows links: the scripts are links into the source tree.
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                copy_tree(&path, &dest)?;
            } else if path.extension().is_some_and(|x| x == "py") {
                std::fs::copy(&path, &dest).map_err(io(&path))?;
            }
        }
        Ok(())
    }
    let script = obj.join("vmlinux-gdb.py");
    if !script.is_file() {
        return Err(Error::NoOutput { path: script });
    }
    std::fs::copy(&script, out.join("vmlinux-gdb.py")).map_err(io(&script))?;
    copy_tree(&obj.join("scripts/gdb/linux"), &out.join("scripts/gdb/linux"))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Where the artifacts of `plan` are cached.
fn built_dir(req: &Request, plan: &Plan) -> Result<PathBuf, Error> {
    Ok(cache::dir("kernels/built")?.join(format!("{}-{}", req.arch, plan.key)))
}

/// The artifacts of `plan` in `out` (whose lock the caller holds), when they are whole there.
fn found(req: &Request, plan: &Plan, out: &Path) -> Result<Option<Artifacts>, Error> {
    if !cache::is_complete(out) {
        return Ok(None);
    }
    cache::touch(out);
    artifacts(req, plan, out).map(Some)
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
            short(&plan.resolved.tree),
            req.steps.len(),
            short(&plan.resolved.base)
        ),
        image: out.join("image"),
        modules,
        vmlinux: Some(out.join("vmlinux")),
        gdb_scripts: Some(out.join("vmlinux-gdb.py")).filter(|p| p.is_file()),
        headers: Some(out.join(super::headers::DIR))
            .filter(|p| p.is_dir())
            .map(super::artifacts::Headers::Tree),
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
    fn new(arch: Arch, src: &Path, obj: &Path, log: &Path) -> Result<Self, Error> {
        let cross = cross_compile(arch);
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut base = vec![
            format!("-j{jobs}"),
            format!("O={}", obj.display()),
            format!("ARCH={}", arch.kernel()),
            // The same for every build, as is the build number, so two trees that compile to
            // the same code give byte-identical images (a bisect compares a culprit's image
            // with its parent's): nothing about when or how often a slot built gets in.
            format!("KBUILD_BUILD_TIMESTAMP={}", crate::timefmt::utc(0)),
            "KBUILD_BUILD_VERSION=1".into(),
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
        let mut sign = None;
        for line in rx {
            let _ = writeln!(log, "{line}");
            sign = sign.or(host_sign(&line));
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
            use std::os::unix::process::ExitStatusExt;
            let tail = tail.into_iter().collect::<Vec<_>>().join("\n");
            if let Some(why) = host_cause(status.signal(), sign, free_bytes(&self.log)) {
                return Err(Error::Host {
                    command,
                    why,
                    log: self.log.clone(),
                    tail,
                });
            }
            return Err(Error::Make {
                command,
                status: status.to_string(),
                log: self.log.clone(),
                tail,
            });
        }
        Ok(())
    }
}

fn which(tool: &str) -> bool {
    on_path(tool).is_some()
}

#[cfg(test)]
mod recipe_tests {
    use super::*;

    /// A real script as the tool: asked once, then answered from the memo until it is rewritten.
    #[test]
    fn a_tools_version_is_asked_again_only_when_its_binary_changes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (tool, asked, memo) = (t.path().join("cc"), t.path().join("asked"), t.path().join("memo"));
        std::fs::create_dir(&memo).unwrap();
        let write = |version: &str| {
            let script = format!(
                "#!/bin/sh\necho x >> {}\necho 'cc {version}'\necho more\n",
                asked.display()
            );
            std::fs::write(&tool, script).unwrap();
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let ask = || version_line(tool.to_str().unwrap(), Some(&memo)).unwrap();
        let times = || std::fs::read_to_string(&asked).unwrap_or_default().lines().count();
        write("1.0");
        assert_eq!((ask(), ask(), times()), ("cc 1.0".to_string(), "cc 1.0".to_string(), 1));
        write("12.0");
        assert_eq!((ask(), times()), ("cc 12.0".to_string(), 2));
        // Without a memo it is asked every time.
        version_line(tool.to_str().unwrap(), None).unwrap();
        assert_eq!(times(), 3);
    }

    /// Real make, real gcc, real signals: which failures are the tree's.
    #[test]
    fn only_a_failure_of_the_source_is_a_build_failure() {
        let make = |recipe: &str, file: Option<(&str, &str)>| {
            let t = tempfile::tempdir().unwrap();
            std::fs::write(t.path().join("Makefile"), format!("all:\n\t{recipe}\n")).unwrap();
            if let Some((name, text)) = file {
                std::fs::write(t.path().join(name), text).unwrap();
            }
            let m = Make::new(Arch::X86_64, t.path(), &t.path().join("o"), &t.path().join("log")).unwrap();
            m.run(&["all".into()], &|_| {}).unwrap_err()
        };
        let tree = make("gcc -c bad.c -o bad.o", Some(("bad.c", "int x = ;\n")));
        assert!(matches!(tree, Error::Make { .. }), "a compile error: {tree}");
        let killed = make("sh -c 'kill -9 $$$$'", None);
        assert!(
            matches!(&killed, Error::Host { why, .. } if why.contains("killed")),
            "a step the OOM killer would end: {killed}"
        );
        let missing = make("no-such-tool-repro-test --x", None);
        assert!(
            matches!(&missing, Error::Host { why, .. } if why.contains("not installed")),
            "{missing}"
        );
        let missing_in_sh = make("sh -c 'no-such-tool-repro-test; exit 1'", None);
        assert!(matches!(missing_in_sh, Error::Host { .. }), "{missing_in_sh}");
    }

    #[test]
    fn a_full_disk_or_a_signal_to_make_is_the_hosts_fault() {
        assert!(host_cause(Some(2), None, None).unwrap().contains("signal 2"));
        assert!(host_cause(None, None, Some(1 << 20)).unwrap().contains("nearly full"));
        assert_eq!(host_cause(None, None, Some(10 << 30)), None);
        assert_eq!(
            host_sign("fs/nfs/write.c:12:1: error: expected ';' before '}' token"),
            None
        );
        assert_eq!(
            host_sign("fs/nfs/write.c:3:10: fatal error: nope.h: No such file or directory"),
            None
        );
        // A script of the tree that is missing is the tree's failure.
        assert_eq!(host_sign("/bin/sh: 1: scripts/gen-foo.sh: not found"), None);
        assert_eq!(
            host_sign("make[2]: *** [scripts/Makefile.build:250: fs/x.o] Error 127"),
            None
        );
        assert!(host_sign("/bin/sh: 1: bc: not found").is_some());
        assert!(host_sign("make: no-such-tool: No such file or directory").is_some());
        assert!(host_sign("cc1: fatal error: fs/x.c: No space left on device").is_some());
        assert!(host_sign("gcc: fatal error: Killed signal terminated program cc1").is_some());
    }

    #[test]
    fn the_recipe_key_ignores_comments_but_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.config");
        let recipe = |text: &str, builtin| {
            std::fs::write(&f, text).unwrap();
            Recipe {
                base: Base::Tinyconfig,
                fragments: vec![f.clone()],
                builtin,
            }
            .load()
            .unwrap()
        };
        let key = |text: &str| recipe(text, vec![]).1;
        let a = key("# one comment\nCONFIG_XFS_FS=y\n");
        assert_eq!(a, key("# another comment\n\nCONFIG_XFS_FS=y\n"));
        assert_ne!(a, key("CONFIG_XFS_FS=m\n"));
        // Full debug info is another recipe, whose entries come after the files'.
        let (entries, full) = recipe("CONFIG_XFS_FS=y\n", vec![DEBUG_INFO_FULL]);
        assert_ne!(a, full);
        let last: Vec<(&str, &str)> = entries.iter().map(|e| (e.name.as_str(), e.value.as_str())).collect();
        assert_eq!(
            last,
            [("XFS_FS", "y"), ("DEBUG_INFO_REDUCED", "n"), ("GDB_SCRIPTS", "y")]
        );
        assert_eq!(entries[1].file, Path::new("repro:debug-info-full.config"));
    }
}
