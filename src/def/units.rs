//! Human units in TOML: durations (`90`, `"90s"`, `"5m"`) and sizes (`1024`, `"512M"`, `"2G"`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A duration written as whole seconds or a string with an `ms`, `s`, `m` or `h` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

/// A memory size in MiB, written as an integer (MiB) or a string with an `M` or `G` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiB(pub u64);

/// The longest duration repro accepts anywhere (a week). Deadlines are computed as now plus a
/// duration; an unbounded one would overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest size repro accepts (1 TiB, in MiB): sizes are turned into bytes.
pub const MAX_MIB: u64 = 1 << 20;

/// A duration no longer than [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    parse_any_duration(s).filter(|d| *d <= MAX_DURATION)
}

fn parse_any_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d)
}

/// A size no larger than [`MAX_MIB`].
pub fn parse_mib(s: &str) -> Option<u64> {
    parse_any_mib(s).filter(|m| *m <= MAX_MIB)
}

fn parse_any_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" | "M" | "MiB" => Some(n),
        "G" | "GiB" => n.checked_mul(1024),
        _ => None,
    }
}

struct SecsVisitor;

impl Visitor<'_> for SecsVisitor {
    type Value = Secs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration of at most a week: whole seconds, or a string like \"90s\", \"5m\", \"1h\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secs, E> {
        u64::try_from(v)
            .ok()
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DURATION)
            .map(Secs)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secs, E> {
        parse_duration(v)
            .map(Secs)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecsVisitor)
    }
}

struct MiBVisitor;

impl Visitor<'_> for MiBVisitor {
    type Value = MiB;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a memory size up to 1 TiB: MiB as an integer, or a string like \"512M\", \"2G\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MiB, E> {
        u64::try_from(v)
            .ok()
            .filter(|&m| m > 0 && m <= MAX_MIB)
            .map(MiB)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MiB, E> {
        parse_mib(v)
            .filter(|&m| m > 0)
            .map(MiB)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for MiB {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MiBVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_a_week_are_refused_rather_than_overflowing_a_deadline() {
        assert_eq!(parse_duration("168h"), Some(MAX_DURATION));
        assert_eq!(parse_duration("169h"), None);
        assert_eq!(parse_duration("9223372036854775807s"), None);
        assert_eq!(parse_mib("1024G"), Some(MAX_MIB));
        assert_eq!(parse_mib("1025G"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("512"), Some(512));
        assert_eq!(parse_mib("512M"), Some(512));
        assert_eq!(parse_mib("2G"), Some(2048));
        assert_eq!(parse_mib("2T"), None);
    }
}
