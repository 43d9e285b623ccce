//! What one report line is (frame, instruction pointer, trace header, ...) and where it sits in
//! the report's call traces.
//!
//! The [`Tracker`] follows `Call Trace:` sections line by line: it knows when a trace ends
//! (`</TASK>` on 5.16+, the first line that is not a frame on older kernels), whether a line is
//! inside an `<IRQ>`/`<NMI>` section, and whether foreign output was interleaved into a trace.

use crate::frame::{parse_frame, parse_target};
use crate::patterns;
use crate::report::Frame;

/// The shape of one line.
#[derive(Debug, Clone)]
pub(crate) enum LineKind {
    Frame(Frame),
    /// `RIP:` / `IP:` / `EIP:` / `pc :` / `PC is at`; `kernel` is false for user-mode `RIP: 0033:`.
    Pc {
        target: Option<Frame>,
        kernel: bool,
    },
    /// `lr :` / `LR is at`.
    Lr(Option<Frame>),
    CallTrace,
    Marker(Marker),
    RegDump,
    /// A trace entry with no symbol (` ? 0xffffffffc0495000`: module text being loaded, or
    /// freed): part of the trace, but no frame to name.
    RawAddress,
    Other,
}

/// Stack-type markers printed inside x86 call traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    TaskOpen,
    TaskClose,
    IrqOpen,
    IrqClose,
}

/// Classifies one cleaned line.
pub(crate) fn classify(text: &str) -> LineKind {
    let p = patterns::get();
    // Each pattern's literal part is looked for first: most lines are frames or registers, and
    // a substring search is much cheaper than a regex match that fails.
    let lead = text.trim_start();
    if text.contains("race") && p.call_trace.is_match(text) {
        return LineKind::CallTrace;
    }
    if let Some(c) = lead.starts_with('<').then(|| p.marker.captures(text)).flatten() {
        let closing = !c[1].is_empty();
        return LineKind::Marker(match (&c[2], closing) {
            ("TASK", false) => Marker::TaskOpen,
            ("TASK", true) => Marker::TaskClose,
            ("EOI", _) | (_, true) => Marker::IrqClose,
            _ => Marker::IrqOpen,
        });
    }
    if let Some(c) = text.contains("IP:").then(|| p.rip.captures(text)).flatten() {
        let kernel = matches!(c.get(1).map(|m| m.as_str()), None | Some("0010") | Some("0060"));
        return LineKind::Pc {
            target: parse_target(&c[2]),
            kernel,
        };
    }
    let pc_lr = lead.starts_with(['p', 'l', 'P', 'L']);
    if let Some(c) = pc_lr
        .then(|| p.pc_lr.captures(text).or_else(|| p.pc_is_at.captures(text)))
        .flatten()
    {
        let target = parse_target(&c[2]);
        return if c[1].eq_ignore_ascii_case("pc") {
            LineKind::Pc { target, kernel: true }
        } else {
            LineKind::Lr(target)
        };
    }
    if let Some(f) = parse_frame(text) {
        return LineKind::Frame(f);
    }
    if p.regdump.is_match(text) {
        return LineKind::RegDump;
    }
    if is_raw_address(text) {
        return LineKind::RawAddress;
    }
    LineKind::Other
}

