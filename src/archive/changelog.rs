//! Debian changelogs (the `changelog.gz` a kernel image package ships): the entries one package
//! adds over an older one, and what a kernel engineer looks at next in them. Pure.

use std::cmp::Ordering;

/// One changelog entry: `linux (6.1.180-1) bookworm-security; urgency=high`, its body, and the
/// ` -- Maintainer <mail>  Date` trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: String,
    pub version: String,
    /// The header line as written.
    pub header: String,
    pub body: Vec<String>,
    /// The date of the trailer line.
    pub date: String,
}

impl Entry {
    /// The `linux` source version this entry is about: its own, or for a signing wrapper
    /// (`linux-signed-amd64 (6.1.176+1)`) the one it signs (`Sign kernel from linux 6.1.176-1`).
    pub fn linux_version(&self) -> &str {
        self.body
            .iter()
            .find_map(|l| l.trim().strip_prefix("* Sign kernel from linux "))
            .map(str::trim)
            .unwrap_or(&self.version)
    }

    /// kernel.org changelogs of the upstream stable releases the entry merges.
    pub fn stable_changelogs(&self) -> impl Iterator<Item = &str> {
        self.body
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.starts_with("https://www.kernel.org/pub/linux/kernel/") && l.contains("/ChangeLog-"))
    }
}

/// The entries of a changelog, newest first as written.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in text.lines() {
        let header = !line.starts_with(' ') && !line.is_empty() && line.contains(" (") && line.contains(") ");
        if header {
            let (source, rest) = line.split_once(" (").unwrap_or_default();
            let version = rest.split_once(')').map_or("", |(v, _)| v);
            out.push(Entry {
                source: source.to_string(),
                version: version.to_string(),
                header: line.to_string(),
                body: Vec::new(),
                date: String::new(),
            });
            continue;
        }
        let Some(e) = out.last_mut() else { continue };
        if let Some(trailer) = line.strip_prefix(" -- ") {
            e.date = trailer.split_once("  ").map_or("", |(_, d)| d).trim().to_string();
        } else if e.date.is_empty() {
            e.body.push(line.to_string());
        }
    }
    for e in &mut out {
        while e.body.first().is_some_and(|l| l.trim().is_empty()) {
            e.body.remove(0);
        }
        while e.body.last().is_some_and(|l| l.trim().is_empty()) {
            e.body.pop();
        }
    }
    out
}

/// The entries for `linux` versions newer than `old` up to `new` (both Debian versions of the
/// linux source, `6.1.177-1`, `6.1.180-1`), newest first.
pub fn between<'a>(entries: &'a [Entry], old: &str, new: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| {
            let v = e.linux_version();
            compare(v, old) == Ordering::Greater && compare(v, new) != Ordering::Greater
        })
        .collect()
}

/// Changelog lines (a listed change and its continuation lines, joined) that mention one of
/// `words`, case-insensitively: the fixes worth reading first.
pub fn mentioning(entries: &[&Entry], words: &[String]) -> Vec<String> {
    let words: Vec<String> = words
        .iter()
        .map(|w| w.to_lowercase())
        .filter(|w| w.len() >= 3)
        .collect();
    let mut out = Vec::new();
    for e in entries {
        let mut items: Vec<String> = Vec::new();
        for l in &e.body {
            let t = l.trim();
            if t.starts_with("- ") || t.starts_with("* ") {
                items.push(t.to_string());
            } else if let Some(last) = items.last_mut().filter(|_| !t.is_empty()) {
                last.push(' ');
                last.push_str(t);
            }
        }
        out.extend(items.into_iter().filter(|i| {
            let low = i.to_lowercase();
            words.iter().any(|w| low.contains(w.as_str()))
        }));
    }
    out
}

/// Debian version order (dpkg's): epoch, then upstream and revision compared part by part,
/// digits as numbers, `~` before anything, letters before other characters.
pub fn compare(a: &str, b: &str) -> Ordering {
    let split = |v: &str| {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse::<u64>().unwrap_or(0), r),
            _ => (0, v),
        };
        let (up, rev) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, up.to_string(), rev.to_string())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| fragment(&ua, &ub))
        .then_with(|| fragment(&ra, &rb))
}

