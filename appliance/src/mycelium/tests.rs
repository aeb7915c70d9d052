//! Nodes in memory, joined by simulated TCP streams: routes learnt, data sealed and
//! opened end to end, relayed, requested, retracted, expired; garbage peers refused; the
//! bounds holding.

use super::frame::{put_header, DATA_HEADER_LEN, HEADER_LEN, TYPE_CONTROL};
use super::seal::{Cipher, KIND_IP, OVERHEAD};
use super::wire::{self, Tlv, Update};
use super::*;
use core::net::Ipv6Addr;
use rand_core::OsRng;
use smoltcp::time::{Duration, Instant};
use std::vec::Vec;

type TestNode = Node<OsRng>;

fn node(now: Instant, settings: Settings) -> TestNode {
    Node::new(now, SecretKey::generate(&mut OsRng), settings, OsRng)
}

/// An IPv6 packet (next header 59: no payload protocol).
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = std::vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = 59;
    p[7] = hop;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// A control packet on the peer stream.
fn control(tlv: &Tlv) -> Vec<u8> {
    let mut b = [0u8; HEADER_LEN + wire::MAX_PACKET];
    put_header(&mut b, TYPE_CONTROL);
    let n = wire::emit(tlv, &mut b[HEADER_LEN..]).unwrap();
    b[..HEADER_LEN + n].to_vec()
}

/// Every control TLV in a peer's outgoing bytes.
fn tlvs(bytes: &[u8]) -> Vec<Tlv> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = f.push(rest);
        rest = &rest[n..];
        while let Some(frame) = f.next_frame().unwrap() {
            if let Frame::Control(c) = frame {
                out.push(wire::parse(c).unwrap());
            }
        }
    }
    out
}

/// Nodes and the streams between them.
struct Net {
    now: Instant,
    nodes: Vec<TestNode>,
    /// (node a, a's id for b, node b, b's id for a, up)
    links: Vec<(usize, PeerId, usize, PeerId, bool)>,
    delivered: Vec<Vec<Vec<u8>>>,
}

impl Net {
    fn new(n: usize, settings: Settings) -> Self {
        let now = Instant::from_secs(1000);
        Self {
            now,
            nodes: (0..n).map(|_| node(now, settings)).collect(),
            links: Vec::new(),
            delivered: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        let (pa, pb) = (PeerId(100 + b as u32), PeerId(100 + a as u32));
        self.nodes[a].add_peer(self.now, pa, TCP_V4_COST).unwrap();
        self.nodes[b].add_peer(self.now, pb, TCP_V4_COST).unwrap();
        self.links.push((a, pa, b, pb, true));
        self.pump();
    }

    /// Node `_at`'s id for its peer `b`.
    fn peer_id(_at: usize, b: usize) -> PeerId {
        PeerId(100 + b as u32)
    }

    /// Moves bytes until every stream is idle.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for li in 0..self.links.len() {
                let (a, pa, b, pb, up) = self.links[li];
                if !up {
                    continue;
                }
                for (x, px, y, py) in [(a, pa, b, pb), (b, pb, a, pa)] {
                    let bytes = self.nodes[x].transmit(px).to_vec();
                    if bytes.is_empty() {
                        continue;
                    }
                    moved = true;
                    self.nodes[x].transmitted(px, bytes.len());
                    let now = self.now;
                    let sink = &mut self.delivered[y];
                    self.nodes[y]
                        .receive(now, py, &bytes, |p| sink.push(p.to_vec()))
                        .unwrap();
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances time in steps of one second, polling and pumping.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_secs(1)).min(end);
            for n in self.nodes.iter_mut() {
                n.poll(self.now);
            }
            self.pump();
        }
    }

    fn selected(&self, at: usize, of: usize) -> Option<RouteStatus> {
        self.nodes[at].route(&self.nodes[of].subnet())
    }
}

