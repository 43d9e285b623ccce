use super::*;
use repro_oops::Frame;

fn report(title: &str, kind: CrashKind, frames: &[&str]) -> Report {
    Report {
        title: title.into(),
        kind,
        start: 0,
        end: 1,
        text: String::new(),
        frames: frames
            .iter()
            .map(|f| Frame {
                function: f.to_string(),
                offset: None,
                size: None,
                module: None,
                reliable: true,
                source: Vec::new(),
            })
            .collect(),
        faulting_function: None,
        faulting_frame: None,
        release: None,
        taint: None,
        comm: None,
        pid: None,
        cpu: None,
        corrupted: false,
    }
}

fn expect_title(t: &str) -> Expect {
    Expect {
        title: Some(t.into()),
        ..Default::default()
    }
}

/// An infrastructure failure whose text ends with `why`.
fn infra_error(why: &str) -> std::sync::Arc<InfraError> {
    std::sync::Arc::new(InfraError::Prepare {
        node: "guest".into(),
        source: why.into(),
    })
}

fn observed(crashes: Vec<Report>, workload: WorkloadOutcome, infra: Option<&str>) -> Observed {
    Observed {
        crashes,
        suspect: Vec::new(),
        workload,
        infra: infra.map(infra_error),
        interrupted: false,
        guest_panicked: false,
        marker_line: None,
        power_cut: None,
    }
}

const NFS: &str = "BUG: kernel NULL pointer dereference in nfs_updatepage";

#[test]
fn matching_crash_is_reproduced_even_after_infra_trouble() {
    let o = observed(
        vec![report(NFS, CrashKind::NullDeref, &["nfs_updatepage"])],
        WorkloadOutcome::Lost { why: "eof".into() },
        Some("QEMU exited"),
    );
    let d = decide(&expect_title(NFS), &o);
    assert_eq!(d.verdict, Verdict::Reproduced);
    assert_eq!(d.crash, Some(0));
    assert_eq!(d.verdict.exit_code(), 1);
}

#[test]
fn other_crash_is_crashed_differently_never_reproduced() {
    let o = observed(
        vec![report("WARNING in free_client", CrashKind::Warning, &[])],
        WorkloadOutcome::Passed { iterations: 1 },
        None,
    );
    let d = decide(&expect_title(NFS), &o);
    assert_eq!(d.verdict, Verdict::CrashedDifferently);
    assert_eq!(d.verdict.exit_code(), 125);
}

#[test]
fn fatal_crash_is_preferred_as_the_story() {
    let o = observed(
        vec![
            report("WARNING in free_client", CrashKind::Warning, &[]),
            report(
                "BUG: kernel NULL pointer dereference in __queue_work",
                CrashKind::NullDeref,
                &[],
            ),
        ],
        WorkloadOutcome::Interrupted,
        None,
    );
    let d = decide(&expect_title(NFS), &o);
    assert_eq!((d.verdict, d.crash), (Verdict::CrashedDifferently, Some(1)));
}

#[test]
fn any_crash_counts_without_an_expectation() {
    let o = observed(
        vec![report("kernel panic: sysrq triggered crash", CrashKind::Panic, &[])],
        WorkloadOutcome::Interrupted,
        None,
    );
    assert_eq!(decide(&Expect::default(), &o).verdict, Verdict::Reproduced);
}

#[test]
fn frames_must_all_appear() {
    let e = Expect {
        frames: vec!["nfs_updatepage".into(), "nfs_write_end".into()],
        ..Default::default()
    };
    assert!(matches(
        &e,
        &report(
            NFS,
            CrashKind::NullDeref,
            &["do_raw_spin_lock", "nfs_updatepage.isra.0", "nfs_write_end"]
        )
    ));
    assert!(!matches(&e, &report(NFS, CrashKind::NullDeref, &["nfs_updatepage"])));
}

#[test]
fn regex_expectation() {
    let e = Expect {
        title_regex: Some(regex::Regex::new("NULL pointer dereference in nfs_").unwrap()),
        ..Default::default()
    };
    assert!(matches(&e, &report(NFS, CrashKind::NullDeref, &[])));
    assert!(!matches(
        &e,
        &report("WARNING in iomap_page_mkwrite", CrashKind::Warning, &[])
    ));
}

