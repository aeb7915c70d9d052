//! [`Device`]: the multi-peer tunnel interface (whitepaper section 2 and 5).
//!
//! It owns our static key and a bounded table of peers (allocated at creation). Incoming
//! initiations are matched to a peer by the static key they decrypt to; responses, cookie
//! replies and data by the receiver index, whose upper 24 bits name the peer's slot
//! (XORed with a random per-device salt). Outbound packets pick their peer by longest-prefix
//! match of the destination in the AllowedIPs table, and a decrypted packet whose source is
//! not in its own peer's AllowedIPs is dropped and counted.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;

use super::admission::{admit, Admission};
use super::allowed_ips::{AllowedIp, AllowedIps, AllowedIpsError};
use super::cookie::CookieChecker;
use super::counters::{Counters, DropReason};
use super::handshake::{consume_initiation_anon, initial_hash};
use super::inner::InnerHeader;
use super::keys::{PrivateKey, PublicKey};
use super::messages::{Message, COOKIE_REPLY_LEN};
use super::peer::{Now, Peer, PeerConfig, TunnelResult};
use super::rate_limiter::{HandshakeLimiter, DEFAULT_HANDSHAKES_PER_SECOND};

/// Hard upper bound on peers per device.
pub const MAX_PEERS: usize = 4096;

/// Sizes and thresholds of a [`Device`].
#[derive(Clone, Copy, Debug)]
pub struct DeviceConfig {
    /// Peer slots (at most [`MAX_PEERS`]).
    pub max_peers: usize,
    /// AllowedIPs prefixes across all peers.
    pub max_allowed_ips: usize,
    /// Handshake messages per second above which the device is under load.
    pub handshakes_per_second: u32,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            max_peers: 64,
            max_allowed_ips: 1024,
            handshakes_per_second: DEFAULT_HANDSHAKES_PER_SECOND,
        }
    }
}

/// A peer's slot in its device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerId(pub u16);

/// Why a configuration change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// All peer slots are taken.
    TooManyPeers,
    /// A peer with this public key exists already.
    DuplicatePeer,
    /// The peer is our own public key.
    OwnKey,
    /// No peer in this slot.
    NoSuchPeer,
    /// The AllowedIPs table refused a prefix.
    AllowedIps(AllowedIpsError),
}

/// What the caller should do after a [`Device`] call.
#[derive(Debug)]
pub enum DeviceResult<'a> {
    /// Nothing to send or deliver.
    Done,
    /// Send `datagram` over UDP to `to` (`peer` is `None` for a cookie reply to an unknown
    /// sender).
    WriteToNetwork {
        /// Destination endpoint.
        to: SocketAddr,
        /// The peer it concerns, if known.
        peer: Option<PeerId>,
        /// The datagram.
        datagram: &'a mut [u8],
    },
    /// Deliver a decrypted IPv4 packet from `peer`.
    WriteToTunnelV4 {
        /// The peer it came from.
        peer: PeerId,
        /// Its inner source address (already accepted by the source check).
        src: Ipv4Addr,
        /// The packet.
        packet: &'a mut [u8],
    },
    /// Deliver a decrypted IPv6 packet from `peer`.
    WriteToTunnelV6 {
        /// The peer it came from.
        peer: PeerId,
        /// Its inner source address (already accepted by the source check).
        src: Ipv6Addr,
        /// The packet.
        packet: &'a mut [u8],
    },
    /// Dropped for this reason (already counted).
    Err(DropReason),
}

/// A [`TunnelResult`] with the borrow of `out` taken out: every result the peer returns is
/// a prefix of `out`, so it can be rebuilt from its length. This lets loops over peers
/// return a borrow of `out`.
enum Detached {
    Done,
    Network(usize),
    V4(usize, Ipv4Addr),
    V6(usize, Ipv6Addr),
    Err(DropReason),
}

fn detach(r: TunnelResult<'_>) -> Detached {
    match r {
        TunnelResult::Done => Detached::Done,
        TunnelResult::WriteToNetwork(b) => Detached::Network(b.len()),
        TunnelResult::WriteToTunnelV4(b, a) => Detached::V4(b.len(), a),
        TunnelResult::WriteToTunnelV6(b, a) => Detached::V6(b.len(), a),
        TunnelResult::Err(e) => Detached::Err(e),
    }
}

/// The default source check: the source is in the sending peer's AllowedIPs.
fn in_allowed_ips(_: PeerId, _: IpAddr, allowed: bool) -> bool {
    allowed
}

