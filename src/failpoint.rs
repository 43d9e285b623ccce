//! Faults repro's own tests inject into the real binary (`tests/faults`), the way a kernel has
//! fault-injection knobs: `REPRO_FAILPOINT=POINT` (or `POINT@SCENARIO`, to hit one nightly cell
//! only) makes the named point fail. Unset, every point is a no-op.

/// The variable that arms a point.
pub const VAR: &str = "REPRO_FAILPOINT";

/// Whether `point` is armed for a run of `scenario`.
pub fn armed(point: &str, scenario: &str) -> bool {
    std::env::var(VAR).is_ok_and(|v| matches(&v, point, scenario))
}

fn matches(value: &str, point: &str, scenario: &str) -> bool {
    value.split(',').any(|one| match one.split_once('@') {
        Some((p, s)) => p == point && s == scenario,
        None => one == point,
    })
}

/// Panics at `point` when it is armed: how the fault tests stand in for a bug in repro.
pub fn panic_here(point: &str, scenario: &str) {
    if armed(point, scenario) {
        panic!("failpoint {point} armed by {VAR}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_point_is_armed_by_name_and_optionally_by_scenario() {
        assert!(super::matches("run.boot", "run.boot", "a"));
        assert!(super::matches("x,run.boot@a", "run.boot", "a"));
        assert!(!super::matches("run.boot@b", "run.boot", "a"));
        assert!(!super::matches("run.setup", "run.boot", "a"));
        assert!(!super::matches("", "run.boot", "a"));
    }
}
