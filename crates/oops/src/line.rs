//! Splitting a byte stream into lines, and cleaning one line.
//!
//! A line ends at `\n`, at `\r\n` or at a lone `\r`. The splitter keeps only the bytes of the
//! line in progress, and at most [`MAX_LINE_BYTES`] of them: the rest of an over-long line is
//! counted (so byte offsets stay exact) but not kept.

use crate::patterns;

/// Bytes of one line kept for analysis; the rest of a longer line is dropped.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// A complete line: where it starts in the input, how long it is (terminator excluded), and its
/// first [`MAX_LINE_BYTES`] bytes.
pub(crate) struct RawLine<'a> {
    pub start: usize,
    pub len: usize,
    pub bytes: &'a [u8],
}

/// Incremental line splitter. Its output does not depend on how the input is chunked.
#[derive(Debug, Default, Clone)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    line_start: usize,
    line_len: usize,
    pos: usize,
    /// The previous line ended with `\r`: a `\n` right after it belongs to that terminator.
    skip_lf: bool,
}

impl Splitter {
    /// Feeds bytes; calls `on_line` for every line completed by them.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(RawLine<'_>)) {
        while !bytes.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if bytes[0] == b'\n' {
                    self.pos += 1;
                    self.line_start = self.pos;
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', bytes) {
                Some(p) => {
                    self.append(&bytes[..p]);
                    on_line(RawLine {
                        start: self.line_start,
                        len: self.line_len,
                        bytes: &self.buf,
                    });
                    self.buf.clear();
                    self.line_len = 0;
                    self.skip_lf = bytes[p] == b'\r';
                    self.pos += p + 1;
                    self.line_start = self.pos;
                    bytes = &bytes[p + 1..];
                }
                None => {
                    self.append(bytes);
                    self.pos += bytes.len();
                    bytes = &[];
                }
            }
        }
    }

    /// Flushes a partial last line, if any.
    pub fn finish(&mut self, mut on_line: impl FnMut(RawLine<'_>)) {
        if self.line_len > 0 {
            on_line(RawLine {
                start: self.line_start,
                len: self.line_len,
                bytes: &self.buf,
            });
            self.buf.clear();
            self.line_len = 0;
            self.line_start = self.pos;
        }
    }

    fn append(&mut self, part: &[u8]) {
        self.line_len += part.len();
        let room = MAX_LINE_BYTES.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&part[..part.len().min(room)]);
    }
}

/// Decodes one line lossily and strips what is not the kernel's message: a syslog `<N>` level,
/// a `dmesg -x` facility/level, a journal/syslog prefix, the `[   12.345678]` timestamp (or
/// `dmesg -T` date), a `[  T123]` / `[  C1]` caller id and crash(8)'s `<N>` level. If the line
/// has no timestamp at its start but has one further on (a kernel line glued to a shell
/// prompt), everything before that timestamp is dropped too. Trailing whitespace is removed;
/// the message's own leading whitespace (frame indentation) is kept.
pub(crate) fn clean(bytes: &[u8]) -> String {
    // Valid UTF-8 (nearly every line) is checked by std's word-at-a-time ASCII path.
    let decoded = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let p = patterns::get();
    let mut s: &str = &decoded;
    let mut had_stamp = false;
    if let Some(rest) = plain_stamp(s) {
        had_stamp = true;
        s = rest;
    } else if may_have_prefix(s) {
        if let Some(c) = p.line_prefix.captures(s) {
            had_stamp = c.name("stamp").is_some();
            s = &s[c.get(0).map_or(0, |m| m.end())..];
        }
    }
    if !had_stamp && s.contains('[') {
        if let Some(m) = p.stamp_anywhere.find(s) {
            s = &s[m.end()..];
        }
    }
    // kmemleak.verbose prints each line of an object with kmemleak's prefix: without it, the
    // object and its backtrace read as they do in /sys/kernel/debug/kmemleak.
    if let Some(rest) = s.strip_prefix("kmemleak: ") {
        if rest.starts_with(' ') || rest.starts_with("unreferenced object") {
            s = rest;
        }
    }
    let s = s.trim_end();
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_string()
    }
}

/// The common case without the prefix regex: `[   12.345678] ` and what follows, when nothing
/// else the prefix pattern strips comes after it (a caller id `[T1]`, a `<N>` level). `None`
/// sends the line through the regex, which gives the same result on every line this accepts.
fn plain_stamp(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?.trim_start();
    let rest = rest.strip_prefix('+').unwrap_or(rest);
    let int = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = rest[int..].strip_prefix('.').filter(|_| int > 0)?;
    let frac = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = rest[frac..].strip_prefix(']').filter(|_| frac > 0)?;
    let rest = match rest.chars().next() {
        Some(c) if c.is_whitespace() => &rest[c.len_utf8()..],
        _ => rest,
    };
    (!rest.starts_with(['[', '<'])).then_some(rest)
}

