//! The Mycelium overlay's port on the router: IPv6 packets between the Planetary Network
//! (`400::/7`, through the appliance's [`mycelium`](crate::mycelium) node) and the one
//! segment that opted in (`Planetary = yes`), or the local stack.
//!
//! The node owns one /64 (derived from its key). The opted-in segment's link holds the
//! node's own address in that /64, so the /64 is a connected route to the segment, its
//! router advertisements carry it (workloads configure themselves by SLAAC) and the
//! local stack answers on the address. Without an opted-in segment the local stack
//! holds the node's address alone (/128), for the gateway's backends over Mycelium.
//!
//! The rules, checked before any other routing of an IPv6 packet whose source or
//! destination is in `400::/7`:
//! - From the opted-in segment, a packet to `400::/7` outside our /64 goes to the node
//!   (hop limit and the Mycelium MTU checked like any hop, with ICMPv6 errors); one from
//!   our /64 to anywhere else (the VDC, the underlay) is dropped (`Private`).
//! - From the local stack likewise: to the node only from our /64.
//! - From any other link or a tunnel peer, nothing with a `400::/7` address passes.
//! - From the node ([`Router::mycelium_in`]): only to our /64: the node's own address
//!   (the local stack) or the opted-in segment; nothing reaches the VDC's prefixes, the
//!   underlay or another segment.
//!
//! Packets for the node wait in a bounded queue the runtime drains into
//! [`crate::mycelium::Node::send`]; what the node refuses comes back to
//! [`Router::mycelium_refused`] for an ICMPv6 error. Every drop is counted.

use super::packet::{icmpv6_error, IPV6_HEADER};
use super::ring::Ring;
use super::{check_ip, dst_of, src_of, take, Discard, From, Router, ICMP_BUDGET, ICMP_WINDOW};
use crate::mycelium::{global_subnet, SendError, MTU};
use rand_core::CryptoRngCore;
use smoltcp::wire::{IpAddress, IpCidr, Ipv6Address, Ipv6Cidr};
use vdcnet_hal::net::NetDevice;

/// Packets waiting for the node.
const QUEUE: usize = 64;

/// What the port passed and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MyceliumPortCounters {
    /// Packets queued for the node / taken from it.
    pub to_node: u64,
    pub from_node: u64,
    /// Dropped because the queue for the node was full.
    pub queue_full: u64,
    /// Refused by the node (no route, hop limit, ...).
    pub refused: u64,
    /// Dropped by the privacy rules (also counted as the router's `Private`).
    pub private: u64,
}

/// See the module documentation.
pub struct MyceliumPort {
    /// The node's own address.
    pub address: Ipv6Address,
    /// The node's /64.
    pub subnet: Ipv6Cidr,
    /// The opted-in segment, by link index.
    pub segment: Option<usize>,
    queue: Ring,
    pub counters: MyceliumPortCounters,
}

fn overlay(a: Ipv6Address) -> bool {
    global_subnet().contains(a)
}

fn v6(a: IpAddress) -> Option<Ipv6Address> {
    match a {
        IpAddress::Ipv6(a) => Some(a),
        IpAddress::Ipv4(_) => None,
    }
}

impl MyceliumPort {
    /// The port of a node with this address; the segment is the link holding it.
    pub fn new(address: Ipv6Address, segment: Option<usize>) -> MyceliumPort {
        let mut o = address.octets();
        o[8..].fill(0);
        MyceliumPort {
            address,
            subnet: Ipv6Cidr::new(Ipv6Address::from_octets(o), 64),
            segment,
            queue: Ring::new(QUEUE),
            counters: MyceliumPortCounters::default(),
        }
    }

    fn ours(&self, a: Ipv6Address) -> bool {
        self.subnet.contains_addr(&a)
    }
}

/// What the rules say about a packet.
enum Verdict {
    /// Not the port's business, or allowed on the normal path.
    Pass,
    ToNode,
    Private,
}

