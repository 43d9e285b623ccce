//! Debug (`repro run --gdb`): after a crash, each crashed guest is kept stopped and its QEMU
//! gdbstub is served on `gdb.sock` in its node directory. The run prints the gdb command and
//! waits until every gdb has detached, or the user presses Ctrl-C; then it tears down as usual.
//! The verdict stands either way.

use crate::debugger;
use crate::report::DebugSession;
use crate::run::event::Event;
use crate::run::infra::Stop;
use crate::run::progress::{Phase, Progress};
use crate::run::state::RunState;
use crate::run::watch::Waiting;
use crate::scenario::FaultAction;
use std::path::PathBuf;
use std::time::Duration;

/// The socket QEMU's gdbstub listens on (relative to the node directory).
pub const QEMU_SOCKET: &str = "gdb-qemu.sock";
/// The socket the user's gdb connects to, which repro relays to QEMU's.
pub const SOCKET: &str = "gdb.sock";
/// How long a debugging session may last.
const SESSION_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How a session ends on Ctrl-C (the CLI then does not count the run as interrupted).
pub const ENDED_BY_CTRL_C: &str = "ended by Ctrl-C";

fn ended(relayed: Result<crate::vm::gdb::Ended, String>) -> String {
    match relayed {
        Ok(crate::vm::gdb::Ended::Detached) => "detached".into(),
        Ok(crate::vm::gdb::Ended::StubClosed) => "QEMU closed the gdb connection".into(),
        Err(e) => e,
    }
}

impl RunState {
    /// With `--gdb`, after a crash: saves the vmcores first (gdb may change the guest), then
    /// offers a debugger on every crashed guest and waits until each detaches, or Ctrl-C.
    pub async fn debug(&mut self) {
        if !self.gdb {
            return;
        }
        if self.vmcore {
            self.save_vmcores().await;
        }
        let mut crashed = self.watch.observer.crash_nodes.clone();
        crashed.sort_unstable();
        crashed.dedup();
        let mut relays = Vec::new();
        for node in crashed {
            let (session, relay) = self.offer(node).await;
            relays.extend(relay.map(|r| (node, r)));
            self.debugger.push(session);
        }
        let mut open: Vec<usize> = relays.iter().map(|(n, _)| *n).collect();
        let waiting = Waiting::new(Phase::Detection, "gdb to detach (or Ctrl-C)", SESSION_LIMIT);
        while !open.is_empty() {
            let (node, ended) = match self.watch.next(&waiting).await {
                Ok(Event::DebuggerDone(node, result)) => (Some(node), ended(result)),
                Ok(_) => continue,
                Err(Stop::Interrupted) => (None, ENDED_BY_CTRL_C.to_string()),
                Err(Stop::Infra(e)) => (None, format!("ended: {}", crate::errors::chain(&e))),
                Err(Stop::Crash) => continue,
            };
            let name = |i: usize| self.scenario.nodes[i].name.clone();
            for s in &mut self.debugger {
                if s.ended.is_empty() && node.is_none_or(|n| s.node == name(n)) {
                    s.ended = ended.clone();
                }
            }
            match node {
                Some(n) => open.retain(|&o| o != n),
                None => open.clear(),
            }
        }
        // A gdb still attached after Ctrl-C or a timeout must not drive the guest any more.
        for (node, relay) in relays {
            relay.abort();
            let dir = self.node_dir(node);
            let _ = std::fs::remove_file(dir.join(SOCKET));
            let _ = std::fs::remove_file(dir.join(QEMU_SOCKET));
        }
    }

    /// Stops node `node` (where pvpanic has not already), serves its gdbstub and prints the
    /// gdb command. Without a relay, the session could not be offered (`ended` says why).
    async fn offer(&mut self, node: usize) -> (DebugSession, Option<tokio::task::JoinHandle<()>>) {
        let dir = self.node_dir(node);
        let (socket, stub) = (dir.join(SOCKET), dir.join(QEMU_SOCKET));
        let mut session = DebugSession {
            node: self.name(node),
            socket: std::path::absolute(&socket).unwrap_or(socket.clone()),
            command: String::new(),
            ended: String::new(),
        };
        if let Err(e) = self.guests.fault(node, FaultAction::Stop).await {
            session.ended = format!("cannot stop the guest: {e}");
            return (session, None);
        }
        let listener = match crate::vm::unix::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                session.ended = format!("cannot listen on {}: {e}", socket.display());
                return (session, None);
            }
        };
        session.command = self.gdb_command(node, &session.socket);
        let sender = self.watch.sender();
        let relay = tokio::spawn(async move {
            let relayed = crate::vm::gdb::relay(listener, &stub).await;
            let _ = sender.send(Event::DebuggerDone(
                node,
                relayed.map_err(|e| format!("the gdb relay failed: {e}")),
            ));
        });
        self.note(Progress::Note(format!(
            "{}: the guest is stopped at the crash; debug it with\n\n    {}\n\n  the run ends when gdb detaches (or on Ctrl-C)",
            session.node, session.command
        )));
        (session, Some(relay))
    }

    /// The gdb command line for node `node`: its kernel's vmlinux and gdb scripts, the socket,
    /// and the thread of the CPU that printed its report.
    fn gdb_command(&self, node: usize, socket: &std::path::Path) -> String {
        let Some(prepared) = self.prepared.get(node).and_then(|p| p.as_ref()) else {
            return String::new();
        };
        let observer = &self.watch.observer;
        // The node's last report: the one that ended the run, not an earlier warning.
        let cpu = observer
            .crash_nodes
            .iter()
            .rposition(|&n| n == node)
            .and_then(|i| observer.crashes.get(i))
            .and_then(|r| r.cpu);
        let missing = PathBuf::from("VMLINUX");
        // The gdb command line loads no module symbols (that needs lx-symbols), so none are given.
        let kernel = debugger::Kernel {
            vmlinux: prepared.kernel.vmlinux.as_deref().unwrap_or(&missing),
            modules: &[],
            gdb_scripts: prepared.kernel.gdb_scripts.as_deref(),
            slob: false,
        };
        let arch = self.scenario.nodes[node].arch;
        let line = debugger::gdb_line(&kernel, socket, cpu, arch);
        if prepared.kernel.vmlinux.is_none() {
            return format!("{line}   # this kernel has no vmlinux: run again with --debug-info full");
        }
        line
    }
}
