//! Host tests of the routing protocol at run time: N appliances with `[Routing]`, their
//! underlay NICs on one simulated switch whose node-to-node paths can be cut, and a
//! segment host behind each. Babel runs inside the real tunnels; the route tables and the
//! packets that reach the hosts are what is checked.

use super::test_nic::{MockNic as Nic, Queues};
use super::*;
use crate::config;
use crate::router::{Hop, Origin};
use crate::tunnel::{PeerId, PrivateKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet,
};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

type App = Appliance<Nic, rand_core::OsRng>;

fn wan_mac(node: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, node, 1]
}

fn seg_mac(node: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, node, 2]
}

fn host_mac(node: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, node, 0x10]
}

fn host_v4(node: u8) -> Ipv4Address {
    Ipv4Address::new(10, 20, node, 10)
}

fn segment(node: u8) -> IpCidr {
    IpCidr::new(IpAddress::Ipv4(Ipv4Address::new(10, 20, node, 0)), 24)
}

struct Net {
    apps: Vec<App>,
    wan: Vec<Rc<RefCell<Queues>>>,
    seg: Vec<Rc<RefCell<Queues>>>,
    /// Node pairs (1-based, low first) whose underlay path is cut.
    cut: BTreeSet<(u8, u8)>,
    /// One-way delay of a node pair's path in ms (default 0), and frames in flight:
    /// (due time in µs, destination node, frame).
    delay: std::collections::BTreeMap<(u8, u8), u64>,
    flight: Vec<(u64, u8, Vec<u8>)>,
    /// What each segment host received (IPv4 packets).
    inbox: Vec<Vec<Vec<u8>>>,
    /// A workload away from its home segment: the node whose segment it is on now (0: on
    /// none, silent), and what it received there (Ethernet frames to its MAC).
    roamer_at: u8,
    roamer_inbox: Vec<Vec<u8>>,
    console: String,
    t_us: u64,
}

impl Net {
    /// `n` nodes, each peered with every other one (endpoints known), all running Babel.
    fn new(n: u8) -> Net {
        Net::with(n, &[], &[])
    }

    /// `n` nodes; nobody has an endpoint for the `hidden` ones, which know the others'.
    fn with_hidden(n: u8, hidden: &[u8]) -> Net {
        Net::with(n, hidden, &[])
    }

    /// `n` nodes, `hidden` ones as above, and `plain` ones without `[Routing]` (tunnels
    /// and AllowedIPs only).
    fn with(n: u8, hidden: &[u8], plain: &[u8]) -> Net {
        Net::with_segment(n, hidden, plain, "")
    }

    /// As [`Net::with`], with `segment` added to every node's segment `[Link]`.
    fn with_segment(n: u8, hidden: &[u8], plain: &[u8], segment: &str) -> Net {
        let keys: Vec<(String, String)> = (0..n)
            .map(|_| {
                let k = PrivateKey::generate(&mut rand_core::OsRng);
                (
                    STANDARD.encode(*k.to_bytes()),
                    crate::config::PublicKey(k.public_key().0).to_string(),
                )
            })
            .collect();
        let mut net = Net {
            apps: Vec::new(),
            wan: Vec::new(),
            seg: Vec::new(),
            cut: BTreeSet::new(),
            delay: std::collections::BTreeMap::new(),
            flight: Vec::new(),
            inbox: vec![Vec::new(); n as usize],
            roamer_at: 0,
            roamer_inbox: Vec::new(),
            console: String::new(),
            t_us: 0,
        };
        for me in 1..=n {
            let routing = if plain.contains(&me) {
                ""
            } else {
                "[Routing]\nNetworks = 10.20.0.0/16\n"
            };
            let mut text = format!(
                "[Link]\nAddress = 192.168.0.{me}/24\n\
                 [Link]\nRole = segment\nAddress = 10.20.{me}.1/24\n{segment}\
                 [Interface]\nPrivateKey = {}\n{routing}",
                keys[me as usize - 1].0
            );
            for other in (1..=n).filter(|&o| o != me) {
                let endpoint = if hidden.contains(&other) {
                    String::new()
                } else {
                    format!("Endpoint = 192.168.0.{other}:51820\nPersistentKeepalive = 25\n")
                };
                text.push_str(&format!(
                    "[Peer]\nPublicKey = {}\n{endpoint}AllowedIPs = 10.20.{other}.0/24\n",
                    keys[other as usize - 1].1
                ));
            }
            let cfg = config::parse(text.as_bytes()).expect("config parses");
            let (wan, qw) = Nic::new(wan_mac(me));
            let (seg, qs) = Nic::new(seg_mac(me));
            let opts = Options {
                seed: u64::from(me) * 7919,
                ..Options::default()
            };
            let app = Appliance::new(&cfg, vec![wan, seg], opts, Some(rand_core::OsRng), 0)
                .expect("appliance starts");
            net.apps.push(app);
            net.wan.push(qw);
            net.seg.push(qs);
        }
        net
    }

