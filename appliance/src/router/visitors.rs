//! Visiting hosts: workloads of another appliance's segment that moved onto one of ours
//! with their address.
//!
//! A VDC-wide static lease (the same `StaticLease` line on every node) whose address lies
//! outside this segment's subnets is served by the segment's DHCP server as a /32 (see
//! [`super::dhcp`]). While the workload is here it is *present*: the router accepts its
//! address as a source on this segment, resolves it on-link, holds a host route to it, and
//! the routing protocol announces that /32 to the other appliances, so traffic for the
//! address (a gateway's connections to it among them) comes here instead of to its home
//! segment.
//!
//! A visitor arrives when the DHCP server acknowledges its lease. It leaves when it
//! releases the lease, when the lease expires, or when it falls silent: after
//! [`IDLE`] without a frame from its MAC the router asks for it by ARP once each
//! [`PROBE_INTERVAL`], and [`PROBES`] unanswered requests in a row mark it gone (about
//! 4 s after its last frame). A frame from it while its lease is still valid (it came
//! back without asking DHCP again) makes it present again.
//!
//! Sans-I/O: the router feeds it what the DHCP server says and the frames it sees, and
//! [`Visitors::poll`] says which probes to send. Bounded by the segment's static leases.

use alloc::vec::Vec;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Silence after which a present visitor is probed.
pub const IDLE: Duration = Duration::from_millis(1000);
/// Time between probes of a silent visitor.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1000);
/// Unanswered probes after which a visitor counts as gone.
pub const PROBES: u8 = 3;

#[derive(Clone, Copy, Debug)]
struct Visitor {
    mac: EthernetAddress,
    ip: Ipv4Address,
    /// The lease's expiry in the DHCP server's seconds, while acknowledged.
    lease_until: Option<u64>,
    present: bool,
    /// The last frame from its MAC.
    heard: Instant,
    /// Probes sent since then.
    probes: u8,
    next_probe: Instant,
}

/// What the visitors of one segment did, for the stats line and the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VisitorCounters {
    /// Times a visitor became present.
    pub arrived: u64,
    /// Times a present visitor left: released, expired, or silent.
    pub left: u64,
    /// Of those, left because it stopped answering probes.
    pub silent: u64,
    /// ARP probes sent to present visitors.
    pub probes: u64,
}

/// The visitors one segment may have. See the module documentation.
#[derive(Debug, Default)]
pub struct Visitors {
    hosts: Vec<Visitor>,
    /// Bumped on every arrival and departure: the host routes and the announcements follow.
    generation: u64,
    pub counters: VisitorCounters,
}

impl Visitors {
    /// The segment's visiting leases (MAC, address), as the DHCP server kept them.
    pub fn new(leases: impl Iterator<Item = (EthernetAddress, Ipv4Address)>) -> Visitors {
        let hosts = leases
            .map(|(mac, ip)| Visitor {
                mac,
                ip,
                lease_until: None,
                present: false,
                heard: Instant::ZERO,
                probes: 0,
                next_probe: Instant::ZERO,
            })
            .collect();
        Visitors {
            hosts,
            generation: 0,
            counters: VisitorCounters::default(),
        }
    }

