//! The architecture's invariants, checked on the source (rust-analyzer keeps such a test in its
//! xtask): function lengths, an acyclic `crate::` import graph, pure modules that do no I/O, and
//! one `tokio::select!` in `src/run`. `just tidy` prints the report.

mod graph;
mod source;

use source::{Function, Tree};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Folders whose functions may not be longer than [`STRICT_LIMIT`] lines.
const STRICT: &[&str] = &[
    "src/run/",
    "src/scenario/",
    "src/bisect/driver.rs",
    "src/verify/driver.rs",
    "src/nightly/driver.rs",
];
const STRICT_LIMIT: usize = 80;
/// Everywhere else, unless the allowlist holds the function (it may only shrink).
const LIMIT: usize = 120;
const ALLOWLIST: &str = "tests/tidy/long-functions.txt";

/// Modules ARCHITECTURE.md calls pure: no file system, no processes, no sockets, and they import
/// only other pure modules of their crate.
const PURE: &[&str] = &[
    "repro::arch",
    "repro::archive",
    "repro::draft",
    "repro::def::diag",
    "repro::def::units",
    "repro::def::patch",
    "repro::def::name",
    "repro::def::module",
    "repro::scenario",
    "repro::run::verdict",
    "repro::run::infra",
    "repro::run::outcome",
    "repro::run::progress",
    "repro::run::observer",
    "repro::run::assemble",
    "repro::run::setup",
    "repro::report",
    "repro::verify::tally",
    "repro::nightly::plan",
    "repro::nightly::report",
    "repro::nightly::known",
    "repro::nightly::kcidb",
    "repro::timefmt",
    "repro::shell",
    "repro::debugger",
    "repro::wait",
    "repro::errors",
    "repro::vm::table",
    "repro_oops",
];
/// Paths a pure module may not name.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::process",
    "std::net",
    "std::os::unix::net",
    "tokio::fs",
    "tokio::process",
    "tokio::net",
    "git2",
    "ssh2",
    "qapi",
];
/// The drivers, and the modules they may not import (they build and run through the tester).
const DRIVERS: &[&str] = &[
    "repro::bisect::driver",
    "repro::verify::driver",
    "repro::nightly::driver",
];
const NOT_FOR_DRIVERS: &[&str] = &[
    "repro::run::state",
    "repro::run::phase",
    "repro::run::watch",
    "repro::run::guests",
    "repro::vm",
    "repro::kernel",
    "repro::image",
    "repro::guest",
    "repro::console",
];
/// What the oops crate may depend on: nothing that could do I/O. (`regex-automata` is the
/// engine under `regex`; the crate walks a lazy DFA of it to skip lines.)
const OOPS_DEPENDENCIES: &[&str] = &["memchr", "regex", "regex-automata", "serde"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tree() -> Tree {
    Tree::load(root()).unwrap_or_else(|e| panic!("reading the sources: {e}"))
}

fn is_strict(path: &str) -> bool {
    STRICT.iter().any(|s| path.starts_with(s))
}

/// `path function lines` entries.
fn allowlist() -> BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(root().join(ALLOWLIST)).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{ALLOWLIST}: `{l}` is not `path function lines`");
            let lines = f[2]
                .parse()
                .unwrap_or_else(|_| panic!("{ALLOWLIST}: `{l}`: bad line count"));
            ((f[0].to_string(), f[1].to_string()), lines)
        })
        .collect()
}