    fn set_delay(&mut self, a: u8, b: u8, ms: u64) {
        self.delay.insert((a.min(b), a.max(b)), ms);
    }

    fn cut(&mut self, a: u8, b: u8, cut: bool) {
        let pair = (a.min(b), a.max(b));
        if cut {
            self.cut.insert(pair);
        } else {
            self.cut.remove(&pair);
        }
    }

    /// Runs `ms` milliseconds in 1 ms steps: every appliance polls, the switch delivers
    /// each underlay frame to its destination MAC (broadcasts to all) unless the path is
    /// cut, and the segment hosts answer ARP and keep what they receive.
    fn run(&mut self, ms: u64) {
        let n = self.apps.len() as u8;
        for _ in 0..ms {
            self.t_us += 1000;
            let wall = 1_700_000_000_000_000_000 + self.t_us * 1000;
            for a in &mut self.apps {
                a.poll(self.t_us, wall, &mut self.console);
            }
            for from in 1..=n {
                let frames: Vec<Vec<u8>> = self.wan[from as usize - 1]
                    .borrow_mut()
                    .tx
                    .drain(..)
                    .collect();
                for f in frames {
                    let dst = [f[0], f[1], f[2], f[3], f[4], f[5]];
                    for to in (1..=n).filter(|&t| t != from) {
                        let pair = (from.min(to), from.max(to));
                        let for_it = dst == wan_mac(to) || dst[0] & 1 == 1;
                        if for_it && !self.cut.contains(&pair) {
                            let d = self.delay.get(&pair).copied().unwrap_or(0);
                            self.flight.push((self.t_us + d * 1000, to, f.clone()));
                        }
                    }
                }
            }
            let now = self.t_us;
            let (due, later): (Vec<_>, Vec<_>) = core::mem::take(&mut self.flight)
                .into_iter()
                .partition(|f| f.0 <= now);
            self.flight = later;
            for (_, to, f) in due {
                self.wan[to as usize - 1].borrow_mut().rx.push_back(f);
            }
            for node in 1..=n {
                self.service_host(node);
            }
        }
    }

