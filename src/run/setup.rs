//! The setup phase: shell scripts generated from the scenario's declarations (private links,
//! NFS server, NFS clients) plus its own `[[setup]]` steps, in the order they must run. Pure:
//! the runner executes them over SSH.

use crate::scenario::{BlockDev, Dm, DmTarget, Filesystem, NfsBacking, NfsClient, NfsServer, Scenario};

/// Installed as /usr/local/bin/repro-dm-error: `repro-dm-error DM FILE...` reloads device-mapper
/// device DM (linear over its device) so that exactly the sectors of FILE map to the `error`
/// target; `repro-dm-error DM` alone restores the plain linear table.
pub const DM_ERROR_HELPER: &str = r#"#!/bin/bash
set -euo pipefail
export DM_DISABLE_UDEV=1
dm=$1; shift
dev=$(cat "/run/repro/dm/$dm.dev")
size=$(blockdev --getsz "/dev/mapper/$dm")
ranges=$(for f in "$@"; do
    sync "$f"
    xfs_io -r -c "fiemap -v" "$f" | awk '$2 ~ /^[[]/ && $3 ~ /^[0-9]+[.][.][0-9]+:?$/ { sub(/:$/, "", $3); split($3, r, "[.][.]"); print r[1], r[2] }'
done | sort -n)
table=$(awk -v size="$size" -v dev="$dev" '
    NF == 2 { s = $1; e = $2; if (s > pos) print pos, s - pos, "linear", dev, pos; print s, e - s + 1, "error"; pos = e + 1 }
    END { if (pos < size) print pos, size - pos, "linear", dev, pos }' pos=0 <<< "$ranges")
[ -n "$ranges" ] || echo "repro-dm-error: no extents for $* (restoring linear)" >&2
dmsetup suspend --nolockfs --noudevsync "$dm"   # no freeze: it would write back dirty pages into the new table
printf '%s\n' "$table" | dmsetup load --noudevsync "$dm"
dmsetup resume --noudevsync "$dm"
echo "repro-dm-error: $dm now:"
dmsetup table "$dm"
"#;

/// One setup step on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupStep {
    pub node: usize,
    /// Short, for logs and errors: "network", "nfs-server", "nfs-client /mnt/nfs", "setup[0]".
    pub label: String,
    pub script: String,
}

/// A private link between the first node (the hub) and node `spoke`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub spoke: usize,
    /// The QEMU netdev id on both ends.
    pub id: String,
    pub hub_mac: String,
    pub spoke_mac: String,
    pub hub_addr: String,
    pub spoke_addr: String,
}

/// Every node other than the first is linked to the first one (a star). Node names resolve to
/// link addresses through /etc/hosts.
pub fn links(scenario: &Scenario) -> Vec<Link> {
    (1..scenario.nodes.len())
        .map(|i| Link {
            spoke: i,
            id: format!("link{i}"),
            hub_mac: format!("52:54:00:99:{i:02x}:01"),
            spoke_mac: format!("52:54:00:99:{i:02x}:02"),
            hub_addr: format!("10.99.{i}.1"),
            spoke_addr: format!("10.99.{i}.2"),
        })
        .collect()
}

/// The address `from` uses to reach `to`.
pub fn address(scenario: &Scenario, from: usize, to: usize) -> Option<String> {
    if from == to {
        return Some("127.0.0.1".into());
    }
    let ls = links(scenario);
    if from == 0 {
        return ls.iter().find(|l| l.spoke == to).map(|l| l.spoke_addr.clone());
    }
    if to == 0 {
        return ls.iter().find(|l| l.spoke == from).map(|l| l.hub_addr.clone());
    }
    None
}

