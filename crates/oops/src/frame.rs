//! Parsing `func+0xoff/0xsize [mod]` frames and instruction pointers.

use crate::patterns;
use crate::report::Frame;

/// Parses a call-trace line (` ? foo+0x1/0x2 [mod]`, ` [<ffffffff8123>] foo+0x1/0x2`, ...), or
/// an inlined function's line of a symbolized trace (` foo fs/x.c:12 [inline]`, no offset).
pub(crate) fn parse_frame(line: &str) -> Option<Frame> {
    let p = patterns::get();
    // A frame has `+0x` (an offset) or is an inlined one, which ends in ` [inline]`.
    let c = if line.contains("+0x") {
        if let Some(frame) = by_hand(line) {
            return Some(frame);
        }
        p.frame.captures(line)
    } else {
        None
    };
    let Some(c) = c else {
        if !line.ends_with("[inline]") {
            return None;
        }
        let c = p.inline_frame.captures(line)?;
        return Some(Frame {
            function: c[2].to_string(),
            offset: None,
            size: None,
            module: None,
            reliable: c.get(1).is_none(),
            source: Vec::new(),
        });
    };
    Some(from_regex(&c))
}

/// The frame of the frame regex's match.
fn from_regex(c: &regex::Captures<'_>) -> Frame {
    Frame {
        function: c[3].to_string(),
        offset: hex(&c[4]),
        size: hex(&c[5]),
        module: c.get(6).map(|m| m.as_str().to_string()),
        reliable: c.get(1).is_none() && c.get(2).is_none(),
        source: Vec::new(),
    }
}

/// The frame regex's match, read by hand for the shapes nearly every trace line has (the regex
/// with captures was a sixth of the parser's time): up to two `[<addr>]` / `?` marks, then
/// `name+0xoff/0xsize`, then nothing, or whitespace and an optional `[mod]` or `[mod buildid]`
/// that ends the line or is followed by whitespace. `None` for any other line: the regex decides
/// those. A test holds the two to the same answers on every fixture line.
fn by_hand(line: &str) -> Option<Frame> {
    let mut s = line.trim_start();
    let mut marked = false;
    for _ in 0..2 {
        if let Some(rest) = s.strip_prefix("[<") {
            let (_addr, rest) = hex_prefix(rest)?;
            s = spaced(rest.strip_prefix(">]")?)?;
        }
        if let Some(rest) = s.strip_prefix('?') {
            s = spaced(rest)?;
            marked = true;
        }
    }
    let name = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"_.$".contains(&b)))
        .unwrap_or(s.len());
    if name == 0 || s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let (function, rest) = s.split_at(name);
    let (offset, rest) = hex_prefix(rest.strip_prefix("+0x")?)?;
    let (size, rest) = hex_prefix(rest.strip_prefix("/0x")?)?;
    let module = if rest.is_empty() {
        None
    } else {
        module_of(spaced(rest)?)
    };
    Some(Frame {
        function: function.to_string(),
        offset: hex(offset),
        size: hex(size),
        module: module.map(str::to_string),
        reliable: !marked,
        source: Vec::new(),
    })
}

/// `s` after the whitespace it starts with; `None` if it starts with none.
fn spaced(s: &str) -> Option<&str> {
    let t = s.trim_start();
    (t.len() < s.len()).then_some(t)
}

/// The ASCII hex digits `s` starts with (at least one), and the rest.
fn hex_prefix(s: &str) -> Option<(&str, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    (n > 0).then(|| s.split_at(n))
}

/// The module of a frame's tail (`[nfs]`, `[xfs 1a2b]`): only when the bracket ends the line or
/// whitespace follows it, as the regex has it.
fn module_of(tail: &str) -> Option<&str> {
    let rest = tail.strip_prefix('[')?;
    let n = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    let (name, mut after) = rest.split_at(n);
    if let Some(id) = spaced(after).and_then(hex_prefix) {
        after = id.1;
    }
    let after = after.strip_prefix(']')?;
    let ends = after.is_empty() || after.starts_with(char::is_whitespace);
    (n > 0 && ends).then_some(name)
}

