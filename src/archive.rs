//! Debian's kernel release history as the archive lists it: the `debian:SPEC` kernel names, the
//! cloud image packages `apt-cache show` describes, and which package a name means (or, when
//! there is none, the closest ones there are). Pure: `kernel::debian` runs apt-cache.

pub mod changelog;

use crate::arch::Arch;
use serde::Serialize;
use std::fmt;

/// Kernel names of this form need no definition file: `debian:6.1.0-50`.
pub const PREFIX: &str = "debian:";

/// An upstream kernel version, `6.1.176` (so in JSON too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upstream(pub u32, pub u32, pub u32);

impl Serialize for Upstream {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Upstream {
    /// The leading `A.B.C` (or `A.B`, as `A.B.0`) of a version or release string.
    pub fn leading(s: &str) -> Option<Upstream> {
        let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let mut n = s[..end]
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().ok());
        let (a, b) = (n.next()??, n.next()??);
        Some(Upstream(a, b, n.next().flatten().unwrap_or(0)))
    }
}

/// What a `debian:` kernel name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `latest`: the newest cloud image package.
    Latest,
    /// `6.1`: the newest of one series.
    Series(u32, u32),
    /// `6.1.180`: the newest package of that upstream version.
    Upstream(Upstream),
    /// `6.1.0-50`, `6.12.107+deb12`: one ABI; from a whole release string
    /// (`6.1.0-50-cloud-amd64`) also its arch.
    Abi { abi: String, arch: Option<Arch> },
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Latest => f.write_str("latest"),
            Spec::Series(a, b) => write!(f, "{a}.{b}"),
            Spec::Upstream(u) => write!(f, "{u}"),
            Spec::Abi { abi, arch: None } => f.write_str(abi),
            Spec::Abi { abi, arch: Some(a) } => write!(f, "{abi}-cloud-{}", a.debian()),
        }
    }
}

/// What [`Spec::parse`] accepts, for messages.
pub const FORMS: &str =
    "`debian:latest`, a series (`debian:6.1`), an upstream version (`debian:6.1.180`) or an ABI (`debian:6.1.0-50`, `debian:6.12.107+deb12`)";

