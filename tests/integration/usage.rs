use crate::fixture::Test;

#[test]
fn unknown_subcommand_exits_128_so_git_bisect_run_aborts() {
    Test::new().args(&["frobnicate"]).status(128).run();
}

#[test]
fn help_exits_0() {
    Test::new().args(&["--help"]).stdout_contains("Usage: repro").run();
}

#[test]
fn unknown_kernel_override_is_a_usage_error() {
    Test::new()
        .with_repo_scenarios()
        .args(&["run", "smoke-boot", "--kernel", "nope"])
        .status(128)
        .run();
}
