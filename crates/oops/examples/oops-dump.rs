//! Prints the reports found in console logs as JSON lines, one per report:
//! `cargo run -p repro-oops --example oops-dump -- [--text] FILE...` (standard input when no file
//! is given; `--text` keeps each report's text). A debugging aid for new logs and fixtures: the
//! library itself does no I/O.

use std::io::Read;

fn main() {
    let mut with_text = false;
    let mut files = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--text" => with_text = true,
            _ => files.push(a),
        }
    }
    let inputs: Vec<(String, Vec<u8>)> = if files.is_empty() {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).expect("read stdin");
        vec![("-".to_string(), buf)]
    } else {
        files
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(&f).unwrap_or_else(|e| panic!("{f}: {e}"))))
            .collect()
    };
    for (name, data) in inputs {
        for r in repro_oops::parse(&data) {
            let mut v = serde_json::to_value(&r).expect("serialize");
            let obj = v.as_object_mut().expect("a report is an object");
            obj.insert("file".into(), name.clone().into());
            if !with_text {
                obj.remove("text");
            }
            println!("{v}");
        }
    }
}
