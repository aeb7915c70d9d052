//! The router's ports: a NIC ([`Link`]), the tunnel ([`TunnelPort`]) and the local stack
//! ([`LocalPort`], the smoltcp device of the appliance's own addresses).

use super::neighbor::{NeighborCache, NEIGHBORS};
use super::packet::{write_eth, ETH_HEADER};
use super::ring::{Ring, MAX_PACKET};
use super::visitors::Visitors;
use super::{dhcp, nat, DGRAM_BUF, LOCAL_RING, MAX_FRAME, NAT_CONNECTIONS};
use crate::config::{LinkConfig, Role};
use crate::tunnel::Device;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetProtocol, IpAddress, IpCidr, Ipv4Address, Ipv6Address, Ipv6Cidr,
};
use vdcnet_hal::net::NetDevice;

/// Frames one NIC passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames not sent because the NIC's ring was full.
    pub tx_dropped: u64,
    /// Frames that arrived on this link and were dropped as malformed.
    pub malformed: u64,
}

/// One NIC and what the router knows about its network.
pub struct Link<D> {
    pub dev: D,
    pub mac: EthernetAddress,
    pub role: Role,
    /// The link's addresses with their prefix lengths (no link-local).
    pub addrs: Vec<IpCidr>,
    pub link_local: Ipv6Address,
    pub gateway_v4: Option<Ipv4Address>,
    pub gateway_v6: Option<Ipv6Address>,
    /// Largest IP packet the link carries.
    pub mtu: usize,
    /// Masquerade for segments leaving here, when `Egress = nat`.
    pub nat: Option<nat::Nat>,
    pub dhcp: Option<dhcp::DhcpServer>,
    /// Workloads of other segments that may visit this one (its visiting leases).
    pub visitors: Visitors,
    /// The /64s advertised, when the link sends router advertisements.
    pub(super) ra_prefixes: Vec<Ipv6Cidr>,
    pub(super) next_ra: Instant,
    pub(super) last_solicited_ra: Option<Instant>,
    pub(super) neigh: NeighborCache,
    pub counters: LinkCounters,
}

