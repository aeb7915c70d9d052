//! The switch's NAT filter: a stateful firewall in front of one port, the way a home
//! router's NAT treats the host behind it.
//!
//! The node behind it may send anything. What comes back to it passes only if it belongs
//! to a flow the node started: a UDP or TCP packet from the same remote address and port
//! to the same local port as an outbound packet seen in the last [`FLOW_TIMEOUT`]
//! (refreshed by every outbound packet of the flow, like conntrack's UDP timeout), or an
//! ICMP (v4 or v6) echo reply to one of its echo requests (same remote, same identifier).
//! Everything else addressed to it by unicast IP is dropped: unsolicited UDP/TCP, echo
//! requests, ICMP errors, IPv4 fragments after the first, IPv6 packets with extension
//! headers and unparseable IP. Non-IP frames (ARP), broadcast and multicast frames, and
//! IPv6 neighbour discovery (ICMPv6 133..=137) always pass, so the node keeps its
//! neighbours.
//!
//! It filters like an address- and port-dependent NAT but rewrites nothing: the node keeps
//! its own underlay address, and its peers see that address as the flow's source. For
//! WireGuard that is what matters: the others cannot start a handshake to it (their
//! initiations are dropped), and once it has sent a handshake or a keepalive to a peer,
//! that peer's answers pass for as long as the node keeps the flow alive.
//!
//! Sans-I/O: [`NatFilter::outbound`] and [`NatFilter::admits`] take `now`. The flow table is
//! bounded ([`MAX_FLOWS`]); when it is full, expired flows go first, then the oldest.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a flow stays open without outbound traffic (conntrack's UDP default).
pub const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// Most flows one filter remembers.
pub const MAX_FLOWS: usize = 4096;

/// One flow as seen from the node behind the filter.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Flow {
    /// 6 (TCP), 17 (UDP) or 1 / 58 (ICMP echo).
    proto: u8,
    remote: IpAddr,
    /// The remote port; for ICMP echo, the identifier.
    remote_port: u16,
    /// The node's port; 0 for ICMP echo.
    local_port: u16,
}

/// Which way a packet crosses the filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the node: its source is local.
    Out,
    /// To the node: its source is the remote end.
    In,
}

/// What a frame is, to the filter.
enum Seen {
    /// Always passes: not IP, a group destination, or neighbour discovery.
    Pass,
    /// Part of this flow.
    Flow(Flow),
    /// Unicast IP that can belong to no flow (errors, fragments, garbage).
    Stray,
}

/// The flows one node started, with when each was last refreshed.
#[derive(Debug, Default)]
pub struct NatFilter {
    flows: HashMap<Flow, Instant>,
}

impl NatFilter {
    /// An empty filter: nothing may come in yet.
    pub fn new() -> NatFilter {
        NatFilter::default()
    }

    /// How many flows are open at `now`.
    #[cfg(test)]
    pub fn open_flows(&self, now: Instant) -> usize {
        self.flows
            .values()
            .filter(|&&t| now.saturating_duration_since(t) <= FLOW_TIMEOUT)
            .count()
    }

    /// A frame the node sent: opens or refreshes its flow.
    pub fn outbound(&mut self, frame: &[u8], now: Instant) {
        let Seen::Flow(flow) = classify(frame, Way::Out) else {
            return;
        };
        if self.flows.len() >= MAX_FLOWS && !self.flows.contains_key(&flow) {
            self.flows
                .retain(|_, &mut t| now.saturating_duration_since(t) <= FLOW_TIMEOUT);
            if self.flows.len() >= MAX_FLOWS {
                if let Some(oldest) = self.flows.iter().min_by_key(|(_, &t)| t).map(|(f, _)| *f) {
                    self.flows.remove(&oldest);
                }
            }
        }
        self.flows.insert(flow, now);
    }

    /// Whether a frame for the node may reach it at `now`.
    pub fn admits(&self, frame: &[u8], now: Instant) -> bool {
        match classify(frame, Way::In) {
            Seen::Pass => true,
            Seen::Stray => false,
            Seen::Flow(flow) => self
                .flows
                .get(&flow)
                .is_some_and(|&t| now.saturating_duration_since(t) <= FLOW_TIMEOUT),
        }
    }
}

