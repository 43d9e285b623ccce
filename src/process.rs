//! Child processes that can never outlive repro.
//!
//! Every child (QEMU, make, mmdebstrap, tar, apt-get, ...) is spawned
//! - in its own process group, so that one `kill(-pgid)` takes it and anything it forked;
//! - with `PR_SET_PDEATHSIG(SIGKILL)`, so that the kernel kills it if repro dies, even by SIGKILL;
//! - from one long-lived spawner thread, because the death signal fires when the *thread* that
//!   forked the child exits, and tokio's worker threads come and go;
//! - into a registry of live groups that the signal handler (and the end of the process) kill;
//! - and into the list of a reaper: a small `sh` that repro starts once and whose stdin it holds.
//!   When repro dies, even by SIGKILL, the reaper reads end-of-file and kills every group still
//!   listed: the death signal reaches only the direct child, not what make or mmdebstrap forked.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("repro-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    })
}

/// The reaper's script: it keeps the listed groups (`+PGID` adds, `-PGID` removes) and kills
/// those left when its input ends. Only the shell's own words: a `sed` per removal was two
/// processes on the host's cores each time a child ended, beside a booting guest.
const REAPER: &str = r#"live=" "
while read -r line; do
  g=${line#?}
  case $line in
    +*) live="$live$g " ;;
    -*) case $live in *" $g "*) live="${live%% $g *} ${live#* $g }" ;; esac ;;
  esac
done
for g in $live; do kill -s KILL -- "-$g" 2>/dev/null; done"#;

/// The reaper's input, `None` when it could not be started (the death signal still covers
/// direct children).
fn reaper() -> &'static Mutex<Option<ChildStdin>> {
    static REAPER_IN: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
    REAPER_IN.get_or_init(|| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", REAPER])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in repro's group: a Ctrl-C at the terminal must not end it first.
            .process_group(0);
        let stdin = cmd.spawn().ok().and_then(|mut c| c.stdin.take());
        Mutex::new(stdin)
    })
}

fn tell_reaper(line: String) {
    if let Some(w) = reaper().lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = writeln!(w, "{line}");
    }
}

fn live() -> &'static Mutex<HashSet<i32>> {
    static LIVE: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// Spawns `cmd` as a guarded child: own process group, killed if repro dies, registered.
pub fn spawn_guarded(mut cmd: Command) -> std::io::Result<Child> {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    let child = rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))??;
    live()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(child.id() as i32);
    tell_reaper(format!("+{}", child.id()));
    Ok(child)
}

/// Runs the command in `cmd` to its end as a guarded child and collects what it printed, like
/// `Command::output` (stdin is empty, stdout and stderr are captured). The command is taken
/// out of `cmd`.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn_guarded(std::mem::replace(cmd, Command::new("true")))?;
    let pid = child.id();
    let out = child.wait_with_output();
    forget(pid);
    out
}

/// Runs the command in `cmd` to its end as a guarded child, with the stdio it was given (stdin
/// empty unless set), like `Command::status`. The command is taken out of `cmd`.
pub fn status(cmd: &mut Command) -> std::io::Result<std::process::ExitStatus> {
    let mut child = spawn_guarded(std::mem::replace(cmd, Command::new("true")))?;
    let pid = child.id();
    let status = child.wait();
    forget(pid);
    status
}

/// Kills the process group led by `pid` and forgets it.
pub fn kill_group(pid: u32) {
    let pgid = pid as i32;
    if live().lock().unwrap_or_else(|e| e.into_inner()).remove(&pgid) {
        // SAFETY: plain syscall; the group was created by us and not yet reaped.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        tell_reaper(format!("-{pgid}"));
    }
}

/// Forgets a group whose leader has been reaped (it must not be killed by id any more).
pub fn forget(pid: u32) {
    if live().lock().unwrap_or_else(|e| e.into_inner()).remove(&(pid as i32)) {
        tell_reaper(format!("-{pid}"));
    }
}

/// Kills every live group. Used by the signal handler and when the process ends (after a panic
/// too). A panic inside one run kills only that run's guests, as its instances are dropped.
pub fn kill_all() {
    let groups: Vec<i32> = live().lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
    for g in groups {
        // SAFETY: plain syscall on groups we created.
        unsafe {
            libc::kill(-g, libc::SIGKILL);
        }
        tell_reaper(format!("-{g}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_group_kills_the_child() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = spawn_guarded(cmd).unwrap();
        kill_group(child.id());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// The reaper kills, at the end of its input, the groups still listed and no other: three
    /// listed, the first and the last taken off again (the edges of its list).
    #[test]
    fn the_reaper_kills_only_the_groups_still_listed() {
        use std::os::unix::process::ExitStatusExt;
        let mut sleepers: Vec<Child> = (0..3)
            .map(|_| Command::new("sleep").arg("30").process_group(0).spawn().unwrap())
            .collect();
        let ids: Vec<u32> = sleepers.iter().map(|c| c.id()).collect();
        let mut reaper = Command::new("sh")
            .args(["-c", REAPER])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = reaper.stdin.take().unwrap();
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        write!(input, "+{a}\n+{b}\n+{c}\n-{a}\n-{c}\n-999999\n").unwrap();
        drop(input);
        assert!(reaper.wait().unwrap().success());
        assert_eq!(sleepers[1].wait().unwrap().signal(), Some(libc::SIGKILL));
        for i in [0, 2] {
            assert!(sleepers[i].try_wait().unwrap().is_none(), "group {} was killed", ids[i]);
            sleepers[i].kill().unwrap();
            sleepers[i].wait().unwrap();
        }
    }
}
