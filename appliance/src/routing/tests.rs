//! The Babel core in a simulated network: several cores exchanging their bytes over links
//! that can be cut, delayed and made lossy, on a simulated clock; plus single-core tests
//! driven by hand-written packets.

use super::wire::{self, Reader, Tlv, Update, Writer};
use super::*;
use alloc::collections::VecDeque;
use alloc::vec;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr, Ipv6Cidr};

const TICK_MS: i64 = 2;

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpCidr {
    IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), len))
}

fn v6(seg: u16, len: u8) -> IpCidr {
    IpCidr::Ipv6(Ipv6Cidr::new(
        Ipv6Address::new(0xfd20, 0xab, 0xcd, seg, 0, 0, 0, 0),
        len,
    ))
}

fn plan() -> [IpCidr; 2] {
    [v4(10, 20, 0, 0, 16), v6(0, 48)]
}

/// Node i's segments: 10.20.i.0/24 and fd20:ab:cd:i::/64.
fn segs(i: usize) -> [IpCidr; 2] {
    [v4(10, 20, i as u8, 0, 24), v6(i as u16, 64)]
}

fn rid(i: usize) -> RouterId {
    RouterId([0, 0, 0, 0, 0, 0, 0, i as u8 + 1])
}

fn ll(i: usize) -> Ipv6Address {
    Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, i as u16 + 1)
}

/// A tiny deterministic PRNG (xorshift) for loss and jitter.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
struct Dir {
    delay_ms: i64,
    jitter_ms: i64,
    loss_pct: u64,
}

struct Link {
    a: usize,
    b: usize,
    up: bool,
    ab: Dir,
    ba: Dir,
}

struct Flight {
    at: Instant,
    to: usize,
    from: usize,
    bytes: Vec<u8>,
}

struct Net {
    nodes: Vec<Babel>,
    links: Vec<Link>,
    flights: VecDeque<Flight>,
    now: Instant,
    rng: Rng,
    /// Route changes seen per node (prefix, via).
    changes: Vec<Vec<RouteChange>>,
}

impl Net {
    fn new(n: usize, settings: Settings) -> Self {
        let now = Instant::from_secs(1);
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut b = Babel::new(rid(i), settings, &plan()).unwrap();
            b.set_local_prefixes(now, &segs(i)).unwrap();
            nodes.push(b);
        }
        Self {
            nodes,
            links: Vec::new(),
            flights: VecDeque::new(),
            now,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            changes: vec![Vec::new(); n],
        }
    }

    fn link(&mut self, a: usize, b: usize, ab_ms: i64, ba_ms: i64) -> usize {
        let now = self.now;
        self.nodes[a]
            .add_neighbour(now, NeighbourId(b as u32), ll(b), Some(ll(a)))
            .unwrap();
        self.nodes[b]
            .add_neighbour(now, NeighbourId(a as u32), ll(a), Some(ll(b)))
            .unwrap();
        let d = |ms| Dir {
            delay_ms: ms,
            jitter_ms: 0,
            loss_pct: 0,
        };
        self.links.push(Link {
            a,
            b,
            up: true,
            ab: d(ab_ms),
            ba: d(ba_ms),
        });
        self.links.len() - 1
    }

    fn find_link(&self, from: usize, to: usize) -> Option<(usize, bool)> {
        self.links
            .iter()
            .position(|l| (l.a, l.b) == (from, to))
            .map(|i| (i, true))
            .or_else(|| {
                self.links
                    .iter()
                    .position(|l| (l.b, l.a) == (from, to))
                    .map(|i| (i, false))
            })
    }

    fn step(&mut self) {
        self.now += Duration::from_millis(TICK_MS as u64);
        let now = self.now;
        // Deliver what has arrived.
        let mut i = 0;
        while i < self.flights.len() {
            if self.flights[i].at <= now {
                let f = self.flights.remove(i).unwrap();
                self.nodes[f.to].receive(now, NeighbourId(f.from as u32), &f.bytes);
            } else {
                i += 1;
            }
        }
        for n in 0..self.nodes.len() {
            let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
            if self.nodes[n].poll_at() <= now {
                self.nodes[n].poll(now, |to, bytes| {
                    assert!(bytes.len() <= MAX_PACKET);
                    sent.push((to.0 as usize, bytes.to_vec()));
                });
            }
            for (to, bytes) in sent {
                let Some((li, forward)) = self.find_link(n, to) else {
                    continue;
                };
                let l = &self.links[li];
                if !l.up {
                    continue;
                }
                let d = if forward { l.ab } else { l.ba };
                if d.loss_pct > 0 && self.rng.below(100) < d.loss_pct {
                    continue;
                }
                let jitter = if d.jitter_ms > 0 {
                    self.rng.below(d.jitter_ms as u64 + 1) as i64
                } else {
                    0
                };
                self.flights.push_back(Flight {
                    at: now + Duration::from_millis((d.delay_ms + jitter) as u64),
                    to,
                    from: n,
                    bytes,
                });
            }
            let log = &mut self.changes[n];
            self.nodes[n].drain_changes(|c| log.push(c));
        }
    }

    fn run_ms(&mut self, ms: i64) {
        for _ in 0..ms / TICK_MS {
            self.step();
        }
    }

    /// Runs until `cond` holds (checked every tick), at most `limit_ms`; the simulated
    /// milliseconds it took.
    fn run_until(&mut self, limit_ms: i64, mut cond: impl FnMut(&Net) -> bool) -> Option<i64> {
        let start = self.now;
        while (self.now - start).total_millis() as i64 <= limit_ms {
            if cond(self) {
                return Some((self.now - start).total_millis() as i64);
            }
            self.step();
        }
        None
    }

    fn via(&self, node: usize, prefix: IpCidr) -> Option<usize> {
        self.nodes[node].route(&prefix).map(|r| r.via.0 as usize)
    }

    fn metric(&self, node: usize, prefix: IpCidr) -> Option<u16> {
        self.nodes[node].route(&prefix).map(|r| r.metric)
    }

    fn set_up(&mut self, a: usize, b: usize, up: bool) {
        let (li, _) = self.find_link(a, b).unwrap();
        self.links[li].up = up;
    }
}

