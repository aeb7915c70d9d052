//! The routing protocol at run time: the Babel core ([`crate::routing`]) between the
//! router's routing port and its route table.
//!
//! Every tunnel peer is a neighbour, at the link-local address its public key gives it
//! inside the tunnel (corrected from the first datagram it sends, for peers such as babeld
//! whose address is configured by hand). Each poll feeds the queued datagrams to the core,
//! sends what the core emits into the peers' tunnels, and writes the core's selected routes
//! into the route table as [`Origin::Routing`] routes, which win over AllowedIPs and lose
//! to connected subnets.
//!
//! The node announces its segments' subnets and its `[Interface]` addresses that lie inside
//! the VDC's networks, and a /32 for each workload visiting one of its segments from
//! another (`router::visitors`) while it is there.

use crate::config::{Config, Role, RoutingConfig};
use crate::router::{tunnel_link_local, Hop, Origin, Router, RoutingPort};
use crate::routing::{Babel, NeighbourId, RouterId, Settings};
use crate::tunnel::PeerId;
use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpCidr, Ipv6Address};
use vdcnet_hal::net::NetDevice;

/// The routing protocol's state beside the router.
pub(super) struct Routing {
    pub(super) core: Babel,
    /// The address each peer's datagrams come from.
    peers: Vec<(PeerId, Ipv6Address)>,
    local: Ipv6Address,
    buf: Box<[u8]>,
    /// The time of the last poll, for status.
    now: Instant,
    /// When the ways back are copied into the route table next.
    ways_back_due: Instant,
    /// The node's own prefixes, announced always.
    own: Vec<IpCidr>,
    networks: Vec<IpCidr>,
    /// The router's visitors generation the announcements follow.
    visitors_seen: u64,
}

fn neighbour(p: PeerId) -> NeighbourId {
    NeighbourId(u32::from(p.0))
}

fn peer(n: NeighbourId) -> Option<PeerId> {
    u16::try_from(n.0).ok().map(PeerId)
}

/// Whether `prefix` lies inside one of `networks`.
fn inside(networks: &[IpCidr], prefix: &IpCidr) -> bool {
    networks
        .iter()
        .any(|n| n.prefix_len() <= prefix.prefix_len() && n.contains_addr(&prefix.address()))
}

