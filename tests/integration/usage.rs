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

#[test]
fn oops_parse_exits_1_on_a_crash_and_prints_json() {
    let log =
        std::fs::read_to_string(crate::fixture::repo().join("crates/oops/tests/data/real-qemu-6.1-x86-sysrq.log"))
            .unwrap();
    let (out, _) = Test::new()
        .file("console.log", &log)
        .args(&["oops", "parse", "console.log", "--json"])
        .status(1)
        .run();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["title"], "kernel panic: sysrq triggered crash");
    assert_eq!(v[0]["type"], "panic");
    assert_eq!(v[0]["corrupted"], false);
    assert!(v[0]["frames"].as_array().unwrap().len() > 5);
}

#[test]
fn oops_parse_exits_0_on_a_clean_boot() {
    let log = std::fs::read_to_string(
        crate::fixture::repo().join("crates/oops/tests/data/real-qemu-6.1-arm64-boot-clean.log"),
    )
    .unwrap();
    Test::new()
        .file("console.log", &log)
        .args(&["oops", "parse", "console.log"])
        .stdout("")
        .run();
}
