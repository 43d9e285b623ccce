//! Turning a finished report's lines into a [`Report`]: metadata, frames, faulting function.

use crate::patterns::{self, HEADERS};
use crate::pending::Pending;
use crate::report::{Frame, Report};
use crate::title;
use crate::trace::LineKind;

/// Builds the report.
pub(crate) fn build(p: &Pending, corrupted: bool) -> Report {
    let def = &HEADERS[p.def];
    let meta = metadata(p);
    let frames = primary_frames(p);
    // The first instruction pointer decides: when it has no symbol (a call through a NULL
    // pointer, `RIP: 0010:0x0`), later ones (interrupted contexts, ...) must not stand in.
    let pc = p
        .lines
        .iter()
        .filter(|l| !l.ctx.ignored)
        .find_map(|l| match &l.kind {
            LineKind::Pc { target, kernel: true } => Some(target.as_ref()),
            _ => None,
        })
        .flatten();
    let lr = p
        .lines
        .iter()
        .filter(|l| !l.ctx.ignored)
        .find_map(|l| match &l.kind {
            LineKind::Lr(target) => Some(target.as_ref()),
            _ => None,
        })
        .flatten();
    let func = title::pick_function(def, p, pc, lr, &frames);
    // A report that should name a function but yields none is `... in corrupted` (syzbot's
    // form): its trace was cut or garbled.
    let lost = func.is_none() && def.func.names_a_function();
    let func = func.or_else(|| lost.then(|| "corrupted".to_string()));
    Report {
        title: title::render(def, p, func.as_deref()),
        kind: def.kind.clone(),
        start: p.start,
        end: p.end,
        text: p.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n"),
        frames,
        faulting_function: pc.or(lr).map(|f| f.function.clone()),
        faulting_frame: pc.or(lr).cloned(),
        release: meta.release,
        taint: meta.taint,
        comm: p.comm.clone().or(meta.comm),
        pid: p.pid.or(meta.pid),
        cpu: meta.cpu,
        corrupted: corrupted || lost,
    }
}

/// The frames of the first `Call Trace:` section that has frames (and is not an ignored dump),
/// or else of the first run of frames.
fn primary_frames(p: &Pending) -> Vec<Frame> {
    let frames = || {
        p.lines.iter().filter(|l| !l.ctx.ignored).filter_map(|l| match &l.kind {
            LineKind::Frame(f) => Some((l.ctx, f)),
            _ => None,
        })
    };
    if let Some(t) = frames().find_map(|(c, _)| c.trace) {
        return frames()
            .filter(|(c, _)| c.trace == Some(t))
            .map(|(_, f)| f.clone())
            .collect();
    }
    match frames().next() {
        Some((c0, _)) => frames()
            .filter(|(c, _)| c.run == c0.run)
            .map(|(_, f)| f.clone())
            .collect(),
        None => Vec::new(),
    }
}

#[derive(Default)]
struct Meta {
    cpu: Option<u32>,
    comm: Option<String>,
    pid: Option<u32>,
    taint: Option<String>,
    release: Option<String>,
}

fn taint_of(flags: Option<regex::Match<'_>>) -> String {
    flags.map_or_else(|| "Not tainted".to_string(), |m| m.as_str().trim().to_string())
}

/// Task, taint and release from the first line that has them (`CPU: 0 PID: 55 Comm: ...`, the
/// hung-task and lockdep taint lines, arm64 4.x `Process foo (pid: 1, ...)`, the
/// scheduler's `task:foo state:R ... pid:1` line).
fn metadata(p: &Pending) -> Meta {
    let pat = patterns::get();
    let mut m = Meta::default();
    for l in &p.lines {
        let t = l.text.as_str();
        if let Some(c) = pat.cpu_line.captures(t) {
            m.cpu = c[1].parse().ok();
            m.pid = m.pid.or_else(|| c[2].parse().ok());
            m.comm = m.comm.or_else(|| Some(c[3].to_string()));
            m.taint = m.taint.or_else(|| Some(taint_of(c.get(4))));
            m.release = m.release.or_else(|| Some(c[5].to_string()));
            break;
        }
        if m.taint.is_none() {
            if let Some(c) = pat.taint_line.captures(t) {
                m.taint = Some(taint_of(c.get(1)));
                m.release = Some(c[2].to_string());
            } else if let Some(c) = pat.ident_line.captures(t) {
                m.taint = Some(taint_of(c.get(2)));
                m.release = Some(c[1].to_string());
            }
        }
        if m.comm.is_none() {
            if let Some(c) = pat.process_line.captures(t).or_else(|| pat.task_line.captures(t)) {
                m.comm = Some(c[1].to_string());
                m.pid = c[2].parse().ok();
            }
        }
    }
    m
}
