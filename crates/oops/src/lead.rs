//! Which first two bytes a match of an anchored pattern can start with, worked out from the
//! pattern itself (by walking its lazy DFA two steps from the start). Nearly every console line
//! starts otherwise for nearly every pattern, and a table lookup is much cheaper than a regex
//! call that fails: the detector asks the table first.

use regex::{Captures, Regex};
use regex_automata::hybrid::dfa::DFA;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

/// The lazy DFA's states for the first two bytes of a few dozen patterns fit many times over;
/// a cache that was cleared (its state ids no longer valid) gives no table.
const CACHE_BYTES: usize = 8 << 20;

/// The two-byte starts a match can have. A text shorter than two bytes may always match.
#[derive(Clone)]
pub(crate) struct Lead {
    /// Bit `a << 8 | b` is set when a match can start with the bytes `a`, `b`.
    pairs: Box<[u64; 1024]>,
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.pairs.iter().map(|w| w.count_ones()).sum();
        write!(f, "Lead({n} of 65536 starts)")
    }
}

impl Lead {
    /// The starts of any of `patterns`. A pattern not anchored at the text's start (or one the
    /// lazy DFA cannot take) can start anywhere, and so can the set.
    pub fn of<P: AsRef<str>>(patterns: &[P]) -> Lead {
        worked_out(patterns).unwrap_or_else(Lead::any)
    }

    /// Every start possible: no line is skipped.
    pub fn any() -> Lead {
        Lead {
            pairs: Box::new([u64::MAX; 1024]),
        }
    }

    /// False when no match can start `text`; true when one may.
    pub fn may_match(&self, text: &str) -> bool {
        match text.as_bytes() {
            [a, b, ..] => self.has(*a, *b),
            _ => true,
        }
    }

    fn has(&self, a: u8, b: u8) -> bool {
        let i = usize::from(a) << 8 | usize::from(b);
        self.pairs[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, a: u8, b: u8) {
        let i = usize::from(a) << 8 | usize::from(b);
        self.pairs[i / 64] |= 1 << (i % 64);
    }
}

/// An anchored regex run only on a text its [`Lead`] admits.
#[derive(Debug, Clone)]
pub(crate) struct Gated {
    re: Regex,
    lead: Lead,
}

impl Gated {
    pub fn new(re: Regex) -> Gated {
        let lead = Lead::of(&[re.as_str()]);
        Gated { re, lead }
    }

    /// The pattern, as written.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        self.re.as_str()
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.lead.may_match(text) && self.re.is_match(text)
    }

    pub fn captures<'t>(&self, text: &'t str) -> Option<Captures<'t>> {
        self.lead.may_match(text).then(|| self.re.captures(text)).flatten()
    }
}

fn worked_out<P: AsRef<str>>(patterns: &[P]) -> Option<Lead> {
    // Every match is wanted, not only the leftmost-first one: a state is dead only when no
    // pattern can match any more.
    let config = DFA::config().match_kind(MatchKind::All).cache_capacity(CACHE_BYTES);
    let dfa = DFA::builder().configure(config).build_many(patterns).ok()?;
    if !dfa.get_nfa().is_always_start_anchored() {
        return None;
    }
    let mut cache = dfa.create_cache();
    let from_start = start::Config::new().anchored(Anchored::Yes);
    let start = dfa.start_state(&mut cache, &from_start).ok()?;
    // A pattern that matches the empty text matches every text.
    if start.is_match() || start.is_quit() {
        return None;
    }
    let mut lead = Lead {
        pairs: Box::new([0; 1024]),
    };
    for a in 0..=255u8 {
        let one = dfa.next_state(&mut cache, start, a).ok()?;
        if one.is_dead() {
            continue;
        }
        for b in 0..=255u8 {
            // Matches show one byte late: `one` being a match means a match ended before `a`.
            let open = one.is_match() || one.is_quit() || !dfa.next_state(&mut cache, one, b).ok()?.is_dead();
            if open {
                lead.set(a, b);
            }
        }
    }
    (cache.clear_count() == 0).then_some(lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchored_literal_starts_only_with_its_first_two_bytes() {
        let lead = Lead::of(&[r"^CPU: \d+"]);
        assert!(lead.may_match("CPU: 0 PID: 1"));
        assert!(lead.may_match("CP"), "two bytes of it may still match");
        assert!(!lead.may_match("Code: 48 89"));
        assert!(!lead.may_match(" CPU: 0"));
        assert!(lead.may_match("C"), "a text shorter than two bytes is not looked up");
    }

    #[test]
    fn a_set_starts_with_what_any_of_its_patterns_starts_with() {
        let lead = Lead::of(&[r"^BUG: ", r"^(?:Oops: )?general protection", r"^\s*RIP: "]);
        for yes in [
            "BUG: x",
            "Oops: general",
            "general protection",
            " RIP: 0010",
            "\tRIP:",
            "  RIP",
        ] {
            assert!(lead.may_match(yes), "{yes:?}");
        }
        for no in ["BAD", "Ok", "RAX: 0", "Ge", " foo+0x1/0x2"] {
            assert!(!lead.may_match(no), "{no:?}");
        }
    }

    #[test]
    fn a_unicode_class_admits_every_byte_that_can_start_it() {
        // `\s` includes U+00A0 (C2 A0) and U+3000 (E3 80 80).
        let lead = Lead::of(&[r"^\s+Tainted"]);
        assert!(lead.may_match("\u{a0}Tainted"));
        assert!(lead.may_match("\u{3000}Tainted"));
        assert!(lead.may_match(" Tainted"));
        assert!(!lead.may_match("Tainted"));
    }

    #[test]
    fn a_pattern_that_can_start_anywhere_skips_nothing() {
        for any in [&[r"end trace"][..], &[r"^BUG", r"Oops"], &[r"^(?:<\d>)?"], &[r"^x|y"]] {
            let lead = Lead::of(any);
            for text in ["zz", "  ", "\u{1F600}"] {
                assert!(lead.may_match(text), "{any:?} on {text:?}");
            }
        }
    }

    #[test]
    fn a_match_of_one_byte_admits_any_second() {
        let lead = Lead::of(&[r"^a(?:bc)?"]);
        assert!(lead.may_match("az"));
        assert!(lead.may_match("ab"));
        assert!(!lead.may_match("ba"));
    }
}
