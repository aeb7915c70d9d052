//! [`Device`]: the multi-peer tunnel interface (whitepaper section 2 and 5).
//!
//! It owns our static key and a bounded table of peers (allocated at creation). Incoming
//! initiations are matched to a peer by the static key they decrypt to; responses, cookie
//! replies and data by the receiver index, whose upper 24 bits name the peer's slot
//! (XORed with a random per-device salt). Outbound packets pick their peer by longest-prefix
//! match of the destination in the AllowedIPs table, and a decrypted packet whose source is
//! not in its own peer's AllowedIPs is dropped and counted.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

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
        /// Its inner source address (already checked against the peer's AllowedIPs).
        src: Ipv4Addr,
        /// The packet.
        packet: &'a mut [u8],
    },
    /// Deliver a decrypted IPv6 packet from `peer`.
    WriteToTunnelV6 {
        /// The peer it came from.
        peer: PeerId,
        /// Its inner source address (already checked against the peer's AllowedIPs).
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

/// Many peers behind one static key.
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
        if self.allowed.len() + allowed_ips.len() > self.max_allowed_ips() {
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

    fn max_allowed_ips(&self) -> usize {
        // The table never grows past the capacity allocated in `new`.
        self.allowed_capacity()
    }

    fn allowed_capacity(&self) -> usize {
        // Vec capacity is fixed after `with_capacity` because inserts check it first.
        usize::MAX.min(self.allowed_len_cap())
    }

    fn allowed_len_cap(&self) -> usize {
        self.allowed_cap
    }
}
