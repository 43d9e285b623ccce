use crate::fixture::Test;

#[test]
fn kernel_list_names_and_kinds() {
    Test::new()
        .args(&["kernel", "list"])
        .stdout("debian-6.1-cloud         debian  x86_64,aarch64  Debian bookworm 6.1 cloud kernel (linux-image-6.1.0-*-cloud-amd64 / -arm64)\n")
        .run();
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
    assert_eq!(names, vec![("debian-6.1-cloud", "debian"), ("mine", "local")]);
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
