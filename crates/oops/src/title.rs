//! Choosing the `FUNC` of a title and rendering the title.

use crate::frame::title_name;
use crate::patterns::{self, in_table, FuncRule, HeaderDef, SKIP_GENERIC, SKIP_SCHED, SKIP_STALL, STALL_BOUNDARY};
use crate::pending::Pending;
use crate::report::{CrashKind, Frame};
use crate::trace::LineKind;

/// The first candidate that is not in any of `tables`, in title form.
fn first_useful<'a>(cands: impl IntoIterator<Item = &'a str>, tables: &[&[&str]]) -> Option<String> {
    cands
        .into_iter()
        .map(title_name)
        .find(|f| !f.is_empty() && !tables.iter().any(|t| in_table(t, f)))
        .map(str::to_string)
}

/// The frames a title may name: reliable ones, or every one when the unwinder marked them all
/// `?` (the guess unwinder of a kernel without ORC or frame pointers); never the inlined
/// functions a symbolizer added (` foo fs/x.c:12 [inline]`), so that a symbolized and a raw
/// log title alike.
fn reliable(frames: &[Frame]) -> impl Iterator<Item = &str> {
    let raw = |f: &&Frame| f.offset.is_some();
    let all_guessed = !frames.iter().filter(raw).any(|f| f.reliable);
    frames
        .iter()
        .filter(raw)
        .filter(move |f| f.reliable || all_guessed)
        .map(|f| f.function.as_str())
}

/// Picks the title function by the header's rule, skipping the generic helpers and the
/// header's own. `pc`/`lr` are the first kernel-mode instruction pointer and link register
/// with a symbol; `frames` the primary trace.
pub(crate) fn pick_function(
    def: &HeaderDef,
    p: &Pending,
    pc: Option<&Frame>,
    lr: Option<&Frame>,
    frames: &[Frame],
) -> Option<String> {
    let skip: &[&[&str]] = &[SKIP_GENERIC, def.skip];
    let fault = || {
        pc.into_iter()
            .chain(lr)
            .map(|f| f.function.as_str())
            .chain(reliable(frames))
    };
    let pat = patterns::get();
    match def.func {
        FuncRule::None => None,
        FuncRule::Fault => first_useful(fault(), skip),
        FuncRule::Header(g) => {
            let header = p.caps.get(g).and_then(|c| c.as_deref());
            first_useful(header.into_iter().chain(fault()), skip)
        }
        FuncRule::After(trigger) => {
            let after = p.lines.iter().skip_while(|l| !l.text.contains(trigger)).skip(1);
            let run = after.map_while(|l| match &l.kind {
                LineKind::Frame(f) => Some(f),
                _ => None,
            });
            let run: Vec<Frame> = run.cloned().collect();
            first_useful(reliable(&run), skip)
        }
        FuncRule::Named(label) => {
            let named = p.lines.iter().find_map(|l| {
                let rest = &l.text[l.text.find(label)? + label.len()..];
                pat.symbol.captures(rest).map(|c| c[1].to_string())
            });
            first_useful(named.as_deref(), skip)
        }
        FuncRule::Trace => first_useful(reliable(frames), skip),
        FuncRule::Hung => first_useful(reliable(frames), &[SKIP_GENERIC, SKIP_SCHED, def.skip]),
        FuncRule::Lockdep(trigger) => {
            let at = p
                .lines
                .iter()
                .skip_while(|l| !l.text.contains(trigger))
                .find_map(|l| pat.lock_at.captures(&l.text).map(|c| c[1].to_string()));
            first_useful(at.as_deref().into_iter().chain(reliable(frames)), skip)
        }
        FuncRule::Stall => stall_function(p),
    }
}

/// For stalls: the interrupted context. First a kernel `RIP:`/`pc :` printed before the call
/// trace (the registers of the interrupted context, as soft lockups and remote NMI backtraces
/// print them), then instruction pointers and reliable frames inside the trace but outside
/// interrupt sections, keeping only what follows the last interrupt-entry frame. Ignored dumps
/// (RCU grace-period kthread) never count.
fn stall_function(p: &Pending) -> Option<String> {
    let outside = || p.lines.iter().filter(|l| !l.ctx.ignored && l.ctx.trace.is_none());
    let top = outside().find_map(|l| match &l.kind {
        LineKind::Pc { target, kernel: true } => Some(target.as_ref().map(|f| f.function.as_str())),
        _ => None,
    });
    // arm64's unwinder leaves out the caller of a leaf function the pc is in; `lr` holds it.
    let lr = outside().find_map(|l| match &l.kind {
        LineKind::Lr(target) => Some(target.as_ref().map(|f| f.function.as_str())),
        _ => None,
    });
    let items: Vec<&str> = p
        .lines
        .iter()
        .filter(|l| !l.ctx.ignored && !l.ctx.in_irq && l.ctx.trace.is_some())
        .filter_map(|l| match &l.kind {
            LineKind::Pc {
                target: Some(f),
                kernel: true,
            } => Some(f.function.as_str()),
            LineKind::Frame(f) if f.reliable => Some(f.function.as_str()),
            _ => None,
        })
        .collect();
    let tables: &[&[&str]] = &[SKIP_GENERIC, SKIP_STALL];
    let top = top.flatten().into_iter().chain(lr.flatten());
    let cut = items
        .iter()
        .rposition(|f| in_table(STALL_BOUNDARY, title_name(f)))
        .map_or(0, |i| i + 1);
    first_useful(top.chain(items[cut..].iter().copied()), tables)
        .or_else(|| first_useful(items.iter().copied(), tables))
}

/// Renders the title: the header's template with its captures, then ` in FUNC`.
pub(crate) fn render(def: &HeaderDef, p: &Pending, func: Option<&str>) -> String {
    let cap = |i: usize| {
        p.caps
            .get(i)
            .and_then(|c| c.as_deref())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let mut first = cap(1);
    if def.kind == CrashKind::Panic {
        for (re, with) in &patterns::get().panic_normalize {
            first = re.replace(&first, *with).into_owned();
        }
    }
    let access = p
        .lines
        .iter()
        .find_map(|l| patterns::get().access.captures(&l.text).map(|c| format!(" {}", &c[1])))
        .unwrap_or_default();
    let mut title = def
        .title
        .replace("{1}", &first)
        .replace("{2}", &cap(2))
        .replace("{access}", &access);
    if let Some(f) = func {
        title.push_str(" in ");
        title.push_str(f);
    }
    title
}