/// What is wrong with the function lengths, given the allowlist.
fn length_problems(functions: &[Function], allowed: &BTreeMap<(String, String), usize>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for f in functions.iter().filter(|f| !f.test) {
        let key = (f.file.clone(), f.name.clone());
        if is_strict(&f.file) {
            if f.lines > STRICT_LIMIT {
                problems.push(format!(
                    "{}:{} `{}` is {} lines; functions in the run pipeline, the scenario and the drivers stay within {STRICT_LIMIT}",
                    f.file, f.line, f.name, f.lines
                ));
            }
            continue;
        }
        if f.lines <= LIMIT {
            continue;
        }
        match allowed.get(&key) {
            None => problems.push(format!(
                "{}:{} `{}` is {} lines (at most {LIMIT}); split it",
                f.file, f.line, f.name, f.lines
            )),
            Some(&max) if f.lines > max => problems.push(format!(
                "{}:{} `{}` grew to {} lines; the allowlist holds it at {max} and may only shrink",
                f.file, f.line, f.name, f.lines
            )),
            Some(_) => seen.push(key),
        }
    }
    for ((file, name), max) in allowed {
        let key = (file.clone(), name.clone());
        if !seen.contains(&key) {
            let now = functions.iter().find(|f| f.file == *file && f.name == *name);
            problems.push(match now {
                None => format!("{ALLOWLIST}: `{file} {name}` no longer exists; remove the entry"),
                Some(f) if f.lines <= LIMIT => format!(
                    "{ALLOWLIST}: `{file} {name}` is {} lines now, within {LIMIT}; remove the entry",
                    f.lines
                ),
                Some(f) => format!("{ALLOWLIST}: `{file} {name}` is {} lines, listed as {max}", f.lines),
            });
        } else if let Some(f) = functions.iter().find(|f| f.file == *file && f.name == *name) {
            if f.lines < *max {
                problems.push(format!(
                    "{ALLOWLIST}: `{file} {name}` shrank to {} lines; lower its entry from {max}",
                    f.lines
                ));
            }
        }
    }
    problems
}

