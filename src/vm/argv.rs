//! Pure builders for the QEMU command line. Nothing here touches the system.

use super::table::spec;
use super::table::Accel;
use crate::arch::Arch;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub format: &'static str,
    pub readonly: bool,
    /// The virtio serial the guest sees in /sys/block/vdX/serial (scenario disks by name).
    pub serial: Option<String>,
}

/// An emulated NVDIMM backed by a file (`nvdimm=on`; on aarch64 `virt` the guest finds it in the
/// ACPI NFIT, so it boots through UEFI firmware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmem {
    pub path: PathBuf,
    pub size_mib: u64,
}

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u64,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// In order: vda, vdb, ...
    pub disks: Vec<Disk>,
    /// How QEMU reads and writes them.
    pub aio: super::aio::Aio,
    pub qmp_socket: PathBuf,
    /// QEMU's working directory (the node's run directory). Sockets are named relative to it:
    /// a unix socket's path holds at most 107 bytes, and a run directory may be deeper.
    pub workdir: PathBuf,
    /// Host port on 127.0.0.1 forwarded to the guest's port 22.
    pub ssh_port: u16,
    /// Private guest-to-guest links over unix stream sockets.
    pub links: Vec<NetLink>,
    /// NVDIMMs.
    pub pmem: Vec<Pmem>,
    /// Firmware to boot the kernel through (`-bios`): UEFI for ACPI tables such as the NFIT
    /// that aarch64 `virt` only exposes through firmware; qboot on x86_64, which is faster than
    /// QEMU's default SeaBIOS.
    pub firmware: Option<PathBuf>,
    /// Where QEMU serves its gdbstub (a unix socket; `repro run --gdb`).
    pub gdb_socket: Option<PathBuf>,
    /// The unix socket repro listens on for the guest agent's virtio-serial port.
    pub agent_socket: Option<PathBuf>,
}

/// One end of a private link: a virtio NIC on a `-netdev stream` over a unix socket. The
/// listening end must start first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLink {
    pub id: String,
    pub socket: PathBuf,
    pub listen: bool,
    pub mac: String,
}

/// The kernel command line: console, quiet boot noise off, plus the extras in order.
///
/// `random.trust_cpu=on` seeds the kernel's random pool from the CPU's instruction (RDRAND,
/// RNDR: QEMU's `-cpu max` has them under TCG, and `-cpu host` under KVM) at boot. Debian's
/// kernels do that already; a source kernel built from tinyconfig does not, and its sshd then
/// waits about 11 s under TCG for `getrandom` (the `random: crng init done` line).
///
/// `cryptomgr.notests` skips the crypto API's self-tests of every algorithm it registers at boot
/// (about 0.2 s of a Debian kernel's boot under TCG). A kernel whose crypto self-test fails
/// would have said so on the console; repro's reproducers are about filesystems, not crypto.
pub fn cmdline(arch: Arch, extra: &[String]) -> String {
    let mut v = vec![
        format!("console={}", spec(arch).console),
        "rdinit=/init".to_string(),
        "panic=-1".to_string(),
        "printk.time=1".to_string(),
        "net.ifnames=0".to_string(),
        "random.trust_cpu=on".to_string(),
        "cryptomgr.notests".to_string(),
    ];
    v.extend(extra.iter().cloned());
    v.join(" ")
}

pub fn accel_args(arch: Arch, accel: Accel) -> Vec<String> {
    let s = spec(arch);
    let accel = match accel {
        Accel::Kvm => "kvm".to_string(),
        Accel::Tcg => "tcg,thread=multi".to_string(),
    };
    vec!["-machine".into(), s.machine.into(), "-accel".into(), accel]
}

pub fn console_args() -> Vec<String> {
    // The serial console is QEMU's stdout; repro reads it, logs it and parses it live.
    ["-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0"]
        .map(String::from)
        .to_vec()
}

/// A path as a value in a QEMU option string (`file=...,if=none`): commas are doubled, which is
/// how QEMU escapes them, so a path with a comma cannot add or change options.
pub fn opt_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// `socket` as QEMU should name it from `workdir`: relative when it lies in `workdir` or its
/// parent (a multi-node run's links), so that its length does not depend on the run directory's.
pub fn socket_path(workdir: &Path, socket: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return socket.to_path_buf();
    };
    if dir == workdir {
        PathBuf::from(name)
    } else if Some(dir) == workdir.parent() {
        Path::new("..").join(name)
    } else {
        socket.to_path_buf()
    }
}