fn network(scenario: &Scenario, node: usize) -> Option<String> {
    let ls = links(scenario);
    let mut mine: Vec<(String, String)> = Vec::new(); // (mac, addr)
    for l in &ls {
        if node == 0 {
            mine.push((l.hub_mac.clone(), l.hub_addr.clone()));
        } else if l.spoke == node {
            mine.push((l.spoke_mac.clone(), l.spoke_addr.clone()));
        }
    }
    if mine.is_empty() {
        return None;
    }
    let mut sc = String::from("set -e\n");
    sc.push_str("ifname() { for d in /sys/class/net/*; do [ \"$(cat \"$d/address\")\" = \"$1\" ] && basename \"$d\" && return 0; done; echo \"no interface with MAC $1\" >&2; return 1; }\n");
    for (mac, addr) in &mine {
        sc.push_str(&format!(
            "dev=$(ifname {mac})\nip addr add {addr}/24 dev \"$dev\"\nip link set \"$dev\" up\n"
        ));
    }
    for (j, n) in scenario.nodes.iter().enumerate() {
        if let Some(a) = address(scenario, node, j).filter(|_| j != node) {
            sc.push_str(&format!("echo '{a} {}' >> /etc/hosts\n", n.name));
        }
    }
    Some(sc)
}

/// nfsd's client tracking daemon, started as a distro's nfs-server unit does, before nfsd. Without
/// it, nfsd waits a second for it at every start, then runs `nfsdcltrack` once per client, with
/// a 90-second grace period. It must be watching for its pipe before nfsd makes it.
const NFSDCLD: &str = r#"if command -v nfsdcld >/dev/null; then
    mkdir -p /var/lib/nfs/rpc_pipefs
    mountpoint -q /var/lib/nfs/rpc_pipefs || mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs
    nfsdcld -F </dev/null >/run/repro/nfsdcld.log 2>&1 &
    cld=$! i=0
    until grep -qs '^inotify' /proc/$cld/fdinfo/*; do
        [ -d /proc/$cld ] && [ $i -lt 100 ] || { echo "repro: nfsdcld is not ready; nfsd will do without it"; break; }
        i=$((i + 1)); sleep 0.05
    done
fi
"#;

fn nfs_server(srv: &NfsServer) -> String {
    let e = &srv.export;
    let mut sc = String::from("set -e\nmodprobe nfsd 2>/dev/null || true\n");
    sc.push_str(&format!("mkdir -p {e}\n"));
    match srv.fs {
        NfsBacking::Tmpfs => sc.push_str(&format!("mount -t tmpfs -o size={}m tmpfs {e}\n", srv.size_mib)),
        NfsBacking::Ext4 | NfsBacking::Xfs => {
            let (mkfs, t) = if srv.fs == NfsBacking::Xfs {
                ("mkfs.xfs -f -q", "xfs")
            } else {
                ("mkfs.ext4 -F -q", "ext4")
            };
            match &srv.device {
                Some(d) => sc.push_str(&format!(
                    "modprobe {t} 2>/dev/null || true\n{mkfs} /dev/repro/{d}\nmount -t {t} /dev/repro/{d} {e}\n"
                )),
                None => sc.push_str(&format!(
                    "modprobe loop 2>/dev/null || true\nmodprobe {t} 2>/dev/null || true\n\
                     img=/var/tmp/nfs-export.img\ntruncate -s {}M $img\n{mkfs} $img\n\
                     dev=$(losetup -f --show $img)\nmount -t {t} $dev {e}\n",
                    srv.size_mib
                )),
            }
        }
    }
    sc.push_str("chmod 1777 ");
    sc.push_str(e);
    sc.push('\n');
    sc.push_str("mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd\n");
    sc.push_str(&format!("echo '{e} *({})' > /etc/exports\nexportfs -ra\n", srv.options));
    let v3 = srv.versions.iter().any(|v| v == "3");
    if v3 {
        sc.push_str("rpcbind -w 2>/dev/null || rpcbind\nrpc.statd --no-notify 2>/dev/null || true\n");
        sc.push_str("rpc.mountd -N 2\n");
    } else {
        sc.push_str("rpc.mountd -N 2 -N 3\n");
    }
    sc.push_str(NFSDCLD);
    let mut flags = Vec::new();
    for v in ["3", "4.0", "4.1", "4.2"] {
        if !srv.versions.iter().any(|x| x == v) {
            flags.push(format!("-N {v}"));
        }
    }
    // Workloads restart the server with the same versions: `repro-nfsd 0`, `repro-nfsd 8`.
    sc.push_str(&format!(
        "mkdir -p /usr/local/bin\nprintf '#!/bin/sh\\nexec rpc.nfsd {f} \"$@\"\\n' > /usr/local/bin/repro-nfsd\n\
         chmod 755 /usr/local/bin/repro-nfsd\nrepro-nfsd {}\n",
        srv.threads,
        f = flags.join(" ")
    ));
    sc
}

fn nfs_client(c: &NfsClient, srv: &NfsServer, server_addr: &str) -> String {
    let v4 = c.version.starts_with('4');
    // With fsid=0 the export is the NFSv4 pseudo-root.
    let path = if v4 && srv.options.split(',').any(|o| o == "fsid=0") {
        "/".to_string()
    } else {
        srv.export.clone()
    };
    let mut opts = format!("vers={}", c.version);
    if !v4 {
        opts.push_str(",nolock");
    }
    if !c.options.is_empty() {
        opts.push(',');
        opts.push_str(&c.options);
    }
    format!(
        "set -e\nmodprobe nfsv{} 2>/dev/null || true\nmkdir -p {mp}\nmount -t nfs -o {opts} {server_addr}:{path} {mp}\n",
        if v4 { "4" } else { "3" },
        mp = c.mountpoint
    )
}

/// The node's disks, pmem, dm devices and filesystems. `fresh`: namespaces created, devices
/// filled and filesystems made; otherwise (after a power cut) everything is found and mounted
/// again as it was left, with no mkfs, so the filesystem replays its log.
fn storage(scenario: &Scenario, node: usize, fresh: bool) -> Option<String> {
    let disks: Vec<&BlockDev> = scenario.disks.iter().filter(|d| d.node == node).collect();
    let pmem: Vec<&BlockDev> = scenario.pmem.iter().filter(|d| d.node == node).collect();
    let dms: Vec<&Dm> = scenario.dm.iter().filter(|d| d.node == node).collect();
    let fss: Vec<&Filesystem> = scenario.filesystems.iter().filter(|f| f.node == node).collect();
    if disks.is_empty() && pmem.is_empty() && dms.is_empty() && fss.is_empty() {
        return None;
    }
    let mut sc = String::from("set -euo pipefail\nexport DM_DISABLE_UDEV=1\nmkdir -p /dev/repro /run/repro/dm\n");
    disks_by_serial(&mut sc, &disks);
    pmem_namespaces(&mut sc, &pmem, fresh);
    if fresh {
        fill(&mut sc, disks.iter().chain(pmem.iter()).copied());
    }
    dm_tables(&mut sc, &dms);
    for f in &fss {
        mount(&mut sc, f, fresh);
    }
    Some(sc)
}

/// `/dev/repro/NAME` for each virtio disk, by its serial.
fn disks_by_serial(sc: &mut String, disks: &[&BlockDev]) {
    if disks.is_empty() {
        return;
    }
    sc.push_str(
        "for d in /sys/block/vd*; do s=$(cat \"$d/serial\" 2>/dev/null || true); \
         [ -n \"$s\" ] && ln -sfn \"/dev/$(basename \"$d\")\" \"/dev/repro/$s\"; done\n",
    );
    for d in disks {
        sc.push_str(&format!(
            "[ -b /dev/repro/{0} ] || {{ echo 'disk {0} not found' >&2; exit 1; }}\n",
            d.name
        ));
    }
}

/// `/dev/repro/NAME` for each NVDIMM's fsdax namespace, made when `fresh`.
fn pmem_namespaces(sc: &mut String, pmem: &[&BlockDev], fresh: bool) {
    if pmem.is_empty() {
        return;
    }
    sc.push_str("modprobe nfit 2>/dev/null || true\nmodprobe nd_pmem 2>/dev/null || true\n");
    sc.push_str(
        "[ -d /sys/bus/nd ] || { echo 'this kernel has no libnvdimm (CONFIG_LIBNVDIMM, ACPI_NFIT)' >&2; exit 1; }\n",
    );
    sc.push_str("for i in $(seq 50); do [ -e /sys/bus/nd/devices/namespace0.0 ] && break; sleep 0.1; done\n");
    for (i, d) in pmem.iter().enumerate() {
        if fresh {
            sc.push_str(&format!(
                "ndctl create-namespace -f -e namespace{i}.0 -m fsdax > /dev/null || {{ echo 'no fsdax namespace for pmem {}: \
                 the kernel needs ZONE_DEVICE, NVDIMM_PFN and FS_DAX (Debian arm64 kernels lack them)' >&2; exit 1; }}\n",
                d.name
            ));
        }
        // After a power cut the namespace comes back from the labels in the backing file.
        sc.push_str(&format!(
            "for j in $(seq 50); do [ -b /dev/pmem{i} ] && break; sleep 0.1; done\n\
             [ -b /dev/pmem{i} ] || {{ echo 'no /dev/pmem{i} for pmem {0}' >&2; exit 1; }}\n\
             ln -sfn /dev/pmem{i} /dev/repro/{0}\n",
            d.name
        ));
    }
}

/// Fills the devices that ask for it, and checks that the fill reached them.
fn fill<'a>(sc: &mut String, devices: impl Iterator<Item = &'a BlockDev>) {
    for d in devices {
        let Some(b) = d.fill else { continue };
        // The device is smaller than its backing file for pmem (labels, alignment): fill
        // what the guest sees, in whole MiB (tr then dies of SIGPIPE, which is fine).
        sc.push_str(&format!(
            "{{ tr '\\000' '\\{b:03o}' < /dev/zero || true; }} | dd of=/dev/repro/{0} bs=1M count=$(( $(blockdev --getsize64 /dev/repro/{0}) >> 20 )) iflag=fullblock oflag=direct status=none\n",
            d.name
        ));
        // The fill must have reached the device: check its first byte.
        sc.push_str(&format!(
            "[ \"$(dd if=/dev/repro/{} bs=1 count=1 status=none | od -An -tu1 | tr -d ' ')\" = {b} ]\n",
            d.name
        ));
    }
}

/// The dm devices, and the `repro-dm-error` helper that swaps error tables in.
fn dm_tables(sc: &mut String, dms: &[&Dm]) {
    if dms.is_empty() {
        return;
    }
    sc.push_str("modprobe dm-mod 2>/dev/null || true\nmodprobe dm-flakey 2>/dev/null || true\n");
    sc.push_str(&format!(
        "mkdir -p /usr/local/bin\ncat > /usr/local/bin/repro-dm-error <<'REPRO_EOF'\n{DM_ERROR_HELPER}REPRO_EOF\nchmod 755 /usr/local/bin/repro-dm-error\n"
    ));
    for d in dms {
        let table = match d.target {
            DmTarget::Linear => "linear $dev 0".to_string(),
            DmTarget::Flakey { up, down } => format!("flakey $dev 0 {up} {down}"),
        };
        sc.push_str(&format!(
            "dev=$(readlink -f /dev/repro/{dev})\nsz=$(blockdev --getsz $dev)\n\
             echo \"0 $sz {table}\" | dmsetup create --noudevsync {name}\n\
             echo $dev > /run/repro/dm/{name}.dev\nln -sfn /dev/mapper/{name} /dev/repro/{name}\n",
            dev = d.device,
            name = d.name
        ));
    }
}

/// Makes (when `fresh`) and mounts a filesystem; with DAX asked for, checks that it is in effect.
fn mount(sc: &mut String, f: &Filesystem, fresh: bool) {
    let mkfs = if f.fs == "xfs" {
        "mkfs.xfs -f -q"
    } else {
        "mkfs.ext4 -F -q"
    };
    let opts = if f.mount_options.is_empty() {
        String::new()
    } else {
        format!(" -o {}", f.mount_options)
    };
    let mkfs = if fresh {
        format!("{mkfs} {} /dev/repro/{}\n", f.mkfs_options, f.device)
    } else {
        String::new()
    };
    sc.push_str(&format!(
        "modprobe {fs} 2>/dev/null || true\n{mkfs}mkdir -p {mp}\nmount -t {fs}{opts} /dev/repro/{dev} {mp}\n",
        fs = f.fs,
        dev = f.device,
        mp = f.mountpoint
    ));
    if f.mount_options.split(',').any(|o| o == "dax=always" || o == "dax") {
        // A namespace that cannot do DAX mounts fine and silently turns DAX off: check.
        sc.push_str(&format!(
            "touch {mp}/.repro-dax\n\
             a=$(xfs_io -c 'statx -r' {mp}/.repro-dax | awk '/^stat.attributes = / {{ print $3 }}')\n\
             rm -f {mp}/.repro-dax\n\
             if (( ${{a:-0}} & 0x200000 )); then echo \"DAX in effect on {mp} (statx attributes $a)\"; \
             else echo \"DAX is NOT in effect on {mp} (statx attributes ${{a:-?}}, want 0x200000)\" >&2; exit 1; fi\n",
            mp = f.mountpoint
        ));
    }
}

/// The steps, in order: links on every node, storage (disks, pmem, dm, filesystems) on every
/// node, the NFS server, its clients, then `[[setup]]`.
pub fn steps(scenario: &Scenario) -> Result<Vec<SetupStep>, String> {
    let mut out = Vec::new();
    for i in 0..scenario.nodes.len() {
        if let Some(sc) = network(scenario, i) {
            out.push(SetupStep {
                node: i,
                label: "network".into(),
                script: sc,
            });
        }
    }
    for i in 0..scenario.nodes.len() {
        if let Some(sc) = storage(scenario, i, true) {
            out.push(SetupStep {
                node: i,
                label: "storage".into(),
                script: sc,
            });
        }
    }
    if let Some(srv) = &scenario.nfs_server {
        out.push(SetupStep {
            node: srv.node,
            label: format!("nfs-server {}", srv.export),
            script: nfs_server(srv),
        });
        for c in &scenario.nfs_clients {
            let addr = address(scenario, c.node, srv.node).ok_or_else(|| {
                format!(
                    "node `{}` has no link to the NFS server `{}`",
                    scenario.nodes[c.node].name, scenario.nodes[srv.node].name
                )
            })?;
            out.push(SetupStep {
                node: c.node,
                label: format!("nfs-client {}", c.mountpoint),
                script: nfs_client(c, srv, &addr),
            });
        }
    }
    for (i, st) in scenario.setup.iter().enumerate() {
        out.push(SetupStep {
            node: st.node,
            label: format!("setup[{i}]"),
            script: st.script.clone(),
        });
    }
    Ok(out)
}

/// After a power cut of `node`: its storage found and mounted again as it was left (dm tables
/// loaded again, no fill, no namespace creation, no mkfs).
pub fn after_power_cut(scenario: &Scenario, node: usize) -> Vec<SetupStep> {
    storage(scenario, node, false)
        .map(|script| SetupStep {
            node,
            label: "storage after the power cut".into(),
            script,
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "summary = \"t\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n[workload]\nscript = \"true\"\n{extra}"
        );
        crate::scenario::parse(Path::new("t.toml"), &text, &["k".into()], &["i".into()]).unwrap()
    }

    #[test]
    fn loopback_nfs_server_then_client() {
        let s = scenario(
            "[nfs]\nfs = \"tmpfs\"\nversions = [\"4.1\", \"4.2\"]\n[[nfs.clients]]\nversion = \"4.1\"\noptions = \"soft\"\n",
        );
        let st = steps(&s).unwrap();
        let labels: Vec<&str> = st.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(labels, ["nfs-server /srv/nfs", "nfs-client /mnt/nfs"]);
        assert!(st[0].script.contains("mount -t tmpfs -o size=512m tmpfs /srv/nfs"));
        assert!(st[0].script.contains("rpc.mountd -N 2 -N 3\n"));
        assert!(
            st[0].script.contains("exec rpc.nfsd -N 3 -N 4.0 \"$@\""),
            "{}",
            st[0].script
        );
        assert!(st[0].script.contains("repro-nfsd 8\n"), "{}", st[0].script);
        let (cld, nfsd) = (st[0].script.find("nfsdcld -F"), st[0].script.find("repro-nfsd 8"));
        assert!(
            cld.is_some() && cld < nfsd,
            "nfsdcld starts before nfsd:\n{}",
            st[0].script
        );
        assert!(st[1]
            .script
            .contains("mount -t nfs -o vers=4.1,soft 127.0.0.1:/ /mnt/nfs"));
    }

    #[test]
    fn two_nodes_get_a_link_and_hosts_entries() {
        let s = scenario(
            "[[nodes]]\nname = \"server\"\n[[nodes]]\nname = \"client\"\n[nfs]\nserver = \"server\"\nfs = \"xfs\"\n[[nfs.clients]]\nnode = \"client\"\nversion = \"3\"\n",
        );
        let st = steps(&s).unwrap();
        let labels: Vec<(usize, &str)> = st.iter().map(|x| (x.node, x.label.as_str())).collect();
        assert_eq!(
            labels,
            [
                (0, "network"),
                (1, "network"),
                (0, "nfs-server /srv/nfs"),
                (1, "nfs-client /mnt/nfs")
            ]
        );
        assert!(st[0].script.contains("ifname 52:54:00:99:01:01"));
        assert!(st[0].script.contains("ip addr add 10.99.1.1/24"));
        assert!(st[0].script.contains("echo '10.99.1.2 client' >> /etc/hosts"));
        assert!(st[1].script.contains("echo '10.99.1.1 server' >> /etc/hosts"));
        assert!(st[2].script.contains("mkfs.xfs -f -q $img"));
        assert!(st[2].script.contains("rpcbind"));
        assert!(st[3]
            .script
            .contains("mount -t nfs -o vers=3,nolock 10.99.1.1:/srv/nfs /mnt/nfs"));
    }

    #[test]
    fn spokes_are_not_linked_to_each_other() {
        let s = scenario("[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n[[nodes]]\nname = \"c\"\n");
        assert_eq!(address(&s, 1, 2), None);
        assert_eq!(address(&s, 2, 0).as_deref(), Some("10.99.2.1"));
        assert_eq!(address(&s, 0, 2).as_deref(), Some("10.99.2.2"));
        assert_eq!(address(&s, 1, 1).as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn after_a_power_cut_storage_is_mounted_again_without_mkfs_fill_or_new_namespaces() {
        let s = scenario(
            "[[disks]]\nname = \"d\"\nsize = \"64M\"\nfill = 0xAB\n[[pmem]]\nname = \"pm\"\nsize = \"1026M\"\nfill = 0xAB\n\
             [[dm]]\nname = \"lin\"\ntarget = \"linear\"\ndevice = \"d\"\n\
             [[filesystems]]\ndevice = \"lin\"\nfs = \"xfs\"\nmkfs_options = \"-m reflink=0\"\nmountpoint = \"/mnt/a\"\n\
             [[filesystems]]\ndevice = \"pm\"\nfs = \"xfs\"\nmountpoint = \"/mnt/dax\"\nmount_options = \"dax=always\"\n",
        );
        let first = &steps(&s).unwrap()[0].script;
        for fresh in [
            "mkfs.xfs -f -q -m reflink=0 /dev/repro/lin",
            "ndctl create-namespace",
            "dd of=/dev/repro/pm",
        ] {
            assert!(first.contains(fresh), "{fresh}: {first}");
        }
        let again = after_power_cut(&s, 0);
        assert_eq!(again.len(), 1);
        let sc = &again[0].script;
        for gone in ["mkfs", "ndctl create-namespace", "dd of="] {
            assert!(!sc.contains(gone), "{gone}: {sc}");
        }
        for kept in [
            "ln -sfn /dev/pmem0 /dev/repro/pm",
            "dmsetup create --noudevsync lin",
            "mount -t xfs /dev/repro/lin /mnt/a",
            "mount -t xfs -o dax=always /dev/repro/pm /mnt/dax",
            "DAX is NOT in effect on /mnt/dax",
        ] {
            assert!(sc.contains(kept), "{kept}: {sc}");
        }
        assert!(after_power_cut(&scenario(""), 0).is_empty());
    }
}
