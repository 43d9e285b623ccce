//! Choosing the accelerator: KVM only when it really runs a vCPU here, TCG otherwise.
//!
//! `/dev/kvm` existing is not enough: on some hosts (nested setups) QEMU aborts while loading
//! the vCPU's MSRs, or the vCPU stops with "KVM internal error". So the probe runs QEMU itself,
//! with the machine and CPU model repro would use, on a three-instruction firmware.

pub use super::table::Accel;
use crate::arch::Arch;
use serde::Serialize;

/// The decision and why it was made.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub accel: Accel,
    pub reason: String,
}

/// Picks the accelerator for a guest of `arch`. `REPRO_ACCEL=tcg|kvm` overrides the probe.
pub fn choose(arch: Arch) -> Choice {
    decide(arch, Arch::host(), std::env::var("REPRO_ACCEL").ok().as_deref(), probe)
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
            reason: "KVM ran a test vCPU".into(),
        },
        Err(why) => Choice {
            accel: Accel::Tcg,
            reason: format!("KVM unusable: {why}"),
        },
    }
}

/// Caches the probe for the life of the process.
fn probe() -> Result<(), String> {
    static RESULT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    RESULT.get_or_init(probe_uncached).clone()
}

/// Boots QEMU itself with KVM, the CPU model repro uses, and a 64 KiB firmware whose reset
/// vector writes 0x42 to an `isa-debug-exit` port: QEMU then exits with (0x42 << 1) | 1 = 133.
/// Anything else (an abort while setting MSRs, a "KVM internal error" pause, a hang) means KVM is
/// unusable here.
fn probe_uncached() -> Result<(), String> {
    if Arch::host() != Some(Arch::X86_64) {
        return Err("the KVM probe is only implemented for x86_64 hosts".into());
    }
    if let Err(e) = std::fs::File::options().read(true).write(true).open("/dev/kvm") {
        return Err(format!("cannot open /dev/kvm: {e}"));
    }
    let mut image = vec![0xf4u8; 0x10000]; // hlt everywhere
    let code = [0xb0, 0x42, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe]; // mov al,0x42; out 0xf4,al; hlt; jmp $
    image[0x10000 - 16..0x10000 - 16 + code.len()].copy_from_slice(&code);
    let dir = write_private(PROBE_FILE, &image).map_err(|e| format!("cannot write the KVM probe's firmware: {e}"))?;
    let bios = dir.path().join(PROBE_FILE);
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
        "kvm",
        "-cpu",
        spec.kvm_cpu,
        "-m",
        "16",
        "-bios",
    ])
    .arg(&bios)
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let result = run_with_deadline(cmd, std::time::Duration::from_secs(10));
    drop(dir);
    let (code, stderr) = result?;
    if code == Some(133) {
        Ok(())
    } else {
        let why = stderr
            .lines()
            .find(|l| !l.contains("warning"))
            .unwrap_or("")
            .trim()
            .to_string();
        Err(format!(
            "a KVM test guest ended with {} ({why})",
            code.map_or("a signal or a hang".to_string(), |c| format!("exit code {c}"))
        ))
    }
}

const PROBE_FILE: &str = "probe.bin";

/// Writes `bytes` as `name` in a new private directory (random name, 0700, the file created
/// exclusively): repro often runs as root, and a predictable path in /tmp would let any local
/// user point it at a file of their choosing. The directory goes when the guard is dropped.
fn write_private(name: &str, bytes: &[u8]) -> std::io::Result<tempfile::TempDir> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("repro-kvm-probe-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(dir.path().join(name))?;
    f.write_all(bytes)?;
    Ok(dir)
}

/// Runs a guarded child, killing it after `deadline`; returns its exit code and stderr.
fn run_with_deadline(
    cmd: std::process::Command,
    deadline: std::time::Duration,
) -> Result<(Option<i32>, String), String> {
    use std::io::Read;
    let mut child = crate::process::spawn_guarded(cmd).map_err(|e| format!("cannot start the KVM probe: {e}"))?;
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > deadline => break None,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the KVM probe: {e}")),
        }
    };
    if status.is_none() {
        crate::process::kill_group(child.id());
        let _ = child.wait();
    } else {
        crate::process::forget(child.id());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Ok((status.and_then(|s| s.code()), stderr))
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
        let dir = write_private(PROBE_FILE, b"firmware").unwrap();
        let _ = std::fs::remove_file(&planted);
        assert!(
            !victim.path().join(PROBE_FILE).exists(),
            "wrote through the planted symlink"
        );
        assert_ne!(dir.path(), planted);
        assert_eq!(std::fs::read(dir.path().join(PROBE_FILE)).unwrap(), b"firmware");
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
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
