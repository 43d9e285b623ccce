//! Debian kernel packages: resolved with apt-cache, fetched with `apt-get download`, unpacked
//! with dpkg-deb into the cache (never installed on the host), with modules.dep generated.

use super::artifacts::{Artifacts, DebugInfo};
use crate::arch::Arch;
use crate::archive::{self, Package, Spec};
use crate::cache;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed: {stderr}")]
    Tool { command: String, stderr: String },
    #[error("cannot run `{command}` (is it installed?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve Debian package `{package}`: {why}")]
    Resolve { package: String, why: String },
    #[error("unpacked {} has no {what}", dir.display())]
    Layout { dir: PathBuf, what: &'static str },
    #[error("cache I/O on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] cache::Error),
    #[error(transparent)]
    NotInArchive(#[from] archive::NotFound),
    #[error("the Debian archive has no {package} ({version}) {purpose} for `{name}`; the nearest kernels that have one: {near}")]
    NotListed {
        name: String,
        package: String,
        version: String,
        purpose: &'static str,
        near: String,
    },
}

/// Which Debian kernel a definition means.
#[derive(Debug, Clone)]
pub enum Want {
    /// A package name pattern (`{debarch}` replaced); a metapackage follows its dependency.
    Package(String),
    /// A version from the archive's history (`debian:6.1.0-50`, `version = "6.1.180"`).
    Spec(Spec),
}

fn run(cmd: &mut Command) -> Result<String, Error> {
    let command = format!("{cmd:?}").replace('"', "");
    let out = crate::process::output(cmd).map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(Error::Tool { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The apt lists' modification time: what memos of apt-cache answers are valid for.
fn lists_stamp() -> u128 {
    std::fs::metadata("/var/lib/apt/lists").map_or(0, |m| cache::mtime(&m).as_nanos())
}

/// Every cloud kernel image package the archive has, for both arches, with whether its `-dbg`
/// and headers packages exist. Two apt-cache calls (about 1.5 s), remembered for as long as
/// the apt lists are unchanged.
pub fn available() -> Result<Vec<Package>, Error> {
    let dir = cache::dir("kernels/debian")?;
    let memo = dir.join(format!(".available-{}", lists_stamp()));
    const SPLIT: &str = "\n=== apt-cache show ===\n";
    let text = match std::fs::read_to_string(&memo) {
        Ok(t) if t.contains(SPLIT) => t,
        _ => {
            let search = run(Command::new("apt-cache").args([
                "search",
                "--names-only",
                "^linux-(image|headers)-[0-9][^ ]*-cloud-(amd64|arm64)(-dbg)?$",
            ]))?;
            let names: Vec<&str> = search.lines().filter_map(|l| l.split(' ').next()).collect();
            let specs: Vec<String> = names
                .iter()
                .filter(|n| n.starts_with("linux-image-") && !n.ends_with("-dbg"))
                .map(|n| format!("{n}:{}", n.rsplit('-').next().unwrap_or_default()))
                .collect();
            let show = if specs.is_empty() {
                String::new()
            } else {
                run(Command::new("apt-cache")
                    .args(["show", "--no-all-versions"])
                    .args(&specs))?
            };
            let t = format!("{}{SPLIT}{show}", names.join("\n"));
            let _ = std::fs::write(&memo, &t);
            t
        }
    };
    let (names, show) = text.split_once(SPLIT).unwrap_or_default();
    Ok(archive::parse_show(show, &names.lines().collect::<Vec<_>>()))
}

/// The cache entry (`{package}_{version}_{debarch}`) for what `want` means on `arch`. Offline,
/// a metapackage falls back to the newest cached kernel (with a warning) and an ABI to its own
/// cached package; nothing else is guessed.
fn locate(want: &Want, arch: Arch, dir: &Path, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    let entry = |pkg: &str, version: &str| dir.join(format!("{pkg}_{version}_{}", arch.debian()));
    match want {
        Want::Package(pattern) => match resolve(pattern, arch, dir) {
            Ok((pkg, version)) => Ok(entry(&pkg, &version)),
            Err(e) => match cached_fallback(dir, arch, "") {
                Some(p) => {
                    log(&format!("warning: {e}; using cached {}", p.display()));
                    Ok(p)
                }
                None => Err(e),
            },
        },
        Want::Spec(spec) => match available() {
            Ok(all) => {
                let p = archive::select(spec, &all, arch)?;
                Ok(entry(&p.package, &p.version))
            }
            Err(e) => match spec {
                Spec::Abi { abi, .. } => {
                    let prefix = format!("linux-image-{abi}-cloud-{}_", arch.debian());
                    let p = cached_fallback(dir, arch, &prefix).ok_or(e)?;
                    log(&format!(
                        "warning: the archive cannot be read; using cached {}",
                        p.display()
                    ));
                    Ok(p)
                }
                _ => Err(e),
            },
        },
    }
}

/// Resolves `pattern` for `arch` to (image package, version). A metapackage is followed to the
/// `linux-image-*` package it depends on. apt-cache takes about a second, so the answer is
/// remembered for as long as the apt lists it came from are unchanged.
fn resolve(pattern: &str, arch: Arch, dir: &Path) -> Result<(String, String), Error> {
    let lists = lists_stamp();
    let memo = dir.join(format!(
        ".resolved-{}",
        cache::key(&[pattern.as_bytes(), arch.debian().as_bytes()])
    ));
    if let Ok(text) = std::fs::read_to_string(&memo) {
        let f: Vec<&str> = text.split_whitespace().collect();
        if let [stamp, pkg, version] = f[..] {
            if stamp == lists.to_string() {
                return Ok((pkg.to_string(), version.to_string()));
            }
        }
    }
    let r = resolve_with_apt(pattern, arch)?;
    let _ = std::fs::write(&memo, format!("{lists} {} {}\n", r.0, r.1));
    Ok(r)
}

fn resolve_with_apt(pattern: &str, arch: Arch) -> Result<(String, String), Error> {
    let mut pkg = pattern.replace("{debarch}", arch.debian());
    let spec = format!("{pkg}:{}", arch.debian());
    let show = run(Command::new("apt-cache").args(["show", "--no-all-versions", &spec]))?;
    let field = |name: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let mut version = field("Version:").ok_or_else(|| Error::Resolve {
        package: spec.clone(),
        why: "apt-cache show printed no Version".into(),
    })?;
    if !versioned(&pkg) {
        // A metapackage: `Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)`.
        let depends = field("Depends:").unwrap_or_default();
        let (dep, ver) = depends
            .split(',')
            .map(str::trim)
            .find_map(|d| {
                let name = d.split([' ', ':']).next().unwrap_or("");
                let ver = d
                    .split_once("(=")
                    .map(|(_, v)| v.trim_end_matches(')').trim().to_string());
                versioned(name).then(|| (name.to_string(), ver))
            })
            .ok_or_else(|| Error::Resolve {
                package: spec.clone(),
                why: format!("no linux-image-<version> package among its dependencies ({depends})"),
            })?;
        pkg = dep;
        version = match ver {
            Some(v) => v,
            None => resolve_with_apt(&pkg, arch)?.1,
        };
    }
    Ok((pkg, version))
}

/// `linux-image-6.1.0-56-cloud-amd64` is a real image package; `linux-image-cloud-amd64` is not.
fn versioned(pkg: &str) -> bool {
    pkg.strip_prefix("linux-image-")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// Newest complete cache entry whose name starts with `prefix`, for offline use.
fn cached_fallback(dir: &Path, arch: Arch, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("linux-image-") && n.starts_with(prefix) && n.ends_with(&format!("_{}", arch.debian()))
            })
        })
        .filter(|p| cache::is_complete(p))
        .collect();
    v.sort();
    v.pop()
}

pub fn fetch(
    name: &str,
    want: &Want,
    arch: Arch,
    debug_info: DebugInfo,
    log: &dyn Fn(&str),
) -> Result<Artifacts, Error> {
    let dir = cache::dir("kernels/debian")?;
    let entry = locate(want, arch, &dir, log)?;
    let _lock = cache::lock(&entry)?;
    if !cache::is_complete(&entry) {
        let entry_name = entry.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut parts = entry_name.splitn(3, '_');
        let (pkg, version) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        log(&format!("fetching {pkg} {version} ({})", arch.debian()));
        let tmp = dir.join(format!(".tmp-{entry_name}"));
        let io = |source, path: &Path| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io(e, &tmp))?;
        let root = tmp.join("root");
        download_unpack(&format!("{pkg}:{}={version}", arch.debian()), &tmp, &root)?;
        let release = release_of(&root)?;
        run(Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
        cache::mark_complete(&tmp, format!("{pkg} {version}\n").as_bytes()).map_err(|e| io(e, &tmp))?;
        let _ = std::fs::remove_dir_all(&entry);
        std::fs::rename(&tmp, &entry).map_err(|e| io(e, &entry))?;
    }
    let root = entry.join("root");
    let release = release_of(&root)?;
    let image = root.join("boot").join(format!("vmlinuz-{release}"));
    if !image.is_file() {
        return Err(Error::Layout {
            dir: root,
            what: "boot/vmlinuz-*",
        });
    }
    let origin = std::fs::read_to_string(entry.join(cache::COMPLETE))
        .unwrap_or_default()
        .trim()
        .to_string();
    // The image entry is complete; other runs of this kernel need not wait for the -dbg package.
    drop(_lock);
    let vmlinux = match (debug_info, origin.split_once(' ')) {
        (DebugInfo::Full, Some((pkg, version))) => Some(fetch_dbg(name, pkg, version, arch, &release, log)?),
        _ => None,
    };
    Ok(Artifacts {
        name: name.to_string(),
        arch,
        release: Some(release.clone()),
        origin: format!("debian {origin}"),
        image,
        modules: Some(root.join("lib/modules").join(&release)),
        vmlinux,
        gdb_scripts: None,
        id: cache::key(&[origin.as_bytes(), arch.debian().as_bytes()]),
        headers: origin
            .split_once(' ')
            .map(|(pkg, version)| super::artifacts::Headers::Debian {
                image_package: pkg.to_string(),
                version: version.to_string(),
            }),
    })
}

/// The Debian changelog an image package ships (`usr/share/doc/PKG/changelog.gz`, read with
/// zcat), the package fetched into the cache first if it is not there.
pub fn changelog(p: &Package, log: &dyn Fn(&str)) -> Result<String, Error> {
    let want = Want::Spec(Spec::Abi {
        abi: p.abi.clone(),
        arch: Some(p.arch),
    });
    let a = fetch(&p.name, &want, p.arch, DebugInfo::Default, log)?;
    let root = a.image.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
    let gz = root.join("usr/share/doc").join(&p.package).join("changelog.gz");
    if !gz.is_file() {
        return Err(Error::Layout {
            dir: root.to_path_buf(),
            what: "usr/share/doc/<package>/changelog.gz",
        });
    }
    run(Command::new("zcat").arg(&gz))
}

/// The module build tree for a Debian image package: its `linux-headers-*` package, the
/// `-common` one it includes and the host's `linux-kbuild-*` tools, unpacked together into the
/// cache (never installed), so the relative `scripts` links resolve. Returns the directory to
/// pass to `make -C`.
pub fn fetch_headers(
    kernel: &str,
    image_package: &str,
    version: &str,
    arch: Arch,
    log: &dyn Fn(&str),
) -> Result<PathBuf, Error> {
    let flavour_pkg = image_package.replacen("linux-image-", "linux-headers-", 1);
    let dir = cache::dir("kernels/debian")?;
    let entry = dir.join(format!("{flavour_pkg}_{version}_{}", arch.debian()));
    let tree = |root: &Path| root.join("usr/src").join(&flavour_pkg);
    let _lock = cache::lock(&entry)?;
    if cache::is_complete(&entry) {
        return Ok(tree(&entry.join("root")));
    }
    companion_listed(kernel, image_package, version, arch, Companion::Headers)?;
    log(&format!(
        "fetching {flavour_pkg} {version} ({}) for module builds",
        arch.debian()
    ));
    let tmp = dir.join(format!(
        ".tmp-{}",
        entry.file_name().unwrap_or_default().to_string_lossy()
    ));
    let io = |source, path: &Path| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).map_err(|e| io(e, &root))?;
    let unpack = |spec: &str| download_unpack(spec, &tmp, &root);
    unpack(&format!("{flavour_pkg}:{}={version}", arch.debian()))?;
    // The flavour's Makefile is one line: `include /usr/src/linux-headers-<abi>-common/Makefile`.
    let flavour = tree(&root);
    let makefile = flavour.join("Makefile");
    let text = std::fs::read_to_string(&makefile).map_err(|e| io(e, &makefile))?;
    let common = text
        .lines()
        .find_map(|l| l.strip_prefix("include /usr/src/"))
        .and_then(|r| r.split('/').next())
        .ok_or(Error::Layout {
            dir: flavour.clone(),
            what: "`include /usr/src/linux-headers-*-common/Makefile` in its Makefile",
        })?
        .to_string();
    unpack(&format!("{common}={version}"))?;
    // The kbuild tools run on the host; their version is the kernel's (`6.1` of `6.1.0-56`).
    let series: Vec<&str> = common
        .trim_start_matches("linux-headers-")
        .splitn(3, ['.', '-'])
        .collect();
    let kbuild = format!("linux-kbuild-{}.{}", series[0], series.get(1).unwrap_or(&"0"));
    unpack(&format!("{kbuild}:{}={version}", host_debian_arch()))?;
    let fixed = text.replace(
        "include /usr/src/",
        &format!("include {}/usr/src/", entry.join("root").display()),
    );
    std::fs::write(&makefile, fixed).map_err(|e| io(e, &makefile))?;
    if !flavour.join("scripts/Makefile.build").is_file() {
        return Err(Error::Layout {
            dir: flavour,
            what: "scripts/Makefile.build (from linux-kbuild)",
        });
    }
    cache::mark_complete(&tmp, format!("{flavour_pkg} {common} {kbuild} {version}\n").as_bytes())
        .map_err(|e| io(e, &tmp))?;
    let _ = std::fs::remove_dir_all(&entry);
    std::fs::rename(&tmp, &entry).map_err(|e| io(e, &entry))?;
    Ok(tree(&entry.join("root")))
}