#[test]
fn two_nodes_learn_each_others_subnets_and_link_cost() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    for (a, b) in [(0, 1), (1, 0)] {
        let r = net.selected(a, b).expect("route learnt on connect");
        assert_eq!(r.peer, Net::peer_id(a, b));
        assert_eq!(r.advertised, 0, "a node's own /64 is announced at metric 0");
        assert_eq!(r.router_id, net.nodes[b].router_id());
        let c = net.nodes[a].counters();
        assert!(c.rtt_samples >= 1, "the Hello sent on connect was answered");
        assert_eq!(c.malformed_tlvs + c.updates_filtered + c.peers_rejected, 0);
    }
    // One in-memory round trip takes 0 ms: (9 * 1000 + 0) / 10, plus TCP's 15.
    let p = net.nodes[0].peers().next().unwrap();
    assert_eq!((p.link_cost, p.cost), (900, 915));
    // Each later Hello (20 s) smooths it further.
    net.run(Duration::from_secs(41));
    let p = net.nodes[0].peers().next().unwrap();
    assert_eq!(p.link_cost, 729);
    assert!(net.nodes[0].counters().hellos_tx >= 3);
}

#[test]
fn router_ids_carry_the_key_and_six_random_octets() {
    let n = node(Instant::ZERO, Settings::default());
    let id = n.router_id().0;
    assert_eq!(&id[..32], n.public_key().as_bytes());
    assert_eq!(&id[32..34], &[0, 0]);
    let other = Node::new(
        Instant::ZERO,
        SecretKey::from_key_file(&[0; 32]).unwrap(),
        Settings::default(),
        OsRng,
    );
    let again = Node::new(
        Instant::ZERO,
        SecretKey::from_key_file(&[0; 32]).unwrap(),
        Settings::default(),
        OsRng,
    );
    assert_eq!(other.address(), again.address(), "same key, same address");
    assert_ne!(
        other.router_id(),
        again.router_id(),
        "new router-id per start"
    );
}

#[test]
fn data_is_sealed_and_opened_end_to_end() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    let (a, b) = (net.nodes[0].address(), net.nodes[1].address());
    let packet = ipv6(a, b, 64, b"ping");
    let now = net.now;
    assert_eq!(
        net.nodes[0].send(now, &packet),
        Ok(Sent::Sealed(Net::peer_id(0, 1)))
    );
    net.pump();
    assert_eq!(net.delivered[1].len(), 1);
    let got = &net.delivered[1][0];
    // One hop off at the sender, one at the receiver, as Mycelium does.
    assert_eq!(got[7], 62);
    assert_eq!(&got[..7], &packet[..7]);
    assert_eq!(&got[8..], &packet[8..]);
    // The reply comes back the same way.
    let reply = ipv6(b, a, 64, b"pong");
    net.nodes[1].send(now, &reply).unwrap();
    net.pump();
    assert_eq!(&net.delivered[0][0][40..], b"pong");
    assert_eq!(net.nodes[1].counters().delivered, 1);
    assert_eq!(net.nodes[1].counters().sealed, 1);
}

#[test]
fn sending_checks_the_packet() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    let (a, b) = (net.nodes[0].address(), net.nodes[1].address());
    let now = net.now;
    let n = &mut net.nodes[0];
    let mut other_src = a.octets();
    other_src[7] ^= 1;
    for (packet, err) in [
        (
            ipv6(Ipv6Addr::from(other_src), b, 64, b"x"),
            SendError::NotOurSource,
        ),
        (ipv6(a, a, 64, b"x"), SendError::Local),
        (
            ipv6(a, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), 64, b"x"),
            SendError::NotOverlay,
        ),
        (ipv6(a, b, 1, b"x"), SendError::HopLimit),
        (ipv6(a, b, 64, b"xy")[..41].to_vec(), SendError::Malformed),
        (ipv6(a, b, 64, b"")[..39].to_vec(), SendError::Malformed),
        (
            ipv6(a, b, 64, &[0; MAX_IP_PACKET - 39]),
            SendError::TooLarge,
        ),
    ] {
        assert_eq!(n.send(now, &packet), Err(err));
    }
    assert!(n
        .send(now, &ipv6(a, b, 64, &[0; MAX_IP_PACKET - 40]))
        .is_ok());
}