    fn service_host(&mut self, node: u8) {
        let q = self.seg[node as usize - 1].clone();
        let frames: Vec<Vec<u8>> = q.borrow_mut().tx.drain(..).collect();
        for f in frames {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            if self.roamer_at == node {
                if let Some((to, b)) =
                    super::test_nic::arp_reply(eth.payload(), ROAMER_V4, ROAMER_MAC)
                {
                    self.roamer_send(to, EthernetProtocol::Arp, &b);
                    continue;
                }
                if eth.dst_addr() == EthernetAddress(ROAMER_MAC) {
                    self.roamer_inbox.push(f.clone());
                    continue;
                }
            }
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    let ip = host_v4(node);
                    if let Some((_, b)) =
                        super::test_nic::arp_reply(eth.payload(), ip, host_mac(node))
                    {
                        self.host_send(node, EthernetProtocol::Arp, &b)
                    }
                }
                EthernetProtocol::Ipv4 => {
                    self.inbox[node as usize - 1].push(eth.payload().to_vec())
                }
                _ => {}
            }
        }
    }

    fn host_send(&self, node: u8, ty: EthernetProtocol, payload: &[u8]) {
        let mut f = vec![0u8; 14 + payload.len()];
        crate::router::packet::write_eth(
            &mut f,
            EthernetAddress(seg_mac(node)),
            EthernetAddress(host_mac(node)),
            ty,
        );
        f[14..].copy_from_slice(payload);
        self.seg[node as usize - 1].borrow_mut().rx.push_back(f);
    }

    /// The roamer sends a frame to `dst` on the segment it is on now.
    fn roamer_send(&self, dst: [u8; 6], ty: EthernetProtocol, payload: &[u8]) {
        let mut f = vec![0u8; 14 + payload.len()];
        crate::router::packet::write_eth(
            &mut f,
            EthernetAddress(dst),
            EthernetAddress(ROAMER_MAC),
            ty,
        );
        f[14..].copy_from_slice(payload);
        self.seg[self.roamer_at as usize - 1]
            .borrow_mut()
            .rx
            .push_back(f);
    }

    /// Host `from` sends a UDP datagram to host `to`, tagged with `tag`.
    fn send_udp(&self, from: u8, to: u8, tag: u8) {
        use crate::router::packet::*;
        let mut p = vec![tag; IPV4_HEADER + UDP_HEADER + 16];
        write_udp(&mut p[IPV4_HEADER..], 4000, 5000, 16);
        udp4_checksum(&mut p[IPV4_HEADER..], &host_v4(from), &host_v4(to));
        write_ipv4(
            &mut p,
            host_v4(from),
            host_v4(to),
            IpProtocol::Udp,
            UDP_HEADER + 16,
            64,
        );
        self.host_send(from, EthernetProtocol::Ipv4, &p);
    }

    /// Whether host `to` got the datagram tagged `tag` from host `from`.
    fn got(&mut self, from: u8, to: u8, tag: u8) -> bool {
        self.got_from(host_v4(from), to, tag)
    }

    /// Whether host `to` got the datagram tagged `tag` from address `src`.
    fn got_from(&mut self, src: Ipv4Address, to: u8, tag: u8) -> bool {
        let inbox = core::mem::take(&mut self.inbox[to as usize - 1]);
        inbox.iter().any(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            ip.src_addr() == src && p[p.len() - 1] == tag
        })
    }

    /// The preferred route node `at` uses toward node `to`'s segment.
    fn hop(&self, at: u8, to: u8) -> Option<(Hop, Origin)> {
        let target = IpAddress::Ipv4(Ipv4Address::new(10, 20, to, 10));
        let r = self.apps[at as usize - 1].router.routes().lookup(target)?;
        Some((r.hop, r.origin))
    }

    /// The peer id node `at` has for node `to` (peers are in file order, skipping itself).
    fn peer(at: u8, to: u8) -> PeerId {
        PeerId(u16::from(if to < at { to - 1 } else { to - 2 }))
    }
}

#[test]
fn babel_installs_a_route_to_every_segment_through_its_own_node() {
    let mut net = Net::new(3);
    net.run(3000);
    for at in 1..=3u8 {
        for to in (1..=3u8).filter(|&t| t != at) {
            assert_eq!(
                net.hop(at, to),
                Some((Hop::Peer(Net::peer(at, to)), Origin::Routing)),
                "node{at} toward node{to}\n{}",
                net.console
            );
        }
        // Its own segment stays connected.
        assert_eq!(net.hop(at, at).map(|h| h.1), Some(Origin::Connected));
    }
    let mut status = String::new();
    net.apps[0].write_stats(&mut status);
    assert!(
        status.contains(" babel ") && status.contains("route=10.20.2.0/24@0:"),
        "{status}"
    );
}