/// Parses the symbol part of a `RIP:` / `pc :` line (`foo+0x1/0x2 [mod]`); `None` for an
/// address without symbol (`0x0`, `(null)`, `0xffffffffc0123456`).
pub(crate) fn parse_target(target: &str) -> Option<Frame> {
    let c = patterns::get().target.captures(target.trim_start())?;
    Some(Frame {
        function: c[1].to_string(),
        offset: hex(&c[2]),
        size: hex(&c[3]),
        module: c.get(4).map(|m| m.as_str().to_string()),
        reliable: true,
        source: Vec::new(),
    })
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// The function name as used in titles: compiler clone suffixes (`.isra.0`, `.constprop.0`,
/// `.part.0`, `.cold`, ...) removed, so that two builds title alike.
pub(crate) fn title_name(function: &str) -> &str {
    match function.find('.') {
        Some(0) | None => function,
        Some(i) => &function[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the regex alone makes of a line with an offset.
    fn by_regex(line: &str) -> Option<Frame> {
        patterns::get().frame.captures(line).as_ref().map(from_regex)
    }

    #[test]
    fn frames_read_by_hand_are_what_the_regex_reads_on_every_fixture_line() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut lines: Vec<String> = [
            " ? foo+0x1/0x2 [mod]x",
            "[<ffffffff81000000>] ? [<ffffffff81000001>] ? bar.isra.0+0x1a/0x40 [xfs 1a2b]",
            " ? ? ? baz+0x1/0x2",
            " 9abc+0x1/0x2",
            " +0x1/0x2",
            " foo+0x1/0x2x",
            " foo+0x1/0x2 [mod abc def] tail",
            " foo+0x1/0x2 [ mod]",
            " foo+0x1/0x2\u{a0}[nfs]",
            "[<zz>] foo+0x1/0x2",
            "?foo+0x1/0x2",
            " foo+0x123456789abcdef01/0x2",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read(entry.unwrap().path()).unwrap();
            lines.extend(text.split(|&b| b == b'\n').map(crate::line::clean));
        }
        let (mut frames, mut by_hand_too) = (0, 0);
        for line in lines.iter().filter(|l| l.contains("+0x")) {
            let want = by_regex(line);
            frames += usize::from(want.is_some());
            if let Some(got) = by_hand(line) {
                assert_eq!(Some(got), want, "{line:?}");
                by_hand_too += 1;
            }
        }
        // The hand-read path is the common one, or it saves nothing.
        assert!(
            by_hand_too * 100 >= frames * 95,
            "{by_hand_too} of {frames} frames by hand"
        );
    }

    #[test]
    fn a_symbolized_inline_line_is_a_frame_without_offset() {
        let f = parse_frame(" slab_free_hook mm/slub.c:2163 [inline]").unwrap();
        assert_eq!(
            (f.function.as_str(), f.offset, f.reliable),
            ("slab_free_hook", None, true)
        );
        assert!(parse_frame(" see mm/slub.c:2163 for details").is_none());
    }

    #[test]
    fn frames() {
        let f = parse_frame(" nfs_updatepage+0x1a/0x40 [nfs]").unwrap();
        assert_eq!(
            f,
            Frame {
                function: "nfs_updatepage".into(),
                offset: Some(0x1a),
                size: Some(0x40),
                module: Some("nfs".into()),
                reliable: true,
                source: Vec::new(),
            }
        );
        let f = parse_frame(" ? kmem_cache_alloc+0x3f/0x3f0").unwrap();
        assert!(!f.reliable);
        assert_eq!(f.module, None);
        let f = parse_frame(" [<ffffffff81234567>] ? foo.isra.3+0x1a/0x40 [xfs]").unwrap();
        assert_eq!(
            (f.function.as_str(), f.reliable, f.module.as_deref()),
            ("foo.isra.3", false, Some("xfs"))
        );
        let f = parse_frame("[<ffff000008111014>] __queue_work+0xb4/0x558").unwrap();
        assert_eq!(
            (f.function.as_str(), f.offset, f.size),
            ("__queue_work", Some(0xb4), Some(0x558))
        );
        let f = parse_frame("       lock_acquire+0xc8/0x2d0").unwrap();
        assert_eq!(f.function, "lock_acquire");
        let f = parse_frame(" show_stack+0x18/0x24 (C)").unwrap();
        assert_eq!(f.function, "show_stack");
        let f = parse_frame(" nfsd4_run_cb+0x30/0x50 [nfsd 1a2b3c4d5e6f]").unwrap();
        assert_eq!(f.module.as_deref(), Some("nfsd"));
        for no in [
            "RIP: 0010:foo+0x1/0x2",
            "pc : foo+0x1/0x2",
            "BUG: KASAN: use-after-free in foo+0x1/0x2",
            " 0xffffffffc0123456",
            "Call Trace:",
        ] {
            assert!(parse_frame(no).is_none(), "{no}");
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("_raw_spin_lock+0x11/0x30").unwrap().function,
            "_raw_spin_lock"
        );
        assert_eq!(
            parse_target("nfsd4_run_cb+0x30/0x50 [nfsd]").unwrap().module.as_deref(),
            Some("nfsd")
        );
        assert!(parse_target("0x0").is_none());
        assert!(parse_target("          (null)").is_none());
    }

    #[test]
    fn title_names() {
        assert_eq!(title_name("path_lookupat.isra.53"), "path_lookupat");
        assert_eq!(title_name("nmi_cpu_backtrace.cold"), "nmi_cpu_backtrace");
        assert_eq!(title_name("el0_svc_common.constprop.0"), "el0_svc_common");
        assert_eq!(title_name("plain"), "plain");
    }
}