pub fn qmp_args(workdir: &Path, socket: &Path) -> Vec<String> {
    let socket = socket_path(workdir, socket);
    vec!["-qmp".into(), format!("unix:{},server=on,wait=off", opt_path(&socket))]
}

/// The guest agent's port: a virtio-serial port named [`crate::guest::agent::PORT_NAME`] whose
/// host end connects to `socket`, where repro listens before QEMU starts.
pub fn agent_args(workdir: &Path, socket: &Path) -> Vec<String> {
    let socket = socket_path(workdir, socket);
    vec![
        "-chardev".into(),
        format!("socket,id=agent,path={}", opt_path(&socket)),
        "-device".into(),
        "virtio-serial-pci,id=agentbus".into(),
        "-device".into(),
        format!(
            "virtserialport,bus=agentbus.0,chardev=agent,name={}",
            crate::guest::agent::PORT_NAME
        ),
    ]
}

/// QEMU's gdbstub on a unix socket: never a TCP port.
pub fn gdb_args(workdir: &Path, socket: &Path) -> Vec<String> {
    let socket = socket_path(workdir, socket);
    vec!["-gdb".into(), format!("unix:{},server=on,wait=off", opt_path(&socket))]
}

pub fn disk_args(disks: &[Disk], aio: super::aio::Aio) -> Vec<String> {
    let mut v = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        v.push("-drive".into());
        v.push(format!(
            "file={},if=none,id=disk{i},format={},cache=unsafe,aio={aio}{}",
            opt_path(&d.path),
            d.format,
            if d.readonly { ",readonly=on" } else { "" }
        ));
        v.push("-device".into());
        v.push(format!(
            "virtio-blk-pci,drive=disk{i}{}",
            d.serial.as_ref().map(|s| format!(",serial={s}")).unwrap_or_default()
        ));
    }
    v
}

/// User-mode networking, restricted: the guest reaches nothing but the one forward from
/// 127.0.0.1 to its SSH port.
pub fn net_args(ssh_port: u16) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
    ]
}

/// Guest-to-guest links: unix sockets only, never an IP address or multicast on the host.
pub fn link_args(workdir: &Path, links: &[NetLink]) -> Vec<String> {
    let mut v = Vec::new();
    for l in links {
        v.push("-netdev".into());
        v.push(format!(
            "stream,id={},server={},addr.type=unix,addr.path={}",
            l.id,
            if l.listen { "on" } else { "off" },
            opt_path(&socket_path(workdir, &l.socket))
        ));
        v.push("-device".into());
        v.push(format!("virtio-net-pci,netdev={},id=nic-{},mac={}", l.id, l.id, l.mac));
    }
    v
}