#[test]
fn a_cut_path_is_routed_around_through_the_third_node_and_comes_back() {
    let mut net = Net::new(3);
    net.run(3000);
    net.send_udp(1, 2, 1);
    net.run(50);
    assert!(net.got(1, 2, 1), "direct delivery before the cut");

    net.cut(1, 2, true);
    // Failover budget: the route must move within 2 s of the cut.
    net.run(2000);
    assert_eq!(
        net.hop(1, 2),
        Some((Hop::Peer(Net::peer(1, 3)), Origin::Routing))
    );
    assert_eq!(
        net.hop(2, 1),
        Some((Hop::Peer(Net::peer(2, 3)), Origin::Routing))
    );
    net.send_udp(1, 2, 2);
    net.send_udp(2, 1, 3);
    net.run(50);
    assert!(net.got(1, 2, 2), "relayed 1 -> 3 -> 2\n{}", net.console);
    assert!(net.got(2, 1, 3), "relayed 2 -> 3 -> 1");
    let relay = net.apps[2].router_counters();
    assert!(relay.forwarded >= 2, "node3 forwarded {relay:?}");

    net.cut(1, 2, false);
    net.run(6000);
    assert_eq!(
        net.hop(1, 2),
        Some((Hop::Peer(Net::peer(1, 2)), Origin::Routing))
    );
    let before = net.apps[2].router_counters().forwarded;
    net.send_udp(1, 2, 4);
    net.run(50);
    assert!(net.got(1, 2, 4));
    assert_eq!(
        net.apps[2].router_counters().forwarded,
        before,
        "back on the direct path"
    );
}

#[test]
fn a_relayed_source_no_route_leads_back_through_that_peer_is_dropped() {
    // node3 runs no routing (a plain WireGuard peer): it offers node2 no way to node1's
    // segment, and node2's own route to it is node1. A packet from node1's segment that
    // node3 relays to node2 fails the reverse-path check.
    let mut net = Net::with(3, &[], &[3]);
    net.run(3000);
    // Make node1 send its segment's traffic for node2 through node3 only (a route written
    // as the protocol would, preferred over its own).
    let via3 = Hop::Peer(Net::peer(1, 3));
    net.apps[0]
        .router
        .routes_mut()
        .set(segment(2), Origin::Connected, via3, 0)
        .unwrap();
    let mismatches = |net: &Net| {
        net.apps[1]
            .tunnel_counters()
            .unwrap()
            .drops
            .get(crate::tunnel::DropReason::AllowedIpsMismatch)
    };
    let before = mismatches(&net);
    net.send_udp(1, 2, 9);
    net.run(50);
    assert!(!net.got(1, 2, 9), "spoofed path accepted");
    assert_eq!(mismatches(&net), before + 1);
}

/// The node that node `at` forwards node `to`'s segment through (a Babel route).
fn via_node(net: &Net, at: u8, to: u8) -> Option<u8> {
    match net.hop(at, to)? {
        (Hop::Peer(p), Origin::Routing) => {
            let k = p.0 as u8;
            Some(if k + 1 < at { k + 1 } else { k + 2 })
        }
        _ => None,
    }
}

