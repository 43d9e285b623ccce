//! Setup and background steps, over each node's link (its agent or SSH). Blocking; runs on
//! plain threads.

use super::infra::StepError;
use super::setup::SetupStep;
use crate::guest::{Link, Session};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long connecting for one step may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the setup steps in order, each in a session of its own to its node, logging to `log`.
/// A step that exits non-zero stops the sequence.
pub fn run_setup(steps: &[SetupStep], links: &[Link], names: &[String], log: &Path) -> Result<(), StepError> {
    let mut file = create_log(log)?;
    for (n, step) in steps.iter().enumerate() {
        let node = &names[step.node];
        let session = links[step.node].connect(CONNECT_TIMEOUT).map_err(|e| StepError::Ssh {
            step: step.label.clone(),
            node: node.clone(),
            source: Box::new(e),
        })?;
        run_step(&session, n, step, node, &mut file)?;
    }
    Ok(())
}

/// Runs the steps in order on one `session` (to node `node`), logging to `log`: the session
/// that proved the node up after a power cut, so a guest that has just booted sees no second
/// SSH handshake.
pub fn run_on_session(session: &Session, steps: &[SetupStep], node: &str, log: &Path) -> Result<(), StepError> {
    let mut file = create_log(log)?;
    steps
        .iter()
        .enumerate()
        .try_for_each(|(n, step)| run_step(session, n, step, node, &mut file))
}

fn create_log(log: &Path) -> Result<std::fs::File, StepError> {
    std::fs::File::create(log).map_err(|source| StepError::Log {
        path: log.to_path_buf(),
        source,
    })
}

/// Runs setup step number `n` on `session` (to the step's node, named `node`) and appends its
/// output to `log`. A failure names the step and ends with its last words.
fn run_step(
    session: &Session,
    n: usize,
    step: &SetupStep,
    node: &str,
    log: &mut std::fs::File,
) -> Result<(), StepError> {
    // The script's output goes to a file that `cat` returns, so a daemon it starts never
    // holds an SSH channel open.
    let stem = format!("/run/repro/setup-{n}");
    let cmd = format!(
        "mkdir -p /run/repro && cat > {stem}.sh && bash {stem}.sh < /dev/null > {stem}.log 2>&1; rc=$?; cat {stem}.log; \
         [ $rc -eq 0 ] || dmesg | tail -n 6 | sed 's/^/dmesg: /'; exit $rc"
    );
    let out = session.exec(&cmd, step.script.as_bytes()).map_err(|e| StepError::Ssh {
        step: step.label.clone(),
        node: node.to_string(),
        source: Box::new(e),
    })?;
    let _ = writeln!(
        log,
        "=== {n}: {} on {node}: exit {} after {:.2}s ===",
        step.label,
        out.status,
        out.elapsed.as_secs_f64()
    );
    let _ = log.write_all(&out.stdout);
    if !out.stdout.is_empty() && !out.stdout.ends_with(b"\n") {
        let _ = log.write_all(b"\n");
    }
    if out.status != 0 {
        return Err(StepError::Failed {
            step: step.label.clone(),
            node: node.to_string(),
            status: out.status,
            tail: last_words(&out.stdout),
        });
    }
    Ok(())
}

/// The step's own last five lines, then the kernel's last three.
fn last_words(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let (kernel, own): (Vec<&str>, Vec<&str>) = text.trim().lines().partition(|l| l.starts_with("dmesg: "));
    own[own.len().saturating_sub(5)..]
        .iter()
        .chain(&kernel[kernel.len().saturating_sub(3)..])
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Background step `index`: runs until it ends or the run stops (the guest goes away). Its output is
/// appended live to `background-N.log` in `dir`.
pub fn run_background(index: usize, link: &Link, script: &str, dir: &Path, halt: &AtomicBool) {
    let log_path = dir.join(format!("background-{index}.log"));
    let Ok(mut log) = std::fs::File::create(&log_path) else {
        return;
    };
    let session = match link.connect(CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(log, "repro: cannot connect: {}", crate::errors::chain(&e));
            return;
        }
    };
    if halt.load(Ordering::SeqCst) {
        return;
    }
    let path = format!("/run/repro/background-{index}.sh");
    let cmd = format!("mkdir -p /run/repro && cat > {path} && exec bash {path} < /dev/null");
    let ran = session.exec_with(&cmd, script.as_bytes(), &mut |_, data| {
        let _ = log.write_all(data);
    });
    if let Ok(output) = ran {
        let _ = writeln!(log, "repro: background step exited {}", output.status);
    }
}
