//! The forwarding plane. It owns every port: each NIC ([`Link`]), the WireGuard tunnel and
//! the appliance's own host stack (the [`LocalPort`], an IP-medium device whose smoltcp
//! interface holds all of the appliance's addresses). A frame comes in on a port and the
//! router decides: answer it (ARP, NDP, DHCP, router solicitations), deliver it to the
//! local stack, decrypt it, or forward it (longest-prefix match, TTL, ICMP errors, MTU) to
//! a link or into the tunnel. Transit packets never pass through smoltcp; its wire module
//! is used only to parse and emit headers.
//!
//! Private by default: an underlay link carries only the appliance's own traffic and the
//! tunnel's datagrams. Segments reach each other and the tunnel; they reach an underlay
//! link only through one with `Egress = nat` (IPv4, masqueraded). Nothing from an underlay
//! link is forwarded, except the replies of masqueraded connections.
//!
//! Files: this one (the router: ingress, routing and forwarding, the tunnel's glue, ICMP
//! errors), `ports` (a link, the tunnel port, the local port), `control` (what the router
//! answers itself: ARP, NDP, router advertisements, DHCP), `packet` (header writers,
//! checksums, ICMP errors, fragmentation), `neighbor` (the bounded ARP/NDP cache), `ring`
//! (fixed packet queues), `dhcp` (the segment's DHCPv4 server), `visitors` (workloads
//! visiting a segment with another segment's address), `ra` (router advertisements), `nat`
//! (masquerade), `mycelium_port` (the Planetary Network's port and its privacy rules).

mod control;
pub mod dhcp;
pub mod mycelium_port;
pub mod nat;
pub mod neighbor;
pub mod packet;
mod ports;
pub mod ra;
pub mod ring;
pub mod routing_port;
pub mod table;
pub mod visitors;

pub use mycelium_port::{MyceliumPort, MyceliumPortCounters};
pub use ports::{eui64_link_local, Link, LinkCounters, LocalPort, TunnelPort};
pub use routing_port::{tunnel_link_local, RoutingDatagram, RoutingPort, BABEL_GROUP, BABEL_PORT};
pub use table::{Hop, Origin, Route, RouteTable};

use crate::tunnel::{DeviceResult, Now, PeerId};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use neighbor::Lookup;
use packet::*;
use ports::multicast_mac;
use rand_core::CryptoRngCore;
use ring::{Pending, MAX_PACKET};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpCidr, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv6Address, Ipv6Packet,
};
use vdcnet_hal::net::NetDevice;

/// Largest Ethernet frame (without FCS) the router reads or writes.
pub const MAX_FRAME: usize = 1514;
/// Frames taken from one NIC per poll before the next port gets its turn.
const BURST: usize = 32;
/// Packets waiting for a neighbour, across all links.
const PENDING: usize = 32;
/// Queue depth each way between the router and the local stack.
/// Packets waiting between the router and the local stack, each way (a gateway's 1,000
/// connections may all speak at once).
const LOCAL_RING: usize = 256;
/// Room in front of an encrypted datagram for its IPv6 + UDP headers.
const HEADROOM: usize = IPV6_HEADER + UDP_HEADER;
/// Buffer for one datagram: headroom plus the largest WireGuard message we build.
const DGRAM_BUF: usize = HEADROOM + 2048;
/// ICMP errors the router sends per [`ICMP_WINDOW`] at most (RFC 1812 §4.3.2.8).
const ICMP_BUDGET: u32 = 50;
const ICMP_WINDOW: Duration = Duration::from_millis(100);
/// Masqueraded connections per egress link.
const NAT_CONNECTIONS: usize = 1024;
/// WireGuard overhead: outer IPv6 (40) + UDP (8) + data header (16) + tag (16).
pub const TUNNEL_OVERHEAD: usize = 80;

/// Why a packet was dropped; each reason has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Discard {
    /// Truncated or inconsistent headers, bad IPv4 header checksum.
    Malformed,
    /// Unicast to another MAC, or an EtherType we do not speak.
    NotForUs,
    /// Against the privacy rules: underlay ↔ segment, or tunnel → not a segment.
    Private,
    /// A segment host sent with a source address outside its segment.
    Spoofed,
    /// No route to the destination.
    NoRoute,
    /// TTL or hop limit ran out.
    TtlExceeded,
    /// Larger than the next hop's MTU with DF set (IPv4) or any IPv6 packet.
    TooBig,
    /// The next hop never answered ARP/NDP, or waited too long, or the neighbour cache
    /// was full of neighbours in use or awaiting answers.
    NeighborUnreachable,
    /// The next hop failed to answer recently: dropped at once, without a new probe.
    NeighborFailed,
    /// The pool of packets waiting for a neighbour overflowed.
    HoldOverflow,
    /// The NIC's transmit ring was full.
    TxFull,
    /// A queue between the router and the local stack was full (either way).
    LocalFull,
    /// Would go back into the tunnel peer it came from.
    Hairpin,
    /// Multicast or broadcast we do not serve; fragments for the local stack (it does not
    /// reassemble).
    Unsupported,
    /// Masquerade found no connection for an inbound packet, or could not add one.
    Nat,
    /// A DHCP message the server could not use.
    Dhcp,
}

/// Every [`Discard`], in counter order.
pub const ALL_DROPS: [Discard; 16] = [
    Discard::Malformed,
    Discard::NotForUs,
    Discard::Private,
    Discard::Spoofed,
    Discard::NoRoute,
    Discard::TtlExceeded,
    Discard::TooBig,
    Discard::NeighborUnreachable,
    Discard::NeighborFailed,
    Discard::HoldOverflow,
    Discard::TxFull,
    Discard::LocalFull,
    Discard::Hairpin,
    Discard::Unsupported,
    Discard::Nat,
    Discard::Dhcp,
];