#[test]
fn two_nodes_learn_each_others_segments() {
    let mut net = Net::new(2, Settings::default());
    net.link(0, 1, 1, 1);
    let took = net.run_until(5_000, |n| {
        segs(1).iter().all(|p| n.via(0, *p) == Some(1))
            && segs(0).iter().all(|p| n.via(1, *p) == Some(0))
    });
    assert!(
        took.is_some(),
        "no convergence in 5 s: {:?}",
        net.nodes[0].routes().collect::<Vec<_>>()
    );
    assert_eq!(net.metric(0, segs(1)[0]), Some(96));
    // The forwarding plane was told, once per prefix.
    let seen: Vec<_> = net.changes[0].iter().map(|c| (c.prefix, c.via)).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains(&(segs(1)[0], Some(NeighbourId(1)))));
    assert!(seen.contains(&(segs(1)[1], Some(NeighbourId(1)))));
    let st: Vec<_> = net.nodes[0].neighbours(net.now).collect();
    assert_eq!(st.len(), 1);
    assert!(st[0].reachable);
    assert_eq!((st[0].rxcost, st[0].txcost), (96, 96));
    assert!(st[0].rtt.is_some(), "RTT measured from timestamps");
}

#[test]
fn three_node_line_relays_through_the_middle() {
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1, 1, 1);
    net.link(1, 2, 1, 1);
    let took = net.run_until(10_000, |n| {
        n.via(0, segs(2)[0]).is_some() && n.via(2, segs(0)[1]).is_some()
    });
    assert!(took.is_some());
    assert_eq!(net.via(0, segs(2)[0]), Some(1));
    assert_eq!(net.via(0, segs(2)[1]), Some(1));
    assert_eq!(net.via(2, segs(0)[0]), Some(1));
    assert_eq!(net.metric(0, segs(2)[0]), Some(192));
    let r = net.nodes[0].route(&segs(2)[0]).unwrap();
    assert_eq!(r.router_id, rid(2), "the route names its origin");
}

/// A square 0-1-2-3-0 whose 0-1-2 side is fast (5 ms links) and 0-3-2 side slow (40 ms).
fn square() -> Net {
    let mut net = Net::new(4, Settings::default());
    net.link(0, 1, 5, 5);
    net.link(1, 2, 5, 5);
    net.link(2, 3, 40, 40);
    net.link(3, 0, 40, 40);
    net
}

