//! The tunnel as the appliance uses it: a WireGuard [`Device`] whose decrypted packets go to
//! an IP-medium smoltcp interface holding the `[Interface]` addresses (so they answer ICMP
//! echo and TCP echo through the tunnel), and whose outbound packets are encrypted and sent
//! from the links' UDP sockets.
//!
//! Packets between the tunnel and that interface wait in two fixed rings: nothing is
//! allocated per packet.

use super::services::Services;
use super::OverlayCounters;
use crate::config::{ConfigError, InterfaceConfig, PeerConfig as PeerSection};
use crate::tunnel::{
    AllowedIp, Device, DeviceConfig, DeviceError, PeerConfig, PresharedKey, PrivateKey, PublicKey,
};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use rand_core::CryptoRngCore;
use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};

/// Largest inner packet: a 1500-byte IPv4 underlay less 20 (IPv4) + 8 (UDP) + 32
/// (WireGuard data header and tag). wg-quick's default of 1420 also fits an IPv6 underlay.
pub const MAX_INNER: usize = 1440;
/// Default tunnel MTU (as wg-quick).
pub const DEFAULT_MTU: u16 = 1420;
/// Packets each ring holds.
const RING: usize = 32;
/// Room for any datagram the tunnel reads or writes.
pub const DATAGRAM_BUF: usize = 2048;

/// A bounded queue of packets in fixed slots.
pub(crate) struct Ring {
    slots: Box<[[u8; MAX_INNER]; RING]>,
    lens: [u16; RING],
    head: usize,
    len: usize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: Box::new([[0; MAX_INNER]; RING]),
            lens: [0; RING],
            head: 0,
            len: 0,
        }
    }

    /// Copies `packet` in; `false` (nothing stored) when full or too long.
    fn push(&mut self, packet: &[u8]) -> bool {
        if self.len == RING || packet.len() > MAX_INNER {
            return false;
        }
        let i = (self.head + self.len) % RING;
        self.slots[i][..packet.len()].copy_from_slice(packet);
        self.lens[i] = packet.len() as u16;
        self.len += 1;
        true
    }

    /// The oldest packet, if any (stays queued until [`Ring::pop`]).
    fn front(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.slots[self.head][..self.lens[self.head] as usize])
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % RING;
            self.len -= 1;
        }
    }
}

/// The overlay interface's device: reads decrypted packets, writes packets to encrypt.
pub(crate) struct Tun {
    rx: Ring,
    tx: Ring,
    mtu: usize,
    rx_copy: [u8; MAX_INNER],
    /// Packets the overlay stack sent when the outbound ring was full.
    tx_dropped: u64,
}

pub(crate) struct TunRx<'a>(&'a [u8]);
pub(crate) struct TunTx<'a>(&'a mut Ring, &'a mut u64);

impl phy::RxToken for TunRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TunTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = [0u8; MAX_INNER];
        let len = len.min(MAX_INNER);
        let r = f(&mut buf[..len]);
        if !self.0.push(&buf[..len]) {
            *self.1 += 1;
        }
        r
    }
}