impl<D: NetDevice, R: CryptoRngCore> Router<D, R> {
    /// The port for the node with `address`; the opted-in segment is the link whose
    /// addresses hold it.
    pub fn attach_mycelium(&mut self, address: Ipv6Address) {
        let a = IpAddress::Ipv6(address);
        let segment = self
            .links
            .iter()
            .position(|l| l.is_segment() && l.addrs.iter().any(|c| c.address() == a));
        self.mycelium = Some(MyceliumPort::new(address, segment));
    }

    /// The node's address for the local stack when no segment holds it.
    pub(super) fn mycelium_local_address(&self) -> Option<IpCidr> {
        let p = self.mycelium.as_ref()?;
        p.segment
            .is_none()
            .then(|| IpCidr::Ipv6(Ipv6Cidr::new(p.address, 128)))
    }

    /// The source the local stack's own connection to `dst` (a Mycelium peer) uses: an
    /// address of the underlay link the route to `dst` leaves by, on `dst`'s subnet if
    /// one is.
    pub fn underlay_source(&self, dst: IpAddress) -> Option<IpAddress> {
        let j = match self.route(dst)? {
            super::Hop::OnLink(j) | super::Hop::Via(j, _) => j,
            super::Hop::Peer(_) => return None,
        };
        let l = &self.links[j];
        if l.is_segment() {
            return None;
        }
        let family = |c: &&IpCidr| c.address().version() == dst.version();
        l.addrs
            .iter()
            .find(|c| c.contains_addr(&dst))
            .or_else(|| l.addrs.iter().find(family))
            .map(|c| c.address())
    }

    fn verdict(&self, from: From, pkt: &[u8]) -> Verdict {
        let Some(p) = self.mycelium.as_ref() else {
            return Verdict::Pass;
        };
        let (Some(src), Some(dst)) = (v6(src_of(pkt)), v6(dst_of(pkt))) else {
            return Verdict::Pass;
        };
        if !overlay(src) && !overlay(dst) {
            return Verdict::Pass;
        }
        let from_inside = match from {
            From::Link(i) => p.segment == Some(i),
            From::Local { .. } => true,
            From::Peer(_) => false,
        };
        if !from_inside {
            return Verdict::Private;
        }
        if p.ours(dst) {
            // On the segment or the local stack, by the normal path.
            return Verdict::Pass;
        }
        if overlay(dst) && p.ours(src) {
            return Verdict::ToNode;
        }
        Verdict::Private
    }

    /// The rules of the module documentation, before any other routing; `true` if the
    /// packet was taken (queued for the node, or dropped).
    pub(super) fn mycelium_filter(&mut self, from: From, pkt: &mut [u8]) -> bool {
        match self.verdict(from, pkt) {
            Verdict::Pass => false,
            Verdict::Private => {
                self.count(Discard::Private);
                if let Some(p) = self.mycelium.as_mut() {
                    p.counters.private += 1;
                }
                if let From::Link(i) = from {
                    if self.links[i].is_segment() {
                        self.prohibited(from, pkt);
                    }
                }
                true
            }
            Verdict::ToNode => {
                let transit = matches!(from, From::Link(_));
                if transit && pkt[7] <= 1 {
                    self.count(Discard::TtlExceeded);
                    self.icmp_error(from, pkt, 3, 0, 0);
                    return true;
                }
                if pkt.len() > MTU {
                    self.count(Discard::TooBig);
                    self.icmp_error(from, pkt, 2, 0, MTU as u32);
                    return true;
                }
                if transit {
                    pkt[7] -= 1;
                    self.counters.forwarded += 1;
                }
                self.queue_for_node(pkt);
                true
            }
        }
    }

    fn queue_for_node(&mut self, pkt: &[u8]) {
        let Some(p) = self.mycelium.as_mut() else {
            return;
        };
        if p.queue.push(pkt) {
            p.counters.to_node += 1;
        } else {
            p.counters.queue_full += 1;
            self.count(Discard::TxFull);
        }
    }

