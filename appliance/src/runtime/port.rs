//! One link: a NIC with its smoltcp interface (the link's addresses, ARP/NDP, ICMP echo),
//! its services, and, when a tunnel is configured, the UDP socket the tunnel listens on.

use super::services::Services;
use super::wire::{Wire, ETH_HEADER, MAX_FRAME};
use crate::config::LinkConfig;
use alloc::vec;
use core::fmt::Write;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv6Address};
use vdcnet_hal::net::NetDevice;

/// Datagrams the tunnel's UDP socket buffers each way.
const UDP_PACKETS: usize = 64;
const UDP_BYTES: usize = 64 * 1600;

pub(crate) struct Port<D> {
    pub wire: Wire<D>,
    pub iface: Interface,
    pub services: Services,
    /// The tunnel's UDP socket on this link, when there is a tunnel.
    pub udp: Option<SocketHandle>,
    pub name: usize,
    /// Whether the link has a default route for IPv4, IPv6.
    gateways: (bool, bool),
}

/// The IPv6 link-local address (EUI-64) of a MAC.
pub(crate) fn eui64_link_local(mac: [u8; 6]) -> Ipv6Address {
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

impl<D: NetDevice> Port<D> {
    pub fn new(name: usize, dev: D, link: &LinkConfig, seed: u64, now: Instant) -> Port<D> {
        let mac = dev.mac_address();
        let max_frame = link
            .mtu
            .map_or(MAX_FRAME, |m| (m as usize + ETH_HEADER).min(MAX_FRAME));
        let mut wire = Wire::new(dev, max_frame);
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed ^ (name as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut iface = Interface::new(cfg, &mut wire, now);
        iface.update_ip_addrs(|addrs| {
            for a in &link.addresses {
                let _ = addrs.push(*a);
            }
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(eui64_link_local(mac)), 64));
        });
        if let Some(gw) = link.gateway_v4 {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = link.gateway_v6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let gateways = (link.gateway_v4.is_some(), link.gateway_v6.is_some());
        Port {
            wire,
            iface,
            services: Services::new(),
            udp: None,
            name,
            gateways,
        }
    }

    /// Opens the tunnel's UDP socket on `port`.
    pub fn open_udp(&mut self, port: u16) {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            ),
        );
        let _ = s.bind(port);
        self.udp = Some(self.services.sockets.add(s));
    }

    /// Whether this link is directly on `addr`'s subnet.
    pub fn on_link(&self, addr: &IpAddress) -> bool {
        self.iface.ip_addrs().iter().any(|c| c.contains_addr(addr))
    }

    /// Whether this link has a default route of `addr`'s family.
    pub fn has_gateway_for(&self, addr: &IpAddress) -> bool {
        match addr {
            IpAddress::Ipv4(_) => self.gateways.0,
            IpAddress::Ipv6(_) => self.gateways.1,
        }
    }

    /// Frames in and out, then the services. `true` if anything happened.
    pub fn poll(&mut self, now: Instant, console: &mut dyn Write) -> bool {
        let before = (self.wire.counters.rx_frames, self.wire.counters.tx_frames);
        self.iface
            .poll(now, &mut self.wire, &mut self.services.sockets);
        let busy = self.services.run(&self.iface, now, console);
        if busy {
            self.flush(now);
        }
        busy || before != (self.wire.counters.rx_frames, self.wire.counters.tx_frames)
    }

    /// Sends what sockets queued.
    pub fn flush(&mut self, now: Instant) {
        self.iface
            .poll(now, &mut self.wire, &mut self.services.sockets);
    }

    /// The next datagram the tunnel's socket received, copied into `buf`.
    pub fn recv_udp(&mut self, buf: &mut [u8]) -> Option<(usize, IpEndpoint)> {
        let h = self.udp?;
        let s = self.services.sockets.get_mut::<udp::Socket>(h);
        s.recv_slice(buf).ok().map(|(n, meta)| (n, meta.endpoint))
    }

    /// Queues `datagram` to `to` on the tunnel's socket; `false` if it has no room.
    pub fn send_udp(&mut self, to: IpEndpoint, datagram: &[u8]) -> bool {
        let Some(h) = self.udp else { return false };
        let s = self.services.sockets.get_mut::<udp::Socket>(h);
        s.send_slice(datagram, to).is_ok()
    }
}
