//! Boot: start every node's QEMU (a node that others link to first), forward its events, and
//! wait for each guest to answer: its agent's hello, or an authenticated SSH session where the
//! guest has no agent port.

use crate::console::ConsoleEvent;
use crate::run::event::{forward, Event, NodeEvent};
use crate::run::guests::Live;
use crate::run::infra::{InfraError, Source, Stop};
use crate::run::progress::{Phase, Progress};
use crate::run::state::RunState;
use crate::run::watch::Waiting;
use crate::vm::Instance;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long past the boot timeout the run waits for the waiters to report.
const SSH_GRACE: Duration = Duration::from_secs(5);

impl RunState {
    pub async fn boot(&mut self) -> Result<(), Stop> {
        self.watch.check_cancel()?;
        let started = Instant::now();
        let accel: Vec<String> = self
            .prepared
            .iter()
            .flatten()
            .map(|p| format!("{} {}", p.config.arch, p.accel.accel))
            .collect();
        self.note(Progress::Phase {
            phase: Phase::Boot,
            detail: format!("{} node(s), {}", self.scenario.nodes.len(), accel.join(", ")),
        });
        let result = self.boot_nodes().await;
        let elapsed = started.elapsed();
        self.timings.boot_to_ssh = Some(elapsed.as_secs_f64());
        self.note(Progress::PhaseDone {
            phase: Phase::Boot,
            elapsed,
        });
        result
    }

    async fn boot_nodes(&mut self) -> Result<(), Stop> {
        let waiting = Waiting::new(
            Phase::Boot,
            "every node's agent or SSH",
            self.scenario.boot_timeout + SSH_GRACE,
        );
        self.launch().await?;
        crate::failpoint::panic_here("run.boot", &self.scenario.name);
        let halt = self.halt_flag();
        let listening = self.start_waiters(&halt);
        let ready = self.await_up(&listening, &waiting).await;
        halt.store(true, Ordering::SeqCst);
        ready
    }

    /// Starts every node's QEMU. Those that started are kept (and torn down) even when another
    /// did not.
    async fn launch(&mut self) -> Result<(), Stop> {
        let mut launches = Vec::new();
        for (i, p) in self.prepared.iter().enumerate() {
            let config = p.as_ref().map(|p| p.config.clone());
            let (name, dir) = (self.name(i), self.node_dir(i));
            launches.push(async move {
                let launched: Result<Instance, Source> = match config {
                    Some(config) => Instance::launch(&name, config, &dir).await.map_err(Into::into),
                    None => Err(format!("node `{name}` was not prepared").into()),
                };
                launched
            });
        }
        // A node that listens on a private link starts first, so the others can connect.
        let mut results = Vec::new();
        let mut launches = launches.into_iter();
        if self.scenario.nodes.len() > 1 {
            if let Some(first) = launches.next() {
                results.push(first.await);
            }
        }
        results.extend(futures::future::join_all(launches).await);
        let mut live = Live { instances: Vec::new() };
        let mut failed: Option<InfraError> = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(mut instance) => {
                    forward(i, &mut instance, self.watch.sender());
                    self.watch.attach(i, instance.tails());
                    live.instances.push(Some(instance));
                }
                Err(source) => {
                    let node = self.name(i);
                    failed.get_or_insert(InfraError::QemuStart { node, source });
                    live.instances.push(None);
                }
            }
        }
        self.guests = Box::new(live);
        failed.map_or(Ok(()), |e| Err(e.into()))
    }

    /// One thread per node waits for its guest to answer ([`crate::guest::Reach::wait_up`]);
    /// each reports an [`Event::Up`]. The flags say when sshd has said on the console that it
    /// listens.
    fn start_waiters(&self, halt: &Arc<AtomicBool>) -> Vec<Arc<AtomicBool>> {
        let deadline = std::time::Instant::now() + self.scenario.boot_timeout;
        (0..self.scenario.nodes.len())
            .map(|i| {
                let listening = Arc::new(AtomicBool::new(false));
                let (running, reach, halt) = (self.guests.ssh_port(i).is_some(), self.reach(i), halt.clone());
                let (tx, up) = (self.watch.sender(), listening.clone());
                std::thread::spawn(move || {
                    let session = match running {
                        true => reach
                            .wait_up(0, deadline, &halt, &up)
                            .map_err(|e| crate::errors::chain(&e)),
                        false => Err("QEMU is not running".to_string()),
                    };
                    let _ = tx.send(Event::Up(i, session));
                });
                listening
            })
            .collect()
    }

    /// Waits for a session on every node.
    pub async fn await_up(&mut self, listening: &[Arc<AtomicBool>], waiting: &Waiting) -> Result<(), Stop> {
        let mut ready = 0;
        while ready < listening.len() {
            match self.watch.next(waiting).await? {
                Event::Node(i, NodeEvent::Console(ConsoleEvent::SshdListening)) => {
                    if let Some(flag) = listening.get(i) {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
                Event::Up(i, Ok((session, link))) => {
                    ready += 1;
                    self.sessions[i] = Some(session);
                    self.links[i] = Some(link);
                }
                Event::Up(i, Err(why)) => {
                    let console = self.watch.console_tail(i);
                    return Err(InfraError::NeverUp {
                        node: self.name(i),
                        why,
                        console,
                    }
                    .into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}
