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
//! that node's underlay endpoint and its segment's /24 and /64 as AllowedIPs, and (unless
//! the plan leaves routing out) a `[Routing]` section naming the VDC's /16 and /48, so the
//! routing protocol may announce every segment and relay between nodes.
//!
//! # Hidden nodes
//!
//! A *hidden* node sits behind a NAT or firewall: no one can reach it first. The others'
//! `[Peer]` for it has no `Endpoint` (they learn it from its handshakes, WireGuard's
//! roaming), and it keeps the endpoints of the public nodes with a `PersistentKeepalive`
//! ([`MeshPlan::hidden_keepalive`]) that holds its NAT mapping open. Between two hidden
//! nodes neither has an endpoint: they reach each other only through a public node, once
//! routing relays for them.
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
//!
//! [Routing]
//! Networks = 10.20.0.0/16, fd20:ab:cd::/48
//! ```
//!
//! # VDC-wide static leases
//!
//! A lease ([`MeshPlan::lease`]) pins an address of the VDC's /16 to a MAC: every node
//! file gets the same `StaticLease = MAC, IPv4` line in its segment `[Link]`, right after
//! `Role = segment`. On the node whose segment holds the address it is an ordinary static
//! lease; on the others, where the address lies outside the segment but inside the
//! `[Routing] Networks`, the appliance hands it out as a *visiting* lease (a /32 with
//! classless static routes to the node), so the workload keeps its address on whichever
//! node it plugs into. Leases need the `[Routing]` section; [`MeshPlan::check`] refuses
//! an address outside the /16, a node's own `.1`, the network or broadcast address of a
//! /24, a MAC or address given twice and more than [`MAX_LEASES`] leases.
//!
//! ```text
//! [Link]                      # segment: workloads plug in here
//! Role = segment
//! StaticLease = 52:54:00:aa:bb:01, 10.20.1.10
//! Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
//! ```

use crate::nic::Mac;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use vdcnet_appliance::config::HELLO_INTERVAL_MS;
use vdcnet_appliance::tunnel::PrivateKey;

/// Most nodes a plan holds: one /24 per node inside a /16, skipping 0 and 255.
pub const MAX_NODES: usize = 254;

