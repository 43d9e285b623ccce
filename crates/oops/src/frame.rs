//! Parsing `func+0xoff/0xsize [mod]` frames and instruction pointers.

use crate::patterns;
use crate::report::Frame;

/// Parses a call-trace line (` ? foo+0x1/0x2 [mod]`, ` [<ffffffff8123>] foo+0x1/0x2`, ...), or
/// an inlined function's line of a symbolized trace (` foo fs/x.c:12 [inline]`, no offset).
pub(crate) fn parse_frame(line: &str) -> Option<Frame> {
    let p = patterns::get();
    // A frame has `+0x` (an offset) or is an inlined one, which ends in ` [inline]`.
    let c = if line.contains("+0x") {
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
    Some(Frame {
        function: c[3].to_string(),
        offset: hex(&c[4]),
        size: hex(&c[5]),
        module: c.get(6).map(|m| m.as_str().to_string()),
        reliable: c.get(1).is_none() && c.get(2).is_none(),
        source: Vec::new(),
    })
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
