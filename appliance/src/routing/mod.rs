//! Babel (RFC 8966) between appliances over the tunnels, sans-I/O.
//!
//! One Babel "interface" per tunnel peer, with that peer its only neighbour: the caller
//! carries the bytes as IPv6 UDP port [`wire::PORT`] from our link-local address inside
//! the tunnel to [`wire::MULTICAST`] (ff02::1:6, as babeld does) or to the peer's
//! link-local address; either reaches exactly that neighbour. The core takes `now` (a monotonic [`Instant`]) and bytes, and
//! emits packets through a callback into its own fixed buffer: no clock, no socket, no
//! per-packet allocation once the tables are warm.
//!
//! - [`Babel::receive`]: one packet from a neighbour.
//! - [`Babel::poll`]: emits what is due (Hellos with RFC 9616 timestamps, IHUs every
//!   few Hellos, triggered and periodic Updates, retractions, route and seqno requests)
//!   and runs the timers (missed Hellos, lapsed IHUs, route expiry); [`Babel::poll_at`]
//!   says when to call it next.
//! - [`Babel::routes`] (the selected routes), [`Babel::drain_changes`] (what changed since
//!   the last call, for the forwarding plane's table), [`Babel::neighbours`] (status:
//!   cost, RTT, reachability) and [`Babel::counters`].
//!
//! Updates for prefixes outside the VDC's networks (given at creation) are ignored and
//! counted; every table is bounded ([`Settings`]) and overflow is counted.
//!
//! Layout, one concern per file: `wire` (packet parse/emit), `neighbour` (Hello history,
//! costs, RTT), `source` (feasibility distances), `route` (the route table and selection
//! with hysteresis), `counters`, and this file (the core: what to do on each TLV, and
//! what to send when).

pub mod counters;
pub mod neighbour;
mod route;
pub mod source;
pub mod wire;

pub use counters::Counters;
pub use neighbour::NeighbourId;
pub use wire::{RouterId, INFINITY};

use alloc::vec::Vec;
use neighbour::{micros32, Neighbour};
use route::{select, Candidate, Route, Routes};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, Ipv6Address};
use source::Sources;
use wire::{seqno_newer, Tlv, TlvError, Update, Writer};

/// The largest packet [`Babel::poll`] emits: the IPv6 minimum MTU less IPv6 and UDP
/// headers (1280 - 48).
pub const MAX_PACKET: usize = 1232;

/// Protocol parameters. [`Settings::default`] detects a dead neighbour in 1.125 s (250 ms
/// Hellos, dead after 4 missed ones, the first counted at 1.5 intervals) for failover
/// within 2 s, while a link losing 10% of its packets keeps its adjacency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Our Hello interval towards each neighbour.
    pub hello_interval: Duration,
    /// Our IHU interval (IHUs ride on Hellos, so a multiple of the Hello interval).
    pub ihu_interval: Duration,
    /// Interval of full route dumps to every neighbour; routes we learn expire after 3.5
    /// of the announcer's intervals.
    pub update_interval: Duration,
    /// The cost of a loss-free link.
    pub nominal_cost: u16,
    /// A neighbour whose last this-many expected Hellos were all missed is unreachable.
    pub dead_after_missed: u8,
    /// Timestamps on Hellos and IHUs (RFC 9616), for the RTT cost.
    pub timestamps: bool,
    /// Set the unicast flag on our Hellos. Off by default: each tunnel is an interface
    /// with exactly one neighbour, so "multicast" Hellos (to ff02::1:6 on it) reach just
    /// that peer, and babeld forgets a neighbour that sends no multicast Hellos.
    pub unicast_hellos: bool,
    /// RTTs up to this add no cost.
    pub rtt_min: Duration,
    /// RTTs from this on add `max_rtt_penalty`; linear in between.
    pub rtt_max: Duration,
    /// The largest RTT cost.
    pub max_rtt_penalty: u16,
    /// Weight of a new RTT sample in the running average, out of 256.
    pub rtt_decay: u8,
    /// A route replaces the current one only if its metric is lower by more than this.
    pub hysteresis: u16,
    /// Metric changes of the selected route smaller than this wait for the next
    /// periodic update (bigger ones, and any router-id or seqno change, are sent at once).
    pub trigger_threshold: u16,
    /// How many times a triggered update or retraction is sent (one Hello apart).
    pub triggered_repeats: u8,
    /// Do not announce a route back to the neighbour it goes through.
    pub split_horizon: bool,
    /// Announce IPv4 prefixes with an IPv6 next hop (RFC 9229), as tunnels have no IPv4
    /// link addresses.
    pub v4_via_v6: bool,
    /// Hop count of the seqno requests we originate.
    pub request_hops: u8,
    /// Bounds of the tables.
    pub max_neighbours: usize,
    pub max_routes: usize,
    pub max_sources: usize,
    pub max_local: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hello_interval: Duration::from_millis(250),
            ihu_interval: Duration::from_millis(750),
            update_interval: Duration::from_secs(8),
            nominal_cost: 96,
            dead_after_missed: 4,
            timestamps: true,
            unicast_hellos: false,
            rtt_min: Duration::from_millis(10),
            rtt_max: Duration::from_millis(150),
            max_rtt_penalty: 400,
            rtt_decay: 42,
            hysteresis: 48,
            trigger_threshold: 64,
            triggered_repeats: 2,
            split_horizon: true,
            v4_via_v6: true,
            request_hops: 64,
            max_neighbours: 64,
            max_routes: 1024,
            max_sources: 2048,
            max_local: 80,
        }
    }
}