/// What the node announces: its segments' subnets and its `[Interface]` addresses (as
/// given, e.g. a /24 or a /32) inside the VDC's networks.
pub(super) fn own_prefixes(config: &Config, networks: &[IpCidr]) -> Vec<IpCidr> {
    let mut v: Vec<IpCidr> = Vec::new();
    let segments = config
        .links
        .iter()
        .filter(|l| l.role == Role::Segment)
        .flat_map(|l| l.addresses.iter());
    let tunnel = config.interface.iter().flat_map(|i| i.addresses.iter());
    for c in segments.chain(tunnel) {
        let p = crate::routing::wire::normalize(*c);
        if inside(networks, &p) && !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

impl Routing {
    /// Starts the protocol on `router`'s tunnel: opens the routing port, makes every peer a
    /// neighbour, announces the node's own prefixes. `None` without a tunnel.
    pub(super) fn start<D: NetDevice, R: CryptoRngCore>(
        cfg: &RoutingConfig,
        config: &Config,
        router: &mut Router<D, R>,
        seed: u64,
        now: Instant,
    ) -> Option<Routing> {
        let t = router.tunnel.as_ref()?;
        let key = t.device.public_key().0;
        let local = tunnel_link_local(&key);
        // A fresh router-id every boot (as Mycelium does): the others' feasibility
        // distances for the old one cannot hold back the new announcements.
        let mut id = [0u8; 8];
        id.copy_from_slice(&key[..8]);
        for (b, s) in id.iter_mut().zip(seed.to_be_bytes()) {
            *b ^= s;
        }
        let mut settings = Settings::default();
        if let Some(ms) = cfg.hello_interval_ms {
            settings.hello_interval = Duration::from_millis(u64::from(ms));
            settings.ihu_interval = Duration::from_millis(3 * u64::from(ms));
        }
        let mut core = Babel::new(RouterId(id), settings, &cfg.networks)
            .or_else(|_| {
                let mut fallback = [0u8; 8];
                fallback.copy_from_slice(&key[8..16]);
                Babel::new(RouterId(fallback), settings, &cfg.networks)
            })
            .ok()?;
        let mut peers = Vec::new();
        for (id, p) in t.device.peers() {
            let addr = tunnel_link_local(&p.public_key().0);
            if core
                .add_neighbour(now, neighbour(id), addr, Some(local))
                .is_ok()
            {
                peers.push((id, addr));
            }
        }
        let own = own_prefixes(config, &cfg.networks);
        // Every prefix was checked against the networks above.
        let _ = core.set_local_prefixes(now, &own);
        router.routing = Some(RoutingPort::new(local));
        Some(Routing {
            core,
            peers,
            local,
            buf: vec![0u8; crate::router::ring::MAX_PACKET].into_boxed_slice(),
            now,
            ways_back_due: now,
            own,
            networks: cfg.networks.clone(),
            visitors_seen: 0,
        })
    }

    /// One round: datagrams in, the core's timers and datagrams out, route changes into the
    /// table. Returns whether anything was received.
    pub(super) fn poll<D: NetDevice, R: CryptoRngCore>(
        &mut self,
        router: &mut Router<D, R>,
        now: Instant,
    ) -> bool {
        self.now = now;
        let mut busy = false;
        let generation = router.visitors_generation();
        if generation != self.visitors_seen {
            self.visitors_seen = generation;
            self.announce_visitors(now, router.visiting_hosts());
        }
        while let Some(d) = router.routing.as_mut().and_then(|p| p.pop(&mut self.buf)) {
            busy = true;
            let (p, src) = (d.peer, d.src);
            if let Some(k) = self.peers.iter().position(|(id, _)| *id == p) {
                if self.peers[k].1 != src {
                    // The peer's real address (configured by hand on its side): restart
                    // the neighbour there, so our IHUs name it.
                    self.peers[k].1 = src;
                    self.core.remove_neighbour(now, neighbour(p));
                    let _ = self
                        .core
                        .add_neighbour(now, neighbour(p), src, Some(self.local));
                }
            }
            self.core.receive(now, neighbour(p), d.payload);
        }
        if self.core.poll_at() <= now {
            let tunnel_ok = |router: &Router<D, R>, p: PeerId| {
                router.tunnel.as_ref().is_some_and(|t| {
                    t.device.peer(p).is_some_and(|peer| {
                        peer.endpoint().is_some()
                            && (peer.has_session(now) || !peer.handshake_pending())
                    })
                })
            };
            self.core.poll(now, |n, bytes| {
                if let Some(p) = peer(n) {
                    // A peer we cannot reach yet (no endpoint, or a handshake under way)
                    // gets no datagrams to queue: Hellos must be fresh to measure RTT.
                    if tunnel_ok(router, p) {
                        router.send_routing(p, bytes);
                    }
                }
            });
        }
        let mut changed = false;
        self.core.drain_changes(|_| changed = true);
        if changed || now >= self.ways_back_due {
            // The ways back change with every update, not only with the selection; a
            // fresh copy each Hello interval is enough for the reverse-path check.
            self.ways_back_due = now + self.core.settings().hello_interval;
            let ways: Vec<(IpCidr, PeerId)> = self
                .core
                .announced()
                .filter_map(|(prefix, n)| Some((prefix, peer(n)?)))
                .collect();
            router.routes_mut().set_ways_back(ways);
        }
        if changed {
            let routes: Vec<(IpCidr, Hop, u16)> = self
                .core
                .routes()
                .filter_map(|r| Some((r.prefix, Hop::Peer(peer(r.via)?), r.metric)))
                .collect();
            router.routes_mut().replace_origin(Origin::Routing, routes);
        }
        busy
    }

    /// Announces the node's own prefixes and the host routes of the visitors present now
    /// (those inside the VDC's networks, as many as the protocol holds).
    fn announce_visitors(&mut self, now: Instant, hosts: Vec<IpCidr>) {
        let mut all = self.own.clone();
        let room = self.core.settings().max_local.saturating_sub(all.len());
        all.extend(
            hosts
                .into_iter()
                .filter(|h| inside(&self.networks, h) && !self.own.contains(h))
                .take(room),
        );
        // Every prefix is inside the networks and within the limit.
        let _ = self.core.set_local_prefixes(now, &all);
    }

    /// The state and traffic for the metrics.
    pub(super) fn stats<D: NetDevice, R: CryptoRngCore>(
        &self,
        router: &Router<D, R>,
    ) -> crate::metrics::BabelStats {
        let key = |n: NeighbourId| {
            peer(n)
                .and_then(|p| router.tunnel.as_ref()?.device.peer(p))
                .map(|p| crate::config::PublicKey(p.public_key().0).to_string())
                .unwrap_or_default()
        };
        let c = self.core.counters();
        crate::metrics::BabelStats {
            neighbours: self
                .core
                .neighbours(self.now)
                .map(|n| crate::metrics::BabelNeighbourStats {
                    peer: key(n.id),
                    reachable: n.reachable,
                    cost: n.cost,
                    rtt_secs: n.rtt.map(|d| d.total_micros() as f64 / 1e6),
                    tx_bytes: n.tx_bytes,
                })
                .collect(),
            rx_packets: c.rx_packets,
            tx_packets: c.tx_packets,
            rx_bytes: c.rx_bytes,
            tx_bytes: c.tx_bytes,
            refused: [
                ("malformed", c.malformed_packets + c.malformed_tlvs),
                ("out_of_plan", c.out_of_plan),
                ("unfeasible", c.unfeasible),
                (
                    "table_full",
                    c.routes_full + c.sources_full + c.requests_full,
                ),
            ],
        }
    }

    /// The status for the console's stats line: ` babel` then each neighbour as
    /// `nbr=PEER:up|down:COST:RTTms`, each selected route as `route=PREFIX@PEER:METRIC`,
    /// and the core's traffic and refusals.
    pub(super) fn write_status(&self, ways_back: usize, out: &mut dyn Write) {
        let c = self.core.counters();
        let _ = write!(
            out,
            " babel seqno={} rx={} tx={} txbytes={} malformed={} out_of_plan={} unfeasible={} full={} ways_back={ways_back}",
            self.core.seqno(),
            c.rx_packets,
            c.tx_packets,
            c.tx_bytes,
            c.malformed_packets + c.malformed_tlvs,
            c.out_of_plan,
            c.unfeasible,
            c.routes_full + c.sources_full + c.requests_full,
        );
        for n in self.core.neighbours(self.now) {
            let rtt = n.rtt.map_or(-1, |d| d.total_millis() as i64);
            let state = if n.reachable { "up" } else { "down" };
            let _ = write!(out, " nbr={}:{state}:{}:{rtt}ms", n.id.0, n.cost);
        }
        for r in self.core.routes() {
            let _ = write!(out, " route={}@{}:{}", r.prefix, r.via.0, r.metric);
        }
        let _ = write!(out, ";");
    }
}