/// Many peers behind one static key.
///
/// `Clone` only with debug assertions (tests, and fuzzing, which snapshots handshaken
/// devices): a release build cannot fork live sessions, whose copies would reuse nonces.
#[cfg_attr(debug_assertions, derive(Clone))]
pub struct Device<R> {
    ours: PrivateKey,
    public: PublicKey,
    responder_hash: [u8; 32],
    checker: CookieChecker,
    limiter: HandshakeLimiter,
    peers: Vec<Option<Peer>>,
    allowed: AllowedIps,
    index_salt: u32,
    timer_cursor: usize,
    rng: R,
    counters: Counters,
}

impl<R> core::fmt::Debug for Device<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("public", &self.public)
            .field("peers", &self.peers.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRngCore> Device<R> {
    /// A device with our key `ours`, sized by `config`. All tables are allocated here.
    pub fn new(ours: PrivateKey, config: DeviceConfig, mut rng: R) -> Self {
        let public = ours.public_key();
        let max_peers = config.max_peers.clamp(1, MAX_PEERS);
        let mut peers = Vec::with_capacity(max_peers);
        peers.resize_with(max_peers, || None);
        Self {
            responder_hash: initial_hash(&public),
            checker: CookieChecker::new(&public),
            limiter: HandshakeLimiter::new(config.handshakes_per_second, &mut rng),
            ours,
            public,
            peers,
            allowed: AllowedIps::with_capacity(config.max_allowed_ips),
            index_salt: rng.next_u32() & 0x00ff_ffff,
            timer_cursor: 0,
            rng,
            counters: Counters::default(),
        }
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Adds a peer and its AllowedIPs. Nothing changes if any part is refused.
    pub fn add_peer(
        &mut self,
        config: PeerConfig,
        allowed_ips: &[AllowedIp],
    ) -> Result<PeerId, DeviceError> {
        if config.public_key == self.public {
            return Err(DeviceError::OwnKey);
        }
        if self.find_by_key(&config.public_key).is_some() {
            return Err(DeviceError::DuplicatePeer);
        }
        let slot = self
            .peers
            .iter()
            .position(Option::is_none)
            .ok_or(DeviceError::TooManyPeers)?;
        for a in allowed_ips {
            AllowedIp::new(a.addr, a.prefix_len)
                .ok_or(DeviceError::AllowedIps(AllowedIpsError::BadPrefix))?;
        }
        // Upper bound: existing prefixes may be reused, so this may refuse slightly early.
        if self.allowed.len() + allowed_ips.len() > self.allowed.capacity() {
            return Err(DeviceError::AllowedIps(AllowedIpsError::Full));
        }
        let id = slot as u16;
        for a in allowed_ips {
            self.allowed
                .insert(*a, id)
                .map_err(DeviceError::AllowedIps)?;
        }
        let base = (slot as u32) ^ self.index_salt;
        self.peers[slot] = Some(Peer::new(self.ours.clone(), config, base, &mut self.rng));
        Ok(PeerId(id))
    }

    /// Adds one prefix to a peer's AllowedIPs (moving it from another peer if present).
    pub fn add_allowed_ip(&mut self, id: PeerId, prefix: AllowedIp) -> Result<(), DeviceError> {
        self.peer(id).ok_or(DeviceError::NoSuchPeer)?;
        self.allowed
            .insert(prefix, id.0)
            .map_err(DeviceError::AllowedIps)
    }

    /// Removes a peer, its keys (zeroized on drop) and its AllowedIPs.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), DeviceError> {
        let slot = self
            .peers
            .get_mut(usize::from(id.0))
            .ok_or(DeviceError::NoSuchPeer)?;
        let peer = slot.take().ok_or(DeviceError::NoSuchPeer)?;
        // Keep what it counted.
        self.counters.accumulate(peer.counters());
        self.allowed.remove_owner(id.0);
        Ok(())
    }

    /// The peer in slot `id`.
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(usize::from(id.0))?.as_ref()
    }

    /// Mutable access to the peer in slot `id` (e.g. to change its endpoint).
    pub fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(usize::from(id.0))?.as_mut()
    }

    /// All peers with their ids.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (PeerId(i as u16), p)))
    }

    /// The AllowedIPs of a peer, longest prefix first.
    pub fn allowed_ips(&self, id: PeerId) -> impl Iterator<Item = AllowedIp> + '_ {
        self.allowed.prefixes_of(id.0)
    }

    /// The peer whose static key is `key`.
    pub fn find_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.peers()
            .find(|(_, p)| p.public_key() == key)
            .map(|(id, _)| id)
    }

    /// The peer whose AllowedIPs cover `addr` (longest prefix).
    pub fn route(&self, addr: core::net::IpAddr) -> Option<PeerId> {
        self.allowed.lookup(addr).map(PeerId)
    }

    /// Forces the under-load behaviour (cookie replies to handshakes without mac2).
    pub fn set_under_load(&mut self, under_load: bool) {
        self.limiter.set_under_load(under_load);
    }

    /// Device-level counters plus every peer's (including removed peers').
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        for (_, p) in self.peers() {
            c.accumulate(p.counters());
        }
        c
    }

    fn fail<'a>(&mut self, reason: DropReason) -> DeviceResult<'a> {
        self.counters.record(reason);
        DeviceResult::Err(reason)
    }

    /// The slot an index of ours points at, if a peer there owns it.
    fn slot_for_index(&self, index: u32) -> Option<usize> {
        let slot = ((index >> 8) ^ self.index_salt) as usize;
        self.peers
            .get(slot)?
            .as_ref()
            .filter(|p| p.owns_index(index))
            .map(|_| slot)
    }

    /// Rebuilds a peer's result around `out`; `reply_to` overrides the peer's endpoint.
    fn attach<'a>(
        &mut self,
        slot: usize,
        r: Detached,
        reply_to: Option<SocketAddr>,
        out: &'a mut [u8],
        accept: &mut dyn FnMut(PeerId, IpAddr, bool) -> bool,
    ) -> DeviceResult<'a> {
        let id = PeerId(slot as u16);
        match r {
            Detached::Done => DeviceResult::Done,
            Detached::Err(e) => DeviceResult::Err(e),
            Detached::Network(n) => {
                let to = reply_to.or_else(|| self.peers[slot].as_ref().and_then(Peer::endpoint));
                match to {
                    Some(to) => DeviceResult::WriteToNetwork {
                        to,
                        peer: Some(id),
                        datagram: &mut out[..n],
                    },
                    None => self.fail(DropReason::NoEndpoint),
                }
            }
            Detached::V4(n, src) => self.check_source(slot, src.into(), n, out, accept, |packet| {
                DeviceResult::WriteToTunnelV4 {
                    peer: id,
                    src,
                    packet,
                }
            }),
            Detached::V6(n, src) => self.check_source(slot, src.into(), n, out, accept, |packet| {
                DeviceResult::WriteToTunnelV6 {
                    peer: id,
                    src,
                    packet,
                }
            }),
        }
    }

    /// Cryptokey routing on receive: the inner source must map back to the sending peer.
    fn check_source<'a>(
        &mut self,
        slot: usize,
        src: IpAddr,
        n: usize,
        out: &'a mut [u8],
        accept: &mut dyn FnMut(PeerId, IpAddr, bool) -> bool,
        make: impl FnOnce(&'a mut [u8]) -> DeviceResult<'a>,
    ) -> DeviceResult<'a> {
        let allowed = self.allowed.lookup(src) == Some(slot as u16);
        if accept(PeerId(slot as u16), src, allowed) {
            return make(&mut out[..n]);
        }
        if let Some(p) = self.peers[slot].as_mut() {
            p.counters_mut().record(DropReason::AllowedIpsMismatch);
        }
        DeviceResult::Err(DropReason::AllowedIpsMismatch)
    }

    /// Encrypts an outbound IP packet for the peer whose AllowedIPs cover its destination.
    /// `out` must hold `packet.len()` + 32 bytes (+15 padding) and at least 148.
    pub fn encapsulate<'a>(
        &mut self,
        now: Now,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> DeviceResult<'a> {
        let Some(header) = InnerHeader::parse(packet) else {
            return self.fail(DropReason::BadInnerPacket);
        };
        let Some(id) = self.route(header.dst()) else {
            return self.fail(DropReason::NoRoute);
        };
        self.encapsulate_to(now, id, packet, out)
    }

    /// Encrypts `packet` (a keepalive if empty) for peer `id`, skipping the routing lookup.
    pub fn encapsulate_to<'a>(
        &mut self,
        now: Now,
        id: PeerId,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> DeviceResult<'a> {
        let slot = usize::from(id.0);
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return self.fail(DropReason::NoRoute);
        };
        let r = detach(peer.encapsulate(now, &mut self.rng, packet, out));
        self.attach(slot, r, None, out, &mut in_allowed_ips)
    }

    /// Processes one UDP datagram received from `src`. `out` must be at least as long as
    /// the datagram and at least 148 bytes. A decrypted packet is delivered only if its
    /// source is in the sending peer's AllowedIPs.
    pub fn decapsulate<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> DeviceResult<'a> {
        self.decapsulate_with(now, src, datagram, out, &mut in_allowed_ips)
    }

    /// [`Device::decapsulate`] with the caller's source check: `accept(peer, source,
    /// in_allowed_ips)` decides whether a decrypted packet is delivered (a router that
    /// relays accepts sources its route table reaches through that peer). A refused packet
    /// is counted as [`DropReason::AllowedIpsMismatch`].
    pub fn decapsulate_with<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
        accept: &mut dyn FnMut(PeerId, IpAddr, bool) -> bool,
    ) -> DeviceResult<'a> {
        let msg = match Message::parse(datagram) {
            Ok(m) => m,
            Err(e) => return self.fail(e),
        };
        if let Some(sender) = msg.handshake_sender() {
            match admit(
                &mut self.checker,
                &mut self.limiter,
                now,
                &mut self.rng,
                src,
                datagram,
                sender,
                out,
            ) {
                Admission::Accept => {}
                Admission::CookieReply => {
                    self.counters.tx_cookie_reply += 1;
                    return DeviceResult::WriteToNetwork {
                        to: src,
                        peer: None,
                        datagram: &mut out[..COOKIE_REPLY_LEN],
                    };
                }
                Admission::Drop(e) => return self.fail(e),
            }
        }
        let (slot, r) = match msg {
            Message::Initiation(i) => {
                let half = match consume_initiation_anon(&self.ours, &self.responder_hash, &i) {
                    Ok(h) => h,
                    Err(e) => return self.fail(e),
                };
                let Some(id) = self.find_by_key(&half.peer) else {
                    return self.fail(DropReason::UnknownPeer);
                };
                let slot = usize::from(id.0);
                let peer = self.peers[slot].as_mut().expect("found above");
                let r = peer.handle_initiation(now, &mut self.rng, half, &i, src, out);
                (slot, detach(r))
            }
            Message::Response(r) => {
                let Some(slot) = self.slot_for_index(r.receiver()) else {
                    return self.fail(DropReason::UnknownReceiver);
                };
                let peer = self.peers[slot].as_mut().expect("checked");
                (slot, detach(peer.handle_response(now, &r, src, out)))
            }
            Message::CookieReply(c) => {
                let Some(slot) = self.slot_for_index(c.receiver()) else {
                    return self.fail(DropReason::UnknownReceiver);
                };
                let peer = self.peers[slot].as_mut().expect("checked");
                (slot, detach(peer.handle_cookie_reply(now, &c)))
            }
            Message::Data(d) => {
                let Some(slot) = self.slot_for_index(d.receiver()) else {
                    return self.fail(DropReason::UnknownReceiver);
                };
                let peer = self.peers[slot].as_mut().expect("checked");
                (slot, detach(peer.handle_data(now, &d, src, out)))
            }
        };
        self.attach(slot, r, Some(src), out, accept)
    }

    /// Runs every peer's timers, round-robin. Returns at most one datagram per call: call
    /// again until `Done`.
    pub fn update_timers<'a>(&mut self, now: Now, out: &'a mut [u8]) -> DeviceResult<'a> {
        let n = self.peers.len();
        for step in 0..n {
            let slot = (self.timer_cursor + step) % n;
            let Some(peer) = self.peers[slot].as_mut() else {
                continue;
            };
            match detach(peer.update_timers(now, &mut self.rng, out)) {
                Detached::Done => {}
                r => {
                    // Stay on this peer: it may have more to send.
                    self.timer_cursor = slot;
                    return self.attach(slot, r, None, out, &mut in_allowed_ips);
                }
            }
        }
        self.timer_cursor = 0;
        DeviceResult::Done
    }

    /// Sends packets that waited for a handshake, one per call: call after `decapsulate`
    /// until `Done`.
    pub fn dequeue<'a>(&mut self, now: Instant, out: &'a mut [u8]) -> DeviceResult<'a> {
        for slot in 0..self.peers.len() {
            let Some(peer) = self.peers[slot].as_mut() else {
                continue;
            };
            if peer.queued() == 0 {
                continue;
            }
            match detach(peer.dequeue(now, out)) {
                Detached::Done => {}
                r => return self.attach(slot, r, None, out, &mut in_allowed_ips),
            }
        }
        DeviceResult::Done
    }

    /// When `update_timers` next has something to do, over all peers.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.peers().filter_map(|(_, p)| p.poll_at(now)).min()
    }
}
