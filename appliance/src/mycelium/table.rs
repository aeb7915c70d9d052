//! The route table (one entry per prefix and peer) and the source table (feasibility
//! distances), both bounded.
//!
//! Mycelium keeps a route's metric as the neighbour advertised it; the link cost to the
//! neighbour is added at selection time and when the route is passed on. Its feasibility
//! condition compares those advertised metrics: an update is feasible if its seqno is
//! newer than the source's, or equal with a smaller metric, or it is a retraction (or the
//! source is unknown). Sources are forgotten 30 minutes after they were last refreshed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::Ipv6Addr;
use smoltcp::time::{Duration, Instant};

use super::peer::PeerId;
use super::wire::{seqno_newer, RouterId, Subnet, Update, INFINITY};

/// How long a feasibility distance is kept without being refreshed.
pub const SOURCE_HOLD: Duration = Duration::from_secs(30 * 60);

/// One route: `subnet` through `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub peer: PeerId,
    pub router_id: RouterId,
    /// As advertised (the link cost is not in it).
    pub metric: u16,
    pub seqno: u16,
    pub selected: bool,
    pub expires: Instant,
}

/// The table was full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Routes by prefix, bounded by the total number of entries.
pub struct Routes {
    map: BTreeMap<Subnet, Vec<RouteEntry>>,
    entries: usize,
    capacity: usize,
    /// How many prefixes of each length are present (longest match only tries these).
    lengths: [u32; 129],
}

impl Routes {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: BTreeMap::new(),
            entries: 0,
            capacity,
            lengths: [0; 129],
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn list(&self, subnet: &Subnet) -> Option<&[RouteEntry]> {
        self.map.get(subnet).map(|v| v.as_slice())
    }

    pub fn list_mut(&mut self, subnet: &Subnet) -> Option<&mut [RouteEntry]> {
        self.map.get_mut(subnet).map(|v| v.as_mut_slice())
    }

    /// The selected route of exactly `subnet`.
    pub fn selected(&self, subnet: &Subnet) -> Option<&RouteEntry> {
        self.list(subnet)?.iter().find(|e| e.selected)
    }

    /// The prefix (and its routes) that most specifically covers `addr`.
    pub fn longest_match(&self, addr: Ipv6Addr) -> Option<(Subnet, &[RouteEntry])> {
        for len in (0..=128u8).rev() {
            if self.lengths[usize::from(len)] == 0 {
                continue;
            }
            let s = Subnet::new(addr, len)?;
            if let Some(v) = self.map.get(&s) {
                return Some((s, v.as_slice()));
            }
        }
        None
    }

    /// Adds an entry for a peer that has none for `subnet` yet.
    pub fn insert(&mut self, subnet: Subnet, entry: RouteEntry) -> Result<(), Full> {
        if self.entries >= self.capacity {
            return Err(Full);
        }
        let list = self.map.entry(subnet).or_insert_with(|| {
            self.lengths[usize::from(subnet.prefix_len())] += 1;
            Vec::new()
        });
        list.push(entry);
        self.entries += 1;
        Ok(())
    }

    /// Removes the entries `remove` picks from `subnet`'s list (the prefix goes when its
    /// list is empty); returns how many went.
    pub fn remove_where(
        &mut self,
        subnet: &Subnet,
        mut remove: impl FnMut(&RouteEntry) -> bool,
    ) -> usize {
        let Some(list) = self.map.get_mut(subnet) else {
            return 0;
        };
        let before = list.len();
        list.retain(|e| !remove(e));
        let gone = before - list.len();
        self.entries -= gone;
        if list.is_empty() {
            self.map.remove(subnet);
            self.lengths[usize::from(subnet.prefix_len())] -= 1;
        }
        gone
    }