/// A neighbour as the status page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourStatus {
    pub id: NeighbourId,
    pub address: Ipv6Address,
    /// Both directions work (finite rxcost and txcost).
    pub reachable: bool,
    /// The link cost used in metrics (loss and RTT).
    pub cost: u16,
    /// What we advertise in IHUs (from the Hellos we got).
    pub rxcost: u16,
    /// What it advertised in its IHUs.
    pub txcost: u16,
    /// Smoothed RTT (RFC 9616), once measured.
    pub rtt: Option<Duration>,
    /// Hello reception history, most recent in the top bit.
    pub hello_history: u16,
    /// Octets of Babel packets we emitted to it.
    pub tx_bytes: u64,
}

/// A selected route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteStatus {
    pub prefix: IpCidr,
    pub via: NeighbourId,
    pub metric: u16,
    pub router_id: RouterId,
    pub seqno: u16,
    pub next_hop: Option<IpAddress>,
}

/// A change of the selected route for a prefix, for the forwarding plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteChange {
    pub prefix: IpCidr,
    /// The neighbour to forward to now; `None`: no route any more.
    pub via: Option<NeighbourId>,
    pub metric: u16,
}

/// Why an API call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// `max_neighbours` reached.
    TooManyNeighbours,
    /// The neighbour id is already in use.
    DuplicateNeighbour,
    /// `max_local` reached.
    TooManyPrefixes,
    /// A local prefix outside the VDC's networks.
    OutOfPlan,
    /// The router-id is all zeros or all ones.
    BadRouterId,
}

/// What we announce for one prefix, and what still has to go out.
#[derive(Clone, Copy, Debug)]
struct Advert {
    prefix: IpCidr,
    state: AdvertState,
    /// The route changed and the forwarding plane has not been told yet.
    notify: bool,
    /// Triggered sends left, and when the next one is due.
    repeats: u8,
    due: Option<Instant>,
    /// The metric of our last triggered or periodic announcement.
    announced: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AdvertState {
    /// One of our own prefixes (metric 0, our router-id and seqno).
    Local,
    /// A selected route.
    Routed(Choice),
    /// No route any more: retractions are being sent.
    Retracted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Choice {
    via: NeighbourId,
    router_id: RouterId,
    seqno: u16,
    metric: u16,
    next_hop: Option<IpAddress>,
}

/// A seqno request waiting to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Request {
    to: NeighbourId,
    prefix: IpCidr,
    seqno: u16,
    hops: u8,
    router_id: RouterId,
}

const MAX_REQUESTS: usize = 64;
/// A seqno request for the same (prefix, router-id, seqno) is not repeated within this.
const REQUEST_HOLD: Duration = Duration::from_secs(1);

/// The Babel core.
pub struct Babel {
    router_id: RouterId,
    settings: Settings,
    networks: Vec<IpCidr>,
    seqno: u16,
    neighbours: Vec<Neighbour>,
    /// Our local address towards each neighbour (IHUs naming another address are not ours).
    local_addrs: Vec<(NeighbourId, Ipv6Address)>,
    /// Which Hello kind (unicast flag) each neighbour's history follows.
    hello_kind: Vec<(NeighbourId, bool)>,
    routes: Routes,
    sources: Sources,
    adverts: Vec<Advert>,
    requests: Vec<Request>,
    recent_requests: Vec<(Request, Instant)>,
    acks: Vec<(NeighbourId, u16)>,
    next_update: Option<Instant>,
    generation: u64,
    counters: Counters,
    scratch: Vec<IpCidr>,
}

impl Babel {
    /// A router with this id, these settings, inside these networks (the VDC's address
    /// plan: updates for prefixes outside them are ignored and counted).
    pub fn new(
        router_id: RouterId,
        settings: Settings,
        networks: &[IpCidr],
    ) -> Result<Self, Error> {
        if !router_id.is_valid() {
            return Err(Error::BadRouterId);
        }
        Ok(Self {
            router_id,
            settings,
            networks: networks.iter().copied().map(wire::normalize).collect(),
            seqno: 1,
            neighbours: Vec::new(),
            local_addrs: Vec::new(),
            hello_kind: Vec::new(),
            routes: Routes::new(settings.max_routes),
            sources: Sources::new(settings.max_sources),
            adverts: Vec::new(),
            requests: Vec::new(),
            recent_requests: Vec::new(),
            acks: Vec::new(),
            next_update: None,
            generation: 0,
            counters: Counters::default(),
            scratch: Vec::new(),
        })
    }

