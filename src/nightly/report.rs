//! Rendering a nightly: JUnit XML for CI systems, and one static HTML file (no server, no
//! scripts) with the matrix, links to each cell's logs, and charts of pass/fail history and of
//! time-to-reproduce across the nightlies kept beside it.

use super::plan::{Change, Nightly};
use std::fmt::Write;

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// UTC `YYYY-mm-ddTHH:MM:SS` of `t` (seconds since the epoch).
pub(super) fn iso(t: u64) -> String {
    crate::timefmt::utc(t as i64).replace(" UTC", "").replacen(' ', "T", 1)
}

/// JUnit XML: one `testcase` per scenario × kernel × arch. Reproduced and crashed-differently
/// are failures, infra errors are errors, cells the budget did not reach are skipped.
pub fn junit(n: &Nightly) -> String {
    let count = |f: &dyn Fn(&str) -> bool| n.cells.iter().filter(|c| f(&c.verdict)).count();
    let crashed = |v: &str| v == "reproduced" || v == "crashed-differently";
    let known = n
        .cells
        .iter()
        .filter(|c| c.known.is_some() && crashed(&c.verdict))
        .count();
    let failures = count(&crashed) - known;
    let errors = count(&|v| v == "infra-error");
    let skipped = count(&|v| v == "not-run") + known;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"repro nightly\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        n.cells.len(),
        n.seconds
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"repro nightly{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
        n.shard.map_or(String::new(), |(i, k)| format!(" shard {i}/{k}")),
        n.cells.len(),
        n.seconds,
        iso(n.started_at)
    );
    for c in &n.cells {
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&c.cell.scenario),
            xml(&format!("{}[{},{}]", c.cell.scenario, c.cell.kernel, c.cell.arch)),
            c.seconds
        );
        let detail = format!(
            "{}{}",
            c.reason,
            c.run_dir
                .as_ref()
                .map_or(String::new(), |d| format!("\nrun directory: {d}"))
        );
        let title = c.title.clone().unwrap_or_else(|| c.verdict.clone());
        if let Some(k) = c
            .known
            .as_ref()
            .filter(|_| matches!(c.verdict.as_str(), "reproduced" | "crashed-differently"))
        {
            // Shown apart: a known crash is reported, but is no failure of tonight's kernel.
            let why = format!("known issue `{k}`: {title}");
            let _ = writeln!(o, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(&why));
            continue;
        }
        match c.verdict.as_str() {
            "not-reproduced" => o.push_str("/>\n"),
            "reproduced" | "crashed-differently" => {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml(&title),
                    c.verdict,
                    xml(&detail)
                );
            }
            "not-run" => {
                let _ = writeln!(o, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(&c.reason));
            }
            _ => {
                let _ = writeln!(
                    o,
                    ">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>",
                    xml(c.reason.lines().next().unwrap_or("")),
                    xml(&c.verdict),
                    xml(&detail)
                );
            }
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

/// A crash a known issue explains: apart from new ones.
const KNOWN_COLOR: &str = "#8d6e63";

fn color(verdict: &str) -> &'static str {
    match verdict {
        "not-reproduced" => "#2e7d32",
        "reproduced" => "#c62828",
        "crashed-differently" => "#ef6c00",
        "not-run" => "#9e9e9e",
        _ => "#6a1b9a",
    }
}

/// The HTML report. `history` holds earlier nightlies, oldest first, with the directory name of
/// each (for labels).
pub fn html(n: &Nightly, history: &[(String, Nightly)]) -> String {
    let mut o = String::new();
    head(&mut o, n);
    matrix(&mut o, n);
    let all: Vec<(&str, &Nightly)> = history
        .iter()
        .map(|(l, x)| (l.as_str(), x))
        .chain(std::iter::once(("this run", n)))
        .collect();
    known_issues(&mut o, n);
    crash_titles(&mut o, &all);
    pass_fail_history(&mut o, n, &all);
    time_to_reproduce(&mut o, n, &all);
    o.push_str("</body></html>\n");
    o
}

