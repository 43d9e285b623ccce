//! `repro run --gdb`: the user's gdb reaches QEMU's gdbstub through a socket repro serves and
//! relays, so that the run knows when gdb has detached.

use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// How a debugging session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// gdb sent its detach packet (`$D`).
    Detached,
    /// QEMU's gdbstub closed the connection (QEMU went away, e.g. after gdb's `kill`).
    StubClosed,
}

/// Serves gdbs on `listener`, one at a time, each relayed to QEMU's gdbstub at `stub`, until one
/// detaches or the stub goes away. A gdb that leaves without detaching (it failed to start, was
/// killed) ends nothing: the next one is served.
pub async fn relay(listener: UnixListener, stub: &Path) -> std::io::Result<Ended> {
    loop {
        let (gdb, _) = listener.accept().await?;
        let qemu = super::unix::connect(stub).await?;
        if let Some(ended) = relay_one(gdb, qemu).await? {
            return Ok(ended);
        }
    }
}

/// Relays one gdb connection both ways. `Some` if it ended the session.
async fn relay_one(gdb: tokio::net::UnixStream, qemu: tokio::net::UnixStream) -> std::io::Result<Option<Ended>> {
    let (mut gdb_rx, mut gdb_tx) = gdb.into_split();
    let (mut qemu_rx, mut qemu_tx) = qemu.into_split();
    let to_stub = async {
        let mut buf = vec![0u8; 16 << 10];
        let mut last = 0u8;
        let mut detached = false;
        loop {
            let n = gdb_rx.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            // A packet starts with `$`, which is escaped everywhere else; `D` is detach.
            detached |= (last == b'$' && buf[0] == b'D') || buf[..n].windows(2).any(|w| w == b"$D");
            last = buf[n - 1];
            qemu_tx.write_all(&buf[..n]).await?;
        }
        let _ = qemu_tx.shutdown().await;
        Ok::<bool, std::io::Error>(detached)
    };
    let to_gdb = async {
        let copied = tokio::io::copy(&mut qemu_rx, &mut gdb_tx).await;
        let _ = gdb_tx.shutdown().await;
        copied
    };
    tokio::select! {
        detached = to_stub => Ok(detached?.then_some(Ended::Detached)),
        _ = to_gdb => Ok(Some(Ended::StubClosed)),
    }
}

#[cfg(test)]
mod tests {
    use super::Ended;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(
        t: &std::path::Path,
    ) -> (
        tokio::net::UnixListener,
        tokio::task::JoinHandle<std::io::Result<Ended>>,
    ) {
        let (served, stub) = (t.join("gdb.sock"), t.join("gdb-qemu.sock"));
        let qemu = tokio::net::UnixListener::bind(&stub).unwrap();
        let listener = super::super::unix::bind(&served).unwrap();
        let relay = tokio::spawn(async move { super::relay(listener, &stub).await });
        (qemu, relay)
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_only_a_detach_ends_the_session() {
        let t = tempfile::tempdir().unwrap();
        let (qemu, relay) = pair(t.path()).await;
        let served = t.path().join("gdb.sock");
        // A gdb that leaves without detaching: the session goes on.
        let mut gdb = tokio::net::UnixStream::connect(&served).await.unwrap();
        let (mut q, _) = qemu.accept().await.unwrap();
        gdb.write_all(b"$qSupported#37").await.unwrap();
        let mut buf = [0u8; 14];
        q.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"$qSupported#37");
        q.write_all(b"+").await.unwrap();
        let mut ack = [0u8; 1];
        gdb.read_exact(&mut ack).await.unwrap();
        assert_eq!(&ack, b"+");
        drop(gdb);
        assert_eq!(q.read(&mut buf).await.unwrap(), 0);
        drop(q);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!relay.is_finished());
        // The next one detaches.
        let mut gdb = tokio::net::UnixStream::connect(&served).await.unwrap();
        let (mut q, _) = qemu.accept().await.unwrap();
        gdb.write_all(b"+$D#44").await.unwrap();
        drop(gdb);
        let mut got = Vec::new();
        q.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"+$D#44");
        assert_eq!(relay.await.unwrap().unwrap(), Ended::Detached);
    }

    #[tokio::test]
    async fn the_stub_going_away_ends_the_session() {
        let t = tempfile::tempdir().unwrap();
        let (qemu, relay) = pair(t.path()).await;
        let _gdb = tokio::net::UnixStream::connect(t.path().join("gdb.sock"))
            .await
            .unwrap();
        let (q, _) = qemu.accept().await.unwrap();
        drop(q);
        assert_eq!(relay.await.unwrap().unwrap(), Ended::StubClosed);
    }
}
