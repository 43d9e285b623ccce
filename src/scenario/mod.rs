//! Scenario files: TOML in `scenarios/` turned into a validated [`Scenario`].
//!
//! Reads only the files it is given; no processes, no network.

mod diag;
mod units;

pub use diag::{from_toml, Diagnostic};
pub use units::{parse_duration, parse_mib, MiB, Secs};

use crate::arch::Arch;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The schema version this build understands.
pub const SCHEMA: u32 = 1;

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
    #[error("no scenario named `{name}` in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Invalid(Box::new(d))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    schema: Option<Spanned<u32>>,
    summary: String,
    #[serde(default)]
    description: String,
    kernel: Spanned<String>,
    arch: Arch,
    image: Spanned<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    vm: RawVm,
    #[serde(default)]
    nodes: Vec<RawNode>,
    workload: RawWorkload,
    #[serde(default)]
    expect: RawExpect,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    cpus: Option<Spanned<u32>>,
    memory: Option<MiB>,
    boot_timeout: Option<Secs>,
    #[serde(default)]
    cmdline: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    kernel: Option<Spanned<String>>,
    arch: Option<Arch>,
    cpus: Option<Spanned<u32>>,
    memory: Option<MiB>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    script: String,
    node: Option<Spanned<String>>,
    timeout: Option<Secs>,
    iterations: Option<Spanned<u32>>,
    parallel: Option<Spanned<u32>>,
    shell: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    title: Option<String>,
    title_regex: Option<Spanned<String>>,
    #[serde(default)]
    frames: Vec<String>,
}

/// One guest of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub kernel: String,
    pub arch: Arch,
    pub cpus: u32,
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub script: String,
    /// Index into [`Scenario::nodes`].
    pub node: usize,
    pub timeout: Duration,
    pub iterations: u32,
    pub parallel: u32,
    pub shell: String,
}

/// What counts as reproduced. Empty means "any crash".
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub title: Option<String>,
    pub title_regex: Option<regex::Regex>,
    pub frames: Vec<String>,
}

impl Expect {
    pub fn is_any(&self) -> bool {
        self.title.is_none() && self.title_regex.is_none() && self.frames.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file stem.
    pub name: String,
    pub path: PathBuf,
    pub summary: String,
    pub description: String,
    pub image: String,
    pub tags: Vec<String>,
    pub nodes: Vec<Node>,
    pub boot_timeout: Duration,
    pub cmdline: Vec<String>,
    pub workload: Workload,
    pub expect: Expect,
}

const DEFAULT_CPUS: u32 = 2;
const DEFAULT_MEMORY_MIB: u64 = 1024;
const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_CPUS: u32 = 64;

/// Overrides from the command line, applied to every node.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub kernel: Option<String>,
    pub arch: Option<Arch>,
}

