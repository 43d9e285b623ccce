//! The one rule for the names a definition gives (nodes, devices, modules, patch sets), and the
//! rule for shell variable names.

/// Letters, digits, `-` and `_`, at least one.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What [`is_name`] wants, for a diagnostic about the `what` name `name`.
pub fn rule(what: &str, name: &str) -> String {
    format!("{what} name `{name}` must be non-empty and use only letters, digits, `-` and `_`")
}

/// A name usable as a shell variable: letters, digits and `_`, not starting with a digit.
pub fn is_var_name(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_variables() {
        assert!(is_name("seed-002_xfs"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
        assert!(!is_name("a/b"));
        assert!(is_var_name("_SECS1"));
        assert!(!is_var_name("1SECS"));
        assert!(!is_var_name("A-B"));
    }
}