/// The IPv6 link-local address (EUI-64) of a MAC.
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Address {
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
pub(super) fn solicited_node(a: Ipv6Address) -> Ipv6Address {
    let o = a.octets();
    Ipv6Address::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464 §7).
pub(super) fn multicast_mac(a: Ipv6Address) -> EthernetAddress {
    let o = a.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

impl<D: NetDevice> Link<D> {
    /// A link on `dev` as `cfg` describes it.
    pub fn new(dev: D, cfg: &LinkConfig, seed: u64, now: Instant) -> Link<D> {
        let mac = EthernetAddress(dev.mac_address());
        let max = dev.max_frame_len().min(MAX_FRAME) - ETH_HEADER;
        let mtu = cfg.mtu.map_or(max, |m| usize::from(m).min(max));
        let v4 = cfg.addresses.iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some(*c),
            IpCidr::Ipv6(_) => None,
        });
        let nat = match (cfg.egress_nat, v4) {
            // Below smoltcp's ephemeral ports (49152..), so the local stack's own connections
            // on this link never collide with masqueraded ones.
            (true, Some(c)) => Some(nat::Nat::with_seed(
                NAT_CONNECTIONS,
                c.address(),
                20000..=48999,
                seed,
            )),
            _ => None,
        };
        let dhcp = match (&cfg.dhcp, v4) {
            (Some(d), Some(c)) => Some(dhcp::DhcpServer::new(dhcp::DhcpConfig {
                addr: c.address(),
                prefix_len: c.prefix_len(),
                lease_secs: d.lease_secs,
                static_leases: d.static_leases.clone(),
                dns: None,
                mtu: Some(mtu as u16),
            })),
            _ => None,
        };
        let visitors = Visitors::new(
            dhcp.iter()
                .flat_map(|d| d.visiting().map(|(mac, ip, _)| (mac, ip))),
        );
        let ra_prefixes = if cfg.send_ra {
            cfg.addresses
                .iter()
                .filter_map(|c| match c {
                    IpCidr::Ipv6(c) if c.prefix_len() == 64 => {
                        let mut o = c.address().octets();
                        o[8..].fill(0);
                        Some(Ipv6Cidr::new(Ipv6Address::from_octets(o), 64))
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        Link {
            dev,
            mac,
            role: cfg.role,
            addrs: cfg.addresses.clone(),
            link_local: eui64_link_local(mac.0),
            gateway_v4: cfg.gateway_v4,
            gateway_v6: cfg.gateway_v6,
            mtu,
            nat,
            dhcp,
            visitors,
            ra_prefixes,
            next_ra: now,
            last_solicited_ra: None,
            neigh: NeighborCache::new(NEIGHBORS),
            counters: LinkCounters::default(),
        }
    }

    pub(super) fn is_segment(&self) -> bool {
        self.role == Role::Segment
    }

    /// Whether `a` is one of this link's own addresses (including its link-local one).
    pub(super) fn owns(&self, a: IpAddress) -> bool {
        self.addrs.iter().any(|c| c.address() == a) || a == IpAddress::Ipv6(self.link_local)
    }

    /// Whether `a` is directly on one of this link's subnets.
    pub(super) fn on_link(&self, a: IpAddress) -> bool {
        self.addrs.iter().any(|c| c.contains_addr(&a))
    }

    /// Whether a host may use `a` on this link from `mac`: an address of its subnets, or a
    /// present visitor's own.
    pub(super) fn admits(&self, mac: EthernetAddress, a: IpAddress) -> bool {
        self.on_link(a)
            || match a {
                IpAddress::Ipv4(v4) => self.visitors.admits(mac, v4),
                IpAddress::Ipv6(_) => false,
            }
    }

    pub(super) fn first_v4(&self) -> Option<Ipv4Address> {
        self.addrs.iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some(c.address()),
            IpCidr::Ipv6(_) => None,
        })
    }

    pub(super) fn first_v6(&self) -> Option<Ipv6Address> {
        self.addrs.iter().find_map(|c| match c {
            IpCidr::Ipv6(c) => Some(c.address()),
            IpCidr::Ipv4(_) => None,
        })
    }

    /// The IPv4 broadcast addresses this link accepts.
    pub(super) fn is_v4_broadcast(&self, a: Ipv4Address) -> bool {
        a.is_broadcast()
            || self.addrs.iter().any(|c| match c {
                IpCidr::Ipv4(c) => c.broadcast() == Some(a),
                IpCidr::Ipv6(_) => false,
            })
    }

    /// Sends one frame; counts it, or counts the drop when the ring is full.
    pub(super) fn transmit(
        &mut self,
        dst: EthernetAddress,
        ty: EthernetProtocol,
        payload: &[u8],
    ) -> bool {
        let mac = self.mac;
        let sent = self.dev.transmit_with(ETH_HEADER + payload.len(), |b| {
            write_eth(b, dst, mac, ty);
            b[ETH_HEADER..].copy_from_slice(payload);
        });
        if sent.is_some() {
            self.counters.tx_frames += 1;
            true
        } else {
            self.counters.tx_dropped += 1;
            false
        }
    }
}

/// The tunnel as a port: the WireGuard device, its UDP port and MTU.
pub struct TunnelPort<R> {
    pub device: Device<R>,
    pub listen_port: u16,
    /// Largest inner packet sent into the tunnel.
    pub mtu: usize,
    pub(super) dgram: Box<[u8]>,
}

impl<R> TunnelPort<R> {
    pub fn new(device: Device<R>, listen_port: u16, mtu: usize) -> TunnelPort<R> {
        TunnelPort {
            device,
            listen_port,
            mtu,
            dgram: vec![0u8; DGRAM_BUF].into_boxed_slice(),
        }
    }
}

/// The local stack's side of the router: smoltcp sees an IP-medium device; what it sends
/// waits in `tx` until [`Router::poll`] routes it, and what the router delivers waits in
/// `rx`.
pub struct LocalPort {
    pub(super) rx: Ring,
    pub(super) tx: Ring,
    pub(super) rx_copy: Box<[u8]>,
    pub(super) tx_copy: Box<[u8]>,
    pub(super) mtu: usize,
    /// Packets the stack sent while `tx` was full.
    pub tx_dropped: u64,
}

impl LocalPort {
    pub(super) fn new(mtu: usize) -> LocalPort {
        LocalPort {
            rx: Ring::new(LOCAL_RING),
            tx: Ring::new(LOCAL_RING),
            rx_copy: vec![0u8; MAX_PACKET].into_boxed_slice(),
            tx_copy: vec![0u8; MAX_PACKET].into_boxed_slice(),
            mtu,
            tx_dropped: 0,
        }
    }
}

pub struct LocalRx<'a>(&'a [u8]);
pub struct LocalTx<'a> {
    ring: &'a mut Ring,
    copy: &'a mut [u8],
    dropped: &'a mut u64,
}

impl phy::RxToken for LocalRx<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.0)
    }
}

impl phy::TxToken for LocalTx<'_> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        let len = len.min(self.copy.len());
        let r = f(&mut self.copy[..len]);
        if !self.ring.push(&self.copy[..len]) {
            *self.dropped += 1;
        }
        r
    }
}

impl phy::Device for LocalPort {
    type RxToken<'a> = LocalRx<'a>;
    type TxToken<'a> = LocalTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(LocalRx<'_>, LocalTx<'_>)> {
        let n = self.rx.pop_into(&mut self.rx_copy)?;
        Some((
            LocalRx(&self.rx_copy[..n]),
            LocalTx {
                ring: &mut self.tx,
                copy: &mut self.tx_copy,
                dropped: &mut self.tx_dropped,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<LocalTx<'_>> {
        Some(LocalTx {
            ring: &mut self.tx,
            copy: &mut self.tx_copy,
            dropped: &mut self.tx_dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}