/// A package that goes with an image package.
#[derive(Debug, Clone, Copy)]
enum Companion {
    Headers,
    Dbg,
}

/// Fails, naming the nearest kernels that have one, when the archive lists the image package
/// but not its headers or `-dbg` package (the archive lacks them for some releases). An archive
/// that cannot be read is left to the download to report.
fn companion_listed(
    kernel: &str,
    image_package: &str,
    version: &str,
    arch: Arch,
    what: Companion,
) -> Result<(), Error> {
    let Ok(all) = available() else { return Ok(()) };
    let Some(p) = all.iter().find(|p| p.package == image_package && p.arch == arch) else {
        return Ok(());
    };
    let has = |p: &Package| match what {
        Companion::Headers => p.headers,
        Companion::Dbg => p.dbg,
    };
    if has(p) {
        return Ok(());
    }
    let have: Vec<Package> = all.iter().filter(|p| has(p)).cloned().collect();
    let spec = Spec::Abi {
        abi: p.abi.clone(),
        arch: None,
    };
    let near = archive::closest_text(&archive::closest(&spec, &have, arch));
    let (package, purpose) = match what {
        Companion::Headers => (
            image_package.replacen("linux-image-", "linux-headers-", 1),
            "to build modules against",
        ),
        Companion::Dbg => (format!("{image_package}-dbg"), "for full debug info"),
    };
    Err(Error::NotListed {
        name: kernel.to_string(),
        package,
        version: version.to_string(),
        purpose,
        near,
    })
}

