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