    /// Our router-id.
    pub fn router_id(&self) -> RouterId {
        self.router_id
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Our current sequence number.
    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    /// Adds a neighbour (a tunnel peer) at `address` (its link-local address); `local` is
    /// our own address on that link, if known (an IHU naming another address is ignored).
    pub fn add_neighbour(
        &mut self,
        now: Instant,
        id: NeighbourId,
        address: Ipv6Address,
        local: Option<Ipv6Address>,
    ) -> Result<(), Error> {
        if self.neighbours.iter().any(|n| n.id == id) {
            return Err(Error::DuplicateNeighbour);
        }
        if self.neighbours.len() >= self.settings.max_neighbours {
            return Err(Error::TooManyNeighbours);
        }
        self.neighbours.push(Neighbour::new(id, address, now));
        if let Some(l) = local {
            self.local_addrs.push((id, l));
        }
        Ok(())
    }

    /// Removes a neighbour and every route through it.
    pub fn remove_neighbour(&mut self, now: Instant, id: NeighbourId) {
        self.neighbours.retain(|n| n.id != id);
        self.local_addrs.retain(|(n, _)| *n != id);
        self.hello_kind.retain(|(n, _)| *n != id);
        self.requests.retain(|r| r.to != id);
        self.acks.retain(|(n, _)| *n != id);
        self.flush_neighbour(now, id);
    }

    /// Sets our own prefixes (the node's segments), announced with metric 0. Prefixes
    /// no longer listed are retracted.
    pub fn set_local_prefixes(&mut self, now: Instant, prefixes: &[IpCidr]) -> Result<(), Error> {
        if prefixes.len() > self.settings.max_local {
            return Err(Error::TooManyPrefixes);
        }
        if prefixes.iter().any(|p| !self.in_plan(&wire::normalize(*p))) {
            return Err(Error::OutOfPlan);
        }
        let repeats = self.settings.triggered_repeats.max(1);
        for a in self.adverts.iter_mut() {
            if a.state == AdvertState::Local
                && !prefixes.iter().any(|p| wire::normalize(*p) == a.prefix)
            {
                a.state = AdvertState::Retracted;
                a.repeats = repeats;
                a.due = Some(now);
            }
        }
        for p in prefixes.iter().map(|p| wire::normalize(*p)) {
            match self.adverts.iter_mut().find(|a| a.prefix == p) {
                Some(a) if a.state == AdvertState::Local => {}
                Some(a) => {
                    if matches!(a.state, AdvertState::Routed(_)) {
                        a.notify = true;
                        self.generation += 1;
                    }
                    a.state = AdvertState::Local;
                    a.repeats = repeats;
                    a.due = Some(now);
                }
                None => self.adverts.push(Advert {
                    prefix: p,
                    state: AdvertState::Local,
                    notify: false,
                    repeats,
                    due: Some(now),
                    announced: 0,
                }),
            }
        }
        Ok(())
    }

    fn in_plan(&self, p: &IpCidr) -> bool {
        self.networks.iter().any(|n| n.contains_subnet(p))
    }

    fn is_local(&self, p: &IpCidr) -> bool {
        self.adverts
            .iter()
            .any(|a| a.prefix == *p && a.state == AdvertState::Local)
    }

    fn neighbour_index(&self, id: NeighbourId) -> Option<usize> {
        self.neighbours.iter().position(|n| n.id == id)
    }

    fn cost_of(&self, id: NeighbourId, now: Instant) -> u16 {
        match self.neighbour_index(id) {
            Some(i) => self.neighbours[i].cost(&self.settings, now),
            None => INFINITY,
        }
    }

    /// One Babel packet from neighbour `from`.
    pub fn receive(&mut self, now: Instant, from: NeighbourId, packet: &[u8]) {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += packet.len() as u64;
        let Some(ni) = self.neighbour_index(from) else {
            self.counters.unknown_neighbour += 1;
            return;
        };
        let reader = match wire::Reader::new(packet) {
            Ok(r) => r,
            Err(_) => {
                self.counters.malformed_packets += 1;
                return;
            }
        };
        let mut hello_ts = None;
        let mut ihu_ts = None;
        for tlv in reader {
            match tlv {
                Err(TlvError::Truncated | TlvError::Malformed) => self.counters.malformed_tlvs += 1,
                Err(TlvError::Mandatory) => self.counters.mandatory_subtlv += 1,
                Err(TlvError::UnknownAe) => self.counters.unknown_ae += 1,
                Ok(Tlv::Hello {
                    unicast,
                    seqno,
                    interval,
                    timestamp,
                }) => {
                    let kind = match self.hello_kind.iter().find(|(n, _)| *n == from) {
                        Some((_, k)) => *k,
                        None => {
                            self.hello_kind.push((from, unicast));
                            unicast
                        }
                    };
                    if kind != unicast {
                        self.counters.hellos_ignored += 1;
                        continue;
                    }
                    self.counters.hellos_rx += 1;
                    self.neighbours[ni].hello(now, seqno, interval, timestamp);
                    hello_ts = timestamp;
                }
                Ok(Tlv::Ihu {
                    rxcost,
                    interval,
                    address,
                    timestamp,
                }) => {
                    let ours = match (address, self.local_addrs.iter().find(|(n, _)| *n == from)) {
                        (None, _) | (_, None) => true,
                        (Some(IpAddress::Ipv6(a)), Some((_, l))) => a == *l,
                        (Some(_), Some(_)) => false,
                    };
                    if ours {
                        self.counters.ihus_rx += 1;
                        self.neighbours[ni].ihu(now, rxcost, interval);
                        if timestamp.is_some() {
                            ihu_ts = timestamp;
                        }
                    }
                }
                Ok(Tlv::AckReq { opaque, .. }) => {
                    if self.acks.len() < MAX_REQUESTS {
                        self.acks.push((from, opaque));
                    }
                }
                Ok(Tlv::Ack { .. } | Tlv::RouterId(_) | Tlv::NextHop(_)) => {}
                Ok(Tlv::Update(u)) => self.on_update(now, from, u),
                Ok(Tlv::RouteRequest { prefix }) => {
                    self.counters.route_requests_rx += 1;
                    match prefix {
                        None => self.neighbours[ni].dump_due = true,
                        Some(p) if !self.in_plan(&p) => self.counters.out_of_plan += 1,
                        Some(p) => self.trigger(now, p),
                    }
                }
                Ok(Tlv::SeqnoRequest {
                    prefix,
                    seqno,
                    hop_count,
                    router_id,
                }) => self.on_seqno_request(now, from, prefix, seqno, hop_count, router_id),
                Ok(Tlv::Unknown { .. }) => self.counters.unknown_tlvs += 1,
            }
        }
        if let (Some(sent), Some((origin, receive))) = (hello_ts, ihu_ts) {
            if let Some(ni) = self.neighbour_index(from) {
                if self.neighbours[ni].rtt_sample(&self.settings, now, origin, receive, sent) {
                    self.counters.rtt_samples += 1;
                }
            }
        }
        self.check_costs(now);
    }

    fn on_update(&mut self, now: Instant, from: NeighbourId, u: Update) {
        self.counters.updates_rx += 1;
        let Some(prefix) = u.prefix else {
            // A wildcard retraction: everything from this neighbour goes.
            self.flush_neighbour(now, from);
            return;
        };
        if !self.in_plan(&prefix) {
            self.counters.out_of_plan += 1;
            return;
        }
        if self.is_local(&prefix) || u.router_id == Some(self.router_id) {
            self.counters.own += 1;
            return;
        }
        if u.metric == INFINITY {
            if self.routes.remove(&prefix, from) {
                self.reselect(now, prefix);
            }
            return;
        }
        let Some(router_id) = u.router_id else {
            self.counters.malformed_tlvs += 1;
            return;
        };
        let feasible = self
            .sources
            .feasible(&prefix, &router_id, u.seqno, u.metric);
        if !feasible {
            // Kept (selection skips it), and if it would beat what we have, its source
            // is asked for a newer seqno that makes it feasible (section 3.8.2.1).
            self.counters.unfeasible += 1;
            let total = u32::from(self.cost_of(from, now)) + u32::from(u.metric);
            let current = self.route(&prefix).map(|r| u32::from(r.metric));
            if total < u32::from(INFINITY)
                && current.is_none_or(|m| total + u32::from(self.settings.hysteresis) < m)
            {
                let seqno = match self.sources.distance(&prefix, &router_id) {
                    Some((s, _)) => s.wrapping_add(1),
                    None => u.seqno.wrapping_add(1),
                };
                self.queue_request(
                    now,
                    Request {
                        to: from,
                        prefix,
                        seqno,
                        hops: self.settings.request_hops,
                        router_id,
                    },
                );
            }
        }
        let interval = if u.interval == 0 {
            self.settings.update_interval
        } else {
            Duration::from_millis(u64::from(u.interval) * 10)
        };
        let route = Route {
            prefix,
            neighbour: from,
            router_id,
            seqno: u.seqno,
            metric: u.metric,
            next_hop: u.next_hop,
            expires: now + interval * 7 / 2,
        };
        if self.routes.upsert(route).is_err() {
            self.counters.routes_full += 1;
            return;
        }
        self.reselect(now, prefix);
    }

    fn on_seqno_request(
        &mut self,
        now: Instant,
        from: NeighbourId,
        prefix: IpCidr,
        seqno: u16,
        hops: u8,
        router_id: RouterId,
    ) {
        self.counters.seqno_requests_rx += 1;
        if !self.in_plan(&prefix) {
            self.counters.out_of_plan += 1;
            return;
        }
        let Some(a) = self.adverts.iter().find(|a| a.prefix == prefix).copied() else {
            return;
        };
        match a.state {
            AdvertState::Local => {
                if router_id == self.router_id && seqno_newer(seqno, self.seqno) {
                    self.seqno = self.seqno.wrapping_add(1);
                    // Every local prefix carries the new seqno.
                    let locals: Vec<IpCidr> = self
                        .adverts
                        .iter()
                        .filter(|a| a.state == AdvertState::Local)
                        .map(|a| a.prefix)
                        .collect();
                    for p in locals {
                        self.trigger(now, p);
                    }
                } else {
                    self.trigger(now, prefix);
                }
            }
            AdvertState::Routed(c) => {
                if c.router_id != router_id || !seqno_newer(seqno, c.seqno) {
                    self.trigger(now, prefix);
                } else if hops >= 2 && c.via != from {
                    self.queue_request(
                        now,
                        Request {
                            to: c.via,
                            prefix,
                            seqno,
                            hops: hops - 1,
                            router_id,
                        },
                    );
                }
            }
            AdvertState::Retracted => {}
        }
    }

    fn queue_request(&mut self, now: Instant, r: Request) {
        self.recent_requests
            .retain(|(_, t)| now - *t < REQUEST_HOLD);
        if self.recent_requests.iter().any(|(q, _)| {
            q.prefix == r.prefix && q.router_id == r.router_id && q.seqno == r.seqno && q.to == r.to
        }) {
            return;
        }
        if self.requests.len() >= MAX_REQUESTS || self.recent_requests.len() >= MAX_REQUESTS {
            self.counters.requests_full += 1;
            return;
        }
        self.requests.push(r);
        self.recent_requests.push((r, now));
    }

    /// Sends the current state of `prefix` soon (answer to a request, or a change).
    fn trigger(&mut self, now: Instant, prefix: IpCidr) {
        let repeats = self.settings.triggered_repeats.max(1);
        if let Some(a) = self.adverts.iter_mut().find(|a| a.prefix == prefix) {
            a.repeats = a.repeats.max(1).min(repeats);
            a.due = Some(now);
        }
    }

    /// Forgets every route through `id` and reselects their prefixes.
    fn flush_neighbour(&mut self, now: Instant, id: NeighbourId) {
        let mut prefixes = core::mem::take(&mut self.scratch);
        prefixes.clear();
        self.routes.remove_neighbour(id, &mut prefixes);
        for p in prefixes.iter() {
            self.reselect(now, *p);
        }
        self.scratch = prefixes;
    }

    /// Notices neighbours whose cost changed and reselects what goes through them.
    fn check_costs(&mut self, now: Instant) {
        for i in 0..self.neighbours.len() {
            let cost = self.neighbours[i].cost(&self.settings, now);
            let old = self.neighbours[i].last_cost;
            if cost == old {
                continue;
            }
            self.neighbours[i].last_cost = cost;
            let id = self.neighbours[i].id;
            if cost == INFINITY {
                // Dead (or not yet alive): its routes are worthless; fresh ones come
                // with the dump it sends when it is back.
                self.flush_neighbour(now, id);
            } else {
                if old == INFINITY {
                    // Back (or new): exchange full tables at once.
                    self.neighbours[i].dump_due = true;
                    self.neighbours[i].request_due = true;
                }
                let mut prefixes = core::mem::take(&mut self.scratch);
                prefixes.clear();
                self.routes.prefixes_via(id, &mut prefixes);
                for p in prefixes.iter() {
                    self.reselect(now, *p);
                }
                self.scratch = prefixes;
            }
        }
    }

    /// Route selection for one prefix, and what follows from its outcome.
    fn reselect(&mut self, now: Instant, prefix: IpCidr) {
        if self.is_local(&prefix) {
            return;
        }
        let ai = self.adverts.iter().position(|a| a.prefix == prefix);
        let current = ai.and_then(|i| match self.adverts[i].state {
            AdvertState::Routed(c) => Some(c),
            _ => None,
        });
        let mut candidates: heapless::Vec<(Candidate, Route), 16> = heapless::Vec::new();
        let mut best_unfeasible: Option<Route> = None;
        for r in self.routes.for_prefix(&prefix) {
            let cost = self.cost_of(r.neighbour, now);
            let metric = (u32::from(cost) + u32::from(r.metric)).min(u32::from(INFINITY)) as u16;
            if metric == INFINITY {
                continue;
            }
            if !self
                .sources
                .feasible(&prefix, &r.router_id, r.seqno, r.metric)
            {
                best_unfeasible = Some(*r);
                continue;
            }
            let c = Candidate {
                via: r.neighbour,
                metric,
            };
            // Keep the current route and the best few others.
            if candidates.push((c, *r)).is_err() {
                if let Some(worst) = candidates
                    .iter()
                    .enumerate()
                    .filter(|(_, (x, _))| Some(x.via) != current.map(|c| c.via))
                    .max_by_key(|(_, (x, _))| x.metric)
                    .map(|(i, _)| i)
                {
                    if candidates[worst].0.metric > c.metric {
                        candidates[worst] = (c, *r);
                    }
                }
            }
        }
        let chosen = select(
            current.map(|c| c.via),
            candidates.iter().map(|(c, _)| *c),
            self.settings.hysteresis,
        );
        let choice = chosen.and_then(|c| {
            candidates
                .iter()
                .find(|(x, _)| x.via == c.via)
                .map(|(x, r)| Choice {
                    via: x.via,
                    router_id: r.router_id,
                    seqno: r.seqno,
                    metric: x.metric,
                    next_hop: r.next_hop,
                })
        });
        let repeats = self.settings.triggered_repeats.max(1);
        match (ai, choice) {
            (None, None) => {}
            (None, Some(c)) => {
                if self.adverts.len() >= self.settings.max_routes + self.settings.max_local {
                    self.counters.routes_full += 1;
                    return;
                }
                self.adverts.push(Advert {
                    prefix,
                    state: AdvertState::Routed(c),
                    notify: true,
                    repeats,
                    due: Some(now),
                    announced: c.metric,
                });
                self.generation += 1;
            }
            (Some(i), Some(c)) => {
                let a = &mut self.adverts[i];
                let moved = current.map(|p| p.via) != Some(c.via);
                let renewed =
                    current.map(|p| (p.router_id, p.seqno)) != Some((c.router_id, c.seqno));
                let delta = c.metric.abs_diff(a.announced);
                if moved {
                    a.notify = true;
                    self.generation += 1;
                }
                if moved || renewed || delta >= self.settings.trigger_threshold {
                    a.repeats = repeats;
                    a.due = Some(now);
                }
                a.state = AdvertState::Routed(c);
            }
            (Some(i), None) => {
                let a = &mut self.adverts[i];
                if matches!(a.state, AdvertState::Routed(_)) {
                    a.state = AdvertState::Retracted;
                    a.notify = true;
                    a.repeats = repeats;
                    a.due = Some(now);
                    self.generation += 1;
                }
                // An unfeasible route is all we have: ask its source for a new seqno
                // (section 3.8.2.1), so the route can come back without a loop.
                if let Some(r) = best_unfeasible {
                    let seqno = match self.sources.distance(&prefix, &r.router_id) {
                        Some((s, _)) => s.wrapping_add(1),
                        None => r.seqno.wrapping_add(1),
                    };
                    self.queue_request(
                        now,
                        Request {
                            to: r.neighbour,
                            prefix,
                            seqno,
                            hops: self.settings.request_hops,
                            router_id: r.router_id,
                        },
                    );
                }
            }
        }
    }

    /// Runs the timers and emits every packet that is due, each through `out` (the
    /// neighbour it is for, and the packet, at most [`MAX_PACKET`] octets).
    pub fn poll(&mut self, now: Instant, mut out: impl FnMut(NeighbourId, &[u8])) {
        // Timers: missed Hellos, lapsed IHUs, expired routes, the periodic dump.
        let mut changed = false;
        for n in self.neighbours.iter_mut() {
            changed |= n.expire_hellos(now);
        }
        if changed {
            self.check_costs(now);
        }
        if self.routes.next_expiry().is_some_and(|t| t <= now) {
            let mut prefixes = core::mem::take(&mut self.scratch);
            prefixes.clear();
            self.routes.expire(now, &mut prefixes);
            for p in prefixes.iter() {
                self.reselect(now, *p);
            }
            self.scratch = prefixes;
        }
        // Costs drift with the RTT average and with time; reselect what moved.
        self.check_costs(now);
        match self.next_update {
            Some(t) if t > now => {}
            _ => {
                for n in self.neighbours.iter_mut() {
                    n.dump_due = true;
                }
                self.next_update = Some(now + self.settings.update_interval);
                self.sources.gc(now);
            }
        }
        let mut buf = [0u8; MAX_PACKET];
        for ni in 0..self.neighbours.len() {
            self.emit_to(now, ni, &mut buf, &mut out);
        }
        // Book-keeping after every neighbour got its share.
        let hello = self.settings.hello_interval;
        for a in self.adverts.iter_mut() {
            if a.due.is_some_and(|t| t <= now) {
                a.repeats = a.repeats.saturating_sub(1);
                a.due = if a.repeats > 0 {
                    Some(now + hello)
                } else {
                    None
                };
                if let AdvertState::Routed(c) = a.state {
                    a.announced = c.metric;
                }
            }
        }
        for n in self.neighbours.iter_mut() {
            n.dump_due = false;
        }
        self.adverts
            .retain(|a| !(a.state == AdvertState::Retracted && a.due.is_none() && !a.notify));
        self.requests.clear();
        self.acks.clear();
    }

    fn emit_to(
        &mut self,
        now: Instant,
        ni: usize,
        buf: &mut [u8; MAX_PACKET],
        out: &mut impl FnMut(NeighbourId, &[u8]),
    ) {
        let s = self.settings;
        let id = self.neighbours[ni].id;
        let mut tlvs: heapless::Vec<Tlv, 4> = heapless::Vec::new();
        let hello_due = self.neighbours[ni].next_hello <= now;
        if hello_due {
            let n = &mut self.neighbours[ni];
            n.our_seqno = n.our_seqno.wrapping_add(1);
            n.next_hello = now + s.hello_interval;
            let _ = tlvs.push(Tlv::Hello {
                unicast: s.unicast_hellos,
                seqno: n.our_seqno,
                interval: centis(s.hello_interval),
                timestamp: s.timestamps.then(|| micros32(now).max(1)),
            });
            let (_, heard) = n.history();
            if n.next_ihu <= now && heard > 0 {
                n.next_ihu = now + s.ihu_interval;
                let rxcost = n.rxcost(&s);
                let timestamp = if s.timestamps { n.last_hello_ts } else { None };
                let _ = tlvs.push(Tlv::Ihu {
                    rxcost,
                    interval: centis(s.ihu_interval),
                    address: None,
                    timestamp,
                });
            }
        }
        if core::mem::take(&mut self.neighbours[ni].request_due) {
            let _ = tlvs.push(Tlv::RouteRequest { prefix: None });
        }
        let dump = self.neighbours[ni].dump_due;
        let mut w = Packet::new(buf);
        for t in tlvs.iter() {
            w.push(t, id, out, &mut self.neighbours[ni], &mut self.counters);
        }
        for (to, opaque) in self.acks.iter() {
            if *to == id {
                w.push(
                    &Tlv::Ack { opaque: *opaque },
                    id,
                    out,
                    &mut self.neighbours[ni],
                    &mut self.counters,
                );
            }
        }
        for r in self.requests.iter() {
            if r.to == id {
                self.counters.seqno_requests_tx += 1;
                let t = Tlv::SeqnoRequest {
                    prefix: r.prefix,
                    seqno: r.seqno,
                    hop_count: r.hops,
                    router_id: r.router_id,
                };
                w.push(&t, id, out, &mut self.neighbours[ni], &mut self.counters);
            }
        }
        let interval = centis(s.update_interval);
        for i in 0..self.adverts.len() {
            let a = self.adverts[i];
            let triggered = a.due.is_some_and(|t| t <= now);
            if !dump && !triggered {
                continue;
            }
            let (router_id, seqno, metric) = match a.state {
                AdvertState::Local => (self.router_id, self.seqno, 0),
                AdvertState::Routed(c) if s.split_horizon && c.via == id => {
                    // Never back to where it goes; a retraction if it moved there.
                    if !triggered {
                        continue;
                    }
                    (c.router_id, c.seqno, INFINITY)
                }
                AdvertState::Routed(c) => (c.router_id, c.seqno, c.metric),
                AdvertState::Retracted => {
                    if !triggered {
                        continue;
                    }
                    (self.router_id, 0, INFINITY)
                }
            };
            if metric != INFINITY
                && self
                    .sources
                    .advertised(now, a.prefix, router_id, seqno, metric)
                    .is_err()
            {
                self.counters.sources_full += 1;
                continue;
            }
            let ae = match a.prefix {
                IpCidr::Ipv4(_) if s.v4_via_v6 => wire::ae::V4_VIA_V6,
                IpCidr::Ipv4(_) => wire::ae::IPV4,
                IpCidr::Ipv6(_) => wire::ae::IPV6,
            };
            let u = Update {
                prefix: Some(a.prefix),
                ae,
                interval,
                seqno,
                metric,
                router_id: Some(router_id),
                next_hop: None,
            };
            self.counters.updates_tx += 1;
            w.push_update(&u, id, out, &mut self.neighbours[ni], &mut self.counters);
        }
        w.flush(id, out, &mut self.neighbours[ni], &mut self.counters);
    }

    /// When [`Babel::poll`] next has something to do.
    pub fn poll_at(&self) -> Instant {
        let mut at = self.next_update.unwrap_or(Instant::ZERO);
        let mut min = |t: Instant| {
            if t < at {
                at = t;
            }
        };
        for n in self.neighbours.iter() {
            min(n.next_hello);
            if let Some(t) = n.hello_deadline() {
                min(t);
            }
            if let Some(t) = n.txcost_until() {
                min(t);
            }
            if n.dump_due || n.request_due {
                min(Instant::ZERO);
            }
        }
        for a in self.adverts.iter() {
            if let Some(t) = a.due {
                min(t);
            }
        }
        if let Some(t) = self.routes.next_expiry() {
            min(t);
        }
        if !self.requests.is_empty() || !self.acks.is_empty() {
            min(Instant::ZERO);
        }
        at
    }

    /// The selected routes.
    pub fn routes(&self) -> impl Iterator<Item = RouteStatus> + '_ {
        self.adverts.iter().filter_map(|a| match a.state {
            AdvertState::Routed(c) => Some(RouteStatus {
                prefix: a.prefix,
                via: c.via,
                metric: c.metric,
                router_id: c.router_id,
                seqno: c.seqno,
                next_hop: c.next_hop,
            }),
            _ => None,
        })
    }