/// Reads the frame's flow, seen from the node (`way` says which end is local).
fn classify(frame: &[u8], way: Way) -> Seen {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Seen::Stray;
    };
    if eth.dst_addr().is_multicast() || eth.dst_addr().is_broadcast() {
        return Seen::Pass;
    }
    let (proto, src, dst, transport): (IpProtocol, IpAddr, IpAddr, &[u8]) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return Seen::Stray;
            };
            if ip.frag_offset() != 0 {
                return Seen::Stray;
            }
            (
                ip.next_header(),
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.payload(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return Seen::Stray;
            };
            (
                ip.next_header(),
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.payload(),
            )
        }
        _ => return Seen::Pass,
    };
    let remote = if way == Way::Out { dst } else { src };
    let ports = |s: u16, d: u16| match way {
        Way::Out => (d, s),
        Way::In => (s, d),
    };
    let (proto_num, remote_port, local_port) = match proto {
        IpProtocol::Udp => match UdpPacket::new_checked(transport) {
            Ok(udp) => {
                let (r, l) = ports(udp.src_port(), udp.dst_port());
                (17, r, l)
            }
            Err(_) => return Seen::Stray,
        },
        IpProtocol::Tcp => match TcpPacket::new_checked(transport) {
            Ok(tcp) => {
                let (r, l) = ports(tcp.src_port(), tcp.dst_port());
                (6, r, l)
            }
            Err(_) => return Seen::Stray,
        },
        IpProtocol::Icmp => {
            let Ok(icmp) = Icmpv4Packet::new_checked(transport) else {
                return Seen::Stray;
            };
            let want = match way {
                Way::Out => Icmpv4Message::EchoRequest,
                Way::In => Icmpv4Message::EchoReply,
            };
            if icmp.msg_type() != want {
                return Seen::Stray;
            }
            (1, icmp.echo_ident(), 0)
        }
        IpProtocol::Icmpv6 => {
            // Neighbour discovery passes whatever it holds: the node judges it.
            if transport.first().is_some_and(|t| (133..=137).contains(t)) {
                return Seen::Pass;
            }
            let Ok(icmp) = Icmpv6Packet::new_checked(transport) else {
                return Seen::Stray;
            };
            let t = icmp.msg_type();
            let want = match way {
                Way::Out => Icmpv6Message::EchoRequest,
                Way::In => Icmpv6Message::EchoReply,
            };
            if t != want {
                return Seen::Stray;
            }
            (58, icmp.echo_ident(), 0)
        }
        _ => return Seen::Stray,
    };
    Seen::Flow(Flow {
        proto: proto_num,
        remote,
        remote_port,
        local_port,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const NODE_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0a];
    pub const PEER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x0b];
    pub const NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 3);
    pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);

    pub fn eth(dst: [u8; 6], src: [u8; 6], ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(payload);
        h
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(payload);
        h
    }

    fn udp_header(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        u
    }

    /// An Ethernet + IPv4 + UDP frame.
    pub fn udp(
        (dmac, smac): ([u8; 6], [u8; 6]),
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
    ) -> Vec<u8> {
        let u = udp_header(src.1, dst.1, b"wg");
        eth(dmac, smac, 0x0800, &ipv4(src.0, dst.0, 17, &u))
    }

    fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), out: bool) -> Vec<u8> {
        let mut t = src.1.to_be_bytes().to_vec();
        t.extend_from_slice(&dst.1.to_be_bytes());
        t.extend_from_slice(&[0; 8]);
        t.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        let macs = if out {
            (PEER_MAC, NODE_MAC)
        } else {
            (NODE_MAC, PEER_MAC)
        };
        eth(macs.0, macs.1, 0x0800, &ipv4(src.0, dst.0, 6, &t))
    }

    fn icmp4(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, ident: u16, out: bool) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0];
        m.extend_from_slice(&ident.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        let macs = if out {
            (PEER_MAC, NODE_MAC)
        } else {
            (NODE_MAC, PEER_MAC)
        };
        eth(macs.0, macs.1, 0x0800, &ipv4(src, dst, 1, &m))
    }

    fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, ident: u16, dmac: [u8; 6]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0];
        m.extend_from_slice(&ident.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        // NDP messages are longer; pad so the checked view accepts them.
        m.extend_from_slice(&[0; 20]);
        eth(dmac, PEER_MAC, 0x86dd, &ipv6(src, dst, 58, &m))
    }

    const OUT: ([u8; 6], [u8; 6]) = (PEER_MAC, NODE_MAC);
    const IN: ([u8; 6], [u8; 6]) = (NODE_MAC, PEER_MAC);

    #[test]
    fn unsolicited_udp_is_dropped_until_the_node_sends_to_that_remote_port() {
        let now = Instant::now();
        let mut nat = NatFilter::new();
        let reply = udp(IN, (PEER, 51820), (NODE, 51820));
        assert!(!nat.admits(&reply, now), "nothing went out yet");
        nat.outbound(&udp(OUT, (NODE, 51820), (PEER, 51820)), now);
        assert!(nat.admits(&reply, now));
        // Another remote port, another remote address, another local port: not the flow.
        assert!(!nat.admits(&udp(IN, (PEER, 51821), (NODE, 51820)), now));
        let other = Ipv4Addr::new(192, 168, 100, 2);
        assert!(!nat.admits(&udp(IN, (other, 51820), (NODE, 51820)), now));
        assert!(!nat.admits(&udp(IN, (PEER, 51820), (NODE, 9)), now));
        assert_eq!(nat.open_flows(now), 1);
    }

    #[test]
    fn a_flow_expires_30_s_after_its_last_outbound_packet() {
        let t0 = Instant::now();
        let mut nat = NatFilter::new();
        let out = udp(OUT, (NODE, 51820), (PEER, 51820));
        let reply = udp(IN, (PEER, 51820), (NODE, 51820));
        nat.outbound(&out, t0);
        assert!(nat.admits(&reply, t0 + FLOW_TIMEOUT));
        assert!(!nat.admits(&reply, t0 + FLOW_TIMEOUT + Duration::from_millis(1)));
        // Replies do not refresh the flow; outbound traffic does.
        nat.outbound(&out, t0 + Duration::from_secs(20));
        assert!(nat.admits(&reply, t0 + Duration::from_secs(45)));
        assert!(!nat.admits(&reply, t0 + Duration::from_secs(51)));
        assert_eq!(nat.open_flows(t0 + Duration::from_secs(51)), 0);
    }

    #[test]
    fn tcp_flows_and_echo_replies_pass_only_for_what_the_node_started() {
        let now = Instant::now();
        let mut nat = NatFilter::new();
        let back = tcp((PEER, 80), (NODE, 40000), false);
        assert!(!nat.admits(&back, now));
        nat.outbound(&tcp((NODE, 40000), (PEER, 80), true), now);
        assert!(nat.admits(&back, now));
        // A TCP answer does not open the same ports for UDP.
        assert!(!nat.admits(&udp(IN, (PEER, 80), (NODE, 40000)), now));

        let reply = icmp4(PEER, NODE, 0, 7, false);
        assert!(!nat.admits(&reply, now));
        assert!(
            !nat.admits(&icmp4(PEER, NODE, 8, 7, false), now),
            "an echo request from outside is unsolicited"
        );
        nat.outbound(&icmp4(NODE, PEER, 8, 7, true), now);
        assert!(nat.admits(&reply, now));
        assert!(
            !nat.admits(&icmp4(PEER, NODE, 0, 8, false), now),
            "other id"
        );
        // Destination unreachable (type 3) is not let in.
        assert!(!nat.admits(&icmp4(PEER, NODE, 3, 7, false), now));
    }

    #[test]
    fn arp_broadcasts_and_neighbour_discovery_always_pass_and_garbage_does_not() {
        let now = Instant::now();
        let nat = NatFilter::new();
        assert!(nat.admits(&eth(NODE_MAC, PEER_MAC, 0x0806, &[0; 28]), now));
        let bcast = udp(([0xff; 6], PEER_MAC), (PEER, 68), (NODE, 67));
        assert!(nat.admits(&bcast, now));
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "fe80::3".parse().unwrap());
        for ty in 133..=137 {
            assert!(nat.admits(&icmp6(a, b, ty, 0, NODE_MAC), now), "NDP {ty}");
        }
        let reply6 = icmp6(a, b, 129, 5, NODE_MAC);
        assert!(!nat.admits(&reply6, now));
        // A truncated IPv4 header and a later fragment are unicast IP of no flow.
        assert!(!nat.admits(&eth(NODE_MAC, PEER_MAC, 0x0800, &[0x45, 0, 0]), now));
        let mut frag = udp(IN, (PEER, 51820), (NODE, 51820));
        frag[14 + 7] = 1; // fragment offset 8 bytes
        let mut nat = NatFilter::new();
        nat.outbound(&udp(OUT, (NODE, 51820), (PEER, 51820)), now);
        assert!(!nat.admits(&frag, now));
        // IPv6 echo: out, then the reply passes.
        let mut m = vec![128, 0, 0, 0, 0, 5, 0, 1];
        m.extend_from_slice(&[0; 20]);
        nat.outbound(&eth(PEER_MAC, NODE_MAC, 0x86dd, &ipv6(b, a, 58, &m)), now);
        assert!(nat.admits(&reply6, now));
    }

    #[test]
    fn the_flow_table_is_bounded_and_forgets_the_oldest_flow() {
        let t0 = Instant::now();
        let mut nat = NatFilter::new();
        for i in 0..MAX_FLOWS as u16 {
            let at = t0 + Duration::from_millis(u64::from(i));
            nat.outbound(&udp(OUT, (NODE, 1000 + i), (PEER, 53)), at);
        }
        let late = t0 + Duration::from_secs(5);
        nat.outbound(&udp(OUT, (NODE, 9999), (PEER, 53)), late);
        assert_eq!(nat.flows.len(), MAX_FLOWS);
        assert!(
            !nat.admits(&udp(IN, (PEER, 53), (NODE, 1000)), late),
            "oldest gone"
        );
        assert!(nat.admits(&udp(IN, (PEER, 53), (NODE, 1001)), late));
        assert!(nat.admits(&udp(IN, (PEER, 53), (NODE, 9999)), late));
    }
}