/// ` 0xffffffffc0495000` or ` ? 0xffffffffc0495000`, alone on the line, possibly after the
/// address in brackets (kmemleak's `[<00000000b3c2a1f0>] 0xffffffffa0008082`).
fn is_raw_address(text: &str) -> bool {
    let t = text.trim();
    let t = match t.strip_prefix("[<").and_then(|r| r.split_once(">]")) {
        Some((hex, rest)) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => rest.trim_start(),
        _ => t,
    };
    let t = t.strip_prefix("? ").unwrap_or(t);
    t.strip_prefix("0x")
        .is_some_and(|h| !h.is_empty() && h.len() <= 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where a line sits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx {
    /// Index (from 1) of the `Call Trace:` section the line is in.
    pub trace: Option<u32>,
    /// Index (from 1) of the run of consecutive frames a frame belongs to.
    pub run: u32,
    /// Inside an `<IRQ>` / `<NMI>` / ... section.
    pub in_irq: bool,
    /// Part of a dump that does not describe the crash (RCU grace-period kthread dumps).
    pub ignored: bool,
}

/// A call trace that counts (not an ignored dump) just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceEnd {
    /// With this line (`</TASK>`), which belongs to it.
    Inclusive,
    /// Before this line, which is not part of the trace.
    Exclusive,
}

/// One line of a report.
#[derive(Debug, Clone)]
pub(crate) struct LineInfo {
    pub text: String,
    pub kind: LineKind,
    pub ctx: Ctx,
}

/// Follows the call traces of one report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    traces: u32,
    open: bool,
    frames: usize,
    task_marker: bool,
    interrupted: bool,
    in_irq: bool,
    ignore_next: bool,
    cur_ignored: bool,
    run: u32,
    last_was_frame: bool,
    /// Number of completed traces that count.
    pub done: usize,
    /// Frames continued after foreign output in the middle of a trace.
    pub interleaved: bool,
    /// Last frame of the open trace.
    pub last_frame: Option<String>,
}

impl Tracker {
    /// A trace is open, has frames, and has no `<TASK>` marker (so no `</TASK>` will close it).
    pub fn open_unmarked_with_frames(&self) -> bool {
        self.open && self.frames > 0 && !self.task_marker && !self.cur_ignored
    }