#[test]
fn square_reroutes_within_two_seconds_and_moves_back() {
    let mut net = square();
    net.run_ms(20_000);
    assert_eq!(net.via(0, segs(2)[0]), Some(1), "fast side first");
    assert_eq!(net.via(2, segs(0)[1]), Some(1));
    net.set_up(1, 2, false);
    let took = net.run_until(5_000, |n| {
        n.via(0, segs(2)[0]) == Some(3)
            && n.via(0, segs(2)[1]) == Some(3)
            && n.via(2, segs(0)[0]) == Some(3)
            && n.via(2, segs(0)[1]) == Some(3)
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "no reroute within 5 s: node0 {:?}\nnode2 {:?}\n{:?}",
            net.nodes[0].routes().collect::<Vec<_>>(),
            net.nodes[2].routes().collect::<Vec<_>>(),
            net.nodes[0].neighbours(net.now).collect::<Vec<_>>()
        )
    });
    std::println!("square: both directions rerouted {took} ms (simulated) after the cut");
    assert!(took < 2_000, "reroute took {took} ms of simulated time");
    net.set_up(1, 2, true);
    let back = net.run_until(20_000, |n| {
        n.via(0, segs(2)[0]) == Some(1) && n.via(2, segs(0)[0]) == Some(1)
    });
    assert!(back.is_some(), "route did not move back to the fast side");
}

#[test]
fn two_low_rtt_hops_beat_a_high_rtt_direct_link() {
    let mut net = Net::new(3, Settings::default());
    // 80 ms one way on the direct link; 10 ms one way on each hop (the stricter case:
    // RTT 80 against 2 x 10).
    net.link(0, 2, 80, 0);
    net.link(0, 1, 10, 0);
    net.link(1, 2, 10, 0);
    net.run_ms(30_000);
    assert_eq!(
        net.via(0, segs(2)[0]),
        Some(1),
        "{:?}",
        net.nodes[0].neighbours(net.now).collect::<Vec<_>>()
    );
    assert_eq!(net.via(2, segs(0)[1]), Some(1));
    let rtt = net.nodes[0]
        .neighbours(net.now)
        .find(|n| n.id == NeighbourId(2))
        .unwrap()
        .rtt
        .unwrap();
    assert!(
        (70_000..100_000).contains(&rtt.total_micros()),
        "direct RTT measured {rtt}"
    );
    // Without the RTT the direct link would win (one hop against two).
    let mut flat = Net::new(
        3,
        Settings {
            max_rtt_penalty: 0,
            ..Settings::default()
        },
    );
    flat.link(0, 2, 80, 0);
    flat.link(0, 1, 10, 0);
    flat.link(1, 2, 10, 0);
    flat.run_ms(30_000);
    assert_eq!(flat.via(0, segs(2)[0]), Some(2));
}

/// No routing loop: following `via` from any node for `prefix` never revisits a node.
fn assert_loop_free(net: &Net, prefix: IpCidr) {
    for start in 0..net.nodes.len() {
        let mut seen = vec![false; net.nodes.len()];
        let mut at = start;
        while let Some(next) = net.via(at, prefix) {
            assert!(!seen[at], "routing loop for {prefix} from node {start}");
            seen[at] = true;
            at = next;
        }
    }
}

#[test]
fn dead_node_is_forgotten_without_loops_or_counting_to_infinity() {
    // Split horizon off, so stale alternatives circulate and only feasibility stops them.
    let settings = Settings {
        split_horizon: false,
        ..Settings::default()
    };
    let mut net = Net::new(4, settings);
    net.link(0, 1, 2, 2);
    net.link(1, 2, 2, 2);
    net.link(2, 0, 2, 2);
    net.link(2, 3, 2, 2);
    net.run_ms(15_000);
    let p = segs(3)[0];
    for i in 0..3 {
        assert!(net.via(i, p).is_some());
    }
    let max_before = (0..3).filter_map(|i| net.metric(i, p)).max().unwrap();
    net.set_up(2, 3, false);
    let mut worst = 0;
    let gone = net.run_until(10_000, |n| {
        assert_loop_free(n, p);
        for i in 0..3 {
            if let Some(m) = n.metric(i, p) {
                worst = worst.max(m);
            }
        }
        (0..3).all(|i| n.via(i, p).is_none())
    });
    assert!(
        gone.is_some(),
        "route to the dead node still selected somewhere"
    );
    assert!(
        worst <= max_before,
        "metric climbed to {worst} (was at most {max_before})"
    );
    // And it stays gone.
    net.run_ms(5_000);
    assert!((0..3).all(|i| net.via(i, p).is_none()));
}

fn flaps(hysteresis: u16) -> usize {
    let settings = Settings {
        hysteresis,
        ..Settings::default()
    };
    let mut net = Net::new(4, settings);
    // Two equal paths 0-1-2 and 0-3-2 with jittery links.
    for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 0)] {
        let l = net.link(a, b, 8, 8);
        net.links[l].ab.jitter_ms = 14;
        net.links[l].ba.jitter_ms = 14;
    }
    net.run_ms(15_000);
    net.changes[0].clear();
    net.run_ms(60_000);
    net.changes[0]
        .iter()
        .filter(|c| c.prefix == segs(2)[0])
        .count()
}