    /// The visiting leases the segment has.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the segment has no visiting leases at all.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Changes with every arrival and departure.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The addresses of the visitors present now.
    pub fn present(&self) -> impl Iterator<Item = Ipv4Address> + '_ {
        self.hosts.iter().filter(|h| h.present).map(|h| h.ip)
    }

    /// Whether `ip` belongs to a visitor present now.
    pub fn is_present(&self, ip: Ipv4Address) -> bool {
        self.hosts.iter().any(|h| h.present && h.ip == ip)
    }

    /// Whether a packet from `mac` with source `ip` is a present visitor's own.
    pub fn admits(&self, mac: EthernetAddress, ip: Ipv4Address) -> bool {
        self.hosts
            .iter()
            .any(|h| h.present && h.mac == mac && h.ip == ip)
    }

    fn arrive(&mut self, k: usize, now: Instant) {
        let h = &mut self.hosts[k];
        h.heard = now;
        h.probes = 0;
        if !h.present {
            h.present = true;
            self.generation += 1;
            self.counters.arrived += 1;
        }
    }

    fn leave(&mut self, k: usize) {
        if self.hosts[k].present {
            self.hosts[k].present = false;
            self.generation += 1;
            self.counters.left += 1;
        }
    }

    /// What the DHCP server now says of the visiting leases (MAC, address, expiry while
    /// acknowledged): a fresh acknowledgement is an arrival, a release a departure.
    pub fn leases(
        &mut self,
        leases: impl Iterator<Item = (EthernetAddress, Ipv4Address, Option<u64>)>,
        now: Instant,
    ) {
        for (mac, ip, until) in leases {
            let Some(k) = self.hosts.iter().position(|h| h.mac == mac && h.ip == ip) else {
                continue;
            };
            let before = self.hosts[k].lease_until;
            self.hosts[k].lease_until = until;
            match until {
                Some(_) if until != before => self.arrive(k, now),
                Some(_) => {}
                None => self.leave(k),
            }
        }
    }

    /// A frame from `mac` arrived on the segment: a visitor with a valid lease is alive.
    pub fn heard(&mut self, mac: EthernetAddress, now: Instant, now_secs: u64) {
        if let Some(k) = self.hosts.iter().position(|h| h.mac == mac) {
            if self.hosts[k].lease_until.is_some_and(|e| e > now_secs) {
                self.arrive(k, now);
            }
        }
    }

    /// Expires leases, marks silent visitors gone, and calls `probe` with each visitor to
    /// ask for now (ARP to its MAC).
    pub fn poll(
        &mut self,
        now: Instant,
        now_secs: u64,
        mut probe: impl FnMut(EthernetAddress, Ipv4Address),
    ) {
        for k in 0..self.hosts.len() {
            let h = self.hosts[k];
            if !h.present {
                continue;
            }
            if h.lease_until.is_none_or(|e| e <= now_secs) {
                self.leave(k);
                continue;
            }
            if now < h.heard + IDLE || now < h.next_probe {
                continue;
            }
            if h.probes >= PROBES {
                self.counters.silent += 1;
                self.leave(k);
                continue;
            }
            let h = &mut self.hosts[k];
            h.probes += 1;
            h.next_probe = now + PROBE_INTERVAL;
            self.counters.probes += 1;
            probe(h.mac, h.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, 1]);
    const OTHER: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, 2]);
    const IP: Ipv4Address = Ipv4Address::new(10, 20, 1, 10);

    fn ms(n: i64) -> Instant {
        Instant::from_millis(n)
    }

    fn polled(v: &mut Visitors, t: i64) -> Vec<(EthernetAddress, Ipv4Address)> {
        let mut out = Vec::new();
        v.poll(ms(t), (t / 1000) as u64, |m, ip| out.push((m, ip)));
        out
    }

    #[test]
    fn arrives_on_an_acknowledgement_and_leaves_on_release() {
        let mut v = Visitors::new([(MAC, IP)].into_iter());
        assert!(!v.is_present(IP) && !v.admits(MAC, IP));
        // A frame before any lease is nobody's.
        v.heard(MAC, ms(0), 0);
        assert!(!v.is_present(IP));
        let g = v.generation();
        v.leases([(MAC, IP, Some(3600))].into_iter(), ms(10));
        assert!(v.is_present(IP) && v.admits(MAC, IP) && !v.admits(OTHER, IP));
        assert_eq!(v.present().collect::<Vec<_>>(), vec![IP]);
        assert!(v.generation() > g);
        // The same lease said again changes nothing.
        let g = v.generation();
        v.leases([(MAC, IP, Some(3600))].into_iter(), ms(20));
        assert_eq!(v.generation(), g);
        v.leases([(MAC, IP, None)].into_iter(), ms(30));
        assert!(!v.is_present(IP));
        assert_eq!((v.counters.arrived, v.counters.left), (1, 1));
    }

    #[test]
    fn a_silent_visitor_is_probed_then_gone_and_comes_back_when_heard() {
        let mut v = Visitors::new([(MAC, IP)].into_iter());
        v.leases([(MAC, IP, Some(3600))].into_iter(), ms(0));
        // Talking keeps it without probes.
        for t in (100..3000).step_by(500) {
            v.heard(MAC, ms(t), 0);
            assert!(polled(&mut v, t).is_empty());
        }
        // Silent from 2600 ms: probes at 3600, 4600, 5600, gone at 6600.
        assert!(polled(&mut v, 3500).is_empty());
        assert_eq!(polled(&mut v, 3600), vec![(MAC, IP)]);
        assert!(polled(&mut v, 4000).is_empty());
        assert_eq!(polled(&mut v, 4600), vec![(MAC, IP)]);
        assert_eq!(polled(&mut v, 5600), vec![(MAC, IP)]);
        assert!(v.is_present(IP));
        assert!(polled(&mut v, 6600).is_empty());
        assert!(!v.is_present(IP));
        assert_eq!(v.counters.silent, 1);
        assert_eq!(v.counters.probes, 3);
        // Heard again while its lease holds: back.
        v.heard(MAC, ms(7000), 7);
        assert!(v.is_present(IP));
        // An answer to a probe resets the count.
        assert_eq!(polled(&mut v, 8000), vec![(MAC, IP)]);
        v.heard(MAC, ms(8100), 8);
        assert!(polled(&mut v, 9000).is_empty());
        assert!(v.is_present(IP));
    }

    #[test]
    fn an_expired_lease_ends_the_visit_and_silence_cannot_revive_it() {
        let mut v = Visitors::new([(MAC, IP)].into_iter());
        v.leases([(MAC, IP, Some(60))].into_iter(), ms(0));
        v.heard(MAC, ms(59_500), 59);
        assert!(polled(&mut v, 60_000).is_empty());
        assert!(!v.is_present(IP));
        v.heard(MAC, ms(61_000), 61);
        assert!(!v.is_present(IP));
    }
}
