//! Bisecting released Debian packages instead of commits (`repro bisect --debian FROM..TO`):
//! the range is the archive's cloud kernels between two packages, oldest first; each step
//! boots one package (fetched once, nothing compiled) with the same flake-aware runs as a git
//! bisect; the answer names the package, its upstream version, and the changelog entries
//! between the last package on the other side and it.

use super::graph::Graph;
use crate::arch::Arch;
use crate::archive::{self, changelog, Package, Spec};
use serde::Serialize;
use std::path::Path;

/// The record's target kind.
pub const KIND: &str = "debian";

/// The two packages `FROM..TO` names on `arch` (each a `debian:` name or what follows it),
/// oldest first.
pub fn ends(range: &str, arch: Arch, all: &[Package]) -> Result<(Package, Package), String> {
    let (from, to) = range
        .split_once("..")
        .ok_or_else(|| format!("--debian `{range}`: expected FROM..TO, e.g. 6.1.0-47..6.1.0-57"))?;
    let pick = |s: &str| -> Result<Package, String> {
        let body = s.strip_prefix(archive::PREFIX).unwrap_or(s);
        let spec = Spec::parse(body).map_err(|e| format!("--debian: {e}"))?;
        archive::select(&spec, all, arch)
            .cloned()
            .map_err(|e| format!("--debian: {e}"))
    };
    let (a, b) = (pick(from)?, pick(to)?);
    if range_of(all, arch, &a.name, &b.name).len() < 2 {
        return Err(format!(
            "--debian `{range}`: {} is not older than {} on {arch}",
            a.name, b.name
        ));
    }
    Ok((a, b))
}

/// The packages from `older` to `newer` (names) on `arch`, oldest first.
fn range_of<'a>(all: &'a [Package], arch: Arch, older: &str, newer: &str) -> Vec<&'a Package> {
    let list: Vec<&Package> = all.iter().filter(|p| p.arch == arch).collect();
    let (Some(a), Some(b)) = (
        list.iter().position(|p| p.name == older),
        list.iter().position(|p| p.name == newer),
    ) else {
        return Vec::new();
    };
    if a >= b {
        return Vec::new();
    }
    list[a..=b].to_vec()
}

/// The search over the packages from `older` to `newer`: a chain, each package the parent of
/// the next; the newest is the new end, the oldest the old one.
pub fn graph(all: &[Package], arch: Arch, older: &str, newer: &str) -> Result<Graph, String> {
    let range = range_of(all, arch, older, newer);
    if range.len() < 2 {
        return Err(format!(
            "the archive no longer has the packages from {older} to {newer} for {arch}"
        ));
    }
    let ids: Vec<String> = range.iter().map(|p| p.name.clone()).collect();
    let parents: Vec<Vec<usize>> = (0..ids.len())
        .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
        .collect();
    let n = ids.len();
    let mut g = Graph::from_parents(ids, parents, n - 1, vec![0]);
    g.subjects = range.iter().map(|p| subject(p)).collect();
    Ok(g)
}

/// `6.1.180 (linux-image-6.1.0-52-cloud-amd64 6.1.180-1)`.
pub fn subject(p: &Package) -> String {
    format!("{} ({} {})", p.upstream, p.package, p.version)
}

/// What the answer adds for packages: where to look next.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The first bad (or, with --fix, fixed) package.
    pub package: Package,
    /// The last package on the other side.
    pub previous: Package,
    /// `6.1.177..6.1.180`.
    pub upstream_range: String,
    /// The changelog entries in between, by header, newest first.
    pub entries: Vec<String>,
    /// kernel.org changelogs of the upstream stable releases those entries merge.
    pub stable_changelogs: Vec<String>,
    /// Listed changes that mention the crash's functions or their subsystems.
    pub mentioning: Vec<String>,
    /// The entries in full, in the bisect directory.
    pub changelog_file: String,
}

/// The answer from the first package's changelog (`text`), written in full to
/// `dir/changelog.txt`. `words`: the crash's functions and their subsystem prefixes.
pub fn answer(
    package: &Package,
    previous: &Package,
    text: &str,
    words: &[String],
    dir: &Path,
) -> std::io::Result<Answer> {
    let entries = changelog::parse(text);
    let between = changelog::between(&entries, &previous.version, &package.version);
    let file = dir.join("changelog.txt");
    let full: String = between
        .iter()
        .map(|e| format!("{}\n\n{}\n\n -- {}\n\n", e.header, e.body.join("\n"), e.date))
        .collect();
    std::fs::write(&file, full)?;
    let (lo, hi) = if previous.upstream <= package.upstream {
        (previous.upstream, package.upstream)
    } else {
        (package.upstream, previous.upstream)
    };
    Ok(Answer {
        upstream_range: format!("{lo}..{hi}"),
        entries: between.iter().map(|e| e.header.clone()).collect(),
        stable_changelogs: between
            .iter()
            .flat_map(|e| e.stable_changelogs())
            .map(str::to_string)
            .collect(),
        mentioning: changelog::mentioning(&between, words),
        changelog_file: file.display().to_string(),
        package: package.clone(),
        previous: previous.clone(),
    })
}

