//! The routing protocol's port on the router: its datagrams to and from tunnel peers.
//!
//! Babel (RFC 8966) runs over UDP port 6696 between IPv6 link-local addresses, one
//! "interface" per tunnel peer. Inside the WireGuard tunnel every appliance has one
//! link-local address, derived from its public key ([`tunnel_link_local`]). A decrypted
//! packet from a peer whose source is link-local and whose destination is the Babel group
//! (`ff02::1:6`) or our link-local address, on UDP port 6696, is the protocol's: it is queued
//! here with the peer it came from, for the runtime to hand to the routing core. Nothing
//! else with a link-local source from a peer is accepted. The core's datagrams go back to
//! the group address inside the chosen peer's tunnel, hop limit 1.
//!
//! The router does not read the protocol; the queue is bounded and counts what it drops.

use super::ring::{Ring, MAX_PACKET};
use crate::tunnel::PeerId;
use smoltcp::wire::Ipv6Address;

/// Babel's UDP port (RFC 8966 §5).
pub const BABEL_PORT: u16 = 6696;
/// Babel's link-local multicast group, ff02::1:6.
pub const BABEL_GROUP: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
/// Datagrams waiting for the routing core.
const QUEUE: usize = 32;
/// In front of each queued payload: the peer (2 bytes) and its link-local source (16).
const TAG: usize = 18;

/// The appliance's link-local address inside the tunnel: fe80::/64 with the first 8 bytes
/// of its public key as interface identifier (universal/local bit cleared).
pub fn tunnel_link_local(public_key: &[u8; 32]) -> Ipv6Address {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8..].copy_from_slice(&public_key[..8]);
    o[8] &= !0x02;
    Ipv6Address::from_octets(o)
}

/// What the port passed and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoutingPortCounters {
    /// Datagrams queued for the core / sent for it.
    pub rx: u64,
    pub tx: u64,
    /// Datagrams dropped because the queue was full.
    pub rx_full: u64,
}

/// See the module documentation.
pub struct RoutingPort {
    /// Our address inside every tunnel.
    pub link_local: Ipv6Address,
    queue: Ring,
    pub counters: RoutingPortCounters,
}

/// One datagram for the routing core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingDatagram<'a> {
    pub peer: PeerId,
    /// The sender's link-local address.
    pub src: Ipv6Address,
    pub payload: &'a [u8],
}

impl RoutingPort {
    pub fn new(link_local: Ipv6Address) -> RoutingPort {
        RoutingPort {
            link_local,
            queue: Ring::new(QUEUE),
            counters: RoutingPortCounters::default(),
        }
    }

    /// Whether an IPv6 destination is one the port listens on.
    pub fn listens_on(&self, dst: Ipv6Address) -> bool {
        dst == BABEL_GROUP || dst == self.link_local
    }

    /// Queues `payload` from `peer`; `false` (counted) when the queue is full or the
    /// payload too large for a slot.
    pub(super) fn push(
        &mut self,
        peer: PeerId,
        src: Ipv6Address,
        payload: &[u8],
        buf: &mut [u8],
    ) -> bool {
        let n = TAG + payload.len();
        if n > buf.len().min(MAX_PACKET) {
            self.counters.rx_full += 1;
            return false;
        }
        buf[..2].copy_from_slice(&peer.0.to_be_bytes());
        buf[2..TAG].copy_from_slice(&src.octets());
        buf[TAG..n].copy_from_slice(payload);
        if self.queue.push(&buf[..n]) {
            self.counters.rx += 1;
            true
        } else {
            self.counters.rx_full += 1;
            false
        }
    }

    /// Takes the oldest queued datagram into `buf`.
    pub fn pop<'a>(&mut self, buf: &'a mut [u8]) -> Option<RoutingDatagram<'a>> {
        let n = self.queue.pop_into(buf)?;
        if n < TAG {
            return None;
        }
        let peer = PeerId(u16::from_be_bytes([buf[0], buf[1]]));
        let mut src = [0u8; 16];
        src.copy_from_slice(&buf[2..TAG]);
        Some(RoutingDatagram {
            peer,
            src: Ipv6Address::from_octets(src),
            payload: &buf[TAG..n],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_fe80_with_the_key_as_interface_id() {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&[0x13, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        let a = tunnel_link_local(&key);
        assert!(a.is_unicast_link_local());
        assert_eq!(
            a,
            Ipv6Address::new(0xfe80, 0, 0, 0, 0x1122, 0x3344, 0x5566, 0x7788)
        );
    }

    #[test]
    fn queued_datagrams_come_out_with_their_peer_and_source_and_a_full_queue_counts() {
        let me = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let them = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let mut port = RoutingPort::new(me);
        assert!(port.listens_on(BABEL_GROUP) && port.listens_on(me) && !port.listens_on(them));
        let mut buf = [0u8; MAX_PACKET];
        for i in 0..QUEUE {
            assert!(port.push(PeerId(i as u16), them, &[i as u8; 20], &mut buf));
        }
        assert!(!port.push(PeerId(99), them, &[0; 20], &mut buf));
        assert_eq!(port.counters.rx_full, 1);
        let d = port.pop(&mut buf).unwrap();
        assert_eq!(
            (d.peer, d.src, d.payload),
            (PeerId(0), them, &[0u8; 20][..])
        );
        let mut n = 1;
        while port.pop(&mut buf).is_some() {
            n += 1;
        }
        assert_eq!(n, QUEUE);
    }
}
