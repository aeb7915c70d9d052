//! The node's data path: sealing our IPv6 packets, opening those for our /64, and
//! forwarding the rest.
//!
//! A data packet carries its outer source and destination (the inner packet's), a hop
//! limit, and the sealed body (see `seal`). Each node that handles it, the first one
//! included, refuses a hop limit below 2 and takes one off; the node owning the
//! destination's /64 opens it with the key of the route to the *source's* /64 (the
//! router-id's public key: no route, no key) and writes the remaining hop limit into the
//! inner IPv6 header. Mycelium answers hop-limit and no-route failures with out-of-band
//! ICMP messages; this node drops and counts them instead (the caller, which owns the
//! forwarding plane, makes any ICMP error from [`SendError`]). Like Mycelium, it holds
//! (bounded, [`super::Settings::max_pending`], 15 s) the packets that wait for a route
//! it asked for: its own outbound ones, and sealed ones for us from a source whose route
//! (hence key) it does not have yet; a relayed packet without a route is dropped.
//!
//! What bounds the damage of Mycelium's weaknesses here: an opened packet is delivered
//! only if its inner source and destination are the outer ones (a node cannot speak for
//! another's addresses), a low-order remote key is refused, and our own packets must come
//! from our /64.

use alloc::vec::Vec;
use core::net::Ipv6Addr;
use smoltcp::time::Instant;

use super::frame::{self, DataFrame, DATA_HEADER_LEN, MAX_DATA_BODY};
use super::keys::{global_subnet, PublicKey};
use super::node::{Node, ALMOST_EXPIRED, QUERY_TIMEOUT};
use super::peer::PeerId;
use super::seal::{INNER_HEADER_LEN, KIND_IP, NONCE_LEN, OVERHEAD};
use super::wire::Subnet;

/// The largest IPv6 packet [`Node::send`] takes (what fits [`MAX_DATA_BODY`]).
pub const MAX_IP_PACKET: usize = MAX_DATA_BODY - OVERHEAD;
/// The MTU Mycelium nodes give their TUN (and so the largest packet they send us).
pub const MTU: usize = 1400;

/// Why [`Node::send`] did not take a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendError {
    /// Not an IPv6 packet, or its payload length disagrees with its size.
    Malformed,
    /// Over [`MAX_IP_PACKET`].
    TooLarge,
    /// The source is not in our /64 (we would vouch for someone else's packet).
    NotOurSource,
    /// The destination is in our own /64: the caller delivers it locally.
    Local,
    /// The destination is outside 400::/7.
    NotOverlay,
    /// A hop limit below 2 ("time exceeded").
    HopLimit,
    /// No route, and the queue for packets waiting for one is full ("no route").
    NoRoute,
    /// The destination's key is a low-order point.
    WeakKey,
    /// The next hop's send buffer is full.
    TxFull,
}

/// What [`Node::send`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sealed and queued for the next hop.
    Sealed(PeerId),
    /// Held until the route it asked for arrives (or the query times out).
    Queued,
}

/// A packet waiting for a route (slots are reused, never freed): one of ours to send,
/// or a sealed one for us from a source whose key we do not have yet.
pub(super) struct Pending {
    /// The /64 whose route it waits for.
    pub subnet: Subnet,
    pub deadline: Instant,
    pub used: bool,
    /// For an inbound packet: its hop limit (already decremented), source, destination.
    pub inbound: Option<(u8, Ipv6Addr, Ipv6Addr)>,
    /// The IPv6 packet, or the sealed body.
    pub packet: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opened {
    Delivered,
    Dropped,
    NoKey,
}

/// The addresses and hop limit of a well-formed IPv6 packet.
fn ipv6_fields(p: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8)> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    if usize::from(u16::from_be_bytes([p[4], p[5]])) != p.len() - 40 {
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    dst.copy_from_slice(&p[24..40]);
    Some((Ipv6Addr::from(src), Ipv6Addr::from(dst), p[7]))
}

impl<R: rand_core::CryptoRngCore> Node<R> {
    /// Seals an IPv6 packet from our /64 to a 400::/7 address and queues it for the
    /// selected route's peer; without a route, asks for one and holds the packet.
    pub fn send(&mut self, now: Instant, packet: &[u8]) -> Result<Sent, SendError> {
        if packet.len() > MAX_IP_PACKET {
            return Err(SendError::TooLarge);
        }
        let (src, dst, hop_limit) = ipv6_fields(packet).ok_or(SendError::Malformed)?;
        if !self.subnet.contains(src) {
            return Err(SendError::NotOurSource);
        }
        if self.subnet.contains(dst) {
            return Err(SendError::Local);
        }
        if !global_subnet().contains(dst) {
            self.counters.not_overlay += 1;
            return Err(SendError::NotOverlay);
        }
        if hop_limit < 2 {
            self.counters.hop_limit += 1;
            return Err(SendError::HopLimit);
        }
        match self.next_hop(now, dst) {
            Some((peer, key)) => self.seal_to(now, peer, &key, packet, src, dst, hop_limit - 1),
            None => self.hold(now, dst, packet),
        }
    }