    /// A trace is open and has frames.
    pub fn has_frames(&self) -> bool {
        self.open && self.frames > 0 && !self.cur_ignored
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            trace: self.open.then_some(self.traces),
            run: self.run,
            in_irq: self.in_irq,
            ignored: self.cur_ignored || (self.ignore_next && !self.open),
        }
    }

    fn close(&mut self, how: TraceEnd) -> Option<TraceEnd> {
        self.open = false;
        self.in_irq = false;
        self.last_was_frame = false;
        let counted = !std::mem::take(&mut self.cur_ignored);
        if counted {
            self.done += 1;
        }
        counted.then_some(how)
    }

    /// Updates the state with one line; returns the line's context and whether a counted
    /// trace ended.
    pub fn step(&mut self, kind: &LineKind, text: &str) -> (Ctx, Option<TraceEnd>) {
        match kind {
            LineKind::CallTrace => {
                let end = if self.open {
                    self.close(TraceEnd::Exclusive)
                } else {
                    None
                };
                self.traces += 1;
                self.open = true;
                self.frames = 0;
                self.task_marker = false;
                self.interrupted = false;
                self.in_irq = false;
                self.last_frame = None;
                self.cur_ignored = std::mem::take(&mut self.ignore_next);
                (self.ctx(), end)
            }
            LineKind::Marker(m) if self.open => {
                match m {
                    Marker::TaskOpen => {
                        self.task_marker = true;
                        self.in_irq = false;
                    }
                    Marker::IrqOpen => self.in_irq = true,
                    Marker::IrqClose => self.in_irq = false,
                    Marker::TaskClose => {
                        let ctx = self.ctx();
                        return (ctx, self.close(TraceEnd::Inclusive));
                    }
                }
                (self.ctx(), None)
            }
            LineKind::Frame(f) => {
                if !self.last_was_frame {
                    self.run += 1;
                }
                self.last_was_frame = true;
                if self.open {
                    self.frames += 1;
                    self.last_frame = Some(f.function.clone());
                    if std::mem::take(&mut self.interrupted) {
                        self.interleaved = true;
                    }
                }
                (self.ctx(), None)
            }
            LineKind::Pc { .. } | LineKind::Lr(_) | LineKind::RegDump | LineKind::RawAddress | LineKind::Marker(_) => {
                (self.ctx(), None)
            }
            LineKind::Other => {
                self.last_was_frame = false;
                if patterns::get().ignore_next_trace.is_match(text) {
                    self.ignore_next = true;
                }
                if self.open {
                    if self.task_marker || self.frames == 0 {
                        self.interrupted = true;
                    } else {
                        let end = self.close(TraceEnd::Exclusive);
                        return (self.ctx(), end);
                    }
                }
                (self.ctx(), None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (Tracker, Vec<Option<TraceEnd>>) {
        let mut t = Tracker::default();
        let ends = lines.iter().map(|l| t.step(&classify(l), l).1).collect();
        (t, ends)
    }

    #[test]
    fn classifies() {
        assert!(matches!(classify("Call Trace:"), LineKind::CallTrace));
        assert!(matches!(classify(" <TASK>"), LineKind::Marker(Marker::TaskOpen)));
        assert!(matches!(classify(" </IRQ>"), LineKind::Marker(Marker::IrqClose)));
        assert!(matches!(classify(" <EOI>"), LineKind::Marker(Marker::IrqClose)));
        assert!(matches!(classify(" ? 0xffffffffa0008000"), LineKind::RawAddress));
        assert!(matches!(
            classify("    [<0000000040604b31>] 0xffffffffa0008082"),
            LineKind::RawAddress
        ));
        assert!(matches!(classify("  backtrace:"), LineKind::CallTrace));
        assert!(matches!(classify("  backtrace (crc 5e3a9c2b):"), LineKind::CallTrace));
        assert!(matches!(
            classify("RIP: 0033:0x7f1234"),
            LineKind::Pc {
                kernel: false,
                target: None
            }
        ));
        match classify("RIP: 0010:_raw_spin_lock+0x11/0x30") {
            LineKind::Pc {
                kernel: true,
                target: Some(f),
            } => assert_eq!(f.function, "_raw_spin_lock"),
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            classify("RIP: 0010:0x0"),
            LineKind::Pc {
                kernel: true,
                target: None
            }
        ));
        assert!(matches!(
            classify("RIP: 0010:          (null)"),
            LineKind::Pc {
                kernel: true,
                target: None
            }
        ));
        match classify("RIP: 0010:[<ffffffff813bd6e3>]  [<ffffffff813bd6e3>] _raw_spin_lock+0x13/0x30") {
            LineKind::Pc { target: Some(f), .. } => assert_eq!(f.function, "_raw_spin_lock"),
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            classify("pc : __queue_work+0xb4/0x558"),
            LineKind::Pc { target: Some(_), .. }
        ));
        assert!(matches!(
            classify("lr : __queue_work+0x6c/0x558"),
            LineKind::Lr(Some(_))
        ));
        assert!(matches!(
            classify("PC is at __queue_work+0xb4/0x558"),
            LineKind::Pc { target: Some(_), .. }
        ));
        assert!(matches!(
            classify("RSP: 0018:ffffc90021ebfc38 EFLAGS: 00010246"),
            LineKind::RegDump
        ));
        assert!(matches!(
            classify("x29: ffff80000a3bbb40 x28: 0000000000000000"),
            LineKind::RegDump
        ));
        assert!(matches!(classify("Modules linked in: nfsv4"), LineKind::Other));
    }

    #[test]
    fn old_trace_ends_at_first_non_frame() {
        let (t, ends) = run(&["Call Trace:", " foo+0x1/0x2", " bar+0x1/0x2", "Modules linked in:"]);
        assert_eq!(ends, vec![None, None, None, Some(TraceEnd::Exclusive)]);
        assert_eq!(t.done, 1);
    }

    #[test]
    fn task_trace_ends_at_close_marker_and_spots_interleaving() {
        let (t, ends) = run(&[
            "Call Trace:",
            " <TASK>",
            " foo+0x1/0x2",
            "root@vm:~# ",
            " bar+0x1/0x2",
            "RIP: 0033:0x7f",
            " </TASK>",
        ]);
        assert_eq!(ends.last().copied().flatten(), Some(TraceEnd::Inclusive));
        assert!(t.interleaved);
    }

    #[test]
    fn ignored_dumps_do_not_count() {
        let (t, ends) = run(&[
            "rcu: RCU grace-period kthread stack dump:",
            "Call Trace:",
            " __schedule+0x1/0x2",
            "NMI backtrace for cpu 0",
            "Call Trace:",
            " foo+0x1/0x2",
            "next",
        ]);
        assert_eq!(ends[3], None);
        assert_eq!(ends[6], Some(TraceEnd::Exclusive));
        assert_eq!(t.done, 1);
    }
}
