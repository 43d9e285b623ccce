//! The running guests, as the phases drive them: QMP actions, SSH ports, dumps and teardown.
//! Behind a trait so that the run's event handling can be driven without QEMU.

use super::infra::Source;
use super::workload::Snapshot;
use crate::guest::agent::Conn;
use crate::scenario::FaultAction;
use crate::vm::Instance;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The internal snapshot `restore = "snapshot"` saves after setup.
const SNAPSHOT_TAG: &str = "repro-setup";
/// How long a memory dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(300);

pub trait Guests: Send + Sync {
    /// A scenario fault on `node`: its private links down or up, or the whole guest stopped or
    /// continued.
    fn fault(&self, node: usize, action: FaultAction) -> BoxFuture<'_, Result<(), Source>>;
    /// Saves (savevm) or restores (loadvm) the post-setup snapshot of `node`.
    fn snapshot(&self, node: usize, op: Snapshot) -> BoxFuture<'_, Result<(), Source>>;
    /// A hard reset with the reboot action set to reset.
    fn power_cut(&self, node: usize) -> BoxFuture<'_, Result<(), Source>>;
    /// What a reset does from now on: reset the guest, or end QEMU.
    fn reboot_action(&self, node: usize, reset: bool) -> BoxFuture<'_, Result<(), Source>>;
    /// The host port forwarded to `node`'s sshd.
    fn ssh_port(&self, node: usize) -> Option<u16>;
    /// The channel to `node`'s guest agent.
    fn agent(&self, node: usize) -> Option<Arc<Conn>>;
    /// Each node's QEMU command line, `None` where it did not start.
    fn command_lines(&self) -> Vec<Option<String>>;
    /// Saves `node`'s memory as a kdump-compressed `vmcore` in `dir`.
    fn dump(&self, node: usize, dir: PathBuf) -> BoxFuture<'_, Result<PathBuf, String>>;
    /// Asks every QEMU to quit, and kills what is left.
    fn shutdown(&mut self) -> BoxFuture<'_, ()>;
}

/// No guest is running (before boot, or after a boot that started none).
pub struct NoGuests;

fn no_guest() -> Source {
    "no QEMU is running for this node".into()
}

impl Guests for NoGuests {
    fn fault(&self, _: usize, _: FaultAction) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async { Err(no_guest()) })
    }
    fn snapshot(&self, _: usize, _: Snapshot) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async { Err(no_guest()) })
    }
    fn power_cut(&self, _: usize) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async { Err(no_guest()) })
    }
    fn reboot_action(&self, _: usize, _: bool) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async { Err(no_guest()) })
    }
    fn ssh_port(&self, _: usize) -> Option<u16> {
        None
    }
    fn agent(&self, _: usize) -> Option<Arc<Conn>> {
        None
    }
    fn command_lines(&self) -> Vec<Option<String>> {
        Vec::new()
    }
    fn dump(&self, _: usize, _: PathBuf) -> BoxFuture<'_, Result<PathBuf, String>> {
        Box::pin(async { Err("no QEMU is running for this node".to_string()) })
    }
    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Real QEMUs, one per node (`None` where one did not start).
pub struct Live {
    pub instances: Vec<Option<Instance>>,
}

impl Live {
    fn get(&self, node: usize) -> Result<&Instance, Source> {
        self.instances.get(node).and_then(|i| i.as_ref()).ok_or_else(no_guest)
    }
}

impl Guests for Live {
    fn fault(&self, node: usize, action: FaultAction) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async move {
            let instance = self.get(node)?;
            match action {
                FaultAction::Stop => instance.qmp.stop().await?,
                FaultAction::Cont => instance.qmp.cont().await?,
                FaultAction::LinkDown | FaultAction::LinkUp => {
                    // Every link is tried; the last failure is the one reported.
                    let up = action == FaultAction::LinkUp;
                    let mut result = Ok(());
                    for link in &instance.config.links {
                        if let Err(e) = instance.qmp.set_link(&format!("nic-{}", link.id), up).await {
                            result = Err(e);
                        }
                    }
                    result?;
                }
            }
            Ok(())
        })
    }

    fn snapshot(&self, node: usize, op: Snapshot) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async move {
            let qmp = &self.get(node)?.qmp;
            match op {
                Snapshot::Save => qmp.savevm(SNAPSHOT_TAG).await?,
                Snapshot::Load => qmp.loadvm(SNAPSHOT_TAG).await?,
            }
            Ok(())
        })
    }

    fn power_cut(&self, node: usize) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async move {
            let i = self.get(node)?;
            i.console_control.expect_boot();
            Ok(i.qmp.power_cut().await?)
        })
    }

    fn reboot_action(&self, node: usize, reset: bool) -> BoxFuture<'_, Result<(), Source>> {
        Box::pin(async move { Ok(self.get(node)?.qmp.reboot_action(reset).await?) })
    }

    fn ssh_port(&self, node: usize) -> Option<u16> {
        self.get(node).ok().map(|i| i.config.ssh_port)
    }

    fn agent(&self, node: usize) -> Option<Arc<Conn>> {
        self.get(node).ok().map(|i| i.agent.clone())
    }

    fn command_lines(&self) -> Vec<Option<String>> {
        self.instances
            .iter()
            .map(|i| i.as_ref().map(|i| i.command_line()))
            .collect()
    }

    fn dump(&self, node: usize, dir: PathBuf) -> BoxFuture<'_, Result<PathBuf, String>> {
        Box::pin(async move {
            let instance = self.get(node).map_err(|e| e.to_string())?;
            save_vmcore(instance, &dir, &instance.node).await
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for instance in self.instances.iter_mut().flatten() {
                instance.shutdown(Duration::from_secs(2)).await;
            }
            self.instances.clear();
        })
    }
}

/// Dumps `instance`'s memory into `dir`/vmcore: QEMU's flattened kdump output, reassembled.
async fn save_vmcore(instance: &Instance, dir: &Path, node: &str) -> Result<PathBuf, String> {
    let (flat, path) = (dir.join("vmcore.flat"), dir.join("vmcore"));
    tokio::time::timeout(DUMP_TIMEOUT, instance.qmp.dump_kdump(&flat))
        .await
        .map_err(|_| format!("timed out after {}s", DUMP_TIMEOUT.as_secs()))?
        .map_err(|e| crate::errors::chain(&e))?;
    let (f, p, d, node) = (flat.clone(), path.clone(), dir.to_path_buf(), node.to_string());
    let machine = instance.config.arch.as_str();
    tokio::task::spawn_blocking(move || {
        let reassembled = crate::vm::dump::reassemble(&f, &p);
        let _ = std::fs::remove_file(&f);
        reassembled?;
        // Best effort: without it the dump is still good for crash(8), only not for drgn.
        if let Err(e) = fill_utsname(&p, &node, machine, &d) {
            tracing::warn!("{}: cannot fill the dump header's utsname: {e}", p.display());
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The dump header's utsname, from the node's name and the boot banner on its console.
fn fill_utsname(vmcore: &Path, node: &str, machine: &str, dir: &Path) -> std::io::Result<()> {
    use std::io::Read;
    let mut console = Vec::new();
    std::fs::File::open(dir.join(crate::vm::CONSOLE_LOG))?
        .take(1 << 20)
        .read_to_end(&mut console)?;
    let head = String::from_utf8_lossy(&console);
    let (release, version) = crate::vm::dump::banner(&head).unwrap_or_default();
    let uts = crate::vm::dump::Uts {
        sysname: "Linux",
        nodename: node,
        release,
        version,
        machine,
    };
    crate::vm::dump::fill_utsname(vmcore, &uts)
}