#[test]
fn five_nodes_with_path_delays_take_the_fast_detour_and_fail_over_without_a_long_blackout() {
    // node1–node2 80 ms, node1–node3 and node3–node2 10 ms, 60 ms to and from node4/node5,
    // which are hidden (nobody has their endpoint).
    let mut net = Net::with_hidden(5, &[4, 5]);
    for a in 1..=5u8 {
        for b in (a + 1)..=5 {
            let d = match (a, b) {
                (1, 2) => 80,
                (1, 3) | (2, 3) => 10,
                _ => 60,
            };
            net.set_delay(a, b, d);
        }
    }
    net.run(8000);
    assert_eq!(via_node(&net, 1, 2), Some(3), "{}", net.console);
    assert_eq!(via_node(&net, 2, 1), Some(3));
    // The hidden nodes reach each other through public ones, whichever way each routes.
    net.send_udp(4, 5, 200);
    net.send_udp(5, 4, 201);
    net.run(300);
    let mut s = String::new();
    for a in &net.apps {
        a.write_stats(&mut s);
    }
    assert!(
        net.got(4, 5, 200),
        "hidden 4 -> 5 via {:?}\n{s}",
        via_node(&net, 4, 5)
    );
    assert!(
        net.got(5, 4, 201),
        "hidden 5 -> 4 via {:?}\n{s}",
        via_node(&net, 5, 4)
    );
    net.cut(1, 3, true);
    // A datagram each way every 100 ms; count the rounds where one did not get through.
    let mut lost = 0;
    for k in 0..60u8 {
        net.send_udp(1, 2, k);
        net.send_udp(2, 1, k);
        net.run(100);
        if !(net.got(1, 2, k) && net.got(2, 1, k)) {
            lost += 1;
        }
    }
    let mut s = String::new();
    for a in &net.apps {
        a.write_stats(&mut s);
    }
    assert!(lost <= 20, "{lost} of 60 rounds lost after the cut\n{s}");
}

#[test]
fn relayed_traffic_on_an_asymmetric_path_passes_the_reverse_path_check() {
    let mut net = Net::with_hidden(5, &[4, 5]);
    net.run(20000);
    // Force asymmetry: node4 sends to node5 through node1, node5 answers through node2.
    let via1 = Hop::Peer(Net::peer(4, 1));
    let via2 = Hop::Peer(Net::peer(5, 2));
    net.apps[3]
        .router
        .routes_mut()
        .set(segment(5), Origin::Connected, via1, 0)
        .unwrap();
    net.apps[4]
        .router
        .routes_mut()
        .set(segment(4), Origin::Connected, via2, 0)
        .unwrap();
    net.run(500);
    net.send_udp(4, 5, 77);
    net.send_udp(5, 4, 78);
    net.run(300);
    let mut s = String::new();
    for a in &net.apps {
        a.write_stats(&mut s);
    }
    assert!(net.got(4, 5, 77), "4 -> 1 -> 5\n{s}");
    assert!(net.got(5, 4, 78), "5 -> 2 -> 4\n{s}");
}

#[test]
fn the_metrics_show_each_babel_neighbour_and_the_routes_it_gave() {
    let mut net = Net::new(3);
    net.run(3000);
    let app = &net.apps[0];
    let mut snap = crate::metrics::collect(
        &app.router,
        Instant::from_micros(0),
        Instant::from_micros(net.t_us as i64),
        0,
        Default::default(),
    );
    snap.babel = app.routing.as_ref().map(|r| r.stats(&app.router));
    let mut body = String::new();
    snap.render(&mut body).unwrap();
    let peer = app
        .router
        .tunnel
        .as_ref()
        .unwrap()
        .device
        .peer(PeerId(0))
        .unwrap();
    let key = crate::config::PublicKey(peer.public_key().0).to_string();
    for want in [
        format!("vdcnet_babel_neighbour_reachable{{peer=\"{key}\"}} 1\n"),
        format!("vdcnet_babel_neighbour_cost{{peer=\"{key}\"}} 96\n"),
        format!("vdcnet_babel_neighbour_rtt_seconds{{peer=\"{key}\"}} "),
        String::from("vdcnet_babel_refused_total{reason=\"out_of_plan\"} 0\n"),
        format!(
            "vdcnet_route_info{{prefix=\"10.20.2.0/24\",target=\"wg0\",via=\"{key}\",origin=\"babel\",metric=\"96\"}} 1\n"
        ),
    ] {
        assert!(body.contains(&want), "no {want:?} in\n{body}");
    }
}

