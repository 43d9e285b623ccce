//! A report being collected by the detector: its header match, its lines so far, and where its
//! body and tail stand.

use crate::patterns::{EndRule, HEADERS};
use crate::trace::{LineInfo, LineKind, Tracker};

/// A report being collected.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Index into [`HEADERS`].
    pub def: usize,
    /// Capture groups of the header line (index 0 is the whole match).
    pub caps: Vec<Option<String>>,
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub start: usize,
    pub end: usize,
    pub lines: Vec<LineInfo>,
    pub tracker: Tracker,
    /// The body reached its natural end.
    pub natural: bool,
    /// In the tail phase.
    pub tail: bool,
    pub tail_lines: usize,
    /// A `Kernel panic` line was seen inside the body.
    pub panicked: bool,
}

impl Pending {
    pub fn push(&mut self, end: usize, text: String, kind: LineKind, ctx: crate::trace::Ctx) {
        self.end = end;
        self.lines.push(LineInfo { text, kind, ctx });
    }

    pub fn end_rule(&self) -> EndRule {
        HEADERS[self.def].end
    }

    /// The body ended naturally: switch to the tail phase.
    pub fn enter_tail(&mut self) {
        self.natural = true;
        self.tail = true;
    }
}
