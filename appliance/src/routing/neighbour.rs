//! One Babel neighbour (a tunnel peer): what we heard from it and what it says of us.
//!
//! - Reception: a 16-bit Hello history with the expected-seqno logic of RFC 8966 appendix
//!   A.1 (a Hello that skips seqnos shifts in the missed ones; a Hello that does not come
//!   within 1.5 intervals counts as missed, then one per interval). `rxcost` is ETX-like:
//!   the nominal cost divided by the fraction of Hellos received, and [`INFINITY`] once the
//!   last [`Settings::dead_after_missed`](super::Settings) expected Hellos were all missed
//!   (fast failure detection).
//! - Transmission: `txcost` is the rxcost the neighbour last told us in an IHU, valid for
//!   3.5 of its IHU intervals.
//! - RTT (RFC 9616): the neighbour's last Hello timestamp and when we got it (echoed in
//!   our IHUs), and samples from a packet that carries both its Hello timestamp and an IHU
//!   echoing ours, smoothed by an exponential average.
//! - Cost: `txcost * rxcost / nominal` (ETX for two lossy directions) plus an RTT penalty
//!   linear between `rtt_min` and `rtt_max`.

use super::wire::INFINITY;
use super::Settings;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv6Address;

/// The caller's handle for a neighbour (one tunnel peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NeighbourId(pub u32);

/// Hellos are not numbered beyond this many missed ones (a reset past it).
const MAX_SKIP: u16 = 16;

/// A neighbour's state.
#[derive(Clone, Debug)]
pub(crate) struct Neighbour {
    pub id: NeighbourId,
    /// The neighbour's link-local address (the source of its packets).
    pub address: Ipv6Address,
    /// 1 bits are received Hellos, most recent in the top bit.
    history: u16,
    /// How many of the history's bits are meaningful (≤ 16).
    history_len: u8,
    /// The seqno we expect on its next Hello.
    expected_seqno: u16,
    /// The interval the neighbour announced in its Hellos.
    hello_interval: Duration,
    /// When the next Hello is overdue (a missed one is shifted in then).
    hello_deadline: Option<Instant>,
    /// Consecutive expected Hellos missed.
    missed: u8,
    /// The rxcost it advertised in its last IHU, and until when that holds.
    txcost: u16,
    txcost_until: Option<Instant>,
    /// RFC 9616: its last Hello's timestamp and our receive time of it (µs, mod 2^32).
    pub last_hello_ts: Option<(u32, u32)>,
    /// Smoothed RTT in microseconds, and when it was last sampled.
    rtt_us: Option<u32>,
    rtt_time: Instant,
    /// Our Hello seqno towards it, and when our next Hello and IHU are due.
    pub our_seqno: u16,
    pub next_hello: Instant,
    pub next_ihu: Instant,
    /// Whether a full route dump (answer to a wildcard request, or periodic) is due.
    pub dump_due: bool,
    /// Whether a wildcard route request to it is due (new neighbour).
    pub request_due: bool,
    /// The cost last used for route selection, to notice changes.
    pub last_cost: u16,
    /// Octets we emitted to it (for the idle-overhead figure).
    pub tx_bytes: u64,
}

impl Neighbour {
    pub fn new(id: NeighbourId, address: Ipv6Address, now: Instant) -> Self {
        Self {
            id,
            address,
            history: 0,
            history_len: 0,
            expected_seqno: 0,
            hello_interval: Duration::from_secs(4),
            hello_deadline: None,
            missed: 0,
            txcost: INFINITY,
            txcost_until: None,
            last_hello_ts: None,
            rtt_us: None,
            rtt_time: now,
            our_seqno: 0,
            next_hello: now,
            next_ihu: now,
            dump_due: true,
            request_due: true,
            last_cost: INFINITY,
            tx_bytes: 0,
        }
    }

    fn shift(&mut self, received: bool) {
        self.history = (self.history >> 1) | if received { 0x8000 } else { 0 };
        self.history_len = (self.history_len + 1).min(16);
        if received {
            self.missed = 0;
        } else {
            self.missed = self.missed.saturating_add(1);
        }
    }