    /// The oldest packet waiting for the node, copied into `out`; its length.
    pub fn mycelium_pop(&mut self, out: &mut [u8]) -> Option<usize> {
        self.mycelium.as_mut()?.queue.pop_into(out)
    }

    /// A packet the node refused: an ICMPv6 error to a workload that sent it (none for
    /// the local stack's own).
    pub fn mycelium_refused(&mut self, pkt: &[u8], e: SendError) {
        let Some(p) = self.mycelium.as_mut() else {
            return;
        };
        p.counters.refused += 1;
        let segment = p.segment;
        let own = v6(src_of(pkt)) == Some(p.address);
        let (reason, ty, code, word) = match e {
            SendError::HopLimit => (Discard::TtlExceeded, 3, 0, 0),
            SendError::TooLarge => (Discard::TooBig, 2, 0, MTU as u32),
            SendError::TxFull => (Discard::TxFull, 0, 0, 0),
            SendError::NoRoute | SendError::WeakKey => (Discard::NoRoute, 1, 0, 0),
            SendError::Malformed => (Discard::Malformed, 0, 0, 0),
            SendError::NotOurSource | SendError::Local | SendError::NotOverlay => {
                (Discard::Private, 1, 1, 0)
            }
        };
        self.count(reason);
        if ty != 0 && !own && pkt.len() >= IPV6_HEADER {
            if let Some(i) = segment {
                self.icmp_error(From::Link(i), pkt, ty, code, word);
            }
        }
    }

    /// An IPv6 packet the node opened for our /64: to the local stack (the node's
    /// address) or the opted-in segment; anything else is dropped and counted.
    pub fn mycelium_in(&mut self, pkt: &mut [u8]) {
        let Some(p) = self.mycelium.as_mut() else {
            return;
        };
        p.counters.from_node += 1;
        let (address, segment) = (p.address, p.segment);
        let Some(len) = check_ip(pkt).filter(|&n| n <= pkt.len() && pkt[0] >> 4 == 6) else {
            return self.count(Discard::Malformed);
        };
        let pkt = &mut pkt[..len];
        let Some(dst) = v6(dst_of(pkt)) else {
            return self.count(Discard::Malformed);
        };
        let ours = self.mycelium.as_ref().is_some_and(|p| p.ours(dst));
        if !ours {
            if let Some(p) = self.mycelium.as_mut() {
                p.counters.private += 1;
            }
            return self.count(Discard::Private);
        }
        if dst == address {
            return self.deliver_local(pkt);
        }
        let Some(j) = segment else {
            return self.count(Discard::NoRoute);
        };
        if pkt[7] <= 1 {
            self.count(Discard::TtlExceeded);
            return self.error_to_node(pkt, 3, 0, 0);
        }
        let mtu = self.links[j].mtu;
        if pkt.len() > mtu {
            self.count(Discard::TooBig);
            return self.error_to_node(pkt, 2, 0, mtu as u32);
        }
        pkt[7] -= 1;
        self.counters.forwarded += 1;
        self.send_ip(j, IpAddress::Ipv6(dst), pkt);
    }

    /// An ICMPv6 error about a packet from the overlay, from the node's address, back
    /// through the node; rate limited with the router's other errors.
    fn error_to_node(&mut self, offender: &[u8], ty: u8, code: u8, word: u32) {
        let Some(src) = self.mycelium.as_ref().map(|p| p.address) else {
            return;
        };
        let (start, sent) = self.icmp_window;
        if self.now - start >= ICMP_WINDOW {
            self.icmp_window = (self.now, 0);
        } else if sent >= ICMP_BUDGET {
            self.counters.icmp_suppressed += 1;
            return;
        }
        let mut buf = take(&mut self.scratch);
        if let Some(n) = icmpv6_error(&mut buf, src, offender, ty, code, word) {
            self.icmp_window.1 += 1;
            self.counters.icmp_errors += 1;
            let pkt = &buf[..n];
            self.queue_for_node(pkt);
        }
        self.scratch = buf;
    }
}