#[test]
fn hysteresis_keeps_near_equal_paths_from_flapping() {
    assert_eq!(flaps(Settings::default().hysteresis), 0);
    // The same network without hysteresis does flap: the test can see flapping.
    assert!(flaps(0) > 0);
}

#[test]
fn prefixes_outside_the_plan_are_ignored_and_counted() {
    let now = Instant::from_secs(1);
    let mut a = Babel::new(rid(0), Settings::default(), &plan()).unwrap();
    // A neighbour whose plan is wider announces 10.30.1.0/24.
    let wide = [v4(10, 0, 0, 0, 8), v6(0, 48)];
    let mut b = Babel::new(rid(1), Settings::default(), &wide).unwrap();
    b.set_local_prefixes(now, &[v4(10, 30, 1, 0, 24), v4(10, 20, 1, 0, 24)])
        .unwrap();
    a.add_neighbour(now, NeighbourId(1), ll(1), None).unwrap();
    b.add_neighbour(now, NeighbourId(0), ll(0), None).unwrap();
    let mut t = now;
    for _ in 0..40 {
        t += Duration::from_millis(100);
        let mut to_a = Vec::new();
        b.poll(t, |_, bytes| to_a.push(bytes.to_vec()));
        for p in to_a {
            a.receive(t, NeighbourId(1), &p);
        }
        let mut to_b = Vec::new();
        a.poll(t, |_, bytes| to_b.push(bytes.to_vec()));
        for p in to_b {
            b.receive(t, NeighbourId(0), &p);
        }
    }
    assert!(a.route(&v4(10, 20, 1, 0, 24)).is_some());
    assert!(a.route(&v4(10, 30, 1, 0, 24)).is_none());
    assert!(a.counters().out_of_plan > 0);
    // Our own prefixes must be in the plan.
    assert_eq!(
        a.set_local_prefixes(now, &[v4(192, 168, 1, 0, 24)]),
        Err(Error::OutOfPlan)
    );
}

fn packet(tlvs: &[Tlv]) -> Vec<u8> {
    let mut buf = [0u8; MAX_PACKET];
    let mut w = Writer::new(&mut buf).unwrap();
    for t in tlvs {
        w.push(t).unwrap();
    }
    let n = w.finish();
    buf[..n].to_vec()
}

fn update(prefix: IpCidr, seqno: u16, metric: u16) -> Tlv {
    Tlv::Update(Update {
        prefix: Some(prefix),
        ae: wire::ae::V4_VIA_V6,
        interval: 400,
        seqno,
        metric,
        router_id: None,
        next_hop: None,
    })
}

/// A core with one neighbour (id 1) that is alive in both directions at `now`.
fn with_live_neighbour(settings: Settings) -> (Babel, Instant) {
    let mut now = Instant::from_secs(1);
    let mut a = Babel::new(rid(0), settings, &plan()).unwrap();
    a.add_neighbour(now, NeighbourId(1), ll(1), None).unwrap();
    for s in 0..3u16 {
        let p = packet(&[
            Tlv::Hello {
                unicast: true,
                seqno: s,
                interval: 25,
                timestamp: None,
            },
            Tlv::Ihu {
                rxcost: 96,
                interval: 75,
                address: None,
                timestamp: None,
            },
        ]);
        a.receive(now, NeighbourId(1), &p);
        a.poll(now, |_, _| {});
        now += Duration::from_millis(250);
    }
    assert!(a.neighbours(now).next().unwrap().reachable);
    (a, now)
}

fn sent_tlvs(a: &mut Babel, now: Instant) -> Vec<Tlv> {
    let mut out = Vec::new();
    a.poll(now, |_, bytes| {
        for t in Reader::new(bytes).unwrap() {
            out.push(t.unwrap());
        }
    });
    out
}