    /// A Hello arrived (appendix A.1). `timestamp` is its RFC 9616 transmit time.
    pub fn hello(&mut self, now: Instant, seqno: u16, interval_cs: u16, timestamp: Option<u32>) {
        if self.history_len > 0 {
            let skipped = seqno.wrapping_sub(self.expected_seqno);
            if skipped > MAX_SKIP {
                // Far ahead or behind: the neighbour restarted; start afresh.
                self.history = 0;
                self.history_len = 0;
                self.missed = 0;
            } else {
                for _ in 0..skipped {
                    self.shift(false);
                }
            }
        }
        self.shift(true);
        self.expected_seqno = seqno.wrapping_add(1);
        if interval_cs > 0 {
            self.hello_interval = Duration::from_millis(u64::from(interval_cs) * 10);
            self.hello_deadline = Some(now + self.hello_interval * 3 / 2);
        } else {
            self.hello_deadline = None;
        }
        if let Some(ts) = timestamp {
            self.last_hello_ts = Some((ts, micros32(now)));
        }
    }

    /// Shifts in the Hellos that are overdue at `now`. Returns whether anything changed.
    pub fn expire_hellos(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(deadline) = self.hello_deadline {
            if now < deadline || self.history_len == 0 {
                break;
            }
            self.shift(false);
            self.expected_seqno = self.expected_seqno.wrapping_add(1);
            changed = true;
            if self.history == 0 {
                self.hello_deadline = None;
            } else {
                self.hello_deadline = Some(deadline + self.hello_interval);
            }
        }
        if let Some(until) = self.txcost_until {
            if now >= until {
                self.txcost = INFINITY;
                self.txcost_until = None;
                changed = true;
            }
        }
        changed
    }

    /// An IHU addressed to us arrived.
    pub fn ihu(&mut self, now: Instant, rxcost: u16, interval_cs: u16) {
        self.txcost = rxcost;
        let interval = if interval_cs == 0 {
            Duration::from_secs(12)
        } else {
            Duration::from_millis(u64::from(interval_cs) * 10)
        };
        self.txcost_until = Some(now + interval * 7 / 2);
    }

    /// An RTT sample (RFC 9616 section 3.3): `origin` our Hello's timestamp echoed by the
    /// neighbour, `receive` when it got it, `sent` its Hello's timestamp in the same
    /// packet, all mod 2^32 µs; `now` when we received the packet.
    pub fn rtt_sample(
        &mut self,
        settings: &Settings,
        now: Instant,
        origin: u32,
        receive: u32,
        sent: u32,
    ) -> bool {
        if origin == 0 {
            return false;
        }
        let local = micros32(now).wrapping_sub(origin);
        let remote = sent.wrapping_sub(receive);
        // Both intervals must be plausible (under a minute), the remote one shorter.
        const WINDOW: u32 = 60_000_000;
        if local > WINDOW || remote > WINDOW || remote > local {
            return false;
        }
        let sample = local - remote;
        let decay = u64::from(settings.rtt_decay);
        self.rtt_us = Some(match self.rtt_us {
            Some(old) if now - self.rtt_time < Duration::from_secs(180) => {
                ((decay * u64::from(sample) + (256 - decay) * u64::from(old)) / 256) as u32
            }
            _ => sample,
        });
        self.rtt_time = now;
        true
    }

    /// The cost of receiving from this neighbour, as we advertise it in IHUs.
    pub fn rxcost(&self, settings: &Settings) -> u16 {
        if self.history_len == 0 || self.history == 0 || self.missed >= settings.dead_after_missed {
            return INFINITY;
        }
        let got = u32::from(self.history.count_ones() as u16);
        let cost = u32::from(settings.nominal_cost) * u32::from(self.history_len) / got;
        cost.min(u32::from(INFINITY) - 1) as u16
    }

    /// The cost of sending to it, from its last IHU.
    pub fn txcost(&self) -> u16 {
        self.txcost
    }

    /// The smoothed RTT, if measured in the last three minutes.
    pub fn rtt(&self, now: Instant) -> Option<Duration> {
        match self.rtt_us {
            Some(us) if now - self.rtt_time < Duration::from_secs(180) => {
                Some(Duration::from_micros(u64::from(us)))
            }
            _ => None,
        }
    }

    /// The RTT penalty added to the cost.
    pub fn rtt_cost(&self, settings: &Settings, now: Instant) -> u16 {
        let Some(rtt) = self.rtt(now) else { return 0 };
        let (min, max) = (
            settings.rtt_min.total_micros(),
            settings.rtt_max.total_micros(),
        );
        let rtt = rtt.total_micros();
        if rtt <= min || max <= min {
            0
        } else if rtt >= max {
            settings.max_rtt_penalty
        } else {
            (u64::from(settings.max_rtt_penalty) * (rtt - min) / (max - min)) as u16
        }
    }