    /// Every prefix with an entry matching `pick`, into `out`.
    pub fn prefixes_where(&self, mut pick: impl FnMut(&RouteEntry) -> bool, out: &mut Vec<Subnet>) {
        for (s, list) in self.map.iter() {
            if list.iter().any(&mut pick) {
                out.push(*s);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Subnet, &[RouteEntry])> + '_ {
        self.map.iter().map(|(s, v)| (s, v.as_slice()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Distance {
    metric: u16,
    seqno: u16,
    expires: Instant,
}

/// Feasibility distances by (prefix, router-id), bounded.
pub struct Sources {
    map: BTreeMap<(Subnet, RouterId), Distance>,
    capacity: usize,
}

impl Sources {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: BTreeMap::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// (seqno, metric) of the source, if known.
    pub fn get(&self, subnet: &Subnet, router_id: &RouterId) -> Option<(u16, u16)> {
        self.map
            .get(&(*subnet, *router_id))
            .map(|d| (d.seqno, d.metric))
    }

    /// The feasibility condition for an advertisement of (seqno, metric).
    pub fn feasible(&self, subnet: &Subnet, router_id: &RouterId, seqno: u16, metric: u16) -> bool {
        match self.get(subnet, router_id) {
            None => true,
            Some((fs, fm)) => {
                seqno_newer(seqno, fs) || (seqno == fs && metric < fm) || metric == INFINITY
            }
        }
    }

    /// Records that we advertise `u`: a newer seqno, or the same with a smaller metric,
    /// replaces the distance; anything else (but a retraction) refreshes its timer.
    pub fn record(&mut self, now: Instant, u: &Update) -> Result<(), Full> {
        let key = (u.subnet, u.router_id);
        let fresh = Distance {
            metric: u.metric,
            seqno: u.seqno,
            expires: now + SOURCE_HOLD,
        };
        let full = self.map.len() >= self.capacity;
        match self.map.get_mut(&key) {
            Some(d) => {
                if seqno_newer(u.seqno, d.seqno) || (u.seqno == d.seqno && u.metric < d.metric) {
                    *d = fresh;
                } else if u.metric != INFINITY {
                    d.expires = fresh.expires;
                }
                Ok(())
            }
            None if full => Err(Full),
            None => {
                self.map.insert(key, fresh);
                Ok(())
            }
        }
    }

    /// Forgets distances not refreshed for [`SOURCE_HOLD`].
    pub fn expire(&mut self, now: Instant) {
        self.map.retain(|_, d| d.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u16, len: u8) -> Subnet {
        Subnet::new(Ipv6Addr::new(0x400, n, 0, 0, 0, 0, 0, 0), len).unwrap()
    }

    fn entry(peer: u32) -> RouteEntry {
        RouteEntry {
            peer: PeerId(peer),
            router_id: RouterId([peer as u8; 40]),
            metric: 10,
            seqno: 1,
            selected: false,
            expires: Instant::from_secs(100),
        }
    }

    #[test]
    fn longest_match_prefers_the_longer_prefix() {
        let mut r = Routes::new(10);
        r.insert(s(1, 64), entry(1)).unwrap();
        r.insert(
            Subnet::new(Ipv6Addr::new(0x400, 1, 0, 0, 0, 0, 0, 5), 128).unwrap(),
            entry(2),
        )
        .unwrap();
        let (m, l) = r
            .longest_match(Ipv6Addr::new(0x400, 1, 0, 0, 0, 0, 0, 5))
            .unwrap();
        assert_eq!((m.prefix_len(), l[0].peer), (128, PeerId(2)));
        let (m, _) = r
            .longest_match(Ipv6Addr::new(0x400, 1, 0, 0, 0, 0, 0, 6))
            .unwrap();
        assert_eq!(m.prefix_len(), 64);
        assert!(r
            .longest_match(Ipv6Addr::new(0x400, 2, 0, 0, 0, 0, 0, 6))
            .is_none());
        assert_eq!(r.remove_where(&s(1, 64), |_| true), 1);
        assert!(r
            .longest_match(Ipv6Addr::new(0x400, 1, 0, 0, 0, 0, 0, 6))
            .is_none());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn routes_are_bounded() {
        let mut r = Routes::new(2);
        r.insert(s(1, 64), entry(1)).unwrap();
        r.insert(s(1, 64), entry(2)).unwrap();
        assert_eq!(r.insert(s(2, 64), entry(1)), Err(Full));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn feasibility() {
        let mut src = Sources::new(1);
        let rid = RouterId([1; 40]);
        let u = |seqno, metric| Update {
            interval: 1,
            seqno,
            metric,
            subnet: s(1, 64),
            router_id: rid,
        };
        assert!(src.feasible(&s(1, 64), &rid, 5, 100), "unknown source");
        src.record(Instant::ZERO, &u(5, 100)).unwrap();
        assert!(src.feasible(&s(1, 64), &rid, 5, 99));
        assert!(!src.feasible(&s(1, 64), &rid, 5, 100));
        assert!(!src.feasible(&s(1, 64), &rid, 4, 1));
        assert!(src.feasible(&s(1, 64), &rid, 6, 5000));
        assert!(src.feasible(&s(1, 64), &rid, 4, INFINITY));
        // A worse metric at the same seqno does not raise the distance.
        src.record(Instant::ZERO, &u(5, 300)).unwrap();
        assert_eq!(src.get(&s(1, 64), &rid), Some((5, 100)));
        src.record(Instant::ZERO, &u(6, 300)).unwrap();
        assert_eq!(src.get(&s(1, 64), &rid), Some((6, 300)));
        assert_eq!(
            src.record(Instant::ZERO, &u(1, 1).with_subnet(s(2, 64))),
            Err(Full)
        );
        src.expire(Instant::ZERO + SOURCE_HOLD);
        assert_eq!(src.len(), 0);
    }

    impl Update {
        fn with_subnet(mut self, s: Subnet) -> Self {
            self.subnet = s;
            self
        }
    }
}