#[test]
fn malformed_bytes_are_counted_never_a_panic() {
    let (mut a, now) = with_live_neighbour(Settings::default());
    let c0 = a.counters();
    a.receive(now, NeighbourId(1), &[]);
    a.receive(now, NeighbourId(1), &[43, 2, 0, 0]);
    a.receive(now, NeighbourId(1), &[42, 1, 0, 0]);
    a.receive(now, NeighbourId(1), &[42, 2, 0, 9, 1]);
    let c = a.counters();
    assert_eq!(c.malformed_packets - c0.malformed_packets, 4);
    // A TLV running past the body; an Update too short; an IHU with a truncated address.
    a.receive(now, NeighbourId(1), &[42, 2, 0, 3, 4, 6, 0]);
    a.receive(now, NeighbourId(1), &[42, 2, 0, 4, 8, 2, 1, 0]);
    a.receive(now, NeighbourId(1), &[42, 2, 0, 8, 5, 6, 2, 0, 0, 96, 0, 1]);
    let c = a.counters();
    assert_eq!(c.malformed_tlvs - c0.malformed_tlvs, 3);
    // From nobody we know.
    a.receive(now, NeighbourId(7), &packet(&[]));
    assert_eq!(a.counters().unknown_neighbour, 1);
    // An unknown TLV is skipped; an unknown mandatory sub-TLV voids its TLV.
    let mut p = packet(&[]);
    p.extend_from_slice(&[99, 2, 1, 2]);
    p.extend_from_slice(&[4, 9, 0x80, 0, 0, 9, 0, 25, 0x85, 1, 0]);
    let len = (p.len() - 4) as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    a.receive(now, NeighbourId(1), &p);
    assert_eq!(a.counters().unknown_tlvs, 1);
    assert_eq!(a.counters().mandatory_subtlv, 1);
    // Random bytes, with and without a valid header: counted, no panic, nothing learnt.
    let mut rng = Rng(12345);
    for i in 0..20_000 {
        let len = rng.below(80) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && len >= 4 {
            b[0] = 42;
            b[1] = 2;
            let body = (len - 4) as u16;
            b[2..4].copy_from_slice(&body.to_be_bytes());
        }
        a.receive(now, NeighbourId(1), &b);
        a.poll(now, |_, _| {});
    }
    let (routes, sources, adverts) = a.table_sizes();
    assert!(routes <= Settings::default().max_routes && sources <= Settings::default().max_sources);
    assert!(adverts <= Settings::default().max_routes + Settings::default().max_local);
    assert!(a.counters().malformed_packets > 1000 && a.counters().malformed_tlvs > 1000);
}

#[test]
fn a_flood_of_distinct_updates_keeps_the_tables_bounded() {
    let settings = Settings {
        max_routes: 200,
        max_sources: 300,
        ..Settings::default()
    };
    let (mut a, mut now) = with_live_neighbour(settings);
    let mut n = 0u32;
    for batch in 0..100u32 {
        let mut tlvs = vec![Tlv::RouterId(RouterId([
            9,
            9,
            9,
            9,
            0,
            0,
            0,
            batch as u8 + 1,
        ]))];
        for _ in 0..60 {
            let [_, _, x, y] = n.to_be_bytes();
            tlvs.push(update(v4(10, 20, x, y, 32), 1, 10));
            n += 1;
        }
        a.receive(now, NeighbourId(1), &packet(&tlvs));
        a.poll(now, |_, b| assert!(b.len() <= MAX_PACKET));
        let (routes, sources, adverts) = a.table_sizes();
        assert!(routes <= 200 && sources <= 300 && adverts <= 200 + settings.max_local);
        now += Duration::from_millis(20);
    }
    let (routes, sources, adverts) = a.table_sizes();
    assert_eq!(n, 6000);
    assert!(routes <= 200, "{routes} routes");
    assert!(sources <= 300, "{sources} sources");
    assert!(adverts <= 200 + settings.max_local, "{adverts} adverts");
    // Every update past the bound was refused and counted (the neighbour's routes are
    // flushed once it goes quiet, which frees room for more).
    assert!(a.counters().routes_full >= 5000, "{:?}", a.counters());
    assert!(a.routes().count() <= 200);
}