#[test]
fn functions_stay_short() {
    let t = tree();
    let problems = length_problems(&t.functions, &allowlist());
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_import_graph_has_no_cycle() {
    let t = tree();
    let cycles = graph::cycles(&t.edges);
    let text: Vec<String> = cycles
        .iter()
        .map(|c| {
            let mut s = format!("cycle: {}", c.join(" -> "));
            for pair in c.windows(2) {
                if let Some(why) = t.edges.get(&pair[0]).and_then(|m| m.get(&pair[1])) {
                    let _ = write!(s, "\n    {} -> {}: {}", pair[0], pair[1], why);
                }
            }
            s
        })
        .collect();
    assert!(cycles.is_empty(), "\n{}", text.join("\n"));
}

fn is_pure(module: &str) -> bool {
    PURE.iter()
        .any(|p| module == *p || module.starts_with(&format!("{p}::")))
}

#[test]
fn pure_modules_do_no_io() {
    let t = tree();
    let mut problems = Vec::new();
    for m in t.modules.values().filter(|m| is_pure(&m.name) && !m.test) {
        for (path, line) in &m.paths {
            if IMPURE
                .iter()
                .any(|bad| path == bad || path.starts_with(&format!("{bad}::")))
            {
                problems.push(format!("{}:{line}: pure module `{}` uses `{path}`", m.file, m.name));
            }
        }
        for (to, why) in t.edges.get(&m.name).into_iter().flatten() {
            if !is_pure(to) {
                problems.push(format!(
                    "{}: pure module `{}` imports `{to}`, which is not pure ({why})",
                    m.file, m.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn drivers_build_and_run_only_through_the_tester() {
    let t = tree();
    let mut problems = Vec::new();
    for driver in DRIVERS {
        assert!(t.modules.contains_key(*driver), "no module {driver}");
        for (to, why) in t.edges.get(*driver).into_iter().flatten() {
            let banned = to == "repro::run"
                || NOT_FOR_DRIVERS
                    .iter()
                    .any(|b| to == b || to.starts_with(&format!("{b}::")));
            if banned {
                problems.push(format!(
                    "{driver} imports {to} ({why}); drivers go through crate::tester"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_oops_crate_depends_on_nothing_that_could_do_io() {
    let manifest = std::fs::read_to_string(root().join("crates/oops/Cargo.toml")).unwrap();
    let table: toml::Table = manifest.parse().unwrap();
    let deps = table
        .get("dependencies")
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    let extra: Vec<&String> = deps
        .keys()
        .filter(|k| !OOPS_DEPENDENCIES.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "crates/oops depends on {extra:?}; it may only use {OOPS_DEPENDENCIES:?}"
    );
}

#[test]
fn the_run_pipeline_has_one_select_loop() {
    let t = tree();
    let selects: Vec<String> = t
        .selects
        .iter()
        .filter(|(file, _)| file.starts_with("src/run/"))
        .map(|(file, line)| format!("{file}:{line}"))
        .collect();
    assert!(
        selects.len() <= 1,
        "tokio::select! appears {} times in src/run (one wait loop owns the events): {}",
        selects.len(),
        selects.join(", ")
    );
}

/// The tests above flag a fixture tree with each kind of problem, so none of them can pass by
/// reading nothing.
#[test]
fn the_checks_catch_a_tree_that_breaks_each_rule() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("run")).unwrap();
    std::fs::create_dir_all(src.join("scenario")).unwrap();
    let long_body = "    let _ = 1;\n".repeat(130);
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\npub mod run;\npub mod scenario;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a.rs"),
        format!("use crate::b::B;\npub struct A;\nfn long() {{\n{long_body}}}\n"),
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B(crate::a::A);\n").unwrap();
    std::fs::write(
        src.join("run/mod.rs"),
        "async fn f() { tokio::select! { _ = g() => {} } }\nasync fn h() { tokio::select! { _ = g() => {} } }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("scenario/mod.rs"),
        "fn read() { let _ = std::fs::read(\"x\"); }\n",
    )
    .unwrap();
    let t = Tree::load(dir.path()).unwrap();
    let cycles = graph::cycles(&t.edges);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains(&"repro::a".to_string()) && cycles[0].contains(&"repro::b".to_string()));
    let long = length_problems(&t.functions, &BTreeMap::new());
    assert!(long.iter().any(|p| p.contains("`long` is 132 lines")), "{long:?}");
    assert_eq!(t.selects.iter().filter(|(f, _)| f.starts_with("src/run/")).count(), 2);
    let scenario = &t.modules["repro::scenario"];
    assert!(
        scenario.paths.iter().any(|(p, _)| p == "std::fs::read"),
        "{:?}",
        scenario.paths
    );
    // An allowlisted function that grew, and a stale entry, are both reported.
    let mut allowed = BTreeMap::new();
    allowed.insert(("src/a.rs".to_string(), "long".to_string()), 125);
    allowed.insert(("src/a.rs".to_string(), "gone".to_string()), 200);
    let p = length_problems(&t.functions, &allowed);
    assert!(p.iter().any(|p| p.contains("grew to 132")), "{p:?}");
    assert!(
        p.iter().any(|p| p.contains("`src/a.rs gone` no longer exists")),
        "{p:?}"
    );
}

/// Prints the layout: modules with their imports, the longest functions, and the pure modules.
/// Run with `just tidy`.
#[test]
fn report() {
    let t = tree();
    let mut out = String::new();
    let _ = writeln!(out, "modules: {}", t.modules.len());
    let mut longest: Vec<&Function> = t.functions.iter().filter(|f| !f.test).collect();
    longest.sort_by_key(|f| std::cmp::Reverse(f.lines));
    let _ = writeln!(out, "longest functions (test code excluded):");
    for f in longest.iter().take(25) {
        let _ = writeln!(out, "  {:>4}  {}:{} {}", f.lines, f.file, f.line, f.name);
    }
    for dir in STRICT {
        let max = t
            .functions
            .iter()
            .filter(|f| !f.test && f.file.starts_with(dir))
            .map(|f| f.lines)
            .max();
        let _ = writeln!(out, "longest in {dir}: {}", max.map_or("-".into(), |m| m.to_string()));
    }
    let _ = writeln!(out, "imports (crate-internal, file modules):");
    for (from, tos) in &t.edges {
        let names: Vec<&str> = tos.keys().map(String::as_str).collect();
        let pure = if is_pure(from) { " (pure)" } else { "" };
        let _ = writeln!(out, "  {from}{pure} -> {}", names.join(", "));
    }
    let selects: Vec<String> = t.selects.iter().map(|(f, l)| format!("{f}:{l}")).collect();
    let _ = writeln!(out, "tokio::select!: {}", selects.join(", "));
    println!("{out}");
    assert!(!t.modules.is_empty());
}
