//! repro's guest agent (`src/image/guest/agent.c`): commands over a virtio-serial port whose
//! host end is a unix socket repro listens on and QEMU connects to. No handshake, and the
//! channel outlives a snapshot restore. One connection per guest, shared by every session: a
//! reader thread hands each command's frames to the thread that sent it.
//!
//! Frames, both ways: kind (1 byte), id (u32 LE), length (u32 LE), payload; the kinds are in
//! agent.c's header.

use super::command::{keep_tail, Error, Output, Run};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The name of the guest's port (`/sys/class/virtio-ports/*/name`).
pub const PORT_NAME: &str = "org.repro.agent";
/// The agent's source, built into every image.
pub const SOURCE: &str = include_str!("../image/guest/agent.c");

const HEADER: usize = 9;
/// The largest frame the agent sends is a 64 KiB chunk of output; anything far larger is not
/// the agent speaking.
const MAX_FRAME: usize = 1 << 20;
/// How many frames may wait for a thread that is slow to take them: a guest printing without
/// pause is held back, not buffered in the host's memory.
const QUEUED: usize = 256;

/// One frame from the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub id: u32,
    pub payload: Vec<u8>,
}

/// The request that starts `run` with `stdin` as command number `id`.
pub fn request(id: u32, run: &Run, stdin: &[u8]) -> Vec<u8> {
    let (kind, head) = match run {
        Run::Shell(line) => (b'X', line.as_bytes().to_vec()),
        Run::Program(p) => (b'A', p.words()),
        Run::WriteThen { path, then } => {
            let mut words = path.as_bytes().to_vec();
            words.push(0);
            words.extend(then.words());
            (b'W', words)
        }
    };
    let len = 4 + head.len() + stdin.len();
    let mut v = Vec::with_capacity(HEADER + len);
    v.push(kind);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&(head.len() as u32).to_le_bytes());
    v.extend_from_slice(&head);
    v.extend_from_slice(stdin);
    v
}

/// Cuts the guest's byte stream into frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame; an error when the stream cannot be the agent's.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let word = |at: usize| u32::from_le_bytes([self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]]);
        let (kind, id, len) = (self.buf[0], word(1), word(5) as usize);
        if len > MAX_FRAME || !b"HOESF".contains(&kind) {
            return Err(format!("a frame of kind {kind:#04x} and {len} bytes: not the agent's"));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(Frame { kind, id, payload }))
    }
}

/// What a command's caller is handed.
enum Reply {
    Out(u8, Vec<u8>),
    Status(i32),
    Refused(String),
    Gone(String),
}

#[derive(Default)]
struct Shared {
    calls: HashMap<u32, mpsc::SyncSender<Reply>>,
    /// How many times the agent has said hello: once per boot of the guest.
    hellos: u64,
    /// Why the channel ended, once it has.
    closed: Option<String>,
}