/// Most VDC-wide static leases a plan holds: the appliance's limit of `StaticLease` lines
/// on a segment.
pub const MAX_LEASES: usize = vdcnet_appliance::config::MAX_STATIC_LEASES;

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
    /// Persistent keepalive on every peer with an endpoint, in seconds (0 = off).
    pub keepalive: u16,
    /// The hidden nodes, by 1-based number (`3` is `node3`): behind a NAT, reached only
    /// after they reach out (see the module doc).
    pub hidden: BTreeSet<usize>,
    /// A hidden node's keepalive to the public nodes, in seconds (1..=3600; default 25,
    /// inside the 30 s a NAT typically keeps a UDP mapping).
    pub hidden_keepalive: u16,
    /// Whether each node file gets a `[Routing]` section (the VDC's /16 and /48).
    pub routing: bool,
    /// The routing protocol's `HelloInterval` in milliseconds (`None`: its default).
    pub hello_ms: Option<u16>,
    /// VDC-wide static leases, `(MAC, IPv4)`: every node's segment `[Link]` gets a
    /// `StaticLease` line for each (see the module doc).
    pub leases: Vec<([u8; 6], Ipv4Addr)>,
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
            hidden: BTreeSet::new(),
            hidden_keepalive: 25,
            routing: true,
            hello_ms: None,
            leases: Vec::new(),
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
    /// Whether it is hidden (no one else has its endpoint).
    pub hidden: bool,
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

    /// The VDC's IPv4 /16.
    pub fn vdc_v4(&self) -> Cidr<Ipv4Addr> {
        let o = self.v4.octets();
        Cidr {
            addr: Ipv4Addr::new(o[0], o[1], 0, 0),
            len: 16,
        }
    }

    /// The VDC's IPv6 /48, if the plan has IPv6.
    pub fn vdc_v6(&self) -> Option<Cidr<Ipv6Addr>> {
        self.v6.map(|p| {
            let s = p.segments();
            Cidr {
                addr: Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0),
                len: 48,
            }
        })
    }

    /// Whether node `i` (1-based) is hidden.
    pub fn is_hidden(&self, i: usize) -> bool {
        self.hidden.contains(&i)
    }

    /// Adds a VDC-wide static lease: `mac` gets `ip` on every node (see the module doc).
    pub fn lease(mut self, mac: [u8; 6], ip: Ipv4Addr) -> MeshPlan {
        self.leases.push((mac, ip));
        self
    }

    /// The node (1-based) whose segment holds `ip`, if any: where a lease of it is an
    /// ordinary static lease rather than a visiting one.
    pub fn lease_home(&self, ip: Ipv4Addr) -> Option<usize> {
        (1..=self.nodes).find(|&i| self.segment_v4(i).contains(ip))
    }

    /// What is wrong with one lease on its own in this plan's address plan, if anything
    /// (the checks of [`MeshPlan::check`] that do not compare leases with each other).
    pub fn check_lease(&self, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), String> {
        let problem = if mac[0] & 1 == 1 {
            Some(format!("{} is a group address, not a NIC's", Mac(mac)))
        } else if mac == [0; 6] {
            Some(format!("{} is all zeros, not a NIC's address", Mac(mac)))
        } else if !self.vdc_v4().contains(ip) {
            Some(format!("{ip} is outside the VDC's {}", self.vdc_v4()))
        } else {
            let o = ip.octets();
            let net = Cidr {
                addr: Ipv4Addr::new(o[0], o[1], o[2], 0),
                len: 24,
            };
            let whose = match self.lease_home(ip) {
                Some(i) => format!("node{i}'s segment {net}"),
                None => net.to_string(),
            };
            match (o[3], self.lease_home(ip)) {
                (0, _) => Some(format!("{ip} is the network address of {whose}")),
                (255, _) => Some(format!("{ip} is the broadcast address of {whose}")),
                (1, Some(i)) => Some(format!("{ip} is node{i}'s own address")),
                _ => None,
            }
        };
        match problem {
            Some(p) => Err(format!("static lease {}, {ip}: {p}", Mac(mac))),
            None => Ok(()),
        }
    }

    /// What is wrong with the plan, if anything ([`MeshPlan::generate`] refuses it then).
    pub fn check(&self) -> Result<(), String> {
        if !(2..=MAX_NODES).contains(&self.nodes) {
            return Err(format!(
                "a mesh has 2..={MAX_NODES} nodes, not {}",
                self.nodes
            ));
        }
        if self.port == 0 {
            return Err("the WireGuard port must not be 0".into());
        }
        if let Some(&bad) = self
            .hidden
            .iter()
            .find(|&&h| !(1..=self.nodes).contains(&h))
        {
            return Err(format!(
                "hidden node {bad} does not exist: the mesh has nodes 1..={}",
                self.nodes
            ));
        }
        if self.hidden.len() == self.nodes {
            return Err(
                "every node is hidden: no one could start a handshake (keep one public)".into(),
            );
        }
        if !self.hidden.is_empty() && !(1..=3600).contains(&self.hidden_keepalive) {
            return Err(format!(
                "the hidden nodes' keepalive must be 1..=3600 s (it holds their NAT \
                 mapping open), not {}",
                self.hidden_keepalive
            ));
        }
        if let Some(ms) = self.hello_ms {
            if !HELLO_INTERVAL_MS.contains(&ms) {
                return Err(format!(
                    "a hello interval of {ms} ms is outside {}..={} ms",
                    HELLO_INTERVAL_MS.start(),
                    HELLO_INTERVAL_MS.end()
                ));
            }
        }
        self.check_leases()
    }

    /// The leases on their own, then against each other, then their number.
    fn check_leases(&self) -> Result<(), String> {
        if self.leases.is_empty() {
            return Ok(());
        }
        if !self.routing {
            return Err(
                "static leases need routing: a node serves an address outside its \
                        segment only inside [Routing] Networks (leave routing on)"
                    .into(),
            );
        }
        for (k, &(mac, ip)) in self.leases.iter().enumerate() {
            self.check_lease(mac, ip)?;
            let earlier = &self.leases[..k];
            if let Some(&(_, first)) = earlier.iter().find(|l| l.0 == mac) {
                return Err(format!(
                    "static lease {}, {ip}: {} already has a lease ({first})",
                    Mac(mac),
                    Mac(mac)
                ));
            }
            if let Some(&(first, _)) = earlier.iter().find(|l| l.1 == ip) {
                return Err(format!(
                    "static lease {}, {ip}: {ip} is already leased to {}",
                    Mac(mac),
                    Mac(first)
                ));
            }
        }
        if self.leases.len() > MAX_LEASES {
            return Err(format!(
                "{} static leases: a plan holds at most {MAX_LEASES}",
                self.leases.len()
            ));
        }
        Ok(())
    }

    /// Generates every node's config with fresh keys.
    pub fn generate(&self) -> Result<Vec<MeshNode>, String> {
        self.check()?;
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
            let hidden = self.is_hidden(i);
            let _ = writeln!(c, "# vdcnet mesh: node{i} of {}", self.nodes);
            if hidden {
                let _ = writeln!(c, "# hidden: behind a NAT, no other node has its endpoint");
            }
            let _ = writeln!(c, "[Link]                      # underlay (WAN)");
            let _ = writeln!(c, "Address = {}/24", self.node_underlay(i));
            let _ = writeln!(c);
            let _ = writeln!(
                c,
                "[Link]                      # segment: workloads plug in here"
            );
            let _ = writeln!(c, "Role = segment");
            for &(mac, ip) in &self.leases {
                let _ = writeln!(c, "StaticLease = {}, {ip}", Mac(mac));
            }
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
                if self.is_hidden(j) {
                    let _ = writeln!(
                        c,
                        "[Peer]                      # node{j}, hidden: no endpoint"
                    );
                } else {
                    let _ = writeln!(c, "[Peer]                      # node{j}");
                }
                let _ = writeln!(c, "PublicKey = {}", publics[j - 1]);
                if !self.is_hidden(j) {
                    let _ = writeln!(c, "Endpoint = {}:{}", self.node_underlay(j), self.port);
                }
                match self.segment_v6(j) {
                    Some(net6) => {
                        let _ = writeln!(c, "AllowedIPs = {}, {net6}", self.segment_v4(j));
                    }
                    None => {
                        let _ = writeln!(c, "AllowedIPs = {}", self.segment_v4(j));
                    }
                }
                let keepalive = match (hidden, self.is_hidden(j)) {
                    // Holds our NAT mapping open towards a public node.
                    (true, false) => self.hidden_keepalive,
                    // Neither end could send first: nothing to keep alive.
                    (true, true) => 0,
                    _ => self.keepalive,
                };
                if keepalive > 0 {
                    let _ = writeln!(c, "PersistentKeepalive = {keepalive}");
                }
            }
            if self.routing {
                let _ = writeln!(c);
                let _ = writeln!(
                    c,
                    "[Routing]                   # the VDC: every segment lies inside"
                );
                match self.vdc_v6() {
                    Some(v6) => {
                        let _ = writeln!(c, "Networks = {}, {v6}", self.vdc_v4());
                    }
                    None => {
                        let _ = writeln!(c, "Networks = {}", self.vdc_v4());
                    }
                }
                if let Some(ms) = self.hello_ms {
                    let _ = writeln!(c, "HelloInterval = {ms}");
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
                hidden,
            });
        }
        Ok(out)
    }
}

