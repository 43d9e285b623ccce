//! The setup phase: shell scripts generated from the scenario's declarations (private links,
//! NFS server, NFS clients) plus its own `[[setup]]` steps, in the order they must run. Pure:
//! the runner executes them over SSH.

use crate::scenario::{NfsBacking, NfsClient, NfsServer, Scenario};

/// One setup step on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
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
pub fn links(s: &Scenario) -> Vec<Link> {
    (1..s.nodes.len())
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
pub fn address(s: &Scenario, from: usize, to: usize) -> Option<String> {
    if from == to {
        return Some("127.0.0.1".into());
    }
    let ls = links(s);
    if from == 0 {
        return ls.iter().find(|l| l.spoke == to).map(|l| l.spoke_addr.clone());
    }
    if to == 0 {
        return ls.iter().find(|l| l.spoke == from).map(|l| l.hub_addr.clone());
    }
    None
}

fn network(s: &Scenario, node: usize) -> Option<String> {
    let ls = links(s);
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
    for (j, n) in s.nodes.iter().enumerate() {
        if let Some(a) = address(s, node, j).filter(|_| j != node) {
            sc.push_str(&format!("echo '{a} {}' >> /etc/hosts\n", n.name));
        }
    }
    Some(sc)
}

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
            sc.push_str(&format!(
                "modprobe loop 2>/dev/null || true\nmodprobe {t} 2>/dev/null || true\n\
                 img=/var/tmp/nfs-export.img\ntruncate -s {}M $img\n{mkfs} $img\n\
                 dev=$(losetup -f --show $img)\nmount -t {t} $dev {e}\n",
                srv.size_mib
            ));
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
    let mut flags = Vec::new();
    for v in ["3", "4.0", "4.1", "4.2"] {
        if !srv.versions.iter().any(|x| x == v) {
            flags.push(format!("-N {v}"));
        }
    }
    sc.push_str(&format!("rpc.nfsd {} {}\n", flags.join(" "), srv.threads));
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

/// The steps, in order: links on every node, the NFS server, its clients, then `[[setup]]`.
pub fn steps(s: &Scenario) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    for i in 0..s.nodes.len() {
        if let Some(sc) = network(s, i) {
            out.push(Step {
                node: i,
                label: "network".into(),
                script: sc,
            });
        }
    }
    if let Some(srv) = &s.nfs_server {
        out.push(Step {
            node: srv.node,
            label: format!("nfs-server {}", srv.export),
            script: nfs_server(srv),
        });
        for c in &s.nfs_clients {
            let addr = address(s, c.node, srv.node).ok_or_else(|| {
                format!(
                    "node `{}` has no link to the NFS server `{}`",
                    s.nodes[c.node].name, s.nodes[srv.node].name
                )
            })?;
            out.push(Step {
                node: c.node,
                label: format!("nfs-client {}", c.mountpoint),
                script: nfs_client(c, srv, &addr),
            });
        }
    }
    for (i, st) in s.setup.iter().enumerate() {
        out.push(Step {
            node: st.node,
            label: format!("setup[{i}]"),
            script: st.script.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "summary = \"t\"\nkernel = \"k\"\narch = \"x86_64\"\nimage = \"i\"\n[workload]\nscript = \"true\"\n{extra}"
        );
        Scenario::parse(Path::new("t.toml"), &text, &["k".into()], &["i".into()]).unwrap()
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
        assert!(st[0].script.contains("rpc.nfsd -N 3 -N 4.0 8\n"), "{}", st[0].script);
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
}
