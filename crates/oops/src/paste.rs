//! Crashes pasted into a mail or a bug tracker: `> ` quote prefixes at any depth, lines a mail
//! client rewrapped, and text whose line breaks were lost, so that each dmesg stamp comes
//! mid-line with the next line's quote markers before it. [`unpaste`] turns such text back into
//! console lines. Console output (no quoting, one stamp a line) is not pasted and stays as it is.

use regex::Regex;
use std::sync::OnceLock;

struct Patterns {
    /// A mail quote prefix at the start of a line, at any depth (`> > `, `>> `, ` > `).
    quote: Regex,
    /// A dmesg stamp anywhere (six decimals, as the kernel prints them).
    stamp: Regex,
    /// A run of quote markers inside a line whose breaks were lost: where a line (or a
    /// rewrapped line's second half) began.
    inner_quotes: Regex,
    /// A line that ends as a call-trace frame does (`func+0x1/0x2`, `[mod]`): complete, never
    /// the first half of a wrapped line.
    ends_as_frame: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        quote: Regex::new(r"^[ \t]*(?:>[ \t]?)+").unwrap_or_else(|e| panic!("{e}")),
        stamp: Regex::new(r"\[\s*\d+\.\d{6}\]").unwrap_or_else(|e| panic!("{e}")),
        inner_quotes: Regex::new(r"(?:[ \t]+>)+(?:[ \t]+|$)").unwrap_or_else(|e| panic!("{e}")),
        ends_as_frame: Regex::new(r"\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+(?:\s+\[[\w-]+\])?$")
            .unwrap_or_else(|e| panic!("{e}")),
    })
}

/// A stamped line shorter than this was not rewrapped, so the unstamped line after it is not
/// its continuation (mail clients wrap at 72 to 80 columns, quote prefixes included).
const WRAPPED_AT_LEAST: usize = 50;
/// A rewrapped line's second half is at most a mail line long.
const SECOND_HALF_AT_MOST: usize = 80;

/// Is `text` a paste (quoted lines with a kernel stamp in them, or a line holding several
/// stamps), rather than console output?
pub fn looks_pasted(text: &str) -> bool {
    let p = patterns();
    let mut quoted = 0;
    for line in text.lines() {
        // Most console lines hold one `[` (their stamp) and no `>`: no regex for them.
        if !line.contains('>') && line.matches('[').nth(1).is_none() {
            continue;
        }
        let stamps = p.stamp.find_iter(line).take(2).count();
        if stamps >= 2 {
            return true;
        }
        if stamps == 1 && p.quote.is_match(line) {
            quoted += 1;
            if quoted >= 2 {
                return true;
            }
        }
    }
    false
}

/// `text` as console lines: quote prefixes removed, a line for each stamp, and the second half
/// of a rewrapped stamped line joined back to it.
pub fn unpaste(text: &str) -> String {
    let p = patterns();
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = p.quote.replace(raw, "");
        // A line holding several stamps lost its breaks: each run of quote markers in it is
        // where a mail line began.
        let collapsed = p.stamp.find_iter(&line).nth(1).is_some();
        let sublines: Vec<&str> = if collapsed {
            p.inner_quotes.split(&line).collect()
        } else {
            vec![&line]
        };
        for piece in sublines.into_iter().flat_map(split_at_stamps) {
            push_or_join(&mut lines, piece.trim_end());
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Appends `piece` as a line, or to the line before when it is that stamped line's second half
/// (a rewrapped line: unstamped, not blank, at most a mail line long, after a stamped line long
/// enough to be wrapped that does not end as a complete frame).
fn push_or_join(lines: &mut Vec<String>, piece: &str) {
    let p = patterns();
    let wrapped = |l: &str| {
        p.stamp.find(l).is_some_and(|m| m.start() == 0) && l.len() >= WRAPPED_AT_LEAST && !p.ends_as_frame.is_match(l)
    };
    let continues = !p.stamp.is_match(piece)
        && !piece.trim().is_empty()
        && piece.trim().len() <= SECOND_HALF_AT_MOST
        && lines.last().is_some_and(|l| wrapped(l));
    match lines.last_mut() {
        Some(last) if continues => {
            last.push(' ');
            last.push_str(piece.trim_start());
        }
        _ => lines.push(piece.to_string()),
    }
}

/// `line` cut before every stamp after its first character.
fn split_at_stamps(line: &str) -> Vec<&str> {
    let mut cuts: Vec<usize> = patterns()
        .stamp
        .find_iter(line)
        .map(|m| m.start())
        .filter(|&s| s > 0)
        .collect();
    cuts.push(line.len());
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts {
        if cut > from || pieces.is_empty() {
            pieces.push(&line[from..cut]);
        }
        from = cut;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_is_not_a_paste() {
        let console = "[    1.000000] Linux version 6.1\n[    2.000000] BUG: x\nrepro-guest: up\n> not a stamp\n";
        assert!(!looks_pasted(console));
    }

    #[test]
    fn quoted_rewrapped_lines_come_back_whole() {
        let mail = "On Mon, someone wrote:\n\
> > [  101.882210] BUG: unable to handle kernel NULL pointer dereference at\n\
> > (null)\n\
> > [  101.885010] CPU: 1 PID: 1587 Comm: dd Not tainted 4.9.0-8-amd64 #1 Debian\n\
> > 4.9.144-3.1\n\
> > [  101.888135] Call Trace:\n\
>\n\
> Thanks.\n";
        assert!(looks_pasted(mail));
        let lines: Vec<String> = unpaste(mail).lines().map(str::to_string).collect();
        assert_eq!(
            lines,
            [
                "On Mon, someone wrote:",
                "[  101.882210] BUG: unable to handle kernel NULL pointer dereference at (null)",
                "[  101.885010] CPU: 1 PID: 1587 Comm: dd Not tainted 4.9.0-8-amd64 #1 Debian 4.9.144-3.1",
                "[  101.888135] Call Trace:",
                "",
                "Thanks.",
            ]
        );
    }

    #[test]
    fn a_complete_frame_or_a_long_paragraph_is_not_a_second_half() {
        let mail = "> [ 7.000001] entry_SYSCALL_64_after_hwframe+0x5c/0xc1 [some_module]\n\
> next words\n\
> [ 7.000002] a stamped line that is long enough to have been wrapped by a mail client\n\
> Then a paragraph of prose that goes on and on well past the width of any mail line at all.\n\
> [ 7.000003] x\n";
        let lines: Vec<String> = unpaste(mail).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
    }

    #[test]
    fn text_whose_line_breaks_were_lost_gets_a_line_per_stamp() {
        let flat = "wrote: > > > I saw: > > > [ 5.000001] BUG: kernel NULL pointer dereference, address: \
> > > 0000000000000000 > > > [ 5.000002] Call Trace: > > > [ 5.000003] foo+0x1/0x2 > > > bye";
        assert!(looks_pasted(flat));
        let lines: Vec<String> = unpaste(flat).lines().map(str::to_string).collect();
        assert_eq!(
            lines,
            [
                "wrote:",
                "I saw:",
                "[ 5.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000",
                "[ 5.000002] Call Trace:",
                "[ 5.000003] foo+0x1/0x2",
                "bye",
            ]
        );
    }
}