fn fragment(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let order = |c: Option<&u8>| match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(c) => i32::from(*c) + 256,
    };
    while !a.is_empty() || !b.is_empty() {
        // The non-digit prefixes.
        loop {
            let (ca, cb) = (
                a.first().filter(|c| !c.is_ascii_digit()),
                b.first().filter(|c| !c.is_ascii_digit()),
            );
            if ca.is_none() && cb.is_none() {
                break;
            }
            match order(ca).cmp(&order(cb)) {
                Ordering::Equal => {
                    a = &a[ca.map_or(0, |_| 1)..];
                    b = &b[cb.map_or(0, |_| 1)..];
                }
                other => return other,
            }
        }
        // The digit runs, as numbers.
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let num = |s: &[u8]| s.iter().fold(0u128, |n, c| n * 10 + u128::from(c - b'0'));
        match num(&a[..na]).cmp(&num(&b[..nb])) {
            Ordering::Equal => {
                a = &a[na..];
                b = &b[nb..];
            }
            other => return other,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An excerpt of the changelog.gz in linux-image-6.1.0-52-cloud-amd64 (6.1.180-1): the
    /// first and last lines of each of its newest entries, whole entries further down.
    const REAL: &str = include_str!("changelog-6.1.180-excerpt.txt");

    #[test]
    fn entries_are_read_with_the_version_a_signing_wrapper_signs() {
        let e = parse(REAL);
        let headers: Vec<(&str, &str, &str)> = e
            .iter()
            .map(|e| (e.source.as_str(), e.version.as_str(), e.linux_version()))
            .collect();
        assert_eq!(
            headers,
            [
                ("linux-signed-amd64", "6.1.180+1", "6.1.180-1"),
                ("linux", "6.1.177-1", "6.1.177-1"),
                ("linux", "6.1.176-1", "6.1.176-1"),
                ("linux", "6.1.174-1", "6.1.174-1"),
                ("linux", "6.1.172-1", "6.1.172-1"),
                ("linux", "6.1.170-3", "6.1.170-3"),
            ]
        );
        assert_eq!(e[0].date, "Mon, 03 Aug 2026 20:40:40 +0200");
        assert_eq!(e[0].body[0], "  * Sign kernel from linux 6.1.180-1");
        assert!(e[0].body.iter().all(|l| !l.starts_with(" -- ")));
        let stable: Vec<&str> = e[0].stable_changelogs().collect();
        assert_eq!(
            stable,
            ["https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.1.178"]
        );
    }

    #[test]
    fn the_entries_between_two_packages_are_the_newer_ones_up_to_the_found_one() {
        let e = parse(REAL);
        let v = |old, new| {
            between(&e, old, new)
                .iter()
                .map(|e| e.linux_version().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(v("6.1.177-1", "6.1.180-1"), ["6.1.180-1"]);
        assert_eq!(v("6.1.172-1", "6.1.177-1"), ["6.1.177-1", "6.1.176-1", "6.1.174-1"]);
        assert_eq!(v("6.1.170-2", "6.1.170-3"), ["6.1.170-3"]);
        assert!(v("6.1.180-1", "6.1.180-1").is_empty());
    }

    #[test]
    fn listed_changes_that_mention_the_crash_are_picked_out_whole() {
        let e = parse(REAL);
        let newest = between(&e, "6.1.177-1", "6.1.180-1");
        let m = mentioning(&newest, &["nfsd".to_string(), "ab".to_string()]);
        assert_eq!(
            m,
            [
                "- nfsd: release layout stid on setlease failure (CVE-2026-53399)",
                "- nfsd: reset write verifier on deferred writeback errors (CVE-2026-53393)"
            ]
        );
    }

    #[test]
    fn debian_versions_compare_as_dpkg_does() {
        use Ordering::*;
        for (a, b, want) in [
            ("6.1.180-1", "6.1.177-1", Greater),
            ("6.1.192-2", "6.1.192-10", Less),
            ("6.12.107-1~deb12u1", "6.12.107-1", Less),
            ("6.12.107-1~deb12u1", "6.12.107-1~deb12u2", Less),
            ("6.1.170-3", "6.1.170-3", Equal),
            ("1:4.19-1", "6.1-1", Greater),
            ("6.1.0a-1", "6.1.0-1", Greater),
            ("6.1.9-1", "6.1.10-1", Less),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
