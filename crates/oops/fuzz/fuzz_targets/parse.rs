//! `cargo +nightly fuzz run parse` (from crates/oops): parsing never panics, and feeding the
//! same bytes in two chunks split at an input-chosen point gives the same reports.

#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_oops::{parse, Detector};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    for r in &whole {
        assert!(r.start < r.end && r.end <= data.len());
    }
    let split = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut d = Detector::new();
    let mut chunked = d.feed(&data[..split]);
    chunked.extend(d.feed(&data[split..]));
    chunked.extend(d.finish());
    assert_eq!(chunked, whole);
});