/// What the router did, for the stats line and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets forwarded between ports (each fragment counts).
    pub forwarded: u64,
    /// Packets handed to the tunnel / received from it.
    pub to_tunnel: u64,
    pub from_tunnel: u64,
    /// Packets delivered to the local stack / sent by it.
    pub local_in: u64,
    pub local_out: u64,
    /// ICMP errors sent, and those the rate limit suppressed.
    pub icmp_errors: u64,
    pub icmp_suppressed: u64,
    /// ARP requests and neighbour solicitations sent, and those the links' probe budgets
    /// suppressed.
    pub neighbor_probes: u64,
    pub probes_suppressed: u64,
    /// DHCP replies sent and router advertisements sent.
    pub dhcp_replies: u64,
    pub router_adverts: u64,
    /// Drops by [`Discard`] reason.
    pub drops: [u64; ALL_DROPS.len()],
}

impl Counters {
    pub fn drop_count(&self, reason: Discard) -> u64 {
        self.drops[reason as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Routes the table holds beyond the config's: room for what the routing protocol learns.
pub const LEARNED_ROUTES: usize = 256;

/// Where a packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    Link(usize),
    /// Decrypted, from this tunnel peer.
    Peer(PeerId),
    /// The local stack, or the router itself (`errors: false` for packets the router made,
    /// so an ICMP error never causes another).
    Local {
        errors: bool,
    },
}

/// The forwarding plane; see the module documentation.
pub struct Router<D, R> {
    pub links: Vec<Link<D>>,
    pub tunnel: Option<TunnelPort<R>>,
    pub local: LocalPort,
    /// The routing protocol's datagrams, when the appliance runs it.
    pub routing: Option<RoutingPort>,
    /// The Mycelium overlay, when the appliance is a node (`mycelium_port`).
    pub mycelium: Option<MyceliumPort>,
    routes: RouteTable,
    /// Addresses the tunnel's `[Interface]` gives the appliance.
    tunnel_addrs: Vec<IpCidr>,
    pending: Pending,
    rx: Box<[u8]>,
    out: Box<[u8]>,
    scratch: Box<[u8]>,
    frag: Box<[u8]>,
    held: Box<[u8]>,
    now: Instant,
    wall_ns: u64,
    icmp_window: (Instant, u32),
    counters: Counters,
    /// The visitors' generations summed as the host routes last saw them.
    visitors_seen: u64,
}

fn to_core(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

fn from_core(a: IpAddr) -> IpAddress {
    match a {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    }
}

fn take(b: &mut Box<[u8]>) -> Box<[u8]> {
    core::mem::take(b)
}

/// The destination address of an IP packet with a valid header.
fn dst_of(pkt: &[u8]) -> IpAddress {
    if pkt[0] >> 4 == 6 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&pkt[24..40]);
        IpAddress::Ipv6(Ipv6Address::from_octets(b))
    } else {
        IpAddress::Ipv4(Ipv4Address::from_octets([
            pkt[16], pkt[17], pkt[18], pkt[19],
        ]))
    }
}

fn src_of(pkt: &[u8]) -> IpAddress {
    if pkt[0] >> 4 == 6 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&pkt[8..24]);
        IpAddress::Ipv6(Ipv6Address::from_octets(b))
    } else {
        IpAddress::Ipv4(Ipv4Address::from_octets([
            pkt[12], pkt[13], pkt[14], pkt[15],
        ]))
    }
}

/// Checks an IP packet's header against its length; returns the packet's real length
/// (Ethernet may pad short frames), or `None` if it is malformed.
fn check_ip(pkt: &[u8]) -> Option<usize> {
    match pkt.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(pkt).ok()?;
            if !p.verify_checksum() || usize::from(p.header_len()) < IPV4_HEADER {
                return None;
            }
            Some(usize::from(p.total_len()))
        }
        6 => {
            let p = Ipv6Packet::new_checked(pkt).ok()?;
            Some(p.total_len())
        }
        _ => None,
    }
}