/// The host's end of one guest's agent channel.
pub struct Conn {
    writer: Mutex<UnixStream>,
    shared: Arc<Mutex<Shared>>,
    /// Notified when the agent says hello and when the channel ends.
    said: Arc<Condvar>,
    next: AtomicU32,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conn {
    /// Serves `stream` (QEMU's connection to the agent's socket) from a reader thread.
    pub fn new(stream: UnixStream, node: &str) -> std::io::Result<Arc<Conn>> {
        let reader = stream.try_clone()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let said = Arc::new(Condvar::new());
        let (theirs, notify) = (shared.clone(), said.clone());
        std::thread::Builder::new()
            .name(format!("agent-{node}"))
            .spawn(move || read_frames(reader, &theirs, &notify))?;
        Ok(Arc::new(Conn {
            writer: Mutex::new(stream),
            shared,
            said,
            next: AtomicU32::new(1),
        }))
    }

    /// How many times the agent has started (said hello) so far.
    pub fn hellos(&self) -> u64 {
        lock(&self.shared).hellos
    }

    /// Waits at most `limit` for the agent to have said hello more than `seen` times (or for
    /// the channel to end): a hello wakes the waiter at once, not at its next look.
    pub fn await_hello(&self, seen: u64, limit: Duration) {
        let s = lock(&self.shared);
        let _unused = self
            .said
            .wait_timeout_while(s, limit, |s| s.hellos <= seen && s.closed.is_none());
    }

    /// Runs `run` in the guest (see [`super::Session::exec_with`]).
    pub fn exec_with(&self, run: &Run, stdin: &[u8], live: &mut dyn FnMut(u8, &[u8])) -> Result<Output, Error> {
        let start = Instant::now();
        let gone = |why: String| Error::AgentGone {
            command: run.shell_line(),
            why,
        };
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::sync_channel(QUEUED);
        {
            let mut s = lock(&self.shared);
            if let Some(why) = &s.closed {
                return Err(gone(why.clone()));
            }
            s.calls.insert(id, tx);
        }
        let sent = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&request(id, run, stdin));
        if let Err(e) = sent {
            lock(&self.shared).calls.remove(&id);
            return Err(gone(format!("writing the request: {e}")));
        }
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            match rx.recv() {
                Ok(Reply::Out(stream, data)) => {
                    live(stream, &data);
                    keep_tail(if stream == 0 { &mut stdout } else { &mut stderr }, &data);
                }
                Ok(Reply::Status(status)) => {
                    return Ok(Output {
                        status,
                        stdout,
                        stderr,
                        elapsed: start.elapsed(),
                    })
                }
                Ok(Reply::Refused(why)) => {
                    return Err(Error::AgentRefused {
                        command: run.shell_line(),
                        why,
                    })
                }
                Ok(Reply::Gone(why)) => return Err(gone(why)),
                Err(_) => return Err(gone("the channel ended".into())),
            }
        }
    }
}

/// The reader thread: hands frames to their callers until the channel ends.
fn read_frames(mut stream: UnixStream, shared: &Mutex<Shared>, said: &Condvar) {
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 1 << 16];
    let why = 'read: loop {
        match stream.read(&mut buf) {
            Ok(0) => break "QEMU closed the agent's channel".to_string(),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("reading the agent's channel: {e}"),
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => dispatch(frame, shared, said),
                Ok(None) => break,
                Err(why) => break 'read why,
            }
        }
    };
    let calls: Vec<_> = {
        let mut s = lock(shared);
        s.closed = Some(why.clone());
        s.calls.drain().map(|(_, tx)| tx).collect()
    };
    said.notify_all();
    for tx in calls {
        let _ = tx.send(Reply::Gone(why.clone()));
    }
}

