//! The run's event handling driven by made-up event sequences: no QEMU, no SSH. Each test feeds
//! events into the run's one event stream, drives a phase's wait, then finishes the run (drain,
//! teardown, verdict, report) as `run` does.

use super::event::{Event, NodeEvent};
use super::guests::Guests;
use super::infra::{InfraError, Source, Stop};
use super::outcome::WorkloadOutcome;
use super::state::{Options, RunState};
use super::verdict::Verdict;
use super::watch::Waiting;
use super::workload::Snapshot;
use super::{assemble, Phase};
use crate::console::ConsoleEvent;
use crate::def::load::Roots;
use crate::report::RunReport;
use crate::scenario::FaultAction;
use crate::vm::qmp;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const MINIMAL: &str = "summary = \"s\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n";

/// Guests that record what the phases asked of them.
#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
    /// Fault actions fail (a wedged QEMU that does not answer).
    faults_fail: bool,
}

impl Fake {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Guests for Fake {
    fn fault(&self, node: usize, action: FaultAction) -> BoxFuture<'_, Result<(), Source>> {
        self.record(format!("fault {node} {action:?}"));
        let fails = self.faults_fail;
        Box::pin(async move {
            match fails {
                true => Err("QMP command `cont` got no answer".into()),
                false => Ok(()),
            }
        })
    }
    fn snapshot(&self, node: usize, op: Snapshot) -> BoxFuture<'_, Result<(), Source>> {
        self.record(format!("snapshot {node} {op:?}"));
        Box::pin(async { Ok(()) })
    }
    fn power_cut(&self, node: usize) -> BoxFuture<'_, Result<(), Source>> {
        self.record(format!("power_cut {node}"));
        Box::pin(async { Ok(()) })
    }
    fn reboot_action(&self, node: usize, reset: bool) -> BoxFuture<'_, Result<(), Source>> {
        self.record(format!("reboot_action {node} {reset}"));
        Box::pin(async { Ok(()) })
    }
    fn ssh_port(&self, _: usize) -> Option<u16> {
        None
    }
    fn agent(&self, _: usize) -> Option<std::sync::Arc<crate::guest::agent::Conn>> {
        None
    }
    fn command_lines(&self) -> Vec<Option<String>> {
        vec![Some("qemu-system-x86_64 (fake)".into())]
    }
    fn dump(&self, node: usize, _: PathBuf) -> BoxFuture<'_, Result<PathBuf, String>> {
        self.record(format!("dump {node}"));
        Box::pin(async { Err("a fake guest has no memory".to_string()) })
    }
    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        self.record("shutdown".into());
        Box::pin(async {})
    }
}

struct Harness {
    state: RunState,
    fake: Fake,
    cancel: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let scenario = crate::scenario::parse(&path, toml, &["k".into()], &["i".into()]).unwrap();
        let (cancel, cancelled) = watch::channel(false);
        let (progress, _) = mpsc::unbounded_channel();
        let mut state = RunState::new(Options {
            scenario,
            roots: Roots::at(dir.path()),
            run_dir: crate::rundir::RunDir::create(&dir.path().join("run")).unwrap(),
            progress,
            cancel: cancelled,
            vmcore: false,
            keep_disks: false,
            gdb: false,
        });
        let fake = Fake::default();
        state.guests = Box::new(fake.clone());
        Harness {
            state,
            fake,
            cancel,
            _dir: dir,
        }
    }

    fn send(&self, event: Event) {
        self.state.watch.sender().send(event).unwrap();
    }

    fn console(&self, node: usize, event: ConsoleEvent) {
        self.send(Event::Node(node, NodeEvent::Console(event)));
    }

    /// A complete crash report, as the console's detector delivers it.
    fn crash(&self, node: usize, log: &str) {
        let at = Instant::now();
        self.console(node, ConsoleEvent::CrashStarted { at });
        let report = repro_oops::parse(log.as_bytes()).remove(0);
        self.console(
            node,
            ConsoleEvent::Crash {
                report: Box::new(report),
                at,
            },
        );
    }

    /// What `run` does after the phases.
    async fn finish(mut self, stopped: Result<(), Stop>) -> (RunReport, Vec<String>) {
        let mut stopped = stopped.err();
        if self.state.drain(stopped.as_ref()).await {
            stopped = Some(Stop::Interrupted);
        }
        self.state.teardown(matches!(stopped, Some(Stop::Interrupted))).await;
        let report = assemble::report(self.state.facts(stopped));
        (report, self.fake.calls())
    }
}

