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
                 [Link]\nRole = segment\nAddress = 10.20.{me}.1/24\n\
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
        let inbox = core::mem::take(&mut self.inbox[to as usize - 1]);
        inbox.iter().any(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            ip.src_addr() == host_v4(from) && p[p.len() - 1] == tag
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
