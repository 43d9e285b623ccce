//! `repro new NAME --from-log FILE`, against the real archive listing (apt-cache).

use std::path::Path;
use std::process::Command;

fn data(name: &str) -> String {
    crate::fixture::repo()
        .join("crates/oops/tests/data")
        .join(name)
        .display()
        .to_string()
}

/// `repro --root ROOT ARGS` → (exit code, stdout, stderr).
fn repro(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_repro"))
        .arg("--root")
        .arg(root)
        .args(args)
        .current_dir(root)
        .env("REPRO_CACHE", root.join("cache"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["kernels", "images"] {
        crate::fixture::copy_dir(&crate::fixture::repo().join(sub), &dir.path().join(sub));
    }
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    dir
}

#[test]
fn a_debian_console_becomes_a_scenario_that_checks_and_will_not_run_until_written() {
    let p = project();
    let (code, out, err) = repro(
        p.path(),
        &["new", "sysrq", "--from-log", &data("real-qemu-6.1-x86-sysrq.log")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("wrote scenarios/sysrq.toml\n  kernel: debian:6.1.0-56 (linux-image-6.1.0-56-cloud-amd64 6.1.192-2), the log's own\n"), "{out}");
    let toml = std::fs::read_to_string(p.path().join("scenarios/sysrq.toml")).unwrap();
    assert!(
        toml.contains("kernel = \"debian:6.1.0-56\"\narch = \"x86_64\"\n"),
        "{toml}"
    );
    assert!(toml.contains("title = \"kernel panic: sysrq triggered crash\"\nframes = [\"sysrq_handle_crash\", \"__handle_sysrq\", \"write_sysrq_trigger\"]\n"), "{toml}");
    let (code, out, _) = repro(p.path(), &["check", "sysrq"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("ok: sysrq (scenarios/sysrq.toml; its workload is a placeholder"),
        "{out}"
    );
    // Not a verdict: a usage error pointing at the key, before anything boots.
    let (code, out, err) = repro(p.path(), &["run", "sysrq", "--json"]);
    assert_eq!((code, out.as_str()), (128, ""), "{err}");
    assert!(err.starts_with("error: scenarios/sysrq.toml:"), "{err}");
    assert!(
        err.contains(" key `workload.placeholder`: the workload is a placeholder (`repro new` wrote it)"),
        "{err}"
    );
    assert!(!p.path().join("runs").exists());
    for cmd in [
        &["verify", "sysrq", "--set", "x"][..],
        &["bisect", "sysrq", "--good", "a", "--bad", "b"],
    ] {
        let (code, _, err) = repro(p.path(), cmd);
        assert_eq!(code, 128, "{cmd:?}: {err}");
        assert!(err.contains("key `workload.placeholder`"), "{cmd:?}: {err}");
    }
    // Never over an existing file.
    let (code, _, err) = repro(p.path(), &["new", "sysrq", "--from-log", &data("gpf-6.1-x86.log")]);
    assert_eq!(code, 128);
    assert!(
        err.contains("scenarios/sysrq.toml exists; repro new never overwrites"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("scenarios/sysrq.toml")).unwrap(),
        toml
    );
}

#[test]
fn a_vendor_kernels_log_names_the_closest_packages_and_takes_another_kernel() {
    let p = project();
    let log = data("seed000-4.19-x86-nfs-null-deref.log");
    let (code, _, err) = repro(p.path(), &["new", "nfs", "--from-log", &log]);
    assert_eq!(code, 128, "{err}");
    assert!(
        err.contains("the log's kernel `4.19.90-23.8.v2101.oe1.x86_64` is not in the Debian archive; the closest cloud kernels it has: debian:6.1.0-47 (6.1.170)"),
        "{err}"
    );
    assert!(!p.path().join("scenarios/nfs.toml").exists());
    let (code, out, err) = repro(p.path(), &["new", "nfs", "--from-log", &log, "--kernel", "linux-6.1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("storage: an NFS client (with its loopback server) (frames nfs_inode_add_request,"),
        "{out}"
    );
    let toml = std::fs::read_to_string(p.path().join("scenarios/nfs.toml")).unwrap();
    assert!(toml.contains("[nfs]\n") && toml.contains("[[nfs.clients]]\n"), "{toml}");
    assert!(
        toml.contains("[original]\nkernel = \"4.19.90-23.8.v2101.oe1.x86_64\"\n"),
        "{toml}"
    );
    assert_eq!(repro(p.path(), &["check", "nfs"]).0, 0);
}

#[test]
fn a_pasted_oops_drafts_like_the_console_it_came_from() {
    let p = project();
    let (code, out, err) = repro(
        p.path(),
        &[
            "new",
            "pasted",
            "--from-log",
            &data("seed-002-mail-quoted.paste"),
            "--kernel",
            "linux-6.1",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let toml = std::fs::read_to_string(p.path().join("scenarios/pasted.toml")).unwrap();
    assert!(
        toml.contains("title = \"BUG: kernel NULL pointer dereference in trailing_symlink\"\n"),
        "{toml}"
    );
}

#[test]
fn a_log_without_a_crash_or_a_bad_name_writes_nothing() {
    let p = project();
    let (code, _, err) = repro(
        p.path(),
        &["new", "clean", "--from-log", &data("real-qemu-6.1-x86-boot-clean.log")],
    );
    assert_eq!(code, 128);
    assert!(
        err.contains("real-qemu-6.1-x86-boot-clean.log: no crash report in it"),
        "{err}"
    );
    let (code, _, err) = repro(p.path(), &["new", "../x", "--from-log", &data("gpf-6.1-x86.log")]);
    assert_eq!(code, 128);
    assert!(err.contains("scenario name `../x` must be non-empty"), "{err}");
    let (code, _, err) = repro(
        p.path(),
        &["new", "k", "--from-log", &data("gpf-6.1-x86.log"), "--kernel", "nope"],
    );
    assert_eq!(code, 128);
    assert!(err.contains("--kernel: unknown kernel `nope`"), "{err}");
    assert_eq!(std::fs::read_dir(p.path().join("scenarios")).unwrap().count(), 0);
}
