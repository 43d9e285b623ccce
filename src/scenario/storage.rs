//! The storage sections: `[nfs]` with its clients, and the block devices (`[[disks]]`,
//! `[[pmem]]`, `[[dm]]`) with the `[[filesystems]]` on them.

use super::check::{Checked, File};
use super::model::{BlockDev, Dm, DmTarget, Filesystem, NfsBacking, NfsClient, NfsServer, Node};
use super::raw::{Raw, RawDisk, RawNfs};
use toml::Spanned;

const NFS_VERSIONS: [&str; 4] = ["3", "4.0", "4.1", "4.2"];
const NFS_OPTIONS: &str = "rw,fsid=0,no_subtree_check,no_root_squash,insecure,sync";

/// The declared block devices, and the (node, name) pairs they take.
pub(super) struct Devices {
    pub disks: Vec<BlockDev>,
    pub pmem: Vec<BlockDev>,
    pub dm: Vec<Dm>,
    pub filesystems: Vec<Filesystem>,
    names: Vec<(usize, String)>,
}

impl Devices {
    fn has(&self, node: usize, name: &str) -> bool {
        self.names.iter().any(|(n, d)| *n == node && d == name)
    }

    /// Takes `name` for a device on `node`, under the name rule and once per node.
    fn take(&mut self, file: File, node: usize, name: &Spanned<String>, key: &str) -> Checked<String> {
        let device = file.name(name, key, "device")?;
        if self.has(node, &device) {
            return Err(file.diag(
                name.span(),
                key,
                format!("duplicate device name `{device}` on this node"),
            ));
        }
        self.names.push((node, device.clone()));
        Ok(device)
    }
}

pub(super) fn nfs(file: File, raw: &Raw, nodes: &[Node]) -> Checked<(Option<NfsServer>, Vec<NfsClient>)> {
    let Some(nfs) = &raw.nfs else {
        return Ok((None, Vec::new()));
    };
    let node = file.node(nodes, &nfs.server, "nfs.server", 0)?;
    let fs = match nfs.fs.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
        None | Some(("tmpfs", _)) => NfsBacking::Tmpfs,
        Some(("ext4", _)) => NfsBacking::Ext4,
        Some(("xfs", _)) => NfsBacking::Xfs,
        Some((other, span)) => {
            return Err(file.diag(
                span,
                "nfs.fs",
                format!("unknown backing filesystem `{other}`, expected tmpfs, ext4 or xfs"),
            ))
        }
    };
    let versions = nfs_versions(file, nfs)?;
    let size_mib = nfs.size.map_or(512, |m| m.0);
    if fs == NfsBacking::Xfs && size_mib < 300 {
        return Err(file.diag(
            0..0,
            "nfs.size",
            format!("mkfs.xfs refuses filesystems under 300 MiB; got {size_mib} MiB"),
        ));
    }
    let clients = nfs_clients(file, nfs, nodes, node, &versions)?;
    let server = NfsServer {
        node,
        export: nfs.export.clone().unwrap_or_else(|| "/srv/nfs".into()),
        fs,
        size_mib,
        device: nfs.device.as_ref().map(|d| d.get_ref().clone()),
        options: nfs.options.clone().unwrap_or_else(|| NFS_OPTIONS.into()),
        versions,
        threads: nfs.threads.unwrap_or(8),
    };
    Ok((Some(server), clients))
}

fn nfs_versions(file: File, nfs: &RawNfs) -> Checked<Vec<String>> {
    let mut versions = Vec::new();
    for v in nfs.versions.iter().flatten() {
        if !NFS_VERSIONS.contains(&v.get_ref().as_str()) {
            return Err(file.diag(
                v.span(),
                "nfs.versions",
                format!("unknown NFS version `{}`, expected 3, 4.0, 4.1 or 4.2", v.get_ref()),
            ));
        }
        versions.push(v.get_ref().clone());
    }
    if versions.is_empty() {
        versions = NFS_VERSIONS.iter().map(|v| v.to_string()).collect();
    }
    Ok(versions)
}

fn nfs_clients(
    file: File,
    nfs: &RawNfs,
    nodes: &[Node],
    server: usize,
    versions: &[String],
) -> Checked<Vec<NfsClient>> {
    let mut clients = Vec::new();
    for (i, c) in nfs.clients.iter().enumerate() {
        let key = format!("nfs.clients[{i}]");
        let node = file.node(nodes, &c.node, &format!("{key}.node"), server)?;
        if node != server && node != 0 && server != 0 {
            return Err(file.diag(
                c.node.as_ref().map_or(0..0, |nfs| nfs.span()),
                &format!("{key}.node"),
                "guests are linked to the first node only: put the server or this client on it",
            ));
        }
        let version = c.version.get_ref();
        if !versions.contains(version) {
            return Err(file.diag(
                c.version.span(),
                &format!("{key}.version"),
                format!(
                    "the server does not serve version `{version}` (it serves {})",
                    versions.join(", ")
                ),
            ));
        }
        clients.push(NfsClient {
            node,
            mountpoint: c.mountpoint.clone().unwrap_or_else(|| "/mnt/nfs".into()),
            version: version.clone(),
            options: c.options.clone(),
        });
    }
    Ok(clients)
}

