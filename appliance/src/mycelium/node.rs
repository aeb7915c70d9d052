//! The node's control plane: peers, Hello/IHU, and Mycelium's variant of Babel routing.
//!
//! What a node does, as Mycelium 0.7.10 does it:
//! - On a new peer: a Hello (to measure the link at once), the Update for our own /64
//!   (metric 0, our seqno and router-id), and a Route Request for every prefix we are
//!   looking for. Then a Hello every 20 s; every Hello is answered by an IHU carrying our
//!   cost of that link. Our /64 is announced to every peer every 300 s.
//! - Updates pass three filters (inside 400::/7; /64 or longer; the router-id's key owns
//!   the prefix, i.e. its address lies inside, unless it is a retraction) and the
//!   feasibility condition; an unfeasible update from the selected route's source asks
//!   for a newer seqno (a Seqno Request). Route selection takes the feasible route with
//!   the least `metric + link cost`, switching away from the current one only for an
//!   improvement of more than 10 or a direct route. A new, lost, re-sourced or much
//!   changed (by more than 10) selection is passed on to every peer but its next hop;
//!   losing a route sends a retraction.
//! - Route Requests for a prefix are answered with our /64 if it covers it, else with
//!   the selected route; unknown prefixes are searched for by passing the request on
//!   (generation + 1, at most 16) and marking the prefix queried for 15 s. A wildcard
//!   request gets every selected route. Seqno Requests are answered from a selected
//!   route that is newer or from another source, by bumping our own seqno (at most every
//!   4 s) when they name us, or passed one hop closer to the source.
//! - Routes expire after 3.5 announced intervals; a selected route that expires, or
//!   whose peer goes, is reselected at once (retracted if nothing else is feasible).
//!
//! Everything is bounded ([`Settings`]): peers, routes, sources, the queried prefixes and
//! the request caches; what does not fit is counted in [`Counters`].

use alloc::vec::Vec;
use core::net::Ipv6Addr;
use smoltcp::time::{Duration, Instant};

use super::counters::Counters;
use super::data::Pending;
use super::frame::{self, Frame, FrameError, HEADER_LEN, TYPE_CONTROL};
use super::keys::{global_subnet, PublicKey, SecretKey};
use super::peer::{Peer, PeerId};
use super::seal::Secrets;
use super::table::{RouteEntry, Routes, Sources};
use super::wire::{
    self, metric_add, seqno_newer, RouterId, Subnet, Tlv, TlvError, Update, INFINITY,
};

/// How long a retracted route is held before it is forgotten.
pub const RETRACTED_HOLD: Duration = Duration::from_secs(6);
/// How long a route query (a prefix we asked for) stays open.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// A route used for data that expires within this is asked for again.
pub const ALMOST_EXPIRED: Duration = Duration::from_secs(15);
/// Route requests are not passed on past this generation.
pub const MAX_RR_GENERATION: u8 = 16;
/// Our seqno is bumped at most this often.
pub const SEQNO_BUMP_TIMEOUT: Duration = Duration::from_secs(4);
/// Seqno requests for the same (router-id, prefix, seqno) are handled once per this.
pub const SEQNO_DEDUP: Duration = Duration::from_secs(60);
/// Hop count of the seqno requests we originate.
pub const SEQNO_REQUEST_HOPS: u8 = 64;
/// A selected route's metric change bigger than this is passed on at once.
pub const BIG_METRIC_CHANGE: u16 = 10;
/// A route replaces the selected one only if better by more than this.
pub const SIGNIFICANT_IMPROVEMENT: u16 = 10;
/// The interval carried in IHUs (the dead interval is what matters, see [`Settings`]).
pub const IHU_INTERVAL: Duration = Duration::from_secs(60);
/// How often the timers that need no precision (expiry of routes, caches, queries) run.
const SWEEP: Duration = Duration::from_secs(1);
/// Bound of the seqno request cache.
const MAX_SEQNO_CACHE: usize = 256;

/// Protocol timers and table bounds. [`Settings::default`] has Mycelium's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Hello interval towards each peer (20 s).
    pub hello_interval: Duration,
    /// A peer without an IHU for this long is dead (43 s: two Hellos and some latency).
    pub dead_after: Duration,
    /// How often our /64 is announced to every peer (300 s); receivers hold it 3.5 times
    /// as long.
    pub announce_interval: Duration,
    pub max_peers: usize,
    /// Route entries in all (one per prefix and peer).
    pub max_routes: usize,
    /// Feasibility distances.
    pub max_sources: usize,
    /// Cached ciphers (about 1 KiB each on the image).
    pub max_secrets: usize,
    /// Prefixes being looked for at once (also bounds the route request cache).
    pub max_queries: usize,
    /// Outbound packets held while their route is looked for.
    pub max_pending: usize,
    /// Octets held per peer for the caller to write.
    pub tx_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hello_interval: Duration::from_secs(20),
            dead_after: Duration::from_secs(43),
            announce_interval: Duration::from_secs(300),
            max_peers: 32,
            max_routes: 2048,
            max_sources: 4096,
            max_secrets: 64,
            max_queries: 256,
            max_pending: 16,
            tx_limit: 64 * 1024,
        }
    }
}