pub fn argv(c: &Config) -> Vec<String> {
    let s = spec(c.arch);
    let mut v: Vec<String> = vec![
        s.qemu.into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
    ];
    v.extend(accel_args(c.arch, c.accel));
    if !c.pmem.is_empty() {
        // NVDIMMs need the machine option and memory hotplug slots above the boot RAM.
        if let Some(m) = v.iter_mut().skip_while(|a| *a != "-machine").nth(1) {
            m.push_str(",nvdimm=on");
        }
    }
    v.extend(["-cpu".into(), s.cpu(c.accel).into()]);
    v.extend([
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        if c.pmem.is_empty() {
            format!("{}M", c.memory_mib)
        } else {
            let extra: u64 = c.pmem.iter().map(|p| p.size_mib).sum();
            format!(
                "{}M,slots={},maxmem={}M",
                c.memory_mib,
                c.pmem.len() + 1,
                c.memory_mib + extra + 1024
            )
        },
    ]);
    for (i, p) in c.pmem.iter().enumerate() {
        v.push("-object".into());
        v.push(format!(
            "memory-backend-file,id=pm{i},share=on,mem-path={},size={}M,align=2M",
            opt_path(&p.path),
            p.size_mib
        ));
        v.push("-device".into());
        v.push(format!("nvdimm,id=nv{i},memdev=pm{i},label-size=128K"));
    }
    if let Some(fw) = &c.firmware {
        v.extend(["-bios".into(), fw.display().to_string()]);
    }
    v.extend([
        "-kernel".into(),
        c.kernel.display().to_string(),
        "-initrd".into(),
        c.initrd.display().to_string(),
    ]);
    v.extend(["-append".into(), c.cmdline.clone()]);
    v.extend(console_args());
    v.extend(qmp_args(&c.workdir, &c.qmp_socket));
    if let Some(g) = &c.gdb_socket {
        v.extend(gdb_args(&c.workdir, g));
    }
    if let Some(a) = &c.agent_socket {
        v.extend(agent_args(&c.workdir, a));
    }
    v.extend(disk_args(&c.disks, c.aio));
    v.extend(net_args(c.ssh_port));
    v.extend(link_args(&c.workdir, &c.links));
    v.extend(["-device".into(), s.pvpanic.into()]);
    // Where the guest kernel publishes its VMCOREINFO (through fw_cfg), so that a memory dump
    // carries it and crash(8) and drgn can open the dump in full.
    v.extend(["-device".into(), "vmcoreinfo".into()]);
    // Keep a panicked guest paused (for a later memory dump) and never reboot it. For gdb it
    // runs on in panic() until repro stops it: paused in the pvpanic notifier, which Debian
    // builds as a module without debug info, gdb cannot unwind to the crash.
    let panic = if c.gdb_socket.is_some() {
        "panic=none"
    } else {
        "panic=pause"
    };
    v.extend(["-action".into(), panic.into(), "-no-reboot".into()]);
    // Start stopped: repro connects QMP first, so no event is missed, then sends `cont`.
    v.push("-S".into());
    v
}

/// The argv as one shell-quoted line, for `qemu.cmdline` and error messages.
pub fn shell_line(argv: &[String]) -> String {
    crate::shell::line(argv)
}

#[cfg(test)]
mod tests {
    use super::super::aio::Aio;
    use super::*;

    #[test]
    fn commas_in_paths_are_doubled_so_they_cannot_add_options() {
        let d = Disk {
            path: "/runs/a,b/disk-x.img,format=raw".into(),
            format: "qcow2",
            readonly: false,
            serial: None,
        };
        let a = disk_args(&[d], Aio::Threads);
        assert_eq!(
            a[1],
            "file=/runs/a,,b/disk-x.img,,format=raw,if=none,id=disk0,format=qcow2,cache=unsafe,aio=threads"
        );
    }

    #[test]
    fn sockets_are_named_from_the_working_directory_whatever_its_depth() {
        let deep = PathBuf::from(format!("/{}/cells/x", "d".repeat(200)));
        assert_eq!(
            qmp_args(&deep, &deep.join("qmp.sock"))[1],
            "unix:qmp.sock,server=on,wait=off"
        );
        let link = NetLink {
            id: "l0".into(),
            socket: deep.parent().unwrap().join("l0.sock"),
            listen: true,
            mac: "52:54:00:00:00:01".into(),
        };
        assert!(link_args(&deep, &[link])[1].ends_with("addr.path=../l0.sock"));
        assert_eq!(
            socket_path(Path::new("/a"), Path::new("/b/c.sock")),
            Path::new("/b/c.sock")
        );
    }

    fn config(arch: Arch, accel: Accel) -> Config {
        Config {
            arch,
            accel,
            cpus: 2,
            memory_mib: 1024,
            kernel: "/k/vmlinuz".into(),
            initrd: "/r/initrd.img".into(),
            cmdline: cmdline(arch, &["quiet".into()]),
            disks: vec![
                Disk {
                    path: "/r/root.qcow2".into(),
                    format: "qcow2",
                    readonly: false,
                    serial: None,
                },
                Disk {
                    path: "/c/mods.ext4".into(),
                    format: "raw",
                    readonly: true,
                    serial: None,
                },
            ],
            aio: Aio::IoUring,
            qmp_socket: "/r/qmp.sock".into(),
            workdir: "/r".into(),
            ssh_port: 40022,
            links: vec![],
            pmem: vec![],
            firmware: None,
            gdb_socket: None,
            agent_socket: None,
        }
    }

