//! Choosing the accelerator: KVM only when it really runs a Linux kernel here, TCG otherwise.
//!
//! `/dev/kvm` existing is not enough, nor is a vCPU that runs a few instructions: on some hosts
//! (nested setups) QEMU aborts while loading the vCPU's MSRs or the vCPU stops with "KVM internal
//! error", and on others (a nested PVM host) real-mode firmware runs but the kernel's
//! decompressor crawls for minutes and then stops. So the probe boots the guest's own kernel
//! under KVM, with the machine and CPU model repro would use, and wants the kernel's first
//! console line within [`PROBE_DEADLINE`].

pub use super::table::Accel;
use crate::arch::Arch;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The decision and why it was made.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub accel: Accel,
    pub reason: String,
}

/// Picks the accelerator for a guest of `arch` that boots `kernel`. `REPRO_ACCEL=tcg|kvm`
/// overrides the probe.
pub fn choose(arch: Arch, kernel: &Path) -> Choice {
    decide(arch, Arch::host(), std::env::var("REPRO_ACCEL").ok().as_deref(), || {
        probe(kernel)
    })
}

/// The pure decision: an explicit override wins, a foreign guest always gets TCG, and KVM needs
/// a passing probe.
fn decide(
    arch: Arch,
    host: Option<Arch>,
    overridden: Option<&str>,
    probe: impl FnOnce() -> Result<(), String>,
) -> Choice {
    match overridden {
        Some("tcg") => {
            return Choice {
                accel: Accel::Tcg,
                reason: "REPRO_ACCEL=tcg".into(),
            }
        }
        Some("kvm") => {
            return Choice {
                accel: Accel::Kvm,
                reason: "REPRO_ACCEL=kvm".into(),
            }
        }
        _ => {}
    }
    if host != Some(arch) {
        return Choice {
            accel: Accel::Tcg,
            reason: format!("guest {arch} differs from the host arch"),
        };
    }
    match probe() {
        Ok(()) => Choice {
            accel: Accel::Kvm,
            reason: "KVM ran the guest's kernel to its first console line".into(),
        },
        Err(why) => Choice {
            accel: Accel::Tcg,
            reason: format!("KVM unusable: {why}"),
        },
    }
}

/// Whether KVM works is the host's property until it reboots, so a probe that says so decides
/// for the rest: for the life of the process, and in the cache for the host's boot (where KVM
/// does not work the probe costs its whole deadline, and every run would pay it). A probe that
/// failed because of its kernel (one that does not start under TCG either: a bisect's broken
/// commit) says nothing about the host and is not kept.
fn probe(kernel: &Path) -> Result<(), String> {
    static KEPT: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = kept.as_ref() {
        return r.clone();
    }
    let (result, about_the_host) = remembered(kernel);
    if about_the_host {
        *kept = Some(result.clone());
    }
    result
}

/// The probe's result, and whether it is about the host (and so kept).
fn remembered(kernel: &Path) -> (Result<(), String>, bool) {
    if Arch::host() != Some(Arch::X86_64) {
        return (Err("the KVM probe is only implemented for x86_64 hosts".into()), true);
    }
    if let Err(e) = std::fs::File::options().read(true).write(true).open("/dev/kvm") {
        return (Err(format!("cannot open /dev/kvm: {e}")), true);
    }
    let entry = this_boots_entry();
    // Ten runs started at once probe once: the others wait here and read the result.
    let _lock = entry.as_deref().map(crate::cache::lock);
    if let Some(r) = entry.as_deref().and_then(kept) {
        let r = r.map_err(|why| {
            format!(
                "{why} (this host boot's probe, kept in {}; remove it to probe again)",
                entry.as_deref().unwrap_or(Path::new("")).display()
            )
        });
        return (r, true);
    }
    let (result, about_the_host) = blame(probe_uncached(kernel), || {
        first_line_under(Accel::Tcg, kernel, TCG_DEADLINE).is_ok()
    });
    if let (Some(entry), true) = (&entry, about_the_host) {
        let tmp = entry.with_extension("tmp");
        if std::fs::write(&tmp, encode(&result)).is_ok() {
            let _ = crate::cache::install_file(&tmp, entry);
        }
    }
    (result, about_the_host)
}

/// How long the same kernel may take under TCG when KVM failed, to tell the host's fault from
/// the kernel's.
const TCG_DEADLINE: Duration = Duration::from_secs(20);

/// Whose fault a KVM probe's result is: a pass, or a failure of a kernel that reaches its first
/// line under TCG (`starts_under_tcg`, asked only then), is the host's; a failure of a kernel
/// that does not start under TCG either is the kernel's.
fn blame(kvm: Result<(), String>, starts_under_tcg: impl FnOnce() -> bool) -> (Result<(), String>, bool) {
    match kvm {
        Ok(()) => (Ok(()), true),
        Err(why) if starts_under_tcg() => (Err(why), true),
        Err(why) => (
            Err(format!(
                "{why}; not kept for this host: the kernel does not reach its first line under TCG either"
            )),
            false,
        ),
    }
}

