//! `vdcnet mesh`: the configs of an N-node full mesh.
//!
//! The address plan follows the grid's network resources: the VDC gets an IPv4 /16 and an
//! IPv6 ULA /48; node `i` (1-based) owns the /24 `a.b.i.0/24` and the /64 `P:i::/64` of
//! them, and holds `.1` / `::1` of its own as its overlay address. Every node gets a fresh
//! WireGuard key pair and a `[Peer]` for every other node, with that node's underlay
//! endpoint and its /24 and /64 as AllowedIPs. Each node's underlay `[Link]` takes address
//! `i` of the underlay subnet.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use vdcnet_appliance::tunnel::PrivateKey;

/// Most nodes a plan holds: one /24 per node inside a /16, skipping 0 and 255.
pub const MAX_NODES: usize = 254;

/// What to build.
#[derive(Clone, Debug)]
pub struct MeshPlan {
    /// Number of nodes (2..=254).
    pub nodes: usize,
    /// The VDC's IPv4 /16 (its first two octets are used).
    pub v4: Ipv4Addr,
    /// The VDC's IPv6 /48 (its first three groups are used), if any.
    pub v6: Option<Ipv6Addr>,
    /// The underlay subnet the nodes' WAN links share (a /24: its first three octets).
    pub underlay: Ipv4Addr,
    /// The WireGuard port every node listens on.
    pub port: u16,
    /// Persistent keepalive on every peer, in seconds (0 = off).
    pub keepalive: u16,
}

impl Default for MeshPlan {
    fn default() -> Self {
        MeshPlan {
            nodes: 3,
            v4: Ipv4Addr::new(10, 20, 0, 0),
            v6: Some("fd20:ab:cd::".parse().expect("literal")),
            underlay: Ipv4Addr::new(192, 168, 100, 0),
            port: 51820,
            keepalive: 25,
        }
    }
}

/// One node's generated config and the facts a test or a user needs about it.
#[derive(Clone, Debug)]
pub struct MeshNode {
    /// `node1`, `node2`, ...
    pub name: String,
    /// The node file, ready to boot (`-initrd`).
    pub config: String,
    /// Its WireGuard public key (base64).
    pub public_key: String,
    /// Its underlay (WAN) address.
    pub underlay: Ipv4Addr,
    /// Its overlay IPv4 address (`.1` of its /24).
    pub overlay_v4: Ipv4Addr,
    /// Its overlay IPv6 address (`::1` of its /64), if the plan has IPv6.
    pub overlay_v6: Option<Ipv6Addr>,
}

impl MeshPlan {
    fn node_v4(&self, i: usize) -> Ipv4Addr {
        let o = self.v4.octets();
        Ipv4Addr::new(o[0], o[1], i as u8, 1)
    }

    fn node_v6(&self, i: usize) -> Option<Ipv6Addr> {
        self.v6.map(|p| {
            let s = p.segments();
            Ipv6Addr::new(s[0], s[1], s[2], i as u16, 0, 0, 0, 1)
        })
    }

    fn node_underlay(&self, i: usize) -> Ipv4Addr {
        let o = self.underlay.octets();
        Ipv4Addr::new(o[0], o[1], o[2], i as u8)
    }

