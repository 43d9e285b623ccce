//! The fixture corpus in `tests/data/*.log`.
//!
//! Each file starts with header lines `# key: value`; every `# title: <title>` line names one
//! expected report, in order (`# title: none` for a log without any). The raw console log
//! follows the header. Any `*.log` dropped into the directory is picked up.

use repro_oops::{parse, Detector, Report};
use std::path::PathBuf;

struct Fixture {
    name: String,
    titles: Vec<String>,
    /// `# frame:` lines: functions the first report's frames must hold, in order.
    frames: Vec<String>,
    log: Vec<u8>,
}

fn is_header_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"# ") else {
        return false;
    };
    let key_len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_')
        .count();
    key_len > 0 && rest.get(key_len) == Some(&b':')
}

fn load(path: &PathBuf) -> Fixture {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut titles = Vec::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut saw_title = false;
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..end];
        if !is_header_line(line) {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(f) = text.strip_prefix("# frame:") {
            frames.push(f.trim().to_string());
        }
        if let Some(t) = text.strip_prefix("# title:") {
            saw_title = true;
            let t = t.trim();
            if t != "none" {
                titles.push(t.to_string());
            }
        }
        pos = end;
    }
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(saw_title, "{name}: no `# title:` header line");
    Fixture {
        name,
        titles,
        frames,
        log: data[pos..].to_vec(),
    }
}

fn fixtures() -> Vec<Fixture> {
    with_extension("log")
}

/// The fixtures with extension `ext` (`log`: console output; `paste`: crashes pasted into mail).
fn with_extension(ext: &str) -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths.iter().map(load).collect()
}

fn chunked(log: &[u8], size: usize) -> Vec<Report> {
    let mut d = Detector::new();
    let mut out = Vec::new();
    for chunk in log.chunks(size.max(1)) {
        out.extend(d.feed(chunk));
    }
    out.extend(d.finish());
    out
}

#[test]
fn fixture_titles() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let got: Vec<String> = parse(&f.log).into_iter().map(|r| r.title).collect();
        if got != f.titles {
            failures.push(format!("{}:\n  expected {:?}\n  got      {:?}", f.name, f.titles, got));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Crashes pasted into mail (`*.paste`): `parse_any` gives the expected titles and frames, and
/// no report is corrupted. `parse` alone, which takes them as console output, does not.
#[test]
fn pasted_crashes_parse_like_console_output() {
    let pasted = with_extension("paste");
    assert!(!pasted.is_empty());
    for f in pasted {
        let reports = repro_oops::parse_any(&f.log);
        let titles: Vec<&str> = reports.iter().map(|r| r.title.as_str()).collect();
        assert_eq!(titles, f.titles, "{}", f.name);
        assert!(reports.iter().all(|r| !r.corrupted), "{}: {reports:#?}", f.name);
        let functions: Vec<&str> = reports[0].frames.iter().map(|fr| fr.function.as_str()).collect();
        let mut at = 0;
        for want in &f.frames {
            let found = functions[at..].iter().position(|g| g.starts_with(want.as_str()));
            assert!(
                found.is_some(),
                "{}: no frame {want} (in order) in {functions:?}",
                f.name
            );
            at += found.unwrap_or(0) + 1;
        }
        let raw: Vec<String> = parse(&f.log).into_iter().map(|r| r.title).collect();
        assert_ne!(
            raw, f.titles,
            "{}: parses without unpasting; not a paste fixture",
            f.name
        );
    }
}

#[test]
fn chunking_does_not_change_reports() {
    for f in fixtures() {
        let whole = parse(&f.log);
        for size in [1, 7, 64, 4096, f.log.len()] {
            assert_eq!(chunked(&f.log, size), whole, "{}: chunks of {size} bytes", f.name);
        }
    }
}

#[test]
fn offsets_point_at_the_report() {
    for f in fixtures() {
        let mut last_end = 0;
        for r in parse(&f.log) {
            assert!(
                last_end <= r.start && r.start < r.end && r.end <= f.log.len(),
                "{}: {}..{}",
                f.name,
                r.start,
                r.end
            );
            last_end = r.end;
            let raw = String::from_utf8_lossy(&f.log[r.start..r.end]);
            let first = r.text.lines().next().unwrap();
            assert!(
                raw.lines().next().unwrap().ends_with(first),
                "{}: {first:?} not at start",
                f.name
            );
            let last = r.text.lines().last().unwrap();
            assert!(
                raw.trim_end_matches('\r').ends_with(last),
                "{}: {last:?} not at end",
                f.name
            );
        }
    }
}

/// A tiny deterministic PRNG (xorshift64*), so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_garbage() {
    let corpus: Vec<Vec<u8>> = fixtures().into_iter().map(|f| f.log).collect();
    let lines: Vec<&[u8]> = corpus.iter().flat_map(|l| l.split(|&b| b == b'\n')).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60 {
        let mut blob = Vec::new();
        match round % 3 {
            // Pure noise, biased towards line breaks and brackets.
            0 => {
                for _ in 0..rng.below(20_000) {
                    let b = rng.next() as u8;
                    blob.push(match b % 8 {
                        0 => b'\n',
                        1 => b'\r',
                        2 => b"[]<>?+/: "[rng.below(9)],
                        _ => b,
                    });
                }
            }
            // Real lines shuffled together.
            1 => {
                for _ in 0..rng.below(3000) {
                    blob.extend_from_slice(lines[rng.below(lines.len())]);
                    blob.push(b'\n');
                }
            }
            // Real lines with bytes flipped, cut at random places.
            _ => {
                for _ in 0..rng.below(2000) {
                    let mut l = lines[rng.below(lines.len())].to_vec();
                    for _ in 0..rng.below(4) {
                        if !l.is_empty() {
                            let i = rng.below(l.len());
                            l[i] = rng.next() as u8;
                        }
                    }
                    l.truncate(rng.below(l.len() + 1).max(l.len() / 2));
                    blob.extend_from_slice(&l);
                    blob.push(if rng.below(5) == 0 { b'\r' } else { b'\n' });
                }
            }
        }
        let whole = parse(&blob);
        let size = 1 + rng.below(300);
        assert_eq!(chunked(&blob, size), whole, "round {round}, chunks of {size}");
        for r in &whole {
            assert!(r.start < r.end && r.end <= blob.len());
        }
    }
}

#[test]
fn huge_line_and_many_reports_stay_linear() {
    // A 4 MiB line without a newline, then 2000 short reports: must finish quickly.
    let mut blob = vec![b'A'; 4 << 20];
    blob.push(b'\n');
    for i in 0..2000 {
        blob.extend_from_slice(format!("[ {i}.000000] kernel BUG at fs/x.c:{i}!\n[ {i}.000001] RIP: 0010:f{i}+0x1/0x2\n[ {i}.000002] ---[ end trace 0 ]---\n").as_bytes());
    }
    let t = std::time::Instant::now();
    let reports = parse(&blob);
    assert_eq!(reports.len(), 2000);
    assert_eq!(reports[7].title, "kernel BUG in f7");
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
}
