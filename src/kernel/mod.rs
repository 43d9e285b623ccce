//! Kernel definitions (`kernels/*.toml`) and the artifacts they resolve to.
//!
//! Kinds: `debian` (a Debian kernel package, fetched with `apt-get download` into the cache,
//! never installed on the host) and `local` (files on disk).

mod debian;

use crate::arch::Arch;
use crate::scenario::{from_toml, Diagnostic};
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Debian,
    Local,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    summary: String,
    kind: Kind,
    /// debian: the package to fetch; `{debarch}` is replaced by the Debian arch. A metapackage
    /// (e.g. `linux-image-cloud-{debarch}`) is resolved to the image package it depends on.
    package: Option<Spanned<String>>,
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
}

#[derive(Debug, Clone)]
enum Source {
    Debian {
        package: String,
    },
    Local {
        arch: Arch,
        image: PathBuf,
        modules: Option<PathBuf>,
        vmlinux: Option<PathBuf>,
    },
}

/// What a kernel definition resolves to on disk, for one arch.
#[derive(Debug, Clone, Serialize)]
pub struct Artifacts {
    pub name: String,
    pub arch: Arch,
    /// `uname -r`, when known.
    pub release: Option<String>,
    /// Human description of where it came from (package and version, or path).
    pub origin: String,
    pub image: PathBuf,
    /// `lib/modules/<release>` with `modules.dep`.
    pub modules: Option<PathBuf>,
    pub vmlinux: Option<PathBuf>,
    /// A stable id of these exact artifacts, for cache keys of derived layers.
    pub id: String,
}

impl Definition {
    pub fn parse(path: &Path, source: &str) -> Result<Self, Error> {
        let raw: Raw = from_toml(path, source).map_err(|d| Error::Invalid(Box::new(d)))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = path.parent().unwrap_or(Path::new("."));
        let missing = |key: &str| {
            Error::Invalid(Box::new(Diagnostic::at(
                path,
                source,
                Some(0..0),
                key,
                format!("kind `{}` needs `{key}`", kind_name(raw.kind)),
            )))
        };
        let src = match raw.kind {
            Kind::Debian => Source::Debian {
                package: raw
                    .package
                    .as_ref()
                    .ok_or_else(|| missing("package"))?
                    .get_ref()
                    .clone(),
            },
            Kind::Local => Source::Local {
                arch: raw.arch.ok_or_else(|| missing("arch"))?,
                image: base.join(raw.image.as_ref().ok_or_else(|| missing("image"))?.get_ref()),
                modules: raw.modules.as_ref().map(|m| base.join(m)),
                vmlinux: raw.vmlinux.as_ref().map(|m| base.join(m)),
            },
        };
        Ok(Definition {
            name,
            kind: raw.kind,
            summary: raw.summary,
            path: path.to_path_buf(),
            source: src,
            cmdline: raw.cmdline,
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
            Source::Debian { .. } => Arch::ALL.to_vec(),
            Source::Local { arch, .. } => vec![*arch],
        }
    }

    /// Fetches (once) and returns the artifacts for `arch`.
    pub fn resolve(&self, arch: Arch, log: &dyn Fn(&str)) -> Result<Artifacts, Error> {
        match &self.source {
            Source::Debian { package } => Ok(debian::fetch(&self.name, package, arch, log)?),
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
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
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
                    id,
                })
            }
        }
    }
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Debian => "debian",
        Kind::Local => "local",
    }
}

/// All definitions in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Definition>, Error> {
    let files = crate::scenario::list_files(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    files.iter().map(|f| Definition::load(f)).collect()
}

/// The names of the definitions in `dir` (no parsing).
pub fn names(dir: &Path) -> Vec<String> {
    crate::scenario::list_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
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