    /// Generates every node's config with fresh keys.
    pub fn generate(&self) -> Result<Vec<MeshNode>, String> {
        if !(2..=MAX_NODES).contains(&self.nodes) {
            return Err(format!(
                "a mesh has 2..={MAX_NODES} nodes, not {}",
                self.nodes
            ));
        }
        if self.port == 0 {
            return Err("the WireGuard port must not be 0".into());
        }
        let keys: Vec<PrivateKey> = (0..self.nodes)
            .map(|_| PrivateKey::generate(&mut rand_core::OsRng))
            .collect();
        let publics: Vec<String> = keys
            .iter()
            .map(|k| vdcnet_appliance::config::PublicKey(k.public_key().0).to_string())
            .collect();
        let mut out = Vec::new();
        for i in 1..=self.nodes {
            let mut c = String::new();
            let (v4, v6) = (self.node_v4(i), self.node_v6(i));
            let _ = writeln!(c, "# vdcnet mesh: node{i} of {}", self.nodes);
            let _ = writeln!(c, "[Link]                      # underlay (WAN)");
            let _ = writeln!(c, "Address = {}/24", self.node_underlay(i));
            let _ = writeln!(c);
            let _ = writeln!(c, "[Interface]");
            let _ = writeln!(c, "PrivateKey = {}", base64_key(&keys[i - 1]));
            let _ = writeln!(c, "ListenPort = {}", self.port);
            match v6 {
                Some(v6) => {
                    let _ = writeln!(c, "Address = {v4}/24, {v6}/64");
                }
                None => {
                    let _ = writeln!(c, "Address = {v4}/24");
                }
            }
            for j in (1..=self.nodes).filter(|&j| j != i) {
                let _ = writeln!(c);
                let _ = writeln!(c, "[Peer]                      # node{j}");
                let _ = writeln!(c, "PublicKey = {}", publics[j - 1]);
                let _ = writeln!(c, "Endpoint = {}:{}", self.node_underlay(j), self.port);
                let net4 = {
                    let o = self.node_v4(j).octets();
                    Ipv4Addr::new(o[0], o[1], o[2], 0)
                };
                match self.node_v6(j) {
                    Some(n6) => {
                        let s = n6.segments();
                        let net6 = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                        let _ = writeln!(c, "AllowedIPs = {net4}/24, {net6}/64");
                    }
                    None => {
                        let _ = writeln!(c, "AllowedIPs = {net4}/24");
                    }
                }
                if self.keepalive > 0 {
                    let _ = writeln!(c, "PersistentKeepalive = {}", self.keepalive);
                }
            }
            out.push(MeshNode {
                name: format!("node{i}"),
                config: c,
                public_key: publics[i - 1].clone(),
                underlay: self.node_underlay(i),
                overlay_v4: v4,
                overlay_v6: v6,
            });
        }
        Ok(out)
    }
}

fn base64_key(k: &PrivateKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(*k.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdcnet_appliance::config;

    #[test]
    fn every_generated_config_parses_and_peers_with_every_other_node() {
        let plan = MeshPlan {
            nodes: 4,
            ..MeshPlan::default()
        };
        let nodes = plan.generate().unwrap();
        assert_eq!(nodes.len(), 4);
        for (i, n) in nodes.iter().enumerate() {
            let cfg = config::parse(n.config.as_bytes())
                .unwrap_or_else(|e| panic!("{e:?}\n{}", n.config));
            let iface = cfg.interface.as_ref().unwrap();
            let derived = PrivateKey::from_bytes(iface.private_key.0).public_key();
            assert_eq!(config::PublicKey(derived.0).to_string(), n.public_key);
            assert_eq!(cfg.peers.len(), 3);
            let mut peer_keys: Vec<String> =
                cfg.peers.iter().map(|p| p.public_key.to_string()).collect();
            peer_keys.sort();
            let mut others: Vec<String> = nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, m)| m.public_key.clone())
                .collect();
            others.sort();
            assert_eq!(peer_keys, others);
        }
    }

    #[test]
    fn address_plan_gives_each_node_its_own_slash24_and_slash64() {
        let nodes = MeshPlan::default().generate().unwrap();
        assert_eq!(nodes[0].overlay_v4, Ipv4Addr::new(10, 20, 1, 1));
        assert_eq!(nodes[2].overlay_v4, Ipv4Addr::new(10, 20, 3, 1));
        assert_eq!(
            nodes[1].overlay_v6.unwrap(),
            "fd20:ab:cd:2::1".parse::<Ipv6Addr>().unwrap()
        );
        assert!(nodes[0]
            .config
            .contains("AllowedIPs = 10.20.2.0/24, fd20:ab:cd:2::/64"));
        assert!(nodes[0].config.contains("Endpoint = 192.168.100.3:51820"));
    }

    #[test]
    fn keys_are_fresh_on_every_run() {
        let a = MeshPlan::default().generate().unwrap();
        let b = MeshPlan::default().generate().unwrap();
        assert_ne!(a[0].public_key, b[0].public_key);
    }

    #[test]
    fn out_of_range_node_counts_are_refused() {
        assert!(MeshPlan {
            nodes: 1,
            ..MeshPlan::default()
        }
        .generate()
        .is_err());
        assert!(MeshPlan {
            nodes: 255,
            ..MeshPlan::default()
        }
        .generate()
        .is_err());
    }
}
