//! What every section's validator shares: the file being read, diagnostics that point into it,
//! and the rules that recur (node references, counts, regexes, names).

use super::model::Node;
use crate::def::diag::Diagnostic;
use crate::def::name;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// The scenario file being validated.
#[derive(Clone, Copy)]
pub(super) struct File<'a> {
    pub path: &'a Path,
    pub source: &'a str,
}

pub(super) type Checked<T> = Result<T, Diagnostic>;

/// A workload or check without a `timeout`.
pub(super) const DEFAULT_WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);

impl File<'_> {
    /// A diagnostic at `span`, about `key`.
    pub fn diag(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.path, self.source, Some(span), key, message)
    }

    /// The index of the node `node` names (`None`: `default`).
    pub fn node(&self, nodes: &[Node], node: &Option<Spanned<String>>, key: &str, default: usize) -> Checked<usize> {
        match node {
            None => Ok(default),
            Some(n) => nodes
                .iter()
                .position(|m| &m.name == n.get_ref())
                .ok_or_else(|| self.diag(n.span(), key, format!("no node named `{}`", n.get_ref()))),
        }
    }

    /// A count that defaults to 1 and may not be 0.
    pub fn positive(&self, value: &Option<Spanned<u32>>, key: &str) -> Checked<u32> {
        match value {
            None => Ok(1),
            Some(v) if *v.get_ref() >= 1 => Ok(*v.get_ref()),
            Some(v) => Err(self.diag(v.span(), key, "must be at least 1")),
        }
    }

    pub fn regex(&self, pattern: &Spanned<String>, key: &str) -> Checked<regex::Regex> {
        regex::Regex::new(pattern.get_ref()).map_err(|e| {
            let last = e.to_string().lines().last().unwrap_or("").to_string();
            self.diag(pattern.span(), key, format!("invalid regex: {last}"))
        })
    }

    /// `name` under the one name rule, as a `what` name.
    pub fn name(&self, name: &Spanned<String>, key: &str, what: &str) -> Checked<String> {
        if name::is_name(name.get_ref()) {
            Ok(name.get_ref().clone())
        } else {
            Err(self.diag(name.span(), key, name::rule(what, name.get_ref())))
        }
    }

    /// A kernel name: one of the `defined` definitions or a `debian:` name.
    pub fn kernel(&self, value: &Spanned<String>, key: &str, defined: &[String]) -> Checked<String> {
        crate::archive::known_kernel(value.get_ref(), defined)
            .map(|()| value.get_ref().clone())
            .map_err(|why| self.diag(value.span(), key, why))
    }

    /// One of `known` definition names.
    pub fn known(&self, value: &Spanned<String>, key: &str, what: &str, known: &[String]) -> Checked<String> {
        if known.iter().any(|n| n == value.get_ref()) {
            return Ok(value.get_ref().clone());
        }
        Err(self.diag(
            value.span(),
            key,
            format!(
                "unknown {what} `{}`, defined {what}s: {}",
                value.get_ref(),
                known.join(", ")
            ),
        ))
    }
}
