//! The source table (RFC 8966 section 3.2.5): feasibility distances per
//! (prefix, router-id), and the feasibility condition (section 3.5.1).
//!
//! An entry records the best (seqno, metric) we have advertised for a source; an update
//! is feasible when it carries a newer seqno, or the same seqno and a strictly smaller
//! metric. This is what keeps Babel loop-free and stops counting to infinity. The table
//! is bounded: when full, the entry unused for longest is evicted only if it is older
//! than the garbage-collection time; otherwise the new entry is refused (and the caller
//! must not advertise that route).

use super::wire::{seqno_newer, RouterId, INFINITY};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpCidr;

/// Entries not refreshed for this long are forgotten (babeld uses about 3 minutes).
pub const GC_TIME: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug)]
struct Source {
    prefix: IpCidr,
    router_id: RouterId,
    seqno: u16,
    metric: u16,
    updated: Instant,
}

/// Feasibility distances, at most `capacity` of them.
#[derive(Debug)]
pub struct Sources {
    entries: alloc::vec::Vec<Source>,
    capacity: usize,
}

/// The table is full of live entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcesFull;

impl Sources {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: alloc::vec::Vec::new(),
            capacity,
        }
    }

    fn find(&self, prefix: &IpCidr, router_id: &RouterId) -> Option<usize> {
        self.entries
            .iter()
            .position(|s| s.prefix == *prefix && s.router_id == *router_id)
    }

    /// The feasibility condition: retractions are always feasible; otherwise the
    /// (seqno, metric) must be strictly better than the recorded distance.
    pub fn feasible(&self, prefix: &IpCidr, router_id: &RouterId, seqno: u16, metric: u16) -> bool {
        if metric == INFINITY {
            return true;
        }
        match self.find(prefix, router_id) {
            None => true,
            Some(i) => {
                let s = &self.entries[i];
                seqno_newer(seqno, s.seqno) || (seqno == s.seqno && metric < s.metric)
            }
        }
    }

    /// The recorded (seqno, metric) for a source.
    pub fn distance(&self, prefix: &IpCidr, router_id: &RouterId) -> Option<(u16, u16)> {
        self.find(prefix, router_id)
            .map(|i| (self.entries[i].seqno, self.entries[i].metric))
    }

    /// We advertise (seqno, metric) for this source: lower the distance (section 3.7.3).
    pub fn advertised(
        &mut self,
        now: Instant,
        prefix: IpCidr,
        router_id: RouterId,
        seqno: u16,
        metric: u16,
    ) -> Result<(), SourcesFull> {
        if metric == INFINITY {
            return Ok(());
        }
        if let Some(i) = self.find(&prefix, &router_id) {
            let s = &mut self.entries[i];
            if seqno_newer(seqno, s.seqno) {
                s.seqno = seqno;
                s.metric = metric;
            } else if seqno == s.seqno && metric < s.metric {
                s.metric = metric;
            }
            s.updated = now;
            return Ok(());
        }
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.updated)
                .map(|(i, s)| (i, s.updated));
            match oldest {
                Some((i, updated)) if now - updated >= GC_TIME => {
                    self.entries.swap_remove(i);
                }
                _ => return Err(SourcesFull),
            }
        }
        self.entries.push(Source {
            prefix,
            router_id,
            seqno,
            metric,
            updated: now,
        });
        Ok(())
    }

    /// Forgets entries not refreshed for [`GC_TIME`].
    pub fn gc(&mut self, now: Instant) {
        self.entries.retain(|s| now - s.updated < GC_TIME);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

    fn p() -> IpCidr {
        IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 20, 1, 0), 24))
    }
    const R: RouterId = RouterId([1, 2, 3, 4, 5, 6, 7, 8]);

    #[test]
    fn feasibility_needs_newer_seqno_or_smaller_metric() {
        let mut s = Sources::new(4);
        let t = Instant::from_secs(1);
        assert!(s.feasible(&p(), &R, 5, 300));
        s.advertised(t, p(), R, 5, 200).unwrap();
        assert!(s.feasible(&p(), &R, 5, 199));
        assert!(!s.feasible(&p(), &R, 5, 200));
        assert!(!s.feasible(&p(), &R, 4, 10));
        assert!(s.feasible(&p(), &R, 6, 1000));
        assert!(s.feasible(&p(), &R, 4, INFINITY));
        // Wrapping: 0 is newer than 65535.
        let r2 = RouterId([2; 8]);
        s.advertised(t, p(), r2, 65535, 100).unwrap();
        assert!(s.feasible(&p(), &r2, 0, 5000));
        assert!(!s.feasible(&p(), &r2, 65534, 1));
        // A higher metric with the same seqno does not raise the distance.
        s.advertised(t, p(), r2, 65535, 500).unwrap();
        assert_eq!(s.distance(&p(), &r2), Some((65535, 100)));
    }

    #[test]
    fn full_table_refuses_live_entries_and_evicts_stale_ones() {
        let mut s = Sources::new(2);
        let t = Instant::from_secs(1);
        for i in 0..2u8 {
            s.advertised(t, p(), RouterId([i + 1; 8]), 1, 1).unwrap();
        }
        assert_eq!(
            s.advertised(t, p(), RouterId([9; 8]), 1, 1),
            Err(SourcesFull)
        );
        assert_eq!(s.len(), 2);
        let later = t + GC_TIME;
        s.advertised(later, p(), RouterId([9; 8]), 1, 1).unwrap();
        assert_eq!(s.len(), 2);
        s.gc(later + GC_TIME);
        assert_eq!(s.len(), 0);
    }
}