/// A–B–C in a line: C's /64 reaches A through B (a triggered update), with both links'
/// costs; A's packets to C are relayed by B, which cannot read them. C learnt of A only
/// through B's own /64 (B knew A before C came), so it holds A's first packet until its
/// route request for A's /64 is answered.
#[test]
fn three_nodes_relay() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1);
    net.link(1, 2);
    let r = net.selected(0, 2).expect("A learnt C's /64 through B");
    assert_eq!(r.peer, Net::peer_id(0, 1));
    let ab = net.nodes[0].peers().next().unwrap().cost;
    let bc = net.nodes[1]
        .peers()
        .find(|p| p.id == Net::peer_id(1, 2))
        .unwrap()
        .cost;
    // B passed the route on as soon as it had it, before C's first IHU measured the
    // link: at the starting cost, which stays (a change of the cost alone is not news).
    assert_eq!(r.advertised, DEFAULT_LINK_COST + TCP_V4_COST);
    assert!(bc < r.advertised);
    assert_eq!(r.metric, ab + r.advertised);
    let (a, c) = (net.nodes[0].address(), net.nodes[2].address());
    let now = net.now;
    net.nodes[0].send(now, &ipv6(a, c, 64, b"via B")).unwrap();
    net.pump();
    assert_eq!(net.delivered[2].len(), 1);
    assert_eq!(net.delivered[2][0][7], 61, "three hops off");
    let c_counters = net.nodes[2].counters();
    assert_eq!((c_counters.no_key, c_counters.queued), (1, 1));
    assert!(net.selected(2, 0).is_some());
    assert!(net.delivered[1].is_empty());
    assert_eq!(net.nodes[1].counters().forwarded, 1);
    assert_eq!(net.nodes[1].counters().delivered, 0);
}

/// B knows C before A connects; on connect B announces only its own /64, so A asks for
/// C's with a route request, holding the packet, and sends it once B's answer is in.
#[test]
fn route_requests_find_a_destination_and_release_held_packets() {
    let mut net = Net::new(3, Settings::default());
    net.link(1, 2);
    net.link(0, 1);
    assert!(net.selected(0, 2).is_none());
    let (a, c) = (net.nodes[0].address(), net.nodes[2].address());
    let now = net.now;
    assert_eq!(
        net.nodes[0].send(now, &ipv6(a, c, 64, b"held")),
        Ok(Sent::Queued)
    );
    assert!(net.nodes[0].queried().any(|s| s == net.nodes[2].subnet()));
    net.pump();
    assert!(net.selected(0, 2).is_some(), "B answered the route request");
    assert_eq!(net.delivered[2].len(), 1, "the held packet went out");
    assert_eq!(&net.delivered[2][0][40..], b"held");
    assert_eq!(net.nodes[0].queried().count(), 0);
    assert_eq!(net.nodes[0].counters().queued, 1);
    assert_eq!(net.nodes[0].counters().route_requests_tx, 1);
}

/// A request for a prefix nobody has travels on (generation + 1), is not answered, and
/// the held packet is dropped when the query times out.
#[test]
fn unknown_destinations_time_out() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1);
    net.link(1, 2);
    let a = net.nodes[0].address();
    let nowhere = SecretKey::generate(&mut OsRng).public_key().address();
    let now = net.now;
    assert_eq!(
        net.nodes[0].send(now, &ipv6(a, nowhere, 64, b"?")),
        Ok(Sent::Queued)
    );
    net.pump();
    assert_eq!(net.nodes[1].counters().route_requests_forwarded, 1);
    assert!(net.nodes[2].queried().any(|s| s.contains(nowhere)));
    // A second packet does not ask again while the query is open.
    net.nodes[0].send(now, &ipv6(a, nowhere, 64, b"?")).unwrap();
    net.pump();
    assert_eq!(net.nodes[0].counters().route_requests_tx, 1);
    net.run(Duration::from_secs(16));
    assert_eq!(net.nodes[0].counters().queue_dropped, 2);
    assert_eq!(net.nodes[0].table_sizes().4, 0);
}

