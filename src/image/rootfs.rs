//! The base root filesystem: an image definition (`images/NAME.toml`) built with mmdebstrap into
//! an ext4 image, cached by a key of its definition.

use super::error::{io_err, Error};
use crate::arch::Arch;
use crate::cache;
use crate::def::diag::from_toml;
use crate::def::units::MiB;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    summary: String,
    suite: String,
    mirror: Option<String>,
    packages: Vec<String>,
    size: Option<MiB>,
}

/// An image definition from `images/NAME.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct Definition {
    pub name: String,
    pub summary: String,
    pub suite: String,
    pub mirror: Option<String>,
    pub packages: Vec<String>,
    pub size_mib: Option<u64>,
    #[serde(skip)]
    source: String,
}

/// Guest-side files baked into every image. Part of the cache key.
const GUEST_FILES: &[(&str, u32, &str)] = &[
    ("etc/repro/rc", 0o755, include_str!("guest/rc.sh")),
    ("etc/repro/sshd", 0o755, include_str!("guest/sshd.sh")),
    ("etc/inittab", 0o644, include_str!("guest/inittab")),
    ("etc/ssh/sshd_config", 0o644, include_str!("guest/sshd_config")),
    ("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nstatd:x:101:65534::/var/lib/nfs:/usr/sbin/nologin\n_rpc:x:102:65534::/run/rpcbind:/usr/sbin/nologin\n"),
    ("etc/group", 0o644, "root:x:0:\ntty:x:5:\ndisk:x:6:\nshadow:x:42:\nnogroup:x:65534:\n"),
    ("etc/shadow", 0o640, "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\nstatd:*:19000:0:99999:7:::\n_rpc:*:19000:0:99999:7:::\n"),
    ("etc/hostname", 0o644, "repro\n"),
    ("etc/hosts", 0o644, "127.0.0.1 localhost\n::1 localhost\n"),
    ("etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"),
    ("etc/fstab", 0o644, "# filesystems are mounted by /etc/repro/rc\n"),
    ("etc/exports", 0o644, ""),
];
const MKROOTFS: &str = include_str!("guest/mkrootfs.sh");
/// Where the guest agent lives in the image (started by init: `guest/inittab`).
const AGENT: &str = "usr/lib/repro/agent";
/// Bump when the build procedure changes in a way the inputs do not show.
const BUILDER_VERSION: &str = "1";

impl Definition {
    pub fn parse(path: &Path, source: &str) -> Result<Self, Error> {
        let raw: Raw = from_toml(path, source).map_err(|d| Error::Invalid(Box::new(d)))?;
        Ok(Definition {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary: raw.summary,
            suite: raw.suite,
            mirror: raw.mirror,
            packages: raw.packages,
            size_mib: raw.size.map(|s| s.0),
            source: source.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &source)
    }

    /// The cache key of the built image for `arch`.
    pub fn key(&self, arch: Arch) -> String {
        let mut parts: Vec<&[u8]> = vec![
            self.source.as_bytes(),
            arch.as_str().as_bytes(),
            BUILDER_VERSION.as_bytes(),
            MKROOTFS.as_bytes(),
            crate::guest::agent::SOURCE.as_bytes(),
        ];
        for (p, _, c) in GUEST_FILES {
            parts.push(p.as_bytes());
            parts.push(c.as_bytes());
        }
        cache::key(&parts)
    }
}

pub fn find(dir: &Path, name: &str) -> Result<Definition, Error> {
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(Error::NotFound {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Definition::load(&path)
}

pub fn names(dir: &Path) -> Vec<String> {
    crate::def::load::names(dir)
}

/// A built base image.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub arch: Arch,
    pub key: String,
    pub rootfs: PathBuf,
    /// The image's static busybox, reused by the boot initramfs.
    pub busybox: PathBuf,
}

/// Builds the image for `arch` unless the cache has it.
pub fn build(def: &Definition, arch: Arch, log: &dyn Fn(&str)) -> Result<Built, Error> {
    let key = def.key(arch);
    let dir = cache::dir("images")?;
    let entry = dir.join(format!("{}-{}-{key}", def.name, arch));
    let built = Built {
        name: def.name.clone(),
        arch,
        key: key.clone(),
        rootfs: entry.join("rootfs.ext4"),
        busybox: entry.join("busybox"),
    };
    let _lock = cache::lock(&entry)?;
    if cache::is_complete(&entry) {
        return Ok(built);
    }
    log(&format!(
        "building image {} for {arch} (mmdebstrap {})",
        def.name, def.suite
    ));
    let tmp = dir.join(format!(".tmp-{}-{}-{key}", def.name, arch));
    remove_tree(&tmp)?;
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let build_log = tmp.join("build.log");
    let tar = tmp.join("base.tar");

    let mut mm = Command::new("mmdebstrap");
    mm.args(["--variant=extract", &format!("--architectures={}", arch.debian())]);
    mm.arg(format!("--include={}", def.packages.join(",")));
    mm.arg(&def.suite).arg(&tar);
    if let Some(m) = &def.mirror {
        mm.arg(m);
    }
    run_logged(&mut mm, &build_log)?;

    let overlay = tmp.join("overlay");
    for (rel, perm, content) in GUEST_FILES {
        let p = overlay.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&overlay)).map_err(io_err(&p))?;
        std::fs::write(&p, content).map_err(io_err(&p))?;
        set_mode(&p, *perm)?;
    }
    build_agent(arch, &overlay.join(AGENT), &tmp, &build_log)?;
    let root_home = overlay.join("root");
    std::fs::create_dir_all(&root_home).map_err(io_err(&root_home))?;
    set_mode(&root_home, 0o700)?;