#[test]
fn infra_failures_are_never_not_reproduced() {
    let cases = [
        observed(vec![], WorkloadOutcome::NotRun, Some("SSH did not come up within 90s")),
        observed(vec![], WorkloadOutcome::TimedOut { after_secs: 60 }, None),
        observed(
            vec![],
            WorkloadOutcome::Lost {
                why: "connection reset".into(),
            },
            None,
        ),
        observed(
            vec![],
            WorkloadOutcome::CouldNotStart {
                why: "upload failed".into(),
            },
            None,
        ),
        observed(
            vec![],
            WorkloadOutcome::Failed {
                iteration: 2,
                status: 1,
                stderr_tail: "x".into(),
            },
            None,
        ),
        observed(vec![], WorkloadOutcome::Interrupted, None),
        observed(vec![], WorkloadOutcome::Passed { iterations: 3 }, Some("interrupted")),
        Observed {
            interrupted: true,
            ..observed(vec![], WorkloadOutcome::Passed { iterations: 3 }, None)
        },
    ];
    for o in cases {
        let d = decide(&expect_title(NFS), &o);
        assert_eq!(d.verdict, Verdict::InfraError, "{o:?}");
        assert_eq!(d.verdict.exit_code(), 125);
    }
}

#[test]
fn panic_without_parsed_report_is_not_trusted() {
    let mut o = observed(vec![], WorkloadOutcome::Interrupted, None);
    o.guest_panicked = true;
    assert_eq!(decide(&Expect::default(), &o).verdict, Verdict::InfraError);
}

#[test]
fn clean_run_is_not_reproduced() {
    let d = decide(
        &expect_title(NFS),
        &observed(vec![], WorkloadOutcome::Passed { iterations: 3 }, None),
    );
    assert_eq!(d.verdict, Verdict::NotReproduced);
    assert_eq!(
        d.reason,
        "3 workload iteration(s) completed with no crash on the console"
    );
    assert_eq!(d.verdict.exit_code(), 0);
}

#[test]
fn warnings_do_not_end_the_run_unless_expected() {
    let w = report("WARNING in free_client", CrashKind::Warning, &[]);
    assert!(!ends_run(&expect_title(NFS), &w));
    assert!(ends_run(&expect_title("WARNING in free_client"), &w));
    assert!(ends_run(
        &expect_title("WARNING in free_client"),
        &report(NFS, CrashKind::NullDeref, &[])
    ));
}

#[test]
fn ignored_splats_are_per_arch_and_never_hide_the_expected_crash() {
    use crate::arch::Arch;
    use crate::scenario::Ignore;
    let e = Expect {
        title_regex: Some(regex::Regex::new("in __queue_work$").unwrap()),
        ignore: vec![
            Ignore {
                title_regex: regex::Regex::new("^WARNING in free_client$").unwrap(),
                arch: None,
            },
            Ignore {
                title_regex: regex::Regex::new("__queue_work").unwrap(),
                arch: Some(Arch::Aarch64),
            },
        ],
        ..Default::default()
    };
    let warn = report("WARNING in free_client", CrashKind::Warning, &[]);
    assert!(ignored(&e, &warn, Arch::X86_64));
    assert!(ignored(&e, &warn, Arch::Aarch64));
    // The second rule would match the expected crash itself: the expectation wins.
    let bug = report(
        "BUG: kernel NULL pointer dereference in __queue_work",
        CrashKind::NullDeref,
        &[],
    );
    assert!(!ignored(&e, &bug, Arch::Aarch64));
    let other = report("WARNING in other", CrashKind::Warning, &[]);
    assert!(!ignored(&e, &other, Arch::X86_64));
}

#[test]
fn data_signals_reproduce_but_other_exit_codes_stay_infra() {
    let e = Expect {
        marker: Some("DATA MISMATCH".into()),
        exit_status: Some(3),
        ..Default::default()
    };
    let mut o = observed(vec![], WorkloadOutcome::Passed { iterations: 1 }, None);
    o.marker_line = Some("DATA MISMATCH: 0 of 65536 bytes survived\n".into());
    let d = decide(&e, &o);
    assert_eq!(d.verdict, Verdict::Reproduced);
    assert!(d.reason.contains("0 of 65536 bytes survived"), "{}", d.reason);

    let failed = |status| WorkloadOutcome::Failed {
        iteration: 0,
        status,
        stderr_tail: String::new(),
    };
    assert_eq!(
        decide(&e, &observed(vec![], failed(3), None)).verdict,
        Verdict::Reproduced
    );
    assert_eq!(
        decide(&e, &observed(vec![], failed(1), None)).verdict,
        Verdict::InfraError
    );
    // An unexpected fatal crash first: the data check proves nothing.
    let mut o = observed(
        vec![report(
            "general protection fault in foo",
            CrashKind::GeneralProtection,
            &[],
        )],
        failed(3),
        None,
    );
    o.marker_line = Some("DATA MISMATCH".into());
    assert_eq!(decide(&e, &o).verdict, Verdict::CrashedDifferently);
}

#[test]
fn an_inlined_function_from_debug_info_counts_as_a_frame() {
    let e = Expect {
        frames: vec!["nfs_inode_add_request".into(), "nfs_updatepage".into()],
        ..Default::default()
    };
    let mut r = report(NFS, CrashKind::NullDeref, &["nfs_updatepage", "nfs_write_end"]);
    assert!(!matches(&e, &r), "not in the printed trace");
    r.frames[0].source = vec![
        repro_oops::SourceLoc {
            function: "nfs_inode_add_request".into(),
            file: Some("fs/nfs/write.c".into()),
            line: Some(822),
            inlined: true,
        },
        repro_oops::SourceLoc {
            function: "nfs_updatepage".into(),
            file: Some("fs/nfs/write.c".into()),
            line: Some(1443),
            inlined: false,
        },
    ];
    assert!(matches(&e, &r));
}

