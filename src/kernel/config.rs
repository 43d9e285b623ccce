//! Kernel config recipes: a base (tinyconfig, defconfig or a file) plus fragments, merged the way
//! the kernel's `scripts/kconfig/merge_config.sh` does (a later assignment replaces an earlier one),
//! then checked after `olddefconfig`: an option a fragment asked for that did not survive is an
//! error naming the option and the fragment line, never a silently different kernel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `CONFIG_X=value` or `# CONFIG_X is not set` line of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Without the `CONFIG_` prefix.
    pub name: String,
    /// `y`, `m`, `n` (for "is not set"), a number, or a quoted string as written.
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{}:{line}: not a config line (expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`): {text}", file.display())]
    Syntax { file: PathBuf, line: usize, text: String },
    #[error("{}", dropped_message(.0))]
    Dropped(Vec<Dropped>),
}

/// A requested option that `olddefconfig` changed, usually because a dependency is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub entry: Entry,
    /// What the final config has: a value, or `n` when unset or absent.
    pub have: String,
}

fn dropped_message(d: &[Dropped]) -> String {
    let mut s = format!(
        "{} requested option(s) did not survive olddefconfig (a dependency is probably missing):",
        d.len()
    );
    for x in d {
        s.push_str(&format!(
            "\n  {}:{}: CONFIG_{}={} but the config has {}",
            x.entry.file.display(),
            x.entry.line,
            x.entry.name,
            x.entry.value,
            show(&x.have)
        ));
    }
    s
}

fn show(v: &str) -> String {
    if v == "n" {
        "it unset".into()
    } else {
        format!("`{v}`")
    }
}

fn symbol_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# CONFIG_") {
        let name = rest.strip_suffix(" is not set")?;
        if is_symbol(name) {
            return Some((name.to_string(), "n".to_string()));
        }
        return None;
    }
    let rest = line.strip_prefix("CONFIG_")?;
    let (name, value) = rest.split_once('=')?;
    if !is_symbol(name) || value.is_empty() {
        return None;
    }
    Some((name.to_string(), value.to_string()))
}

fn is_symbol(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a fragment. Blank lines and comments are allowed; anything else must be an assignment.
pub fn parse_fragment(file: &Path, text: &str) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if let Some((name, value)) = symbol_line(t) {
            out.push(Entry {
                name,
                value,
                file: file.to_path_buf(),
                line: i + 1,
            });
        } else if !(t.is_empty() || t.starts_with('#')) {
            return Err(Error::Syntax {
                file: file.to_path_buf(),
                line: i + 1,
                text: t.to_string(),
            });
        }
    }
    Ok(out)
}

/// The values a config file sets, by symbol. "is not set" lines map to `n`.
pub fn values(config: &str) -> BTreeMap<String, String> {
    config.lines().filter_map(symbol_line).collect()
}

/// Merges fragment entries into a base config: each symbol's old line is dropped and the new one
/// appended, in order, so the last assignment wins.
pub fn merge(base: &str, entries: &[Entry]) -> String {
    let mut last: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        last.insert(e.name.as_str(), e);
    }
    let mut out = String::with_capacity(base.len() + entries.len() * 32);
    for line in base.lines() {
        match symbol_line(line) {
            Some((name, _)) if last.contains_key(name.as_str()) => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for e in entries {
        if last.get(e.name.as_str()).is_some_and(|l| std::ptr::eq(*l, e)) {
            out.push_str(&render(e));
            out.push('\n');
        }
    }
    out
}

fn render(e: &Entry) -> String {
    if e.value == "n" {
        format!("# CONFIG_{} is not set", e.name)
    } else {
        format!("CONFIG_{}={}", e.name, e.value)
    }
}

/// Every requested option (the last assignment of each symbol) that the final config lacks.
pub fn check(final_config: &str, entries: &[Entry]) -> Result<(), Error> {
    let have = values(final_config);
    let mut last: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        last.insert(e.name.as_str(), e);
    }
    let mut dropped: Vec<Dropped> = last
        .values()
        .filter_map(|e| {
            let h = have.get(&e.name).cloned().unwrap_or_else(|| "n".to_string());
            (h != e.value).then(|| Dropped {
                entry: (*e).clone(),
                have: h,
            })
        })
        .collect();
    if dropped.is_empty() {
        return Ok(());
    }
    dropped.sort_by(|a, b| (&a.entry.file, a.entry.line).cmp(&(&b.entry.file, b.entry.line)));
    Err(Error::Dropped(dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(text: &str) -> Vec<Entry> {
        parse_fragment(Path::new("f.config"), text).unwrap()
    }

    #[test]
    fn parses_assignments_and_not_set() {
        let e = frag("# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=16\n");
        let got: Vec<(&str, &str, usize)> = e.iter().map(|e| (&*e.name, &*e.value, e.line)).collect();
        assert_eq!(
            got,
            vec![("A", "y", 3), ("B", "n", 4), ("C", "\"x y\"", 5), ("D", "16", 6)]
        );
    }

    #[test]
    fn rejects_garbage_with_file_and_line() {
        let err = parse_fragment(Path::new("k/f.config"), "CONFIG_A=y\nXFS=y\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "k/f.config:2: not a config line (expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`): XFS=y"
        );
    }

    #[test]
    fn merge_replaces_and_last_wins() {
        let base = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n";
        let mut e = frag("CONFIG_B=y\nCONFIG_A=n\n");
        e.extend(frag("CONFIG_B=m\n"));
        let merged = merge(base, &e);
        assert_eq!(merged, "CONFIG_C=m\n# CONFIG_A is not set\nCONFIG_B=m\n");
    }

    #[test]
    fn check_names_dropped_options_with_their_fragment_line() {
        let e = frag("CONFIG_A=y\nCONFIG_NFSD=y\n# CONFIG_X is not set\nCONFIG_S=\"-repro\"\n");
        let fin = "CONFIG_A=y\n# CONFIG_NFSD is not set\nCONFIG_S=\"-repro\"\n";
        let err = check(fin, &e).unwrap_err();
        let Error::Dropped(d) = &err else { panic!("{err}") };
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].entry.name, "NFSD");
        assert_eq!(
            err.to_string(),
            "1 requested option(s) did not survive olddefconfig (a dependency is probably missing):\n  \
             f.config:2: CONFIG_NFSD=y but the config has it unset"
        );
        assert!(check("CONFIG_A=y\nCONFIG_NFSD=y\nCONFIG_S=\"-repro\"\n", &e).is_ok());
    }

    #[test]
    fn check_catches_a_changed_value() {
        let e = frag("CONFIG_NR_CPUS=16\n");
        let err = check("CONFIG_NR_CPUS=8\n", &e).unwrap_err();
        assert!(
            err.to_string().contains("CONFIG_NR_CPUS=16 but the config has `8`"),
            "{err}"
        );
    }
}