#[test]
fn unfeasible_update_drops_the_route_and_asks_for_a_new_seqno() {
    let (mut a, now) = with_live_neighbour(Settings::default());
    let p = v4(10, 20, 9, 0, 24);
    let r = RouterId([7; 8]);
    a.receive(
        now,
        NeighbourId(1),
        &packet(&[Tlv::RouterId(r), update(p, 5, 100)]),
    );
    assert_eq!(a.route(&p).map(|r| r.metric), Some(196));
    // We advertise it (to nobody but the neighbour: split horizon makes that a
    // retraction, so lift it for this test by polling with the source recorded first).
    let _ = sent_tlvs(&mut a, now);
    // Its metric grows with the same seqno: unfeasible against our own advertisement?
    // Only if we advertised it; record the distance as a second neighbour would see it.
    a.sources.advertised(now, p, r, 5, 196).unwrap();
    a.receive(
        now,
        NeighbourId(1),
        &packet(&[Tlv::RouterId(r), update(p, 5, 300)]),
    );
    assert!(
        a.route(&p).is_none(),
        "unfeasible route must not stay selected"
    );
    assert!(a.counters().unfeasible >= 1);
    let out = sent_tlvs(&mut a, now);
    assert!(
        out.iter().any(|t| matches!(t, Tlv::SeqnoRequest { prefix, seqno: 6, router_id, .. } if *prefix == p && *router_id == r)),
        "{out:?}"
    );
    // A newer seqno makes it feasible again.
    a.receive(
        now,
        NeighbourId(1),
        &packet(&[Tlv::RouterId(r), update(p, 6, 300)]),
    );
    assert_eq!(a.route(&p).map(|r| r.metric), Some(396));
}

#[test]
fn routes_expire_when_updates_stop() {
    let (mut a, mut now) = with_live_neighbour(Settings::default());
    let p = v4(10, 20, 9, 0, 24);
    // Announced with a 1 s interval: it lives 3.5 s past the last update.
    let mut u = update(p, 1, 10);
    if let Tlv::Update(x) = &mut u {
        x.interval = 100;
    }
    a.receive(
        now,
        NeighbourId(1),
        &packet(&[Tlv::RouterId(RouterId([7; 8])), u]),
    );
    assert!(a.route(&p).is_some());
    let mut gone_after = None;
    for (seqno, step) in (3u16..).zip(1..=40) {
        now += Duration::from_millis(250);
        // The neighbour stays alive: Hellos and IHUs keep coming, but no more updates.
        let keepalive = packet(&[
            Tlv::Hello {
                unicast: true,
                seqno,
                interval: 25,
                timestamp: None,
            },
            Tlv::Ihu {
                rxcost: 96,
                interval: 75,
                address: None,
                timestamp: None,
            },
        ]);
        a.receive(now, NeighbourId(1), &keepalive);
        a.poll(now, |_, _| {});
        if gone_after.is_none() && a.route(&p).is_none() {
            gone_after = Some(step * 250);
        }
    }
    assert!(a.neighbours(now).next().unwrap().reachable);
    let ms = gone_after.expect("route never expired");
    assert!((3_250..=3_750).contains(&ms), "expired after {ms} ms");
    let mut changes = Vec::new();
    a.drain_changes(|c| changes.push(c));
    assert!(changes.iter().any(|c| c.prefix == p && c.via.is_none()));
}

#[test]
fn seqno_request_for_our_prefix_bumps_our_seqno() {
    let (mut a, now) = with_live_neighbour(Settings::default());
    a.set_local_prefixes(now, &segs(0)).unwrap();
    let _ = sent_tlvs(&mut a, now);
    let s = a.seqno();
    let req = Tlv::SeqnoRequest {
        prefix: segs(0)[0],
        seqno: s.wrapping_add(1),
        hop_count: 5,
        router_id: rid(0),
    };
    a.receive(now, NeighbourId(1), &packet(&[req]));
    assert_eq!(a.seqno(), s.wrapping_add(1));
    let out = sent_tlvs(&mut a, now);
    assert!(out.iter().any(|t| matches!(t, Tlv::Update(u) if u.prefix == Some(segs(0)[0]) && u.seqno == s.wrapping_add(1) && u.metric == 0)), "{out:?}");
}

#[test]
fn idle_routing_traffic_per_neighbour_is_small() {
    // Three nodes in a full mesh, converged, then one simulated minute of idling.
    let mut net = Net::new(3, Settings::default());
    net.link(0, 1, 5, 5);
    net.link(1, 2, 5, 5);
    net.link(2, 0, 5, 5);
    net.run_ms(20_000);
    let before: Vec<u64> = net.nodes[0]
        .neighbours(net.now)
        .map(|n| n.tx_bytes)
        .collect();
    net.run_ms(60_000);
    let after: Vec<u64> = net.nodes[0]
        .neighbours(net.now)
        .map(|n| n.tx_bytes)
        .collect();
    for (b, a) in before.iter().zip(after.iter()) {
        let per_s = (a - b) as f64 / 60.0;
        std::println!("idle Babel payload to one neighbour: {per_s:.1} bytes/s");
        // Hellos at 4/s (18 octets), IHUs at 1.33/s, a dump of 6 prefixes every 8 s.
        assert!(per_s < 200.0, "{per_s} bytes/s");
        assert!(per_s > 50.0, "{per_s} bytes/s: are Hellos still sent?");
    }
    // Over the whole run (80 s, two neighbours).
    let packets = net.nodes[0].counters().tx_packets as f64 / 80.0 / 2.0;
    std::println!("packets per neighbour per second: {packets:.2}");
    // In a tunnel each packet also carries IPv6+UDP (48 octets), WireGuard's data
    // header and tag (32, plus up to 15 of padding) and the underlay's IPv4+UDP (28).
    let payload = (after[0] - before[0]) as f64 / 60.0;
    std::println!(
        "estimated underlay bytes/s per neighbour: {:.0}",
        payload + packets * (48.0 + 32.0 + 8.0 + 28.0)
    );
}