#[test]
fn after_a_power_cut_the_check_decides_and_its_failure_is_never_not_reproduced() {
    let data = Expect {
        marker: Some("INTEGRITY FAILURE".into()),
        exit_status: Some(3),
        ..Default::default()
    };
    let cut = |at: Option<&str>, check: WorkloadOutcome| {
        let mut o = observed(vec![], WorkloadOutcome::Interrupted, None);
        o.power_cut = Some(PowerCutObserved {
            at_marker: at.map(str::to_string),
            check,
            marker_line: None,
        });
        o
    };
    // The check passed: not reproduced, and the reason says where the power was cut.
    let d = decide(
        &data,
        &cut(Some("msync done"), WorkloadOutcome::Passed { iterations: 1 }),
    );
    assert_eq!(d.verdict, Verdict::NotReproduced);
    assert!(
        d.reason.contains("when the workload printed `msync done`;"),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("the check passed"), "{}", d.reason);

    // The check's marker line reproduces, and the reason says it was the check's.
    let mut o = cut(None, WorkloadOutcome::Passed { iterations: 1 });
    o.workload = WorkloadOutcome::Passed { iterations: 2 };
    if let Some(pc) = o.power_cut.as_mut() {
        pc.marker_line = Some("INTEGRITY FAILURE: 0 of 65536 bytes".into());
    }
    let d = decide(&data, &o);
    assert_eq!(d.verdict, Verdict::Reproduced);
    assert!(
        d.reason.starts_with("the check after the power cut printed"),
        "{}",
        d.reason
    );

    // The check's exit status counts as the workload's would.
    let failed = |status| WorkloadOutcome::Failed {
        iteration: 0,
        status,
        stderr_tail: "mount: wrong fs type".into(),
    };
    let d = decide(&data, &cut(None, failed(3)));
    assert_eq!(d.verdict, Verdict::Reproduced);
    assert!(
        d.reason.starts_with("the check after the power cut exited 3"),
        "{}",
        d.reason
    );

    // Any other failure of the check is infrastructure, with the check's own words.
    let d = decide(&data, &cut(None, failed(32)));
    assert_eq!(d.verdict, Verdict::InfraError);
    assert!(
        d.reason.contains("after the reboot the check exited with status 32") && d.reason.contains("wrong fs type"),
        "{}",
        d.reason
    );
    for check in [
        WorkloadOutcome::TimedOut { after_secs: 60 },
        WorkloadOutcome::Lost { why: "eof".into() },
        WorkloadOutcome::CouldNotStart { why: "no ssh".into() },
        WorkloadOutcome::NotRun,
    ] {
        assert_eq!(decide(&data, &cut(None, check)).verdict, Verdict::InfraError);
    }

    // A fatal crash after the reboot is still the story.
    let mut o = cut(None, WorkloadOutcome::Passed { iterations: 1 });
    o.crashes.push(report(
        "BUG: kernel NULL pointer dereference in xlog_recover",
        CrashKind::NullDeref,
        &[],
    ));
    assert_eq!(decide(&data, &o).verdict, Verdict::CrashedDifferently);

    // An infrastructure failure (the node never came back) wins over the check.
    let mut o = cut(None, WorkloadOutcome::NotRun);
    o.infra = Some(infra_error("SSH did not come back after the power cut"));
    let d = decide(&data, &o);
    assert_eq!(d.verdict, Verdict::InfraError);
    assert!(d.reason.contains("did not come back"));
}

#[test]
fn the_expected_stall_on_an_overloaded_host_is_no_verdict_and_other_stalls_are_no_crash() {
    const HUNG: &str = "INFO: task hung in mnt_want_write";
    let stall = report(HUNG, CrashKind::HungTask, &["mnt_want_write"]);
    let why = "the host was overloaded (load 19.5 on 2 cores)".to_string();
    let mut o = observed(vec![], WorkloadOutcome::Passed { iterations: 1 }, None);
    o.suspect = vec![(stall, why)];
    let d = decide(&expect_title(HUNG), &o);
    assert_eq!(d.verdict, Verdict::InfraError, "{}", d.reason);
    assert!(
        d.reason.contains("overloaded") && d.reason.contains(HUNG),
        "{}",
        d.reason
    );
    // A stall nobody expected, on a starved host, is not a crash: the workload's result stands.
    let d = decide(&expect_title(NFS), &o);
    assert_eq!(d.verdict, Verdict::NotReproduced, "{}", d.reason);
}
