//! The one route table the forwarding plane reads.
//!
//! Every source of routes writes here: the links' connected subnets and gateways (the
//! config), the tunnel peers' AllowedIPs, and the routing protocol. A lookup is
//! longest-prefix match over all of them; among routes for the same prefix the origin's
//! preference decides (connected, then visiting hosts, then static, then the routing
//! protocol, then AllowedIPs),
//! so that a route the protocol learned around a cut link wins over a peer's static
//! AllowedIPs, and a connected subnet always wins.
//!
//! The table is bounded (its capacity is fixed at creation); a route that does not fit is
//! refused and counted. Changes rebuild the longest-prefix index, which is fine because
//! they are rare (configuration, route changes), while lookups are per packet.

use crate::tunnel::{AllowedIp, AllowedIps, PeerId};
use alloc::vec::Vec;
use core::net::IpAddr;
use smoltcp::wire::{IpAddress, IpCidr};

/// Where a route leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Directly on link `n`.
    OnLink(usize),
    /// Through the gateway on link `n`.
    Via(usize, IpAddress),
    /// Into the tunnel, to this peer.
    Peer(PeerId),
}

/// Who wrote a route, in order of preference for the same prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A subnet of one of the links.
    Connected,
    /// A host visiting a segment with its address from another (a /32 on that link).
    Visitor,
    /// A gateway (default route) from the config.
    Static,
    /// Learned by the routing protocol.
    Routing,
    /// A tunnel peer's AllowedIPs.
    AllowedIps,
}

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination prefix (host bits cleared).
    pub prefix: IpCidr,
    pub origin: Origin,
    pub hop: Hop,
    /// The routing protocol's metric (0 for the other origins).
    pub metric: u16,
}

/// The table is at its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// See the module documentation.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Prefix → index in `routes` of the preferred route for it.
    index: AllowedIps,
    /// Routes refused because the table was full.
    refused: u64,
    /// Prefixes each peer has offered a way back to (the routing protocol's routes that
    /// were not selected): a decrypted packet from such a peer with a source inside is on a
    /// feasible path even when our own route back goes another way.
    back: Vec<(IpCidr, PeerId)>,
}

