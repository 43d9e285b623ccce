//! Command lines shown to the user, quoted so that they can be pasted into a POSIX shell.

/// Whether `arg` means the same to a shell as it is: no quoting, expansion or operator in it.
pub fn is_plain(arg: &str) -> bool {
    !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
}

/// The words of `line` when a program can be started on them without a shell: every word plain
/// and the first no variable assignment (`A=1 bash` needs a shell).
pub fn plain_command(line: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let plain = words.iter().all(|w| is_plain(w)) && words.first().is_some_and(|w| !w.contains('='));
    plain.then_some(words)
}

/// `arg` as one shell word: as it is when that is safe, else in single quotes.
pub fn quote(arg: &str) -> String {
    if is_plain(arg) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The argv as one shell-quoted line.
pub fn line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter().map(|a| quote(a.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_that_need_it_are_single_quoted() {
        assert_eq!(
            super::line(&["gdb", "-ex", "target remote /r/gdb.sock", "it's"]),
            "gdb -ex 'target remote /r/gdb.sock' 'it'\\''s'"
        );
        assert_eq!(super::quote(""), "''");
    }

    #[test]
    fn a_command_is_plain_only_without_quotes_expansions_or_assignments() {
        assert_eq!(
            super::plain_command(" /bin/busybox  sh "),
            Some(vec!["/bin/busybox", "sh"])
        );
        assert_eq!(super::plain_command("bash -x"), Some(vec!["bash", "-x"]));
        for line in ["", "A=1 bash", "bash -c 'x'", "$SHELL", "bash;ls"] {
            assert_eq!(super::plain_command(line), None, "{line:?}");
        }
    }
}
