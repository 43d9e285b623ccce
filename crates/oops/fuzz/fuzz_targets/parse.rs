//! `cargo +nightly fuzz run parse` (from crates/oops/fuzz): parsing never panics, report ranges
//! lie inside the input, and feeding the same bytes to a live `Detector` in arbitrary chunks
//! (as a console delivers them: empty, single bytes, a few bytes, big blocks) gives the same
//! reports as `parse`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_oops::{parse, Detector};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    for r in &whole {
        assert!(r.start < r.end && r.end <= data.len());
    }

    // Chunk sizes come from a small PRNG seeded by the input's first bytes, so the input stays a
    // plain console log (the seeds are real logs) while the chunking still varies with it.
    let mut rng = data
        .iter()
        .take(8)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
        | 1;
    let mut d = Detector::new();
    let mut chunked = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let r = (rng >> 8) as usize;
        let n = match rng & 7 {
            0 => 0,
            1 | 2 => 1,
            7 => r % (rest.len() + 1),
            _ => r % 65,
        };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        chunked.extend(d.feed(chunk));
        let _ = d.in_report();
        rest = tail;
    }
    chunked.extend(d.finish());
    assert_eq!(chunked, whole);
});
