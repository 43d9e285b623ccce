//! Every crash log in the parser's corpus (the seeds' crash text, our own guests' consoles, and
//! the public logs) drafted into a scenario that checks, and whose `[expect]` matches the log's
//! own report.

use super::*;
use crate::run::verdict::matches;
use std::path::{Path, PathBuf};

fn archive() -> Vec<Package> {
    let names: Vec<&str> = include_str!("../archive/apt-cache-search.txt").lines().collect();
    archive::parse_show(include_str!("../archive/apt-cache-show.txt"), &names)
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/oops/tests/data");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "paste"))
        .collect();
    v.sort();
    v
}

struct Drafted {
    draft: Result<Draft, Error>,
    reports: Vec<Report>,
}

fn draft_of(path: &Path, kernel: Option<&str>, archive: &[Package]) -> Drafted {
    draft_on(path, kernel, None, archive)
}

fn draft_on(path: &Path, kernel: Option<&str>, arch: Option<Arch>, archive: &[Package]) -> Drafted {
    let bytes = std::fs::read(path).unwrap();
    let log = String::from_utf8_lossy(&bytes).into_owned();
    let reports = repro_oops::parse_any(&bytes);
    let name = path.display().to_string();
    let input = Input {
        name: "drafted",
        log_name: &name,
        log: &log,
        reports: &reports,
        kernel,
        arch,
        archive,
        image: "debian-bookworm",
    };
    Drafted {
        draft: draft(&input),
        reports,
    }
}

fn scenario(toml: &str) -> crate::scenario::Scenario {
    let kernels = vec!["linux-6.1".to_string()];
    let images = vec!["debian-bookworm".to_string()];
    crate::scenario::parse(Path::new("scenarios/drafted.toml"), toml, &kernels, &images)
        .unwrap_or_else(|d| panic!("{d}\n{toml}"))
}

#[test]
fn every_crash_log_in_the_corpus_round_trips_into_a_scenario_that_expects_it() {
    let archive = archive();
    let mut drafted = 0;
    for path in corpus() {
        let mut d = draft_of(&path, None, &archive);
        if d.reports.is_empty() {
            assert!(matches!(d.draft, Err(Error::NoCrash { .. })), "{}", path.display());
            continue;
        }
        // Logs from kernels the archive lacks (vendor 4.19 and 5.4, syzbot's) need --kernel.
        if let Err(Error::NotInArchive { .. } | Error::NoRelease { .. }) = &d.draft {
            d = draft_of(&path, Some("linux-6.1"), &archive);
        }
        // A report that prints nothing arch-specific (a reboot's banner) needs --arch: the
        // fixture's name says it.
        if let Err(Error::NoArch { .. }) = &d.draft {
            let name = path.file_name().unwrap().to_string_lossy();
            let arch = if name.contains("-arm64-") {
                Arch::Aarch64
            } else {
                Arch::X86_64
            };
            d = draft_on(&path, Some("linux-6.1"), Some(arch), &archive);
        }
        let draft = d.draft.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let s = scenario(&draft.toml);
        let first = &d.reports[0];
        assert!(
            matches(&s.expect, first),
            "{}: {:?} does not match {}",
            path.display(),
            s.expect,
            first.title
        );
        assert_eq!(s.expect.title.as_deref(), Some(first.title.as_str()));
        assert!(s.workload.placeholder.is_some(), "{}", path.display());
        assert_eq!(s.nodes[0].arch, draft.arch);
        // Unreliable frames (`? foo`) count only when the unwinder marked every frame so.
        let all_unreliable = first.frames.iter().all(|f| !f.reliable);
        if first
            .frames
            .iter()
            .any(|f| (f.reliable || all_unreliable) && !is_generic(base(&f.function)))
        {
            assert!(!s.expect.frames.is_empty(), "{}: no frames", path.display());
        }
        drafted += 1;
    }
    assert!(drafted >= 40, "only {drafted} logs drafted");
}

