//! Protocol constants (whitepaper section 6) and the per-peer timer state.
//!
//! There are no timer callbacks: the peer records when things happened, and
//! `update_timers(now, ..)` compares those instants with `now` to decide what is due (see
//! `peer.rs`). [`Timers::next_deadline`] tells the caller when to call it next.

use smoltcp::time::{Duration, Instant};

/// Start a new handshake once a keypair has sent this many messages.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never use a keypair for this many messages: 2^64 - 2^13 - 1.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// The initiator of a keypair starts a new handshake when sending on one this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Never use a keypair this old.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up retrying a handshake after this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Retry an unanswered initiation after this long (plus jitter).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound (exclusive) of the random jitter added to REKEY_TIMEOUT, in milliseconds.
pub const REKEY_TIMEOUT_JITTER_MAX_MS: u32 = 334;
/// Send a keepalive this long after receiving data if we have sent nothing since.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// All key material is erased after this long without a new handshake: 3 * REJECT_AFTER_TIME.
pub const ZERO_KEYS_AFTER: Duration = Duration::from_secs(3 * 180);
/// The initiator rekeys on receive when its keypair is this old
/// (REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT).
pub const REKEY_ON_RECEIVE_AGE: Duration = Duration::from_secs(180 - 10 - 5);
/// Initiate a handshake when data sent this long ago got no answer
/// (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT).
pub const NEW_HANDSHAKE_AFTER_SILENCE: Duration = Duration::from_secs(10 + 5);

/// When things last happened for one peer.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    /// Persistent keepalive interval, if configured.
    pub persistent_keepalive: Option<Duration>,
    /// Last authenticated packet sent or received (persistent keepalive).
    pub last_traversal: Option<Instant>,
    /// First data packet sent since we last received anything (new-handshake timer).
    pub data_sent_unanswered: Option<Instant>,
    /// First data packet received since we last sent anything (passive keepalive).
    pub data_received_unanswered: Option<Instant>,
    /// When the current series of initiation retries began (REKEY_ATTEMPT_TIME).
    pub attempts_started: Option<Instant>,
    /// When we last sent an initiation.
    pub last_initiation_sent: Option<Instant>,
    /// Jitter added to REKEY_TIMEOUT for the pending retry.
    pub retry_jitter: Duration,
    /// When key material was last derived (keys are erased 3 * REJECT_AFTER_TIME later).
    pub keys_derived: Option<Instant>,
    /// When the last handshake completed (either role), for status display.
    pub last_handshake: Option<Instant>,
}

impl Timers {
    /// Any authenticated packet went out.
    pub fn packet_sent(&mut self, now: Instant) {
        self.last_traversal = Some(now);
        self.data_received_unanswered = None;
    }

    /// A non-keepalive data packet went out.
    pub fn data_sent(&mut self, now: Instant) {
        self.packet_sent(now);
        if self.data_sent_unanswered.is_none() {
            self.data_sent_unanswered = Some(now);
        }
    }

    /// Any authenticated packet came in.
    pub fn packet_received(&mut self, now: Instant) {
        self.last_traversal = Some(now);
        self.data_sent_unanswered = None;
    }

    /// A non-keepalive data packet came in.
    pub fn data_received(&mut self, now: Instant) {
        self.packet_received(now);
        if self.data_received_unanswered.is_none() {
            self.data_received_unanswered = Some(now);
        }
    }

    /// Whether another initiation may be sent now (at most one per REKEY_TIMEOUT).
    pub fn may_initiate(&self, now: Instant) -> bool {
        match self.last_initiation_sent {
            Some(t) => now >= t + REKEY_TIMEOUT,
            None => true,
        }
    }

    /// When the pending initiation should be retried.
    pub fn retry_at(&self) -> Option<Instant> {
        self.last_initiation_sent
            .map(|t| t + REKEY_TIMEOUT + self.retry_jitter)
    }

    /// A fresh keypair was derived.
    pub fn handshake_completed(&mut self, now: Instant) {
        self.keys_derived = Some(now);
        self.last_handshake = Some(now);
        self.attempts_started = None;
        self.last_initiation_sent = None;
    }

    /// The earliest instant at which some timer could fire, given whether a handshake is
    /// pending and whether a keypair may send. `None`: nothing is scheduled.
    pub fn next_deadline(&self, handshake_pending: bool, can_send: bool) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        consider(self.keys_derived.map(|t| t + ZERO_KEYS_AFTER));
        if handshake_pending {
            consider(self.retry_at());
        } else {
            consider(
                self.data_sent_unanswered
                    .map(|t| t + NEW_HANDSHAKE_AFTER_SILENCE),
            );
        }
        if can_send {
            consider(self.data_received_unanswered.map(|t| t + KEEPALIVE_TIMEOUT));
        }
        if let Some(interval) = self.persistent_keepalive {
            consider(Some(
                self.last_traversal.map_or(Instant::ZERO, |t| t + interval),
            ));
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_whitepaper() {
        assert_eq!(
            u128::from(REJECT_AFTER_MESSAGES),
            (1u128 << 64) - (1 << 13) - 1
        );
        assert_eq!(ZERO_KEYS_AFTER, REJECT_AFTER_TIME * 3);
        assert_eq!(
            REKEY_ON_RECEIVE_AGE,
            REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
        );
        assert_eq!(
            NEW_HANDSHAKE_AFTER_SILENCE,
            KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
        );
    }

    #[test]
    fn only_the_first_unanswered_send_arms_the_new_handshake_timer() {
        let mut t = Timers::default();
        t.data_sent(Instant::from_secs(1));
        t.data_sent(Instant::from_secs(3));
        assert_eq!(t.data_sent_unanswered, Some(Instant::from_secs(1)));
        t.packet_received(Instant::from_secs(4));
        assert_eq!(t.data_sent_unanswered, None);
    }

    #[test]
    fn deadline_is_the_earliest_pending_timer() {
        let mut t = Timers::default();
        assert_eq!(t.next_deadline(false, false), None);
        t.data_received(Instant::from_secs(100));
        assert_eq!(t.next_deadline(false, true), Some(Instant::from_secs(110)));
        t.keys_derived = Some(Instant::from_secs(0));
        t.persistent_keepalive = Some(Duration::from_secs(25));
        assert_eq!(t.next_deadline(false, true), Some(Instant::from_secs(110)));
        assert_eq!(t.next_deadline(false, false), Some(Instant::from_secs(125)));
    }
}