impl Spec {
    /// The part after `debian:`.
    pub fn parse(s: &str) -> Result<Spec, String> {
        let bad = || format!("`{PREFIX}{s}` is not a Debian kernel: use {FORMS}");
        if s == "latest" {
            return Ok(Spec::Latest);
        }
        let (body, arch) = match ["amd64", "arm64"]
            .iter()
            .find_map(|d| s.strip_suffix(&format!("-cloud-{d}")).map(|b| (b, *d)))
        {
            Some((b, d)) => (b, Some(d.parse::<Arch>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let nums = |t: &str| -> Option<Vec<u32>> { t.split('.').map(|p| p.parse().ok()).collect() };
        if let Some((ver, abi)) = body.split_once('-') {
            // 6.1.0-50
            return match (nums(ver).as_deref(), abi.parse::<u32>()) {
                (Some([_, _, _]), Ok(_)) => Ok(Spec::Abi {
                    abi: body.to_string(),
                    arch,
                }),
                _ => Err(bad()),
            };
        }
        if let Some((ver, deb)) = body.split_once('+') {
            // 6.12.107+deb12
            let ok = deb.strip_prefix("deb").is_some_and(|n| n.parse::<u32>().is_ok());
            return match nums(ver).as_deref() {
                Some([_, _, _]) if ok => Ok(Spec::Abi {
                    abi: body.to_string(),
                    arch,
                }),
                _ => Err(bad()),
            };
        }
        match (nums(body).as_deref(), arch) {
            (Some(&[a, b]), None) => Ok(Spec::Series(a, b)),
            (Some(&[a, b, c]), None) => Ok(Spec::Upstream(Upstream(a, b, c))),
            _ => Err(bad()),
        }
    }

    /// The spec of a `debian:` kernel name; None for other names.
    pub fn of_name(name: &str) -> Option<Result<Spec, String>> {
        name.strip_prefix(PREFIX).map(Spec::parse)
    }

    /// The spec a kernel release string (`uname -r`, the oops' `Not tainted 6.1.0-50-cloud-amd64`)
    /// pins, if it is a Debian release.
    pub fn of_release(release: &str) -> Option<Spec> {
        let debian = [
            "-cloud-amd64",
            "-cloud-arm64",
            "-amd64",
            "-arm64",
            "-rt-amd64",
            "-rt-arm64",
        ]
        .iter()
        .find_map(|suffix| release.strip_suffix(suffix))?;
        match Spec::parse(debian).ok()? {
            s @ Spec::Abi { .. } => Some(s),
            _ => None,
        }
    }

    /// The version a missing package is measured against when the closest ones are named.
    fn target(&self) -> (Upstream, u32) {
        match self {
            Spec::Latest => (Upstream(u32::MAX, 0, 0), 0),
            Spec::Series(a, b) => (Upstream(*a, *b, u32::MAX), 0),
            Spec::Upstream(u) => (*u, 0),
            Spec::Abi { abi, .. } => abi_key(abi),
        }
    }
}

/// `6.1.0-50` → (6.1.0, 50); `6.12.107+deb12` → (6.12.107, 0).
fn abi_key(abi: &str) -> (Upstream, u32) {
    let u = Upstream::leading(abi).unwrap_or(Upstream(0, 0, 0));
    let n = abi.split_once('-').and_then(|(_, n)| n.parse().ok()).unwrap_or(0);
    (u, n)
}

/// One cloud image package in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// `linux-image-6.1.0-50-cloud-amd64`.
    pub package: String,
    /// The Debian version, `6.1.176-1`.
    pub version: String,
    pub arch: Arch,
    /// The kernel release, `6.1.0-50-cloud-amd64`.
    pub release: String,
    /// `6.1.0-50`, `6.12.107+deb12`.
    pub abi: String,
    pub upstream: Upstream,
    /// The kernel name that pins it, `debian:6.1.0-50`.
    pub name: String,
    /// Download size in bytes.
    pub size: Option<u64>,
    /// The archive also has its `-dbg` package (full debug info).
    pub dbg: bool,
    /// The archive also has its `linux-headers-*` package (out-of-tree modules).
    pub headers: bool,
}

impl Package {
    /// Newer sorts later: upstream version, then ABI number, then the Debian revision.
    fn order(&self) -> (Upstream, u32, Vec<u32>) {
        let revision = self.version.split_once('-').map_or("", |(_, r)| r);
        let rev = revision
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect();
        (self.upstream, abi_key(&self.abi).1, rev)
    }
}

/// The cloud image packages in `apt-cache show` output (stanzas separated by blank lines), with
/// `names` (from `apt-cache search`) telling which `-dbg` and headers packages exist. Sorted
/// oldest first, arch by arch.
pub fn parse_show(show: &str, names: &[&str]) -> Vec<Package> {
    let mut out: Vec<Package> = show.split("\n\n").filter_map(|s| stanza(s, names)).collect();
    out.sort_by_key(|p| (p.arch, p.order()));
    out.dedup_by(|a, b| a.package == b.package && a.arch == b.arch);
    out
}

fn stanza(text: &str, names: &[&str]) -> Option<Package> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    };
    let package = field("Package")?;
    let version = field("Version")?;
    let arch: Arch = field("Architecture")?.parse().ok()?;
    let release = package.strip_prefix("linux-image-")?.to_string();
    let abi = release.strip_suffix(&format!("-cloud-{}", arch.debian()))?.to_string();
    if !matches!(Spec::parse(&abi), Ok(Spec::Abi { .. })) {
        return None;
    }
    let upstream = Upstream::leading(&version)?;
    let headers = package.replacen("linux-image-", "linux-headers-", 1);
    Some(Package {
        name: format!("{PREFIX}{abi}"),
        size: field("Size").and_then(|s| s.parse().ok()),
        dbg: names.contains(&format!("{package}-dbg").as_str()),
        headers: names.contains(&headers.as_str()),
        package,
        version,
        arch,
        release,
        abi,
        upstream,
    })
}