const NULL_DEREF: &str = "[   16.1] BUG: kernel NULL pointer dereference, address: 00000000000000a4\n\
    [   16.1] RIP: 0010:nfs_updatepage+0x2b5/0x960 [nfs]\n\
    [   16.1] ---[ end trace 0000000000000000 ]---\n";
const WARNING: &str = "[    9.0] ------------[ cut here ]------------\n\
    [    9.0] WARNING: CPU: 0 PID: 1 at fs/iomap/buffered-io.c:1 iomap_page_mkwrite+0x1/0x2\n\
    [    9.0] ---[ end trace 0000000000000000 ]---\n";

fn waiting(phase: Phase, secs: u64) -> Waiting {
    Waiting::new(phase, "the test's events", Duration::from_secs(secs))
}

fn listening() -> Vec<Arc<AtomicBool>> {
    vec![Arc::new(AtomicBool::new(false))]
}

fn exited(h: &Harness, code: i32) {
    use std::os::unix::process::ExitStatusExt;
    let status = std::process::ExitStatus::from_raw(code << 8);
    h.send(Event::Node(0, NodeEvent::Exited(Some(status))));
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_boot_beats_the_ssh_timeout() {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    let at = Instant::now();
    h.console(0, ConsoleEvent::CrashStarted { at });
    h.send(Event::Up(0, Err("timed out after 120s".into())));
    let stopped = h.state.await_up(&listening(), &waiting(Phase::Boot, 120)).await;
    assert!(
        matches!(stopped, Err(Stop::Infra(InfraError::NeverUp { .. }))),
        "{stopped:?}"
    );
    // The report completes while the run drains.
    let report = repro_oops::parse(NULL_DEREF.as_bytes()).remove(0);
    h.console(
        0,
        ConsoleEvent::Crash {
            report: Box::new(report),
            at,
        },
    );
    let (report, _) = h.finish(stopped).await;
    assert_eq!(report.verdict, Verdict::Reproduced, "{}", report.reason);
    assert_eq!(
        report.reason,
        "crash matched: BUG: kernel NULL pointer dereference in nfs_updatepage"
    );
    assert!(report.infra.is_none());
}

#[tokio::test(start_paused = true)]
async fn ssh_that_never_comes_up_without_a_crash_is_infra_naming_the_node() {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    h.send(Event::Up(0, Err("connection refused".into())));
    let stopped = h.state.await_up(&listening(), &waiting(Phase::Boot, 120)).await;
    let (report, _) = h.finish(stopped).await;
    assert_eq!(report.verdict, Verdict::InfraError);
    assert!(
        report
            .reason
            .starts_with("node `guest` never answered (repro's agent or SSH): connection refused"),
        "{}",
        report.reason
    );
    assert!(matches!(report.infra.as_deref(), Some(InfraError::NeverUp { .. })));
}

#[tokio::test(start_paused = true)]
async fn qemu_exiting_mid_workload_is_infra_naming_the_phase() {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    exited(&h, 1);
    h.console(0, ConsoleEvent::Eof);
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    let stopped = ended.map(|_| ());
    let (report, _) = h.finish(stopped).await;
    assert_eq!(report.verdict, Verdict::InfraError);
    assert!(
        report
            .reason
            .starts_with("QEMU for node `guest` exited during the workload (exit status: 1)"),
        "{}",
        report.reason
    );
    match report.infra.as_deref() {
        Some(InfraError::QemuExited { phase, node, .. }) => {
            assert_eq!((*phase, node.as_str()), (Phase::Workload, "guest"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn qemu_exiting_during_setup_names_setup() {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    exited(&h, 2);
    let stopped = h.state.await_setup(&waiting(Phase::Setup, 300)).await;
    let (report, _) = h.finish(stopped).await;
    assert!(
        report.reason.starts_with("QEMU for node `guest` exited during setup"),
        "{}",
        report.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_marker_fires_its_fault_once_and_a_timed_fault_fires_at_its_time() {
    let toml = format!(
        "{MINIMAL}[workload]\nscript = \"true\"\n[[faults]]\naction = \"stop\"\nmarker = \"FREEZE\"\n\
         [[faults]]\naction = \"cont\"\nat = \"5s\"\n"
    );
    let mut h = Harness::new(&toml);
    h.send(Event::Marker("FREEZE".into()));
    h.send(Event::Marker("FREEZE".into()));
    h.send(Event::FaultDue(1));
    h.send(Event::WorkloadDone(WorkloadOutcome::Passed { iterations: 1 }));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    assert_eq!(ended.unwrap(), WorkloadOutcome::Passed { iterations: 1 });
    assert_eq!(h.fake.calls(), vec!["fault 0 Stop", "fault 0 Cont"]);
    let log = std::fs::read_to_string(h.state.run_dir.join("faults.log")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.contains("stop on node `guest`: ok"), "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_cannot_be_made_ends_the_run_in_infra_error() {
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n[[faults]]\naction = \"cont\"\nat = \"5s\"\n");
    let mut h = Harness::new(&toml);
    h.fake.faults_fail = true;
    h.state.guests = Box::new(h.fake.clone());
    h.send(Event::FaultDue(0));
    h.send(Event::WorkloadDone(WorkloadOutcome::Passed { iterations: 1 }));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    let Err(Stop::Infra(e)) = ended else {
        panic!("a failed fault must stop the run: {ended:?}")
    };
    let why = crate::errors::chain(&e);
    assert!(
        why.contains("making a scenario fault") && why.contains("`cont` got no answer"),
        "{why}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_power_cut_marker_ends_the_workload_and_the_node_boots_again_for_the_check() {
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n[power_cut]\nmarker = \"ready\"\nscript = \"true\"\n");
    let mut h = Harness::new(&toml);
    h.send(Event::Marker("ready".into()));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    assert_eq!(ended.unwrap(), WorkloadOutcome::Interrupted);
    assert!(h.state.cut_at_marker);
    h.state.workload = WorkloadOutcome::Interrupted;
    h.send(Event::Node(0, NodeEvent::Qmp(qmp::Event::Reset)));
    h.send(Event::CheckUp(1.5));
    h.send(Event::CheckDone(Ok((WorkloadOutcome::Passed { iterations: 1 }, 0.5))));
    let cut = h.state.power_cut().await;
    h.state.halt_all();
    assert!(cut.is_ok(), "{cut:?}");
    let (report, calls) = h.finish(cut).await;
    assert_eq!(calls[..2], ["power_cut 0", "reboot_action 0 false"]);
    assert_eq!(report.verdict, Verdict::NotReproduced, "{}", report.reason);
    assert_eq!(
        report.reason,
        "the power was cut when the workload printed `ready`; after the reboot the check passed, with no crash on the console"
    );
    assert_eq!(report.timings.power_cut_to_ssh, Some(1.5));
}

#[tokio::test(start_paused = true)]
async fn no_reset_after_the_power_cut_is_a_timeout_naming_what_was_waited_for() {
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n[power_cut]\nscript = \"true\"\n");
    let mut h = Harness::new(&toml);
    h.state.workload = WorkloadOutcome::Passed { iterations: 1 };
    let cut = h.state.power_cut().await;
    let (report, _) = h.finish(cut).await;
    assert_eq!(report.verdict, Verdict::InfraError);
    assert!(
        report
            .reason
            .starts_with("timed out after 10.0s waiting for QEMU's RESET after system_reset"),
        "{}",
        report.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_workload_that_never_prints_the_power_cut_marker_is_infra() {
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n[power_cut]\nmarker = \"ready\"\nscript = \"true\"\n");
    let mut h = Harness::new(&toml);
    h.state.workload = WorkloadOutcome::Passed { iterations: 1 };
    let cut = h.state.power_cut().await;
    let (report, calls) = h.finish(cut).await;
    assert_eq!(
        report.reason,
        "the workload finished without printing the power-cut marker `ready`"
    );
    assert!(!calls.iter().any(|c| c.starts_with("power_cut")), "{calls:?}");
}

/// Ctrl-C in a phase's wait: the run stops, the guests are torn down, and the verdict is an
/// infra-error that says so (never a verdict about the kernel).
async fn interrupted_in(phase: Phase) {
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n[power_cut]\nscript = \"true\"\n");
    let mut h = Harness::new(&toml);
    h.cancel.send(true).unwrap();
    let wait = waiting(phase, 300);
    let stopped = match phase {
        Phase::Boot => h.state.await_up(&listening(), &wait).await,
        Phase::Setup => h.state.await_setup(&wait).await,
        Phase::Workload => h.state.watch_workload(&wait, Instant::now()).await.map(|_| ()),
        _ => {
            h.state.workload = WorkloadOutcome::Passed { iterations: 1 };
            h.state.power_cut().await
        }
    };
    assert!(matches!(stopped, Err(Stop::Interrupted)), "{phase:?}: {stopped:?}");
    let (report, calls) = h.finish(stopped).await;
    assert_eq!(report.verdict, Verdict::InfraError, "{phase:?}");
    assert_eq!(report.reason, "interrupted");
    assert!(report.interrupted);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("shutdown"),
        "{phase:?}: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_boot() {
    interrupted_in(Phase::Boot).await;
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_setup() {
    interrupted_in(Phase::Setup).await;
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_the_workload() {
    interrupted_in(Phase::Workload).await;
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_the_power_cut() {
    interrupted_in(Phase::PowerCut).await;
}

#[tokio::test(start_paused = true)]
async fn a_workload_that_outlives_its_timeout_is_a_hung_guest_not_a_pass() {
    let mut h = Harness::new(&format!(
        "{MINIMAL}[workload]\nscript = \"sleep 1d\"\ntimeout = \"30s\"\n"
    ));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 30), Instant::now())
        .await;
    h.state.workload = ended.unwrap();
    let (report, _) = h.finish(Ok(())).await;
    assert_eq!(report.verdict, Verdict::InfraError);
    assert_eq!(
        report.reason,
        "the workload did not finish within 30s and the console shows no crash (hung guest?)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_warning_does_not_end_the_run_but_is_no_pass_either() {
    let mut h = Harness::new(&format!(
        "{MINIMAL}[workload]\nscript = \"true\"\n[expect]\ntitle = \"BUG: kernel NULL pointer dereference in nfs_updatepage\"\n"
    ));
    h.crash(0, WARNING);
    h.send(Event::WorkloadDone(WorkloadOutcome::Passed { iterations: 1 }));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    h.state.workload = ended.unwrap();
    let (report, _) = h.finish(Ok(())).await;
    assert_eq!(report.verdict, Verdict::CrashedDifferently, "{}", report.reason);
    assert_eq!(report.crashes.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_splat_during_setup_lets_the_run_go_on() {
    let mut h = Harness::new(&format!(
        "{MINIMAL}[workload]\nscript = \"true\"\n[expect]\ntitle = \"x\"\n[[expect.ignore]]\ntitle_regex = \"^WARNING in iomap\"\n"
    ));
    h.crash(0, WARNING);
    h.send(Event::SetupDone(Ok(())));
    let setup = h.state.await_setup(&waiting(Phase::Setup, 300)).await;
    assert!(setup.is_ok(), "{setup:?}");
    h.state.workload = WorkloadOutcome::Passed { iterations: 1 };
    let (report, _) = h.finish(Ok(())).await;
    assert_eq!(report.verdict, Verdict::NotReproduced, "{}", report.reason);
    assert_eq!(report.ignored_crashes.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crash_printed_just_after_the_workload_passed_is_still_caught() {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    h.send(Event::WorkloadDone(WorkloadOutcome::Passed { iterations: 1 }));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    h.state.workload = ended.unwrap();
    // Arrives during the drain's settle time.
    h.crash(0, NULL_DEREF);
    let (report, _) = h.finish(Ok(())).await;
    assert_eq!(report.verdict, Verdict::Reproduced, "{}", report.reason);
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_request_is_answered_and_timed() {
    let mut h = Harness::new(&format!(
        "{MINIMAL}[workload]\nscript = \"true\"\nrestore = \"snapshot\"\n"
    ));
    let (reply, answer) = std::sync::mpsc::channel();
    h.send(Event::Snapshot(Snapshot::Save, reply));
    let (reply2, answer2) = std::sync::mpsc::channel();
    h.send(Event::Snapshot(Snapshot::Load, reply2));
    let (reply3, answer3) = std::sync::mpsc::channel();
    h.send(Event::Snapshot(Snapshot::Load, reply3));
    h.send(Event::WorkloadDone(WorkloadOutcome::Passed { iterations: 3 }));
    let ended = h
        .state
        .watch_workload(&waiting(Phase::Workload, 60), Instant::now())
        .await;
    assert!(ended.is_ok());
    assert!(answer.recv().unwrap().is_ok());
    assert!(answer2.recv().unwrap().is_ok());
    assert!(answer3.recv().unwrap().is_ok());
    assert_eq!(
        h.fake.calls(),
        vec!["snapshot 0 Save", "snapshot 0 Load", "snapshot 0 Load"]
    );
    assert!(h.state.timings.snapshot_save.is_some());
    assert_eq!(h.state.timings.restores.len(), 2);
    // The iteration between the two restores, whole; the last one ends with the workload.
    assert_eq!(h.state.timings.restored_iterations.len(), 1);
    assert!(h.state.restored_at.is_some());
}

#[test]
fn the_report_of_a_run_that_never_booted_says_why_and_names_no_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("t.toml");
    let toml = format!("{MINIMAL}[workload]\nscript = \"true\"\n");
    let scenario = crate::scenario::parse(path, &toml, &["k".into()], &["i".into()]).unwrap();
    let facts = assemble::Facts {
        scenario: &scenario,
        nodes: vec![Default::default()],
        observed: super::verdict::Observed {
            crashes: Vec::new(),
            suspect: Vec::new(),
            workload: WorkloadOutcome::NotRun,
            infra: Some(Arc::new(InfraError::Keygen("ssh-keygen failed: exit 1".into()))),
            interrupted: false,
            guest_panicked: false,
            marker_line: None,
            power_cut: None,
        },
        ignored: Vec::new(),
        timings: Default::default(),
        completed: 0,
        run_dir: "/runs/x".into(),
        started_at: 0,
        vmcores: Vec::new(),
        debugger: Vec::new(),
        evidence_lost: Vec::new(),
    };
    let report = assemble::report(facts);
    assert_eq!(report.reason, "generating the run's SSH key: ssh-keygen failed: exit 1");
    assert_eq!(report.exit_code, 125);
    assert!(report.kernel.is_none());
    assert_eq!(report.workload.outcome, "NotRun");
    assert_eq!(report.nodes[0].name, "guest");
}

#[test]
fn a_stall_on_an_overloaded_host_is_suspect_and_a_null_deref_is_a_crash_regardless() {
    use super::observer::{Happened, Observer, Seen};
    let log = include_str!("../../crates/oops/tests/data/real-qemu-6.1-arm64-hung-task-fsfreeze.log");
    let stall = repro_oops::parse(log.as_bytes()).remove(0);
    let null = repro_oops::parse(NULL_DEREF.as_bytes()).remove(0);
    let mut o = Observer::new(Default::default(), vec![crate::arch::Arch::X86_64]);
    let busy = super::watch::overloaded(9.0, 2);
    assert!(
        busy.as_deref().is_some_and(|b| b.contains("load 9.0 on 2 cores")),
        "{busy:?}"
    );
    assert_eq!(super::watch::overloaded(5.9, 2), None);
    let seen = |report: &repro_oops::Report| Seen::Crash {
        report: Box::new(report.clone()),
        at: Instant::now(),
        overloaded: busy.clone(),
    };
    assert!(matches!(o.on(0, seen(&stall)), Some(Happened::Suspect { .. })));
    assert!(o.crashes.is_empty());
    assert_eq!(o.suspect.len(), 1);
    assert!(matches!(o.on(0, seen(&null)), Some(Happened::Crash { .. })));
    assert_eq!(o.crashes.len(), 1);
}

/// After a workload that passed, the drain ends as soon as the console shows the line the run
/// wrote to the guest's /dev/kmsg with its token, not after the whole settle time; a line with
/// another token (a workload printing the words) does not count.
async fn drain_with_settle_line(token_of_the_run: bool) -> Duration {
    let mut h = Harness::new(&format!("{MINIMAL}[workload]\nscript = \"true\"\n"));
    h.state.workload = WorkloadOutcome::Passed { iterations: 1 };
    // Nothing listens on port 1: the thread that writes the line fails, as a dead guest would.
    h.state.links[0] = Some(crate::guest::Link::Ssh {
        port: 1,
        key: h.state.key.clone(),
    });
    let token = match token_of_the_run {
        true => h.state.token.clone(),
        false => "0.0".to_string(),
    };
    h.console(0, ConsoleEvent::Settled { token });
    let started = Instant::now();
    let (report, _) = h.finish(Ok(())).await;
    assert_eq!(report.verdict, Verdict::NotReproduced, "{}", report.reason);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn the_runs_own_settle_line_on_the_console_ends_the_drain_early() {
    assert!(drain_with_settle_line(true).await < crate::run::phase::teardown::SETTLE);
    assert!(drain_with_settle_line(false).await >= crate::run::phase::teardown::SETTLE);
}