    /// Every (prefix, neighbour) with a route announced to us that has not been retracted,
    /// selected or not: the feasible ways back to a source, for the forwarding plane's
    /// reverse-path check (feasible-path uRPF, RFC 3704 section 2.2.3), which must accept
    /// traffic that takes a different path than our own route back.
    pub fn announced(&self) -> impl Iterator<Item = (IpCidr, NeighbourId)> + '_ {
        self.routes
            .iter()
            .filter(|r| r.metric < INFINITY)
            .map(|r| (r.prefix, r.neighbour))
    }

    /// The selected route for exactly `prefix`.
    pub fn route(&self, prefix: &IpCidr) -> Option<RouteStatus> {
        let p = wire::normalize(*prefix);
        self.routes().find(|r| r.prefix == p)
    }

    /// Hands every route change since the last call to `f`, once per prefix (the newest
    /// state), for the forwarding plane to apply.
    pub fn drain_changes(&mut self, mut f: impl FnMut(RouteChange)) {
        for a in self.adverts.iter_mut() {
            if core::mem::take(&mut a.notify) {
                let (via, metric) = match a.state {
                    AdvertState::Routed(c) => (Some(c.via), c.metric),
                    _ => (None, INFINITY),
                };
                f(RouteChange {
                    prefix: a.prefix,
                    via,
                    metric,
                });
            }
        }
        self.adverts
            .retain(|a| !(a.state == AdvertState::Retracted && a.due.is_none() && !a.notify));
    }