    #[test]
    fn x86_64_tcg() {
        let line = shell_line(&argv(&config(Arch::X86_64, Accel::Tcg)));
        assert_eq!(
            line,
            "qemu-system-x86_64 -nodefaults -no-user-config -display none -machine q35 -accel tcg,thread=multi \
-cpu max -smp 2 -m 1024M -kernel /k/vmlinuz -initrd /r/initrd.img \
-append 'console=ttyS0 rdinit=/init panic=-1 printk.time=1 net.ifnames=0 random.trust_cpu=on cryptomgr.notests quiet' \
-chardev stdio,id=con0,signal=off -serial chardev:con0 -qmp unix:qmp.sock,server=on,wait=off \
-drive file=/r/root.qcow2,if=none,id=disk0,format=qcow2,cache=unsafe,aio=io_uring -device virtio-blk-pci,drive=disk0 \
-drive file=/c/mods.ext4,if=none,id=disk1,format=raw,cache=unsafe,aio=io_uring,readonly=on -device virtio-blk-pci,drive=disk1 \
-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22 -device virtio-net-pci,netdev=net0 \
-device pvpanic -device vmcoreinfo -action panic=pause -no-reboot -S"
        );
    }

    #[test]
    fn aarch64_differs_only_where_the_table_says() {
        let a = argv(&config(Arch::Aarch64, Accel::Tcg));
        assert_eq!(a[0], "qemu-system-aarch64");
        let after = |flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(after("-machine"), "virt,gic-version=max");
        assert_eq!(after("-cpu"), "max,pauth-impdef=on");
        assert!(after("-append").starts_with("console=ttyAMA0 "));
        assert!(a.windows(2).any(|w| w[0] == "-device" && w[1] == "pvpanic-pci"));
    }

    #[test]
    fn the_gdbstub_is_a_unix_socket_in_the_working_directory_and_only_when_asked() {
        let mut c = config(Arch::X86_64, Accel::Tcg);
        assert!(!argv(&c).iter().any(|a| a == "-gdb"));
        c.gdb_socket = Some("/r/gdb-qemu.sock".into());
        let a = argv(&c);
        let at = a.iter().position(|x| x == "-gdb").unwrap();
        assert_eq!(a[at + 1], "unix:gdb-qemu.sock,server=on,wait=off");
        assert!(a.windows(2).any(|w| w == ["-action", "panic=none"]));
        assert!(!a
            .iter()
            .any(|x| x.contains("tcp:") && !x.contains("hostfwd=tcp:127.0.0.1:")));
    }

    #[test]
    fn kvm_uses_host_cpu() {
        let a = argv(&config(Arch::X86_64, Accel::Kvm));
        assert!(a.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
        assert!(a.windows(2).any(|w| w[0] == "-cpu" && w[1] == "host"));
    }

    #[test]
    fn network_is_loopback_only() {
        for arch in Arch::ALL {
            let a = argv(&config(arch, Accel::Tcg));
            let net: Vec<&String> = a.iter().filter(|x| x.contains("hostfwd")).collect();
            assert_eq!(net.len(), 1);
            assert!(net[0].contains("restrict=on"));
            assert!(net[0].contains("hostfwd=tcp:127.0.0.1:"));
        }
    }

    #[test]
    fn firmware_boots_the_kernel_through_bios_when_set() {
        let mut c = config(Arch::Aarch64, Accel::Tcg);
        assert!(!argv(&c).iter().any(|a| a == "-bios"));
        c.firmware = Some("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd".into());
        c.pmem = vec![Pmem {
            path: "/r/pmem-pm.img".into(),
            size_mib: 1026,
        }];
        let v = argv(&c);
        let at = |a: &str| v.iter().position(|x| x == a).unwrap_or_else(|| panic!("{a} in {v:?}"));
        assert_eq!(v[at("-bios") + 1], "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd");
        assert!(at("-bios") < at("-kernel"), "{v:?}");
        assert!(v[at("-machine") + 1].ends_with(",nvdimm=on"), "{v:?}");
        assert_eq!(
            v[at("-m") + 1],
            format!("{}M,slots=2,maxmem={}M", c.memory_mib, c.memory_mib + 1026 + 1024)
        );
    }
}