#[test]
fn a_garbage_peer_is_rejected() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    let now = net.now;
    let n = &mut net.nodes[0];
    n.add_peer(now, PeerId(7), TCP_V4_COST).unwrap();
    let r = n.receive(now, PeerId(7), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", |_| {
        panic!("nothing to deliver")
    });
    assert_eq!(r, Err(PeerError::Framing(FrameError::Version(b'G'))));
    assert_eq!(n.counters().peers_rejected, 1);
    assert!(n.peers().all(|p| p.id != PeerId(7)), "removed");
    assert_eq!(
        n.receive(now, PeerId(7), b"more", |_| {}),
        Err(PeerError::UnknownPeer)
    );
    // An oversized data packet ends the stream too, and the routes through it go.
    let b_subnet = net.nodes[1].subnet();
    let n = &mut net.nodes[0];
    let mut big = std::vec![1u8, 0, 0, 0, 0, 0xff, 0xff, 9];
    big.extend_from_slice(&[0; 32]);
    let r = n.receive(now, Net::peer_id(0, 1), &big, |_| {});
    assert!(matches!(
        r,
        Err(PeerError::Framing(FrameError::DataTooLong(0xffff)))
    ));
    assert!(n.route(&b_subnet).is_none());
    // Malformed TLVs inside intact framing are skipped, not fatal.
    n.add_peer(now, PeerId(8), TCP_V4_COST).unwrap();
    let mut bad = control(&Tlv::Hello {
        unicast: true,
        seqno: 1,
        interval: 2000,
    });
    bad[9] = 5; // TLV length 5 in a body of 8
    assert!(n.receive(now, PeerId(8), &bad, |_| {}).is_ok());
    assert_eq!(n.counters().malformed_tlvs, 1);
}

/// A fake peer that announces the /64s of freshly made keys.
fn announce(
    n: &mut TestNode,
    now: Instant,
    from: PeerId,
    key: &SecretKey,
    metric: u16,
    seqno: u16,
) {
    let pk = key.public_key();
    let u = Tlv::Update(Update {
        interval: 30000,
        seqno,
        metric,
        subnet: pk.subnet(),
        router_id: RouterId::new(pk.as_bytes(), [1, 2, 3, 4, 5, 6]),
    });
    n.receive(now, from, &control(&u), |_| {}).unwrap();
}

#[test]
fn updates_must_pass_the_filters() {
    let now = Instant::from_secs(10);
    let mut n = node(now, Settings::default());
    n.add_peer(now, PeerId(1), TCP_V4_COST).unwrap();
    let key = SecretKey::generate(&mut OsRng);
    let pk = key.public_key();
    let rid = RouterId::new(pk.as_bytes(), [9; 6]);
    let send = |n: &mut TestNode, subnet: Subnet, router_id: RouterId, metric: u16| {
        let u = Tlv::Update(Update {
            interval: 30000,
            seqno: 1,
            metric,
            subnet,
            router_id,
        });
        n.receive(now, PeerId(1), &control(&u), |_| {}).unwrap();
    };
    // Someone else's /64 under this router-id.
    let other = SecretKey::generate(&mut OsRng).public_key().subnet();
    send(&mut n, other, rid, 5);
    // Shorter than /64, and outside 400::/7.
    send(&mut n, Subnet::new(pk.address(), 48).unwrap(), rid, 5);
    send(
        &mut n,
        Subnet::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0), 64).unwrap(),
        rid,
        5,
    );
    assert_eq!(n.counters().updates_filtered, 3);
    // Our own /64 (under any router-id).
    let (own, own_id) = (n.subnet(), n.router_id());
    send(&mut n, own, own_id, 5);
    assert_eq!(n.counters().updates_own, 1);
    assert_eq!(n.routes().count(), 0);
    // A retraction for a prefix the router-id does not own passes the filters (anyone
    // may say it has no route) but installs nothing.
    send(&mut n, other, rid, INFINITY);
    assert_eq!(n.counters().updates_filtered, 3);
    // The owner's /128 inside its /64 is fine.
    send(&mut n, Subnet::new(pk.address(), 128).unwrap(), rid, 5);
    assert_eq!(n.routes().count(), 1);
}