    /// Bumped on every change of a selected route (a cheap "anything new?" check).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The neighbours' status.
    pub fn neighbours(&self, now: Instant) -> impl Iterator<Item = NeighbourStatus> + '_ {
        let s = self.settings;
        self.neighbours.iter().map(move |n| {
            let rxcost = n.rxcost(&s);
            let txcost = n.txcost();
            NeighbourStatus {
                id: n.id,
                address: n.address,
                reachable: rxcost != INFINITY && txcost != INFINITY,
                cost: n.cost(&s, now),
                rxcost,
                txcost,
                rtt: n.rtt(now),
                hello_history: n.history().0,
                tx_bytes: n.tx_bytes,
            }
        })
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sizes of the route table (every announced route), the source table and the
    /// selected/advertised table: all bounded by [`Settings`].
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        (self.routes.len(), self.sources.len(), self.adverts.len())
    }
}

/// Centiseconds of a duration, saturated.
fn centis(d: Duration) -> u16 {
    (d.total_millis() / 10).min(u64::from(u16::MAX)) as u16
}

/// Packs TLVs for one neighbour into packets of at most [`MAX_PACKET`] octets, adding a
/// Router-Id TLV before each Update whose router-id differs from the packet's current one.
struct Packet<'b> {
    buf: &'b mut [u8; MAX_PACKET],
    len: usize,
    router_id: Option<RouterId>,
}