/// Why an API call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    TooManyPeers,
    DuplicatePeer,
}

/// Why `receive` gave up on a peer (it is removed; the caller closes the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PeerError {
    /// Not a peer of this node.
    UnknownPeer,
    /// The stream lost its framing.
    Framing(FrameError),
}

/// A route, for status and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteStatus {
    pub subnet: Subnet,
    pub peer: PeerId,
    /// The route's metric plus the link cost to the peer.
    pub metric: u16,
    /// As the peer advertised it.
    pub advertised: u16,
    pub seqno: u16,
    pub router_id: RouterId,
    pub selected: bool,
}

/// A peer, for status and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: PeerId,
    /// What routes through it add (measured plus fixed).
    pub cost: u16,
    /// The measured, smoothed part of `cost` (starts at 1000).
    pub link_cost: u16,
    pub last_rtt: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Octets waiting to be written.
    pub queued: usize,
}

/// A route request we sent or passed on, so it is not repeated to the same peers.
pub(super) struct RrSent {
    subnet: Subnet,
    generation: u8,
    to: Vec<PeerId>,
    at: Instant,
}

/// A seqno request we sent or passed on.
pub(super) struct SeqnoSent {
    key: (RouterId, Subnet, u16),
    /// Peers that asked us for it.
    sources: Vec<PeerId>,
    /// Peers we asked.
    targets: Vec<PeerId>,
    first: Instant,
    last: Instant,
}

/// The Mycelium node, sans-I/O: bytes from peers in, bytes for peers and IPv6 packets
/// out (see the room's docs).
pub struct Node<R> {
    pub(super) secret: SecretKey,
    pub(super) public: PublicKey,
    pub(super) address: Ipv6Addr,
    pub(super) subnet: Subnet,
    pub(super) router_id: RouterId,
    pub(super) seqno: u16,
    seqno_bumped: Option<Instant>,
    pub(super) settings: Settings,
    pub(super) rng: R,
    pub(super) peers: Vec<Peer>,
    pub(super) routes: Routes,
    sources: Sources,
    queries: Vec<(Subnet, Instant)>,
    rr_sent: Vec<RrSent>,
    seqno_sent: Vec<SeqnoSent>,
    pub(super) secrets: Secrets,
    pub(super) pending: Vec<Pending>,
    next_announce: Instant,
    next_sweep: Instant,
    dead: Vec<PeerId>,
    pub(super) counters: Counters,
    scratch: Vec<Subnet>,
}

impl<R: rand_core::CryptoRngCore> Node<R> {
    /// A node with this key; its router-id's random part is drawn from `rng`, which also
    /// makes every nonce.
    pub fn new(now: Instant, secret: SecretKey, settings: Settings, mut rng: R) -> Self {
        let public = secret.public_key();
        let mut random = [0u8; 6];
        rng.fill_bytes(&mut random);
        Self {
            address: public.address(),
            subnet: public.subnet(),
            router_id: RouterId::new(public.as_bytes(), random),
            secret,
            public,
            seqno: 0,
            seqno_bumped: None,
            settings,
            rng,
            peers: Vec::new(),
            routes: Routes::new(settings.max_routes),
            sources: Sources::new(settings.max_sources),
            queries: Vec::new(),
            rr_sent: Vec::new(),
            seqno_sent: Vec::new(),
            secrets: Secrets::new(settings.max_secrets),
            pending: Vec::new(),
            next_announce: now + settings.announce_interval,
            next_sweep: now + SWEEP,
            dead: Vec::new(),
            counters: Counters::default(),
            scratch: Vec::new(),
        }
    }

    /// Our overlay address.
    pub fn address(&self) -> Ipv6Addr {
        self.address
    }

