//! `vdcnet check FILE...`: reads node files with the image's own parser
//! (`vdcnet_appliance::config`) and the image's own start-up checks (the appliance is
//! built on the host over one stand-in NIC per `[Link]`, as `vdcnet mesh` and the lab
//! boot it). A file with problems gets every one as `FILE:LINE: message` and exit status
//! 1; a good one gets a summary of what the node will do: each link's role, addresses,
//! gateway, MTU, DHCP, router advertisements and egress, and the tunnel with the public
//! key of its `PrivateKey`, its port, MTU and peers.

use super::{CmdResult, UsageError};
use smoltcp::wire::{IpAddress, IpCidr};
use std::fmt::Write as _;
use std::process::ExitCode;
use vdcnet_appliance::config::{self, Config, ConfigError, LinkConfig, Role};
use vdcnet_appliance::router::{eui64_link_local, TUNNEL_OVERHEAD};
use vdcnet_appliance::runtime::{Appliance, Options};
use vdcnet_appliance::tunnel::PrivateKey;
use vdcnet_hal::net::NetDevice;

/// The MTU of a virtio-net NIC, which a link without `MTU =` keeps.
const NIC_MTU: u16 = 1500;

pub fn main(args: &[String]) -> CmdResult {
    if args.is_empty() {
        return Err(UsageError("check needs at least one FILE".into()).into());
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        return Err(UsageError(format!("check: unknown option `{flag}`")).into());
    }
    let mut ok = true;
    for (n, file) in args.iter().enumerate() {
        if n > 0 {
            println!();
        }
        match std::fs::read(file) {
            Err(e) => {
                eprintln!("{file}: cannot read it: {e}");
                ok = false;
            }
            Ok(text) => match check(&text) {
                Ok(summary) => print!("{file}: ok\n{summary}"),
                Err(errors) => {
                    ok = false;
                    for e in errors {
                        eprintln!("{}", located(file, &e));
                    }
                }
            },
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `FILE:LINE: message`, or `FILE: message` for the file as a whole.
fn located(file: &str, e: &ConfigError) -> String {
    match e.line {
        0 => format!("{file}: {}", e.message),
        n => format!("{file}:{n}: {}", e.message),
    }
}

/// Parses and checks one node file as the image would; the summary, or every error.
pub fn check(text: &[u8]) -> Result<String, Vec<ConfigError>> {
    let cfg = config::parse(text)?;
    boots(&cfg)?;
    Ok(summary(&cfg))
}

/// Runs the image's start-up checks (NIC binding, MTUs, address count, the tunnel and its
/// peers) by building the appliance over one stand-in NIC per link.
fn boots(cfg: &Config) -> Result<(), Vec<ConfigError>> {
    let mut nics: Vec<StandIn> = Vec::new();
    for l in &cfg.links {
        let mac = l.mac.map(|m| m.0);
        nics.push(StandIn(mac.unwrap_or([0; 6])));
    }
    // Links without MACAddress get made-up MACs no other link asks for.
    let taken: Vec<[u8; 6]> = cfg
        .links
        .iter()
        .filter_map(|l| l.mac.map(|m| m.0))
        .collect();
    let mut next = 0x56u8;
    for (nic, l) in nics.iter_mut().zip(&cfg.links) {
        if l.mac.is_none() {
            while taken.contains(&[0x52, 0x54, 0, 0x12, 0x34, next]) {
                next = next.wrapping_add(1);
            }
            nic.0 = [0x52, 0x54, 0, 0x12, 0x34, next];
            next = next.wrapping_add(1);
        }
    }
    let opts = Options {
        seed: 1,
        ..Options::default()
    };
    Appliance::new(cfg, nics, opts, Some(rand_core::OsRng), 0).map(|_| ())
}

/// A NIC that is never up: enough for the appliance to bind links and size its MTUs.
struct StandIn([u8; 6]);

impl NetDevice for StandIn {
    fn mac_address(&self) -> [u8; 6] {
        self.0
    }
    fn receive_with<R>(&mut self, _f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        None
    }
    fn transmit_with<R>(&mut self, _len: usize, _f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        None
    }
    fn can_transmit(&mut self) -> bool {
        false
    }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    v.join(", ")
}

/// A MAC as the node file writes it.
fn mac(m: [u8; 6]) -> String {
    list(m.iter().map(|b| format!("{b:02x}"))).replace(", ", ":")
}

fn link_mtu(l: &LinkConfig) -> u16 {
    l.mtu.unwrap_or(NIC_MTU)
}

/// What the node will do, in words.
/// The gateway, its DNS and the Mycelium node, one line or two each.
fn overlay_and_services(cfg: &Config, s: &mut String) {
    if let Some(g) = &cfg.gateway {
        let _ = writeln!(
            s,
            "  gateway (line {}): on {}, HTTP port {}, TLS port {}, at most {} connections",
            g.line,
            list(g.listen.iter().map(|a| a.to_string())),
            g.http_port,
            g.tls_port,
            g.max_connections
        );
        for svc in &g.services {
            let mode = match svc.mode {
                config::ServiceMode::Tls => String::from("tls, by SNI"),
                config::ServiceMode::Http => String::from("http, by Host"),
                config::ServiceMode::Tcp { port } => format!("tcp, port {port}"),
            };
            let proxy = if svc.proxy_protocol { ", PROXY v2" } else { "" };
            let _ = writeln!(
                s,
                "    service {} ({mode}{proxy}): {}",
                svc.name,
                list(svc.backends.iter().map(|b| b.to_string()))
            );
        }
        if !g.peers.is_empty() {
            let _ = writeln!(
                s,
                "    peer gateways: {}",
                list(g.peers.iter().map(|a| a.to_string()))
            );
        }
    }
    if let Some(d) = &cfg.dns {
        let _ = writeln!(
            s,
            "  DNS (line {}): authoritative for {} on {} port 53, TTL {} s, {} name(s)",
            d.line,
            d.zones.join(", "),
            list(d.listen.iter().map(|a| a.to_string())),
            d.ttl,
            d.names.len()
        );
    }
    if let Some(m) = &cfg.mycelium {
        let _ = writeln!(
            s,
            "  Mycelium (line {}): peers {}{}",
            m.line,
            list(m.peers.iter().map(|(a, p)| format!("tcp://{a}:{p}"))),
            m.listen
                .map(|p| format!(", listening on {p}"))
                .unwrap_or_default()
        );
    }
}

pub fn summary(cfg: &Config) -> String {
    let mut s = String::new();
    for (n, l) in cfg.links.iter().enumerate() {
        let nic = match l.mac {
            Some(m) => format!("the NIC with MAC {}", mac(m.0)),
            None => "the next NIC in order".to_string(),
        };
        let role = match l.role {
            Role::Underlay => "underlay",
            Role::Segment => "segment",
        };
        let _ = writeln!(s, "  link{n} (line {}): {role} on {nic}", l.line);
        let ll = match l.mac {
            Some(m) => format!("{}/64", eui64_link_local(m.0)),
            None => "fe80::/64 from the NIC's MAC".to_string(),
        };
        let _ = writeln!(s, "    addresses: {}, link-local {ll}", list(&l.addresses));
        let gateways: Vec<String> = l
            .gateway_v4
            .map(|g| g.to_string())
            .into_iter()
            .chain(l.gateway_v6.map(|g| g.to_string()))
            .collect();
        if !gateways.is_empty() {
            let _ = writeln!(s, "    default route via {}", gateways.join(", "));
        }
        let origin = if l.mtu.is_some() { "" } else { " (the NIC's)" };
        let _ = writeln!(s, "    MTU {}{origin}", link_mtu(l));
        match l.role {
            Role::Underlay => {
                let tunnel = cfg
                    .interface
                    .as_ref()
                    .map(|i| format!("the tunnel's UDP port {} and ", i.listen_port))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "    carries {tunnel}the appliance's own traffic (ping, TCP echo); forwards nothing in"
                );
                if l.egress_nat {
                    let v4 = l.addresses.iter().find_map(|c| match c {
                        IpCidr::Ipv4(c) => Some(c.address()),
                        IpCidr::Ipv6(_) => None,
                    });
                    let beyond = if l.gateway_v4.is_some() {
                        " and beyond its gateway"
                    } else {
                        ""
                    };
                    match v4 {
                        Some(a) => {
                            let _ = writeln!(
                                s,
                                "    egress: segments reach this link's IPv4 subnet{beyond}, masqueraded as {a}"
                            );
                        }
                        None => {
                            let _ =
                                writeln!(s, "    egress: nat, but the link has no IPv4 address");
                        }
                    }
                }
            }
            Role::Segment => {
                match &l.dhcp {
                    Some(d) => {
                        let statics = if d.static_leases.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; static: {}",
                                list(d.static_leases.iter().map(|(m, a)| {
                                    let home = l
                                        .addresses
                                        .iter()
                                        .any(|c| c.contains_addr(&IpAddress::Ipv4(*a)));
                                    // Outside the segment: a workload of another
                                    // segment that may visit this one (a /32).
                                    let visiting = if home { "" } else { " (visiting)" };
                                    format!("{} -> {a}{visiting}", mac(m.0))
                                }))
                            )
                        };
                        let _ = writeln!(
                            s,
                            "    DHCP server: leases of {} s from the first IPv4 subnet{statics}",
                            d.lease_secs
                        );
                    }
                    None => {
                        let _ = writeln!(s, "    DHCP server: off");
                    }
                }
                let prefixes: Vec<String> = l
                    .addresses
                    .iter()
                    .filter_map(|c| match c {
                        IpCidr::Ipv6(c) if c.prefix_len() == 64 => {
                            let mut o = c.address().octets();
                            o[8..].fill(0);
                            Some(format!("{}/64", std::net::Ipv6Addr::from(o)))
                        }
                        _ => None,
                    })
                    .collect();
                if l.send_ra && !prefixes.is_empty() {
                    let _ = writeln!(
                        s,
                        "    router advertisements: {} (every 30 s and when solicited)",
                        prefixes.join(", ")
                    );
                } else {
                    let _ = writeln!(s, "    router advertisements: none");
                }
                let _ = writeln!(s, "    routed to the other segments and the tunnel's peers");
                if l.planetary {
                    let _ = writeln!(
                        s,
                        "    on the Planetary Network: the Mycelium node's /64 and 400::/7"
                    );
                }
            }
        }
    }
    overlay_and_services(cfg, &mut s);
    let Some(i) = &cfg.interface else {
        let _ = writeln!(s, "  no tunnel ([Interface])");
        return s;
    };
    let public = config::PublicKey(PrivateKey::from_bytes(i.private_key.0).public_key().0);
    let (mtu, origin) = match i.mtu {
        Some(m) => (usize::from(m), ""),
        None => (
            cfg.links
                .iter()
                .filter(|l| l.role == Role::Underlay)
                .map(|l| usize::from(link_mtu(l)))
                .min()
                .unwrap_or(usize::from(NIC_MTU))
                .saturating_sub(TUNNEL_OVERHEAD),
            " (smallest underlay MTU - 80)",
        ),
    };
    let _ = writeln!(s, "  tunnel (line {}): public key {public}", i.line);
    let _ = writeln!(s, "    listen port {}, MTU {mtu}{origin}", i.listen_port);
    if !i.addresses.is_empty() {
        let _ = writeln!(s, "    addresses: {}", list(&i.addresses));
    }
    if cfg.peers.is_empty() {
        let _ = writeln!(s, "    no peers");
    }
    for p in &cfg.peers {
        let _ = writeln!(s, "    peer (line {}): {}", p.line, p.public_key);
        let endpoint = match p.endpoint {
            Some((IpAddress::Ipv6(a), port)) => format!("[{a}]:{port}"),
            Some((a, port)) => format!("{a}:{port}"),
            None => "none (reached once it has sent to us)".to_string(),
        };
        let _ = writeln!(s, "      endpoint {endpoint}");
        let allowed = if p.allowed_ips.is_empty() {
            "none".to_string()
        } else {
            list(&p.allowed_ips)
        };
        let _ = writeln!(s, "      allowed IPs {allowed}");
        let keepalive = match p.persistent_keepalive {
            Some(k) => format!("every {k} s"),
            None => "off".to_string(),
        };
        let psk = if p.preshared_key.is_some() {
            ", preshared key"
        } else {
            ""
        };
        let _ = writeln!(s, "      keepalive {keepalive}{psk}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "\
[Link]
Address = 192.168.100.1/24
Gateway = 192.168.100.254
Egress = nat

[Link]
Role = segment
MACAddress = 52:54:00:aa:00:01
Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
StaticLease = 52:54:00:aa:bb:01, 10.20.1.10

[Interface]
# RFC 7748's Alice
PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=
ListenPort = 51821

[Peer]
PublicKey = 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=
Endpoint = 192.168.100.2:51820
AllowedIPs = 10.20.2.0/24, fd20:ab:cd:2::/64
PersistentKeepalive = 25
";

    #[test]
    fn a_lease_of_another_segment_is_marked_visiting() {
        let text = NODE.replace(
            "StaticLease = 52:54:00:aa:bb:01, 10.20.1.10\n",
            "StaticLease = 52:54:00:aa:bb:01, 10.20.1.10\nStaticLease = 52:54:00:aa:bb:02, 10.20.2.20\n",
        ) + "[Routing]\nNetworks = 10.20.0.0/16\n";
        let s = check(text.as_bytes()).unwrap();
        assert!(
            s.contains("static: 52:54:00:aa:bb:01 -> 10.20.1.10, 52:54:00:aa:bb:02 -> 10.20.2.20 (visiting)"),
            "{s}"
        );
    }

    #[test]
    fn a_good_file_is_summarised() {
        let s = check(NODE.as_bytes()).unwrap();
        for want in [
            "link0 (line 1): underlay on the next NIC in order",
            "addresses: 192.168.100.1/24",
            "default route via 192.168.100.254",
            "MTU 1500 (the NIC's)",
            "the tunnel's UDP port 51821",
            "egress: segments reach this link's IPv4 subnet and beyond its gateway, masqueraded as 192.168.100.1",
            "link1 (line 6): segment on the NIC with MAC 52:54:00:aa:00:01",
            "link-local fe80::5054:ff:feaa:1/64",
            "DHCP server: leases of 3600 s from the first IPv4 subnet; static: 52:54:00:aa:bb:01 -> 10.20.1.10",
            "router advertisements: fd20:ab:cd:1::/64",
            // Alice's public key (RFC 7748 §6.1), derived from PrivateKey.
            "tunnel (line 12): public key hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
            "listen port 51821, MTU 1420 (smallest underlay MTU - 80)",
            "peer (line 17): 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=",
            "endpoint 192.168.100.2:51820",
            "allowed IPs 10.20.2.0/24, fd20:ab:cd:2::/64",
            "keepalive every 25 s",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let bad = "[Link]\nAddress = 10.0.0.300/24\nMTU = 7\n[Peer]\nPublicKey = nope\n";
        let errors = check(bad.as_bytes()).unwrap_err();
        let lines: Vec<String> = errors.iter().map(|e| located("n.conf", e)).collect();
        assert!(lines.len() >= 3, "{lines:?}");
        for l in ["n.conf:2: ", "n.conf:3: ", "n.conf:5: "] {
            assert!(
                lines.iter().any(|e| e.starts_with(l)),
                "no {l} in {lines:?}"
            );
        }
    }

    #[test]
    fn the_images_start_up_checks_run_too() {
        // Parses, but the appliance holds at most 8 addresses over all links.
        let mut text = String::new();
        for n in 0..2 {
            let _ = writeln!(text, "[Link]");
            for k in 0..5 {
                let _ = writeln!(text, "Address = 10.{n}.{k}.1/24");
            }
        }
        assert!(config::parse(text.as_bytes()).is_ok());
        let errors = check(text.as_bytes()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.message.contains("at most")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_gateway_its_dns_and_the_mycelium_node_are_summarised() {
        let text = "[Link]\nAddress = 203.0.113.10/24\n[Link]\nRole = segment\nAddress = 10.20.1.1/24\n\
                    Planetary = yes\n[Gateway]\nListen = 203.0.113.10\nPeer = 10.20.2.1\n\
                    [Service]\nName = shop.example.org\nMode = tls\nBackend = 10.20.1.10:443\nProxyProtocol = v2\n\
                    [DNS]\nZone = example.org\nNameServer = ns1.example.org, 203.0.113.10\n\
                    [Mycelium]\nPrivateKey = 0000000000000000000000000000000000000000000000000000000000000001\n\
                    Peer = tcp://203.0.113.7:9651\n";
        let s = check(text.as_bytes()).unwrap();
        for want in [
            "    on the Planetary Network: the Mycelium node's /64 and 400::/7\n",
            "  gateway (line 7): on 203.0.113.10, HTTP port 80, TLS port 443, at most 1024 connections\n",
            "    service shop.example.org (tls, by SNI, PROXY v2): 10.20.1.10:443\n",
            "    peer gateways: 10.20.2.1\n",
            "  DNS (line 15): authoritative for example.org on 203.0.113.10 port 53, TTL 30 s, 1 name(s)\n",
            "  Mycelium (line 18): peers tcp://203.0.113.7:9651\n",
        ] {
            assert!(s.contains(want), "no {want:?} in\n{s}");
        }
    }
}
