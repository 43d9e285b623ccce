//! The serial console: captured to `console.log` and streamed live to the crash detector.

mod tail;

pub use tail::Tail;

use repro_oops::{Detector, Report};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the console tells the run.
#[derive(Debug, Clone)]
pub enum ConsoleEvent {
    /// The guest's userland came up (`repro-guest: up <release>`).
    GuestUp { release: String },
    /// sshd printed that it listens.
    SshdListening,
    /// The kernel printed the line repro wrote to `/dev/kmsg` ([`SETTLED`] and its token):
    /// everything the kernel logged before it is on the console.
    Settled { token: String },
    /// A crash report has begun; it is not complete yet.
    CrashStarted { at: Instant },
    /// A complete crash report.
    Crash { report: Box<Report>, at: Instant },
    /// The console closed (QEMU exited).
    Eof,
}

/// A report still incomplete after this long without console output is flushed as it is.
const REPORT_QUIET_FLUSH: Duration = Duration::from_secs(3);
/// A report whose body has ended (`---[ end trace`, ...) is closed after this much quiet: its
/// tail (the register dump after the end marker) comes right behind it.
const TAIL_QUIET_FLUSH: Duration = Duration::from_millis(300);

/// What repro writes to the guest's `/dev/kmsg`, followed by the run's token, to know that the
/// console has caught up with the kernel's log.
pub const SETTLED: &str = "repro: console settled ";

/// Markers printed by the guest's init scripts and kernel, matched on whole lines.
fn marker(line: &str) -> Option<ConsoleEvent> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rel) = line.strip_prefix("repro-guest: up ") {
        return Some(ConsoleEvent::GuestUp {
            release: rel.trim().to_string(),
        });
    }
    if line.contains("Server listening on 0.0.0.0 port 22") {
        return Some(ConsoleEvent::SshdListening);
    }
    if let Some((_, token)) = line.split_once(SETTLED) {
        return Some(ConsoleEvent::Settled {
            token: token.trim().to_string(),
        });
    }
    None
}

/// Reads `src` to its end: appends to `log`, keeps `tail`, runs the detector, reports events.
/// After a flush request (the guest stopped: nothing more will come), bytes already in flight
/// are still read for this long before the report in progress is closed.
const FLUSH_DRAIN: Duration = Duration::from_millis(100);

/// What the run tells the capture about the guest.
enum Message {
    Stopped,
    ExpectBoot,
}

/// Tells the capture what the run did to the guest.
#[derive(Clone)]
pub struct Control(mpsc::UnboundedSender<Message>);

impl Control {
    /// The guest has stopped (for example QMP reported GUEST_PANICKED), so a report in progress
    /// is complete as it stands.
    pub fn flush(&self) {
        let _ = self.0.send(Message::Stopped);
    }

    /// The run is about to reset the guest (a power cut): its next boot is not an unexpected
    /// reboot.
    pub fn expect_boot(&self) {
        let _ = self.0.send(Message::ExpectBoot);
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Reads `src` to its end: appends to `log`, keeps `tail`, runs the detector, reports events.
pub fn capture<R>(
    mut src: R,
    log: &Path,
    tail: Arc<Mutex<Tail>>,
) -> std::io::Result<(mpsc::UnboundedReceiver<ConsoleEvent>, Control)>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut file = std::fs::File::create(log)?;
    let log = log.to_path_buf();
    let (tx, rx) = mpsc::unbounded_channel();
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        let mut detector = Detector::new();
        let mut line = Vec::<u8>::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut started = false;
        let mut last_byte = Instant::now();
        let mut flush_at: Option<Instant> = None;
        loop {
            let quiet = if detector.in_tail() {
                TAIL_QUIET_FLUSH
            } else {
                REPORT_QUIET_FLUSH
            };
            let close_at = match (detector.in_report(), flush_at) {
                (false, _) => None,
                (true, Some(f)) => Some(f.min(last_byte + quiet)),
                (true, None) => Some(last_byte + quiet),
            };
            let read = tokio::select! {
                r = src.read(&mut buf) => r,
                Some(c) = control_rx.recv() => {
                    match c {
                        Message::Stopped => flush_at = Some(Instant::now() + FLUSH_DRAIN),
                        Message::ExpectBoot => detector.expect_boot(),
                    }
                    continue;
                }
                _ = sleep_until_opt(close_at) => {
                    for report in detector.finish() {
                        let _ = tx.send(ConsoleEvent::Crash { report: Box::new(report), at: Instant::now() });
                    }
                    started = false;
                    flush_at = None;
                    continue;
                }
            };
            last_byte = Instant::now();
            let n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let written = file.write_all(chunk);
            if let Ok(mut t) = tail.lock() {
                t.push(chunk);
                if let Err(e) = &written {
                    t.note_write_error(&log, e);
                }
            }
            for &b in chunk {
                if b == b'\n' {
                    if let Some(ev) = marker(&String::from_utf8_lossy(&line)) {
                        let _ = tx.send(ev);
                    }
                    line.clear();
                } else if line.len() < 4096 {
                    line.push(b);
                }
            }
            let reports = detector.feed(chunk);
            let now = Instant::now();
            if !started && (detector.in_report() || !reports.is_empty()) {
                let _ = tx.send(ConsoleEvent::CrashStarted { at: now });
            }
            started = detector.in_report();
            for report in reports {
                let _ = tx.send(ConsoleEvent::Crash {
                    report: Box::new(report),
                    at: now,
                });
            }
        }
        let _ = file.flush();
        for report in detector.finish() {
            let _ = tx.send(ConsoleEvent::Crash {
                report: Box::new(report),
                at: Instant::now(),
            });
        }
        let _ = tx.send(ConsoleEvent::Eof);
    });
    Ok((rx, Control(control_tx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert!(
            matches!(marker("repro-guest: up 6.1.0-56-cloud-amd64\r\n"), Some(ConsoleEvent::GuestUp { release }) if release == "6.1.0-56-cloud-amd64")
        );
        assert!(matches!(
            marker("Server listening on 0.0.0.0 port 22."),
            Some(ConsoleEvent::SshdListening)
        ));
        assert!(marker("[    1.0] random kernel line").is_none());
        assert!(matches!(
            marker("[    3.141592] repro: console settled 5f3a\r\n"),
            Some(ConsoleEvent::Settled { token }) if token == "5f3a"
        ));
    }
}
