//! Errors turned into text, once, at the edge, and the one error for a record that could not
//! be written.

use std::path::PathBuf;

/// A driver's record (`bisect.json`, `verify.json`) could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An error and all its sources, joined with ": " (a source whose text the chain already holds
/// is not repeated).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
