//! [`Tunnel`]: one peer on its own, in the spirit of boringtun's `Tunn` but sans-I/O.
//!
//! It is a [`Device`] with a single peer whose AllowedIPs are everything (`0.0.0.0/0` and
//! `::/0`): every packet goes to that peer and every inner source is accepted, as with a
//! point-to-point link. The device does the receiver's work (our static key for
//! initiations, mac1/mac2 and cookie replies, the handshake rate limiter); this type only
//! drops the addressing from its results.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;

use super::allowed_ips::AllowedIp;
use super::counters::Counters;
use super::device::{Device, DeviceConfig, DeviceError, DeviceResult, PeerId};
use super::keys::{PrivateKey, PublicKey};
use super::peer::{Now, Peer, PeerConfig, TunnelResult};

/// A point-to-point tunnel to one peer. `R` supplies randomness (RDRAND on the image).
pub struct Tunnel<R> {
    device: Device<R>,
    id: PeerId,
}

impl<R> core::fmt::Debug for Tunnel<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tunnel")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// A device result without the addressing a single peer does not need.
fn single(r: DeviceResult<'_>) -> TunnelResult<'_> {
    match r {
        DeviceResult::Done => TunnelResult::Done,
        DeviceResult::WriteToNetwork { datagram, .. } => TunnelResult::WriteToNetwork(datagram),
        DeviceResult::WriteToTunnelV4 { src, packet, .. } => {
            TunnelResult::WriteToTunnelV4(packet, src)
        }
        DeviceResult::WriteToTunnelV6 { src, packet, .. } => {
            TunnelResult::WriteToTunnelV6(packet, src)
        }
        DeviceResult::Err(e) => TunnelResult::Err(e),
    }
}

impl<R: CryptoRngCore> Tunnel<R> {
    /// A tunnel from `ours` to the peer in `config`; refused if the peer's key is ours.
    pub fn new(ours: PrivateKey, config: PeerConfig, rng: R) -> Result<Self, DeviceError> {
        let mut device = Device::new(
            ours,
            DeviceConfig {
                max_peers: 1,
                max_allowed_ips: 2,
                ..DeviceConfig::default()
            },
            rng,
        );
        let everything = [
            AllowedIp::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            AllowedIp::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        ];
        let everything: heapless::Vec<AllowedIp, 2> = everything.into_iter().flatten().collect();
        let id = device.add_peer(config, &everything)?;
        Ok(Self { device, id })
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.device.public_key()
    }

    /// The peer state (endpoint, counters, session status).
    pub fn peer(&self) -> &Peer {
        self.device
            .peer(self.id)
            .expect("the tunnel's one peer is never removed")
    }

    /// Mutable peer state (e.g. to change the endpoint).
    pub fn peer_mut(&mut self) -> &mut Peer {
        self.device
            .peer_mut(self.id)
            .expect("the tunnel's one peer is never removed")
    }

    /// Forces the under-load behaviour (cookie replies instead of responses without mac2).
    pub fn set_under_load(&mut self, under_load: bool) {
        self.device.set_under_load(under_load);
    }

    /// All counters: the tunnel's own (malformed, bad mac1, ...) plus the peer's.
    pub fn counters(&self) -> Counters {
        self.device.counters()
    }

    /// See [`Peer::encapsulate`]; send the result to [`Peer::endpoint`].
    pub fn encapsulate<'a>(
        &mut self,
        now: Now,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        single(self.device.encapsulate_to(now, self.id, packet, out))
    }

    /// See [`Peer::update_timers`]; send the result to [`Peer::endpoint`].
    pub fn update_timers<'a>(&mut self, now: Now, out: &'a mut [u8]) -> TunnelResult<'a> {
        single(self.device.update_timers(now, out))
    }

    /// See [`Peer::dequeue`]; send the result to [`Peer::endpoint`]. Call after a handshake
    /// completes until it returns `Done`.
    pub fn dequeue<'a>(&mut self, now: Instant, out: &'a mut [u8]) -> TunnelResult<'a> {
        single(self.device.dequeue(now, out))
    }

    /// When to call `update_timers` next.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.device.poll_at(now)
    }

    /// Processes one datagram received from `src`. A `WriteToNetwork` result goes back to
    /// `src`. `out` must be at least as long as the datagram (and 148 bytes).
    pub fn decapsulate<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        single(self.device.decapsulate(now, src, datagram, out))
    }
}