impl phy::Device for Tun {
    type RxToken<'a> = TunRx<'a>;
    type TxToken<'a> = TunTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(TunRx<'_>, TunTx<'_>)> {
        let n = {
            let p = self.rx.front()?;
            self.rx_copy[..p.len()].copy_from_slice(p);
            p.len()
        };
        self.rx.pop();
        Some((
            TunRx(&self.rx_copy[..n]),
            TunTx(&mut self.tx, &mut self.tx_dropped),
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TunTx<'_>> {
        Some(TunTx(&mut self.tx, &mut self.tx_dropped))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

pub(crate) struct Overlay<R> {
    pub device: Device<R>,
    pub iface: Interface,
    pub services: Services,
    pub tun: Tun,
    pub listen_port: u16,
    /// Scratch for datagrams read from the links and for the tunnel's output.
    pub inbuf: Box<[u8; DATAGRAM_BUF]>,
    pub outbuf: Box<[u8; DATAGRAM_BUF]>,
    pub counters: OverlayCounters,
}

fn to_core(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

pub(crate) fn endpoint_to_socket(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(to_core(e.addr), e.port)
}

pub(crate) fn socket_to_endpoint(s: SocketAddr) -> IpEndpoint {
    let addr = match s.ip() {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    };
    IpEndpoint::new(addr, s.port())
}

impl<R: CryptoRngCore> Overlay<R> {
    /// Builds the tunnel from `[Interface]` and `[Peer]` sections; errors name their line.
    pub fn new(
        iface_cfg: &InterfaceConfig,
        peers: &[PeerSection],
        rng: R,
        seed: u64,
        now: Instant,
    ) -> Result<Overlay<R>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let allowed_total: usize = peers.iter().map(|p| p.allowed_ips.len()).sum();
        let config = DeviceConfig {
            max_peers: peers.len().max(1),
            max_allowed_ips: allowed_total.max(1),
            ..DeviceConfig::default()
        };
        let mut device = Device::new(PrivateKey::from_bytes(iface_cfg.private_key.0), config, rng);
        for p in peers {
            let cfg = PeerConfig {
                public_key: PublicKey(p.public_key.0),
                preshared_key: p
                    .preshared_key
                    .as_ref()
                    .map(|k| PresharedKey::from_bytes(k.0)),
                endpoint: p
                    .endpoint
                    .map(|(a, port)| SocketAddr::new(to_core(a), port)),
                persistent_keepalive: p.persistent_keepalive,
            };
            let allowed: Vec<AllowedIp> = p
                .allowed_ips
                .iter()
                .filter_map(|c| AllowedIp::new(to_core(c.address()), c.prefix_len()))
                .collect();
            if let Err(e) = device.add_peer(cfg, &allowed) {
                let message = match e {
                    DeviceError::OwnKey => {
                        "this [Peer]'s PublicKey is the [Interface]'s own key".into()
                    }
                    DeviceError::DuplicatePeer => "this [Peer]'s PublicKey appears twice".into(),
                    other => format!("cannot add this [Peer]: {other:?}"),
                };
                errors.push(ConfigError {
                    line: p.line,
                    message,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mtu = iface_cfg.mtu.unwrap_or(DEFAULT_MTU).min(MAX_INNER as u16) as usize;
        let mut tun = Tun {
            rx: Ring::new(),
            tx: Ring::new(),
            mtu,
            rx_copy: [0; MAX_INNER],
            tx_dropped: 0,
        };
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = seed.rotate_left(17) ^ 0x5bd1_e995;
        let mut iface = Interface::new(cfg, &mut tun, now);
        iface.update_ip_addrs(|addrs| {
            for a in &iface_cfg.addresses {
                let _ = addrs.push(*a);
            }
        });
        // Everything not on the overlay's own subnets goes into the tunnel too (cryptokey
        // routing picks the peer); on an IP-medium interface the gateway is only a marker.
        for a in &iface_cfg.addresses {
            match a {
                IpCidr::Ipv4(c) => {
                    let _ = iface.routes_mut().add_default_ipv4_route(c.address());
                }
                IpCidr::Ipv6(c) => {
                    let _ = iface.routes_mut().add_default_ipv6_route(c.address());
                }
            }
        }
        Ok(Overlay {
            device,
            iface,
            services: Services::new(),
            tun,
            listen_port: iface_cfg.listen_port,
            inbuf: Box::new([0; DATAGRAM_BUF]),
            outbuf: Box::new([0; DATAGRAM_BUF]),
            counters: OverlayCounters::default(),
        })
    }

    /// Hands a decrypted packet to the overlay interface.
    pub fn deliver(&mut self, packet_len: usize) {
        if !self.tun.rx.push(&self.outbuf[..packet_len]) {
            self.counters.rx_ring_full += 1;
        }
    }

    /// The next packet the overlay interface wants encrypted, moved into `inbuf`.
    pub fn next_outbound(&mut self) -> Option<usize> {
        let n = {
            let p = self.tun.tx.front()?;
            self.inbuf[..p.len()].copy_from_slice(p);
            p.len()
        };
        self.tun.tx.pop();
        Some(n)
    }

    /// Packets the overlay interface produced with the outbound ring full.
    pub fn tx_ring_dropped(&self) -> u64 {
        self.tun.tx_dropped
    }
}
