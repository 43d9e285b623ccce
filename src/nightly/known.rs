//! Known issues, pure: crashes a team has already filed (`known-issues.toml` beside the
//! matrix, or `--known FILE`), each by title or regex, for some kernels and arches, with a link
//! and a note. A cell whose crash matches one is `known`: shown apart, and no reason for the
//! nightly to fail; a crash that matches none is a new crash as before.

use super::plan::{CellResult, Change, KnownStatus, Nightly};
use crate::arch::Arch;
use crate::def::diag::{from_toml, Diagnostic};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The file looked for beside the matrix.
pub const FILE: &str = "known-issues.toml";

/// After this many nightlies in a row without it, a known issue is reported as possibly fixed.
pub const DEFAULT_GONE_AFTER: u32 = 3;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnown {
    gone_after: Option<u32>,
    #[serde(default)]
    issue: Vec<Spanned<RawIssue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssue {
    /// The crash title, exactly.
    title: Option<String>,
    /// Or a regex the title must match.
    regex: Option<Spanned<String>>,
    /// Kernel definitions it applies to; default all.
    kernels: Option<Vec<String>>,
    /// Arches it applies to; default all.
    arches: Option<Vec<Arch>>,
    link: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Title(String),
    Regex(regex::Regex),
}

#[derive(Debug, Clone)]
pub struct KnownIssue {
    /// The title or the regex, as written: how the issue is named in reports.
    pub name: String,
    matcher: Matcher,
    pub kernels: Option<Vec<String>>,
    pub arches: Option<Vec<Arch>>,
    pub link: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Known {
    pub issues: Vec<KnownIssue>,
    pub gone_after: u32,
}

/// Parses a known-issues file. Errors name the file, line and key.
pub fn parse(path: &Path, source: &str) -> Result<Known, Diagnostic> {
    let raw: RawKnown = from_toml(path, source)?;
    let mut issues = Vec::new();
    for (i, spanned) in raw.issue.iter().enumerate() {
        let key = format!("issue[{i}]");
        let r = spanned.get_ref();
        let diag = |span, key: &str, msg: String| Diagnostic::at(path, source, Some(span), key, msg);
        let (name, matcher) = match (&r.title, &r.regex) {
            (Some(t), None) => (t.clone(), Matcher::Title(t.clone())),
            (None, Some(re)) => {
                let compiled = regex::Regex::new(re.get_ref())
                    .map_err(|e| diag(re.span(), &format!("{key}.regex"), format!("not a regex: {e}")))?;
                (re.get_ref().clone(), Matcher::Regex(compiled))
            }
            _ => {
                return Err(diag(
                    spanned.span(),
                    &key,
                    "a known issue needs exactly one of `title` or `regex`".into(),
                ))
            }
        };
        issues.push(KnownIssue {
            name,
            matcher,
            kernels: r.kernels.clone(),
            arches: r.arches.clone(),
            link: r.link.clone(),
            note: r.note.clone(),
        });
    }
    Ok(Known {
        issues,
        gone_after: raw.gone_after.unwrap_or(DEFAULT_GONE_AFTER).max(1),
    })
}

/// The cell ran to a verdict about the kernel.
fn was_tested(c: &CellResult) -> bool {
    matches!(
        c.verdict.as_str(),
        "reproduced" | "crashed-differently" | "not-reproduced"
    )
}

impl KnownIssue {
    /// Whether the issue applies to `c`'s kernel and arch.
    pub fn covers(&self, c: &CellResult) -> bool {
        let kernel_ok = self.kernels.as_ref().is_none_or(|k| k.contains(&c.cell.kernel));
        let arch_ok = self.arches.as_ref().is_none_or(|a| a.contains(&c.cell.arch));
        kernel_ok && arch_ok
    }

    /// Whether this issue explains `cell`'s crash.
    pub fn explains(&self, c: &CellResult) -> bool {
        let crashed = matches!(c.verdict.as_str(), "reproduced" | "crashed-differently");
        let Some(title) = c.title.as_deref().filter(|_| crashed) else {
            return false;
        };
        let title_ok = match &self.matcher {
            Matcher::Title(t) => t == title,
            Matcher::Regex(re) => re.is_match(title),
        };
        self.covers(c) && title_ok
    }
}

impl Known {
    /// The first issue that explains `c`'s crash.
    pub fn explaining(&self, c: &CellResult) -> Option<&KnownIssue> {
        self.issues.iter().find(|i| i.explains(c))
    }

    /// Each issue's status in `now`, given the earlier nightlies (oldest first).
    pub fn status(&self, now: &Nightly, earlier: &[Nightly]) -> Vec<KnownStatus> {
        self.issues
            .iter()
            .map(|issue| {
                let cells: Vec<String> = now
                    .cells
                    .iter()
                    .filter(|c| issue.explains(c))
                    .map(|c| c.cell.id())
                    .collect();
                let shows = |n: &Nightly| n.cells.iter().any(|c| issue.explains(c));
                // Only a nightly that tested a cell the issue could show in says it is gone.
                let tested = |n: &Nightly| n.cells.iter().any(|c| issue.covers(c) && was_tested(c));
                let absent_for = match cells.is_empty() {
                    false => 0,
                    true => std::iter::once(now)
                        .chain(earlier.iter().rev())
                        .take_while(|n| !shows(n))
                        .filter(|n| tested(n))
                        .count() as u32,
                };
                KnownStatus {
                    name: issue.name.clone(),
                    link: issue.link.clone(),
                    note: issue.note.clone(),
                    cells,
                    absent_for,
                    possibly_fixed: absent_for >= self.gone_after,
                }
            })
            .collect()
    }
}

/// Marks the cells of `n` whose crash a known issue explains (their change becomes `known`,
/// whatever it was) and records each issue's status against the earlier nightlies.
pub fn apply(known: &Known, n: &mut Nightly, earlier: &[Nightly]) {
    for c in &mut n.cells {
        c.known = known.explaining(c).map(|k| k.name.clone());
        if c.known.is_some() {
            n.changes.insert(c.cell.id(), Change::Known);
        }
    }
    n.known = known.status(n, earlier);
}