#[test]
fn the_feasibility_condition_refuses_a_worse_route_from_the_same_source() {
    let now = Instant::from_secs(10);
    let mut n = node(now, Settings::default());
    for p in 1..=3 {
        n.add_peer(now, PeerId(p), TCP_V4_COST).unwrap();
    }
    let key = SecretKey::generate(&mut OsRng);
    announce(&mut n, now, PeerId(1), &key, 100, 5);
    let subnet = key.public_key().subnet();
    assert_eq!(n.route(&subnet).unwrap().peer, PeerId(1));
    // We passed it on at 100 + 1015: the same seqno at a bigger metric is unfeasible.
    announce(&mut n, now, PeerId(2), &key, 2000, 5);
    assert_eq!(n.counters().updates_unfeasible, 1);
    assert_eq!(n.routes().count(), 1);
    // Unfeasible but from a fresh seqno is fine (kept, not selected: it is worse).
    announce(&mut n, now, PeerId(2), &key, 2000, 6);
    assert_eq!(n.routes().count(), 2);
    assert_eq!(n.route(&subnet).unwrap().peer, PeerId(1));
    // A direct route (metric 0) replaces the selected one even if hardly better.
    announce(&mut n, now, PeerId(3), &key, 0, 6);
    assert_eq!(n.route(&subnet).unwrap().peer, PeerId(3));
}

#[test]
fn bounds_hold() {
    let now = Instant::from_secs(10);
    let settings = Settings {
        max_routes: 4,
        max_peers: 2,
        max_pending: 2,
        max_secrets: 2,
        tx_limit: 256,
        ..Settings::default()
    };
    let mut n = node(now, settings);
    n.add_peer(now, PeerId(1), TCP_V4_COST).unwrap();
    n.add_peer(now, PeerId(2), TCP_V4_COST).unwrap();
    assert_eq!(
        n.add_peer(now, PeerId(3), TCP_V4_COST),
        Err(Error::TooManyPeers)
    );
    assert_eq!(n.counters().peers_full, 1);
    // Routes: ten announced, four kept.
    let keys: Vec<SecretKey> = (0..10).map(|_| SecretKey::generate(&mut OsRng)).collect();
    for k in &keys {
        announce(&mut n, now, PeerId(1), k, 10, 1);
    }
    assert_eq!(n.table_sizes().0, 4);
    assert_eq!(n.counters().routes_full, 6);
    // The send buffer: nobody reads peer 2, so what does not fit is counted, not kept.
    assert!(n.transmit(PeerId(2)).len() <= 256);
    assert!(n.counters().tx_full > 0);
    // Held packets: two slots.
    let a = n.address();
    let mut results = Vec::new();
    for _ in 0..3 {
        let far = SecretKey::generate(&mut OsRng).public_key().address();
        results.push(n.send(now, &ipv6(a, far, 64, b"x")));
    }
    assert_eq!(results[..2], [Ok(Sent::Queued), Ok(Sent::Queued)]);
    assert_eq!(results[2], Err(SendError::NoRoute));
    // Ciphers: two cached however many destinations.
    n.transmitted(PeerId(1), n.transmit(PeerId(1)).len());
    for k in &keys[..4] {
        let dst = k.public_key().address();
        n.send(now, &ipv6(a, dst, 64, b"x")).unwrap();
        n.transmitted(PeerId(1), n.transmit(PeerId(1)).len());
    }
    assert_eq!(n.table_sizes().2, 2);
    assert_eq!(n.counters().secrets_evicted, 2);
}