/// The vmlinux with full DWARF from the image package's `-dbg` package, fetched once into the
/// cache. Only the vmlinux is unpacked: the package also holds every module's debug info
/// (about 1.7 GiB unpacked for a cloud kernel).
fn fetch_dbg(
    kernel: &str,
    image_package: &str,
    version: &str,
    arch: Arch,
    release: &str,
    log: &dyn Fn(&str),
) -> Result<PathBuf, Error> {
    let pkg = format!("{image_package}-dbg");
    let dir = cache::dir("kernels/debian")?;
    let entry = dir.join(format!("{pkg}_{version}_{}", arch.debian()));
    let vmlinux = entry.join(format!("vmlinux-{release}"));
    let _lock = cache::lock(&entry)?;
    if cache::is_complete(&entry) && vmlinux.is_file() {
        return Ok(vmlinux);
    }
    companion_listed(kernel, image_package, version, arch, Companion::Dbg)?;
    let spec = format!("{pkg}:{}={version}", arch.debian());
    let size = run(Command::new("apt-cache").args(["show", "--no-all-versions", &spec]))
        .ok()
        .and_then(|show| {
            show.lines()
                .find_map(|l| l.strip_prefix("Size:").and_then(|v| v.trim().parse::<u64>().ok()))
        });
    log(&format!(
        "fetching {pkg} {version} for full debug info ({}; once, into the cache)",
        size.map_or("a large download".to_string(), |b| format!("{} MiB download", b >> 20))
    ));
    let io = |source, path: &Path| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = dir.join(format!(".tmp-{pkg}_{version}_{}", arch.debian()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(e, &tmp))?;
    let fetched = download_vmlinux(&spec, &tmp, release, log).and_then(|unpacked| {
        let name = vmlinux.file_name().unwrap_or_default();
        std::fs::rename(&unpacked, tmp.join(name)).map_err(|e| io(e, &unpacked))?;
        let _ = std::fs::remove_dir_all(tmp.join("usr"));
        cache::mark_complete(&tmp, format!("{pkg} {version}\n").as_bytes()).map_err(|e| io(e, &tmp))?;
        let _ = std::fs::remove_dir_all(&entry);
        std::fs::rename(&tmp, &entry).map_err(|e| io(e, &entry))
    });
    if fetched.is_err() {
        // Hundreds of MB: not left behind for the next try to find.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    fetched.map(|()| vmlinux)
}

/// Downloads the -dbg package `spec` into `tmp` and unpacks its vmlinux only, streaming the
/// data member through tar; the .deb is removed. Returns the unpacked file.
fn download_vmlinux(spec: &str, tmp: &Path, release: &str, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    run(Command::new("apt-get").current_dir(tmp).args(["download", "-q", spec]))?;
    let deb = the_deb(tmp)?;
    let member = format!("./usr/lib/debug/boot/vmlinux-{release}");
    log(&format!("unpacking {member} from {}", deb.display()));
    run(Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            "dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\" \"$3\"",
        ])
        .args(["bash".as_ref(), deb.as_os_str(), tmp.as_os_str(), member.as_ref()]))?;
    std::fs::remove_file(&deb).map_err(|source| Error::Io {
        path: deb.clone(),
        source,
    })?;
    let unpacked = tmp.join(&member);
    if !unpacked.is_file() {
        return Err(Error::Layout {
            dir: tmp.to_path_buf(),
            what: "usr/lib/debug/boot/vmlinux-<release> in the -dbg package",
        });
    }
    Ok(unpacked)
}

/// The one .deb `apt-get download` left in `dir`.
fn the_deb(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or(Error::Layout {
            dir: dir.to_path_buf(),
            what: ".deb after apt-get download",
        })
}

fn host_debian_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// `apt-get download SPEC` into `dir`, and the package unpacked into `root` with dpkg-deb (the
/// .deb is removed).
fn download_unpack(spec: &str, dir: &Path, root: &Path) -> Result<(), Error> {
    let io = |source, path: &Path| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    run(Command::new("apt-get").current_dir(dir).args(["download", "-q", spec]))?;
    let deb = the_deb(dir)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root))?;
    std::fs::remove_file(&deb).map_err(|e| io(e, &deb))
}

fn release_of(root: &Path) -> Result<String, Error> {
    let m = root.join("lib/modules");
    std::fs::read_dir(&m)
        .map_err(|source| Error::Io {
            path: m.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or(Error::Layout {
            dir: root.to_path_buf(),
            what: "lib/modules/<release>",
        })
}
