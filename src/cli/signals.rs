//! Ctrl-C: the first SIGINT/SIGTERM/SIGHUP cancels (guests are torn down, reports written);
//! a second one kills every guest and exits now.

use super::exit::INTERRUPTED;
use crate::process;
use tokio::sync::watch;

/// A cancel signal that the user's first Ctrl-C sets.
pub fn cancel_on_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(watch_signals(tx));
    rx
}

async fn watch_signals(cancel: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            eprintln!("\ninterrupted: stopping the guests (again to kill them at once)");
            let _ = cancel.send(true);
        } else {
            process::kill_all();
            std::process::exit(INTERRUPTED);
        }
    }
}
