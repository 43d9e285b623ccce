//! Pure parser of Linux kernel console output: raw console bytes in, crash reports out.
//!
//! The input is what a guest prints on its serial console, a `dmesg` (plain, `-x`, `-T`), a
//! journal excerpt, or crash(8)'s `log` output, for x86_64 and arm64 kernels from 4.x to 6.x.
//! Timestamps, caller ids and level prefixes are stripped; CRLF, lone CR, non-UTF-8 bytes and
//! partial last lines are handled; several crashes in one log come out in order.
//!
//! This crate does no I/O at all. All patterns live as data in `patterns.rs`.
//!
//! ```
//! let log = b"[   16.1] BUG: kernel NULL pointer dereference, address: 00000000000000a4\n\
//!             [   16.1] RIP: 0010:nfs_updatepage+0x2b5/0x960 [nfs]\n\
//!             [   16.1] ---[ end trace 0000000000000000 ]---\n";
//! let reports = repro_oops::parse(log);
//! assert_eq!(reports[0].title, "BUG: kernel NULL pointer dereference in nfs_updatepage");
//! ```
//!
//! Live use goes through [`Detector`], which gives the same reports as [`parse`] whatever the
//! chunking of its input.

mod analyze;
mod detector;
mod frame;
mod lead;
mod line;
mod paste;
mod patterns;
mod pending;
mod report;
mod title;
mod trace;

pub use detector::{Detector, MAX_REPORT_LINES, MAX_TAIL_LINES, PANIC_TAIL_WINDOW};
pub use paste::{looks_pasted, unpaste};
pub use report::{kind_name, CrashKind, Frame, Report, SourceLoc};

/// Parses a whole console log: every crash report in it, in order. Same as feeding `console`
/// to a new [`Detector`] and calling [`Detector::finish`].
pub fn parse(console: &[u8]) -> Vec<Report> {
    let mut d = Detector::new();
    let mut reports = d.feed(console);
    reports.extend(d.finish());
    reports
}

/// How much of the input decides whether it is a paste: a mail or a bug-tracker comment shows
/// its quoting or its glued lines long before this, and a console log this long is one.
pub const PASTE_CHECK_BYTES: usize = 1 << 20;

/// Whether `input` is a paste rather than console output: [`looks_pasted`] on its first
/// [`PASTE_CHECK_BYTES`], so a caller reading a file needs only that much to decide.
pub fn is_paste(input: &[u8]) -> bool {
    looks_pasted(&String::from_utf8_lossy(&input[..input.len().min(PASTE_CHECK_BYTES)]))
}

/// Parses console output, or a crash pasted into a mail or a bug tracker (quoted, rewrapped,
/// its line breaks lost): a paste ([`is_paste`]) is turned back into console lines
/// ([`unpaste`]) first, and the reports' byte ranges then refer to those lines.
pub fn parse_any(input: &[u8]) -> Vec<Report> {
    if is_paste(input) {
        parse(unpaste(&String::from_utf8_lossy(input)).as_bytes())
    } else {
        parse(input)
    }
}