#[test]
fn hidden_nodes_get_every_route_soon_after_their_tunnels_come_up() {
    let mut net = Net::with_hidden(5, &[4, 5]);
    let mut at = None;
    for step in 0..100u64 {
        net.run(100);
        let all = (1..=5u8).all(|a| {
            (1..=5u8)
                .filter(|&b| b != a)
                .all(|b| net.hop(a, b).is_some_and(|h| h.1 == Origin::Routing))
        });
        if all {
            at = Some(step * 100 + 100);
            break;
        }
    }
    let at = at.expect("every node has a Babel route to every other node within 10 s");
    // Simulated time: well within the 8 s periodic dump, since a neighbour that becomes
    // reachable gets a full dump at once.
    assert!(at <= 4000, "routes complete only after {at} ms");
}

/// A workload of node 1's segment (its `StaticLease` on every node) that moves.
const ROAMER_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 0x77];
const ROAMER_V4: Ipv4Address = Ipv4Address::new(10, 20, 1, 77);
const ROAMER_LEASE: &str = "StaticLease = 02:00:00:00:01:77, 10.20.1.77\n";

/// A UDP datagram from `src` to `dst` whose payload ends in `tag`.
fn udp(src: Ipv4Address, dst: Ipv4Address, tag: u8) -> Vec<u8> {
    use crate::router::packet::*;
    let mut p = vec![tag; IPV4_HEADER + UDP_HEADER + 16];
    write_udp(&mut p[IPV4_HEADER..], 4000, 5000, 16);
    udp4_checksum(&mut p[IPV4_HEADER..], &src, &dst);
    write_ipv4(&mut p, src, dst, IpProtocol::Udp, UDP_HEADER + 16, 64);
    p
}

/// The roamer's DHCPREQUEST for its address (INIT-REBOOT: no server identifier), or its
/// RELEASE of it to `server`, broadcast or unicast as a client sends them.
fn roamer_dhcp(release_to: Option<Ipv4Address>) -> Vec<u8> {
    use crate::router::packet::*;
    let mut b = vec![0u8; 240];
    b[..3].copy_from_slice(&[1, 1, 6]);
    b[4..8].copy_from_slice(&[9, 9, 9, 9]);
    b[28..34].copy_from_slice(&ROAMER_MAC);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let (src, dst) = match release_to {
        None => {
            b.extend_from_slice(&[53, 1, 3, 50, 4]);
            b.extend_from_slice(&ROAMER_V4.octets());
            (Ipv4Address::UNSPECIFIED, Ipv4Address::BROADCAST)
        }
        Some(server) => {
            b[12..16].copy_from_slice(&ROAMER_V4.octets());
            b.extend_from_slice(&[53, 1, 7, 54, 4]);
            b.extend_from_slice(&server.octets());
            (ROAMER_V4, server)
        }
    };
    b.push(255);
    let mut p = vec![0u8; IPV4_HEADER + UDP_HEADER + b.len()];
    p[IPV4_HEADER + UDP_HEADER..].copy_from_slice(&b);
    write_udp(&mut p[IPV4_HEADER..], 68, 67, b.len());
    udp4_checksum(&mut p[IPV4_HEADER..], &src, &dst);
    write_ipv4(&mut p, src, dst, IpProtocol::Udp, UDP_HEADER + b.len(), 64);
    p
}

