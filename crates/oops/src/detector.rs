//! The incremental detector: a state machine over cleaned lines.
//!
//! Idle lines are looked at once and forgotten; only the lines of the report in progress are
//! kept (at most [`MAX_REPORT_LINES`]). A report goes through two phases: its body, until its
//! natural end (`---[ end trace`, a closing `=====`, the end of its call trace, a panic), then a
//! short tail that picks up what the kernel prints right after (register dump, `Kernel panic -
//! not syncing: Fatal exception`, `Kernel Offset:`, `---[ end Kernel panic ...`). The report is
//! returned when the tail ends: at `---[ end Kernel panic`, at the first line that is not tail,
//! after [`MAX_TAIL_LINES`], or at [`Detector::finish`].

use crate::analyze;
use crate::line::{clean, RawLine, Splitter};
use crate::patterns::{self, in_table, EndRule, HEADERS, STACK_BOTTOM};
use crate::pending::Pending;
use crate::report::{CrashKind, Report};
use crate::trace::{classify, TraceEnd, Tracker};

/// A report body longer than this is cut off and marked corrupted.
pub const MAX_REPORT_LINES: usize = 400;
/// Tail lines taken after a report's natural end.
pub const MAX_TAIL_LINES: usize = 40;
/// A panic that closes a report (`Fatal exception`, ...) seen within this many lines after a
/// report is not a report of its own.
pub const PANIC_TAIL_WINDOW: usize = 1000;

/// Live, incremental crash detector. See the crate documentation.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    splitter: Splitter,
    pending: Option<Box<Pending>>,
    /// Lines seen since the last report was returned (saturating).
    since_report: usize,
    any_report: bool,
    /// A kernel's `Linux version` banner was seen (and no reboot since).
    kernel_up: bool,
    /// A report started since that banner: a reboot after a crash is its consequence.
    crashed: bool,
    out: Vec<Report>,
}

/// A header match: index into [`HEADERS`] and its captures.
struct HeaderMatch {
    def: usize,
    caps: Vec<Option<String>>,
    comm: Option<String>,
    pid: Option<u32>,
}

fn match_header(text: &str) -> Option<HeaderMatch> {
    // Most lines cannot start a header (a frame, a register dump, a plain message).
    let p = patterns::get();
    if !p.header_lead.may_match(text) {
        return None;
    }
    let first = p.headers.matches(text).into_iter().next()?;
    let c = p.header_res[first].captures(text)?;
    Some(HeaderMatch {
        def: first,
        caps: c.iter().map(|m| m.map(|m| m.as_str().to_string())).collect(),
        comm: c.name("comm").map(|m| m.as_str().to_string()),
        pid: c.name("pid").and_then(|m| m.as_str().parse().ok()),
    })
}

fn is_panic(m: &HeaderMatch) -> bool {
    HEADERS[m.def].kind == CrashKind::Panic
}

fn panic_closes_report(m: &HeaderMatch) -> bool {
    let msg = m.caps.get(1).and_then(|c| c.as_deref()).unwrap_or("");
    patterns::get().panic_tail.is_match(msg)
}

