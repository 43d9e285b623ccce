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

/// A two-node run's report, as `repro run` writes it (the fields `repro debug` reads), with the
/// files it names: each node's dump in its own directory, a vmlinux, a module. The nodes are of
/// the host's arch, whose dumps crash(8) reads.
fn two_node_run(vmlinux: &str) -> Test {
    let node = |name: &str| {
        format!(
            r#"{{"name": "{name}", "arch": "{}", "kernel": {{"name": "linux-6.1", "release": "6.1.192-repro",
               "origin": "built", "vmlinux": "{vmlinux}",
               "modules": [{{"name": "crashmod", "ko": "ko/crashmod.ko", "origin": "dir x"}}]}}}}"#,
            std::env::consts::ARCH
        )
    };
    let report = format!(
        r#"{{"scenario": "nfs-two-node", "verdict": "reproduced", "nodes": [{}, {}],
            "vmcores": ["run/client/vmcore", "run/server/vmcore"]}}"#,
        node("server"),
        node("client")
    );
    Test::new()
        .file("run/report.json", &report)
        .file("run/server/vmcore", "KDUMP")
        .file("run/client/vmcore", "KDUMP")
        .file("k/vmlinux", "ELF")
        .file("ko/crashmod.ko", "ELF")
}

#[test]
fn repro_debug_prints_the_command_for_each_nodes_dump() {
    two_node_run("k/vmlinux")
        .args(&["debug", "run", "--print", "--node", "server"])
        .stdout("crash k/vmlinux run/server/vmcore\n# then, for the module's symbols: mod -s crashmod ko/crashmod.ko\n")
        .run();
    // The first node with a dump, by default; drgn gets the module's debug info too.
    let (out, _) = two_node_run("k/vmlinux")
        .args(&["debug", "run", "--drgn", "--print", "--", "script.py", "arg"])
        .run();
    assert!(
        out.trim_end()
            .ends_with("drgn -c run/client/vmcore -s k/vmlinux -s ko/crashmod.ko script.py arg"),
        "{out}"
    );
}

#[test]
fn repro_debug_names_what_is_missing() {
    let (_, err) = two_node_run("k/vmlinux")
        .args(&["debug", "run", "--node", "nope"])
        .status(128)
        .run();
    assert!(err.contains("the run has no node `nope`"), "{err}");
    let (_, err) = two_node_run("gone/vmlinux")
        .args(&["debug", "run", "--print"])
        .status(128)
        .run();
    assert!(
        err.contains("gone/vmlinux is no longer in the cache")
            && err.contains(&format!(
                "repro kernel build linux-6.1 --arch {} --debug-info full",
                std::env::consts::ARCH
            )),
        "{err}"
    );
    let (_, err) = Test::new().args(&["debug", "nowhere"]).status(128).run();
    assert!(
        err.contains("nowhere/report.json") && err.contains("a run directory?"),
        "{err}"
    );
}

/// `repro oops parse LOG | head -1`: the reader leaving ends repro by SIGPIPE, quietly, as it
/// ends cat, not by a panic (exit 134 and a backtrace).
#[test]
fn oops_parse_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let one =
        std::fs::read_to_string(crate::fixture::repo().join("crates/oops/tests/data/real-qemu-6.1-x86-sysrq.log"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("many.log");
    // Far more output than a pipe holds.
    std::fs::write(&log, one.repeat(400)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_repro"))
        .args(["oops", "parse"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bisect_of_packages_checks_its_range_before_anything_runs() {
    let t = |args: &[&str]| {
        let mut all = vec!["bisect", "smoke-debian-bisect"];
        all.extend_from_slice(args);
        Test::new().with_repo_scenarios().args(&all).status(128).run().1
    };
    let e = t(&["--debian", "6.1.0-57..6.1.0-47"]);
    assert!(
        e.contains("--debian `6.1.0-57..6.1.0-47`: debian:6.1.0-57 is not older than debian:6.1.0-47 on x86_64"),
        "{e}"
    );
    let e = t(&["--debian", "6.1.0-47"]);
    assert!(e.contains("expected FROM..TO"), "{e}");
    let e = t(&["--debian", "4.19.90..6.1.0-57"]);
    assert!(
        e.contains("no cloud kernel `debian:4.19.90` for x86_64; the closest it has: debian:6.1.0-47 (6.1.170)"),
        "{e}"
    );
    let e = t(&["--debian", "6.1.0-47..6.1.0-57", "--good", "v6.1"]);
    assert!(e.contains("cannot be used with"), "{e}");
}
