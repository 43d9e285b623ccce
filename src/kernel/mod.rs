//! Kernel definitions (`kernels/*.toml`) and the artifacts they resolve to.
//!
//! Kinds: `debian` (a Debian kernel package, fetched with `apt-get download` into the cache,
//! never installed on the host), `local` (files on disk) and `source` (built from a tarball or a
//! git revision plus a patch series and a config recipe; see [`build`]).

mod artifacts;
pub mod build;
pub mod config;
mod debian;
pub mod git;
pub mod headers;
mod series_memo;

pub use artifacts::{Artifacts, DebugInfo, Headers};
pub use debian::{available, changelog};

use crate::arch::Arch;
use crate::archive;
use crate::def::diag::{from_toml, Diagnostic};
use crate::def::patch::{PatchStep, RawPatchStep};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("no kernel named `{name}` in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("kernel `{name}` is for {have}, not {want}")]
    WrongArch { name: String, have: Arch, want: Arch },
    #[error("kernel `{name}`: {what} {} does not exist", path.display())]
    Missing {
        name: String,
        what: &'static str,
        path: PathBuf,
    },
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
    #[error(transparent)]
    Debian(#[from] debian::Error),
    #[error("kernel `{name}`: {source}")]
    Build {
        name: String,
        #[source]
        source: Box<build::Error>,
    },
    #[error("kernel `{name}` has no headers to build out-of-tree modules against (Debian kernels have them; a source kernel needs CONFIG_MODULES, which `debug_checks = true` sets)")]
    NoHeaders { name: String },
    #[error("kernel `{name}`: {why}")]
    BadName { name: String, why: String },
    #[error("kernel definitions extend each other in a cycle: {chain}")]
    Cycle { chain: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Debian,
    Local,
    Source,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    summary: String,
    kind: Kind,
    /// debian: the package to fetch; `{debarch}` is replaced by the Debian arch. A metapackage
    /// (e.g. `linux-image-cloud-{debarch}`) is resolved to the image package it depends on.
    package: Option<Spanned<String>>,
    /// debian: a cloud kernel from the archive's history instead of a package name: an ABI
    /// (`6.1.0-50`), an upstream version (`6.1.180`), a series (`6.1`) or `latest`.
    version: Option<Spanned<String>>,
    /// local: the arch the files are built for.
    arch: Option<Arch>,
    /// local: the bootable image (bzImage / Image), relative to the definition file.
    image: Option<Spanned<String>>,
    /// local: a `lib/modules/<release>` directory.
    modules: Option<String>,
    /// local: the vmlinux with symbols, for symbolization.
    vmlinux: Option<String>,
    /// Extra kernel command line for every guest booting this kernel.
    #[serde(default)]
    cmdline: Vec<String>,
    /// source: another source definition (file stem) whose source, config, series, arches and
    /// cmdline this one starts from; its own `patch` steps are appended.
    extends: Option<Spanned<String>>,
    /// source: where the tree comes from.
    source: Option<RawSource>,
    /// source: the config recipe.
    config: Option<RawConfig>,
    /// source: the patch series, applied in order.
    #[serde(default)]
    patch: Vec<Spanned<RawPatchStep>>,
    /// source: the arches it builds for (default: all).
    arches: Option<Vec<Arch>>,
    /// `full`: full DWARF and gdb scripts (source), the `-dbg` package's vmlinux (debian).
    debug_info: Option<DebugInfo>,
    /// source: build with the kernel's debug checkers (KASAN, KFENCE, lockdep, UBSAN, ...) and
    /// loadable modules: `src/kernel/debug-checks.config`. Inherited through `extends`.
    debug_checks: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// A source tarball (absolute, or relative to the definition).
    tarball: Option<String>,
    /// A git repository path (relative to the definition) or URL.
    git: Option<String>,
    /// The revision in `git`.
    rev: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// `tinyconfig`, `defconfig`, or a config file relative to the definition.
    base: String,
    /// Fragments relative to the definition; `{arch}` becomes `x86_64` or `aarch64`.
    #[serde(default)]
    fragments: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Definition {
    pub name: String,
    pub kind: Kind,
    pub summary: String,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    source: Source,
    pub cmdline: Vec<String>,
    pub debug_info: DebugInfo,
}

#[derive(Debug, Clone)]
enum Source {
    Debian(debian::Want),
    Local {
        arch: Arch,
        image: PathBuf,
        modules: Option<PathBuf>,
        vmlinux: Option<PathBuf>,
    },
    Build(Box<SourceDef>),
}

#[derive(Debug, Clone)]
struct SourceDef {
    origin: git::Origin,
    base: build::Base,
    /// Absolute fragment paths, possibly with `{arch}`.
    fragments: Vec<String>,
    /// The debug checkers' fragment after the files.
    debug_checks: bool,
    steps: Vec<PatchStep>,
    arches: Vec<Arch>,
}

impl Error {
    /// The tree itself does not build (compile error, patch does not apply, config recipe not
    /// satisfiable), as opposed to a missing tool or an I/O problem.
    pub fn is_build_failure(&self) -> bool {
        matches!(self, Error::Build { source, .. } if matches!(**source,
            build::Error::Make { .. } | build::Error::NoOutput { .. } | build::Error::Config(_)
            | build::Error::Git(git::Error::PatchFailed { .. } | git::Error::PatchSyntax { .. } | git::Error::Conflict { .. })))
            || self.archive_lacks()
    }

    /// The archive has the package but not its headers or `-dbg` package: this release cannot
    /// be tested as asked, a fact about the package (a bisect of packages skips it).
    pub fn archive_lacks(&self) -> bool {
        matches!(self, Error::Debian(debian::Error::NotListed { .. }))
    }
}

/// The directory to build out-of-tree modules against for `kernel` (fetched once into the
/// cache).
pub fn module_tree(kernel: &Artifacts, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    match &kernel.headers {
        Some(Headers::Debian { image_package, version }) => Ok(debian::fetch_headers(
            &kernel.name,
            image_package,
            version,
            kernel.arch,
            log,
        )?),
        Some(Headers::Tree(tree)) => Ok(tree.clone()),
        None => Err(Error::NoHeaders {
            name: kernel.name.clone(),
        }),
    }
}

impl Definition {
    pub fn parse(path: &Path, source: &str) -> Result<Self, Error> {
        Self::parse_chain(path, source, &mut Vec::new())
    }

    fn parse_chain(path: &Path, source: &str, chain: &mut Vec<String>) -> Result<Self, Error> {
        let raw: Raw = from_toml(path, source).map_err(|d| Error::Invalid(Box::new(d)))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = path.parent().unwrap_or(Path::new("."));
        let diag = |span: std::ops::Range<usize>, key: &str, msg: String| {
            Error::Invalid(Box::new(Diagnostic::at(path, source, Some(span), key, msg)))
        };
        let missing = |key: &str| diag(0..0, key, format!("kind `{}` needs `{key}`", kind_name(raw.kind)));
        // Keys that belong to one kind only are errors elsewhere, not silently ignored.
        let only = |present: bool, key: &str, kind: Kind| -> Result<(), Error> {
            if present && raw.kind != kind {
                return Err(diag(
                    0..0,
                    key,
                    format!("`{key}` is only for kind `{}`", kind_name(kind)),
                ));
            }
            Ok(())
        };
        only(raw.package.is_some(), "package", Kind::Debian)?;
        only(raw.version.is_some(), "version", Kind::Debian)?;
        only(raw.image.is_some(), "image", Kind::Local)?;
        only(raw.arch.is_some(), "arch", Kind::Local)?;
        only(raw.extends.is_some(), "extends", Kind::Source)?;
        only(raw.source.is_some(), "source", Kind::Source)?;
        only(raw.config.is_some(), "config", Kind::Source)?;
        only(!raw.patch.is_empty(), "patch", Kind::Source)?;
        only(raw.arches.is_some(), "arches", Kind::Source)?;
        only(raw.debug_checks.is_some(), "debug_checks", Kind::Source)?;
        if raw.debug_info.is_some() && raw.kind == Kind::Local {
            return Err(diag(
                0..0,
                "debug_info",
                "a `local` kernel's debug info is whatever its `vmlinux` has".into(),
            ));
        }
        let mut cmdline = raw.cmdline.clone();
        let src = match raw.kind {
            Kind::Debian => Source::Debian(match (&raw.package, &raw.version) {
                (Some(p), None) => debian::Want::Package(p.get_ref().clone()),
                (None, Some(v)) => {
                    let text = v.get_ref();
                    let spec = archive::Spec::parse(text.strip_prefix(archive::PREFIX).unwrap_or(text))
                        .map_err(|why| diag(v.span(), "version", why))?;
                    debian::Want::Spec(spec)
                }
                (Some(p), Some(_)) => {
                    return Err(diag(
                        p.span(),
                        "package",
                        "give `package` or `version`, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(diag(
                        0..0,
                        "package",
                        "kind `debian` needs `package` or `version`".into(),
                    ))
                }
            }),
            Kind::Local => Source::Local {
                arch: raw.arch.ok_or_else(|| missing("arch"))?,
                image: base.join(raw.image.as_ref().ok_or_else(|| missing("image"))?.get_ref()),
                modules: raw.modules.as_ref().map(|m| base.join(m)),
                vmlinux: raw.vmlinux.as_ref().map(|m| base.join(m)),
            },
            Kind::Source => Self::source_def(path, source, &raw, &name, chain, &mut cmdline)?,
        };
        Ok(Definition {
            name,
            kind: raw.kind,
            summary: raw.summary,
            path: path.to_path_buf(),
            source: src,
            cmdline,
            debug_info: raw.debug_info.unwrap_or_default(),
        })
    }

    /// This kernel with (at least) `debug_info`: `repro run --debug-info full`. A `local`
    /// kernel stays as it is.
    pub fn with_debug_info(&self, debug_info: DebugInfo) -> Self {
        let mut d = self.clone();
        if debug_info == DebugInfo::Full && self.kind != Kind::Local {
            d.debug_info = DebugInfo::Full;
        }
        d
    }

    /// A `source` kernel: its own tree and config recipe, or those of the definition it
    /// `extends` (read from beside it), plus its patch series and arches.
    fn source_def(
        path: &Path,
        source: &str,
        raw: &Raw,
        name: &str,
        chain: &mut Vec<String>,
        cmdline: &mut Vec<String>,
    ) -> Result<Source, Error> {
        let base = path.parent().unwrap_or(Path::new("."));
        let diag = |span: std::ops::Range<usize>, key: &str, msg: String| {
            Error::Invalid(Box::new(Diagnostic::at(path, source, Some(span), key, msg)))
        };
        let missing = |key: &str| diag(0..0, key, format!("kind `{}` needs `{key}`", kind_name(raw.kind)));
        let mut def = if let Some(parent) = &raw.extends {
            chain.push(name.to_string());
            if chain.contains(parent.get_ref()) {
                return Err(Error::Cycle {
                    chain: format!("{} -> {}", chain.join(" -> "), parent.get_ref()),
                });
            }
            let ppath = base.join(format!("{}.toml", parent.get_ref()));
            let text = std::fs::read_to_string(&ppath).map_err(|_| {
                diag(
                    parent.span(),
                    "extends",
                    format!("no kernel definition {}", ppath.display()),
                )
            })?;
            let p = Self::parse_chain(&ppath, &text, chain)?;
            let Source::Build(sd) = p.source else {
                return Err(diag(
                    parent.span(),
                    "extends",
                    format!("`{}` is not a kind `source` kernel", parent.get_ref()),
                ));
            };
            let mut c = p.cmdline;
            c.append(cmdline);
            *cmdline = c;
            *sd
        } else {
            let s = raw.source.as_ref().ok_or_else(|| missing("source"))?;
            let origin = match (&s.tarball, &s.git, &s.rev) {
                (Some(t), None, None) => git::Origin::Tarball(base.join(t)),
                (None, Some(g), Some(r)) => git::Origin::Git {
                    repo: if g.contains("://") {
                        g.clone()
                    } else {
                        base.join(g).to_string_lossy().into_owned()
                    },
                    rev: r.clone(),
                },
                _ => {
                    return Err(diag(
                        0..0,
                        "source",
                        "`source` needs either `tarball`, or `git` and `rev`".to_string(),
                    ))
                }
            };
            let c = raw.config.as_ref().ok_or_else(|| missing("config"))?;
            let cbase = match c.base.as_str() {
                "tinyconfig" => build::Base::Tinyconfig,
                "defconfig" => build::Base::Defconfig,
                f => build::Base::File(base.join(f)),
            };
            SourceDef {
                origin,
                base: cbase,
                fragments: c
                    .fragments
                    .iter()
                    .map(|f| base.join(f).to_string_lossy().into_owned())
                    .collect(),
                debug_checks: false,
                steps: Vec::new(),
                arches: Arch::ALL.to_vec(),
            }
        };
        if let Some(on) = raw.debug_checks {
            def.debug_checks = on;
        }
        if raw.extends.is_some() && (raw.source.is_some() || raw.config.is_some()) {
            return Err(diag(
                0..0,
                "extends",
                "a kernel that `extends` another takes its `source` and `config`".into(),
            ));
        }
        for (i, step) in raw.patch.iter().enumerate() {
            let s = step
                .get_ref()
                .resolve(base)
                .ok_or_else(|| diag(step.span(), &format!("patch[{i}]"), crate::def::patch::ONE_KEY.into()))?;
            def.steps.push(s);
        }
        if let Some(a) = &raw.arches {
            def.arches = a.clone();
        }
        Ok(Source::Build(Box::new(def)))
    }

    /// This kernel with `steps` appended to its series (a scenario's patch set), named
    /// `NAME+SET`. Only source kernels can take patches.
    pub fn with_steps(&self, set: &str, steps: &[PatchStep]) -> Result<Self, String> {
        let Source::Build(sd) = &self.source else {
            return Err(format!(
                "patch set `{set}` needs a kernel of kind `source`, but `{}` is kind `{}`",
                self.name,
                kind_name(self.kind)
            ));
        };
        let mut sd = sd.clone();
        sd.steps.extend(steps.iter().cloned());
        let mut d = self.clone();
        d.name = format!("{}+{set}", self.name);
        d.source = Source::Build(sd);
        Ok(d)
    }

    /// The git repository and revision a source kernel is built from, if it is one.
    pub fn git_source(&self) -> Option<(String, String)> {
        match &self.source {
            Source::Build(sd) => match &sd.origin {
                git::Origin::Git { repo, rev } => Some((repo.clone(), rev.clone())),
                git::Origin::Tarball(_) => None,
            },
            _ => None,
        }
    }

    /// This kernel built from `repo` at `rev` instead of its own source (same config recipe and
    /// series), named `NAME@REV`: what `repro bisect` builds at each step.
    pub fn with_source(&self, repo: &Path, rev: &str) -> Result<Self, String> {
        let Source::Build(sd) = &self.source else {
            return Err(format!(
                "building `{}` from another tree needs a kernel of kind `source`, but it is kind `{}`",
                self.name,
                kind_name(self.kind)
            ));
        };
        let mut sd = sd.clone();
        sd.origin = git::Origin::Git {
            repo: repo.display().to_string(),
            rev: rev.to_string(),
        };
        let mut d = self.clone();
        d.name = format!("{}@{}", self.name, &rev[..rev.len().min(12)]);
        d.source = Source::Build(sd);
        Ok(d)
    }

    /// The build request parts of a source kernel for `arch`.
    fn recipe(&self, sd: &SourceDef, arch: Arch) -> build::Recipe {
        build::Recipe {
            base: sd.base.clone(),
            fragments: sd
                .fragments
                .iter()
                .map(|f| PathBuf::from(f.replace("{arch}", arch.as_str())))
                .collect(),
            builtin: [
                (sd.debug_checks).then_some(build::DEBUG_CHECKS),
                (self.debug_info == DebugInfo::Full).then_some(build::DEBUG_INFO_FULL),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }

    /// Builds (or finds) a source kernel; the callback sees build stages and make output.
    pub fn build(&self, arch: Arch, on: &dyn Fn(build::Event)) -> Result<Artifacts, Error> {
        let Source::Build(sd) = &self.source else {
            return self.resolve(arch, &|m| on(build::Event::Stage(m)));
        };
        if !sd.arches.contains(&arch) {
            return Err(Error::WrongArch {
                name: self.name.clone(),
                have: sd.arches[0],
                want: arch,
            });
        }
        let recipe = self.recipe(sd, arch);
        let req = build::Request {
            name: &self.name,
            arch,
            origin: &sd.origin,
            steps: &sd.steps,
            recipe: &recipe,
        };
        build::build(&req, on).map_err(|e| Error::Build {
            name: self.name.clone(),
            source: Box::new(e),
        })
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &source)
    }

    /// The arches this definition can serve.
    pub fn arches(&self) -> Vec<Arch> {
        match &self.source {
            Source::Debian(_) => Arch::ALL.to_vec(),
            Source::Local { arch, .. } => vec![*arch],
            Source::Build(sd) => sd.arches.clone(),
        }
    }

    /// Fetches (once) and returns the artifacts for `arch`.
    pub fn resolve(&self, arch: Arch, log: &dyn Fn(&str)) -> Result<Artifacts, Error> {
        match &self.source {
            Source::Debian(want) => Ok(debian::fetch(&self.name, want, arch, self.debug_info, log)?),
            Source::Build(_) => self.build(arch, &|e| {
                if let build::Event::Stage(m) = e {
                    log(m)
                }
            }),
            Source::Local {
                arch: have,
                image,
                modules,
                vmlinux,
            } => {
                if *have != arch {
                    return Err(Error::WrongArch {
                        name: self.name.clone(),
                        have: *have,
                        want: arch,
                    });
                }
                let must = |what, p: &Path| -> Result<(), Error> {
                    if p.exists() {
                        Ok(())
                    } else {
                        Err(Error::Missing {
                            name: self.name.clone(),
                            what,
                            path: p.to_path_buf(),
                        })
                    }
                };
                must("image", image)?;
                if let Some(m) = modules {
                    must("modules directory", m)?;
                }
                if let Some(v) = vmlinux {
                    must("vmlinux", v)?;
                }
                let meta = std::fs::metadata(image).map_err(|source| Error::Read {
                    path: image.clone(),
                    source,
                })?;
                let mtime = crate::cache::mtime(&meta).as_nanos();
                let release = modules
                    .as_ref()
                    .and_then(|m| m.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                let id = crate::cache::key(&[
                    image.to_string_lossy().as_bytes(),
                    &meta.len().to_le_bytes(),
                    &mtime.to_le_bytes(),
                    modules
                        .as_ref()
                        .map(|m| m.to_string_lossy().into_owned())
                        .unwrap_or_default()
                        .as_bytes(),
                ]);
                Ok(Artifacts {
                    name: self.name.clone(),
                    arch,
                    release,
                    origin: format!("local {}", image.display()),
                    image: image.clone(),
                    modules: modules.clone(),
                    vmlinux: vmlinux.clone(),
                    gdb_scripts: None,
                    id,
                    headers: None,
                })
            }
        }
    }
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Debian => "debian",
        Kind::Local => "local",
        Kind::Source => "source",
    }
}

/// All definitions in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Definition>, Error> {
    let files = crate::def::load::list_files(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    files.iter().map(|f| Definition::load(f)).collect()
}

/// The names of the definitions in `dir` (no parsing).
pub fn names(dir: &Path) -> Vec<String> {
    crate::def::load::names(dir)
}

/// The definition `name` in `dir`, or, for a `debian:` name, the archive's cloud kernel it
/// pins (no file needed).
pub fn find(dir: &Path, name: &str) -> Result<Definition, Error> {
    if let Some(spec) = archive::Spec::of_name(name) {
        let spec = spec.map_err(|why| Error::BadName {
            name: name.to_string(),
            why,
        })?;
        return Ok(Definition {
            name: name.to_string(),
            kind: Kind::Debian,
            summary: format!("Debian cloud kernel {spec}, from the archive"),
            path: PathBuf::new(),
            source: Source::Debian(debian::Want::Spec(spec)),
            cmdline: Vec::new(),
            debug_info: DebugInfo::Default,
        });
    }
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(Error::NotFound {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Definition::load(&path)
}

#[cfg(test)]
mod git_tests;

#[cfg(test)]
mod classify_tests {
    use super::*;

    /// A package whose headers or -dbg package the archive lacks is a fact about the package (a
    /// bisect of packages skips it), not an infrastructure error that stops the bisect.
    #[test]
    fn a_package_the_archive_cannot_complete_is_a_build_failure_not_infra() {
        let lacks = Error::Debian(debian::Error::NotListed {
            name: "debian:6.1.0-48".into(),
            package: "linux-headers-6.1.0-48-cloud-amd64".into(),
            version: "6.1.172-1".into(),
            purpose: "to build modules against",
            near: "debian:6.1.0-47 (6.1.170)".into(),
        });
        assert!(lacks.archive_lacks() && lacks.is_build_failure());
        let offline = Error::Debian(debian::Error::Tool {
            command: "apt-get download".into(),
            stderr: "Temporary failure resolving 'deb.debian.org'".into(),
        });
        assert!(!offline.archive_lacks() && !offline.is_build_failure());
    }
}

#[cfg(test)]
mod debug_checks_tests {
    use super::*;

    fn builtin(d: &Definition) -> Vec<&'static str> {
        let Source::Build(sd) = &d.source else {
            panic!("{} is not a source kernel", d.name)
        };
        d.recipe(sd, Arch::X86_64)
            .builtin
            .iter()
            .map(|(name, _)| *name)
            .collect()
    }

    /// `debug_checks` adds the checkers' fragment to a source kernel's recipe (before full debug
    /// info), is inherited through `extends`, and is refused on other kinds by key.
    #[test]
    fn debug_checks_add_the_checkers_fragment_and_are_inherited() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(format!("{name}.toml"));
            std::fs::write(&p, text).unwrap();
            p
        };
        let base = write(
            "base",
            "summary = \"b\"\nkind = \"source\"\n[source]\ntarball = \"t.tar.xz\"\n[config]\nbase = \"tinyconfig\"\n",
        );
        let debug = write(
            "debug",
            "summary = \"d\"\nkind = \"source\"\nextends = \"base\"\ndebug_checks = true\n",
        );
        let child = write("child", "summary = \"c\"\nkind = \"source\"\nextends = \"debug\"\n");
        assert!(builtin(&Definition::load(&base).unwrap()).is_empty());
        let d = Definition::load(&debug).unwrap();
        assert_eq!(builtin(&d), [build::DEBUG_CHECKS.0]);
        assert_eq!(
            builtin(&d.with_debug_info(DebugInfo::Full)),
            [build::DEBUG_CHECKS.0, build::DEBUG_INFO_FULL.0]
        );
        assert_eq!(builtin(&Definition::load(&child).unwrap()), [build::DEBUG_CHECKS.0]);
        let deb = write(
            "deb",
            "summary = \"x\"\nkind = \"debian\"\npackage = \"p\"\ndebug_checks = true\n",
        );
        let e = Definition::load(&deb).unwrap_err().to_string();
        assert!(
            e.contains("debug_checks") && e.contains("only for kind `source`"),
            "{e}"
        );
    }
}