impl Scenario {
    /// Parses and validates `source`, read from `path`. `known_kernels` and `known_images` are
    /// the names defined in `kernels/` and `images/`.
    pub fn parse(path: &Path, source: &str, known_kernels: &[String], known_images: &[String]) -> Result<Self, Error> {
        let raw: Raw = from_toml(path, source)?;
        let diag = |span: std::ops::Range<usize>, key: &str, msg: String| {
            Error::from(Diagnostic::at(path, source, Some(span), key, msg))
        };

        if let Some(schema) = &raw.schema {
            if *schema.get_ref() != SCHEMA {
                return Err(diag(
                    schema.span(),
                    "schema",
                    format!(
                        "unsupported schema version {}, this repro reads version {SCHEMA}",
                        schema.get_ref()
                    ),
                ));
            }
        }
        let check_kernel = |k: &Spanned<String>, key: &str| -> Result<String, Error> {
            if known_kernels.iter().any(|n| n == k.get_ref()) {
                Ok(k.get_ref().clone())
            } else {
                Err(diag(
                    k.span(),
                    key,
                    format!(
                        "unknown kernel `{}`, defined kernels: {}",
                        k.get_ref(),
                        known_kernels.join(", ")
                    ),
                ))
            }
        };
        let check_cpus = |c: &Spanned<u32>, key: &str| -> Result<u32, Error> {
            let n = *c.get_ref();
            if (1..=MAX_CPUS).contains(&n) {
                Ok(n)
            } else {
                Err(diag(
                    c.span(),
                    key,
                    format!("cpus must be between 1 and {MAX_CPUS}, got {n}"),
                ))
            }
        };
        let kernel = check_kernel(&raw.kernel, "kernel")?;
        if !known_images.iter().any(|n| n == raw.image.get_ref()) {
            return Err(diag(
                raw.image.span(),
                "image",
                format!(
                    "unknown image `{}`, defined images: {}",
                    raw.image.get_ref(),
                    known_images.join(", ")
                ),
            ));
        }
        let cpus = match &raw.vm.cpus {
            Some(c) => check_cpus(c, "vm.cpus")?,
            None => DEFAULT_CPUS,
        };
        let memory_mib = raw.vm.memory.map_or(DEFAULT_MEMORY_MIB, |m| m.0);

        let mut nodes = Vec::new();
        if raw.nodes.is_empty() {
            nodes.push(Node {
                name: "guest".into(),
                kernel: kernel.clone(),
                arch: raw.arch,
                cpus,
                memory_mib,
            });
        }
        for (i, n) in raw.nodes.iter().enumerate() {
            let name = n.name.get_ref();
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(diag(
                    n.name.span(),
                    &format!("nodes[{i}].name"),
                    format!("node name `{name}` must be non-empty and use only letters, digits, `-` and `_`"),
                ));
            }
            if nodes.iter().any(|m: &Node| &m.name == name) {
                return Err(diag(
                    n.name.span(),
                    &format!("nodes[{i}].name"),
                    format!("duplicate node name `{name}`"),
                ));
            }
            nodes.push(Node {
                name: name.clone(),
                kernel: match &n.kernel {
                    Some(k) => check_kernel(k, &format!("nodes[{i}].kernel"))?,
                    None => kernel.clone(),
                },
                arch: n.arch.unwrap_or(raw.arch),
                cpus: match &n.cpus {
                    Some(c) => check_cpus(c, &format!("nodes[{i}].cpus"))?,
                    None => cpus,
                },
                memory_mib: n.memory.map_or(memory_mib, |m| m.0),
            });
        }

        let w = &raw.workload;
        let node = match &w.node {
            None => 0,
            Some(n) => nodes
                .iter()
                .position(|m| &m.name == n.get_ref())
                .ok_or_else(|| diag(n.span(), "workload.node", format!("no node named `{}`", n.get_ref())))?,
        };
        let positive = |v: &Option<Spanned<u32>>, key: &str| -> Result<u32, Error> {
            match v {
                None => Ok(1),
                Some(s) if *s.get_ref() >= 1 => Ok(*s.get_ref()),
                Some(s) => Err(diag(s.span(), key, "must be at least 1".into())),
            }
        };
        let workload = Workload {
            script: w.script.clone(),
            node,
            timeout: w.timeout.map_or(DEFAULT_WORKLOAD_TIMEOUT, |t| t.0),
            iterations: positive(&w.iterations, "workload.iterations")?,
            parallel: positive(&w.parallel, "workload.parallel")?,
            shell: w.shell.clone().unwrap_or_else(|| "/bin/bash".into()),
        };

        let title_regex = match &raw.expect.title_regex {
            None => None,
            Some(r) => Some(regex::Regex::new(r.get_ref()).map_err(|e| {
                diag(
                    r.span(),
                    "expect.title_regex",
                    format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")),
                )
            })?),
        };

        Ok(Scenario {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            summary: raw.summary,
            description: raw.description,
            image: raw.image.into_inner(),
            tags: raw.tags,
            nodes,
            boot_timeout: raw.vm.boot_timeout.map_or(DEFAULT_BOOT_TIMEOUT, |t| t.0),
            cmdline: raw.vm.cmdline,
            workload,
            expect: Expect {
                title: raw.expect.title,
                title_regex,
                frames: raw.expect.frames,
            },
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path, known_kernels: &[String], known_images: &[String]) -> Result<Self, Error> {
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &source, known_kernels, known_images)
    }

    /// Applies command-line overrides to every node.
    pub fn apply(&mut self, o: &Overrides) {
        for n in &mut self.nodes {
            if let Some(k) = &o.kernel {
                n.kernel = k.clone();
            }
            if let Some(a) = o.arch {
                n.arch = a;
            }
        }
    }
}

/// Resolves a scenario argument: a path to a `.toml` file, or a name in `dir`.
pub fn resolve(dir: &Path, arg: &str) -> Result<PathBuf, Error> {
    let p = Path::new(arg);
    if arg.ends_with(".toml") || p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    let candidate = dir.join(format!("{arg}.toml"));
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(Error::NotFound {
            name: arg.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The `.toml` files directly inside `dir`, sorted by name.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests;
