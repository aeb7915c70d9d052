//! One directly connected peer: its stream's framer, its bounded send buffer, and the
//! Hello/IHU state that gives the link its cost.
//!
//! Mycelium measures a link by the time from a Hello to the IHU that answers it, in
//! milliseconds, smoothed as `cost = (9 cost + sample) / 10` from a start of 1000, plus a
//! fixed cost for the connection kind (15 for TCP over IPv4, 10 over IPv6). A peer from
//! which no IHU came for the dead interval (43 s) is given up.

use alloc::vec::Vec;
use smoltcp::time::{Duration, Instant};

use super::frame::Framer;
use super::wire::INFINITY;

/// The caller's name for a peer (a connection), like a socket handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerId(pub u32);

/// The link cost a peer starts with, before any measurement.
pub const DEFAULT_LINK_COST: u16 = 1000;
/// Mycelium's fixed cost of a TCP connection over IPv4.
pub const TCP_V4_COST: u16 = 15;
/// Mycelium's fixed cost of a TCP connection over IPv6.
pub const TCP_V6_COST: u16 = 10;

pub(super) struct Peer {
    pub id: PeerId,
    /// Taken out while its packets are handled.
    pub framer: Option<Framer>,
    out: Vec<u8>,
    out_start: usize,
    pub hello_seqno: u16,
    pub next_hello: Instant,
    last_hello: Instant,
    /// A Hello went out and no IHU has answered it yet.
    hello_outstanding: bool,
    pub last_ihu: Instant,
    link_cost: u16,
    pub static_cost: u16,
    pub last_rtt: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl Peer {
    pub fn new(now: Instant, id: PeerId, static_cost: u16) -> Self {
        Self {
            id,
            framer: Some(Framer::new()),
            out: Vec::new(),
            out_start: 0,
            hello_seqno: 0,
            next_hello: now,
            last_hello: now,
            hello_outstanding: false,
            last_ihu: now,
            link_cost: DEFAULT_LINK_COST,
            static_cost,
            last_rtt: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }

    /// What using this peer adds to a route's metric.
    pub fn cost(&self) -> u16 {
        self.link_cost
            .saturating_add(self.static_cost)
            .min(INFINITY - 1)
    }

    /// The smoothed measured part of [`Peer::cost`].
    pub fn link_cost(&self) -> u16 {
        self.link_cost
    }

    pub fn hello_sent(&mut self, now: Instant) {
        self.last_hello = now;
        self.hello_outstanding = true;
        self.hello_seqno = self.hello_seqno.wrapping_add(1);
    }

    /// An IHU arrived; returns whether it answered a Hello (and so gave a sample).
    pub fn ihu(&mut self, now: Instant) -> bool {
        self.last_ihu = now;
        if !self.hello_outstanding {
            return false;
        }
        self.hello_outstanding = false;
        let rtt = now - self.last_hello;
        self.last_rtt = Some(rtt);
        let sample = rtt.total_millis().min(u64::from(u16::MAX)) as u32;
        self.link_cost = ((u32::from(self.link_cost) * 9 + sample) / 10) as u16;
        true
    }

    /// Octets waiting to be written to the connection.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// The caller wrote `n` octets of [`Peer::pending`].
    pub fn consume(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        self.tx_bytes += n as u64;
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
    }

    /// `n` zeroed octets at the end of the send buffer, if the buffer stays within `limit`.
    pub fn reserve(&mut self, n: usize, limit: usize) -> Option<&mut [u8]> {
        if self.pending().len() + n > limit {
            return None;
        }
        if self.out_start > 0 && self.out_start >= self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
        let at = self.out.len();
        self.out.resize(at + n, 0);
        Some(&mut self.out[at..])
    }

    /// Takes back the last `n` reserved octets.
    pub fn unreserve(&mut self, n: usize) {
        let len = self.out.len().saturating_sub(n).max(self.out_start);
        self.out.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_smoothed_from_1000() {
        let t0 = Instant::from_secs(1);
        let mut p = Peer::new(t0, PeerId(1), TCP_V4_COST);
        assert_eq!(p.cost(), 1015);
        assert!(!p.ihu(t0), "no Hello outstanding: no sample");
        p.hello_sent(t0);
        assert!(p.ihu(t0 + Duration::from_millis(50)));
        assert_eq!(p.link_cost(), 905);
        assert_eq!(p.hello_seqno, 1);
    }

    #[test]
    fn the_send_buffer_is_bounded() {
        let mut p = Peer::new(Instant::ZERO, PeerId(1), 0);
        p.reserve(10, 16).unwrap().fill(1);
        assert!(p.reserve(7, 16).is_none());
        p.consume(6);
        p.reserve(10, 16).unwrap().fill(2);
        assert_eq!(p.pending(), &[1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        p.unreserve(10);
        assert_eq!(p.pending(), &[1, 1, 1, 1]);
        p.consume(4);
        assert!(p.pending().is_empty());
        assert_eq!(p.tx_bytes, 10);
    }
}
