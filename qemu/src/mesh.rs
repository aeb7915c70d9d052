//! `vdcnet mesh`: the configs of an N-node full mesh.
//!
//! The address plan follows the grid's network resources: the VDC gets an IPv4 /16 and an
//! IPv6 ULA /48; node `i` (1-based) owns the /24 `a.b.i.0/24` and the /64 `P:i::/64` of
//! them: its *segment*, where workloads plug in. Each node file has two `[Link]`s, bound to
//! the VM's NICs in order:
//!
//! - NIC 0, the underlay (WAN): address `i` of the underlay /24;
//! - NIC 1, `Role = segment`: `.1` of its /24 and `::1` of its /64, with the appliance's
//!   segment defaults (DHCP server, router advertisements).
//!
//! Every node gets a fresh WireGuard key pair and a `[Peer]` for every other node, with
//! that node's underlay endpoint and its segment's /24 and /64 as AllowedIPs.
//!
//! ```text
//! [Link]                      # underlay (WAN)
//! Address = 192.168.100.1/24
//!
//! [Link]                      # segment: workloads plug in here
//! Role = segment
//! Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
//!
//! [Interface]
//! PrivateKey = ...
//! ListenPort = 51820
//!
//! [Peer]                      # node2
//! PublicKey = ...
//! Endpoint = 192.168.100.2:51820
//! AllowedIPs = 10.20.2.0/24, fd20:ab:cd:2::/64
//! PersistentKeepalive = 25
//! ```

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
    /// Its segment's IPv4 network, `a.b.i.0/24`.
    pub segment_v4: Cidr<Ipv4Addr>,
    /// Its segment's IPv6 network, `P:i::/64`, if the plan has IPv6.
    pub segment_v6: Option<Cidr<Ipv6Addr>>,
    /// Its own IPv4 address on its segment (`.1` of the /24): the workloads' router and
    /// what other nodes reach through the tunnel.
    pub overlay_v4: Ipv4Addr,
    /// Its own IPv6 address on its segment (`::1` of the /64), if the plan has IPv6.
    pub overlay_v6: Option<Ipv6Addr>,
}

/// An address and a prefix length; prints as `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr<A> {
    /// The address (for a network, its first address).
    pub addr: A,
    /// The prefix length.
    pub len: u8,
}

impl<A: std::fmt::Display> std::fmt::Display for Cidr<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Cidr<Ipv4Addr> {
    /// Whether `a` lies inside this network.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
        u32::from(a) & mask == u32::from(self.addr) & mask
    }
}

