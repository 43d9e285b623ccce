//! Prepare: the run's SSH key, then each node's kernel, image and per-run layers (cached
//! artifacts; blocking work off the async threads).

use crate::run::infra::{InfraError, Stop};
use crate::run::prepare::prepare_node;
use crate::run::progress::{Phase, Progress};
use crate::run::state::RunState;
use tokio::time::Instant;

impl RunState {
    pub async fn prepare(&mut self) -> Result<(), Stop> {
        let started = Instant::now();
        self.note(Progress::Phase {
            phase: Phase::Image,
            detail: "kernel and image".into(),
        });
        let result = self.prepare_nodes().await;
        let ignores_nothing = self.scenario.expect.ignore.is_empty();
        for p in self.prepared.iter_mut().flatten() {
            if self.vmcore || self.gdb {
                // Keep a panicked guest alive for the dump or the debugger: without a pvpanic
                // driver (Debian's arm64 kernels have none) `panic=-1` would reset it, and
                // -no-reboot would end QEMU.
                p.config.cmdline.push_str(" panic=0");
                // An oops panics, so that the faulting task is still there, on its CPU, when
                // the dump is taken or gdb attaches; not where the scenario ignores some
                // reports, which must then not end the run.
                if ignores_nothing {
                    p.config.cmdline.push_str(" oops=panic");
                }
            }
            if self.gdb {
                // gdb takes the vmlinux's addresses as they are.
                p.config.cmdline.push_str(" nokaslr");
                p.config.gdb_socket = Some(p.config.workdir.join(crate::run::phase::debug::QEMU_SOCKET));
            }
        }
        let elapsed = started.elapsed();
        self.timings.image = Some(elapsed.as_secs_f64());
        self.note(Progress::PhaseDone {
            phase: Phase::Image,
            elapsed,
        });
        result
    }

    async fn prepare_nodes(&mut self) -> Result<(), Stop> {
        let pubkey = crate::guest::keygen(&self.key).map_err(|e| InfraError::Keygen(Box::new(e)))?;
        for i in 0..self.scenario.nodes.len() {
            let (roots, scenario, dir) = (self.roots.clone(), self.scenario.clone(), self.node_dir(i));
            let (pubkey, progress) = (pubkey.clone(), self.progress.clone());
            let prepared = tokio::task::spawn_blocking(move || {
                let node = &scenario.nodes[i];
                prepare_node(&roots, &scenario, node, &dir, &pubkey, &|p| {
                    let _ = progress.send(p);
                })
            })
            .await;
            let node = self.name(i);
            match prepared {
                Ok(Ok(p)) => self.prepared[i] = Some(p),
                Ok(Err(e)) => return Err(InfraError::Prepare { node, source: e }.into()),
                Err(e) => {
                    return Err(InfraError::Prepare {
                        node,
                        source: Box::new(e),
                    }
                    .into())
                }
            }
        }
        Ok(())
    }
}
