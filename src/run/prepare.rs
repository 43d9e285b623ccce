//! Preparing one node: its kernel, its image, and the per-run layers (blocking work).

use super::progress::Progress;
use crate::def::load::Roots;
use crate::image::{self, RunLayer};
use crate::kernel::{self, Artifacts};
use crate::scenario::{Node, Scenario};
use crate::vm::{self, accel, argv, Disk};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Prepared {
    pub kernel: Artifacts,
    /// The scenario's out-of-tree modules, built for this kernel.
    pub modules: Vec<crate::module::Built>,
    pub image: image::Built,
    pub accel: vm::Choice,
    /// Complete except for the QMP socket, which the instance places.
    pub config: vm::Config,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error("cannot create {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Tool { command: String, stderr: String },
    #[error("{0}")]
    PatchSet(String),
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Module(#[from] crate::module::Error),
}

/// The kernel definition `node` boots in this run: its own, plus the active patch set.
pub fn node_kernel(roots: &Roots, scenario: &Scenario, node: &Node) -> Result<kernel::Definition, Box<Error>> {
    let mut kdef = kernel::find(&roots.kernels, &node.kernel).map_err(Error::from)?;
    if let Some(set) = &scenario.active_set {
        let steps = scenario.patchsets.get(set).map(|p| p.steps.clone()).unwrap_or_default();
        kdef = kdef.with_steps(set, &steps).map_err(Error::PatchSet)?;
    }
    if let Some(ks) = &scenario.kernel_source {
        kdef = kdef.with_source(&ks.repo, &ks.rev).map_err(Error::PatchSet)?;
    }
    if scenario.full_debug_info {
        kdef = kdef.with_debug_info(kernel::DebugInfo::Full);
    }
    Ok(kdef)
}

/// Fetches/builds what `node` needs (cached) and writes its per-run layers into `dir`.
pub fn prepare_node(
    roots: &Roots,
    scenario: &Scenario,
    node: &Node,
    dir: &Path,
    pubkey: &str,
    progress: &dyn Fn(Progress),
) -> Result<Prepared, Box<Error>> {
    let me = scenario.nodes.iter().position(|n| n.name == node.name).unwrap_or(0);
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let kdef = node_kernel(roots, scenario, node)?;
    let cached = artifacts(roots, scenario, node, &kdef, progress)?;
    // The accelerator probe boots the kernel under KVM (a fraction of a second where KVM works,
    // at most its deadline where it does not): it runs while the disks and the initrd are made.
    let (arch, kernel) = (node.arch, cached.kernel.image.clone());
    let probe = std::thread::spawn(move || accel::choose(arch, &kernel));
    let (disks, pmem) = disks(scenario, me, dir, &cached)?;
    let initrd = dir.join("initrd.img");
    let layer = RunLayer {
        node: node.name.clone(),
        authorized_key: pubkey.to_string(),
        modules_dev: cached.modules_disk.as_ref().map(|_| "/dev/vdb".to_string()),
        shell: Some(scenario.workload.shell.clone()),
        files: cached
            .modules
            .iter()
            .map(|m| (format!("{}.ko", m.name), m.ko.clone()))
            .collect(),
    };
    image::run_initrd(&cached.boot, &layer, &initrd).map_err(Error::from)?;
    let choice = probe
        .join()
        .unwrap_or_else(|_| accel::choose(arch, &cached.kernel.image));
    let layers = Layers { initrd, disks, pmem };
    let config = vm_config(scenario, me, dir, &kdef, &cached, choice.accel, layers)?;
    Ok(Prepared {
        kernel: cached.kernel,
        modules: cached.modules,
        image: cached.image,
        accel: choice,
        config,
    })
}

/// What a node boots that the cache holds: kernel, modules, image, boot initramfs, modules disk.
struct Cached {
    kernel: Artifacts,
    modules: Vec<crate::module::Built>,
    image: image::Built,
    boot: PathBuf,
    modules_disk: Option<PathBuf>,
}

fn artifacts(
    roots: &Roots,
    scenario: &Scenario,
    node: &Node,
    kdef: &kernel::Definition,
    progress: &dyn Fn(Progress),
) -> Result<Cached, Box<Error>> {
    let log = |m: &str| progress(Progress::Note(m.to_string()));
    let on_build = |e: kernel::build::Event| match e {
        kernel::build::Event::Stage(m) => progress(Progress::Note(format!("kernel {}: {m}", node.kernel))),
        kernel::build::Event::Line(l) => progress(Progress::Detail(l.to_string())),
    };
    let kernel = kdef.build(node.arch, &on_build).map_err(Error::from)?;
    let mut modules = Vec::new();
    for m in &scenario.modules {
        modules.push(crate::module::build(m, &kernel, &log).map_err(Error::from)?);
    }
    let idef = image::find(&roots.images, &scenario.image).map_err(Error::from)?;
    let built = image::build(&idef, node.arch, &log).map_err(Error::from)?;
    let boot = image::boot_initramfs(&kernel, &built).map_err(Error::from)?;
    let modules_disk = image::modules_disk(&kernel).map_err(Error::from)?;
    Ok(Cached {
        kernel,
        modules,
        image: built,
        boot,
        modules_disk,
    })
}

/// The root overlay, the modules disk, and node `me`'s scenario disks and pmem: sparse files in
/// the node's directory, found by name in the guest.
fn disks(
    scenario: &Scenario,
    me: usize,
    dir: &Path,
    cached: &Cached,
) -> Result<(Vec<Disk>, Vec<vm::Pmem>), Box<Error>> {
    let overlay = dir.join("root.qcow2");
    let mut qemu_img = Command::new("qemu-img");
    qemu_img
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        // Absolute: a relative backing file is looked up beside the overlay, not here.
        .arg(std::path::absolute(&cached.image.rootfs).unwrap_or_else(|_| cached.image.rootfs.clone()))
        .arg(&overlay);
    let out = crate::process::output(&mut qemu_img).map_err(|source| Error::Io {
        path: overlay.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(Box::new(Error::Tool {
            command: "qemu-img create".into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }));
    }
    let mut disks = vec![Disk {
        path: overlay,
        format: "qcow2",
        readonly: false,
        serial: None,
    }];
    if let Some(m) = &cached.modules_disk {
        disks.push(Disk {
            path: m.clone(),
            format: "raw",
            readonly: true,
            serial: None,
        });
    }
    for d in scenario.disks.iter().filter(|d| d.node == me) {
        disks.push(Disk {
            path: sparse(dir, &format!("disk-{}", d.name), d.size_mib)?,
            format: "raw",
            readonly: false,
            serial: Some(d.name.clone()),
        });
    }
    let mut pmem = Vec::new();
    for d in scenario.pmem.iter().filter(|d| d.node == me) {
        pmem.push(vm::Pmem {
            path: sparse(dir, &format!("pmem-{}", d.name), d.size_mib)?,
            size_mib: d.size_mib,
        });
    }
    Ok((disks, pmem))
}

fn sparse(dir: &Path, name: &str, size_mib: u64) -> Result<PathBuf, Box<Error>> {
    let p = dir.join(format!("{name}.img"));
    let io = |source| Error::Io {
        path: p.clone(),
        source,
    };
    let f = std::fs::File::create(&p).map_err(io)?;
    f.set_len(size_mib << 20).map_err(io)?;
    Ok(p)
}

/// The kernel's stall detectors scaled to the accelerator. Under TCG a guest runs many times
/// slower than on hardware and its vCPUs share the host's cores with every other guest, so the
/// default thresholds (soft lockup 20 s, RCU stall 21 s, hung task 120 s) fire without any bug.
/// They are raised fivefold (soft lockup 2 x 50 s, the most `watchdog_thresh` takes; RCU
/// stall 105 s; hung task 600 s); a scenario that needs them shorter sets its own, which come
/// later on the command line and win. On x86_64 the boot's check that the IO-APIC timer
/// ticks within a few jiffies is skipped too (`no_timer_check`, as virtual machines boot): a
/// starved guest panics there ("IO-APIC + timer doesn't work!"), which ten guests at once on
/// two cores did. Under KVM the kernel's defaults stand.
pub fn watchdogs(accel: vm::Accel, arch: crate::arch::Arch) -> Vec<String> {
    let mut v: Vec<String> = match accel {
        vm::Accel::Kvm => return Vec::new(),
        vm::Accel::Tcg => [
            "watchdog_thresh=50",
            "rcupdate.rcu_cpu_stall_timeout=105",
            "sysctl.kernel.hung_task_timeout_secs=600",
        ]
        .map(String::from)
        .to_vec(),
    };
    if arch == crate::arch::Arch::X86_64 {
        v.push("no_timer_check".into());
    }
    v
}

/// What repro's guests skip at boot. `user` is the kernel definition's and the scenario's own
/// command line, which comes after these and wins.
///
/// - `pty.legacy_count=0`: no BSD ptys (`/dev/ptyXX`; nothing in a guest uses them, sshd takes
///   `/dev/pts`). A tinyconfig kernel registers 256 of them at boot: 0.22 s of an aarch64 boot
///   under TCG. Debian's kernels are built without them, and ignore the option.
/// - `loglevel=6 repro.loglevel=7`: the boot prints its notices (the `Linux version` banner),
///   warnings and every crash, but not the drivers' info lines; the guest's bring-up turns the
///   console to the kernel's default level 7 (all but debug) before it announces itself, so
///   everything from the first command on reaches the console. The dropped lines stay in
///   `dmesg`. About 70 ms of an aarch64 boot under TCG. Left out when `user` sets the level.
/// - `norandmaps`, under TCG: every process's libraries, executable and stack at the same
///   addresses (`kernel.randomize_va_space=0`). TCG keys its translated code by guest address,
///   so each new process reuses what the ones before it translated of `ld.so`, libc and the
///   shell instead of translating them again: twenty `true` and `ls` in a workload took 0.78 s
///   instead of 1.6 s on x86_64. The kernel's own layout (KASLR) is not touched. A scenario that
///   needs userland randomized sets `sysctl.kernel.randomize_va_space=2` (5.8 and later; read
///   after this), or writes that sysctl in its workload. Under KVM nothing is translated.
/// - `repro.warm`, under TCG: the guest's bring-up starts the workload's shell and dash once
///   (`-c :`) in the background, so that the workload's first command finds their pages read
///   and (with `norandmaps`) their code translated, while the bring-up goes on. The first
///   `bash` of an aarch64 guest took 80 ms, the second 10.
pub fn boot_trims(accel: vm::Accel, user: &[String]) -> Vec<String> {
    let mut v = vec!["pty.legacy_count=0".to_string()];
    let sets_level = |w: &str| w.starts_with("loglevel=") || ["quiet", "debug", "ignore_loglevel"].contains(&w);
    if !user.iter().flat_map(|w| w.split_whitespace()).any(sets_level) {
        v.extend(["loglevel=6".to_string(), "repro.loglevel=7".to_string()]);
    }
    if accel == vm::Accel::Tcg {
        v.extend(["norandmaps".to_string(), "repro.warm".to_string()]);
    }
    v
}

/// What this run adds to a node's boot: its initrd layer, disks and pmem.
struct Layers {
    initrd: PathBuf,
    disks: Vec<Disk>,
    pmem: Vec<vm::Pmem>,
}

/// QEMU's configuration for node `me`, except the QMP socket, which the instance places.
fn vm_config(
    scenario: &Scenario,
    me: usize,
    dir: &Path,
    kdef: &kernel::Definition,
    cached: &Cached,
    accel: vm::Accel,
    layers: Layers,
) -> Result<vm::Config, Box<Error>> {
    let node = &scenario.nodes[me];
    let Layers { initrd, disks, pmem } = layers;
    // Before the kernel definition's and the scenario's options, so that theirs win.
    let mut extra = watchdogs(accel, node.arch);
    let user: Vec<String> = kdef.cmdline.iter().chain(&scenario.cmdline).cloned().collect();
    extra.extend(boot_trims(accel, &user));
    extra.extend(kdef.cmdline.iter().cloned());
    // aarch64 `virt` describes NVDIMMs only in the ACPI NFIT, which only UEFI firmware installs;
    // ACPI is then forced over the device tree the firmware also passes.
    let firmware = if node.arch == crate::arch::Arch::Aarch64 && !pmem.is_empty() {
        extra.push("acpi=force".into());
        Some(installed(&AARCH64_FIRMWARE).ok_or_else(|| Error::Tool {
            command: "pmem on aarch64".into(),
            stderr: format!(
                "needs UEFI firmware for the NFIT, and none of {} exists (apt-get install qemu-efi-aarch64)",
                AARCH64_FIRMWARE.join(", ")
            ),
        })?)
    } else if node.arch == crate::arch::Arch::X86_64 {
        installed(&X86_64_FIRMWARE)
    } else {
        None
    };
    extra.extend(scenario.cmdline.iter().cloned());
    let ssh_port = vm::free_port().map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let run_dir = if scenario.nodes.len() > 1 {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let links = super::setup::links(scenario)
        .into_iter()
        .filter(|l| me == 0 || l.spoke == me)
        .map(|l| argv::NetLink {
            socket: run_dir.join(format!("{}.sock", l.id)),
            listen: me == 0,
            mac: if me == 0 { l.hub_mac } else { l.spoke_mac },
            id: l.id,
        })
        .collect();
    Ok(vm::Config {
        arch: node.arch,
        accel,
        cpus: node.cpus,
        memory_mib: node.memory_mib,
        kernel: cached.kernel.image.clone(),
        initrd,
        cmdline: argv::cmdline(node.arch, &extra),
        disks,
        aio: vm::aio::choose().map_err(Error::Setting)?,
        qmp_socket: dir.join("qmp.sock"),
        workdir: dir.to_path_buf(),
        ssh_port,
        links,
        pmem,
        firmware,
        gdb_socket: None,
        agent_socket: None,
    })
}

/// Debian's qemu-efi-aarch64 (EDK2 ArmVirtQemu), in the order tried.
const AARCH64_FIRMWARE: [&str; 2] = [
    "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
    "/usr/share/AAVMF/AAVMF_CODE.fd",
];

/// The first of `paths` that is an installed file.
fn installed(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// qboot, the minimal firmware QEMU ships (Debian's qemu-system-data). It loads the kernel and
/// the ACPI tables QEMU builds, and skips what SeaBIOS does before that (option ROMs, boot menu,
/// disk probing): QEMU start to the kernel's first line went from 0.88 s to 0.41 s under TCG
/// here. Without it, QEMU's default SeaBIOS.
const X86_64_FIRMWARE: [&str; 1] = ["/usr/share/qemu/qboot.rom"];

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn boot_trims_leave_the_log_level_to_a_user_who_sets_it() {
        let all = boot_trims(vm::Accel::Tcg, &[]);
        assert_eq!(
            all,
            words(&[
                "pty.legacy_count=0",
                "loglevel=6",
                "repro.loglevel=7",
                "norandmaps",
                "repro.warm"
            ])
        );
        for user in [
            &["quiet"][..],
            &["loglevel=8"],
            &["nokaslr debug"],
            &["ignore_loglevel"],
        ] {
            let v = boot_trims(vm::Accel::Tcg, &words(user));
            assert_eq!(
                v,
                words(&["pty.legacy_count=0", "norandmaps", "repro.warm"]),
                "{user:?}"
            );
        }
        // A word that only looks like one (`quiet` inside another) is not the user's level.
        let v = boot_trims(vm::Accel::Kvm, &words(&["xquiet", "foo.loglevel=3"]));
        assert_eq!(v, words(&["pty.legacy_count=0", "loglevel=6", "repro.loglevel=7"]));
    }
}
