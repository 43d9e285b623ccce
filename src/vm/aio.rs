//! How QEMU does its disk I/O: through io_uring where this host lets repro use it, else through
//! QEMU's thread pool.
//!
//! With the thread pool every request is handed to a worker thread and its completion handed
//! back (two wake-ups each). `loadvm` reads the guest's saved RAM out of the root disk's qcow2
//! in 32 KiB requests, so restoring a 112 MiB snapshot of a 1 GiB guest took about 0.25 s that
//! way and 0.10 s through io_uring (measured here, TCG, 2 cores).
//!
//! A kernel can have io_uring turned off (`kernel.io_uring_disabled`) and a container's seccomp
//! profile can refuse it. QEMU is repro's child and inherits both, so a ring that repro itself
//! can set up says QEMU can too. `REPRO_AIO=threads|io_uring` overrides the check (a QEMU built
//! without io_uring support needs `threads`).

use std::fmt;

/// QEMU's `aio=` for every drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aio {
    IoUring,
    Threads,
}

impl fmt::Display for Aio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aio::IoUring => "io_uring",
            Aio::Threads => "threads",
        })
    }
}

/// The setting's name, for the error that names it.
pub const SETTING: &str = "REPRO_AIO";

/// io_uring when [`SETTING`] says so or, unset, when this process can set up a ring.
pub fn choose() -> Result<Aio, String> {
    decide(std::env::var(SETTING).ok().as_deref(), ring_works)
}

/// The pure decision.
fn decide(overridden: Option<&str>, ring_works: impl FnOnce() -> bool) -> Result<Aio, String> {
    match overridden {
        Some("io_uring") => Ok(Aio::IoUring),
        Some("threads") => Ok(Aio::Threads),
        Some(other) => Err(format!("{SETTING}={other:?}: expected `io_uring` or `threads`")),
        None if ring_works() => Ok(Aio::IoUring),
        None => Ok(Aio::Threads),
    }
}

/// Whether `io_uring_setup` gives this process a ring (which is closed again). Asked once.
fn ring_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        // struct io_uring_params: 120 bytes that the kernel fills in; zero asks for defaults.
        let mut params = [0u64; 15];
        // SAFETY: io_uring_setup(2) writes only into `params`, which outlives the call.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
        if fd < 0 {
            return false;
        }
        // SAFETY: `fd` is the ring this call just made and nothing else holds it.
        unsafe { libc::close(fd as libc::c_int) };
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_wins_over_the_check_and_a_wrong_value_is_named() {
        assert_eq!(decide(Some("threads"), || true), Ok(Aio::Threads));
        assert_eq!(decide(Some("io_uring"), || false), Ok(Aio::IoUring));
        let e = decide(Some("uring"), || true).unwrap_err();
        assert!(e.contains("REPRO_AIO=\"uring\"") && e.contains("`threads`"), "{e}");
    }

    #[test]
    fn unset_it_follows_whether_a_ring_can_be_made() {
        assert_eq!(decide(None, || true), Ok(Aio::IoUring));
        assert_eq!(decide(None, || false), Ok(Aio::Threads));
    }
}