/// No package is what a spec asks for on an arch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Debian archive has no cloud kernel `{PREFIX}{spec}` for {arch}; the closest it has: {}", closest_text(.closest))]
pub struct NotFound {
    pub spec: String,
    pub arch: Arch,
    /// Up to three packages, nearest first.
    pub closest: Vec<Package>,
}

/// `debian:6.1.0-47 (6.1.170), debian:6.1.0-48 (6.1.172)`, for messages that name packages.
pub fn closest_text(closest: &[Package]) -> String {
    if closest.is_empty() {
        return "none (is `apt-get update` done?)".into();
    }
    closest
        .iter()
        .map(|p| format!("{} ({})", p.name, p.upstream))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The package `spec` means on `arch`: for a series, an upstream version or `latest`, the newest
/// that fits.
pub fn select<'a>(spec: &Spec, packages: &'a [Package], arch: Arch) -> Result<&'a Package, NotFound> {
    let fits = |p: &Package| match spec {
        Spec::Latest => true,
        Spec::Series(a, b) => p.upstream.0 == *a && p.upstream.1 == *b,
        Spec::Upstream(u) => p.upstream == *u,
        Spec::Abi { abi, arch: want } => p.abi == *abi && want.is_none_or(|w| w == arch),
    };
    packages
        .iter()
        .filter(|p| p.arch == arch && fits(p))
        .max_by_key(|p| p.order())
        .ok_or_else(|| NotFound {
            spec: spec.to_string(),
            arch,
            closest: closest(spec, packages, arch),
        })
}

/// Up to three packages for `arch` nearest to what `spec` asks for: the same series first
/// (nearest upstream version, then ABI), then the nearest series.
pub fn closest(spec: &Spec, packages: &[Package], arch: Arch) -> Vec<Package> {
    let (want, abi) = spec.target();
    let series = |u: Upstream| i64::from(u.0) * 1000 + i64::from(u.1);
    let mut v: Vec<&Package> = packages.iter().filter(|p| p.arch == arch).collect();
    v.sort_by_key(|p| {
        let (have, n) = abi_key(&p.abi);
        (
            (series(p.upstream) - series(want)).abs(),
            (i64::from(p.upstream.2) - i64::from(want.2)).abs(),
            (i64::from(n) - i64::from(abi)).abs(),
            std::cmp::Reverse(have),
        )
    });
    v.into_iter().take(3).cloned().collect()
}

/// Is `name` a selector of many packages (`debian:6.1.*`, `debian:*`), for matrices?
pub fn is_selector(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|b| b == "*" || b.ends_with(".*"))
}

/// The packages a selector names on `arch`, oldest first: `debian:6.1.*` every 6.1 package,
/// `debian:*` every one. A matrix that names them follows new packages as the archive gets
/// them.
pub fn expand<'a>(selector: &str, packages: &'a [Package], arch: Arch) -> Result<Vec<&'a Package>, String> {
    let body = selector.strip_prefix(PREFIX).unwrap_or(selector);
    let series = match body.strip_suffix(".*").map(Spec::parse) {
        _ if body == "*" => None,
        Some(Ok(Spec::Series(a, b))) => Some((a, b)),
        _ => {
            return Err(format!(
                "`{selector}` is not a selector: use `debian:*` or a series, `debian:6.1.*`"
            ))
        }
    };
    let v: Vec<&Package> = packages
        .iter()
        .filter(|p| p.arch == arch)
        .filter(|p| series.is_none_or(|s| s == (p.upstream.0, p.upstream.1)))
        .collect();
    if v.is_empty() {
        return Err(format!(
            "`{selector}` names no package for {arch} in the Debian archive"
        ));
    }
    Ok(v)
}

/// Is `name` a kernel a scenario, a matrix or `--kernel` may name: one of the `defined`
/// definitions, or a well-formed `debian:` name (whether the archive has it is known only when
/// it is fetched). The error says what is accepted.
pub fn known_kernel(name: &str, defined: &[String]) -> Result<(), String> {
    if defined.iter().any(|d| d == name) {
        return Ok(());
    }
    match Spec::of_name(name) {
        Some(spec) => spec.map(|_| ()),
        None => Err(format!(
            "unknown kernel `{name}`, defined kernels: {}, or a Debian kernel from the archive: {FORMS}",
            defined.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests;