/// Whether the prefix pattern can match anything at the start of `s`: each of its parts starts
/// with `<`, `[`, a digit (ISO dates), an upper-case letter (syslog dates) or a facility name
/// (`dmesg -x`). Most console lines (indented frames, plain messages) start with none of them.
fn may_have_prefix(s: &str) -> bool {
    const FACILITIES: [&str; 12] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "ftp", "local",
    ];
    match s.bytes().next() {
        Some(b'<' | b'[') => true,
        Some(b) if b.is_ascii_digit() || b.is_ascii_uppercase() || !b.is_ascii() => true,
        Some(b) if b.is_ascii_lowercase() => FACILITIES.iter().any(|f| s.starts_with(f)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `clean` did before its fast paths: the prefix regex on every line.
    fn clean_by_regex(line: &str) -> String {
        let p = patterns::get();
        let mut s = line;
        let mut had_stamp = false;
        if let Some(c) = p.line_prefix.captures(s) {
            had_stamp = c.name("stamp").is_some();
            s = &s[c.get(0).map_or(0, |m| m.end())..];
        }
        if !had_stamp {
            if let Some(m) = p.stamp_anywhere.find(s) {
                s = &s[m.end()..];
            }
        }
        if let Some(rest) = s.strip_prefix("kmemleak: ") {
            if rest.starts_with(' ') || rest.starts_with("unreferenced object") {
                s = rest;
            }
        }
        s.trim_end().replace('\0', "")
    }

    #[test]
    fn the_fast_paths_clean_exactly_as_the_prefix_regex_does() {
        let lines = [
            "[   12.345678] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "[   12.345678]  nfs_updatepage+0x2b5/0x960 [nfs]",
            "[12.3] x",
            "[+0.000012] x",
            "[   12.345678] [    T1] Run /init as init process",
            "[   12.345678] [  C1] NMI backtrace",
            "[   12.345678] <4>WARNING: CPU: 0 PID: 1 at x",
            "[   12.345678]\tx",
            "[   12.345678]",
            "[   12.]",
            "[ .5] x",
            "[Mon Dec  1 19:21:38 2026] BUG: x",
            "<4>[   12.345678] BUG: x",
            "kern  :warn  : [   12.345678] WARNING: x",
            "Dec  1 19:21:38 host kernel: [   12.345678] BUG: x",
            "2026-12-01T19:21:38.123456+00:00 host kernel: BUG: x",
            " ? crash_null+0xc/0x13 [crashmod]",
            "Call Trace:",
            "root@guest:~# [   12.345678] sysrq: Trigger a crash",
            "kmemleak: unreferenced object 0xff11000008c6cf00 (size 128):",
            "kmemleak:     [<0000000043c066de>] __kmem_cache_alloc_node+0x113/0x126",
            "kmemleak: 1 new suspected memory leaks",
            "localhost kernel: x",
            "userspace says [   12.345678] hi",
            "\u{0661}\u{0662} x",
            "",
        ];
        for l in lines {
            assert_eq!(clean(l.as_bytes()), clean_by_regex(l), "{l:?}");
        }
    }

    fn split_all(chunks: &[&[u8]]) -> Vec<(usize, usize, Vec<u8>)> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push((l.start, l.len, l.bytes.to_vec())));
        }
        s.finish(|l| out.push((l.start, l.len, l.bytes.to_vec())));
        out
    }

    #[test]
    fn splits_lf_crlf_and_lone_cr() {
        let lines = split_all(&[b"a\r\nbb\rc\n\nd"]);
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.2.as_slice()).collect();
        assert_eq!(texts, vec![&b"a"[..], b"bb", b"c", b"", b"d"]);
        assert_eq!((lines[1].0, lines[1].1), (3, 2));
        assert_eq!((lines[4].0, lines[4].1), (9, 1));
    }

    #[test]
    fn crlf_split_across_chunks_is_one_terminator() {
        assert_eq!(split_all(&[b"a\r", b"\nb"]), split_all(&[b"a\r\nb"]));
    }

    #[test]
    fn long_lines_are_capped_but_counted() {
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let lines = split_all(&[&long, b"\nz"]);
        assert_eq!(lines[0].1, MAX_LINE_BYTES * 3);
        assert_eq!(lines[0].2.len(), MAX_LINE_BYTES);
        assert_eq!(lines[1].0, MAX_LINE_BYTES * 3 + 1);
    }

    #[test]
    fn cleans_prefixes() {
        assert_eq!(clean(b"[   12.345678] BUG: x"), "BUG: x");
        assert_eq!(clean(b"[   12.345678]  foo+0x1/0x2\r"), " foo+0x1/0x2");
        assert_eq!(clean(b"[   12.345678][  T123] BUG: x"), "BUG: x");
        assert_eq!(clean(b"[   12.345678] [T123] BUG: x"), "BUG: x");
        assert_eq!(clean(b"[ 1542.642868][    C1]  foo+0x1/0x2"), " foo+0x1/0x2");
        assert_eq!(clean(b"kern  :emerg : [   12.345678] BUG: x"), "BUG: x");
        assert_eq!(clean(b"<4>[   12.345678] WARNING: y"), "WARNING: y");
        assert_eq!(
            clean(b"Dec 25 09:02:54 pi kernel: [  739.814195]  run+0x2/0x5"),
            " run+0x2/0x5"
        );
        assert_eq!(
            clean(b"[Wed May 28 02:04:57 2025] Oops: 0000 [#1] SMP"),
            "Oops: 0000 [#1] SMP"
        );
        assert_eq!(clean(b"[Wed May 28 02:04:57 CST 2025] Oops: 0 [#1]"), "Oops: 0 [#1]");
        assert_eq!(clean(b"[  12.345678] <4>WARNING: y"), "WARNING: y");
        assert_eq!(clean(b"root@guest:~# [   16.123456] BUG: z"), "BUG: z");
        assert_eq!(clean(b" plain frame+0x1/0x2"), " plain frame+0x1/0x2");
        assert_eq!(
            clean(b"rcu: INFO: rcu_sched self-detected stall on CPU"),
            "rcu: INFO: rcu_sched self-detected stall on CPU"
        );
        assert_eq!(
            clean(b"nfs: server 10.0.0.1 not responding"),
            "nfs: server 10.0.0.1 not responding"
        );
        assert_eq!(clean(b"\xff\xfe[ 1.000000] ok"), "ok");
    }
}