impl<'b> Packet<'b> {
    fn new(buf: &'b mut [u8; MAX_PACKET]) -> Self {
        Self {
            buf,
            len: 0,
            router_id: None,
        }
    }

    fn writer(&mut self) -> Writer<'_> {
        let mut w = Writer::new(&mut self.buf[..]).expect("MAX_PACKET holds a header");
        // Re-open what was written so far (Writer keeps no state beyond the length).
        if self.len > wire::HEADER_LEN {
            w.skip(self.len - wire::HEADER_LEN);
        }
        w
    }

    fn try_push(&mut self, t: &Tlv) -> bool {
        let mut w = self.writer();
        if w.push(t).is_err() {
            return false;
        }
        self.len = w.finish();
        true
    }

    fn push(
        &mut self,
        t: &Tlv,
        id: NeighbourId,
        out: &mut impl FnMut(NeighbourId, &[u8]),
        n: &mut Neighbour,
        c: &mut Counters,
    ) {
        if !self.try_push(t) {
            self.flush(id, out, n, c);
            let _ = self.try_push(t);
        }
    }

    fn push_update(
        &mut self,
        u: &Update,
        id: NeighbourId,
        out: &mut impl FnMut(NeighbourId, &[u8]),
        n: &mut Neighbour,
        c: &mut Counters,
    ) {
        for _ in 0..2 {
            let need_id = u.metric != INFINITY && u.router_id != self.router_id;
            let saved = (self.len, self.router_id);
            let mut ok = true;
            if need_id {
                if let Some(rid) = u.router_id {
                    ok = self.try_push(&Tlv::RouterId(rid));
                    if ok {
                        self.router_id = Some(rid);
                    }
                }
            }
            if ok && self.try_push(&Tlv::Update(*u)) {
                return;
            }
            // Did not fit: undo a lone Router-Id and start a new packet.
            (self.len, self.router_id) = saved;
            self.flush(id, out, n, c);
        }
    }

    fn flush(
        &mut self,
        id: NeighbourId,
        out: &mut impl FnMut(NeighbourId, &[u8]),
        n: &mut Neighbour,
        c: &mut Counters,
    ) {
        if self.len > wire::HEADER_LEN {
            let body = (self.len - wire::HEADER_LEN) as u16;
            self.buf[2..4].copy_from_slice(&body.to_be_bytes());
            out(id, &self.buf[..self.len]);
            c.tx_packets += 1;
            c.tx_bytes += self.len as u64;
            n.tx_bytes += self.len as u64;
        }
        self.len = 0;
        self.router_id = None;
    }
}

#[cfg(test)]
mod tests;