/// Reads a lease as `vdcnet mesh --lease` takes it: `MAC,IPv4` or `MAC=IPv4` (spaces
/// allowed around the separator), the MAC as six hex octets split by `:` or `-`. Only the
/// form is checked here; [`MeshPlan::check`] checks the lease against the plan.
pub fn parse_lease(text: &str) -> Result<([u8; 6], Ipv4Addr), String> {
    let usage = || {
        format!("`{text}` is not a lease: MAC,IPv4 or MAC=IPv4, like 52:54:00:aa:bb:01,10.20.1.10")
    };
    let (mac, ip) = text.split_once([',', '=']).ok_or_else(usage)?;
    let (mac, ip) = (mac.trim(), ip.trim());
    let separator = if mac.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = mac.split(separator).collect();
    let bad_mac = || format!("`{mac}` is not a MAC address like 52:54:00:aa:bb:01");
    if parts.len() != 6 {
        return Err(bad_mac());
    }
    let mut octets = [0u8; 6];
    for (o, p) in octets.iter_mut().zip(parts) {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_mac());
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad_mac())?;
    }
    let ip = ip
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
    Ok((octets, ip))
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
                ["Link", "Link", "Interface", "Peer", "Peer", "Routing"],
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

    /// The appliance's own parser reads every generated file.
    #[test]
    fn every_generated_config_parses_and_peers_with_every_other_node() {
        let plan = MeshPlan {
            nodes: 4,
            ..MeshPlan::default()
        };
        let nodes = plan.generate().unwrap();
        assert_eq!(nodes.len(), 4);
        for (i, n) in nodes.iter().enumerate() {
            let cfg = parsed(n);
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

    /// Parses a generated file with the appliance's own parser (every key must be known).
    fn parsed(n: &MeshNode) -> config::Config {
        config::parse(n.config.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{}", n.config))
    }

    /// Which node (0-based) a peer's public key belongs to.
    fn node_of(nodes: &[MeshNode], peer: &config::PeerConfig) -> usize {
        let key = peer.public_key.to_string();
        nodes.iter().position(|n| n.public_key == key).unwrap()
    }

    #[test]
    fn every_node_file_routes_the_whole_vdc_and_the_appliance_reads_it() {
        let plan = MeshPlan {
            hello_ms: Some(400),
            ..MeshPlan::default()
        };
        assert_eq!(plan.vdc_v4().to_string(), "10.20.0.0/16");
        assert_eq!(plan.vdc_v6().unwrap().to_string(), "fd20:ab:cd::/48");
        for n in &plan.generate().unwrap() {
            let s = sections(&n.config);
            let routing = s.iter().find(|(name, _)| name == "Routing").unwrap();
            assert_eq!(
                value(routing, "Networks"),
                Some("10.20.0.0/16, fd20:ab:cd::/48")
            );
            assert_eq!(value(routing, "HelloInterval"), Some("400"));
            let r = parsed(n).routing.expect("a [Routing] section");
            let nets: Vec<String> = r.networks.iter().map(|c| c.to_string()).collect();
            assert_eq!(nets, ["10.20.0.0/16", "fd20:ab:cd::/48"]);
            assert_eq!(r.hello_interval_ms, Some(400));
        }
        // Without IPv6 only the /16; without routing no section at all.
        let v4_only = MeshPlan {
            v6: None,
            v4: Ipv4Addr::new(10, 77, 5, 0),
            ..MeshPlan::default()
        };
        let n = &v4_only.generate().unwrap()[0];
        let r = parsed(n).routing.unwrap();
        assert_eq!(r.networks.len(), 1);
        assert_eq!(r.networks[0].to_string(), "10.77.0.0/16");
        assert_eq!(r.hello_interval_ms, None);
        let off = MeshPlan {
            routing: false,
            ..MeshPlan::default()
        };
        for n in &off.generate().unwrap() {
            assert!(!n.config.contains("[Routing]"), "{}", n.config);
            assert!(parsed(n).routing.is_none());
        }
    }

    #[test]
    fn hidden_nodes_have_no_endpoint_and_keep_their_way_to_public_nodes_open() {
        let plan = MeshPlan {
            nodes: 4,
            hidden: BTreeSet::from([3, 4]),
            keepalive: 0,
            hidden_keepalive: 20,
            ..MeshPlan::default()
        };
        let nodes = plan.generate().unwrap();
        let flags: Vec<bool> = nodes.iter().map(|n| n.hidden).collect();
        assert_eq!(flags, [false, false, true, true]);
        for (i, n) in nodes.iter().enumerate() {
            let cfg = parsed(n);
            assert_eq!(cfg.peers.len(), 3);
            for peer in &cfg.peers {
                let j = node_of(&nodes, peer);
                let ep = peer.endpoint.map(|(a, p)| format!("{a}:{p}"));
                if nodes[j].hidden {
                    assert_eq!(ep, None, "node{} has node{}'s endpoint", i + 1, j + 1);
                } else {
                    assert_eq!(ep, Some(format!("192.168.100.{}:51820", j + 1)));
                }
                let want = match (n.hidden, nodes[j].hidden) {
                    (true, false) => Some(20),
                    _ => None, // the plan's keepalive is off; hidden pairs have none
                };
                assert_eq!(
                    peer.persistent_keepalive,
                    want,
                    "node{} -> node{}",
                    i + 1,
                    j + 1
                );
            }
        }
        // The plan's keepalive still applies between public nodes and towards hidden ones.
        let nodes = MeshPlan {
            hidden: BTreeSet::from([2]),
            ..MeshPlan::default()
        }
        .generate()
        .unwrap();
        let cfg = parsed(&nodes[0]);
        for peer in &cfg.peers {
            assert_eq!(peer.persistent_keepalive, Some(25));
        }
        assert!(nodes[0].config.contains("# node2, hidden: no endpoint"));
    }

    #[test]
    fn impossible_hidden_sets_and_hello_intervals_are_refused() {
        let refused = |plan: MeshPlan, what: &str| {
            let e = plan.generate().expect_err(what);
            assert!(e.contains(what), "{e}");
        };
        let hidden = |h: &[usize]| MeshPlan {
            hidden: h.iter().copied().collect(),
            ..MeshPlan::default()
        };
        refused(hidden(&[4]), "hidden node 4 does not exist");
        refused(hidden(&[0]), "hidden node 0 does not exist");
        refused(hidden(&[1, 2, 3]), "every node is hidden");
        refused(
            MeshPlan {
                hidden_keepalive: 0,
                ..hidden(&[1])
            },
            "keepalive must be 1..=3600",
        );
        refused(
            MeshPlan {
                hello_ms: Some(10),
                ..MeshPlan::default()
            },
            "hello interval of 10 ms",
        );
        // A zero hidden keepalive is fine while no node is hidden.
        assert!(MeshPlan {
            hidden_keepalive: 0,
            ..MeshPlan::default()
        }
        .generate()
        .is_ok());
    }

    const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 1];
    const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 2];

    #[test]
    fn every_node_file_gets_every_lease_right_after_the_segment_role() {
        let plan = MeshPlan::default()
            .lease(MAC_A, Ipv4Addr::new(10, 20, 1, 10))
            .lease(MAC_B, Ipv4Addr::new(10, 20, 2, 20));
        assert_eq!(plan.leases.len(), 2);
        let nodes = plan.generate().unwrap();
        for (i, n) in nodes.iter().enumerate() {
            let want = format!(
                "Role = segment\n\
                 StaticLease = 52:54:00:aa:bb:01, 10.20.1.10\n\
                 StaticLease = 52:54:00:aa:bb:02, 10.20.2.20\n\
                 Address = 10.20.{0}.1/24, fd20:ab:cd:{0}::1/64\n",
                i + 1
            );
            assert!(n.config.contains(&want), "{}", n.config);
            assert_eq!(n.config.matches("StaticLease").count(), 2, "{}", n.config);
            let s = sections(&n.config);
            assert_eq!(value(&s[0], "StaticLease"), None, "not on the underlay");
        }
        // Every node's file boots: at home on node 1, visiting on the others.
        for node in &nodes {
            let cfg = parsed(node);
            let dhcp = cfg.links[1]
                .dhcp
                .as_ref()
                .expect("the segment's DHCP server");
            assert_eq!(dhcp.static_leases.len(), 2);
            assert_eq!(dhcp.static_leases[0].0 .0, MAC_A);
            assert_eq!(dhcp.static_leases[0].1, Ipv4Addr::new(10, 20, 1, 10));
        }
        // No leases, no line.
        for n in &MeshPlan::default().generate().unwrap() {
            assert!(!n.config.contains("StaticLease"), "{}", n.config);
        }
    }

    #[test]
    fn a_lease_is_at_home_in_the_segment_that_holds_it() {
        let plan = MeshPlan::default();
        assert_eq!(plan.lease_home(Ipv4Addr::new(10, 20, 2, 20)), Some(2));
        assert_eq!(plan.lease_home(Ipv4Addr::new(10, 20, 9, 20)), None);
        assert_eq!(plan.lease_home(Ipv4Addr::new(10, 21, 1, 20)), None);
        // An address of the /16 that no node's segment holds is visiting everywhere.
        assert!(plan
            .check_lease(MAC_A, Ipv4Addr::new(10, 20, 9, 20))
            .is_ok());
    }

    #[test]
    fn leases_are_read_as_mac_comma_or_equals_ipv4() {
        let want = Ok((MAC_A, Ipv4Addr::new(10, 20, 1, 10)));
        assert_eq!(parse_lease("52:54:00:aa:bb:01,10.20.1.10"), want);
        assert_eq!(parse_lease("52:54:00:AA:BB:01=10.20.1.10"), want);
        assert_eq!(parse_lease(" 52-54-00-aa-bb-01 , 10.20.1.10 "), want);
        let e = parse_lease("52:54:00:aa:bb:01").unwrap_err();
        assert!(e.contains("MAC,IPv4 or MAC=IPv4"), "{e}");
        let e = parse_lease("52:54:00:aa:bb,10.20.1.10").unwrap_err();
        assert!(e.contains("`52:54:00:aa:bb` is not a MAC address"), "{e}");
        let e = parse_lease("52:54:00:aa:bb:+1,10.20.1.10").unwrap_err();
        assert!(e.contains("not a MAC address"), "{e}");
        let e = parse_lease("52:54:00:aa:bb:01,10.20.1").unwrap_err();
        assert!(e.contains("`10.20.1` is not an IPv4 address"), "{e}");
        let e = parse_lease("52:54:00:aa:bb:01,fd20::10").unwrap_err();
        assert!(e.contains("not an IPv4 address"), "{e}");
    }

    #[test]
    fn impossible_leases_are_refused_with_what_is_wrong() {
        let refused = |plan: MeshPlan, what: &str| {
            let e = plan.generate().expect_err(what);
            assert!(e.contains(what), "{e}");
        };
        let one = |mac: [u8; 6], ip: [u8; 4]| MeshPlan::default().lease(mac, ip.into());
        refused(
            one([0x01, 0, 0x5e, 0, 0, 1], [10, 20, 1, 10]),
            "static lease 01:00:5e:00:00:01, 10.20.1.10: 01:00:5e:00:00:01 is a group address",
        );
        refused(one([0; 6], [10, 20, 1, 10]), "is all zeros");
        refused(
            one(MAC_A, [10, 21, 1, 10]),
            "10.21.1.10 is outside the VDC's 10.20.0.0/16",
        );
        refused(
            one(MAC_A, [10, 20, 2, 1]),
            "10.20.2.1 is node2's own address",
        );
        refused(
            one(MAC_A, [10, 20, 3, 0]),
            "10.20.3.0 is the network address of node3's segment 10.20.3.0/24",
        );
        refused(
            one(MAC_A, [10, 20, 1, 255]),
            "10.20.1.255 is the broadcast address of node1's segment",
        );
        refused(
            one(MAC_A, [10, 20, 255, 255]),
            "10.20.255.255 is the broadcast address of 10.20.255.0/24",
        );
        refused(
            one(MAC_A, [10, 20, 1, 10]).lease(MAC_A, [10, 20, 2, 10].into()),
            "static lease 52:54:00:aa:bb:01, 10.20.2.10: 52:54:00:aa:bb:01 already has a \
             lease (10.20.1.10)",
        );
        refused(
            one(MAC_A, [10, 20, 1, 10]).lease(MAC_B, [10, 20, 1, 10].into()),
            "10.20.1.10 is already leased to 52:54:00:aa:bb:01",
        );
        refused(
            MeshPlan {
                routing: false,
                ..one(MAC_A, [10, 20, 1, 10])
            },
            "static leases need routing",
        );
        // 64 leases are fine, 65 are not.
        let many = |n: usize| MeshPlan {
            leases: (0..n)
                .map(|k| {
                    (
                        [0x52, 0x54, 0, 0xaa, 0, k as u8],
                        Ipv4Addr::new(10, 20, 1, 10 + k as u8),
                    )
                })
                .collect(),
            ..MeshPlan::default()
        };
        assert!(many(MAX_LEASES).generate().is_ok());
        refused(
            many(MAX_LEASES + 1),
            "65 static leases: a plan holds at most 64",
        );
    }
}
