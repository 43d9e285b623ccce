//! Child processes that can never outlive repro.
//!
//! Every guest process is spawned
//! - in its own process group, so that one `kill(-pgid)` takes it and anything it forked;
//! - with `PR_SET_PDEATHSIG(SIGKILL)`, so that the kernel kills it if repro dies, even by SIGKILL;
//! - from one long-lived spawner thread, because the death signal fires when the *thread* that
//!   forked the child exits, and tokio's worker threads come and go;
//! - into a registry of live groups that the signal handler and the panic hook kill.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
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
    Ok(child)
}

/// Kills the process group led by `pid` and forgets it.
pub fn kill_group(pid: u32) {
    let pgid = pid as i32;
    if live().lock().unwrap_or_else(|e| e.into_inner()).remove(&pgid) {
        // SAFETY: plain syscall; the group was created by us and not yet reaped.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Forgets a group whose leader has been reaped (it must not be killed by id any more).
pub fn forget(pid: u32) {
    live().lock().unwrap_or_else(|e| e.into_inner()).remove(&(pid as i32));
}

/// Kills every live group. Used by the signal handler and the panic hook.
pub fn kill_all() {
    let groups: Vec<i32> = live().lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
    for g in groups {
        // SAFETY: plain syscall on groups we created.
        unsafe {
            libc::kill(-g, libc::SIGKILL);
        }
    }
}

/// Installs a panic hook that kills every guarded child before the default hook runs.
pub fn install_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        prev(info);
    }));
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
}
