use super::*;
use crate::arch::Arch;
use crate::def::diag::Diagnostic;
use crate::def::patch::{PatchStep, RevertTarget};
use std::path::{Path, PathBuf};
use std::time::Duration;

const KERNELS: &[&str] = &["debian-6.1-cloud", "local-6.1"];
const IMAGES: &[&str] = &["debian-bookworm"];

fn parse(src: &str) -> Result<Scenario, Diagnostic> {
    let k: Vec<String> = KERNELS.iter().map(|s| s.to_string()).collect();
    let i: Vec<String> = IMAGES.iter().map(|s| s.to_string()).collect();
    super::parse(Path::new("scenarios/t.toml"), src, &k, &i)
}

fn err(src: &str) -> String {
    match parse(src) {
        Err(d) => d.to_string(),
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
        ..Default::default()
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
fn faults_need_a_trigger_and_link_faults_need_two_nodes() {
    let e = err(&format!("{MINIMAL}[[faults]]\naction = \"stop\"\n"));
    assert!(
        e.starts_with("scenarios/t.toml:7:1: key `faults[0]`: a fault needs exactly one of `at`"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[[faults]]\naction = \"link-down\"\nat = \"3s\"\n"));
    assert!(
        e.starts_with("scenarios/t.toml:8:10: key `faults[0].action`: link faults need a second node"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[[faults]]\naction = \"unplug\"\nat = \"3s\"\n"));
    assert!(e.contains("unknown action `unplug`"), "{e}");
    let s = parse(&format!("{MINIMAL}[[faults]]\naction = \"stop\"\nmarker = \"GO\"\n")).unwrap();
    assert_eq!(
        s.faults,
        vec![Fault {
            node: 0,
            action: FaultAction::Stop,
            when: FaultWhen::Marker("GO".into())
        }]
    );
}

#[test]
fn nfs_clients_must_use_a_served_version_and_xfs_needs_300m() {
    let e = err(&format!(
        "{MINIMAL}[nfs]\nversions = [\"4.1\"]\n[[nfs.clients]]\nversion = \"3\"\n"
    ));
    assert!(
        e.contains("key `nfs.clients[0].version`: the server does not serve version `3` (it serves 4.1)"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[nfs]\nfs = \"xfs\"\nsize = \"100M\"\n"));
    assert!(e.contains("mkfs.xfs refuses filesystems under 300 MiB"), "{e}");
    let e = err(&format!("{MINIMAL}[nfs]\nserver = \"nobody\"\n"));
    assert!(e.contains("key `nfs.server`: no node named `nobody`"), "{e}");
}

#[test]
fn patch_sets_resolve_paths_against_the_scenario() {
    let s = parse(&format!(
        "{MINIMAL}[patchsets.fix]\nsummary = \"f\"\npatch = [{{ revert = \"../kernels/patches/x.patch\" }}, {{ cherry_pick = \"abc\" }}]\n"
    ))
    .unwrap();
    let set = &s.patchsets["fix"];
    assert_eq!(
        set.steps,
        vec![
            PatchStep::Revert(RevertTarget::Patch(PathBuf::from(
                "scenarios/../kernels/patches/x.patch"
            ))),
            PatchStep::CherryPick("abc".into())
        ]
    );
    let mut s = s;
    assert!(s.select_set("fix").is_ok());
    assert_eq!(
        s.select_set("nope").unwrap_err(),
        "scenario `t` has no patch set `nope`; it defines: fix"
    );
}

#[test]
fn a_module_source_that_does_not_exist_names_the_key() {
    let s = parse(&format!(
        "{MINIMAL}[[module]]\nname = \"m\"\nsource = \"no/such/dir\"\n"
    ))
    .unwrap();
    assert_eq!(s.needs_dirs.len(), 1);
    assert_eq!(s.needs_dirs[0].path, PathBuf::from("scenarios/no/such/dir"));
    // The loader finds it missing and gives the diagnostic the parser made.
    let e = crate::def::load::check(&s.needs_dirs).unwrap_err().to_string();
    assert!(
        e.contains("scenarios/t.toml:9") && e.contains("module[0].source"),
        "{e}"
    );
    assert!(e.contains("is not a directory"), "{e}");
    let e = err(&format!("{MINIMAL}[[module]]\nname = \"a b\"\nsource = \".\"\n"));
    assert!(e.contains("module[0].name"), "{e}");
}

#[test]
fn vars_are_declared_set_and_exported_quoted() {
    let e = err(&format!("{MINIMAL}[vars]\n1X = \"a\"\n"));
    assert!(e.contains("vars.1X"), "{e}");
    let mut s = parse(&format!("{MINIMAL}[vars]\nMODE = \"null\"\n")).unwrap();
    assert!(s.set_var("OTHER=1").unwrap_err().contains("declares: MODE"));
    assert!(s.set_var("MODE").is_err());
    s.set_var("MODE=it's").unwrap();
    let s = s.with_vars_exported();
    assert!(
        s.workload.script.starts_with("export MODE='it'\\''s'\n"),
        "{}",
        s.workload.script
    );
}

#[test]
fn snapshot_restore_is_checked_against_what_it_cannot_restore() {
    let w = MINIMAL.replace("script = \"true\"", "script = \"true\"\nrestore = \"snapshot\"");
    assert!(parse(&w).unwrap().workload.restore_snapshot);
    let e = err(&w.replace("restore = \"snapshot\"", "restore = \"snapshot\"\nparallel = 2"));
    assert!(e.contains("workload.restore") && e.contains("parallel"), "{e}");
    let e = err(&format!("{w}[[disks]]\nname = \"d\"\nsize = \"64M\"\n"));
    assert!(e.contains("qcow2"), "{e}");
    let e = err(&w.replace("\"snapshot\"", "\"reboot\""));
    assert!(e.contains("unknown restore `reboot`"), "{e}");
}

#[test]
fn a_power_cut_gets_a_one_shot_check_and_refuses_what_it_cannot_mount_again() {
    let pc = format!(
        "{MINIMAL}[vars]\nN = \"1\"\n[power_cut]\nmarker = \"ready\"\nscript = \"test -e /mnt/x\"\ntimeout = \"45s\"\n"
    );
    let s = parse(&pc).unwrap().with_vars_exported();
    let cut = s.power_cut.as_ref().unwrap();
    assert_eq!(cut.marker.as_deref(), Some("ready"));
    assert_eq!((cut.check.iterations, cut.check.parallel, cut.check.node), (1, 1, 0));
    assert_eq!(cut.check.timeout, Duration::from_secs(45));
    assert_eq!(cut.check.script, "export N='1'\ntest -e /mnt/x");
    assert_eq!(parse(MINIMAL).unwrap().power_cut, None);

    let e = err(&pc.replace("script = \"true\"", "script = \"true\"\nrestore = \"snapshot\""));
    assert!(e.starts_with("scenarios/t.toml:10:1: key `power_cut`"), "{e}");
    assert!(e.contains("snapshot"), "{e}");
    let e = err(&pc.replace("marker = \"ready\"", "marker = \"\""));
    assert!(e.contains("key `power_cut`") && e.contains("empty `marker`"), "{e}");
    let e = err(&format!(
        "{pc}[nfs]\nfs = \"tmpfs\"\n[[nfs.clients]]\nversion = \"4.2\"\n"
    ));
    assert!(e.contains("key `power_cut`") && e.contains("NFS"), "{e}");
    let e = err(&pc.replace("timeout = \"45s\"", "timout = \"45s\""));
    assert!(e.contains("unknown field `timout`"), "{e}");
}

#[test]
fn pmem_is_accepted_on_aarch64() {
    let s = parse(&format!("{MINIMAL}[[pmem]]\nname = \"pm\"\nsize = \"1026M\"\n")).unwrap();
    assert_eq!(s.nodes[0].arch, Arch::Aarch64);
    assert_eq!(s.pmem.len(), 1);
}