    /// The /64 we own and announce.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub fn router_id(&self) -> RouterId {
        self.router_id
    }

    /// Our current seqno.
    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.secrets_evicted = self.secrets.evicted;
        c
    }

    /// (route entries, sources, cached ciphers, queried prefixes, pending packets).
    pub fn table_sizes(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.routes.len(),
            self.sources.len(),
            self.secrets.len(),
            self.queries.len(),
            self.pending.iter().filter(|p| p.used).count(),
        )
    }

    pub(super) fn peer_index(&self, id: PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    fn cost_of(&self, id: PeerId) -> u16 {
        self.peer_index(id)
            .map_or(INFINITY, |i| self.peers[i].cost())
    }

    /// Adds a connected peer; `static_cost` is the fixed cost of its connection kind
    /// ([`super::TCP_V4_COST`] or [`super::TCP_V6_COST`]).
    pub fn add_peer(&mut self, now: Instant, id: PeerId, static_cost: u16) -> Result<(), Error> {
        if self.peer_index(id).is_some() {
            return Err(Error::DuplicatePeer);
        }
        if self.peers.len() >= self.settings.max_peers {
            self.counters.peers_full += 1;
            return Err(Error::TooManyPeers);
        }
        self.peers.push(Peer::new(now, id, static_cost));
        let pi = self.peers.len() - 1;
        self.send_hello(now, pi);
        self.announce_own(now, pi);
        for i in 0..self.queries.len() {
            let subnet = self.queries[i].0;
            self.send_tlv(
                pi,
                &Tlv::RouteRequest {
                    prefix: Some(subnet),
                    generation: 0,
                },
            );
        }
        Ok(())
    }

    /// Removes a peer (its connection closed) and every route through it.
    pub fn remove_peer(&mut self, now: Instant, id: PeerId) {
        let Some(pi) = self.peer_index(id) else {
            return;
        };
        self.peers.remove(pi);
        let mut affected = core::mem::take(&mut self.scratch);
        affected.clear();
        self.routes.prefixes_where(|e| e.peer == id, &mut affected);
        for s in affected.iter() {
            let old = self.routes.selected(s).copied();
            self.routes.remove_where(s, |e| e.peer == id);
            self.reselect(now, *s, old, None);
        }
        self.scratch = affected;
    }

    /// Peers the node gave up on since the last call (no IHU for the dead interval):
    /// they are removed already; the caller closes their connections.
    pub fn drain_dead(&mut self, mut f: impl FnMut(PeerId)) {
        for id in self.dead.drain(..) {
            f(id);
        }
    }

    /// Octets waiting to be written to `id`'s connection.
    pub fn transmit(&self, id: PeerId) -> &[u8] {
        match self.peer_index(id) {
            Some(i) => self.peers[i].pending(),
            None => &[],
        }
    }

    /// The caller wrote the first `n` octets of [`Node::transmit`].
    pub fn transmitted(&mut self, id: PeerId, n: usize) {
        if let Some(i) = self.peer_index(id) {
            self.peers[i].consume(n);
        }
    }

    /// Bytes from `id`'s connection, any chunking; opened IPv6 packets for our /64 go to
    /// `deliver`. On `Err` the peer has been removed and the caller closes it.
    pub fn receive(
        &mut self,
        now: Instant,
        id: PeerId,
        bytes: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<(), PeerError> {
        self.counters.rx_bytes += bytes.len() as u64;
        let Some(pi) = self.peer_index(id) else {
            return Err(PeerError::UnknownPeer);
        };
        self.peers[pi].rx_bytes += bytes.len() as u64;
        let Some(mut framer) = self.peers[pi].framer.take() else {
            return Err(PeerError::UnknownPeer);
        };
        let mut rest = bytes;
        let result = loop {
            let n = framer.push(rest);
            rest = &rest[n..];
            let mut failed = None;
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Control(c))) => self.on_control(now, id, c),
                    Ok(Some(Frame::Data(d))) => self.on_data(now, id, d, &mut deliver),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                break Err(PeerError::Framing(e));
            }
            if rest.is_empty() {
                break Ok(());
            }
        };
        // Handlers never remove peers, so the index still names this one.
        self.peers[pi].framer = Some(framer);
        if self.pending.iter().any(|p| p.used && p.inbound.is_some()) {
            self.release_inbound(now, &mut deliver);
        }
        if result.is_err() {
            self.counters.peers_rejected += 1;
            self.remove_peer(now, id);
        }
        result
    }

    /// Runs the timers: Hellos, dead peers, announcements, expiry.
    pub fn poll(&mut self, now: Instant) {
        for pi in 0..self.peers.len() {
            if now >= self.peers[pi].next_hello {
                self.send_hello(now, pi);
            }
        }
        let dead_after = self.settings.dead_after;
        while let Some(p) = self.peers.iter().find(|p| now - p.last_ihu > dead_after) {
            let id = p.id;
            self.counters.peers_dead += 1;
            self.remove_peer(now, id);
            self.dead.push(id);
        }
        if now >= self.next_announce {
            self.next_announce = now + self.settings.announce_interval;
            for pi in 0..self.peers.len() {
                self.announce_own(now, pi);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP;
            self.sweep(now);
        }
    }

    /// When [`Node::poll`] next has something to do.
    pub fn poll_at(&self) -> Instant {
        let mut at = self.next_announce.min(self.next_sweep);
        for p in &self.peers {
            at = at
                .min(p.next_hello)
                .min(p.last_ihu + self.settings.dead_after);
        }
        at
    }

    fn sweep(&mut self, now: Instant) {
        self.sources.expire(now);
        self.rr_sent.retain(|r| now - r.at < QUERY_TIMEOUT);
        self.seqno_sent.retain(|s| now - s.first <= SEQNO_DEDUP);
        let queries = &mut self.queries;
        let pending = &mut self.pending;
        let counters = &mut self.counters;
        queries.retain(|(s, until)| {
            if *until > now {
                return true;
            }
            for p in pending.iter_mut().filter(|p| p.used && p.subnet == *s) {
                p.used = false;
                counters.queue_dropped += 1;
            }
            false
        });
        for p in self
            .pending
            .iter_mut()
            .filter(|p| p.used && p.deadline <= now)
        {
            p.used = false;
            self.counters.queue_dropped += 1;
        }
        // Routes: an expired selected route is retracted (and reselected), an expired
        // other one forgotten.
        let mut expired = core::mem::take(&mut self.scratch);
        expired.clear();
        self.routes
            .prefixes_where(|e| e.expires <= now, &mut expired);
        for s in expired.iter() {
            let old = self.routes.selected(s).copied();
            let gone = self.routes.remove_where(s, |e| {
                e.expires <= now && (!e.selected || e.metric == INFINITY)
            });
            self.counters.routes_expired += gone as u64;
            if let Some(list) = self.routes.list_mut(s) {
                for e in list.iter_mut().filter(|e| e.expires <= now) {
                    e.metric = INFINITY;
                    e.expires = now + RETRACTED_HOLD;
                    self.counters.routes_expired += 1;
                }
            }
            self.reselect(now, *s, old, None);
        }
        self.scratch = expired;
    }

    /// Every route entry.
    pub fn routes(&self) -> impl Iterator<Item = RouteStatus> + '_ {
        self.routes.iter().flat_map(move |(s, list)| {
            list.iter().map(move |e| RouteStatus {
                subnet: *s,
                peer: e.peer,
                metric: metric_add(e.metric, self.cost_of(e.peer)),
                advertised: e.metric,
                seqno: e.seqno,
                router_id: e.router_id,
                selected: e.selected,
            })
        })
    }

    /// The selected route of exactly `subnet`.
    pub fn route(&self, subnet: &Subnet) -> Option<RouteStatus> {
        self.routes().find(|r| r.selected && r.subnet == *subnet)
    }

    /// Prefixes being looked for.
    pub fn queried(&self) -> impl Iterator<Item = Subnet> + '_ {
        self.queries.iter().map(|(s, _)| *s)
    }

    pub fn peers(&self) -> impl Iterator<Item = PeerStatus> + '_ {
        self.peers.iter().map(|p| PeerStatus {
            id: p.id,
            cost: p.cost(),
            link_cost: p.link_cost(),
            last_rtt: p.last_rtt,
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
            queued: p.pending().len(),
        })
    }

    // --- sending control packets ---

    pub(super) fn send_tlv(&mut self, pi: usize, tlv: &Tlv) {
        let n = HEADER_LEN + wire::emitted_len(tlv);
        let limit = self.settings.tx_limit;
        let Some(buf) = self.peers[pi].reserve(n, limit) else {
            self.counters.tx_full += 1;
            return;
        };
        frame::put_header(buf, TYPE_CONTROL);
        if wire::emit(tlv, &mut buf[HEADER_LEN..]).is_none() {
            self.peers[pi].unreserve(n);
            return;
        }
        let c = &mut self.counters;
        match tlv {
            Tlv::Hello { .. } => c.hellos_tx += 1,
            Tlv::Ihu { .. } => c.ihus_tx += 1,
            Tlv::Update(_) => c.updates_tx += 1,
            Tlv::RouteRequest { .. } => c.route_requests_tx += 1,
            Tlv::SeqnoRequest { .. } => c.seqno_requests_tx += 1,
            Tlv::Unknown { .. } => {}
        }
    }

    fn send_hello(&mut self, now: Instant, pi: usize) {
        let hello = Tlv::Hello {
            unicast: true,
            seqno: self.peers[pi].hello_seqno,
            interval: centis(self.settings.hello_interval),
        };
        self.send_tlv(pi, &hello);
        self.peers[pi].hello_sent(now);
        self.peers[pi].next_hello = now + self.settings.hello_interval;
    }

    /// Our /64 to one peer.
    fn announce_own(&mut self, now: Instant, pi: usize) {
        let u = Update {
            interval: centis(self.settings.announce_interval),
            seqno: self.seqno,
            metric: 0,
            subnet: self.subnet,
            router_id: self.router_id,
        };
        // Our own prefix cannot loop through others: it goes out even if the source
        // table is full.
        let _ = self.sources.record(now, &u);
        self.send_tlv(pi, &Tlv::Update(u));
    }

    /// The Update we would send for `subnet` now: the selected route (metric plus the
    /// next hop's cost) or a retraction under our router-id; and the next hop, which is
    /// not told.
    fn current_update(&self, subnet: Subnet) -> (Update, Option<PeerId>) {
        match self.routes.selected(&subnet) {
            Some(e) => (
                Update {
                    interval: centis(self.settings.announce_interval),
                    seqno: e.seqno,
                    metric: metric_add(e.metric, self.cost_of(e.peer)),
                    subnet,
                    router_id: e.router_id,
                },
                Some(e.peer),
            ),
            None => (
                Update {
                    interval: centis(self.settings.announce_interval),
                    seqno: self.seqno,
                    metric: INFINITY,
                    subnet,
                    router_id: self.router_id,
                },
                None,
            ),
        }
    }

    /// Sends the current state of `subnet` to `to` (every peer if `None`) but its next hop.
    fn propagate(&mut self, now: Instant, subnet: Subnet, to: Option<&[PeerId]>) {
        let (u, next_hop) = self.current_update(subnet);
        if self.sources.record(now, &u).is_err() {
            self.counters.sources_full += 1;
            return;
        }
        for pi in 0..self.peers.len() {
            let id = self.peers[pi].id;
            if Some(id) == next_hop || to.is_some_and(|t| !t.contains(&id)) {
                continue;
            }
            self.send_tlv(pi, &Tlv::Update(u));
        }
    }

    /// Asks every peer for a route to `subnet` (once per query timeout per peer).
    pub(super) fn request_route(&mut self, now: Instant, subnet: Subnet) {
        self.mark_queried(now, subnet);
        let already: Vec<PeerId> = match self.rr_sent.iter().find(|r| r.subnet == subnet) {
            Some(r) if r.generation == 0 => r.to.clone(),
            _ => Vec::new(),
        };
        let req = Tlv::RouteRequest {
            prefix: Some(subnet),
            generation: 0,
        };
        for pi in 0..self.peers.len() {
            if !already.contains(&self.peers[pi].id) {
                self.send_tlv(pi, &req);
            }
        }
        self.note_rr(now, subnet, 0);
    }

    fn note_rr(&mut self, now: Instant, subnet: Subnet, generation: u8) {
        let to: Vec<PeerId> = self.peers.iter().map(|p| p.id).collect();
        self.rr_sent.retain(|r| r.subnet != subnet);
        if self.rr_sent.len() >= self.settings.max_queries {
            self.rr_sent.remove(0);
        }
        self.rr_sent.push(RrSent {
            subnet,
            generation,
            to,
            at: now,
        });
    }

    fn mark_queried(&mut self, now: Instant, subnet: Subnet) {
        let until = now + QUERY_TIMEOUT;
        if let Some(q) = self.queries.iter_mut().find(|(s, _)| *s == subnet) {
            q.1 = until;
        } else if self.queries.len() < self.settings.max_queries {
            self.queries.push((subnet, until));
        } else {
            self.counters.queries_full += 1;
        }
    }

    fn is_queried(&self, subnet: &Subnet) -> bool {
        self.queries.iter().any(|(s, _)| s == subnet)
    }

    /// Asks for a newer seqno of (`subnet`, `router_id`): from `to`, or from every peer
    /// with a route to it (every peer, if none has one and the request is ours).
    pub(super) fn request_seqno(
        &mut self,
        now: Instant,
        subnet: Subnet,
        router_id: RouterId,
        to: Option<PeerId>,
        origin: Option<PeerId>,
    ) {
        let seqno = self
            .sources
            .get(&subnet, &router_id)
            .map_or(0, |(s, _)| s)
            .wrapping_add(1);
        let key = (router_id, subnet, seqno);
        let cached = self.seqno_sent.iter().find(|s| s.key == key);
        let targets: Vec<PeerId> = match to {
            Some(t) => alloc::vec![t],
            None => {
                let sent: &[PeerId] = match cached {
                    Some(c) if now - c.last < SEQNO_BUMP_TIMEOUT => &c.targets,
                    _ => &[],
                };
                match self.routes.list(&subnet) {
                    None if origin.is_none() => self.peers.iter().map(|p| p.id).collect(),
                    None => Vec::new(),
                    Some(list) => list
                        .iter()
                        .map(|e| e.peer)
                        .filter(|p| !sent.contains(p))
                        .collect(),
                }
            }
        };
        let asked_us: Vec<PeerId> = cached.map(|c| c.sources.clone()).unwrap_or_default();
        let req = Tlv::SeqnoRequest {
            seqno,
            hop_count: SEQNO_REQUEST_HOPS,
            router_id,
            prefix: subnet,
        };
        for t in targets {
            if asked_us.contains(&t) {
                continue;
            }
            let Some(pi) = self.peer_index(t) else {
                continue;
            };
            self.send_tlv(pi, &req);
            self.note_seqno(now, key, t, origin);
        }
    }

    fn note_seqno(
        &mut self,
        now: Instant,
        key: (RouterId, Subnet, u16),
        target: PeerId,
        source: Option<PeerId>,
    ) {
        let i = match self.seqno_sent.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                if self.seqno_sent.len() >= MAX_SEQNO_CACHE {
                    self.seqno_sent.remove(0);
                }
                self.seqno_sent.push(SeqnoSent {
                    key,
                    sources: Vec::new(),
                    targets: Vec::new(),
                    first: now,
                    last: now,
                });
                self.seqno_sent.len() - 1
            }
        };
        let e = &mut self.seqno_sent[i];
        e.last = now;
        if !e.targets.contains(&target) {
            e.targets.push(target);
        }
        if let Some(s) = source {
            if !e.sources.contains(&s) {
                e.sources.push(s);
            }
        }
    }

    // --- receiving control packets ---

    fn on_control(&mut self, now: Instant, from: PeerId, packet: &[u8]) {
        self.counters.control_rx += 1;
        let tlv = match wire::parse(packet) {
            Ok(t) => t,
            Err(TlvError::Malformed) => return self.counters.malformed_tlvs += 1,
            Err(TlvError::UnsupportedAe) => return self.counters.unsupported_ae += 1,
            Err(TlvError::UnknownAe) => return self.counters.unknown_ae += 1,
        };
        let Some(pi) = self.peer_index(from) else {
            return;
        };
        match tlv {
            Tlv::Hello { .. } => {
                self.counters.hellos_rx += 1;
                let ihu = Tlv::Ihu {
                    rx_cost: self.peers[pi].cost(),
                    interval: centis(IHU_INTERVAL),
                    address: None,
                };
                self.send_tlv(pi, &ihu);
            }
            Tlv::Ihu { .. } => {
                self.counters.ihus_rx += 1;
                if self.peers[pi].ihu(now) {
                    self.counters.rtt_samples += 1;
                }
            }
            Tlv::Update(u) => self.on_update(now, from, u),
            Tlv::RouteRequest { prefix, generation } => {
                self.on_route_request(now, pi, prefix, generation)
            }
            Tlv::SeqnoRequest {
                seqno,
                hop_count,
                router_id,
                prefix,
            } => self.on_seqno_request(now, from, seqno, hop_count, router_id, prefix),
            Tlv::Unknown { .. } => self.counters.unknown_tlvs += 1,
        }
    }

    fn feasible_entry(&self, subnet: &Subnet, e: &RouteEntry) -> bool {
        self.sources
            .feasible(subnet, &e.router_id, e.seqno, e.metric)
    }

    fn on_update(&mut self, now: Instant, from: PeerId, u: Update) {
        self.counters.updates_rx += 1;
        let owner = PublicKey(u.router_id.public_key()).address();
        if !global_subnet().contains_subnet(&u.subnet)
            || u.subnet.prefix_len() < 64
            || (u.metric != INFINITY && !u.subnet.contains(owner))
        {
            self.counters.updates_filtered += 1;
            return;
        }
        if u.subnet == self.subnet {
            self.counters.updates_own += 1;
            return;
        }
        let subnet = u.subnet;
        let interested: Option<Vec<PeerId>> = self
            .seqno_sent
            .iter()
            .find(|s| s.key == (u.router_id, subnet, u.seqno))
            .map(|s| s.sources.clone());
        let feasible = self
            .sources
            .feasible(&subnet, &u.router_id, u.seqno, u.metric);
        if !feasible {
            self.counters.updates_unfeasible += 1;
        }
        let hold = if u.metric == INFINITY {
            RETRACTED_HOLD
        } else {
            Duration::from_millis(u64::from(u.interval) * 10 * 7 / 2)
        };
        let old = self.routes.selected(&subnet).copied();
        let has_selected = old.is_some();
        let existing = self
            .routes
            .list(&subnet)
            .and_then(|l| l.iter().position(|e| e.peer == from));
        match existing {
            None => {
                if u.metric == INFINITY || !feasible {
                    if !feasible && !has_selected {
                        self.request_seqno(now, subnet, u.router_id, Some(from), None);
                    }
                    return;
                }
                let entry = RouteEntry {
                    peer: from,
                    router_id: u.router_id,
                    metric: u.metric,
                    seqno: u.seqno,
                    selected: false,
                    expires: now + hold,
                };
                if self.routes.insert(subnet, entry).is_err() {
                    self.counters.routes_full += 1;
                    return;
                }
            }
            Some(i) => {
                let Some(list) = self.routes.list_mut(&subnet) else {
                    return;
                };
                let e = &mut list[i];
                if e.selected && !feasible && e.router_id == u.router_id {
                    self.request_seqno(now, subnet, u.router_id, Some(from), None);
                    return;
                }
                if e.metric == INFINITY && u.metric == INFINITY {
                    return;
                }
                e.seqno = u.seqno;
                e.metric = u.metric;
                e.router_id = u.router_id;
                if feasible {
                    e.expires = now + hold;
                }
                if !feasible {
                    if !e.selected {
                        return;
                    }
                    e.selected = false;
                }
            }
        }
        self.reselect(now, subnet, old, interested);
    }

    /// The route selection for `subnet`: the index of the best route, keeping the
    /// current one unless the best is significantly better (or direct).
    fn best_route(&self, subnet: &Subnet) -> Option<usize> {
        let list = self.routes.list(subnet)?;
        let total = |e: &RouteEntry| metric_add(e.metric, self.cost_of(e.peer));
        let valid = |e: &RouteEntry| {
            e.metric != INFINITY
                && self.feasible_entry(subnet, e)
                && self.cost_of(e.peer) != INFINITY
        };
        let best = list
            .iter()
            .enumerate()
            .filter(|(_, e)| valid(e))
            .min_by_key(|(_, e)| total(e))
            .map(|(i, _)| i)?;
        if let Some(cur) = list.iter().position(|e| e.selected) {
            let c = &list[cur];
            if cur != best
                && valid(c)
                && !(total(&list[best]) < total(c).saturating_sub(SIGNIFICANT_IMPROVEMENT)
                    || list[best].metric == 0)
            {
                return Some(cur);
            }
        }
        Some(best)
    }

    /// Reselects `subnet` after its routes changed (`old`: the selected route before) and
    /// tells the peers if the outcome matters to them; `interested`: peers that asked
    /// for this update through a seqno request.
    fn reselect(
        &mut self,
        now: Instant,
        subnet: Subnet,
        old: Option<RouteEntry>,
        interested: Option<Vec<PeerId>>,
    ) {
        let best = self.best_route(&subnet);
        let mut new = None;
        if let Some(list) = self.routes.list_mut(&subnet) {
            for (i, e) in list.iter_mut().enumerate() {
                e.selected = Some(i) == best;
                if e.selected {
                    new = Some(*e);
                }
            }
        }
        let trigger = match (old, new) {
            (Some(o), Some(n)) => {
                o.router_id != n.router_id
                    || o.metric.abs_diff(n.metric) > BIG_METRIC_CHANGE
                    || o.metric == INFINITY
            }
            (None, Some(_)) => true,
            (Some(o), None) => {
                self.request_seqno(now, subnet, o.router_id, None, None);
                true
            }
            (None, None) => false,
        };
        if trigger {
            self.propagate(now, subnet, None);
        } else if let Some(peers) = interested {
            self.propagate(now, subnet, Some(&peers));
        }
        if new.is_some() && old.is_none() {
            self.queries.retain(|(s, _)| *s != subnet);
            self.flush_pending(now, subnet);
        }
    }

    fn on_route_request(
        &mut self,
        now: Instant,
        pi: usize,
        prefix: Option<Subnet>,
        generation: u8,
    ) {
        self.counters.route_requests_rx += 1;
        let from = self.peers[pi].id;
        let Some(p) = prefix else {
            // The whole table: every selected route not through the asker, and ours.
            let mut subnets = core::mem::take(&mut self.scratch);
            subnets.clear();
            self.routes
                .prefixes_where(|e| e.selected && e.peer != from, &mut subnets);
            for s in subnets.iter() {
                let (u, _) = self.current_update(*s);
                if self.sources.record(now, &u).is_ok() {
                    self.send_tlv(pi, &Tlv::Update(u));
                } else {
                    self.counters.sources_full += 1;
                }
            }
            self.scratch = subnets;
            self.announce_own(now, pi);
            return;
        };
        if self.subnet.contains_subnet(&p) {
            return self.announce_own(now, pi);
        }
        if !global_subnet().contains_subnet(&p) {
            self.counters.route_requests_dropped += 1;
            return;
        }
        if let Some(list) = self.routes.list(&p) {
            let Some(sel) = list.iter().find(|e| e.selected).copied() else {
                return;
            };
            if sel.peer == from {
                return;
            }
            let (u, _) = self.current_update(p);
            if self.sources.record(now, &u).is_ok() {
                self.send_tlv(pi, &Tlv::Update(u));
            } else {
                self.counters.sources_full += 1;
            }
            return;
        }
        if self.is_queried(&p) {
            return;
        }
        // Unknown: search for it on behalf of the asker.
        if generation.saturating_add(1) >= MAX_RR_GENERATION {
            self.counters.route_requests_dropped += 1;
            return;
        }
        let generation = generation + 1;
        self.mark_queried(now, p);
        let already: Vec<PeerId> = match self.rr_sent.iter().find(|r| r.subnet == p) {
            Some(r) if generation >= r.generation => r.to.clone(),
            _ => Vec::new(),
        };
        let req = Tlv::RouteRequest {
            prefix: Some(p),
            generation,
        };
        for i in 0..self.peers.len() {
            let id = self.peers[i].id;
            if id != from && !already.contains(&id) {
                self.send_tlv(i, &req);
            }
        }
        self.counters.route_requests_forwarded += 1;
        self.note_rr(now, p, generation);
    }

    fn on_seqno_request(
        &mut self,
        now: Instant,
        from: PeerId,
        seqno: u16,
        hop_count: u8,
        router_id: RouterId,
        prefix: Subnet,
    ) {
        self.counters.seqno_requests_rx += 1;
        let key = (router_id, prefix, seqno);
        if self
            .seqno_sent
            .iter()
            .any(|s| s.key == key && now - s.last <= SEQNO_DEDUP)
        {
            self.counters.seqno_requests_unhandled += 1;
            return;
        }
        if let Some(sel) = self.routes.selected(&prefix).copied() {
            if sel.metric != INFINITY
                && (sel.router_id != router_id || !seqno_newer(seqno, sel.seqno))
            {
                // We know a route as new as asked for, or one from another source.
                let (u, _) = self.current_update(prefix);
                if self.sources.record(now, &u).is_ok() {
                    if let Some(pi) = self.peer_index(from) {
                        self.send_tlv(pi, &Tlv::Update(u));
                    }
                } else {
                    self.counters.sources_full += 1;
                }
                return;
            }
        }
        if router_id == self.router_id && prefix == self.subnet {
            if seqno_newer(seqno, self.seqno)
                && self
                    .seqno_bumped
                    .is_none_or(|t| now - t >= SEQNO_BUMP_TIMEOUT)
            {
                self.seqno = self.seqno.wrapping_add(1);
                self.seqno_bumped = Some(now);
                self.counters.seqno_bumps += 1;
                for pi in 0..self.peers.len() {
                    self.announce_own(now, pi);
                }
            } else {
                self.counters.seqno_requests_unhandled += 1;
            }
            return;
        }
        if hop_count < 2 || router_id == self.router_id {
            self.counters.seqno_requests_unhandled += 1;
            return;
        }
        // Pass it one hop closer to the source: a feasible route first, then any.
        let visited: Vec<PeerId> = self
            .seqno_sent
            .iter()
            .find(|s| s.key == key && now - s.last < SEQNO_BUMP_TIMEOUT)
            .map(|s| s.targets.clone())
            .unwrap_or_default();
        let next = self.routes.list(&prefix).and_then(|list| {
            let usable = |e: &&RouteEntry| {
                !visited.contains(&e.peer)
                    && e.peer != from
                    && e.metric != INFINITY
                    && self.peer_index(e.peer).is_some()
            };
            list.iter()
                .filter(usable)
                .find(|e| self.feasible_entry(&prefix, e))
                .or_else(|| list.iter().find(usable))
                .map(|e| e.peer)
        });
        let Some(next) = next else {
            self.counters.seqno_requests_unhandled += 1;
            return;
        };
        if let Some(pi) = self.peer_index(next) {
            self.send_tlv(
                pi,
                &Tlv::SeqnoRequest {
                    seqno,
                    hop_count: hop_count - 1,
                    router_id,
                    prefix,
                },
            );
            self.note_seqno(now, key, next, Some(from));
            self.counters.seqno_requests_forwarded += 1;
        }
    }
}

/// A duration in centiseconds, as Babel intervals are carried (saturating).
pub fn centis(d: Duration) -> u16 {
    (d.total_millis() / 10).min(u64::from(u16::MAX)) as u16
}
