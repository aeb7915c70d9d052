//! Fixed rings of packet buffers, allocated once: the queues between the router and the
//! local stack, and the pool of packets waiting for a neighbour to answer.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

/// Largest packet a ring slot holds: the largest link MTU the NICs carry.
pub const MAX_PACKET: usize = 1500;

/// A FIFO of up to `N` packets of at most [`MAX_PACKET`] bytes.
pub struct Ring {
    slots: Box<[[u8; MAX_PACKET]]>,
    lens: Vec<u16>,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn new(n: usize) -> Ring {
        Ring {
            slots: vec![[0u8; MAX_PACKET]; n].into_boxed_slice(),
            lens: vec![0; n],
            head: 0,
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `packet` in; `false` (nothing stored) when full or too large.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let n = self.slots.len();
        if self.len == n || packet.len() > MAX_PACKET {
            return false;
        }
        let i = (self.head + self.len) % n;
        self.slots[i][..packet.len()].copy_from_slice(packet);
        self.lens[i] = packet.len() as u16;
        self.len += 1;
        true
    }

    /// Copies the oldest packet into `out` and removes it; returns its length.
    pub fn pop_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let n = usize::from(self.lens[self.head]).min(out.len());
        out[..n].copy_from_slice(&self.slots[self.head][..n]);
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(n)
    }
}

/// Where a held packet goes once its next hop answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub link: usize,
    pub hop: IpAddress,
    since: Instant,
    len: u16,
}

/// Packets waiting for ARP/NDP answers, across all links.
pub struct Pending {
    slots: Box<[[u8; MAX_PACKET]]>,
    held: Vec<Option<Hold>>,
}

/// How long a packet waits for its next hop before it is dropped.
pub const HOLD_TIME: Duration = Duration::from_secs(3);
/// Packets held for one next hop at most.
pub const PER_HOP: usize = 4;

impl Pending {
    pub fn new(n: usize) -> Pending {
        Pending {
            slots: vec![[0u8; MAX_PACKET]; n].into_boxed_slice(),
            held: vec![None; n],
        }
    }

    /// Holds `packet` for `hop` on `link`. A hop with [`PER_HOP`] packets already waiting
    /// gives up its oldest one (as Linux's `unres_qlen`), so one unresolved address cannot
    /// take the whole pool; when every slot is taken the oldest packet gives way. Returns
    /// `true` if a packet was dropped (the caller counts it).
    pub fn hold(&mut self, link: usize, hop: IpAddress, packet: &[u8], now: Instant) -> bool {
        if packet.len() > MAX_PACKET {
            return true;
        }
        let oldest = |only_hop: bool| {
            self.held
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|h| (h.since, i, h)))
                .filter(|(_, _, h)| !only_hop || (h.link == link && h.hop == hop))
                .min_by_key(|(since, _, _)| *since)
                .map_or(0, |(_, i, _)| i)
        };
        let same = self
            .held
            .iter()
            .filter(|h| matches!(h, Some(h) if h.link == link && h.hop == hop))
            .count();
        let (i, evicted) = if same >= PER_HOP {
            (oldest(true), true)
        } else {
            match self.held.iter().position(Option::is_none) {
                Some(i) => (i, false),
                None => (oldest(false), true),
            }
        };
        self.slots[i][..packet.len()].copy_from_slice(packet);
        self.held[i] = Some(Hold {
            link,
            hop,
            since: now,
            len: packet.len() as u16,
        });
        evicted
    }

    /// The index of a packet held for `hop` on `link`, if any.
    pub fn find(&self, link: usize, hop: IpAddress) -> Option<usize> {
        self.held
            .iter()
            .position(|h| matches!(h, Some(h) if h.link == link && h.hop == hop))
    }

    /// Removes held packet `i`, copying it into `out`; returns its length.
    pub fn take(&mut self, i: usize, out: &mut [u8]) -> Option<usize> {
        let h = self.held.get_mut(i)?.take()?;
        let n = usize::from(h.len).min(out.len());
        out[..n].copy_from_slice(&self.slots[i][..n]);
        Some(n)
    }

    /// Drops packets held longer than [`HOLD_TIME`]; returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        for h in self.held.iter_mut() {
            if matches!(h, Some(x) if now - x.since >= HOLD_TIME) {
                *h = None;
                n += 1;
            }
        }
        n
    }

    /// The distinct next hops packets wait for (for re-probing).
    pub fn waiting(&self) -> impl Iterator<Item = (usize, IpAddress)> + '_ {
        self.held
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|h| (i, h)))
            .filter(|(i, h)| {
                !self.held[..*i]
                    .iter()
                    .any(|o| matches!(o, Some(o) if o.link == h.link && o.hop == h.hop))
            })
            .map(|(_, h)| (h.link, h.hop))
    }

    /// Drops every packet held for `hop` on `link`; returns how many.
    pub fn drop_for(&mut self, link: usize, hop: IpAddress) -> u64 {
        let mut n = 0;
        for h in self.held.iter_mut() {
            if matches!(h, Some(x) if x.link == link && x.hop == hop) {
                *h = None;
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    #[test]
    fn ring_is_fifo_and_bounded() {
        let mut r = Ring::new(2);
        assert!(r.push(b"one"));
        assert!(r.push(b"two"));
        assert!(!r.push(b"three"));
        let mut out = [0u8; 16];
        assert_eq!(r.pop_into(&mut out), Some(3));
        assert_eq!(&out[..3], b"one");
        assert!(r.push(&[7u8; MAX_PACKET]));
        assert!(!r.push(&[7u8; MAX_PACKET + 1]));
        assert_eq!(r.pop_into(&mut out), Some(3));
        assert_eq!(&out[..3], b"two");
    }

    #[test]
    fn pending_evicts_the_oldest_and_expires() {
        let hop = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 9));
        let mut p = Pending::new(2);
        let t = Instant::from_secs(1);
        assert!(!p.hold(0, hop, b"a", t));
        assert!(!p.hold(0, hop, b"b", t + Duration::from_millis(1)));
        assert!(p.hold(0, hop, b"c", t + Duration::from_millis(2)));
        assert_eq!(p.waiting().count(), 1);
        let mut out = [0u8; 4];
        let i = p.find(0, hop).unwrap();
        assert_eq!(p.take(i, &mut out), Some(1));
        assert!(matches!(&out[..1], b"b" | b"c"));
        assert_eq!(p.expire(t + HOLD_TIME + Duration::from_millis(5)), 1);
        assert_eq!(p.find(0, hop), None);
    }

    #[test]
    fn one_hop_holds_at_most_its_share_of_the_pool() {
        let a = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
        let b = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2));
        let mut p = Pending::new(8);
        let t = Instant::from_secs(1);
        let mut dropped = 0;
        for k in 0..20u8 {
            dropped += u32::from(p.hold(0, a, &[k], t + Duration::from_millis(k.into())));
        }
        assert_eq!(dropped, 20 - PER_HOP as u32);
        // The newest PER_HOP packets of `a` are kept, and the rest of the pool is free.
        let mut out = [0u8; 4];
        let mut kept = alloc::vec::Vec::new();
        while let Some(i) = p.find(0, a) {
            p.take(i, &mut out);
            kept.push(out[0]);
        }
        kept.sort();
        assert_eq!(kept, [16, 17, 18, 19]);
        for k in 0..PER_HOP as u8 {
            p.hold(0, a, &[k], t);
        }
        for k in 0..4u8 {
            assert!(!p.hold(0, b, &[k], t), "b's packet {k} pushed out another");
        }
    }
}