impl<D: NetDevice, R: CryptoRngCore> Router<D, R> {
    /// A router over `links` and the optional tunnel; `tunnel_addrs` are the `[Interface]`
    /// addresses (held by the local stack like the links' own).
    pub fn new(
        links: Vec<Link<D>>,
        tunnel: Option<TunnelPort<R>>,
        tunnel_addrs: Vec<IpCidr>,
        now: Instant,
    ) -> Router<D, R> {
        let allowed_total = tunnel.as_ref().map_or(0, |t| {
            t.device
                .peers()
                .map(|(id, _)| t.device.allowed_ips(id).count())
                .sum()
        });
        let visiting: usize = links.iter().map(|l| l.visitors.len()).sum();
        let mut routes = RouteTable::with_capacity(
            links.len() * 8 + visiting + allowed_total + 2 + LEARNED_ROUTES,
        );
        // The config's routes fit: the table was sized for them. One origin at a time, so
        // the longest-prefix index is built once per origin.
        let connected = links
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.addrs.iter().map(move |c| (*c, Hop::OnLink(i), 0)));
        routes.replace_origin(Origin::Connected, connected);
        // The first link with a gateway of a family holds the default route of it (a later
        // route of the same prefix replaces an earlier one).
        let gateways = links.iter().enumerate().rev().flat_map(|(i, l)| {
            let v4 = l.gateway_v4.map(|gw| {
                let any = IpCidr::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), 0);
                (any, Hop::Via(i, IpAddress::Ipv4(gw)), 0)
            });
            let v6 = l.gateway_v6.map(|gw| {
                let any = IpCidr::new(IpAddress::Ipv6(Ipv6Address::UNSPECIFIED), 0);
                (any, Hop::Via(i, IpAddress::Ipv6(gw)), 0)
            });
            v4.into_iter().chain(v6)
        });
        routes.replace_origin(Origin::Static, gateways);
        if let Some(t) = &tunnel {
            let allowed = t.device.peers().flat_map(|(id, _)| {
                t.device.allowed_ips(id).map(move |p| {
                    (
                        IpCidr::new(from_core(p.addr), p.prefix_len),
                        Hop::Peer(id),
                        0,
                    )
                })
            });
            routes.replace_origin(Origin::AllowedIps, allowed);
        }
        let mut local_mtu = links
            .iter()
            .map(|l| l.mtu)
            .max()
            .unwrap_or(1500)
            .min(MAX_PACKET);
        if let Some(t) = &tunnel {
            local_mtu = local_mtu.min(t.mtu);
        }
        Router {
            links,
            tunnel,
            local: LocalPort::new(local_mtu),
            routing: None,
            mycelium: None,
            routes,
            tunnel_addrs,
            pending: Pending::new(PENDING),
            rx: vec![0u8; MAX_FRAME].into_boxed_slice(),
            out: vec![0u8; DGRAM_BUF].into_boxed_slice(),
            scratch: vec![0u8; MAX_FRAME].into_boxed_slice(),
            frag: vec![0u8; MAX_FRAME].into_boxed_slice(),
            held: vec![0u8; MAX_FRAME].into_boxed_slice(),
            now,
            wall_ns: 0,
            icmp_window: (now, 0),
            counters: Counters::default(),
            visitors_seen: 0,
        }
    }

    /// Every address the local stack must hold: the tunnel's, the segments', then the
    /// underlay links'. smoltcp takes the first address of a family as the source toward
    /// destinations off its subnets, so the private addresses come first: the tunnel
    /// accepts only those, and [`Router::forward`] keeps them off the underlay.
    pub fn local_addresses(&self) -> Vec<IpCidr> {
        let mut v: Vec<IpCidr> = self.tunnel_addrs.clone();
        for segment in [true, false] {
            for l in self.links.iter().filter(|l| l.is_segment() == segment) {
                v.extend(l.addrs.iter().copied());
            }
        }
        v.extend(self.mycelium_local_address());
        v
    }

    /// The visitors present on the segments now, as host routes to announce.
    pub fn visiting_hosts(&self) -> Vec<IpCidr> {
        self.links
            .iter()
            .flat_map(|l| l.visitors.present())
            .map(|a| IpCidr::new(IpAddress::Ipv4(a), 32))
            .collect()
    }

    /// What the segments' visitors did, summed; `None` without any visiting lease.
    pub fn visitor_counters(&self) -> Option<visitors::VisitorCounters> {
        let mut with = self
            .links
            .iter()
            .filter(|l| !l.visitors.is_empty())
            .peekable();
        with.peek()?;
        let mut sum = visitors::VisitorCounters::default();
        for l in with {
            let c = l.visitors.counters;
            sum.arrived += c.arrived;
            sum.left += c.left;
            sum.silent += c.silent;
            sum.probes += c.probes;
        }
        Some(sum)
    }

    /// Changes whenever a visitor arrives or leaves any segment.
    pub fn visitors_generation(&self) -> u64 {
        self.links.iter().map(|l| l.visitors.generation()).sum()
    }

    /// Probes the visitors that fell silent and keeps the host routes to the present ones.
    fn serve_visitors(&mut self) {
        let now_secs = self.now_secs();
        for j in 0..self.links.len() {
            if self.links[j].visitors.is_empty() {
                continue;
            }
            let mut probes: heapless::Vec<(EthernetAddress, Ipv4Address), 8> = heapless::Vec::new();
            self.links[j].visitors.poll(self.now, now_secs, |mac, ip| {
                // More than 8 due at once wait for the next poll.
                let _ = probes.push((mac, ip));
            });
            for (mac, ip) in probes {
                self.arp_request(j, mac, ip);
            }
        }
        let generation = self.visitors_generation();
        if generation != self.visitors_seen {
            self.visitors_seen = generation;
            let hosts: Vec<(IpCidr, Hop, u16)> = self
                .links
                .iter()
                .enumerate()
                .flat_map(|(j, l)| {
                    l.visitors
                        .present()
                        .map(move |a| (IpCidr::new(IpAddress::Ipv4(a), 32), Hop::OnLink(j), 0))
                })
                .collect();
            self.routes.replace_origin(Origin::Visitor, hosts);
        }
    }

    /// The route for `a`, for callers that check reachability (the ping prober).
    pub fn has_route(&self, a: IpAddress) -> bool {
        self.route(a).is_some()
    }

    fn route(&self, a: IpAddress) -> Option<Hop> {
        match self.routes.lookup(a)?.hop {
            Hop::Peer(_) if self.tunnel.is_none() => None,
            hop => Some(hop),
        }
    }

    /// The route table, for status.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The route table, for the routing protocol to write its routes.
    pub fn routes_mut(&mut self) -> &mut RouteTable {
        &mut self.routes
    }

    /// What the router did, with the local stack's packets its queue turned away counted
    /// as [`Discard::LocalFull`] and the links' suppressed probes summed.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.drops[Discard::LocalFull as usize] += self.local.tx_dropped;
        c.probes_suppressed = self.links.iter().map(|l| l.neigh.suppressed).sum();
        c
    }

    /// The current time in whole seconds, the clock of the DHCP leases and the masquerade.
    fn now_secs(&self) -> u64 {
        self.now.total_millis().max(0) as u64 / 1000
    }

    fn count(&mut self, reason: Discard) {
        self.counters.drops[reason as usize] += 1;
    }

    /// Does all the work there is: frames from every NIC, the tunnel's timers, held
    /// packets, router advertisements, and what the local stack sent. Returns whether
    /// anything happened.
    pub fn poll(&mut self, now: Instant, wall_ns: u64) -> bool {
        self.now = now;
        self.wall_ns = wall_ns;
        let mut busy = false;
        for i in 0..self.links.len() {
            for _ in 0..BURST {
                let mut rx = take(&mut self.rx);
                let n = self.links[i].dev.receive_with(|f| {
                    let n = f.len().min(rx.len());
                    rx[..n].copy_from_slice(&f[..n]);
                    n
                });
                if let Some(n) = n {
                    self.links[i].counters.rx_frames += 1;
                    self.frame_in(i, &mut rx[..n]);
                }
                self.rx = rx;
                if n.is_none() {
                    break;
                }
                busy = true;
            }
        }
        busy |= self.tunnel_timers();
        self.serve_visitors();
        self.service_pending();
        self.send_router_adverts();
        busy
    }

    /// Routes what the local stack sent. Returns whether there was anything.
    pub fn drain_local(&mut self) -> bool {
        let mut any = false;
        for _ in 0..LOCAL_RING {
            let mut buf = take(&mut self.held);
            let n = self.local.tx.pop_into(&mut buf);
            if let Some(n) = n {
                self.counters.local_out += 1;
                self.forward(From::Local { errors: true }, &mut buf[..n]);
            }
            self.held = buf;
            if n.is_none() {
                break;
            }
            any = true;
        }
        any
    }

    // ----- ingress -------------------------------------------------------------------

    fn malformed(&mut self, link: usize) {
        self.links[link].counters.malformed += 1;
        self.count(Discard::Malformed);
    }

    fn frame_in(&mut self, i: usize, frame: &mut [u8]) {
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return self.malformed(i);
        };
        let dst = eth.dst_addr();
        if dst != self.links[i].mac && !dst.is_broadcast() && !dst.is_multicast() {
            return self.count(Discard::NotForUs);
        }
        let src = eth.src_addr();
        if !src.is_unicast() {
            return self.malformed(i);
        }
        if !self.links[i].visitors.is_empty() {
            let now_secs = self.now_secs();
            self.links[i].visitors.heard(src, self.now, now_secs);
        }
        let ty = eth.ethertype();
        let payload = &mut frame[ETH_HEADER..];
        match ty {
            EthernetProtocol::Arp => self.arp_in(i, payload),
            EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => {
                let Some(len) = check_ip(payload) else {
                    return self.malformed(i);
                };
                let is_v6 = ty == EthernetProtocol::Ipv6;
                if (payload[0] >> 4 == 6) != is_v6 {
                    return self.malformed(i);
                }
                self.ip_in(i, src, &mut payload[..len]);
            }
            _ => self.count(Discard::NotForUs),
        }
    }

    /// Whether `dst` is an address the local stack holds that traffic from `from` may
    /// reach: an underlay link reaches only its own addresses; segments and the tunnel
    /// reach the segments' and the tunnel's addresses.
    fn local_for(&self, from: From, dst: IpAddress) -> Option<bool> {
        let own_link = self
            .links
            .iter()
            .position(|l| l.addrs.iter().any(|c| c.address() == dst));
        let tunnel_addr = self.tunnel_addrs.iter().any(|c| c.address() == dst);
        if own_link.is_none() && !tunnel_addr {
            return None;
        }
        let ok = match from {
            From::Local { .. } => true,
            From::Link(i) if !self.links[i].is_segment() => own_link == Some(i),
            From::Link(_) | From::Peer(_) => {
                tunnel_addr || own_link.is_some_and(|j| self.links[j].is_segment())
            }
        };
        Some(ok)
    }

    fn deliver_local(&mut self, pkt: &[u8]) {
        // The local stack does not reassemble: a fragment for it (say, of an oversized
        // WireGuard datagram) is counted here rather than lost without a trace.
        if is_fragment(pkt) {
            return self.count(Discard::Unsupported);
        }
        if self.local.rx.push(pkt) {
            self.counters.local_in += 1;
        } else {
            self.count(Discard::LocalFull);
        }
    }

    fn ip_in(&mut self, i: usize, src_mac: EthernetAddress, pkt: &mut [u8]) {
        let dst = dst_of(pkt);
        let src = src_of(pkt);
        let v6 = pkt[0] >> 4 == 6;
        // Control traffic the router answers itself.
        if v6 && pkt[6] == u8::from(IpProtocol::Icmpv6) && self.ndp_in(i, src_mac, pkt) {
            return;
        }
        if !v6 && pkt[9] == u8::from(IpProtocol::Udp) && self.dhcp_in(i, pkt) {
            return;
        }
        let multicast = match dst {
            IpAddress::Ipv4(a) => a.is_multicast() || self.links[i].is_v4_broadcast(a),
            IpAddress::Ipv6(a) => a.is_multicast(),
        };
        if multicast {
            return self.count(Discard::Unsupported);
        }
        // The tunnel's datagrams, straight from the frame.
        if !self.links[i].is_segment() && self.links[i].owns(dst) {
            if let Some(port) = self.tunnel.as_ref().map(|t| t.listen_port) {
                if let Some(range) = udp_payload_to(pkt, port) {
                    let from = SocketAddr::new(to_core(src), udp_src_port(pkt, range.start));
                    return self.tunnel_in(from, &pkt[range]);
                }
            }
        }
        // Replies of masqueraded connections: the only transit from an underlay.
        if !v6 && self.links[i].owns(dst) {
            let now_secs = self.now_secs();
            if let Some(nat) = self.links[i].nat.as_mut() {
                if nat.inbound(now_secs, pkt).is_ok() {
                    return self.unmasqueraded(i, pkt);
                }
            }
        }
        if v6 && self.mycelium_filter(From::Link(i), pkt) {
            return;
        }
        match self.local_for(From::Link(i), dst) {
            Some(true) => return self.deliver_local(pkt),
            Some(false) => {
                self.count(Discard::Private);
                if self.links[i].is_segment() {
                    self.prohibited(From::Link(i), pkt);
                }
                return;
            }
            None => {}
        }
        if !self.links[i].is_segment() {
            return self.count(Discard::Private);
        }
        // A segment host must use its segment's addresses (or, visiting, its own).
        let link = &self.links[i];
        let spoofed = match src {
            IpAddress::Ipv4(_) => !link.admits(src_mac, src),
            IpAddress::Ipv6(a) => !(link.on_link(src) || a.is_unicast_link_local()),
        };
        if spoofed {
            return self.count(Discard::Spoofed);
        }
        self.forward(From::Link(i), pkt);
    }

    /// Forwards a reply the masquerade of link `i` translated back to a segment host.
    fn unmasqueraded(&mut self, i: usize, pkt: &mut [u8]) {
        let dst = dst_of(pkt);
        match self.route(dst) {
            Some(Hop::OnLink(j)) if self.links[j].is_segment() => {
                if pkt[8] <= 1 {
                    self.count(Discard::TtlExceeded);
                    return self.icmp_error(From::Link(i), pkt, 11, 0, 0);
                }
                decrement_ttl(pkt);
                if pkt.len() > self.links[j].mtu {
                    return self.count(Discard::TooBig);
                }
                self.counters.forwarded += 1;
                self.send_ip(j, dst, pkt);
            }
            _ => self.count(Discard::Nat),
        }
    }

    // ----- the tunnel ----------------------------------------------------------------

    fn tunnel_in(&mut self, from: SocketAddr, datagram: &[u8]) {
        let Some(mut t) = self.tunnel.take() else {
            return;
        };
        let mut out = take(&mut self.out);
        // Reverse path: a peer may send from its AllowedIPs, from any source the route
        // table reaches through that peer, or from one it offered us a way to (traffic it
        // relays, whatever path our own route back takes: feasible-path uRPF). Link-local
        // sources are the routing protocol's, checked in `act`.
        let routes = &self.routes;
        let routing = self.routing.is_some();
        let mut accept = |peer: PeerId, src: IpAddr, allowed: bool| {
            allowed
                || routes.comes_back_through(from_core(src), peer)
                || (routing && matches!(src, IpAddr::V6(a) if a.is_unicast_link_local()))
        };
        let r = t
            .device
            .decapsulate_with(self.now, from, datagram, &mut out, &mut accept);
        let action = Action::of(r);
        self.tunnel = Some(t);
        self.act(action, &mut out);
        // A completed handshake releases the packets that waited for it.
        for _ in 0..BURST {
            let Some(t) = self.tunnel.as_mut() else { break };
            let r = t.device.dequeue(self.now, &mut out);
            let a = Action::of(r);
            if a == Action::Nothing {
                break;
            }
            self.act(a, &mut out);
        }
        self.out = out;
    }

    fn tunnel_timers(&mut self) -> bool {
        let mut busy = false;
        let mut out = take(&mut self.out);
        for _ in 0..BURST {
            let Some(t) = self.tunnel.as_mut() else { break };
            let wnow = Now {
                instant: self.now,
                wall_ns: self.wall_ns,
            };
            let a = Action::of(t.device.update_timers(wnow, &mut out));
            if a == Action::Nothing {
                break;
            }
            busy = true;
            self.act(a, &mut out);
        }
        self.out = out;
        busy
    }

    /// Carries out what the tunnel asked for; the bytes are in `buf`.
    fn act(&mut self, a: Action, buf: &mut [u8]) {
        match a {
            Action::Send(to, n) => {
                let mut d = self
                    .tunnel
                    .as_mut()
                    .map(|t| take(&mut t.dgram))
                    .unwrap_or_default();
                if d.len() >= HEADROOM + n {
                    d[HEADROOM..HEADROOM + n].copy_from_slice(&buf[..n]);
                    self.send_datagram(to, &mut d, n);
                }
                if let Some(t) = self.tunnel.as_mut() {
                    t.dgram = d;
                }
            }
            Action::Deliver(peer, n) => {
                self.counters.from_tunnel += 1;
                if check_ip(&buf[..n]).is_some() {
                    if self.routing_in(peer, &buf[..n]) {
                        return;
                    }
                    self.forward(From::Peer(peer), &mut buf[..n]);
                } else {
                    self.count(Discard::Malformed);
                }
            }
            Action::Nothing => {}
        }
    }

    /// Takes a decrypted packet with a link-local source: the routing protocol's datagram
    /// goes to its port, anything else is dropped (a peer's link-local address reaches
    /// nothing else). Returns whether the packet was taken.
    fn routing_in(&mut self, peer: PeerId, pkt: &[u8]) -> bool {
        let IpAddress::Ipv6(src) = src_of(pkt) else {
            return false;
        };
        if !src.is_unicast_link_local() {
            return false;
        }
        let IpAddress::Ipv6(dst) = dst_of(pkt) else {
            return false;
        };
        let mut scratch = take(&mut self.scratch);
        let taken = match self.routing.as_mut() {
            Some(port) if port.listens_on(dst) => match udp_payload_to(pkt, BABEL_PORT) {
                Some(range) => port.push(peer, src, &pkt[range], &mut scratch),
                None => false,
            },
            _ => false,
        };
        self.scratch = scratch;
        if !taken {
            self.count(Discard::Private);
        }
        true
    }

    /// Sends a routing protocol datagram to `peer`, from our tunnel link-local address to
    /// the Babel group, hop limit 1.
    pub fn send_routing(&mut self, peer: PeerId, payload: &[u8]) {
        let Some(src) = self.routing.as_ref().map(|p| p.link_local) else {
            return;
        };
        let n = IPV6_HEADER + UDP_HEADER + payload.len();
        let mtu = self.tunnel.as_ref().map_or(0, |t| t.mtu);
        if n > mtu.min(MAX_PACKET) {
            return self.count(Discard::TooBig);
        }
        let mut buf = take(&mut self.scratch);
        let udp = &mut buf[IPV6_HEADER..n];
        udp[UDP_HEADER..].copy_from_slice(payload);
        write_udp(udp, BABEL_PORT, BABEL_PORT, payload.len());
        udp6_checksum(udp, &src, &BABEL_GROUP);
        write_ipv6(
            &mut buf,
            src,
            BABEL_GROUP,
            IpProtocol::Udp,
            UDP_HEADER + payload.len(),
            1,
        );
        if let Some(p) = self.routing.as_mut() {
            p.counters.tx += 1;
        }
        self.send_to(Hop::Peer(peer), &mut buf[..n]);
        self.scratch = buf;
    }

    /// Sends the datagram at `d[HEADROOM..HEADROOM + n]` to `to` from the underlay link
    /// that reaches it, writing the UDP and IP headers in front of it.
    fn send_datagram(&mut self, to: SocketAddr, d: &mut [u8], n: usize) {
        let dst = from_core(to.ip());
        let port = self.tunnel.as_ref().map_or(0, |t| t.listen_port);
        let hop = match self.route(dst) {
            Some(Hop::OnLink(j)) if !self.links[j].is_segment() => (j, dst),
            Some(Hop::Via(j, gw)) if !self.links[j].is_segment() => (j, gw),
            _ => {
                // Fall back to any underlay link on the endpoint's subnet.
                match self
                    .links
                    .iter()
                    .position(|l| !l.is_segment() && l.on_link(dst))
                {
                    Some(j) => (j, dst),
                    None => return self.count(Discard::NoRoute),
                }
            }
        };
        let link = &self.links[hop.0];
        let start = match dst {
            IpAddress::Ipv4(d4) => {
                let Some(s) = link.first_v4() else {
                    return self.count(Discard::NoRoute);
                };
                let at = HEADROOM - UDP_HEADER - IPV4_HEADER;
                write_udp(&mut d[HEADROOM - UDP_HEADER..], port, to.port(), n);
                write_ipv4(&mut d[at..], s, d4, IpProtocol::Udp, UDP_HEADER + n, 64);
                at
            }
            IpAddress::Ipv6(d6) => {
                let Some(s) = link.first_v6() else {
                    return self.count(Discard::NoRoute);
                };
                write_udp(&mut d[HEADROOM - UDP_HEADER..], port, to.port(), n);
                udp6_checksum(&mut d[HEADROOM - UDP_HEADER..HEADROOM + n], &s, &d6);
                write_ipv6(d, s, d6, IpProtocol::Udp, UDP_HEADER + n, 64);
                0
            }
        };
        self.send_ip(hop.0, hop.1, &d[start..HEADROOM + n]);
    }

    // ----- forwarding ----------------------------------------------------------------

    /// Routes one IP packet (valid header, exact length) that came from `from`.
    fn forward(&mut self, from: From, pkt: &mut [u8]) {
        let v6 = pkt[0] >> 4 == 6;
        if v6 && !matches!(from, From::Link(_)) && self.mycelium_filter(from, pkt) {
            return;
        }
        let dst = dst_of(pkt);
        if let From::Link(_) | From::Peer(_) = from {
            match self.local_for(from, dst) {
                Some(true) => return self.deliver_local(pkt),
                Some(false) => return self.count(Discard::Private),
                None => {}
            }
        } else if self.local_for(from, dst) == Some(true) {
            // The local stack talking to itself.
            return self.deliver_local(pkt);
        }
        let errors = !matches!(from, From::Local { errors: false });
        let Some(target) = self.route(dst) else {
            self.count(Discard::NoRoute);
            if errors {
                // Destination unreachable: no route.
                if v6 {
                    self.icmp_error(from, pkt, 1, 0, 0);
                } else {
                    self.icmp_error(from, pkt, 3, 0, 0);
                }
            }
            return;
        };
        let egress_segment = |r: &Self, j: usize| r.links[j].is_segment();
        let src = src_of(pkt);
        let (allowed, nat) = match (from, target) {
            // The appliance's own packets leave an underlay link from that link's address
            // (masqueraded when it has Egress = nat), and enter the tunnel from a private one.
            (From::Local { .. }, Hop::OnLink(j) | Hop::Via(j, _)) => {
                if self.links[j].is_segment() || self.links[j].owns(src) {
                    (true, false)
                } else {
                    let nat = self.links[j].nat.is_some() && !v6;
                    (nat, nat)
                }
            }
            (From::Local { .. }, Hop::Peer(_)) => {
                let underlay_src = self.links.iter().any(|l| !l.is_segment() && l.owns(src));
                (!underlay_src, false)
            }
            (From::Link(i), Hop::Peer(_)) => (self.links[i].is_segment(), false),
            (From::Link(i), Hop::OnLink(j) | Hop::Via(j, _)) => {
                if !self.links[i].is_segment() {
                    (false, false)
                } else if egress_segment(self, j) {
                    (true, false)
                } else {
                    let nat = self.links[j].nat.is_some() && !v6;
                    (nat, nat)
                }
            }
            (From::Peer(_), Hop::OnLink(j)) => (egress_segment(self, j), false),
            // Relaying: from one peer to another, never back to the sender.
            (From::Peer(a), Hop::Peer(b)) => {
                if a == b {
                    self.count(Discard::Hairpin);
                    return;
                }
                (true, false)
            }
            (From::Peer(_), Hop::Via(..)) => (false, false),
        };
        if !allowed {
            self.count(Discard::Private);
            if let From::Link(_) = from {
                self.prohibited(from, pkt);
            }
            return;
        }
        // In the order Linux checks them: TTL, then the next hop's MTU (the errors quote
        // the packet as it arrived), then the TTL is spent and the source masqueraded.
        let transit = !matches!(from, From::Local { .. });
        if transit {
            let ttl = if v6 { pkt[7] } else { pkt[8] };
            if ttl <= 1 {
                self.count(Discard::TtlExceeded);
                if v6 {
                    self.icmp_error(from, pkt, 3, 0, 0);
                } else {
                    self.icmp_error(from, pkt, 11, 0, 0);
                }
                return;
            }
        }
        let mtu = match target {
            Hop::Peer(_) => self.tunnel.as_ref().map_or(0, |t| t.mtu),
            Hop::OnLink(j) | Hop::Via(j, _) => self.links[j].mtu,
        };
        let too_big = pkt.len() > mtu;
        if too_big && (v6 || pkt[6] & 0x40 != 0) {
            self.count(Discard::TooBig);
            if errors {
                if v6 {
                    self.icmp_error(from, pkt, 2, 0, mtu as u32);
                } else {
                    self.icmp_error(from, pkt, 3, 4, mtu as u32);
                }
            }
            return;
        }
        if transit {
            if v6 {
                pkt[7] -= 1;
            } else {
                decrement_ttl(pkt);
            }
        }
        if nat {
            let j = match target {
                Hop::OnLink(j) | Hop::Via(j, _) => j,
                Hop::Peer(_) => return,
            };
            let now_secs = self.now_secs();
            let r = self.links[j]
                .nat
                .as_mut()
                .map(|n| n.outbound(now_secs, pkt));
            if !matches!(r, Some(Ok(()))) {
                return self.count(Discard::Nat);
            }
        }
        if too_big {
            // IPv4 without DF: fragments of at most the MTU.
            let Some((n, per)) = fragment_plan(pkt, mtu) else {
                return self.count(Discard::TooBig);
            };
            let mut frag = take(&mut self.frag);
            for k in 0..n {
                if let Some(len) = fragment(pkt, per, k, &mut frag) {
                    self.counters.forwarded += 1;
                    self.send_to(target, &mut frag[..len]);
                }
            }
            self.frag = frag;
            return;
        }
        if transit {
            self.counters.forwarded += 1;
        }
        self.send_to(target, pkt);
    }

    fn send_to(&mut self, target: Hop, pkt: &mut [u8]) {
        match target {
            Hop::OnLink(j) => {
                let dst = dst_of(pkt);
                self.send_ip(j, dst, pkt)
            }
            Hop::Via(j, gw) => self.send_ip(j, gw, pkt),
            Hop::Peer(id) => {
                let Some(mut t) = self.tunnel.take() else {
                    return self.count(Discard::NoRoute);
                };
                let mut d = take(&mut t.dgram);
                let wnow = Now {
                    instant: self.now,
                    wall_ns: self.wall_ns,
                };
                let a = Action::of(t.device.encapsulate_to(wnow, id, pkt, &mut d[HEADROOM..]));
                self.tunnel = Some(t);
                // Anything else was queued until a handshake completes, or refused
                // (counted by the tunnel).
                if let Action::Send(to, n) = a {
                    self.counters.to_tunnel += 1;
                    self.send_datagram(to, &mut d, n);
                }
                if let Some(t) = self.tunnel.as_mut() {
                    t.dgram = d;
                }
            }
        }
    }

    /// Sends an IP packet to `hop` on link `j`, resolving its MAC first.
    fn send_ip(&mut self, j: usize, hop: IpAddress, pkt: &[u8]) {
        let now = self.now;
        let ty = if pkt[0] >> 4 == 6 {
            EthernetProtocol::Ipv6
        } else {
            EthernetProtocol::Ipv4
        };
        let link = &mut self.links[j];
        // Broadcast and multicast need no resolution.
        let direct = match hop {
            IpAddress::Ipv4(a) if link.is_v4_broadcast(a) => Some(EthernetAddress::BROADCAST),
            IpAddress::Ipv6(a) if a.is_multicast() => Some(multicast_mac(a)),
            _ => None,
        };
        if let Some(mac) = direct {
            link.transmit(mac, ty, pkt);
            return;
        }
        match link.neigh.lookup(hop, now) {
            Lookup::Ready { mac, probe } => {
                if !link.transmit(mac, ty, pkt) {
                    self.count(Discard::TxFull);
                }
                if probe {
                    self.probe(j, hop);
                }
            }
            Lookup::Probe => {
                self.hold(j, hop, pkt);
                self.probe(j, hop);
            }
            Lookup::Wait => self.hold(j, hop, pkt),
            Lookup::Failed => {
                let n = self.pending.drop_for(j, hop);
                self.counters.drops[Discard::NeighborUnreachable as usize] += n;
                self.count(Discard::NeighborFailed);
            }
            Lookup::Full => self.count(Discard::NeighborUnreachable),
        }
    }

    fn hold(&mut self, j: usize, hop: IpAddress, pkt: &[u8]) {
        if self.pending.hold(j, hop, pkt, self.now) {
            self.count(Discard::HoldOverflow);
        }
    }

    /// Sends the packets that waited for `hop` on link `j`, now that it answered.
    fn flush_held(&mut self, j: usize, hop: IpAddress) {
        while let Some(k) = self.pending.find(j, hop) {
            let mut buf = take(&mut self.held);
            if let Some(n) = self.pending.take(k, &mut buf) {
                self.send_ip(j, hop, &buf[..n]);
            }
            self.held = buf;
        }
    }

    /// Re-probes next hops that packets wait for and drops packets that waited too long.
    fn service_pending(&mut self) {
        let expired = self.pending.expire(self.now);
        self.counters.drops[Discard::NeighborUnreachable as usize] += expired;
        let mut hops: heapless::Vec<(usize, IpAddress), PENDING> = heapless::Vec::new();
        for h in self.pending.waiting() {
            let _ = hops.push(h);
        }
        for (j, hop) in hops {
            match self.links[j].neigh.lookup(hop, self.now) {
                Lookup::Probe => self.probe(j, hop),
                Lookup::Failed | Lookup::Full => {
                    let n = self.pending.drop_for(j, hop);
                    self.counters.drops[Discard::NeighborUnreachable as usize] += n;
                }
                Lookup::Ready { .. } => self.flush_held(j, hop),
                Lookup::Wait => {}
            }
        }
    }

    /// Tells a segment host its packet's destination is off limits (administratively
    /// prohibited).
    fn prohibited(&mut self, from: From, pkt: &[u8]) {
        if pkt[0] >> 4 == 6 {
            self.icmp_error(from, pkt, 1, 1, 0);
        } else {
            self.icmp_error(from, pkt, 3, 13, 0);
        }
    }

    /// Sends an ICMP error about `offender` back toward its source, from an address of the
    /// port it came in on; rate limited.
    fn icmp_error(&mut self, from: From, offender: &[u8], ty: u8, code: u8, word: u32) {
        if let From::Local { errors: false } = from {
            return;
        }
        let (start, sent) = self.icmp_window;
        if self.now - start >= ICMP_WINDOW {
            self.icmp_window = (self.now, 0);
        } else if sent >= ICMP_BUDGET {
            self.counters.icmp_suppressed += 1;
            return;
        }
        let v6 = offender[0] >> 4 == 6;
        let link = match from {
            From::Link(i) => Some(i),
            _ => self.links.iter().position(|l| l.is_segment()),
        };
        let mut buf = take(&mut self.scratch);
        let n = if v6 {
            let src = link.and_then(|i| self.links[i].first_v6()).or_else(|| {
                self.tunnel_addrs.iter().find_map(|c| match c {
                    IpCidr::Ipv6(c) => Some(c.address()),
                    IpCidr::Ipv4(_) => None,
                })
            });
            src.and_then(|s| icmpv6_error(&mut buf, s, offender, ty, code, word))
        } else {
            let src = link.and_then(|i| self.links[i].first_v4()).or_else(|| {
                self.tunnel_addrs.iter().find_map(|c| match c {
                    IpCidr::Ipv4(c) => Some(c.address()),
                    IpCidr::Ipv6(_) => None,
                })
            });
            src.and_then(|s| icmpv4_error(&mut buf, s, offender, ty, code, word))
        };
        if let Some(n) = n {
            self.icmp_window.1 += 1;
            self.counters.icmp_errors += 1;
            self.forward(From::Local { errors: false }, &mut buf[..n]);
        }
        self.scratch = buf;
    }
}