    /// The selected route's peer and key for `dst`, asking for a route (or a newer
    /// seqno) when there is none and refreshing one that is about to expire.
    fn next_hop(&mut self, now: Instant, dst: Ipv6Addr) -> Option<(PeerId, PublicKey)> {
        let found = self.routes.longest_match(dst).map(|(s, list)| {
            (
                s,
                list.iter().find(|e| e.selected).copied(),
                list.first().map(|e| e.router_id),
            )
        });
        match found {
            Some((_, Some(sel), _)) => {
                if sel.expires < now + ALMOST_EXPIRED {
                    self.request_route(now, Subnet::slash64(dst));
                }
                Some((sel.peer, PublicKey(sel.router_id.public_key())))
            }
            Some((s, None, Some(rid))) => {
                // Only unselected (unfeasible) routes: ask their source for a new seqno.
                self.request_seqno(now, s, rid, None, None);
                None
            }
            _ => {
                self.request_route(now, Subnet::slash64(dst));
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn seal_to(
        &mut self,
        now: Instant,
        peer: PeerId,
        key: &PublicKey,
        packet: &[u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
    ) -> Result<Sent, SendError> {
        let Some(pi) = self.peer_index(peer) else {
            self.counters.no_route += 1;
            return Err(SendError::NoRoute);
        };
        let cipher = match self.secrets.get(now, &self.secret, key) {
            Ok(c) => c,
            Err(_) => {
                self.counters.weak_key += 1;
                return Err(SendError::WeakKey);
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let body_len = packet.len() + OVERHEAD;
        let n = DATA_HEADER_LEN + body_len;
        let Some(buf) = self.peers[pi].reserve(n, self.settings.tx_limit) else {
            self.counters.tx_full += 1;
            return Err(SendError::TxFull);
        };
        frame::put_data_header(buf, body_len as u16, hop_limit, src, dst);
        let body = &mut buf[DATA_HEADER_LEN..];
        body[INNER_HEADER_LEN..INNER_HEADER_LEN + packet.len()].copy_from_slice(packet);
        if cipher.seal(KIND_IP, nonce, body).is_none() {
            self.peers[pi].unreserve(n);
            return Err(SendError::TooLarge);
        }
        self.counters.sealed += 1;
        Ok(Sent::Sealed(peer))
    }

    /// Holds an outbound packet until a route for `dst`'s /64 arrives.
    fn hold(&mut self, now: Instant, dst: Ipv6Addr, packet: &[u8]) -> Result<Sent, SendError> {
        let Some(p) = self.hold_slot(now, dst) else {
            self.counters.queue_dropped += 1;
            return Err(SendError::NoRoute);
        };
        p.packet.extend_from_slice(packet);
        Ok(Sent::Queued)
    }

    /// A free slot, emptied, claimed for a packet waiting for `addr`'s /64.
    fn hold_slot(&mut self, now: Instant, addr: Ipv6Addr) -> Option<&mut Pending> {
        let slot = match self.pending.iter().position(|p| !p.used) {
            Some(i) => i,
            None if self.pending.len() < self.settings.max_pending => {
                self.pending.push(Pending {
                    subnet: Subnet::slash64(addr),
                    deadline: now,
                    used: false,
                    inbound: None,
                    packet: Vec::new(),
                });
                self.pending.len() - 1
            }
            None => return None,
        };
        self.counters.queued += 1;
        let p = &mut self.pending[slot];
        p.subnet = Subnet::slash64(addr);
        p.deadline = now + QUERY_TIMEOUT;
        p.used = true;
        p.inbound = None;
        p.packet.clear();
        Some(p)
    }

    /// Sends the held packets a new route to `subnet` covers.
    pub(super) fn flush_pending(&mut self, now: Instant, subnet: Subnet) {
        for i in 0..self.pending.len() {
            let p = &self.pending[i];
            if !p.used || p.inbound.is_some() {
                continue;
            }
            let Some((src, dst, hop)) = ipv6_fields(&p.packet) else {
                self.pending[i].used = false;
                continue;
            };
            if !subnet.contains(dst) {
                continue;
            }
            self.pending[i].used = false;
            let packet = core::mem::take(&mut self.pending[i].packet);
            let sent = match self.next_hop(now, dst) {
                Some((peer, key)) => self.seal_to(now, peer, &key, &packet, src, dst, hop - 1),
                None => Err(SendError::NoRoute),
            };
            if sent.is_err() {
                self.counters.queue_dropped += 1;
            }
            self.pending[i].packet = packet;
        }
    }

    /// One data packet from peer `from`.
    pub(super) fn on_data(
        &mut self,
        now: Instant,
        from: PeerId,
        d: DataFrame<'_>,
        deliver: &mut impl FnMut(&[u8]),
    ) {
        self.counters.data_rx += 1;
        if d.hop_limit < 2 {
            self.counters.hop_limit += 1;
            return;
        }
        let hop_limit = d.hop_limit - 1;
        if !self.subnet.contains(d.dst) {
            return self.forward(now, from, d, hop_limit);
        }
        if self.open(now, hop_limit, d.src, d.dst, d.body, deliver) == Opened::NoKey {
            // Held until the route to its source (and so its key) comes in.
            self.counters.no_key += 1;
            self.request_route(now, Subnet::slash64(d.src));
            let held = self.hold_slot(now, d.src).map(|p| {
                p.inbound = Some((hop_limit, d.src, d.dst));
                p.packet.extend_from_slice(d.body);
            });
            if held.is_none() {
                self.counters.queue_dropped += 1;
            }
        }
    }

    /// Opens a packet for our /64 with the key of the route to its source and delivers
    /// it.
    fn open(
        &mut self,
        now: Instant,
        hop_limit: u8,
        outer_src: Ipv6Addr,
        outer_dst: Ipv6Addr,
        body: &mut [u8],
        deliver: &mut impl FnMut(&[u8]),
    ) -> Opened {
        let rid = self
            .routes
            .longest_match(outer_src)
            .and_then(|(_, list)| list.iter().find(|e| e.selected).or(list.first()))
            .map(|e| e.router_id);
        let Some(rid) = rid else {
            return Opened::NoKey;
        };
        let cipher = match self
            .secrets
            .get(now, &self.secret, &PublicKey(rid.public_key()))
        {
            Ok(c) => c,
            Err(_) => {
                self.counters.weak_key += 1;
                return Opened::Dropped;
            }
        };
        let Some((kind, inner)) = cipher.open(body) else {
            self.counters.decrypt_failed += 1;
            return Opened::Dropped;
        };
        if kind != KIND_IP {
            // Message-API fragments and out-of-band ICMPs are not supported here.
            self.counters.unsupported_inner += 1;
            return Opened::Dropped;
        }
        let Some((src, dst, _)) = ipv6_fields(inner) else {
            self.counters.bad_inner += 1;
            return Opened::Dropped;
        };
        if src != outer_src || dst != outer_dst {
            self.counters.spoofed += 1;
            return Opened::Dropped;
        }
        inner[7] = hop_limit;
        self.counters.delivered += 1;
        deliver(inner);
        Opened::Delivered
    }

    /// Opens the held inbound packets whose source has a route now.
    pub(super) fn release_inbound(&mut self, now: Instant, deliver: &mut impl FnMut(&[u8])) {
        for i in 0..self.pending.len() {
            let p = &self.pending[i];
            let Some((hop_limit, src, dst)) = p.inbound.filter(|_| p.used) else {
                continue;
            };
            if self.routes.longest_match(src).is_none() {
                continue;
            }
            self.pending[i].used = false;
            let mut body = core::mem::take(&mut self.pending[i].packet);
            if self.open(now, hop_limit, src, dst, &mut body, deliver) == Opened::NoKey {
                self.counters.queue_dropped += 1;
            }
            self.pending[i].packet = body;
        }
    }

    /// Passes a data packet for someone else on to the selected route's peer.
    fn forward(&mut self, now: Instant, from: PeerId, d: DataFrame<'_>, hop_limit: u8) {
        if !global_subnet().contains(d.dst) {
            self.counters.not_overlay += 1;
            return;
        }
        let sel = self
            .routes
            .longest_match(d.dst)
            .and_then(|(_, list)| list.iter().find(|e| e.selected).copied());
        let Some(sel) = sel else {
            self.counters.no_route += 1;
            if self.routes.longest_match(d.dst).is_none() {
                self.request_route(now, Subnet::slash64(d.dst));
            }
            return;
        };
        if sel.peer == from {
            self.counters.loops += 1;
            return;
        }
        if sel.expires < now + ALMOST_EXPIRED {
            self.request_route(now, Subnet::slash64(d.dst));
        }
        let Some(pi) = self.peer_index(sel.peer) else {
            self.counters.no_route += 1;
            return;
        };
        let n = DATA_HEADER_LEN + d.body.len();
        let Some(buf) = self.peers[pi].reserve(n, self.settings.tx_limit) else {
            self.counters.tx_full += 1;
            return;
        };
        frame::put_data_header(buf, d.body.len() as u16, hop_limit, d.src, d.dst);
        buf[DATA_HEADER_LEN..].copy_from_slice(d.body);
        self.counters.forwarded += 1;
    }
}