/// When C goes, B retracts C's /64 and A loses it too.
#[test]
fn a_lost_peer_is_retracted_downstream() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1);
    net.link(1, 2);
    assert!(net.selected(0, 2).is_some());
    let now = net.now;
    net.links[1].4 = false;
    net.nodes[1].remove_peer(now, Net::peer_id(1, 2));
    net.pump();
    assert!(net.selected(1, 2).is_none());
    assert!(net.selected(0, 2).is_none(), "the retraction reached A");
    assert!(net.nodes[0].counters().updates_rx >= 3);
}

#[test]
fn a_silent_peer_is_declared_dead() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    net.links[0].4 = false; // nothing moves any more
    net.run(Duration::from_secs(42));
    let mut dead = Vec::new();
    net.nodes[0].drain_dead(|p| dead.push(p));
    assert!(dead.is_empty());
    net.run(Duration::from_secs(2));
    net.nodes[0].drain_dead(|p| dead.push(p));
    assert_eq!(dead, [Net::peer_id(0, 1)]);
    assert_eq!(net.nodes[0].counters().peers_dead, 1);
    assert!(net.selected(0, 1).is_none());
}

/// A route announced with a 1 s interval is held 3.5 s; then it is retracted to the
/// other peers and, 6 s later, forgotten.
#[test]
fn routes_expire() {
    let mut now = Instant::from_secs(10);
    let mut n = node(now, Settings::default());
    n.add_peer(now, PeerId(1), TCP_V4_COST).unwrap();
    n.add_peer(now, PeerId(2), TCP_V4_COST).unwrap();
    let key = SecretKey::generate(&mut OsRng);
    let pk = key.public_key();
    let u = Tlv::Update(Update {
        interval: 100,
        seqno: 1,
        metric: 7,
        subnet: pk.subnet(),
        router_id: RouterId::new(pk.as_bytes(), [0; 6]),
    });
    n.receive(now, PeerId(1), &control(&u), |_| {}).unwrap();
    assert!(n.route(&pk.subnet()).is_some());
    n.transmitted(PeerId(2), n.transmit(PeerId(2)).len());
    for _ in 0..4 {
        now += Duration::from_secs(1);
        n.poll(now);
    }
    assert!(n.route(&pk.subnet()).is_none());
    let told = tlvs(n.transmit(PeerId(2)));
    assert!(told.iter().any(|t| matches!(t,
        Tlv::Update(u) if u.subnet == pk.subnet() && u.metric == INFINITY)));
    assert_eq!(n.routes().count(), 1, "held as retracted");
    for _ in 0..7 {
        now += Duration::from_secs(1);
        n.poll(now);
    }
    assert_eq!(n.routes().count(), 0);
}

#[test]
fn seqno_requests_for_us_bump_our_seqno_once_per_4_s() {
    let now = Instant::from_secs(10);
    let mut n = node(now, Settings::default());
    n.add_peer(now, PeerId(1), TCP_V4_COST).unwrap();
    n.transmitted(PeerId(1), n.transmit(PeerId(1)).len());
    let req = |seqno| {
        control(&Tlv::SeqnoRequest {
            seqno,
            hop_count: 64,
            router_id: n.router_id(),
            prefix: n.subnet(),
        })
    };
    let (r1, r2) = (req(1), req(2));
    n.receive(now, PeerId(1), &r1, |_| {}).unwrap();
    assert_eq!(n.seqno(), 1);
    let sent = tlvs(n.transmit(PeerId(1)));
    assert!(matches!(sent[..], [Tlv::Update(u)] if u.seqno == 1 && u.metric == 0));
    n.receive(now + Duration::from_secs(1), PeerId(1), &r2, |_| {})
        .unwrap();
    assert_eq!(n.seqno(), 1, "too soon");
    n.receive(now + Duration::from_secs(5), PeerId(1), &r2, |_| {})
        .unwrap();
    assert_eq!(n.seqno(), 2);
}

