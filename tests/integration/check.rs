use crate::fixture::Test;

const GOOD: &str = r#"summary = "a fine scenario"
kernel = "debian-6.1-cloud"
arch = "x86_64"
image = "debian-bookworm"

[workload]
script = "true"
"#;

#[test]
fn repo_scenarios_all_check() {
    Test::new()
        .with_repo_scenarios()
        .args(&["check"])
        .stdout_contains("ok: smoke-boot")
        .stdout_contains("ok: smoke-oops")
        .run();
}

#[test]
fn list_shows_summaries() {
    Test::new()
        .file("scenarios/one.toml", GOOD)
        .args(&["list"])
        .stdout("one                          x86_64   a fine scenario\n")
        .run();
    // A longer name widens the column for every row.
    let long = "a-scenario-name-of-thirty-two-ch";
    Test::new()
        .file("scenarios/one.toml", GOOD)
        .file(&format!("scenarios/{long}.toml"), GOOD)
        .args(&["list"])
        .stdout(&format!(
            "{long} x86_64   a fine scenario\none{} x86_64   a fine scenario\n",
            " ".repeat(long.len() - 3)
        ))
        .run();
}

#[test]
fn wrong_type_names_file_line_column_and_key() {
    let bad = GOOD.replace("[workload]", "[vm]\ncpus = \"two\"\n\n[workload]");
    Test::new()
        .file("scenarios/bad.toml", &bad)
        .args(&["check", "bad"])
        .status(128)
        .stderr(
            "error: scenarios/bad.toml:7:8: key `vm.cpus`: invalid type: string \"two\", expected u32\n  |\n7 | cpus = \"two\"\n  |        ^^^^^\n",
        )
        .run();
}

#[test]
fn unknown_key_names_it() {
    let bad = GOOD.replace("script = \"true\"", "script = \"true\"\ntimeuot = \"5m\"");
    Test::new()
        .file("scenarios/typo.toml", &bad)
        .args(&["check", "typo"])
        .status(128)
        .stderr(
            "error: scenarios/typo.toml:8:1: key `workload.timeuot`: unknown field `timeuot`, expected one of `script`, `node`, `timeout`, `iterations`, `parallel`, `shell`, `restore`, `placeholder`\n  |\n8 | timeuot = \"5m\"\n  | ^^^^^^^\n",
        )
        .run();
}

#[test]
fn unknown_kernel_is_pointed_at() {
    let bad = GOOD.replace("\"debian-6.1-cloud\"", "\"debian-9-cloud\"");
    let (_, err) = Test::new()
        .file("scenarios/k.toml", &bad)
        .args(&["check", "k"])
        .status(128)
        .run();
    assert!(
        err.starts_with("error: scenarios/k.toml:2:10: key `kernel`: unknown kernel `debian-9-cloud`, defined kernels: debian-6.1-cloud, linux-6.1, "),
        "{err}"
    );
    assert!(
        err.ends_with("\n  |\n2 | kernel = \"debian-9-cloud\"\n  |          ^^^^^^^^^^^^^^^^\n"),
        "{err}"
    );
}

#[test]
fn bad_duration_is_explained() {
    let bad = GOOD.replace("script = \"true\"", "script = \"true\"\ntimeout = \"5 parsecs\"");
    Test::new()
        .file("scenarios/d.toml", &bad)
        .args(&["check", "d"])
        .status(128)
        .stderr("error: scenarios/d.toml:8:11: key `workload.timeout`: invalid value: string \"5 parsecs\", expected a duration of at most a week: whole seconds, or a string like \"90s\", \"5m\", \"1h\"\n  |\n8 | timeout = \"5 parsecs\"\n  |           ^^^^^^^^^^^\n")
        .run();
}

#[test]
fn missing_scenario_is_a_usage_error() {
    let (_, err) = Test::new().args(&["check", "nope"]).status(128).run();
    assert!(err.starts_with("error: no scenario named `nope` in "), "{err}");
}

#[test]
fn run_with_invalid_scenario_is_a_usage_error_before_booting() {
    Test::new()
        .file("scenarios/bad.toml", "summary = 1\n")
        .args(&["run", "bad"])
        .status(128)
        .run();
}

#[test]
fn a_debian_kernel_name_needs_no_definition_and_a_malformed_one_is_pointed_at() {
    let ok = GOOD.replace("\"debian-6.1-cloud\"", "\"debian:6.1.0-50\"");
    Test::new()
        .file("scenarios/k.toml", &ok)
        .args(&["check", "k"])
        .stdout("ok: k (scenarios/k.toml)\n")
        .run();
    let bad = GOOD.replace("\"debian-6.1-cloud\"", "\"debian:6.1.0-\"");
    let (_, err) = Test::new()
        .file("scenarios/k.toml", &bad)
        .args(&["check", "k"])
        .status(128)
        .run();
    assert!(
        err.starts_with(
            "error: scenarios/k.toml:2:10: key `kernel`: `debian:6.1.0-` is not a Debian kernel: use `debian:latest`, "
        ),
        "{err}"
    );
}