/// The cache file that holds this host boot's probe result, if the cache and the boot id exist.
fn this_boots_entry() -> Option<std::path::PathBuf> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let dir = crate::cache::dir("accel").ok()?;
    Some(dir.join(format!("kvm-{}", crate::cache::key(&[boot.trim().as_bytes()]))))
}

/// The result kept in `entry`, if it is there whole (as its seal says) and reads as one.
fn kept(entry: &Path) -> Option<Result<(), String>> {
    if !crate::cache::file_is_intact(entry) {
        return None;
    }
    decode(&std::fs::read_to_string(entry).ok()?)
}

/// A probe result as the cache keeps it: `ok`, or `unusable: WHY`.
fn encode(r: &Result<(), String>) -> String {
    match r {
        Ok(()) => "ok\n".into(),
        Err(why) => format!("unusable: {why}\n"),
    }
}

fn decode(text: &str) -> Option<Result<(), String>> {
    let text = text.trim_end();
    if text == "ok" {
        return Some(Ok(()));
    }
    text.strip_prefix("unusable: ").map(|why| Err(why.to_string()))
}

/// How long a KVM guest may take from QEMU's start to the kernel's first console line. Under
/// KVM that is a fraction of a second; TCG gets there in about one second on a 2-core host, so
/// a KVM slower than this is worse than no KVM.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// The kernel's first line on an early console (`start_kernel` prints it right after the
/// decompressor hands over).
const FIRST_LINE: &str = "Linux version";

/// Boots `kernel` under KVM with the CPU model repro uses, no disks and no initrd, its early
/// console on a file, until the kernel's first line is in the file ([`FIRST_LINE`]). QEMU
/// exiting first (an abort while setting MSRs, a KVM internal error) or the deadline passing (a
/// vCPU that crawls or stopped) means KVM is unusable here.
fn probe_uncached(kernel: &Path) -> Result<(), String> {
    first_line_under(Accel::Kvm, kernel, PROBE_DEADLINE)
}