/// Hands one frame to its caller. A hello ends every command in flight: the guest started
/// again (a reset), and what it ran before is gone with it.
fn dispatch(frame: Frame, shared: &Mutex<Shared>, said: &Condvar) {
    let (tx, reply) = {
        let mut s = lock(shared);
        match frame.kind {
            b'H' => {
                s.hellos += 1;
                let calls: Vec<_> = s.calls.drain().map(|(_, tx)| tx).collect();
                drop(s);
                said.notify_all();
                for tx in calls {
                    let _ = tx.send(Reply::Gone(
                        "the guest's agent started again: the guest rebooted".into(),
                    ));
                }
                return;
            }
            b'O' | b'E' => {
                let stream = u8::from(frame.kind == b'E');
                (s.calls.get(&frame.id).cloned(), Reply::Out(stream, frame.payload))
            }
            b'S' => {
                let b = frame.payload;
                let status = i32::from_le_bytes([
                    b.first().copied().unwrap_or(0),
                    b.get(1).copied().unwrap_or(0),
                    b.get(2).copied().unwrap_or(0),
                    b.get(3).copied().unwrap_or(0),
                ]);
                (s.calls.remove(&frame.id), Reply::Status(status))
            }
            _ => {
                let why = String::from_utf8_lossy(&frame.payload).into_owned();
                (s.calls.remove(&frame.id), Reply::Refused(why))
            }
        }
    };
    // Sent without the lock: a caller slow to take its output holds up the reader, nobody else.
    if let Some(tx) = tx {
        if tx.send(reply).is_err() {
            lock(shared).calls.remove(&frame.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::command::Program;
    use super::*;

    fn frame(kind: u8, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_request_holds_its_command_then_its_stdin() {
        let r = request(7, &Run::Shell("cat".into()), b"in");
        assert_eq!(r[0], b'X');
        assert_eq!(r[1..5], 7u32.to_le_bytes());
        assert_eq!(r[5..9], 9u32.to_le_bytes());
        assert_eq!(r[9..13], 3u32.to_le_bytes());
        assert_eq!(&r[13..], b"catin");
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_cut() {
        let mut stream = frame(b'H', 0, b"repro-agent 1\n");
        stream.extend(frame(b'O', 3, b"hello"));
        stream.extend(frame(b'S', 3, &2i32.to_le_bytes()));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for byte in &stream {
            d.push(std::slice::from_ref(byte));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        let kinds: Vec<(u8, u32)> = got.iter().map(|f| (f.kind, f.id)).collect();
        assert_eq!(kinds, [(b'H', 0), (b'O', 3), (b'S', 3)]);
        assert_eq!(got[1].payload, b"hello");
    }

    #[test]
    fn bytes_that_are_not_the_agents_end_the_channel() {
        let mut d = Decoder::default();
        d.push(b"SSH-2.0-OpenSSH_9.2p1\r\n");
        assert!(d.next_frame().is_err());
        let mut d = Decoder::default();
        d.push(&frame(b'O', 1, b"")[..5]);
        d.push(&(64u32 << 20).to_le_bytes());
        assert!(d.next_frame().unwrap_err().contains("67108864 bytes"));
    }

    /// Whoever waits for a hello is woken by it, and by the channel's end, not at the end of
    /// its limit (an hour here: a waiter that slept on would fail the minute's wait for it).
    #[test]
    fn a_hello_or_the_channels_end_wakes_whoever_waits_for_it() {
        let waiter = |conn: &Arc<Conn>| {
            let (conn, (tx, rx)) = (conn.clone(), mpsc::channel());
            std::thread::spawn(move || {
                conn.await_hello(0, Duration::from_secs(3600));
                let _ = tx.send(conn.hellos());
            });
            rx
        };
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let conn = Conn::new(ours, "test").unwrap();
        let woken = waiter(&conn);
        std::thread::sleep(Duration::from_millis(50)); // let it wait first
        theirs.write_all(&frame(b'H', 0, b"repro-agent 1\n")).unwrap();
        assert_eq!(
            woken.recv_timeout(Duration::from_secs(60)),
            Ok(1),
            "slept on past the hello"
        );

        let (ours, theirs) = UnixStream::pair().unwrap();
        let conn = Conn::new(ours, "test").unwrap();
        let woken = waiter(&conn);
        std::thread::sleep(Duration::from_millis(50));
        drop(theirs);
        assert_eq!(
            woken.recv_timeout(Duration::from_secs(60)),
            Ok(0),
            "slept on past the end"
        );
    }

    /// The real agent, built from its source for this host, serving one end of a socket pair.
    struct Agent {
        conn: Arc<Conn>,
        child: std::process::Child,
        _dir: tempfile::TempDir,
    }

    impl Agent {
        fn start() -> Agent {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let dir = tempfile::tempdir().unwrap();
            let (src, bin) = (dir.path().join("agent.c"), dir.path().join("agent"));
            std::fs::write(&src, SOURCE).unwrap();
            let cc = std::process::Command::new("gcc")
                .args(["-O2", "-Wall", "-Werror", "-o"])
                .arg(&bin)
                .arg(&src)
                .status()
                .unwrap();
            assert!(cc.success(), "gcc agent.c");
            let (ours, theirs) = UnixStream::pair().unwrap();
            let fd = theirs.as_raw_fd();
            let mut cmd = std::process::Command::new(&bin);
            cmd.arg(fd.to_string());
            // SAFETY: only clears FD_CLOEXEC on a descriptor the child is to inherit.
            unsafe {
                cmd.pre_exec(move || {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                    Ok(())
                });
            }
            let child = cmd.spawn().unwrap();
            drop(theirs);
            let conn = Conn::new(ours, "test").unwrap();
            conn.await_hello(0, Duration::from_secs(30));
            assert_eq!(conn.hellos(), 1, "no hello from the agent");
            Agent { conn, child, _dir: dir }
        }

        /// Runs `command` on a thread; None if it has not returned within a minute (a hang).
        fn run(&self, command: &str, stdin: &[u8]) -> Option<Result<Output, Error>> {
            let (conn, command, stdin) = (self.conn.clone(), command.to_string(), stdin.to_vec());
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || tx.send(conn.exec_with(&Run::Shell(command), &stdin, &mut |_, _| {})));
            rx.recv_timeout(std::time::Duration::from_secs(60)).ok()
        }
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn the_agent_runs_a_command_with_its_stdin_and_keeps_its_streams_apart() {
        let agent = Agent::start();
        let o = agent.run("cat; echo oops >&2; exit 3", b"hello\n").unwrap().unwrap();
        assert_eq!(
            (o.status, o.stdout.as_slice(), o.stderr.as_slice()),
            (3, &b"hello\n"[..], &b"oops\n"[..])
        );
        let o = agent.run("kill -9 $$", b"").unwrap().unwrap();
        assert_eq!(o.status, 128 + 9, "a signal is 128 plus its number, as a shell says");
    }

    #[test]
    fn a_program_runs_with_its_words_as_they_are_and_its_variables_added() {
        let agent = Agent::start();
        let program = |env: &[(&str, &str)], argv: &[&str]| {
            Run::Program(Program {
                env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                argv: argv.iter().map(|a| a.to_string()).collect(),
            })
        };
        // No shell in between: nothing is split, expanded or unquoted.
        let words = program(&[], &["printf", "%s|", "a b", "$HOME", "'q'", "*"]);
        let o = agent.conn.exec_with(&words, b"", &mut |_, _| {}).unwrap();
        assert_eq!((o.status, o.stdout.as_slice()), (0, &b"a b|$HOME|'q'|*|"[..]), "{o:?}");
        let env = program(&[("REPRO_X", "1 2")], &["sh", "-c", "echo \"$REPRO_X\"; cat"]);
        let o = agent.conn.exec_with(&env, b"in\n", &mut |_, _| {}).unwrap();
        assert_eq!(o.stdout, b"1 2\nin\n", "{o:?}");
        let missing = program(&[], &["no-such-program-here"]);
        let o = agent.conn.exec_with(&missing, b"", &mut |_, _| {}).unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status == 127 && stderr.contains("cannot run no-such-program-here"),
            "{o:?}"
        );
    }

    #[test]
    fn a_written_file_runs_in_the_same_request_and_a_write_that_fails_says_so() {
        use std::os::unix::fs::PermissionsExt as _;
        let agent = Agent::start();
        let dir = tempfile::tempdir().unwrap();
        let write_then = |path: &std::path::Path, argv: &[&str]| Run::WriteThen {
            path: path.to_str().unwrap().to_string(),
            then: Program {
                env: vec![("REPRO_X".into(), "7".into())],
                argv: argv.iter().map(|a| a.to_string()).collect(),
            },
        };
        // The directory is made; the program gets an empty stdin, not the file's text.
        let script = dir.path().join("new/s.sh");
        let run = write_then(&script, &["sh", "-c", "sh \"$0\"; cat", script.to_str().unwrap()]);
        let o = agent
            .conn
            .exec_with(&run, b"echo \"ran $REPRO_X\"\n", &mut |_, _| {})
            .unwrap();
        assert_eq!((o.status, o.stdout.as_slice()), (0, &b"ran 7\n"[..]), "{o:?}");
        assert_eq!(std::fs::read(&script).unwrap(), b"echo \"ran $REPRO_X\"\n");
        assert_eq!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
        // Under a regular file nothing can be written: the command says so, and nothing ran.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let blocked = write_then(&dir.path().join("file/s.sh"), &["echo", "ran"]);
        let o = agent.conn.exec_with(&blocked, b"true\n", &mut |_, _| {}).unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let (status, why) = super::super::command::WRITE_FAILED;
        assert_eq!((o.status, stderr.lines().last()), (status, Some(why)), "{o:?}");
        assert!(stderr.contains("cannot write") && o.stdout.is_empty(), "{o:?}");
    }

    #[test]
    fn a_daemon_a_command_leaves_behind_does_not_hold_it_open() {
        let agent = Agent::start();
        let o = agent
            .run("sleep 600 & echo started", b"")
            .expect("the command returned");
        assert_eq!(o.unwrap().stdout, b"started\n");
    }

    #[test]
    fn commands_on_one_channel_run_side_by_side() {
        let agent = Agent::start();
        let fifo = agent._dir.path().join("fifo");
        let f = fifo.display();
        let (conn, reader) = (agent.conn.clone(), format!("mkfifo {f} && read x < {f} && echo got $x"));
        let waiting = std::thread::spawn(move || conn.exec_with(&Run::Shell(reader), b"", &mut |_, _| {}));
        while !fifo.exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Run one at a time, the reader would wait for this writer forever.
        let wrote = agent
            .run(&format!("echo hi > {f}"), b"")
            .expect("the writer ran beside the reader");
        assert_eq!(wrote.unwrap().status, 0);
        assert_eq!(waiting.join().unwrap().unwrap().stdout, b"got hi\n");
    }

    #[test]
    fn output_larger_than_any_buffer_arrives_whole_and_in_order() {
        let agent = Agent::start();
        let (conn, mut seen) = (agent.conn.clone(), Vec::new());
        let o = conn
            .exec_with(&Run::Shell("seq 1 400000".into()), b"", &mut |stream, data| {
                assert_eq!(stream, 0);
                seen.extend_from_slice(data);
            })
            .unwrap();
        let want: String = (1..=400_000).map(|n| format!("{n}\n")).collect();
        assert_eq!(seen.len(), want.len());
        assert!(seen == want.as_bytes());
        assert!(want.as_bytes().ends_with(&o.stdout), "the kept output is its end");
    }

    #[test]
    fn an_agent_that_goes_away_ends_the_commands_in_flight() {
        let mut agent = Agent::start();
        let (conn, pid) = (agent.conn.clone(), agent.child.id());
        let running = std::thread::spawn(move || conn.exec_with(&Run::Shell("sleep 600".into()), b"", &mut |_, _| {}));
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let _ = agent.child.wait();
        let e = running.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("went away while running `sleep 600`"), "{e}");
        assert!(
            agent.run("true", b"").unwrap().is_err(),
            "a closed channel runs nothing"
        );
    }

    #[test]
    fn a_guest_that_starts_again_ends_the_commands_it_had() {
        let (ours, mut guest) = UnixStream::pair().unwrap();
        let conn = Conn::new(ours, "test").unwrap();
        let (c, (tx, rx)) = (conn.clone(), mpsc::channel());
        std::thread::spawn(move || tx.send(c.exec_with(&Run::Shell("sleep 600".into()), b"", &mut |_, _| {})));
        let mut d = Decoder::default();
        let mut buf = [0u8; 256];
        while d.buf.len() < HEADER {
            let n = guest.read(&mut buf).unwrap();
            d.push(&buf[..n]);
        }
        guest.write_all(&frame(b'H', 0, b"repro-agent 1\n")).unwrap();
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("the guest rebooted"), "{e}");
        assert_eq!(conn.hellos(), 1);
    }
}