#[test]
fn emitted_packets_parse_back() {
    let tlvs = [
        Tlv::Hello {
            unicast: true,
            seqno: 7,
            interval: 25,
            timestamp: Some(123456),
        },
        Tlv::Ihu {
            rxcost: 96,
            interval: 75,
            address: None,
            timestamp: Some((1, 2)),
        },
        Tlv::Ihu {
            rxcost: 96,
            interval: 75,
            address: Some(IpAddress::Ipv6(ll(3))),
            timestamp: None,
        },
        Tlv::AckReq {
            opaque: 5,
            interval: 100,
        },
        Tlv::Ack { opaque: 5 },
        Tlv::NextHop(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1))),
        Tlv::RouterId(rid(4)),
        Tlv::RouteRequest {
            prefix: Some(v6(3, 64)),
        },
        Tlv::RouteRequest { prefix: None },
        Tlv::SeqnoRequest {
            prefix: v4(10, 20, 3, 0, 24),
            seqno: 9,
            hop_count: 3,
            router_id: rid(4),
        },
    ];
    let p = packet(&tlvs);
    let back: Vec<Tlv> = Reader::new(&p).unwrap().map(|t| t.unwrap()).collect();
    assert_eq!(&back[..], &tlvs[..]);
    // Updates come back with the packet's router-id and next hop resolved.
    let p = packet(&[
        Tlv::RouterId(rid(4)),
        update(v4(10, 20, 3, 0, 24), 3, 50),
        Tlv::Update(Update {
            prefix: Some(v6(3, 64)),
            ae: wire::ae::IPV6,
            interval: 400,
            seqno: 3,
            metric: 50,
            router_id: None,
            next_hop: None,
        }),
    ]);
    let back: Vec<Tlv> = Reader::new(&p).unwrap().map(|t| t.unwrap()).collect();
    assert!(
        matches!(back[1], Tlv::Update(u) if u.router_id == Some(rid(4)) && u.prefix == Some(v4(10, 20, 3, 0, 24)) && u.ae == wire::ae::V4_VIA_V6)
    );
    assert!(
        matches!(back[2], Tlv::Update(u) if u.router_id == Some(rid(4)) && u.prefix == Some(v6(3, 64)))
    );
}

/// Packets babeld 1.12.1 sent on a veth (captured with tcpdump).
mod babeld_fixtures {
    use super::*;

    const FRAME5: &[u8] = include_bytes!("fixtures/babeld-frame5.bin");
    const FRAME7: &[u8] = include_bytes!("fixtures/babeld-frame7.bin");
    const FRAME10: &[u8] = include_bytes!("fixtures/babeld-frame10.bin");

    fn parse(p: &[u8]) -> Vec<Tlv> {
        Reader::new(p).unwrap().map(|t| t.unwrap()).collect()
    }

    #[test]
    fn hello_and_ihus_with_timestamps() {
        let t = parse(FRAME7);
        assert_eq!(
            t[0],
            Tlv::Hello {
                unicast: false,
                seqno: 0xdefc,
                interval: 0,
                timestamp: Some(0x3349745a)
            }
        );
        assert_eq!(
            t[2],
            Tlv::Ihu {
                rxcost: 96,
                interval: 300,
                address: Some(IpAddress::Ipv6(Ipv6Address::new(
                    0xfe80, 0, 0, 0, 0, 0, 0, 2
                ))),
                timestamp: Some((0x33487fd5, 0x3348852a)),
            }
        );
        let t = parse(FRAME10);
        assert!(matches!(
            t[0],
            Tlv::Hello {
                unicast: false,
                seqno: 0x0fde,
                interval: 100,
                timestamp: Some(_)
            }
        ));
    }