/// The words to look for in a changelog: each expected frame, and the subsystem prefix of each
/// (`nfsd4_run_cb_work` → `nfsd`, `xfs_iget` → `xfs`).
pub fn words(frames: &[String], title: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let guilty = title.and_then(|t| t.rsplit_once(" in ")).map(|(_, f)| f.to_string());
    for f in frames.iter().cloned().chain(guilty) {
        let prefix: String = f
            .trim_start_matches('_')
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        for w in [f, prefix] {
            if w.len() >= 3 && !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<Package> {
        let names: Vec<&str> = include_str!("../archive/apt-cache-search.txt").lines().collect();
        archive::parse_show(include_str!("../archive/apt-cache-show.txt"), &names)
    }

    #[test]
    fn a_range_of_packages_is_a_chain_oldest_first() {
        let all = archive();
        let (a, b) = ends("6.1.0-47..debian:6.1.192", Arch::X86_64, &all).unwrap();
        assert_eq!(
            (a.name.as_str(), b.name.as_str()),
            ("debian:6.1.0-47", "debian:6.1.0-57")
        );
        let g = graph(&all, Arch::X86_64, &a.name, &b.name).unwrap();
        assert_eq!(g.len(), 11);
        assert_eq!(g.ids[0], "debian:6.1.0-47");
        assert_eq!(g.ids[5], "debian:6.1.0-52");
        assert_eq!(g.subjects[5], "6.1.180 (linux-image-6.1.0-52-cloud-amd64 6.1.180-1)");
        assert_eq!((g.new_end(), g.old_ends()), (10, &[0][..]));
        assert!(g.is_ancestor(4, 5) && !g.is_ancestor(5, 4));
        assert_eq!(g.range().len(), 10);
        // arm64 has older ABIs amd64 lacks; a range crossing series works too.
        let (a, b) = ends("6.1.164..6.12.107", Arch::Aarch64, &all).unwrap();
        let g = graph(&all, Arch::Aarch64, &a.name, &b.name).unwrap();
        assert_eq!(
            (g.ids[0].as_str(), g.ids[g.len() - 1].as_str()),
            ("debian:6.1.0-44", "debian:6.12.107+deb12")
        );
    }

    #[test]
    fn a_bad_range_says_why() {
        let all = archive();
        let e = |r: &str| ends(r, Arch::X86_64, &all).unwrap_err();
        assert!(e("6.1.0-47").contains("expected FROM..TO"));
        assert!(e("6.1.0-57..6.1.0-47").contains("debian:6.1.0-57 is not older than debian:6.1.0-47"));
        assert!(e("6.1.0-47..6.1.0-47").contains("is not older than"));
        assert!(e("6.1.0-47..6.1.x").contains("is not a Debian kernel"));
        assert!(e("4.19.90..6.1.0-57").contains("the closest it has: debian:6.1.0-47 (6.1.170)"));
    }

    #[test]
    fn the_words_to_look_for_are_the_frames_and_their_subsystems() {
        let frames = vec!["nfsd4_run_cb_work".to_string(), "__xfs_iget".to_string()];
        assert_eq!(
            words(&frames, Some("KASAN: use-after-free Read in nfsd4_run_cb_work")),
            ["nfsd4_run_cb_work", "nfsd", "__xfs_iget", "xfs"]
        );
    }

    #[test]
    fn the_answer_keeps_the_entries_between_and_what_mentions_the_crash() {
        let all = archive();
        let p = |n: &str| {
            all.iter()
                .find(|p| p.name == n && p.arch == Arch::X86_64)
                .unwrap()
                .clone()
        };
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../archive/changelog-6.1.180-excerpt.txt");
        let a = answer(
            &p("debian:6.1.0-52"),
            &p("debian:6.1.0-51"),
            text,
            &["nfsd".into()],
            dir.path(),
        )
        .unwrap();
        assert_eq!(a.upstream_range, "6.1.177..6.1.180");
        assert_eq!(
            a.entries,
            ["linux-signed-amd64 (6.1.180+1) bookworm-security; urgency=high"]
        );
        assert_eq!(a.mentioning.len(), 2);
        let file = std::fs::read_to_string(dir.path().join("changelog.txt")).unwrap();
        assert!(
            file.starts_with("linux-signed-amd64 (6.1.180+1)") && !file.contains("6.1.177-1)"),
            "{file}"
        );
    }
}
