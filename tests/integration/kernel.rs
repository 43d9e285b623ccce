use crate::fixture::Test;

/// The kernel definitions in the repository, by file stem, sorted.
fn repo_kernels() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(crate::fixture::repo().join("kernels"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn kernel_list_names_and_kinds() {
    let (out, _) = Test::new().args(&["kernel", "list"]).run();
    let lines: Vec<&str> = out.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, repo_kernels());
    assert!(lines.contains(
        &"debian-6.1-cloud         debian  x86_64,aarch64  Debian bookworm 6.1 cloud kernel (linux-image-6.1.0-*-cloud-amd64 / -arm64)"
    ));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("linux-6.1                source  x86_64,aarch64  ")));
}

#[test]
fn kernel_list_json_has_name_and_kind() {
    let (out, _) = Test::new()
        .file(
            "kernels/mine.toml",
            "summary = \"my build\"\nkind = \"local\"\narch = \"aarch64\"\nimage = \"Image\"\n",
        )
        .args(&["kernel", "list", "--json"])
        .run();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<(&str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["kind"].as_str().unwrap()))
        .collect();
    let mut want = repo_kernels();
    want.push("mine".into());
    want.sort();
    assert_eq!(names.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(), want);
    assert!(names.contains(&("mine", "local")));
    assert!(names.contains(&("debian-6.1-cloud", "debian")));
    assert!(names.contains(&("linux-6.1", "source")));
}

#[test]
fn local_kernel_without_image_is_an_error() {
    Test::new()
        .file("kernels/mine.toml", "summary = \"my build\"\nkind = \"local\"\narch = \"aarch64\"\n")
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernels/mine.toml:1:1: key `image`: kind `local` needs `image`\n  |\n1 | summary = \"my build\"\n  | ^\n")
        .run();
}

#[test]
fn a_patch_step_with_two_actions_is_pointed_at() {
    Test::new()
        .file(
            "kernels/two.toml",
            "summary = \"x\"\nkind = \"source\"\nextends = \"linux-6.1\"\n[[patch]]\napply = \"a.patch\"\nrevert = \"abc\"\n",
        )
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernels/two.toml:4:1: key `patch[0]`: a patch step needs exactly one of `apply`, `revert`, `cherry_pick`\n  |\n4 | [[patch]]\n  | ^^^^^^^^^\n")
        .run();
}

#[test]
fn an_extends_cycle_is_an_error_not_a_stack_overflow() {
    Test::new()
        .file(
            "kernels/a.toml",
            "summary = \"a\"\nkind = \"source\"\nextends = \"b\"\n",
        )
        .file(
            "kernels/b.toml",
            "summary = \"b\"\nkind = \"source\"\nextends = \"a\"\n",
        )
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernel definitions extend each other in a cycle: a -> b -> a\n")
        .run();
}

#[test]
fn a_key_of_another_kind_is_rejected() {
    Test::new()
        .file(
            "kernels/x.toml",
            "summary = \"x\"\nkind = \"source\"\npackage = \"linux-image-amd64\"\n",
        )
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernels/x.toml:1:1: key `package`: `package` is only for kind `debian`\n  |\n1 | summary = \"x\"\n  | ^\n")
        .run();
}

#[test]
fn a_debian_definition_can_pin_a_version_and_a_bad_one_is_pointed_at() {
    Test::new()
        .file(
            "kernels/old.toml",
            "summary = \"x\"\nkind = \"debian\"\nversion = \"6.1.176\"\n",
        )
        .args(&["kernel", "list"])
        .stdout_contains("old                      debian  x86_64,aarch64  x\n")
        .run();
    Test::new()
        .file("kernels/old.toml", "summary = \"x\"\nkind = \"debian\"\nversion = \"6.1.x\"\n")
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernels/old.toml:3:11: key `version`: `debian:6.1.x` is not a Debian kernel: use `debian:latest`, a series (`debian:6.1`), an upstream version (`debian:6.1.180`) or an ABI (`debian:6.1.0-50`, `debian:6.12.107+deb12`)\n  |\n3 | version = \"6.1.x\"\n  |           ^^^^^^^\n")
        .run();
    Test::new()
        .file(
            "kernels/both.toml",
            "summary = \"x\"\nkind = \"debian\"\npackage = \"linux-image-cloud-{debarch}\"\nversion = \"6.1\"\n",
        )
        .args(&["kernel", "list"])
        .status(128)
        .stderr("error: kernels/both.toml:3:11: key `package`: give `package` or `version`, not both\n  |\n3 | package = \"linux-image-cloud-{debarch}\"\n  |           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n")
        .run();
}

/// Real apt-cache, on the archive this machine reaches.
#[test]
fn kernel_list_available_lists_the_archives_cloud_kernels_with_upstream_versions() {
    let (out, _) = Test::new().args(&["kernel", "list", "--available", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let all = v.as_array().unwrap();
    for arch in ["x86_64", "aarch64"] {
        let p = all
            .iter()
            .find(|p| p["name"] == "debian:6.1.0-50" && p["arch"] == arch)
            .unwrap_or_else(|| panic!("no debian:6.1.0-50 for {arch} in {out}"));
        assert_eq!(p["upstream"], "6.1.176");
        assert_eq!(p["version"], "6.1.176-1");
        assert_eq!(p["dbg"], true);
        assert_eq!(p["headers"], true);
        assert!(all
            .iter()
            .any(|p| p["upstream"].as_str().unwrap().starts_with("6.12.") && p["arch"] == arch));
    }
    let (text, _) = Test::new()
        .args(&["kernel", "list", "--available", "--arch", "aarch64"])
        .run();
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.split_whitespace().nth(1) == Some("aarch64")),
        "{text}"
    );
    assert!(text.contains("debian:6.1.0-48          aarch64  6.1.172   6.1.172-1            -    -       linux-image-6.1.0-48-cloud-arm64\n"), "{text}");
}

#[test]
fn a_debian_kernel_the_archive_lacks_is_an_infra_error_naming_the_closest() {
    let (out, _) = Test::new()
        .with_repo_scenarios()
        .args(&["run", "smoke-oops", "--kernel", "debian:4.19.90", "--json"])
        .status(125)
        .run();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "infra-error");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("the Debian archive has no cloud kernel `debian:4.19.90` for x86_64; the closest it has: debian:6.1.0-47 (6.1.170)"),
        "{reason}"
    );
    Test::new()
        .with_repo_scenarios()
        .args(&["run", "smoke-oops", "--kernel", "debian:6.1.x"])
        .status(128)
        .run();
}
