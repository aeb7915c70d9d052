//! The route table (RFC 8966 section 3.2.6): every route a neighbour announced to us, and
//! route selection with hysteresis.
//!
//! A route is keyed by (prefix, neighbour) and holds what the neighbour advertised
//! (router-id, seqno, metric, next hop) and when it expires (3.5 update intervals after
//! the last update). The table is bounded; a full table refuses new routes (the caller
//! counts them). [`select`] picks the route to use for one prefix: the lowest metric, but
//! the current route is kept unless a candidate beats it by more than the hysteresis,
//! so near-equal paths do not flap.

use super::neighbour::NeighbourId;
use super::wire::{RouterId, INFINITY};
use alloc::vec::Vec;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpCidr};

/// One announced route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub prefix: IpCidr,
    pub neighbour: NeighbourId,
    pub router_id: RouterId,
    pub seqno: u16,
    /// The metric the neighbour advertised (our cost to it not included).
    pub metric: u16,
    pub next_hop: Option<IpAddress>,
    pub expires: Instant,
}

/// The table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RoutesFull;

/// Every announced route, at most `capacity`.
#[derive(Debug)]
pub(crate) struct Routes {
    entries: Vec<Route>,
    capacity: usize,
}

impl Routes {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Inserts or replaces the route of (prefix, neighbour).
    pub fn upsert(&mut self, route: Route) -> Result<(), RoutesFull> {
        if let Some(r) = self
            .entries
            .iter_mut()
            .find(|r| r.prefix == route.prefix && r.neighbour == route.neighbour)
        {
            *r = route;
            return Ok(());
        }
        if self.entries.len() >= self.capacity {
            return Err(RoutesFull);
        }
        self.entries.push(route);
        Ok(())
    }

    /// Removes the route of (prefix, neighbour); whether there was one.
    pub fn remove(&mut self, prefix: &IpCidr, neighbour: NeighbourId) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|r| !(r.prefix == *prefix && r.neighbour == neighbour));
        before != self.entries.len()
    }

    /// The routes announced for `prefix`.
    pub fn for_prefix<'a>(&'a self, prefix: &'a IpCidr) -> impl Iterator<Item = &'a Route> + 'a {
        self.entries.iter().filter(move |r| r.prefix == *prefix)
    }

    /// The prefixes `neighbour` announced, into `out` (deduplicated by construction: one
    /// route per (prefix, neighbour)).
    pub fn prefixes_via(&self, neighbour: NeighbourId, out: &mut Vec<IpCidr>) {
        out.extend(
            self.entries
                .iter()
                .filter(|r| r.neighbour == neighbour)
                .map(|r| r.prefix),
        );
    }

    /// Removes every route of `neighbour`, collecting their prefixes.
    pub fn remove_neighbour(&mut self, neighbour: NeighbourId, out: &mut Vec<IpCidr>) {
        self.prefixes_via(neighbour, out);
        self.entries.retain(|r| r.neighbour != neighbour);
    }

    /// Removes the routes expired at `now`, collecting their prefixes.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<IpCidr>) {
        out.extend(
            self.entries
                .iter()
                .filter(|r| r.expires <= now)
                .map(|r| r.prefix),
        );
        self.entries.retain(|r| r.expires > now);
    }

    /// The earliest expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.iter().map(|r| r.expires).min()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every announced route.
    pub fn iter(&self) -> impl Iterator<Item = &Route> + '_ {
        self.entries.iter()
    }
}

/// A usable route for one prefix: through `via`, with total metric `metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub via: NeighbourId,
    pub metric: u16,
}

/// Route selection for one prefix. `current` is the route in use (with its metric as it
/// is now), `candidates` the feasible routes with finite metric (current included if it
/// still qualifies). The current route stays unless it is gone or another route's
/// metric is lower by more than `hysteresis`.
pub(crate) fn select(
    current: Option<NeighbourId>,
    candidates: impl Iterator<Item = Candidate>,
    hysteresis: u16,
) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    let mut kept: Option<Candidate> = None;
    for c in candidates {
        if c.metric == INFINITY {
            continue;
        }
        if Some(c.via) == current {
            kept = Some(c);
        }
        let better = match best {
            None => true,
            Some(b) => c.metric < b.metric || (c.metric == b.metric && c.via < b.via),
        };
        if better {
            best = Some(c);
        }
    }
    match (kept, best) {
        (Some(k), Some(b))
            if u32::from(b.metric) + u32::from(hysteresis) >= u32::from(k.metric) =>
        {
            Some(k)
        }
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(via: u32, metric: u16) -> Candidate {
        Candidate {
            via: NeighbourId(via),
            metric,
        }
    }

    #[test]
    fn selection_keeps_current_route_within_hysteresis() {
        let cands = [c(1, 200), c(2, 180)];
        assert_eq!(
            select(Some(NeighbourId(1)), cands.into_iter(), 48),
            Some(c(1, 200))
        );
        assert_eq!(select(None, cands.into_iter(), 48), Some(c(2, 180)));
        // Beaten by more than the hysteresis: switch.
        let cands = [c(1, 300), c(2, 180)];
        assert_eq!(
            select(Some(NeighbourId(1)), cands.into_iter(), 48),
            Some(c(2, 180))
        );
        // The current route gone: the best remaining one.
        assert_eq!(
            select(Some(NeighbourId(3)), cands.into_iter(), 48),
            Some(c(2, 180))
        );
        // Infinite metrics are never selected.
        assert_eq!(select(None, [c(1, INFINITY)].into_iter(), 48), None);
    }
}