fn block_devs(
    file: File,
    raw: &[RawDisk],
    what: &str,
    nodes: &[Node],
    devices: &mut Devices,
) -> Checked<Vec<BlockDev>> {
    let mut out = Vec::new();
    for (i, d) in raw.iter().enumerate() {
        let node = file.node(nodes, &d.node, &format!("{what}[{i}].node"), 0)?;
        out.push(BlockDev {
            node,
            name: devices.take(file, node, &d.name, &format!("{what}[{i}].name"))?,
            size_mib: d.size.0,
            fill: d.fill,
        });
    }
    Ok(out)
}

pub(super) fn devices(file: File, raw: &Raw, nodes: &[Node]) -> Checked<Devices> {
    let mut devices = Devices {
        disks: Vec::new(),
        pmem: Vec::new(),
        dm: Vec::new(),
        filesystems: Vec::new(),
        names: Vec::new(),
    };
    devices.disks = block_devs(file, &raw.disks, "disks", nodes, &mut devices)?;
    devices.pmem = block_devs(file, &raw.pmem, "pmem", nodes, &mut devices)?;
    dm(file, raw, nodes, &mut devices)?;
    filesystems(file, raw, nodes, &mut devices)?;
    Ok(devices)
}

fn dm(file: File, raw: &Raw, nodes: &[Node], devices: &mut Devices) -> Checked<()> {
    for (i, d) in raw.dm.iter().enumerate() {
        let node = file.node(nodes, &d.node, &format!("dm[{i}].node"), 0)?;
        let target = match d.target.get_ref().as_str() {
            "linear" => DmTarget::Linear,
            "flakey" => DmTarget::Flakey {
                up: d.up.unwrap_or(5),
                down: d.down.unwrap_or(1),
            },
            other => {
                return Err(file.diag(
                    d.target.span(),
                    &format!("dm[{i}].target"),
                    format!("unknown target `{other}`, expected linear or flakey (error tables are swapped in with repro-dm-error)"),
                ))
            }
        };
        if !devices.has(node, d.device.get_ref()) {
            return Err(file.diag(
                d.device.span(),
                &format!("dm[{i}].device"),
                format!(
                    "no disk or pmem named `{}` on this node (declare it before the dm device)",
                    d.device.get_ref()
                ),
            ));
        }
        let name = devices.take(file, node, &d.name, &format!("dm[{i}].name"))?;
        let device = d.device.get_ref().clone();
        devices.dm.push(Dm {
            node,
            name,
            target,
            device,
        });
    }
    Ok(())
}

fn filesystems(file: File, raw: &Raw, nodes: &[Node], devices: &mut Devices) -> Checked<()> {
    for (i, f) in raw.filesystems.iter().enumerate() {
        let node = file.node(nodes, &f.node, &format!("filesystems[{i}].node"), 0)?;
        if !devices.has(node, f.device.get_ref()) {
            return Err(file.diag(
                f.device.span(),
                &format!("filesystems[{i}].device"),
                format!("no disk, pmem or dm device named `{}` on this node", f.device.get_ref()),
            ));
        }
        if !["xfs", "ext4"].contains(&f.fs.get_ref().as_str()) {
            return Err(file.diag(
                f.fs.span(),
                &format!("filesystems[{i}].fs"),
                format!("unknown filesystem `{}`, expected xfs or ext4", f.fs.get_ref()),
            ));
        }
        devices.filesystems.push(Filesystem {
            node,
            device: f.device.get_ref().clone(),
            fs: f.fs.get_ref().clone(),
            mkfs_options: f.mkfs_options.clone(),
            mountpoint: f.mountpoint.clone(),
            mount_options: f.mount_options.clone(),
        });
    }
    Ok(())
}

/// `nfs.device`: an ext4 or xfs export on a declared device of the server's node.
pub(super) fn nfs_device(file: File, raw: &Raw, server: Option<&NfsServer>, devices: &Devices) -> Checked<()> {
    let (Some(server), Some(d)) = (server, raw.nfs.as_ref().and_then(|nfs| nfs.device.as_ref())) else {
        return Ok(());
    };
    if server.fs == NfsBacking::Tmpfs {
        return Err(file.diag(
            d.span(),
            "nfs.device",
            "a tmpfs export has no device; set `fs` to ext4 or xfs",
        ));
    }
    if !devices.has(server.node, d.get_ref()) {
        return Err(file.diag(
            d.span(),
            "nfs.device",
            format!(
                "no disk, pmem or dm device named `{}` on the server's node",
                d.get_ref()
            ),
        ));
    }
    Ok(())
}
