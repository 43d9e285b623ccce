//! SSH into guests with the `ssh2` crate: connect with the run's key, run commands with their
//! exit status and output. Blocking; callers run it on blocking threads.

use super::command::{keep_tail, Error, Output};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Session {
    session: ssh2::Session,
}

impl Session {
    /// One attempt: TCP connect, handshake, public-key authentication as root.
    pub fn connect(port: u16, key: &Path, timeout: Duration) -> Result<Session, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|source| Error::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let mut session = ssh2::Session::new().map_err(|source| Error::Handshake { addr, source })?;
        session.set_tcp_stream(tcp);
        session.set_timeout(timeout.as_millis() as u32);
        session
            .handshake()
            .map_err(|source| Error::Handshake { addr, source })?;
        session
            .userauth_pubkey_file("root", None, key, None)
            .map_err(|source| Error::Auth {
                user: "root".into(),
                addr,
                key: key.to_path_buf(),
                source,
            })?;
        // Commands may run for a long time; their deadline is the caller's.
        session.set_timeout(0);
        session.set_keepalive(true, 5);
        Ok(Session { session })
    }

    /// Runs `command`, feeding `stdin`, handing each chunk of output to `live` as it arrives
    /// and keeping the end of each stream ([`super::Session::exec_with`]).
    pub fn exec_with(&self, command: &str, stdin: &[u8], live: &mut dyn FnMut(u8, &[u8])) -> Result<Output, Error> {
        let start = Instant::now();
        let ch_err = |source| Error::Channel {
            command: command.to_string(),
            source,
        };
        let io_err = |source| Error::Io {
            command: command.to_string(),
            source,
        };
        let mut ch = self.session.channel_session().map_err(ch_err)?;
        ch.exec(command).map_err(ch_err)?;
        ch.write_all(stdin).map_err(io_err)?;
        ch.send_eof().map_err(ch_err)?;
        // Read both streams without blocking on either, so neither can fill its window and stall.
        self.session.set_blocking(false);
        let result = (|| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut buf = [0u8; 16384];
            loop {
                let mut progressed = false;
                for stream in [0, 1] {
                    let r = if stream == 0 {
                        ch.read(&mut buf)
                    } else {
                        ch.stderr().read(&mut buf)
                    };
                    match r {
                        Ok(0) => {}
                        Ok(n) => {
                            progressed = true;
                            live(stream, &buf[..n]);
                            keep_tail(if stream == 0 { &mut out } else { &mut err }, &buf[..n]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(io_err(e)),
                    }
                }
                if ch.eof() && !progressed {
                    break;
                }
                if !progressed {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Ok((out, err))
        })();
        self.session.set_blocking(true);
        let (stdout, stderr) = result?;
        ch.wait_close().map_err(ch_err)?;
        let status = ch.exit_status().map_err(ch_err)?;
        Ok(Output {
            status,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        })
    }
}
