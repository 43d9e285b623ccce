//! Running the workload over SSH: upload the script once, then run its iterations on
//! `parallel` sessions. Blocking; runs on plain threads that a crash may leave stuck (they end
//! when QEMU goes away and the connection drops).

use super::outcome::WorkloadOutcome;
use crate::guest::{self, Session};
use crate::scenario::Workload;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SCRIPT: &str = "/run/repro/workload.sh";
/// The workload's output files are `workload.stdout` and `workload.stderr` in the run directory.
pub const STEM: &str = "workload";
/// The workload's stdout as it streamed, up to a power cut at its marker.
pub const STREAMED: &str = "workload-until-power-cut.stdout";

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(150);

/// Without a `Server listening` line on the console (an image whose sshd logs elsewhere),
/// connection attempts start anyway after this long.
const BLIND_AFTER: Duration = Duration::from_secs(20);

/// Retries SSH until it authenticates, `deadline` passes, or `stop` is set.
///
/// Attempts wait for `listening` (sshd said so on the console): a connection made before the
/// guest's network is up is held by user-mode networking through TCP SYN retransmits, which
/// costs seconds; one made after it succeeds at once.
pub fn wait_ssh(
    port: u16,
    key: &Path,
    deadline: Instant,
    stop: &AtomicBool,
    listening: &AtomicBool,
) -> Result<Session, Box<guest::Error>> {
    let start = Instant::now();
    while !listening.load(Ordering::SeqCst) && start.elapsed() < BLIND_AFTER && Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match Session::connect(port, key, ATTEMPT_TIMEOUT.min(left.max(Duration::from_millis(100)))) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline || stop.load(Ordering::SeqCst) => return Err(Box::new(e)),
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

/// A callback for live workload output.
pub type OutputHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A hook that calls `f` with each complete line of output (without its newline).
pub fn line_hook(f: impl Fn(&str) + Send + Sync + 'static) -> OutputHook {
    let buf = Mutex::new(Vec::<u8>::new());
    Arc::new(move |data: &[u8]| {
        let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
        b.extend_from_slice(data);
        while let Some(nl) = b.iter().position(|&c| c == b'\n') {
            let line = String::from_utf8_lossy(&b[..nl]).into_owned();
            b.drain(..=nl);
            f(&line);
        }
    })
}

pub struct Job {
    pub port: u16,
    pub key: PathBuf,
    pub workload: Workload,
    pub run_dir: PathBuf,
    pub stop: Arc<AtomicBool>,
    completed: Arc<AtomicU32>,
    /// The session that proved SSH was up, reused so the workload starts without a new handshake.
    first: Option<Session>,
    /// Sees workload stdout as it arrives (for marker-triggered faults).
    pub on_stdout: Option<OutputHook>,
    /// `restore = "snapshot"`: asks the run loop to save the guest after the script upload and
    /// to restore it before every iteration after the first.
    pub restore: Option<RestoreHook>,
    /// Output goes to `<stem>.stdout` and `<stem>.stderr` in the run directory.
    pub stem: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    Save,
    Load,
}

/// Asks the run (which owns QMP) for a snapshot save or restore; blocks until it is done, and
/// gives the seconds it took.
pub type RestoreHook = Arc<dyn Fn(Snapshot) -> Result<f64, String> + Send + Sync>;

impl Job {
    pub fn new(
        port: u16,
        key: PathBuf,
        workload: Workload,
        run_dir: PathBuf,
        stop: Arc<AtomicBool>,
        first: Option<Session>,
    ) -> Self {
        Job {
            port,
            key,
            workload,
            run_dir,
            stop,
            completed: Arc::new(AtomicU32::new(0)),
            first,
            on_stdout: None,
            restore: None,
            stem: STEM,
        }
    }

    /// Iterations completed so far.
    pub fn counter(&self) -> Arc<AtomicU32> {
        self.completed.clone()
    }

    pub fn run(mut self) -> WorkloadOutcome {
        let first = match self.upload() {
            Ok(session) => session,
            Err(why) => return WorkloadOutcome::CouldNotStart { why },
        };
        if let Some(hook) = self.restore.clone() {
            return self.run_restoring(first, &hook);
        }
        let mut sessions = vec![first];
        for _ in 1..self.workload.parallel {
            match Session::connect(self.port, &self.key, ATTEMPT_TIMEOUT) {
                Ok(s) => sessions.push(s),
                Err(e) => {
                    return WorkloadOutcome::CouldNotStart {
                        why: crate::errors::chain(&e),
                    }
                }
            }
        }
        self.run_parallel(sessions)
    }

    /// Uploads the script on the first session (the one that proved SSH up, or a new one).
    fn upload(&mut self) -> Result<Session, String> {
        let first = match self.first.take() {
            Some(session) => session,
            None => Session::connect(self.port, &self.key, ATTEMPT_TIMEOUT).map_err(|e| crate::errors::chain(&e))?,
        };
        let setup = format!("mkdir -p /run/repro && cat > {SCRIPT} && chmod 755 {SCRIPT}");
        match first.exec(&setup, self.workload.script.as_bytes()) {
            Ok(o) if o.status == 0 => Ok(first),
            Ok(o) => Err(format!(
                "uploading the script exited {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(crate::errors::chain(&e)),
        }
    }

    /// The iterations, taken in turn by one thread per session; the first failure stops them.
    fn run_parallel(&self, sessions: Vec<Session>) -> WorkloadOutcome {
        let out = Arc::new(Mutex::new(Files::open(&self.run_dir, self.stem)));
        let next = Arc::new(AtomicU32::new(0));
        let result: Arc<Mutex<Option<WorkloadOutcome>>> = Arc::new(Mutex::new(None));
        let threads: Vec<_> = sessions
            .into_iter()
            .map(|session| {
                let (w, next, result, out, stop, completed, on_stdout) = (
                    self.workload.clone(),
                    next.clone(),
                    result.clone(),
                    out.clone(),
                    self.stop.clone(),
                    self.completed.clone(),
                    self.on_stdout.clone(),
                );
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= w.iterations || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let record = |o: &guest::Output| {
                        if let Ok(mut f) = out.lock() {
                            f.record(i, o);
                        }
                    };
                    match iteration(&session, &w, i, &on_stdout, record) {
                        Ok(()) => {
                            completed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(o) => {
                            result.lock().map(|mut r| r.get_or_insert(o).clone()).ok();
                            stop.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        let r = result.lock().ok().and_then(|r| r.clone());
        r.unwrap_or(WorkloadOutcome::Passed {
            iterations: self.completed.load(Ordering::SeqCst),
        })
    }
}

impl Job {
    /// Iterations one at a time, each after the first on the guest restored to the snapshot
    /// taken before the first (a new SSH connection each time: the old one does not survive).
    fn run_restoring(&self, first: Session, hook: &RestoreHook) -> WorkloadOutcome {
        match self.restoring(first, hook) {
            Ok(()) => WorkloadOutcome::Passed {
                iterations: self.completed.load(Ordering::SeqCst),
            },
            Err(o) => o,
        }
    }

    fn restoring(&self, first: Session, hook: &RestoreHook) -> Result<(), WorkloadOutcome> {
        hook(Snapshot::Save).map_err(|why| WorkloadOutcome::CouldNotStart {
            why: format!("saving the snapshot: {why}"),
        })?;
        let mut out = Files::open(&self.run_dir, self.stem);
        let mut session = first;
        for i in 0..self.workload.iterations {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if i > 0 {
                hook(Snapshot::Load).map_err(|why| WorkloadOutcome::Lost {
                    why: format!("restoring the snapshot before iteration {i}: {why}"),
                })?;
                session =
                    Session::connect(self.port, &self.key, ATTEMPT_TIMEOUT).map_err(|e| WorkloadOutcome::Lost {
                        why: format!("SSH after restoring the snapshot: {}", crate::errors::chain(&e)),
                    })?;
            }
            iteration(&session, &self.workload, i, &self.on_stdout, |o| out.record(i, o))?;
            self.completed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs iteration `i` of `w` on `session`, streaming its stdout to `hook`, and hands the output
/// to `record`. A non-zero exit is `Failed` with the last lines of stderr; a lost session is
/// `Lost`.
fn iteration(
    session: &Session,
    w: &Workload,
    i: u32,
    hook: &Option<OutputHook>,
    record: impl FnOnce(&guest::Output),
) -> Result<(), WorkloadOutcome> {
    let cmd = format!("REPRO_ITERATION={i} {} {SCRIPT}", w.shell);
    let mut live = |stream: u8, data: &[u8]| {
        if let (0, Some(f)) = (stream, hook) {
            f(data)
        }
    };
    let o = session
        .exec_with(&cmd, b"", &mut live)
        .map_err(|e| WorkloadOutcome::Lost {
            why: crate::errors::chain(&e),
        })?;
    record(&o);
    if o.status != 0 {
        let text = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = text.trim().lines().collect();
        return Err(WorkloadOutcome::Failed {
            iteration: i,
            status: o.status,
            stderr_tail: lines[lines.len().saturating_sub(3)..].join(" / "),
        });
    }
    Ok(())
}

struct Files {
    stdout: Option<std::fs::File>,
    stderr: Option<std::fs::File>,
}

impl Files {
    fn open(dir: &Path, stem: &str) -> Self {
        let open = |ext: &str| {
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join(format!("{stem}.{ext}")))
                .ok()
        };
        Files {
            stdout: open("stdout"),
            stderr: open("stderr"),
        }
    }

    fn record(&mut self, i: u32, o: &guest::Output) {
        let header = format!(
            "=== iteration {i}: exit {} after {:.2}s ===\n",
            o.status,
            o.elapsed.as_secs_f64()
        );
        for (f, data) in [(&mut self.stdout, &o.stdout), (&mut self.stderr, &o.stderr)] {
            if let Some(f) = f {
                let _ = f.write_all(header.as_bytes());
                let _ = f.write_all(data);
                if !data.is_empty() && !data.ends_with(b"\n") {
                    let _ = f.write_all(b"\n");
                }
            }
        }
    }
}