    /// The link cost used in route metrics ([`INFINITY`] when unreachable).
    pub fn cost(&self, settings: &Settings, now: Instant) -> u16 {
        let rx = self.rxcost(settings);
        let tx = self.txcost;
        if rx == INFINITY || tx == INFINITY {
            return INFINITY;
        }
        let nominal = u32::from(settings.nominal_cost.max(1));
        let etx = u32::from(tx.max(1)) * u32::from(rx) / nominal;
        let total = etx.max(u32::from(tx.min(rx))) + u32::from(self.rtt_cost(settings, now));
        total.min(u32::from(INFINITY) - 1) as u16
    }

    /// The Hello reception history (most recent first) and how many bits are valid.
    pub fn history(&self) -> (u16, u8) {
        (self.history, self.history_len)
    }

    /// When a missed Hello will next be counted.
    pub fn hello_deadline(&self) -> Option<Instant> {
        self.hello_deadline
    }

    /// When the txcost from the last IHU lapses.
    pub fn txcost_until(&self) -> Option<Instant> {
        self.txcost_until
    }
}

/// `now` in microseconds modulo 2^32, the clock of RFC 9616 timestamps.
pub(crate) fn micros32(now: Instant) -> u32 {
    now.total_micros() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (Neighbour, Settings, Instant) {
        let now = Instant::from_secs(1);
        let n = Neighbour::new(NeighbourId(1), Ipv6Address::LOCALHOST, now);
        (n, Settings::default(), now)
    }

    #[test]
    fn skipped_seqnos_count_as_lost_and_raise_the_rxcost() {
        let (mut n, s, mut now) = fresh();
        assert_eq!(n.rxcost(&s), INFINITY, "nothing heard yet");
        // 16 expected Hellos, every fourth one lost: 12 of 16 received.
        for seqno in 0..16u16 {
            now += Duration::from_millis(250);
            if seqno % 4 != 1 {
                n.hello(now, seqno, 25, None);
            }
        }
        // Most recent first: 15, 14 received, 13 lost, 12 received, ...
        assert_eq!(n.history(), (0b1101_1101_1101_1101, 16));
        assert_eq!(n.rxcost(&s), 96 * 16 / 12);
        // Both directions lossy: ETX multiplies.
        n.ihu(now, 128, 75);
        assert_eq!(n.cost(&s, now), 128 * 128 / 96);
    }

    #[test]
    fn four_missed_hellos_make_the_neighbour_unreachable() {
        let (mut n, s, mut now) = fresh();
        for seqno in 0..8u16 {
            now += Duration::from_millis(250);
            n.hello(now, seqno, 25, None);
        }
        n.ihu(now, 96, 75);
        assert_eq!(n.cost(&s, now), 96);
        let last = now;
        // Silence: the first miss is counted at 1.5 intervals, then one per interval.
        let mut dead_at = None;
        while now - last < Duration::from_secs(2) {
            now += Duration::from_millis(5);
            n.expire_hellos(now);
            if dead_at.is_none() && n.cost(&s, now) == INFINITY {
                dead_at = Some(now - last);
            }
        }
        // 1.5 + 3 intervals of 250 ms with the default of 4 missed Hellos.
        assert_eq!(dead_at, Some(Duration::from_millis(1125)));
    }

    #[test]
    fn restarted_neighbour_starts_a_fresh_history() {
        let (mut n, s, mut now) = fresh();
        for seqno in 100..110u16 {
            now += Duration::from_millis(250);
            n.hello(now, seqno, 25, None);
        }
        now += Duration::from_millis(250);
        n.hello(now, 3, 25, None);
        assert_eq!(n.history(), (0x8000, 1));
        assert_eq!(n.rxcost(&s), 96);
    }

    #[test]
    fn rtt_sample_subtracts_the_remote_wait() {
        let (mut n, s, _) = fresh();
        // Our Hello left at 1_000_000 µs; the peer got it at 5_000 (its clock) and
        // answered at 25_000 (20 ms later); we read the answer at 1_050_000: 50 ms
        // round trip, 20 ms of it waiting at the peer.
        let at = Instant::from_micros(1_050_000);
        assert!(n.rtt_sample(&s, at, 1_000_000, 5_000, 25_000));
        assert_eq!(n.rtt(at), Some(Duration::from_millis(30)));
        // Implausible: the peer claims to have waited longer than the round trip.
        assert!(!n.rtt_sample(&s, at, 1_000_000, 5_000, 95_000));
    }
}