#[test]
fn route_requests_are_answered() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1);
    net.link(1, 2);
    let now = net.now;
    let n = &mut net.nodes[1];
    n.add_peer(now, PeerId(9), TCP_V4_COST).unwrap();
    n.transmitted(PeerId(9), n.transmit(PeerId(9)).len());
    // A wildcard request: every selected route and our own /64.
    let dump = control(&Tlv::RouteRequest {
        prefix: None,
        generation: 0,
    });
    n.receive(now, PeerId(9), &dump, |_| {}).unwrap();
    let got: Vec<Subnet> = tlvs(n.transmit(PeerId(9)))
        .iter()
        .filter_map(|t| match t {
            Tlv::Update(u) => Some(u.subnet),
            _ => None,
        })
        .collect();
    let (s0, s1, s2) = (
        net.nodes[0].subnet(),
        net.nodes[1].subnet(),
        net.nodes[2].subnet(),
    );
    assert_eq!(got.len(), 3);
    for s in [s0, s1, s2] {
        assert!(got.contains(&s));
    }
    // A request for one address's /64 inside ours is answered with ours.
    let n = &mut net.nodes[1];
    n.transmitted(PeerId(9), n.transmit(PeerId(9)).len());
    let req = control(&Tlv::RouteRequest {
        prefix: Some(Subnet::new(n.address(), 128).unwrap()),
        generation: 3,
    });
    n.receive(now, PeerId(9), &req, |_| {}).unwrap();
    assert!(matches!(tlvs(n.transmit(PeerId(9)))[..],
        [Tlv::Update(u)] if u.subnet == s1 && u.metric == 0));
    // Generation 15 is not passed on.
    let far = SecretKey::generate(&mut OsRng).public_key().subnet();
    let req = control(&Tlv::RouteRequest {
        prefix: Some(far),
        generation: 15,
    });
    n.receive(now, PeerId(9), &req, |_| {}).unwrap();
    assert_eq!(n.counters().route_requests_dropped, 1);
}

/// A node with our shared secret cannot make us deliver a packet under addresses other
/// than the ones it was routed by, and a stranger cannot make it open at all.
#[test]
fn opened_packets_must_carry_their_outer_addresses() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1);
    let now = net.now;
    let (a, b) = (net.nodes[0].address(), net.nodes[1].address());
    let key = net.nodes[1]
        .secret
        .shared_secret(&net.nodes[0].public_key())
        .unwrap();
    let cipher = Cipher::new(&key);
    let data = |outer_src: Ipv6Addr, inner: &[u8], cipher: &Cipher| {
        let body_len = inner.len() + OVERHEAD;
        let mut b2 = std::vec![0u8; DATA_HEADER_LEN + body_len];
        frame::put_data_header(&mut b2, body_len as u16, 9, outer_src, b);
        b2[DATA_HEADER_LEN + 4..DATA_HEADER_LEN + 4 + inner.len()].copy_from_slice(inner);
        cipher
            .seal(KIND_IP, [3; 12], &mut b2[DATA_HEADER_LEN..])
            .unwrap();
        b2
    };
    let mut spoof = a.octets();
    spoof[15] ^= 1;
    let spoofed_inner = ipv6(Ipv6Addr::from(spoof), b, 9, b"x");
    let from_a = Net::peer_id(1, 0);
    let n = &mut net.nodes[1];
    n.receive(now, from_a, &data(a, &spoofed_inner, &cipher), |_| {
        panic!("spoofed")
    })
    .unwrap();
    assert_eq!(n.counters().spoofed, 1);
    let ok = ipv6(a, b, 9, b"x");
    let stranger = Cipher::new(&[7; 32]);
    n.receive(now, from_a, &data(a, &ok, &stranger), |_| panic!("forged"))
        .unwrap();
    assert_eq!(n.counters().decrypt_failed, 1);
    let mut got = 0;
    n.receive(now, from_a, &data(a, &ok, &cipher), |p| {
        assert_eq!(p[7], 8);
        got += 1;
    })
    .unwrap();
    assert_eq!(got, 1);
    // From a source with no route there is no key.
    let unknown = SecretKey::generate(&mut OsRng).public_key().address();
    n.receive(now, from_a, &data(unknown, &ok, &cipher), |_| panic!())
        .unwrap();
    assert_eq!(n.counters().no_key, 1);
}