#[test]
fn a_debian_log_pins_its_own_package_and_arch() {
    let archive = archive();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/oops/tests/data");
    let d = draft_of(&data.join("real-qemu-6.1-x86-sysrq.log"), None, &archive)
        .draft
        .unwrap();
    assert_eq!((d.kernel.as_str(), d.arch), ("debian:6.1.0-56", Arch::X86_64));
    assert!(
        d.toml.contains("kernel = \"debian:6.1.0-56\"\narch = \"x86_64\""),
        "{}",
        d.toml
    );
    assert!(
        d.notes[0].contains("linux-image-6.1.0-56-cloud-amd64 6.1.192-2"),
        "{:?}",
        d.notes
    );
    let d = draft_of(&data.join("real-qemu-6.1-arm64-module-null.log"), None, &archive)
        .draft
        .unwrap();
    assert_eq!(d.arch, Arch::Aarch64);
    assert!(d.kernel.starts_with("debian:6.1.0-5"), "{}", d.kernel);
}

#[test]
fn a_log_from_a_kernel_the_archive_lacks_names_the_closest_packages() {
    let archive = archive();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/oops/tests/data");
    let e = draft_of(&data.join("seed001-4.19-arm64-crash-log.log"), None, &archive)
        .draft
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("is not in the Debian archive; the closest cloud kernels it has: debian:6.1.0-44 (6.1.164)"),
        "{text}"
    );
    assert!(text.contains("Pass --kernel"), "{text}");
}

fn kinds(path: &str) -> Vec<Storage> {
    let archive = archive();
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/oops/tests/data")
        .join(path);
    let d = draft_of(&p, Some("linux-6.1"), &archive);
    guess_storage(&d.reports[0]).iter().map(|g| g.kind).collect()
}

#[test]
fn the_storage_setup_is_guessed_from_the_frames() {
    assert_eq!(kinds("seed000-4.19-x86-nfs-null-deref.log"), [Storage::NfsClient]);
    assert_eq!(kinds("seed001-6.1-arm64-null-deref.log"), [Storage::NfsServer]);
    // Seed 002 is an XFS bug, but its trace is the VFS path walk's: nothing to guess from.
    assert_eq!(kinds("seed002-6.1-x86-pick-link.log"), []);
    assert_eq!(kinds("arm64-6.1-xfs-bug-on.log"), [Storage::Xfs]);
    assert_eq!(kinds("seed003-6.1-x86-iomap-warning.log"), [Storage::Xfs]);
    assert_eq!(kinds("seed004-6.1-x86-dax-warning.log"), [Storage::Dax]);
    assert_eq!(kinds("sysrq-6.1-x86-panic.log"), []);
}

#[test]
fn each_guess_renders_a_setup_the_scenario_parser_accepts() {
    let g = |kind, f: &str| Guess {
        kind,
        frames: vec![f.to_string()],
    };
    let cases: Vec<Vec<Guess>> = vec![
        vec![g(Storage::NfsClient, "nfs_updatepage")],
        vec![g(Storage::NfsServer, "nfsd4_open"), g(Storage::Xfs, "xfs_iget")],
        vec![g(Storage::Xfs, "xfs_iget")],
        vec![g(Storage::Ext4, "ext4_writepages")],
        vec![g(Storage::Dax, "dax_iomap_pte_fault")],
        vec![g(Storage::Dm, "dm_submit_bio")],
        vec![g(Storage::Dm, "dm_submit_bio"), g(Storage::Ext4, "ext4_writepages")],
    ];
    for storage in cases {
        let body = render_storage(&storage);
        let toml = format!(
            "summary = \"x\"\nkernel = \"linux-6.1\"\narch = \"x86_64\"\nimage = \"debian-bookworm\"\n{body}[workload]\nscript = \"true\"\n"
        );
        let s = scenario(&toml);
        let has_nfs = storage
            .iter()
            .any(|g| matches!(g.kind, Storage::NfsClient | Storage::NfsServer));
        assert_eq!(s.nfs_server.is_some(), has_nfs, "{toml}");
        for guess in &storage {
            assert!(body.contains(&format!("# Guessed from {}:", guess.frames[0])), "{body}");
        }
    }
}

#[test]
fn telling_frames_skip_the_glue_and_start_with_the_guilty_function() {
    let archive = archive();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/oops/tests/data");
    let d = draft_of(
        &data.join("seed000-4.19-x86-nfs-null-deref.log"),
        Some("linux-6.1"),
        &archive,
    );
    assert_eq!(
        telling_frames(&d.reports[0]),
        ["nfs_inode_add_request", "nfs_setup_write_request", "nfs_updatepage"]
    );
    let d = draft_of(&data.join("real-qemu-6.1-x86-sysrq.log"), None, &archive);
    assert_eq!(
        telling_frames(&d.reports[0]),
        ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]
    );
}
