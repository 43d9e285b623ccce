//! The small layers around a base image: the per-kernel modules disk, the per-(kernel, image)
//! boot initramfs, and the per-run cpio.

use super::cpio;
use super::error::{io_err, Error};
use super::rootfs::{run_logged, Built};
use crate::arch::Arch;
use crate::cache;
use crate::kernel::Artifacts;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const INIT: &str = include_str!("guest/init.sh");

/// Modules the boot initramfs loads (with their dependencies) when the kernel has them as
/// modules; built-in or absent ones are skipped. `virtio_console` gives the guest agent its
/// port (`guest::agent`). `qemu_fw_cfg` publishes the kernel's
/// VMCOREINFO to QEMU's `vmcoreinfo` device as it probes, so that a memory dump carries it.
fn boot_modules(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &[
            "virtio_pci",
            "virtio_blk",
            "virtio_net",
            "virtio_console",
            "ext4",
            "pvpanic_mmio",
            "qemu_fw_cfg",
        ],
        Arch::Aarch64 => &[
            "virtio_pci",
            "virtio_blk",
            "virtio_net",
            "virtio_console",
            "ext4",
            "pvpanic_pci",
            "qemu_fw_cfg",
        ],
    }
}

fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// Parses `modules.dep` into module name → (relative path, dependency paths).
fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = norm(name.split(".ko").next().unwrap_or(""));
        m.insert(
            name,
            (path.to_string(), deps.split_whitespace().map(str::to_string).collect()),
        );
    }
    m
}

/// The module files to load, dependencies first.
pub(crate) fn load_order(dep_text: &str, wanted: &[&str]) -> Vec<String> {
    let deps = parse_dep(dep_text);
    let by_path: BTreeMap<&str, &str> = deps.iter().map(|(n, (p, _))| (p.as_str(), n.as_str())).collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        by_path: &BTreeMap<&str, &str>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some((path, ds)) = deps.get(name) else {
            return;
        };
        for d in ds {
            if let Some(n) = by_path.get(d.as_str()) {
                visit(n, deps, by_path, seen, order);
            }
        }
        order.push(path.clone());
    }
    for w in wanted {
        visit(&norm(w), &deps, &by_path, &mut seen, &mut order);
    }
    order
}

/// The boot initramfs for this kernel and image, built once.
pub fn boot_initramfs(kernel: &Artifacts, image: &Built) -> Result<PathBuf, Error> {
    let modules = boot_modules(kernel.arch).join(" ");
    let key = cache::key(&[
        kernel.id.as_bytes(),
        image.key.as_bytes(),
        INIT.as_bytes(),
        modules.as_bytes(),
    ]);
    let dir = cache::dir("initramfs")?;
    let out = dir.join(format!("{}-{}-{key}.cpio", kernel.name, kernel.arch));
    let _lock = cache::lock(&out)?;
    if cache::file_is_intact(&out) {
        return Ok(out);
    }
    let mut w = cpio::Writer::new(Vec::new());
    let wr = |e: std::io::Error| Error::Io {
        path: out.clone(),
        source: e,
    };
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "newroot",
        "repro",
        "lib",
        "lib/modules",
        "lib/modules/boot",
    ] {
        w.dir(d).map_err(wr)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1).map_err(wr)?;
    w.char_dev("dev/null", 0o666, 1, 3).map_err(wr)?;
    let bb = std::fs::read(&image.busybox).map_err(io_err(&image.busybox))?;
    w.file("bin/busybox", 0o755, &bb).map_err(wr)?;
    w.symlink("bin/sh", "busybox").map_err(wr)?;
    w.file("init", 0o755, INIT.as_bytes()).map_err(wr)?;
    if let Some(mods) = &kernel.modules {
        let dep_path = mods.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path).map_err(io_err(&dep_path))?;
        let mut order = String::new();
        for (i, rel) in load_order(&dep, boot_modules(kernel.arch)).iter().enumerate() {
            let src = mods.join(rel);
            let data = std::fs::read(&src).map_err(io_err(&src))?;
            let base = Path::new(rel)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = format!("{i:02}-{base}");
            w.file(&format!("lib/modules/boot/{name}"), 0o644, &data).map_err(wr)?;
            order.push_str(&name);
            order.push('\n');
        }
        w.file("lib/modules/boot/order", 0o644, order.as_bytes()).map_err(wr)?;
    }
    let bytes = w.finish().map_err(wr)?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    cache::install_file(&tmp, &out).map_err(io_err(&out))?;
    Ok(out)
}