fn to_core(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

/// `prefix` with its host bits cleared.
fn normal(prefix: IpCidr) -> IpCidr {
    match prefix {
        IpCidr::Ipv4(c) => IpCidr::Ipv4(c.network()),
        IpCidr::Ipv6(c) => {
            let len = c.prefix_len();
            let bits = u128::from(c.address());
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpCidr::new(IpAddress::Ipv6((bits & mask).into()), len)
        }
    }
}

impl RouteTable {
    /// An empty table for at most `capacity` routes (allocated now, once).
    pub fn with_capacity(capacity: usize) -> Self {
        RouteTable {
            routes: Vec::with_capacity(capacity),
            index: AllowedIps::with_capacity(capacity),
            refused: 0,
            back: Vec::with_capacity(capacity),
        }
    }

    /// Adds a route, or replaces the route of the same prefix and origin.
    pub fn set(
        &mut self,
        prefix: IpCidr,
        origin: Origin,
        hop: Hop,
        metric: u16,
    ) -> Result<(), TableFull> {
        let route = Route {
            prefix: normal(prefix),
            origin,
            hop,
            metric,
        };
        let r = self.put(route);
        self.rebuild();
        r
    }

    fn put(&mut self, route: Route) -> Result<(), TableFull> {
        if let Some(r) = self
            .routes
            .iter_mut()
            .find(|r| r.prefix == route.prefix && r.origin == route.origin)
        {
            *r = route;
            return Ok(());
        }
        if self.routes.len() == self.routes.capacity() {
            self.refused += 1;
            return Err(TableFull);
        }
        self.routes.push(route);
        Ok(())
    }

    /// Removes the route of `prefix` from `origin`; whether there was one.
    pub fn remove(&mut self, prefix: IpCidr, origin: Origin) -> bool {
        let prefix = normal(prefix);
        let before = self.routes.len();
        self.routes
            .retain(|r| !(r.prefix == prefix && r.origin == origin));
        let removed = self.routes.len() != before;
        if removed {
            self.rebuild();
        }
        removed
    }

    /// Replaces every route of `origin` with `routes` (the routing protocol's selected
    /// set). Routes that do not fit are refused and counted; returns how many.
    pub fn replace_origin(
        &mut self,
        origin: Origin,
        routes: impl IntoIterator<Item = (IpCidr, Hop, u16)>,
    ) -> usize {
        self.routes.retain(|r| r.origin != origin);
        let mut refused = 0;
        for (prefix, hop, metric) in routes {
            let route = Route {
                prefix: normal(prefix),
                origin,
                hop,
                metric,
            };
            if self.put(route).is_err() {
                refused += 1;
            }
        }
        self.rebuild();
        refused
    }

    /// Removes every route that leads to `hop` from `origin`.
    pub fn remove_hop(&mut self, origin: Origin, hop: Hop) {
        self.routes
            .retain(|r| !(r.origin == origin && r.hop == hop));
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.index.clear();
        for (i, r) in self.routes.iter().enumerate() {
            if !self.is_preferred(r) {
                continue;
            }
            if let Some(p) = AllowedIp::new(to_core(r.prefix.address()), r.prefix.prefix_len()) {
                // Cannot be full: the index has the table's capacity.
                let _ = self.index.insert(p, i as u16);
            }
        }
    }

    /// Replaces the feasible ways back (see [`RouteTable::comes_back_through`]), at most the
    /// table's capacity of them; returns how many did not fit.
    pub fn set_ways_back(&mut self, ways: impl IntoIterator<Item = (IpCidr, PeerId)>) -> usize {
        self.back.clear();
        let mut refused = 0;
        for (prefix, peer) in ways {
            if self.back.len() == self.back.capacity() {
                refused += 1;
            } else {
                self.back.push((normal(prefix), peer));
            }
        }
        refused
    }

    /// Strict-or-feasible reverse path: whether a packet from `src` may arrive from
    /// `peer`: the route to `src` leads to `peer`, or `peer` offered a way to `src`.
    pub fn comes_back_through(&self, src: IpAddress, peer: PeerId) -> bool {
        if self.lookup(src).is_some_and(|r| r.hop == Hop::Peer(peer)) {
            return true;
        }
        self.back
            .iter()
            .any(|(p, q)| *q == peer && p.contains_addr(&src))
    }

    /// The preferred route of the longest prefix that holds `addr`.
    pub fn lookup(&self, addr: IpAddress) -> Option<&Route> {
        let i = self.index.lookup(to_core(addr))?;
        self.routes.get(usize::from(i))
    }

    /// Every route, preferred or not, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Whether `route` is the one lookups use for its prefix.
    pub fn is_preferred(&self, route: &Route) -> bool {
        !self
            .routes
            .iter()
            .any(|o| o.prefix == route.prefix && o.origin < route.origin)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.routes.capacity()
    }

    /// How many feasible ways back the table holds.
    pub fn ways_back(&self) -> usize {
        self.back.len()
    }

    /// The feasible ways back: (prefix, the peer that offered a route to it).
    pub fn iter_ways_back(&self) -> impl Iterator<Item = &(IpCidr, PeerId)> {
        self.back.iter()
    }

    /// Routes refused because the table was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, Ipv6Address};

    fn v4(a: [u8; 4], len: u8) -> IpCidr {
        IpCidr::new(IpAddress::Ipv4(Ipv4Address::from_octets(a)), len)
    }

    fn a4(a: [u8; 4]) -> IpAddress {
        IpAddress::Ipv4(Ipv4Address::from_octets(a))
    }

    #[test]
    fn longest_prefix_wins_across_origins() {
        let mut t = RouteTable::with_capacity(8);
        t.set(
            v4([0, 0, 0, 0], 0),
            Origin::Static,
            Hop::Via(0, a4([192, 168, 1, 1])),
            0,
        )
        .unwrap();
        t.set(
            v4([10, 20, 0, 0], 16),
            Origin::AllowedIps,
            Hop::Peer(PeerId(1)),
            0,
        )
        .unwrap();
        t.set(
            v4([10, 20, 3, 0], 24),
            Origin::Routing,
            Hop::Peer(PeerId(2)),
            96,
        )
        .unwrap();
        assert_eq!(
            t.lookup(a4([10, 20, 3, 9])).unwrap().hop,
            Hop::Peer(PeerId(2))
        );
        assert_eq!(
            t.lookup(a4([10, 20, 4, 9])).unwrap().hop,
            Hop::Peer(PeerId(1))
        );
        assert_eq!(
            t.lookup(a4([8, 8, 8, 8])).unwrap().hop,
            Hop::Via(0, a4([192, 168, 1, 1]))
        );
    }

    #[test]
    fn same_prefix_goes_to_the_preferred_origin_and_falls_back_when_it_leaves() {
        let mut t = RouteTable::with_capacity(8);
        let p = v4([10, 20, 2, 0], 24);
        t.set(p, Origin::AllowedIps, Hop::Peer(PeerId(2)), 0)
            .unwrap();
        t.set(p, Origin::Routing, Hop::Peer(PeerId(3)), 200)
            .unwrap();
        assert_eq!(
            t.lookup(a4([10, 20, 2, 1])).unwrap().hop,
            Hop::Peer(PeerId(3))
        );
        t.set(p, Origin::Connected, Hop::OnLink(1), 0).unwrap();
        assert_eq!(t.lookup(a4([10, 20, 2, 1])).unwrap().hop, Hop::OnLink(1));
        assert!(t.remove(p, Origin::Connected));
        assert!(t.remove(p, Origin::Routing));
        assert_eq!(
            t.lookup(a4([10, 20, 2, 1])).unwrap().hop,
            Hop::Peer(PeerId(2))
        );
        assert!(!t.remove(p, Origin::Routing));
    }

    #[test]
    fn host_bits_are_cleared_and_set_replaces() {
        let mut t = RouteTable::with_capacity(2);
        t.set(
            v4([10, 20, 2, 77], 24),
            Origin::Routing,
            Hop::Peer(PeerId(2)),
            5,
        )
        .unwrap();
        t.set(
            v4([10, 20, 2, 0], 24),
            Origin::Routing,
            Hop::Peer(PeerId(4)),
            9,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        let r = t.lookup(a4([10, 20, 2, 200])).unwrap();
        assert_eq!(
            (r.prefix, r.hop, r.metric),
            (v4([10, 20, 2, 0], 24), Hop::Peer(PeerId(4)), 9)
        );
    }

    #[test]
    fn replacing_an_origin_leaves_the_others_and_a_full_table_refuses_and_counts() {
        let mut t = RouteTable::with_capacity(3);
        t.set(v4([10, 20, 1, 0], 24), Origin::Connected, Hop::OnLink(1), 0)
            .unwrap();
        let learned = [
            (v4([10, 20, 2, 0], 24), Hop::Peer(PeerId(2)), 10),
            (v4([10, 20, 3, 0], 24), Hop::Peer(PeerId(3)), 10),
            (v4([10, 20, 4, 0], 24), Hop::Peer(PeerId(3)), 20),
        ];
        assert_eq!(t.replace_origin(Origin::Routing, learned), 1);
        assert_eq!(t.refused(), 1);
        assert_eq!(t.len(), 3);
        assert!(t.lookup(a4([10, 20, 4, 1])).is_none());
        let v6 = IpCidr::new(
            IpAddress::Ipv6(Ipv6Address::new(0xfd20, 0, 0, 2, 0, 0, 0, 5)),
            64,
        );
        assert_eq!(
            t.replace_origin(Origin::Routing, [(v6, Hop::Peer(PeerId(2)), 1)]),
            0
        );
        assert_eq!(t.len(), 2);
        let hit = IpAddress::Ipv6(Ipv6Address::new(0xfd20, 0, 0, 2, 1, 2, 3, 4));
        assert_eq!(t.lookup(hit).unwrap().prefix.prefix_len(), 64);
        assert_eq!(t.lookup(a4([10, 20, 1, 1])).unwrap().hop, Hop::OnLink(1));
        assert!(t.lookup(a4([10, 20, 2, 1])).is_none());
        t.remove_hop(Origin::Routing, Hop::Peer(PeerId(2)));
        assert!(t.lookup(hit).is_none());
    }

    #[test]
    fn a_source_comes_back_through_its_route_or_a_peer_that_offered_a_way_to_it() {
        let mut t = RouteTable::with_capacity(4);
        let p = v4([10, 20, 5, 0], 24);
        t.set(p, Origin::Routing, Hop::Peer(PeerId(1)), 200)
            .unwrap();
        let src = a4([10, 20, 5, 9]);
        assert!(t.comes_back_through(src, PeerId(1)));
        assert!(!t.comes_back_through(src, PeerId(2)));
        assert_eq!(
            t.set_ways_back([(p, PeerId(2)), (v4([10, 20, 6, 0], 24), PeerId(3))]),
            0
        );
        assert!(t.comes_back_through(src, PeerId(2)));
        assert!(!t.comes_back_through(src, PeerId(3)));
        assert!(!t.comes_back_through(a4([10, 20, 7, 1]), PeerId(2)));
        let many = (0..6u8).map(|i| (v4([10, 30, i, 0], 24), PeerId(4)));
        assert_eq!(t.set_ways_back(many), 2);
        assert!(!t.comes_back_through(src, PeerId(2)));
    }
}