/// Whether `pkt` (valid IP header) is a fragment: IPv4 with MF or an offset, IPv6 with a
/// fragment header right after the fixed one.
fn is_fragment(pkt: &[u8]) -> bool {
    if pkt[0] >> 4 == 6 {
        pkt[6] == 44
    } else {
        u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0
    }
}

/// If `pkt` (valid IP header) is an unfragmented UDP datagram to `port`, the range of
/// its payload within `pkt`.
fn udp_payload_to(pkt: &[u8], port: u16) -> Option<core::ops::Range<usize>> {
    let (proto, start) = if pkt[0] >> 4 == 6 {
        (pkt[6], IPV6_HEADER)
    } else {
        let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
        if frag != 0 {
            return None;
        }
        (pkt[9], usize::from(pkt[0] & 0x0f) * 4)
    };
    if proto != u8::from(IpProtocol::Udp) || pkt.len() < start + UDP_HEADER {
        return None;
    }
    let u = &pkt[start..];
    if u16::from_be_bytes([u[2], u[3]]) != port {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
    if len < UDP_HEADER || start + len > pkt.len() {
        return None;
    }
    Some(start + UDP_HEADER..start + len)
}

fn udp_src_port(pkt: &[u8], payload_start: usize) -> u16 {
    let h = payload_start - UDP_HEADER;
    u16::from_be_bytes([pkt[h], pkt[h + 1]])
}

/// A tunnel result without its borrow of the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Send(SocketAddr, usize),
    Deliver(PeerId, usize),
    Nothing,
}

impl Action {
    fn of(r: DeviceResult<'_>) -> Action {
        match r {
            DeviceResult::WriteToNetwork { to, datagram, .. } => Action::Send(to, datagram.len()),
            DeviceResult::WriteToTunnelV4 { peer, packet, .. }
            | DeviceResult::WriteToTunnelV6 { peer, packet, .. } => {
                Action::Deliver(peer, packet.len())
            }
            DeviceResult::Done | DeviceResult::Err(_) => Action::Nothing,
        }
    }
}