/// An ext4 disk holding the kernel's `lib/modules/<release>`, built once per kernel.
pub fn modules_disk(kernel: &Artifacts) -> Result<Option<PathBuf>, Error> {
    let Some(mods) = &kernel.modules else {
        return Ok(None);
    };
    let dir = cache::dir("modules")?;
    let out = dir.join(format!("{}-{}-{}.ext4", kernel.name, kernel.arch, kernel.id));
    let _lock = cache::lock(&out)?;
    if cache::file_is_intact(&out) {
        return Ok(Some(out));
    }
    let size_mib = du_mib(mods)? * 5 / 4 + 32;
    let tmp = out.with_extension("tmp");
    let log = out.with_extension("log");
    let _ = std::fs::remove_file(&log);
    run_logged(
        Command::new("mke2fs")
            .args([
                "-q",
                "-t",
                "ext4",
                "-O",
                "^has_journal",
                "-L",
                "repro-modules",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(mods)
            .arg("-F")
            .arg(&tmp)
            .arg(format!("{size_mib}M")),
        &log,
    )?;
    cache::install_file(&tmp, &out).map_err(io_err(&out))?;
    Ok(Some(out))
}

fn du_mib(p: &Path) -> Result<u64, Error> {
    let mut total = 0u64;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let e = e.map_err(io_err(&d))?;
            let m = e.metadata().map_err(io_err(&e.path()))?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len().div_ceil(4096) * 4096;
            }
        }
    }
    Ok(total.div_ceil(1 << 20))
}

/// What a run puts into its guest besides the image.
#[derive(Debug, Clone)]
pub struct RunLayer {
    pub node: String,
    pub authorized_key: String,
    /// The device holding the modules disk inside the guest, if any.
    pub modules_dev: Option<String>,
    /// The workload's shell, when its words are plain (see [`crate::shell::plain_command`]):
    /// what the guest's bring-up starts once ahead of the workload under TCG.
    pub shell: Option<String>,
    /// Extra files (name, host path), landing in `/etc/repro/run/<name>` in the guest.
    pub files: Vec<(String, std::path::PathBuf)>,
}

/// Writes `out` = the boot initramfs followed by a cpio with the run's files.
pub fn run_initrd(boot: &Path, layer: &RunLayer, out: &Path) -> Result<(), Error> {
    let mut bytes = std::fs::read(boot).map_err(io_err(boot))?;
    let mut w = cpio::Writer::new(Vec::new());
    let wr = |e: std::io::Error| Error::Io {
        path: out.to_path_buf(),
        source: e,
    };
    w.dir("repro").map_err(wr)?;
    // Single quotes hold the node's name (checked by the scenario), a device path and plain
    // words as they are.
    let shell = layer
        .shell
        .as_deref()
        .filter(|s| crate::shell::plain_command(s).is_some());
    let env = format!(
        "REPRO_NODE='{}'\nREPRO_MODULES_DEV='{}'\nREPRO_SHELL='{}'\n",
        layer.node,
        layer.modules_dev.as_deref().unwrap_or(""),
        shell.unwrap_or("")
    );
    w.file("repro/env", 0o644, env.as_bytes()).map_err(wr)?;
    w.file("repro/authorized_keys", 0o600, layer.authorized_key.as_bytes())
        .map_err(wr)?;
    for (name, path) in &layer.files {
        let data = std::fs::read(path).map_err(io_err(path))?;
        w.file(&format!("repro/{name}"), 0o644, &data).map_err(wr)?;
    }
    bytes.extend(w.finish().map_err(wr)?);
    std::fs::write(out, bytes).map_err(io_err(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/block/virtio_blk.ko:\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
kernel/net/core/failover.ko:\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko\n\
kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n";

    #[test]
    fn dependencies_load_first_once() {
        let order = load_order(DEP, &["virtio_pci", "virtio-net", "virtio_blk", "ext4"]);
        assert_eq!(
            order,
            vec![
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
    }
}