impl Net {
    /// The roamer plugs into node `at`'s segment and asks for its address: the ACK's
    /// address and option 1 (mask), and option 121 if any.
    fn roam_to(&mut self, at: u8) -> (Ipv4Address, Vec<u8>, Option<Vec<u8>>) {
        self.roamer_at = at;
        self.roamer_inbox.clear();
        self.roamer_send([0xff; 6], EthernetProtocol::Ipv4, &roamer_dhcp(None));
        self.run(5);
        let ack = self
            .roamer_inbox
            .iter()
            .find_map(|f| {
                let ip = Ipv4Packet::new_checked(&f[14..]).ok()?;
                let udp = smoltcp::wire::UdpPacket::new_checked(ip.payload()).ok()?;
                (udp.src_port() == 67).then(|| udp.payload().to_vec())
            })
            .expect("a DHCP reply");
        let yiaddr = Ipv4Address::new(ack[16], ack[17], ack[18], ack[19]);
        let mut opts = std::collections::BTreeMap::new();
        let mut at = 240;
        while at + 1 < ack.len() && ack[at] != 255 {
            let len = usize::from(ack[at + 1]);
            opts.insert(ack[at], ack[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        (yiaddr, opts[&1].clone(), opts.get(&121).cloned())
    }

    /// Whether the roamer received a datagram tagged `tag`.
    fn roamer_got(&mut self, tag: u8) -> bool {
        core::mem::take(&mut self.roamer_inbox)
            .iter()
            .any(|f| f[14..].len() > 28 && f[f.len() - 1] == tag && f[14 + 9] == 17)
    }

    /// The preferred route node `at` has toward the roamer's address.
    fn roamer_hop(&self, at: u8) -> Option<(IpCidr, Hop, Origin)> {
        let r = self.apps[at as usize - 1]
            .router
            .routes()
            .lookup(IpAddress::Ipv4(ROAMER_V4))?;
        Some((r.prefix, r.hop, r.origin))
    }
}

#[test]
fn a_workload_moved_to_another_segment_keeps_its_address_and_is_routed_there() {
    let mut net = Net::with_segment(3, &[], &[], ROAMER_LEASE);
    net.run(3000);
    // Home: node 1's /24 covers it everywhere.
    assert_eq!(net.roamer_hop(3).map(|r| r.0), Some(segment(1)));
    // Asked for before it exists, its address fails to resolve at node 1...
    net.host_send(3, EthernetProtocol::Ipv4, &udp(host_v4(3), ROAMER_V4, 30));
    net.run(4000);
    // ...but once it has its lease at home (a /24, no routes option), node 1 knows it at
    // once rather than remembering the failure for 20 s.
    let (addr, mask, routes) = net.roam_to(1);
    assert_eq!(
        (addr, &mask[..], routes),
        (ROAMER_V4, &[255u8, 255, 255, 0][..], None)
    );
    net.host_send(3, EthernetProtocol::Ipv4, &udp(host_v4(3), ROAMER_V4, 30));
    net.run(50);
    assert!(net.roamer_got(30), "{}", net.console);
    assert_eq!(net.roamer_hop(3).map(|r| r.0), Some(segment(1)));

    // It turns up on node 2's segment: a /32 with the server on-link and the default
    // route through it (RFC 3442).
    let (addr, mask, routes) = net.roam_to(2);
    assert_eq!((addr, &mask[..]), (ROAMER_V4, &[255u8, 255, 255, 255][..]));
    assert_eq!(
        routes.as_deref(),
        Some(&[32u8, 10, 20, 2, 1, 0, 0, 0, 0, 0, 10, 20, 2, 1][..])
    );
    net.run(500);
    let host = IpCidr::new(IpAddress::Ipv4(ROAMER_V4), 32);
    assert_eq!(
        net.roamer_hop(2),
        Some((host, Hop::OnLink(1), Origin::Visitor))
    );
    for at in [1u8, 3] {
        assert_eq!(
            net.roamer_hop(at),
            Some((host, Hop::Peer(Net::peer(at, 2)), Origin::Routing)),
            "node{at}\n{}",
            net.console
        );
    }
    let app = &net.apps[1];
    let snap = crate::metrics::collect(
        &app.router,
        Instant::from_micros(0),
        Instant::from_micros(net.t_us as i64),
        0,
        Default::default(),
    );
    let mut body = String::new();
    snap.render(&mut body).unwrap();
    for want in [
        "vdcnet_visitors{link=\"1\"} 1\n",
        "vdcnet_visitor_events_total{link=\"1\",event=\"arrived\"} 1\n",
        "vdcnet_route_info{prefix=\"10.20.1.77/32\",target=\"link1\",via=\"\",origin=\"visitor\",metric=\"0\"} 1\n",
    ] {
        assert!(body.contains(want), "{want} in\n{body}");
    }
    // Traffic both ways: node 3's host reaches it and its answer is no spoof at node 2.
    net.host_send(3, EthernetProtocol::Ipv4, &udp(host_v4(3), ROAMER_V4, 31));
    net.run(50);
    assert!(net.roamer_got(31), "{}", net.console);
    net.roamer_send(
        seg_mac(2),
        EthernetProtocol::Ipv4,
        &udp(ROAMER_V4, host_v4(3), 32),
    );
    net.run(50);
    assert!(net.got_from(ROAMER_V4, 3, 32), "{}", net.console);
    // A neighbour on its home segment still thinks it on-link: node 1 answers its ARP
    // for the roamer and forwards.
    let arp = smoltcp::wire::ArpRepr::EthernetIpv4 {
        operation: smoltcp::wire::ArpOperation::Request,
        source_hardware_addr: EthernetAddress(host_mac(1)),
        source_protocol_addr: host_v4(1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ROAMER_V4,
    };
    let mut b = vec![0u8; arp.buffer_len()];
    arp.emit(&mut smoltcp::wire::ArpPacket::new_unchecked(&mut b[..]));
    net.host_send(1, EthernetProtocol::Arp, &b);
    net.t_us += 1000;
    net.apps[0].poll(net.t_us, 1_700_000_000_000_000_000, &mut net.console);
    let answered = net.seg[0].borrow().tx.iter().any(|f| {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let reply = smoltcp::wire::ArpPacket::new_checked(eth.payload())
            .ok()
            .and_then(|p| smoltcp::wire::ArpRepr::parse(&p).ok());
        matches!(reply, Some(smoltcp::wire::ArpRepr::EthernetIpv4 {
            operation: smoltcp::wire::ArpOperation::Reply,
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) if source_hardware_addr == EthernetAddress(seg_mac(1)) && source_protocol_addr == ROAMER_V4)
    });
    assert!(answered, "node 1 answers ARP for its away workload");
    net.host_send(1, EthernetProtocol::Ipv4, &udp(host_v4(1), ROAMER_V4, 33));
    net.run(50);
    assert!(net.roamer_got(33), "{}", net.console);

    // It leaves without a word: node 2 probes it, gives it up, and the routes go home.
    net.roamer_at = 0;
    net.run(6000);
    assert_eq!(net.roamer_hop(2).map(|r| r.0), Some(segment(1)));
    assert_eq!(net.roamer_hop(3).map(|r| r.0), Some(segment(1)));
    assert_eq!(net.roamer_hop(1).map(|r| r.2), Some(Origin::Connected));

    // On node 3 it is announced from there; a RELEASE withdraws it at once.
    let (addr, _, _) = net.roam_to(3);
    assert_eq!(addr, ROAMER_V4);
    net.run(500);
    assert_eq!(
        net.roamer_hop(1),
        Some((host, Hop::Peer(Net::peer(1, 3)), Origin::Routing))
    );
    let server = Ipv4Address::new(10, 20, 3, 1);
    net.roamer_send(
        seg_mac(3),
        EthernetProtocol::Ipv4,
        &roamer_dhcp(Some(server)),
    );
    net.run(500);
    assert_eq!(net.roamer_hop(1).map(|r| r.2), Some(Origin::Connected));
    let mut status = String::new();
    net.apps[2].write_stats(&mut status);
    assert!(
        status.contains(" visitors arrived=1 left=1 silent=0"),
        "{status}"
    );
}