/// The probe's boot under either accelerator (TCG lets tests check on any host that a real
/// kernel's first line is what the probe sees).
pub fn first_line_under(accel: Accel, kernel: &Path, deadline: Duration) -> Result<(), String> {
    let dir = private_dir().map_err(|e| format!("cannot make the KVM probe's directory: {e}"))?;
    let console = dir.path().join(PROBE_CONSOLE);
    let spec = super::table::spec(Arch::X86_64);
    let mut cmd = std::process::Command::new(spec.qemu);
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        spec.machine,
        "-accel",
        &accel.to_string(),
        "-cpu",
        spec.cpu(accel),
        "-m",
        "256",
        "-no-reboot",
        "-kernel",
    ])
    .arg(kernel)
    .args(["-append", "earlyprintk=serial,ttyS0 console=ttyS0 panic=-1", "-serial"])
    .arg(format!("file:{}", super::argv::opt_path(&console)))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let seen = || std::fs::read(&console).is_ok_and(|c| contains(&c, FIRST_LINE.as_bytes()));
    let accel = match accel {
        Accel::Kvm => "KVM",
        Accel::Tcg => "TCG",
    };
    match run_until(cmd, deadline, seen)? {
        Ended::Seen => Ok(()),
        Ended::Exited(code, stderr) => {
            let why = stderr
                .lines()
                .find(|l| !l.contains("warning"))
                .unwrap_or("")
                .trim()
                .to_string();
            Err(format!(
                "a {accel} test guest ended with {} before the kernel's first line ({why})",
                code.map_or("a signal".to_string(), |c| format!("exit code {c}"))
            ))
        }
        Ended::TimedOut => Err(format!(
            "a {accel} test guest did not reach the kernel's first line within {:.0} s",
            deadline.as_secs_f64()
        )),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const PROBE_CONSOLE: &str = "console";

/// A new private directory (random name, 0700) for the probe's console: repro often runs as
/// root, and a predictable path in /tmp would let any local user point it at a file of their
/// choosing. The directory goes when the guard is dropped.
fn private_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("repro-kvm-probe-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// How a probe ended.
enum Ended {
    /// What it waited for was seen; the child was killed.
    Seen,
    /// The child exited first, with its exit code and stderr.
    Exited(Option<i32>, String),
    /// Neither within the deadline; the child was killed.
    TimedOut,
}

/// Runs a guarded child until `seen()` holds, it exits, or `deadline` passes.
fn run_until(cmd: std::process::Command, deadline: Duration, seen: impl Fn() -> bool) -> Result<Ended, String> {
    use std::io::Read;
    let mut child = crate::process::spawn_guarded(cmd).map_err(|e| format!("cannot start the KVM probe: {e}"))?;
    let start = std::time::Instant::now();
    let ended = loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                crate::process::forget(child.id());
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Ok(Ended::Exited(s.code(), stderr));
            }
            Ok(None) if seen() => break Ended::Seen,
            Ok(None) if start.elapsed() > deadline => break Ended::TimedOut,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the KVM probe: {e}")),
        }
    };
    crate::process::kill_group(child.id());
    let _ = child.wait();
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_never_writes_through_a_path_another_user_prepared() {
        use std::os::unix::fs::PermissionsExt;
        // What a local attacker would plant: the probe's old, predictable directory as a
        // symlink to a directory of their choosing.
        let victim = tempfile::tempdir().unwrap();
        let planted = std::env::temp_dir().join(format!("repro-kvm-probe-{}", std::process::id()));
        let _ = std::fs::remove_file(&planted);
        std::os::unix::fs::symlink(victim.path(), &planted).unwrap();
        let dir = private_dir().unwrap();
        let _ = std::fs::remove_file(&planted);
        assert_ne!(dir.path(), planted);
        let meta = std::fs::symlink_metadata(dir.path()).unwrap();
        assert!(meta.is_dir(), "the probe's directory is a symlink");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0);
    }

    fn sh(script: &str) -> std::process::Command {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", script]).stderr(std::process::Stdio::piped());
        c
    }

    #[test]
    fn the_probe_ends_on_what_it_waits_for_on_exit_or_at_its_deadline() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("console");
        let seen = || std::fs::read(&f).is_ok_and(|c| contains(&c, FIRST_LINE.as_bytes()));
        let printing = format!("echo 'Linux version 6.1' > {}; exec sleep 60", f.display());
        assert!(matches!(
            run_until(sh(&printing), Duration::from_secs(30), seen),
            Ok(Ended::Seen)
        ));
        std::fs::remove_file(&f).unwrap();
        match run_until(
            sh("echo 'KVM internal error' >&2; exit 1"),
            Duration::from_secs(30),
            seen,
        ) {
            Ok(Ended::Exited(code, stderr)) => {
                assert_eq!(code, Some(1));
                assert_eq!(stderr.trim(), "KVM internal error");
            }
            _ => panic!("an exit before the line is not a pass"),
        }
        let crawling = format!("echo 'Probing EDD' > {}; exec sleep 60", f.display());
        assert!(matches!(
            run_until(sh(&crawling), Duration::from_millis(300), seen),
            Ok(Ended::TimedOut)
        ));
    }

    #[test]
    fn a_kept_probe_result_reads_back_as_it_was_and_anything_else_probes_again() {
        for r in [Ok(()), Err("a KVM test guest ended with exit code 1 (x)".to_string())] {
            assert_eq!(decode(&encode(&r)), Some(r));
        }
        assert_eq!(decode(""), None, "a file cut short probes again");
        assert_eq!(decode("o"), None);
    }

    #[test]
    fn only_a_probe_that_says_something_about_the_host_is_kept() {
        assert_eq!(blame(Ok(()), || panic!("a pass needs no TCG check")), (Ok(()), true));
        let why = "a KVM test guest did not reach the kernel's first line within 5 s".to_string();
        assert_eq!(blame(Err(why.clone()), || true), (Err(why.clone()), true));
        let (r, kept) = blame(Err(why.clone()), || false);
        assert!(!kept);
        assert_eq!(
            r.unwrap_err(),
            format!("{why}; not kept for this host: the kernel does not reach its first line under TCG either")
        );
    }

    #[test]
    fn foreign_guest_is_tcg_without_probing() {
        let c = decide(Arch::Aarch64, Some(Arch::X86_64), None, || panic!("must not probe"));
        assert_eq!(c.accel, Accel::Tcg);
        assert_eq!(c.reason, "guest aarch64 differs from the host arch");
    }

    #[test]
    fn failed_probe_falls_back_to_tcg_with_the_reason() {
        let c = decide(Arch::X86_64, Some(Arch::X86_64), None, || {
            Err("the test vCPU stopped with a KVM internal error".into())
        });
        assert_eq!(c.accel, Accel::Tcg);
        assert_eq!(
            c.reason,
            "KVM unusable: the test vCPU stopped with a KVM internal error"
        );
    }

    #[test]
    fn passing_probe_and_override() {
        assert_eq!(
            decide(Arch::X86_64, Some(Arch::X86_64), None, || Ok(())).accel,
            Accel::Kvm
        );
        assert_eq!(
            decide(Arch::X86_64, Some(Arch::X86_64), Some("tcg"), || Ok(())).accel,
            Accel::Tcg
        );
    }
}