impl Cidr<Ipv6Addr> {
    /// Whether `a` lies inside this network.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.len))
            .unwrap_or(0);
        u128::from(a) & mask == u128::from(self.addr) & mask
    }
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

    fn segment_v4(&self, i: usize) -> Cidr<Ipv4Addr> {
        let o = self.v4.octets();
        Cidr {
            addr: Ipv4Addr::new(o[0], o[1], i as u8, 0),
            len: 24,
        }
    }

    fn segment_v6(&self, i: usize) -> Option<Cidr<Ipv6Addr>> {
        self.v6.map(|p| {
            let s = p.segments();
            Cidr {
                addr: Ipv6Addr::new(s[0], s[1], s[2], i as u16, 0, 0, 0, 0),
                len: 64,
            }
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
            let _ = writeln!(
                c,
                "[Link]                      # segment: workloads plug in here"
            );
            let _ = writeln!(c, "Role = segment");
            match v6 {
                Some(v6) => {
                    let _ = writeln!(c, "Address = {v4}/24, {v6}/64");
                }
                None => {
                    let _ = writeln!(c, "Address = {v4}/24");
                }
            }
            let _ = writeln!(c);
            let _ = writeln!(c, "[Interface]");
            let _ = writeln!(c, "PrivateKey = {}", base64_key(&keys[i - 1]));
            let _ = writeln!(c, "ListenPort = {}", self.port);
            for j in (1..=self.nodes).filter(|&j| j != i) {
                let _ = writeln!(c);
                let _ = writeln!(c, "[Peer]                      # node{j}");
                let _ = writeln!(c, "PublicKey = {}", publics[j - 1]);
                let _ = writeln!(c, "Endpoint = {}:{}", self.node_underlay(j), self.port);
                match self.segment_v6(j) {
                    Some(net6) => {
                        let _ = writeln!(c, "AllowedIPs = {}, {net6}", self.segment_v4(j));
                    }
                    None => {
                        let _ = writeln!(c, "AllowedIPs = {}", self.segment_v4(j));
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
                segment_v4: self.segment_v4(i),
                segment_v6: self.segment_v6(i),
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

    /// The `[Section]` headers of a node file and each section's `Key = Value` lines,
    /// comments removed, in order.
    fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap().trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                out.push((name.trim_end_matches(']').to_string(), Vec::new()));
            } else {
                let (k, v) = line.split_once('=').expect("key = value");
                let section = out.last_mut().expect("a key before any section");
                section.1.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        out
    }

    fn value<'a>(section: &'a (String, Vec<(String, String)>), key: &str) -> Option<&'a str> {
        section
            .1
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn each_node_has_an_underlay_link_then_a_segment_link_and_no_interface_address() {
        let nodes = MeshPlan::default().generate().unwrap();
        for (i, n) in nodes.iter().enumerate() {
            let s = sections(&n.config);
            let names: Vec<&str> = s.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(
                names,
                ["Link", "Link", "Interface", "Peer", "Peer"],
                "{}",
                n.config
            );
            assert_eq!(
                value(&s[0], "Role"),
                None,
                "the underlay takes the default role"
            );
            assert_eq!(
                value(&s[0], "Address"),
                Some(format!("192.168.100.{}/24", i + 1).as_str())
            );
            assert_eq!(value(&s[1], "Role"), Some("segment"));
            assert_eq!(
                value(&s[1], "Address"),
                Some(format!("10.20.{0}.1/24, fd20:ab:cd:{0}::1/64", i + 1).as_str())
            );
            assert_eq!(value(&s[2], "Address"), None, "{}", n.config);
            assert_eq!(value(&s[2], "ListenPort"), Some("51820"));
        }
    }

    #[test]
    fn a_plan_without_ipv6_gives_v4_only_segments_and_allowed_ips() {
        let plan = MeshPlan {
            nodes: 2,
            v6: None,
            ..MeshPlan::default()
        };
        let nodes = plan.generate().unwrap();
        assert_eq!(nodes[1].segment_v6, None);
        assert_eq!(nodes[1].overlay_v6, None);
        let s = sections(&nodes[0].config);
        assert_eq!(value(&s[1], "Address"), Some("10.20.1.1/24"));
        assert_eq!(value(&s[3], "AllowedIPs"), Some("10.20.2.0/24"));
    }

    /// The appliance's own parser reads every generated file. Until the appliance learns
    /// the segment role, the only complaint it may have is the `Role` key itself.
    #[test]
    fn every_generated_config_parses_and_peers_with_every_other_node() {
        let plan = MeshPlan {
            nodes: 4,
            ..MeshPlan::default()
        };
        let nodes = plan.generate().unwrap();
        assert_eq!(nodes.len(), 4);
        for (i, n) in nodes.iter().enumerate() {
            let cfg = match config::parse(n.config.as_bytes()) {
                Ok(cfg) => cfg,
                Err(errors) => {
                    assert!(
                        errors.iter().all(|e| e.message.contains("\"Role\"")),
                        "{errors:?}\n{}",
                        n.config
                    );
                    // Check the rest without the new key.
                    let without_role: String = n
                        .config
                        .lines()
                        .filter(|l| l.trim() != "Role = segment")
                        .map(|l| format!("{l}\n"))
                        .collect();
                    config::parse(without_role.as_bytes())
                        .unwrap_or_else(|e| panic!("{e:?}\n{without_role}"))
                }
            };
            assert_eq!(cfg.links.len(), 2);
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
        assert_eq!(nodes[2].segment_v4.to_string(), "10.20.3.0/24");
        assert!(nodes[2].segment_v4.contains(nodes[2].overlay_v4));
        assert!(!nodes[2].segment_v4.contains(nodes[1].overlay_v4));
        assert_eq!(
            nodes[1].overlay_v6.unwrap(),
            "fd20:ab:cd:2::1".parse::<Ipv6Addr>().unwrap()
        );
        let seg6 = nodes[1].segment_v6.unwrap();
        assert_eq!(seg6.to_string(), "fd20:ab:cd:2::/64");
        assert!(seg6.contains(nodes[1].overlay_v6.unwrap()));
        assert!(!seg6.contains(nodes[0].overlay_v6.unwrap()));
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