impl Detector {
    /// A detector with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds console bytes as they arrive (any chunking, partial lines allowed). Returns the
    /// reports that became complete with this chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Report> {
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.feed(bytes, |l| self.on_line(l));
        self.splitter = splitter;
        std::mem::take(&mut self.out)
    }

    /// The guest is being reset on purpose (a power cut): the next kernel banner starts a new
    /// boot, not an unexpected reboot.
    pub fn expect_boot(&mut self) {
        self.kernel_up = false;
    }

    /// True while a crash report has started but is not yet returned (its body is still
    /// coming, or its tail may still follow): the caller may wait a short grace period.
    pub fn in_report(&self) -> bool {
        self.pending.is_some()
    }

    /// True when the report in progress has reached its natural end and only its tail (the
    /// register dump and the like, printed right after) may still follow.
    pub fn in_tail(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.tail)
    }

    /// The input ended: flushes a partial last line and a report in progress. A report whose
    /// body never reached its natural end is marked corrupted. The detector can be fed again
    /// afterwards (offsets keep counting).
    pub fn finish(&mut self) -> Vec<Report> {
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.finish(|l| self.on_line(l));
        self.splitter = splitter;
        if let Some(mut p) = self.pending.take() {
            if !p.natural {
                // An old-style trace (no `</TASK>`) that reached an outermost frame is complete.
                let trace_ends = p.end_rule() == EndRule::Trace || p.panicked;
                let bottom = p
                    .tracker
                    .last_frame
                    .as_deref()
                    .is_some_and(|f| in_table(STACK_BOTTOM, f));
                // A report that ends at `---[ end trace` (WARNING, BUG, oops) whose call trace is
                // whole (closed by `</TASK>`, or down to an outermost frame) lacks only that
                // line: an excerpt cut there, as mails and bug trackers give them.
                let whole_trace = p.tracker.done > 0 || (p.tracker.has_frames() && bottom);
                p.natural = (trace_ends && p.tracker.open_unmarked_with_frames() && bottom)
                    || (p.end_rule() == EndRule::Marker && whole_trace);
            }
            self.emit(p);
        }
        std::mem::take(&mut self.out)
    }

    fn on_line(&mut self, raw: RawLine<'_>) {
        let text = clean(raw.bytes);
        if text.trim().is_empty() {
            return;
        }
        self.process(raw.start, raw.start + raw.len, text);
    }

    fn emit(&mut self, p: Box<Pending>) {
        let corrupted = !p.natural || p.tracker.interleaved;
        self.out.push(analyze::build(&p, corrupted));
        self.since_report = 0;
        self.any_report = true;
    }

    fn process(&mut self, start: usize, end: usize, text: String) {
        // journalctl marks where one boot's messages end and the next one's begin
        // (`-- Boot 3f2a... --`, older versions `-- Reboot --`): that boot is no surprise.
        if text.starts_with("-- Boot ") || text == "-- Reboot --" {
            self.kernel_up = false;
        }
        let header = match_header(&text).filter(|m| self.is_report(m));
        self.dispatch(start, end, text, header);
    }

    /// One line, whose header (if any) is already known to start a report.
    fn dispatch(&mut self, start: usize, end: usize, text: String, header: Option<HeaderMatch>) {
        let Some(mut p) = self.pending.take() else {
            return self.idle(start, end, text, header);
        };
        if p.tail {
            return self.tail(p, start, end, text, header);
        }
        if let Some(m) = &header {
            let def = &HEADERS[m.def];
            if is_panic(m) {
                p.panicked = true;
                let kind = classify(&text);
                let (ctx, _) = p.tracker.step(&kind, &text);
                p.push(end, text, kind, ctx);
                if p.tracker.done > 0 {
                    p.enter_tail();
                } else if p.lines.len() >= MAX_REPORT_LINES {
                    return self.emit(p);
                }
                self.pending = Some(p);
                return;
            }
            // syzbot's symbolizer prints a sanitizer header once per inlined frame of its
            // function (`BUG: KASAN: double-free in slab_free mm/slub.c:3599 [inline]`, then
            // the same header for the caller): one report.
            let repeated = m.def == p.def && p.lines.iter().all(|l| l.text.ends_with(" [inline]"));
            if repeated {
                return self.body(p, start, end, text);
            }
            if !def.continuation {
                // Another report starts. An old-style trace cut by it ended naturally.
                p.natural = p.end_rule() == EndRule::Trace && p.tracker.open_unmarked_with_frames();
                self.emit(p);
                return self.idle(start, end, text, header);
            }
        }
        self.body(p, start, end, text);
    }

    /// Boot markers are reports only while a kernel was running and had not crashed: the log's
    /// first boot is not a reboot, nor is the reboot a panic asks for. The banner marks a kernel
    /// as running; a reboot the decompressor announced is followed by the new kernel's banner,
    /// which belongs to it.
    fn is_report(&mut self, m: &HeaderMatch) -> bool {
        if !HEADERS[m.def].boot {
            self.crashed = true;
            return true;
        }
        let banner = m.caps.get(1).is_some_and(|c| c.is_some());
        let reboot = self.kernel_up && !self.crashed && self.pending.is_none();
        self.kernel_up = banner;
        self.crashed = false;
        reboot
    }

    fn idle(&mut self, start: usize, end: usize, text: String, header: Option<HeaderMatch>) {
        let Some(m) = header else {
            self.since_report = self.since_report.saturating_add(1);
            return;
        };
        if is_panic(&m) && self.any_report && self.since_report < PANIC_TAIL_WINDOW && panic_closes_report(&m) {
            self.since_report = self.since_report.saturating_add(1);
            return;
        }
        let def = &HEADERS[m.def];
        let kind = classify(&text);
        let mut p = Box::new(Pending {
            def: m.def,
            caps: m.caps,
            comm: m.comm,
            pid: m.pid,
            start,
            end,
            lines: Vec::new(),
            tracker: Tracker::default(),
            natural: false,
            tail: false,
            tail_lines: 0,
            panicked: false,
        });
        let (ctx, _) = p.tracker.step(&kind, &text);
        p.push(end, text, kind, ctx);
        if def.end == EndRule::Line {
            p.enter_tail();
        }
        self.pending = Some(p);
    }

    fn tail(&mut self, mut p: Box<Pending>, start: usize, end: usize, text: String, header: Option<HeaderMatch>) {
        let pat = patterns::get();
        let absorb = match &header {
            Some(m) => is_panic(m) && panic_closes_report(m),
            None => pat.tail.is_match(text.trim_start()) || pat.end_panic.is_match(&text),
        };
        if !absorb || p.tail_lines >= MAX_TAIL_LINES {
            self.emit(p);
            return self.dispatch(start, end, text, header);
        }
        let done = pat.end_panic.is_match(&text);
        let kind = classify(&text);
        p.push(end, text, kind, Default::default());
        p.tail_lines += 1;
        if done {
            self.emit(p);
        } else {
            self.pending = Some(p);
        }
    }

    fn body(&mut self, mut p: Box<Pending>, start: usize, end: usize, text: String) {
        let pat = patterns::get();
        let kind = classify(&text);
        // An unmarked trace (4.x/5.x, or one pasted without its `---[ end trace`) that reached
        // an outermost frame is complete when a line that is not a frame follows.
        let bottom = p.tracker.open_unmarked_with_frames()
            && p.tracker
                .last_frame
                .as_deref()
                .is_some_and(|f| in_table(STACK_BOTTOM, f));
        let (ctx, trace_end) = p.tracker.step(&kind, &text);
        let rule = p.end_rule();
        let trace_ends_report = rule == EndRule::Trace || p.panicked;
        if (trace_ends_report || bottom) && trace_end == Some(TraceEnd::Exclusive) {
            p.enter_tail();
            return self.tail(p, start, end, text, None);
        }
        let text_end_panic = pat.end_panic.is_match(&text);
        let natural_end = (trace_ends_report && trace_end == Some(TraceEnd::Inclusive))
            || pat.end_trace.is_match(&text)
            || (rule == EndRule::Sanitizer && pat.sanitizer_end.is_match(&text));
        p.push(end, text, kind, ctx);
        if text_end_panic {
            p.natural = true;
            return self.emit(p);
        }
        if natural_end {
            p.enter_tail();
        } else if p.lines.len() >= MAX_REPORT_LINES {
            return self.emit(p);
        }
        self.pending = Some(p);
    }
}
