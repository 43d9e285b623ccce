//! Diagnostics for user-written TOML: file:line:col, the key, and a caret under the spot.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error in a user-written file, pointing at the exact spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Dotted key path, e.g. `workload.timeout`; empty when the error is not about one key.
    pub key: String,
    pub message: String,
    /// The offending source line, without its newline.
    pub source_line: String,
    /// Caret width, in characters (at least 1).
    pub width: usize,
}

impl Diagnostic {
    /// Builds a diagnostic from a byte span into `source`.
    pub fn at(path: &Path, source: &str, span: Option<Range<usize>>, key: &str, message: impl Into<String>) -> Self {
        let span = span.unwrap_or(0..0);
        let start = span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let source_line = source[line_start..line_end].trim_end_matches('\r').to_string();
        let end = span.end.clamp(start, line_end);
        let width = source[start..end].trim_end().chars().count().max(1);
        Diagnostic {
            path: path.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message: message.into(),
            source_line,
            width,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.col)?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        writeln!(f, "{}", self.message)?;
        let gutter = self.line.to_string().len();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(self.col - 1),
            "^".repeat(self.width)
        )
    }
}

impl std::error::Error for Diagnostic {}

/// A directory a definition names, which the loader checks: missing, it is this diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsDir {
    pub path: PathBuf,
    pub diagnostic: Diagnostic,
}

/// Deserializes TOML into `T`, turning any failure into a [`Diagnostic`] naming the key.
pub fn from_toml<T: serde::de::DeserializeOwned>(path: &Path, source: &str) -> Result<T, Diagnostic> {
    let de = toml::Deserializer::new(source);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // `Spanned<T>` fields add a private segment to the path; it is not the user's key.
        let key = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        let message = inner.message().trim_end().to_string();
        Diagnostic::at(path, source, inner.span(), &key, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let src = "a = 1\nbad = \"x\"\n";
        let d = Diagnostic::at(Path::new("f.toml"), src, Some(12..15), "bad", "nope");
        assert_eq!(
            d.to_string(),
            "f.toml:2:7: key `bad`: nope\n  |\n2 | bad = \"x\"\n  |       ^^^"
        );
    }

    #[test]
    fn empty_span_still_gets_one_caret() {
        let d = Diagnostic::at(Path::new("f.toml"), "x = 1", None, "", "empty");
        assert_eq!(d.to_string(), "f.toml:1:1: empty\n  |\n1 | x = 1\n  | ^");
    }
}
