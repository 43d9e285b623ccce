//! Running the workload over the node's link (its agent or SSH): upload the script once, then
//! run its iterations on `parallel` sessions. Blocking; runs on plain threads that a crash may leave stuck (they end
//! when QEMU goes away and the connection drops).

use super::outcome::WorkloadOutcome;
use crate::guest::{self, Link, Run, Session};
use crate::scenario::Workload;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SCRIPT: &str = "/run/repro/workload.sh";
/// The workload's output files are `workload.stdout` and `workload.stderr` in the run directory.
pub const STEM: &str = "workload";
/// The workload's stdout as it streamed, up to a power cut at its marker.
pub const STREAMED: &str = "workload-until-power-cut.stdout";

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A callback for live workload output.
pub type OutputHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The longest line [`line_hook`] hands on; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// A hook that calls `f` with each complete line of output (without its newline), cut to
/// [`MAX_LINE`] bytes: a line without end must not grow without bound.
pub fn line_hook(f: impl Fn(&str) + Send + Sync + 'static) -> OutputHook {
    // The line so far, and whether the rest of it is being skipped.
    let state = Mutex::new((Vec::<u8>::new(), false));
    Arc::new(move |data: &[u8]| {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let (b, skipping) = &mut *guard;
        for piece in data.split_inclusive(|&c| c == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(t) => (t, true),
                None => (piece, false),
            };
            if !*skipping {
                b.extend_from_slice(&text[..text.len().min(MAX_LINE - b.len())]);
            }
            if ends || b.len() >= MAX_LINE {
                if !*skipping {
                    f(&String::from_utf8_lossy(b));
                }
                b.clear();
                *skipping = !ends;
            }
        }
    })
}