/// The page's head, style, summary line and legend.
fn head(o: &mut String, n: &Nightly) {
    o.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>repro nightly</title>\n<style>\n\
         body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\n\
         table{border-collapse:collapse;margin:12px 0}\n\
         th,td{border:1px solid #ccc;padding:6px 8px;vertical-align:top}\n\
         th{background:#f3f3f3;text-align:left}\n\
         td.cell{color:#fff;min-width:14em}\n\
         td.cell a{color:#fff}\n\
         .change{font-size:12px;opacity:.9}\n\
         .legend span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}\n\
         svg text{font:11px system-ui,sans-serif}\n\
         </style></head><body>\n",
    );
    let _ = writeln!(
        o,
        "<h1>repro nightly</h1>\n<p>Started {} · {:.0} s · {} cell(s){} · repro {}</p>",
        crate::timefmt::utc(n.started_at as i64),
        n.seconds,
        n.cells.len(),
        n.shard.map_or(String::new(), |(i, k)| format!(" · shard {i}/{k}")),
        xml(&n.repro_version)
    );
    let mut counts = std::collections::BTreeMap::new();
    for ch in n.changes.values() {
        *counts.entry(ch.as_str()).or_insert(0) += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        o,
        "<p><b>Compared with the previous nightly:</b> {}</p>",
        xml(&summary.join(", "))
    );
    o.push_str("<p class=\"legend\">");
    for v in [
        "not-reproduced",
        "reproduced",
        "crashed-differently",
        "infra-error",
        "not-run",
    ] {
        let _ = write!(o, "<span style=\"background:{}\">{v}</span>", color(v));
    }
    let _ = write!(o, "<span style=\"background:{KNOWN_COLOR}\">known issue</span>");
    o.push_str("</p>\n");
}

/// The matrix: scenarios down, kernel/arch across.
fn matrix(o: &mut String, n: &Nightly) {
    let mut cols: Vec<(String, String)> = n
        .cells
        .iter()
        .map(|c| (c.cell.kernel.clone(), c.cell.arch.to_string()))
        .collect();
    cols.sort();
    cols.dedup();
    let mut rows: Vec<String> = n.cells.iter().map(|c| c.cell.scenario.clone()).collect();
    rows.sort();
    rows.dedup();
    o.push_str("<h2>Matrix</h2>\n<table>\n<tr><th>scenario</th>");
    for (k, a) in &cols {
        let _ = write!(o, "<th>{}<br>{}</th>", xml(k), xml(a));
    }
    o.push_str("</tr>\n");
    for r in &rows {
        let _ = write!(o, "<tr><th>{}</th>", xml(r));
        for (k, a) in &cols {
            match n
                .cells
                .iter()
                .find(|c| &c.cell.scenario == r && &c.cell.kernel == k && &c.cell.arch.to_string() == a)
            {
                None => o.push_str("<td></td>"),
                Some(c) => {
                    let change = n.changes.get(&c.cell.id()).copied().unwrap_or(Change::New);
                    let _ = write!(
                        o,
                        "<td class=\"cell\" style=\"background:{}\" title=\"{}\"><b>{}</b><br>{}<br><span class=\"change\">{} · {:.0} s</span>",
                        if c.known.is_some() { KNOWN_COLOR } else { color(&c.verdict) },
                        xml(&c.reason),
                        xml(&c.verdict),
                        xml(c.title.as_deref().unwrap_or("")),
                        change.as_str(),
                        c.seconds
                    );
                    if let Some(d) = &c.run_dir {
                        let _ = write!(
                            o,
                            "<br><a href=\"{d}/console.log\">console</a> · <a href=\"{d}/report.json\">report</a>",
                            d = xml(d)
                        );
                        for v in &c.vmcores {
                            let _ = write!(o, " · <a href=\"{}\">vmcore</a>", xml(v));
                        }
                    }
                    o.push_str("</td>");
                }
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

/// The known issues: which cells each explains tonight, or how long it has been gone.
fn known_issues(o: &mut String, n: &Nightly) {
    if n.known.is_empty() {
        return;
    }
    o.push_str("<h2>Known issues</h2>\n<table>\n<tr><th>issue</th><th>tonight</th><th>note</th></tr>\n");
    for k in &n.known {
        let name = match &k.link {
            Some(l) => format!("<a href=\"{}\">{}</a>", xml(l), xml(&k.name)),
            None => xml(&k.name),
        };
        let tonight = match (k.cells.is_empty(), k.possibly_fixed) {
            (false, _) => xml(&k.cells.join(", ")),
            (true, true) => format!("<b>possibly fixed</b>: not seen for {} nightlies", k.absent_for),
            (true, false) => format!(
                "not seen ({} nightl{} in a row)",
                k.absent_for,
                if k.absent_for == 1 { "y" } else { "ies" }
            ),
        };
        let _ = writeln!(
            o,
            "<tr><td>{name}</td><td>{tonight}</td><td>{}</td></tr>",
            xml(k.note.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table>\n");
}

/// Every crash title across the kept nightlies: when it was first and last seen, on which
/// kernels and arches, how often. A regression shows as a new row.
fn crash_titles(o: &mut String, all: &[(&str, &Nightly)]) {
    #[derive(Default)]
    struct Row<'a> {
        first: &'a str,
        last: &'a str,
        kernels: std::collections::BTreeSet<&'a str>,
        arches: std::collections::BTreeSet<String>,
        cells: usize,
        known: bool,
    }
    let mut rows: std::collections::BTreeMap<&str, Row> = Default::default();
    for (label, n) in all {
        for c in &n.cells {
            let crashed = matches!(c.verdict.as_str(), "reproduced" | "crashed-differently");
            let Some(title) = c.title.as_deref().filter(|_| crashed) else {
                continue;
            };
            let r = rows.entry(title).or_insert_with(|| Row {
                first: label,
                ..Default::default()
            });
            r.last = label;
            r.kernels.insert(&c.cell.kernel);
            r.arches.insert(c.cell.arch.to_string());
            r.cells += 1;
            r.known |= c.known.is_some();
        }
    }
    o.push_str("<h2>Crash titles across nightlies</h2>\n");
    if rows.is_empty() {
        o.push_str("<p>No crash in these nightlies.</p>\n");
        return;
    }
    o.push_str(
        "<table>\n<tr><th>title</th><th>first seen</th><th>last seen</th><th>kernels</th><th>arches</th><th>cells</th></tr>\n",
    );
    let mut ordered: Vec<_> = rows.into_iter().collect();
    // The newest first: a title first seen tonight is a regression.
    ordered.sort_by(|a, b| b.1.first.cmp(a.1.first).then(a.0.cmp(b.0)));
    for (title, r) in ordered {
        let _ = writeln!(
            o,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            xml(title),
            if r.known { " <i>(known)</i>" } else { "" },
            xml(r.first),
            xml(r.last),
            xml(&r.kernels.into_iter().collect::<Vec<_>>().join(", ")),
            xml(&r.arches.into_iter().collect::<Vec<_>>().join(", ")),
            r.cells
        );
    }
    o.push_str("</table>\n");
}

/// One square per nightly and cell, oldest left.
fn pass_fail_history(o: &mut String, n: &Nightly, all: &[(&str, &Nightly)]) {
    o.push_str("<h2>Pass/fail history</h2>\n<table>\n<tr><th>cell</th><th>oldest → newest</th></tr>\n");
    for c in &n.cells {
        let id = c.cell.id();
        let _ = write!(
            o,
            "<tr><td>{}</td><td><svg width=\"{}\" height=\"16\">",
            xml(&id),
            all.len() * 16 + 2
        );
        for (i, (label, x)) in all.iter().enumerate() {
            let v = x
                .cells
                .iter()
                .find(|y| y.cell.id() == id)
                .map_or("absent", |y| y.verdict.as_str());
            let fill = if v == "absent" { "#eeeeee" } else { color(v) };
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"1\" width=\"14\" height=\"14\" fill=\"{fill}\"><title>{}: {}</title></rect>",
                i * 16 + 1,
                xml(label),
                xml(v)
            );
        }
        o.push_str("</svg></td></tr>\n");
    }
    o.push_str("</table>\n");
}

/// Each reproducing cell's time to reproduce across the nightlies, as an SVG chart.
fn time_to_reproduce(o: &mut String, n: &Nightly, all: &[(&str, &Nightly)]) {
    o.push_str("<h2>Time to reproduce</h2>\n");
    let series: Vec<(String, Vec<Option<f64>>)> = n
        .cells
        .iter()
        .map(|c| {
            let id = c.cell.id();
            let pts = all
                .iter()
                .map(|(_, x)| {
                    x.cells
                        .iter()
                        .find(|y| y.cell.id() == id)
                        .and_then(|y| y.time_to_reproduce)
                })
                .collect();
            (id, pts)
        })
        .filter(|(_, p): &(String, Vec<Option<f64>>)| p.iter().any(Option::is_some))
        .collect();
    if series.is_empty() {
        o.push_str("<p>No cell reproduced in these nightlies.</p>\n");
    } else {
        let max = series
            .iter()
            .flat_map(|(_, p)| p.iter().flatten())
            .fold(1.0f64, |m, v| m.max(*v));
        let (w, h, left, bottom) = (640.0, 220.0, 48.0, 24.0);
        let step = if all.len() > 1 {
            (w - left - 10.0) / (all.len() - 1) as f64
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "<svg width=\"{w}\" height=\"{}\" role=\"img\">",
            h + 20.0 * series.len() as f64
        );
        let _ = writeln!(
            o,
            "<line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
            h - bottom,
            h - bottom,
            w - 5.0,
            h - bottom
        );
        let _ = writeln!(
            o,
            "<text x=\"4\" y=\"16\">{max:.0} s</text><text x=\"4\" y=\"{}\">0 s</text>",
            h - bottom
        );
        let palette = [
            "#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#4e342e",
        ];
        for (si, (id, pts)) in series.iter().enumerate() {
            let colr = palette[si % palette.len()];
            let coords: Vec<(f64, f64)> = pts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|v| (left + i as f64 * step, (h - bottom) - v / max * (h - bottom - 14.0))))
                .collect();
            let path: Vec<String> = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                o,
                "<polyline fill=\"none\" stroke=\"{colr}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
            for (x, y) in &coords {
                let _ = writeln!(o, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colr}\"/>");
            }
            let _ = writeln!(
                o,
                "<rect x=\"{left}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colr}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                h + 20.0 * si as f64 - 4.0,
                left + 16.0,
                h + 20.0 * si as f64 + 5.0,
                xml(id)
            );
        }
        o.push_str("</svg>\n");
    }
}
