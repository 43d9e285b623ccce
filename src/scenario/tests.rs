use super::*;

const KERNELS: &[&str] = &["debian-6.1-cloud", "local-6.1"];
const IMAGES: &[&str] = &["debian-bookworm"];

fn parse(src: &str) -> Result<Scenario, Error> {
    let k: Vec<String> = KERNELS.iter().map(|s| s.to_string()).collect();
    let i: Vec<String> = IMAGES.iter().map(|s| s.to_string()).collect();
    Scenario::parse(Path::new("scenarios/t.toml"), src, &k, &i)
}

fn err(src: &str) -> String {
    match parse(src) {
        Err(Error::Invalid(d)) => d.to_string(),
        other => panic!("expected a diagnostic, got {other:?}"),
    }
}

const MINIMAL: &str = "summary = \"s\"\nkernel = \"debian-6.1-cloud\"\narch = \"aarch64\"\nimage = \"debian-bookworm\"\n[workload]\nscript = \"true\"\n";

#[test]
fn minimal_scenario_gets_defaults() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.name, "t");
    assert_eq!(
        s.nodes,
        vec![Node {
            name: "guest".into(),
            kernel: "debian-6.1-cloud".into(),
            arch: Arch::Aarch64,
            cpus: 2,
            memory_mib: 1024
        }]
    );
    assert_eq!(s.workload.timeout, Duration::from_secs(300));
    assert_eq!((s.workload.iterations, s.workload.parallel), (1, 1));
    assert!(s.expect.is_any());
}

#[test]
fn nodes_inherit_and_override() {
    let src = format!("{MINIMAL}[vm]\ncpus = 4\nmemory = \"2G\"\n[[nodes]]\nname = \"server\"\n[[nodes]]\nname = \"client\"\nkernel = \"local-6.1\"\narch = \"x86_64\"\ncpus = 1\n");
    let src = src.replace("script = \"true\"\n", "script = \"true\"\nnode = \"client\"\n");
    let s = parse(&src).unwrap();
    assert_eq!(
        s.nodes[0],
        Node {
            name: "server".into(),
            kernel: "debian-6.1-cloud".into(),
            arch: Arch::Aarch64,
            cpus: 4,
            memory_mib: 2048
        }
    );
    assert_eq!(
        s.nodes[1],
        Node {
            name: "client".into(),
            kernel: "local-6.1".into(),
            arch: Arch::X86_64,
            cpus: 1,
            memory_mib: 2048
        }
    );
    assert_eq!(s.workload.node, 1);
}

#[test]
fn overrides_apply_to_every_node() {
    let mut s = parse(MINIMAL).unwrap();
    s.apply(&Overrides {
        kernel: Some("local-6.1".into()),
        arch: Some(Arch::X86_64),
    });
    assert_eq!(s.nodes[0].kernel, "local-6.1");
    assert_eq!(s.nodes[0].arch, Arch::X86_64);
}

#[test]
fn wrong_arch_is_pointed_at() {
    assert_eq!(
        err(&MINIMAL.replace("\"aarch64\"", "\"sparc\"")),
        "scenarios/t.toml:3:8: key `arch`: unknown variant `sparc`, expected `x86_64` or `aarch64`\n  |\n3 | arch = \"sparc\"\n  |        ^^^^^^^"
    );
}

#[test]
fn missing_key_names_it() {
    assert_eq!(
        err(&MINIMAL.replace("image = \"debian-bookworm\"\n", "")),
        "scenarios/t.toml:1:1: missing field `image`\n  |\n1 | summary = \"s\"\n  | ^^^^^^^^^^^^^"
    );
}

#[test]
fn zero_iterations_rejected() {
    assert_eq!(
        err(&format!("{MINIMAL}iterations = 0\n")),
        "scenarios/t.toml:7:14: key `workload.iterations`: must be at least 1\n  |\n7 | iterations = 0\n  |              ^"
    );
}

#[test]
fn cpus_out_of_range() {
    assert_eq!(
        err(&format!("{MINIMAL}[vm]\ncpus = 0\n")),
        "scenarios/t.toml:8:8: key `vm.cpus`: cpus must be between 1 and 64, got 0\n  |\n8 | cpus = 0\n  |        ^"
    );
}

#[test]
fn workload_on_unknown_node() {
    assert_eq!(
        err(&format!("{MINIMAL}node = \"nfs\"\n")),
        "scenarios/t.toml:7:8: key `workload.node`: no node named `nfs`\n  |\n7 | node = \"nfs\"\n  |        ^^^^^"
    );
}

#[test]
fn duplicate_node_names() {
    let e = err(&format!("{MINIMAL}[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"a\"\n"));
    assert!(
        e.starts_with("scenarios/t.toml:10:8: key `nodes[1].name`: duplicate node name `a`"),
        "{e}"
    );
}

#[test]
fn bad_regex_is_pointed_at() {
    let e = err(&format!("{MINIMAL}[expect]\ntitle_regex = \"in (nfs\"\n"));
    assert!(
        e.starts_with("scenarios/t.toml:8:15: key `expect.title_regex`: invalid regex: "),
        "{e}"
    );
}

#[test]
fn unsupported_schema() {
    assert_eq!(
        err(&format!("schema = 2\n{MINIMAL}")),
        "scenarios/t.toml:1:10: key `schema`: unsupported schema version 2, this repro reads version 1\n  |\n1 | schema = 2\n  |          ^"
    );
}

#[test]
fn resolve_takes_names_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "").unwrap();
    assert_eq!(resolve(dir.path(), "a").unwrap(), dir.path().join("a.toml"));
    assert_eq!(resolve(dir.path(), "x/b.toml").unwrap(), PathBuf::from("x/b.toml"));
    assert!(matches!(resolve(dir.path(), "b"), Err(Error::NotFound { .. })));
}