    #[test]
    fn updates_with_v4_via_v6_and_omitted_octets() {
        let t = parse(FRAME7);
        let ups: Vec<Update> = t
            .iter()
            .filter_map(|t| match t {
                Tlv::Update(u) => Some(*u),
                _ => None,
            })
            .collect();
        let b = RouterId([0xac, 0xbd, 0x10, 0x6e, 0x44, 0x9e, 0x1f, 0xbb]);
        let a = RouterId([0xcc, 0x33, 0xf5, 0x38, 0x10, 0xda, 0xcd, 0x31]);
        let fd98 = IpCidr::Ipv6(Ipv6Cidr::new(
            Ipv6Address::new(0xfd98, 0, 0, 0, 0, 0, 0, 0),
            64,
        ));
        let fd99 = IpCidr::Ipv6(Ipv6Cidr::new(
            Ipv6Address::new(0xfd99, 0, 0, 0, 0, 0, 0, 0),
            64,
        ));
        assert_eq!(ups.len(), 4);
        assert_eq!(
            (ups[0].prefix, ups[0].router_id, ups[0].metric),
            (Some(fd98), Some(b), INFINITY)
        );
        assert_eq!(
            (ups[1].prefix, ups[1].ae),
            (Some(v4(10, 98, 0, 0, 24)), wire::ae::V4_VIA_V6)
        );
        // fd99::/64 is sent with one octet omitted (taken from fd98::/64, the default
        // prefix the first update set).
        assert_eq!(
            (ups[2].prefix, ups[2].router_id, ups[2].metric, ups[2].seqno),
            (Some(fd99), Some(a), 0, 0xeb9d)
        );
        assert_eq!(
            (ups[3].prefix, ups[3].router_id, ups[3].metric),
            (Some(v4(10, 99, 0, 0, 24)), Some(a), 0)
        );
        let t = parse(FRAME5);
        assert!(t
            .iter()
            .any(|t| matches!(t, Tlv::RouteRequest { prefix: None })));
    }

    #[test]
    fn core_learns_babelds_routes_from_its_packets() {
        let now = Instant::from_secs(1);
        let nets = [
            v4(10, 99, 0, 0, 16),
            IpCidr::Ipv6(Ipv6Cidr::new(
                Ipv6Address::new(0xfd99, 0, 0, 0, 0, 0, 0, 0),
                16,
            )),
        ];
        let mut a = Babel::new(rid(0), Settings::default(), &nets).unwrap();
        a.add_neighbour(
            now,
            NeighbourId(1),
            Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            None,
        )
        .unwrap();
        // Its Hellos (and an IHU for us) first, so the link has a cost.
        for (i, s) in [0x0fdeu16, 0x0fdf, 0x0fe0].iter().enumerate() {
            let mut h = FRAME10.to_vec();
            h[8..10].copy_from_slice(&s.to_be_bytes());
            a.receive(now + Duration::from_secs(i as u64), NeighbourId(1), &h);
        }
        let t = now + Duration::from_secs(2);
        a.receive(
            t,
            NeighbourId(1),
            &packet(&[Tlv::Ihu {
                rxcost: 96,
                interval: 300,
                address: None,
                timestamp: None,
            }]),
        );
        a.receive(t, NeighbourId(1), FRAME7);
        assert!(
            a.route(&v4(10, 99, 0, 0, 24)).is_some(),
            "{:?}",
            a.counters()
        );
        assert!(a
            .route(&IpCidr::Ipv6(Ipv6Cidr::new(
                Ipv6Address::new(0xfd99, 0, 0, 0, 0, 0, 0, 0),
                64
            )))
            .is_some());
        // fd98::/64 and 10.98.0.0/24 are outside this plan.
        assert_eq!(a.counters().out_of_plan, 2);
        assert_eq!(a.counters().malformed_tlvs, 0);
    }
}

#[test]
fn a_lossy_link_keeps_its_adjacency_and_costs_more() {
    let mut net = Net::new(2, Settings::default());
    let l = net.link(0, 1, 5, 5);
    net.links[l].ab.loss_pct = 10;
    net.links[l].ba.loss_pct = 10;
    net.run_ms(10_000);
    assert_eq!(net.via(0, segs(1)[0]), Some(1));
    net.changes[0].clear();
    // Five simulated minutes of 10% loss each way: the route never goes away.
    net.run_ms(300_000);
    assert!(
        net.changes[0].is_empty(),
        "route changed: {:?}",
        net.changes[0]
    );
    // The ETX-like cost shows the loss (about 96 / 0.9 / 0.9, within the history's noise).
    let m = net.metric(0, segs(1)[0]).unwrap();
    assert!((106..=140).contains(&m), "metric {m}");
}