    let script = tmp.join("mkrootfs.sh");
    std::fs::write(&script, MKROOTFS).map_err(io_err(&script))?;
    let stage = tmp.join("stage");
    let out = tmp.join("rootfs.ext4");
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    let mut mk = if root {
        Command::new("sh")
    } else {
        Command::new("fakeroot")
    };
    if !root {
        mk.arg("sh");
    }
    mk.arg(&script)
        .arg(&tar)
        .arg(&stage)
        .arg(&overlay)
        .arg(&out)
        .arg(def.size_mib.unwrap_or(0).to_string());
    run_logged(&mut mk, &build_log)?;

    let bb = stage.join("bin/busybox");
    if !bb.is_file() {
        return Err(Error::Layout {
            what: "static busybox (add busybox-static to packages)",
            path: bb,
        });
    }
    std::fs::copy(&bb, tmp.join("busybox")).map_err(io_err(&bb))?;
    remove_tree(&stage)?;
    std::fs::remove_file(&tar).map_err(io_err(&tar))?;
    cache::mark_complete(&tmp, format!("{} {arch}\n", def.name).as_bytes()).map_err(io_err(&tmp))?;
    remove_tree(&entry)?;
    std::fs::rename(&tmp, &entry).map_err(io_err(&entry))?;
    Ok(built)
}

/// Compiles the guest agent for `arch`, static (it needs nothing from the image), to `out`.
fn build_agent(arch: Arch, out: &Path, tmp: &Path, log: &Path) -> Result<(), Error> {
    let src = tmp.join("agent.c");
    std::fs::write(&src, crate::guest::agent::SOURCE).map_err(io_err(&src))?;
    std::fs::create_dir_all(out.parent().unwrap_or(tmp)).map_err(io_err(out))?;
    let mut cc = Command::new(format!("{}gcc", crate::kernel::build::cross_compile(arch)));
    cc.args(["-static", "-O2", "-s", "-Wall", "-o"]).arg(out).arg(&src);
    run_logged(&mut cc, log)?;
    set_mode(out, 0o755)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io_err(p))
}

fn remove_tree(p: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            path: p.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Runs `cmd` with stdout and stderr appended to `log`.
pub(crate) fn run_logged(cmd: &mut Command, log: &Path) -> Result<(), Error> {
    let command = format!("{cmd:?}").replace('"', "");
    let f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    let f2 = f.try_clone().map_err(io_err(log))?;
    cmd.stdin(Stdio::null()).stdout(f).stderr(f2);
    let status = crate::process::status(cmd).map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    if !status.success() {
        return Err(Error::Tool {
            command,
            status,
            log: log.to_path_buf(),
        });
    }
    Ok(())
}