pub struct Job {
    pub link: Link,
    pub workload: Workload,
    pub run_dir: PathBuf,
    pub stop: Arc<AtomicBool>,
    completed: Arc<AtomicU32>,
    /// The session that proved the node up, reused so the workload starts without a new SSH
    /// handshake.
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
        link: Link,
        workload: Workload,
        run_dir: PathBuf,
        stop: Arc<AtomicBool>,
        first: Option<Session>,
    ) -> Self {
        Job {
            link,
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
        let first = match self.first_session() {
            Ok(session) => session,
            Err(why) => return WorkloadOutcome::CouldNotStart { why },
        };
        // In the common case (one session, no snapshot to take after the upload) the first
        // iteration writes the script it runs: one round trip fewer.
        let rides_along = self.restore.is_none() && self.workload.parallel <= 1;
        if !rides_along {
            if let Err(why) = upload(&first, &self.workload.script) {
                return WorkloadOutcome::CouldNotStart { why };
            }
        }
        if let Some(hook) = self.restore.clone() {
            return self.run_restoring(first, &hook);
        }
        let mut sessions = vec![first];
        for _ in 1..self.workload.parallel {
            match self.link.connect(ATTEMPT_TIMEOUT) {
                Ok(s) => sessions.push(s),
                Err(e) => {
                    return WorkloadOutcome::CouldNotStart {
                        why: crate::errors::chain(&e),
                    }
                }
            }
        }
        self.run_parallel(sessions, rides_along)
    }

    /// The session that proved the node up, or a new one.
    fn first_session(&mut self) -> Result<Session, String> {
        match self.first.take() {
            Some(session) => Ok(session),
            None => self.link.connect(ATTEMPT_TIMEOUT).map_err(|e| crate::errors::chain(&e)),
        }
    }

    /// The iterations, taken in turn by one thread per session; the first failure stops them.
    /// With `upload`, iteration 0 also writes the script.
    fn run_parallel(&self, sessions: Vec<Session>, upload: bool) -> WorkloadOutcome {
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
                    let mut parts = out.lock().map(|f| f.parts(i)).unwrap_or_default();
                    let record = |o: &guest::Output, parts: Parts| {
                        if let Ok(mut f) = out.lock() {
                            f.record(i, o, parts);
                        }
                    };
                    let step = Step {
                        i,
                        upload: upload && i == 0,
                    };
                    match iteration(&session, &w, step, &on_stdout, &mut parts, record) {
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
    /// taken before the first. The agent's channel survives a restore; an SSH connection does
    /// not, so over SSH each iteration connects again.
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
                session = self.link.connect(ATTEMPT_TIMEOUT).map_err(|e| WorkloadOutcome::Lost {
                    why: format!("connecting after restoring the snapshot: {}", crate::errors::chain(&e)),
                })?;
            }
            let mut parts = out.parts(i);
            let step = Step { i, upload: false };
            iteration(&session, &self.workload, step, &self.on_stdout, &mut parts, |o, p| {
                out.record(i, o, p)
            })?;
            self.completed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The status, and the last line of stderr, of a first iteration that could not write its
/// script: the guest's failure to start the workload, not the workload's. The same as the
/// agent's for a [`Run::WriteThen`].
const UPLOAD_FAILED: (i32, &str) = guest::WRITE_FAILED;

/// Writes `script` to [`SCRIPT`] on its own round trip.
fn upload(session: &Session, script: &str) -> Result<(), String> {
    match session.exec(&guest::write_line(SCRIPT), script.as_bytes()) {
        Ok(o) if o.status == 0 => Ok(()),
        Ok(o) => Err(format!(
            "uploading the script exited {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(crate::errors::chain(&e)),
    }
}

/// Which iteration to run, and whether it writes the script first.
#[derive(Debug, Clone, Copy)]
struct Step {
    i: u32,
    upload: bool,
}

/// The command and stdin of `step`: the script, run by the workload's shell. The agent starts
/// that shell itself when its words need no shell to split them (one process fewer, two for the
/// step that also writes the script: the agent writes it); otherwise a shell line whose shell
/// the workload's replaces.
fn command<'a>(w: &'a Workload, step: Step, path: &str) -> (Run, &'a [u8]) {
    let env = ("REPRO_ITERATION".to_string(), step.i.to_string());
    if let Some(words) = crate::shell::plain_command(&w.shell) {
        let argv = words.iter().copied().chain([path]).map(String::from).collect();
        let program = guest::Program { env: vec![env], argv };
        return match step.upload {
            false => (Run::Program(program), b""),
            true => {
                let path = path.to_string();
                (Run::WriteThen { path, then: program }, w.script.as_bytes())
            }
        };
    }
    let run = format!("{}={} exec {} {path}", env.0, env.1, w.shell);
    if !step.upload {
        return (Run::Shell(run), b"");
    }
    let (status, why) = UPLOAD_FAILED;
    let cmd = format!(
        "{} && {run} || {{ echo '{why}' >&2; exit {status}; }}",
        guest::write_line(path)
    );
    (Run::Shell(cmd), w.script.as_bytes())
}

/// Runs `step` of `w` on `session`, streaming its stdout to `hook`, and hands the output to
/// `record`. A non-zero exit is `Failed` with the last lines of stderr; a lost session is
/// `Lost`; a script that could not be written is `CouldNotStart`.
fn iteration(
    session: &Session,
    w: &Workload,
    step: Step,
    hook: &Option<OutputHook>,
    parts: &mut Parts,
    record: impl FnOnce(&guest::Output, Parts),
) -> Result<(), WorkloadOutcome> {
    let i = step.i;
    let (cmd, stdin) = command(w, step, SCRIPT);
    let mut live = |stream: u8, data: &[u8]| {
        parts.write(stream, data);
        if let (0, Some(f)) = (stream, hook) {
            f(data)
        }
    };
    let o = match session.run_with(&cmd, stdin, &mut live) {
        Ok(o) => o,
        Err(e) => {
            // The session died under the iteration (a crash, QEMU gone): what it printed so far
            // is kept, by this thread, as soon as nothing more can come.
            if let Some((dir, stem)) = parts.home() {
                append_parts(&dir, &stem, &unfinished_header(i), std::mem::take(parts));
            }
            return Err(WorkloadOutcome::Lost {
                why: crate::errors::chain(&e),
            });
        }
    };
    record(&o, std::mem::take(parts));
    if step.upload && could_not_write(&o) {
        return Err(WorkloadOutcome::CouldNotStart {
            why: format!(
                "writing the script {SCRIPT}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        });
    }
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

/// Whether a first iteration's output is its upload failing (status and last line of stderr).
fn could_not_write(o: &guest::Output) -> bool {
    let (status, why) = UPLOAD_FAILED;
    o.status == status && String::from_utf8_lossy(&o.stderr).trim_end().ends_with(why)
}

/// One iteration's output as it streams, on disk (`<stem>.stdout.<i>.part`, `.stderr`): the
/// output of an iteration that never finishes (the kernel crashed under it, it timed out) is
/// the output a user needs most, and it must not sit in memory.
#[derive(Default)]
struct Parts {
    files: Vec<(PathBuf, Option<std::fs::File>)>,
}

impl Parts {
    fn open(dir: &Path, stem: &str, i: u32) -> Parts {
        let files = ["stdout", "stderr"]
            .iter()
            .map(|ext| {
                let p = dir.join(format!("{stem}.{ext}.{i}.part"));
                let f = std::fs::File::create(&p).ok();
                (p, f)
            })
            .collect();
        Parts { files }
    }

    /// The run directory and stem the part files are in.
    fn home(&self) -> Option<(PathBuf, String)> {
        let (first, _) = self.files.first()?;
        let dir = first.parent()?.to_path_buf();
        let name = first.file_name()?.to_string_lossy().into_owned();
        Some((dir, name.split('.').next()?.to_string()))
    }

    fn write(&mut self, stream: u8, data: &[u8]) {
        if let Some((_, file)) = self.files.get_mut(usize::from(stream)) {
            if file.as_mut().is_some_and(|f| f.write_all(data).is_err()) {
                // Cannot be trusted whole any more: the iteration's record falls back to the
                // output held in memory.
                *file = None;
            }
        }
    }
}

struct Files {
    dir: PathBuf,
    stem: &'static str,
}

impl Files {
    fn open(dir: &Path, stem: &'static str) -> Self {
        Files {
            dir: dir.to_path_buf(),
            stem,
        }
    }

    fn parts(&self, i: u32) -> Parts {
        Parts::open(&self.dir, self.stem, i)
    }

    /// Moves a finished iteration's output from its part files into the stream files. A stream
    /// whose part file could not be written is recorded from the output held in memory (its
    /// end, [`guest::KEPT_OUTPUT`] bytes), under a header that says so.
    fn record(&mut self, i: u32, o: &guest::Output, parts: Parts) {
        let header = format!(
            "=== iteration {i}: exit {} after {:.2}s ===\n",
            o.status,
            o.elapsed.as_secs_f64()
        );
        let mut whole = Parts::default();
        for (n, (part, file)) in parts.files.into_iter().enumerate() {
            match file {
                Some(f) => whole.files.push((part, Some(f))),
                None => {
                    let _ = std::fs::remove_file(&part);
                    let kept = if n == 0 { &o.stdout } else { &o.stderr };
                    let ext = if n == 0 { "stdout" } else { "stderr" };
                    let note = format!(
                        "{}(the output file failed; its last bytes, from memory) ===\n",
                        &header[..header.len() - 4]
                    );
                    append_bytes(&self.dir.join(format!("{}.{ext}", self.stem)), &note, kept);
                    whole.files.push((PathBuf::new(), None));
                }
            }
        }
        append_parts(&self.dir, self.stem, &header, whole);
    }
}

/// Appends `header` and `data` (ending in a newline) to `path`.
fn append_bytes(path: &Path, header: &str, data: &[u8]) {
    let out = std::fs::File::options().create(true).append(true).open(path);
    if let Ok(mut f) = out {
        let _ = f.write_all(header.as_bytes());
        let _ = f.write_all(data);
        if !data.is_empty() && !data.ends_with(b"\n") {
            let _ = f.write_all(b"\n");
        }
    }
}

/// Appends each part file, under `header`, to its stream file (`<stem>.stdout`, `.stderr`),
/// and removes it.
fn append_parts(dir: &Path, stem: &str, header: &str, parts: Parts) {
    for ((part, file), ext) in parts.files.into_iter().zip(["stdout", "stderr"]) {
        drop(file);
        if part.as_os_str().is_empty() {
            continue;
        }
        // Claimed by a rename first: the iteration's own thread and the teardown's collection
        // may both get here; only one moves it.
        let mut claimed = part.clone().into_os_string();
        claimed.push(".taken");
        if std::fs::rename(&part, &claimed).is_err() {
            continue;
        }
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join(format!("{stem}.{ext}")));
        if let (Ok(mut from), Ok(mut to)) = (std::fs::File::open(&claimed), out) {
            if append_part(&mut from, &mut to, header).is_ok() {
                let _ = std::fs::remove_file(&claimed);
            }
        }
    }
}

/// `header`, then `from` copied (not read into memory: it may be large), ending in a newline.
fn append_part(from: &mut std::fs::File, to: &mut std::fs::File, header: &str) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    to.write_all(header.as_bytes())?;
    let copied = std::io::copy(from, to)?;
    if copied > 0 {
        let mut last = [0u8];
        from.seek(SeekFrom::End(-1))?;
        from.read_exact(&mut last)?;
        if last[0] != b'\n' {
            to.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn unfinished_header(i: u32) -> String {
    format!("=== iteration {i}: unfinished when the run ended (a crash, a timeout or a stop) ===\n")
}

/// After the run: the output of iterations that never finished, moved from their part files
/// into the stream files under a header that says so. Returns how many there were.
pub fn collect_unfinished(dir: &Path, stem: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let prefix = format!("{stem}.stdout.");
    let mut iterations: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&prefix)?.strip_suffix(".part")?.parse().ok()
        })
        .collect();
    iterations.sort_unstable();
    for &i in &iterations {
        let files = ["stdout", "stderr"]
            .iter()
            .map(|ext| (dir.join(format!("{stem}.{ext}.{i}.part")), None))
            .collect();
        append_parts(dir, stem, &unfinished_header(i), Parts { files });
    }
    iterations.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(script: &str) -> Workload {
        Workload {
            script: script.into(),
            node: 0,
            timeout: Duration::from_secs(60),
            iterations: 2,
            parallel: 1,
            shell: "sh".into(),
            restore_snapshot: false,
            placeholder: None,
        }
    }

    /// Runs `step`'s command on the host as the guest's agent would: a shell line under `sh`,
    /// a program started directly.
    fn run_step(w: &Workload, step: Step, path: &Path) -> guest::Output {
        use std::io::Write as _;
        let (cmd, stdin) = command(w, step, path.to_str().unwrap());
        let mut child = match &cmd {
            Run::Shell(_) | Run::WriteThen { .. } => {
                let mut c = std::process::Command::new("sh");
                c.args(["-c", &cmd.shell_line()]);
                c
            }
            Run::Program(p) => {
                let mut c = std::process::Command::new(&p.argv[0]);
                c.args(&p.argv[1..]).envs(p.env.iter().map(|(k, v)| (k, v)));
                c
            }
        };
        let mut child = child
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = child.wait_with_output().unwrap();
        guest::Output {
            status: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: o.stderr,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn the_first_iteration_writes_the_script_it_runs_and_later_ones_run_it_again() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/repro/workload.sh");
        let w = workload("echo \"iteration $REPRO_ITERATION\"\nexit 3\n");
        let first = run_step(&w, Step { i: 0, upload: true }, &path);
        assert_eq!(
            (first.status, first.stdout.as_slice()),
            (3, &b"iteration 0\n"[..]),
            "{first:?}"
        );
        assert!(!could_not_write(&first));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), w.script);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
        let again = run_step(&w, Step { i: 1, upload: false }, &path);
        assert_eq!(
            (again.status, again.stdout.as_slice()),
            (3, &b"iteration 1\n"[..]),
            "{again:?}"
        );
    }

    #[test]
    fn the_agent_starts_the_workloads_shell_itself_when_its_words_need_no_shell() {
        let mut w = workload("true\n");
        let later = Step { i: 4, upload: false };
        let program = |argv: &[&str]| {
            Run::Program(guest::Program {
                env: vec![("REPRO_ITERATION".into(), "4".into())],
                argv: argv.iter().map(|a| a.to_string()).collect(),
            })
        };
        w.shell = "/bin/bash -e".into();
        assert_eq!(command(&w, later, "/s.sh").0, program(&["/bin/bash", "-e", "/s.sh"]));
        for shell in ["FOO=1 bash", "bash -c 'set -x; . \"$0\"'", "bash $OPTS"] {
            w.shell = shell.into();
            let line = format!("REPRO_ITERATION=4 exec {shell} /s.sh");
            assert_eq!(command(&w, later, "/s.sh").0, Run::Shell(line), "{shell}");
        }
        let first = Step { i: 0, upload: true };
        let (run, stdin) = command(&w, first, "/s.sh");
        assert!(matches!(run, Run::Shell(_)) && stdin == b"true\n", "{run:?}");
        w.shell = "bash".into();
        let (run, stdin) = command(&w, first, "/s.sh");
        let then = guest::Program {
            env: vec![("REPRO_ITERATION".into(), "0".into())],
            argv: vec!["bash".into(), "/s.sh".into()],
        };
        let path = "/s.sh".to_string();
        assert_eq!((run, stdin), (Run::WriteThen { path, then }, &b"true\n"[..]));
    }

    #[test]
    fn a_script_that_cannot_be_written_is_told_from_one_that_fails() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        // The script's directory would be under a regular file: mkdir fails.
        let path = dir.path().join("file/repro/workload.sh");
        let o = run_step(&workload("exit 0\n"), Step { i: 0, upload: true }, &path);
        assert!(could_not_write(&o), "{o:?}");
        // The same status from the script itself is the script's.
        let ok = dir.path().join("workload.sh");
        let o = run_step(&workload("echo 'no' >&2; exit 97\n"), Step { i: 0, upload: true }, &ok);
        assert_eq!(o.status, 97);
        assert!(!could_not_write(&o), "{o:?}");
    }

    #[test]
    fn lines_are_handed_on_whole_and_an_endless_line_is_cut() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s = seen.clone();
        let hook = line_hook(move |l| s.lock().unwrap().push(l.to_string()));
        hook(b"one\ntw");
        hook(b"o\n");
        for _ in 0..40 {
            hook(&[b'x'; 4096]);
        }
        hook(b"still the long line\nthree\n");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "{:?}", seen.iter().map(|l| l.len()).collect::<Vec<_>>());
        assert_eq!(seen[0], "one");
        assert_eq!(seen[1], "two");
        assert_eq!(seen[2].len(), MAX_LINE);
        assert_eq!(seen[3], "three");
    }

    #[test]
    fn an_unfinished_iteration_is_collected_under_a_header_that_says_so() {
        let t = tempfile::tempdir().unwrap();
        let mut files = Files::open(t.path(), STEM);
        let mut done = files.parts(0);
        done.write(0, b"finished output");
        let o = guest::Output {
            status: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            elapsed: Duration::from_secs(1),
        };
        files.record(0, &o, done);
        let mut cut = files.parts(1);
        cut.write(0, b"last words");
        cut.write(1, b"last complaint\n");
        drop(cut);
        assert_eq!(collect_unfinished(t.path(), STEM), 1);
        let out = std::fs::read_to_string(t.path().join("workload.stdout")).unwrap();
        assert_eq!(
            out,
            "=== iteration 0: exit 0 after 1.00s ===\nfinished output\n\
             === iteration 1: unfinished when the run ended (a crash, a timeout or a stop) ===\nlast words\n"
        );
        let err = std::fs::read_to_string(t.path().join("workload.stderr")).unwrap();
        assert!(err.ends_with("===\nlast complaint\n"), "{err}");
        assert_eq!(collect_unfinished(t.path(), STEM), 0, "part files are gone");
    }
}