#[test]
fn hop_limits_are_enforced_when_forwarding() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1);
    net.link(1, 2);
    let now = net.now;
    let c = net.nodes[2].address();
    let a = net.nodes[0].address();
    // A packet for C arriving at B with hop limit 1 goes no further.
    let mut b2 = std::vec![0u8; DATA_HEADER_LEN + OVERHEAD + 40];
    frame::put_data_header(&mut b2, (OVERHEAD + 40) as u16, 1, a, c);
    net.nodes[1]
        .receive(now, Net::peer_id(1, 0), &b2, |_| {})
        .unwrap();
    assert_eq!(net.nodes[1].counters().hop_limit, 1);
    assert_eq!(net.nodes[1].counters().forwarded, 0);
    // With hop limit 2 it is forwarded with 1 (and C drops it: 1 is below 2).
    frame::put_data_header(&mut b2, (OVERHEAD + 40) as u16, 2, a, c);
    net.nodes[1]
        .receive(now, Net::peer_id(1, 0), &b2, |_| {})
        .unwrap();
    assert_eq!(net.nodes[1].counters().forwarded, 1);
    net.pump();
    assert_eq!(net.nodes[2].counters().hop_limit, 1);
    // Packets whose route leads back where they came from are dropped.
    frame::put_data_header(&mut b2, (OVERHEAD + 40) as u16, 9, c, a);
    net.nodes[1]
        .receive(now, Net::peer_id(1, 0), &b2, |_| {})
        .unwrap();
    assert_eq!(net.nodes[1].counters().loops, 1);
}

/// What myceliumd 0.7.10 sent a fresh connection that said Hello and asked for the whole
/// table: its Update (its own /64, metric 0, interval 300 s), its IHU (cost 1015: the
/// starting 1000 plus TCP's 15), and its Update again in answer to the wildcard request.
#[test]
fn myceliumd_bytes_are_understood() {
    let hex: String = [
        "010100002a03003c083a0200400075300000000004d3ccb6c3038e2d6da6524a",
        "ac411db98824d5e8b97ec74f5ba1600b29ec05e32d3c37ce3b6a0a720000e468",
        "790c4917010100002a0300080506000003f71770010100002a03003c083a0200",
        "400075300000000004d3ccb6c3038e2d6da6524aac411db98824d5e8b97ec74f",
        "5ba1600b29ec05e32d3c37ce3b6a0a720000e468790c4917",
    ]
    .concat();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let now = Instant::from_secs(10);
    let mut n = node(now, Settings::default());
    n.add_peer(now, PeerId(1), TCP_V4_COST).unwrap();
    // In any chunking.
    for piece in bytes.chunks(5) {
        n.receive(now, PeerId(1), piece, |_| panic!()).unwrap();
    }
    let c = n.counters();
    assert_eq!((c.control_rx, c.updates_rx, c.ihus_rx), (3, 2, 1));
    assert_eq!(c.malformed_tlvs + c.updates_filtered + c.unknown_tlvs, 0);
    let r: Vec<RouteStatus> = n.routes().collect();
    assert_eq!(r.len(), 1);
    assert_eq!(std::format!("{}", r[0].subnet), "4d3:ccb6:c303:8e2d::/64");
    assert!(r[0].selected);
    assert_eq!((r[0].advertised, r[0].seqno), (0, 0));
    assert_eq!(
        std::format!("{:?}", r[0].router_id),
        "6da6524aac411db98824d5e8b97ec74f5ba1600b29ec05e32d3c37ce3b6a0a72-0000-e468790c4917"
    );
    let pk = PublicKey(r[0].router_id.public_key());
    assert!(r[0].subnet.contains(pk.address()));
}
