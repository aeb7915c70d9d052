//! Why a packet was dropped ([`DropReason`]) and how often ([`Counters`]).
//!
//! Every early return on the data and handshake paths carries a [`DropReason`]; the core
//! counts it before returning, so the counters are complete without the caller's help.

/// Why the core refused a datagram or an outbound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// Not a well-formed WireGuard message (type, reserved bytes or length).
    Malformed,
    /// A handshake message whose mac1 does not match our public key.
    BadMac1,
    /// Under load, a handshake message from a source that exceeded its rate.
    RateLimited,
    /// A handshake initiation whose static key is not one of our peers.
    UnknownPeer,
    /// A data, response or cookie message whose receiver index is not ours.
    UnknownReceiver,
    /// A handshake message whose encrypted fields do not authenticate.
    HandshakeDecryptFailed,
    /// An initiation whose TAI64N timestamp is not newer than the last accepted one.
    StaleTimestamp,
    /// Initiations from one peer arriving faster than one per 20 ms.
    HandshakeFlood,
    /// A handshake response or cookie reply for a handshake we are not waiting on.
    UnexpectedMessage,
    /// A data message whose AEAD tag does not verify.
    DecryptFailed,
    /// A data message whose counter was already seen or is left of the replay window.
    Replay,
    /// A data message for a keypair older than REJECT_AFTER_TIME.
    ExpiredKey,
    /// The keypair's counter reached REJECT_AFTER_MESSAGES.
    CounterExhausted,
    /// A decrypted packet that is not IPv4/IPv6 or whose length field is inconsistent.
    BadInnerPacket,
    /// A decrypted packet whose inner source address is not in the peer's AllowedIPs.
    AllowedIpsMismatch,
    /// Outbound: no peer's AllowedIPs cover the destination.
    NoRoute,
    /// Outbound: the peer has no known endpoint yet.
    NoEndpoint,
    /// The packet does not fit the caller's buffer or the protocol's limits.
    TooLarge,
    /// Outbound: no session yet and the wait queue is full (or the packet is too big for it).
    QueueFull,
    /// The packets that waited for a handshake that never completed (REKEY_ATTEMPT_TIME).
    HandshakeTimeout,
}

/// Event and drop counters, a plain struct the caller can copy out and print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Data packets decrypted and handed to the tunnel (keepalives excluded).
    pub rx_data: u64,
    /// Decrypted inner bytes handed to the tunnel.
    pub rx_bytes: u64,
    /// Keepalives received.
    pub rx_keepalive: u64,
    /// Data packets encrypted (keepalives excluded).
    pub tx_data: u64,
    /// Inner bytes encrypted.
    pub tx_bytes: u64,
    /// Keepalives sent.
    pub tx_keepalive: u64,
    /// Handshake initiations sent (first attempts and retries).
    pub tx_initiation: u64,
    /// Handshake responses sent.
    pub tx_response: u64,
    /// Cookie replies sent because we were under load.
    pub tx_cookie_reply: u64,
    /// Cookie replies received and accepted.
    pub rx_cookie_reply: u64,
    /// Handshakes completed (either role).
    pub handshakes_completed: u64,
    /// Packets queued while waiting for a handshake.
    pub queued: u64,
    /// Times all key material was erased after 3 * REJECT_AFTER_TIME without a handshake.
    pub keys_zeroed: u64,
    /// Drops, one counter per [`DropReason`].
    pub drops: Drops,
}

/// Every [`DropReason`], in declaration order.
pub const ALL_DROP_REASONS: [DropReason; 20] = [
    DropReason::Malformed,
    DropReason::BadMac1,
    DropReason::RateLimited,
    DropReason::UnknownPeer,
    DropReason::UnknownReceiver,
    DropReason::HandshakeDecryptFailed,
    DropReason::StaleTimestamp,
    DropReason::HandshakeFlood,
    DropReason::UnexpectedMessage,
    DropReason::DecryptFailed,
    DropReason::Replay,
    DropReason::ExpiredKey,
    DropReason::CounterExhausted,
    DropReason::BadInnerPacket,
    DropReason::AllowedIpsMismatch,
    DropReason::NoRoute,
    DropReason::NoEndpoint,
    DropReason::TooLarge,
    DropReason::QueueFull,
    DropReason::HandshakeTimeout,
];

/// One counter per [`DropReason`], named after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Drops {
    /// [`DropReason::Malformed`].
    pub malformed: u64,
    /// [`DropReason::BadMac1`].
    pub bad_mac1: u64,
    /// [`DropReason::RateLimited`].
    pub rate_limited: u64,
    /// [`DropReason::UnknownPeer`].
    pub unknown_peer: u64,
    /// [`DropReason::UnknownReceiver`].
    pub unknown_receiver: u64,
    /// [`DropReason::HandshakeDecryptFailed`].
    pub handshake_decrypt_failed: u64,
    /// [`DropReason::StaleTimestamp`].
    pub stale_timestamp: u64,
    /// [`DropReason::HandshakeFlood`].
    pub handshake_flood: u64,
    /// [`DropReason::UnexpectedMessage`].
    pub unexpected_message: u64,
    /// [`DropReason::DecryptFailed`].
    pub decrypt_failed: u64,
    /// [`DropReason::Replay`].
    pub replay: u64,
    /// [`DropReason::ExpiredKey`].
    pub expired_key: u64,
    /// [`DropReason::CounterExhausted`].
    pub counter_exhausted: u64,
    /// [`DropReason::BadInnerPacket`].
    pub bad_inner_packet: u64,
    /// [`DropReason::AllowedIpsMismatch`].
    pub allowed_ips_mismatch: u64,
    /// [`DropReason::NoRoute`].
    pub no_route: u64,
    /// [`DropReason::NoEndpoint`].
    pub no_endpoint: u64,
    /// [`DropReason::TooLarge`].
    pub too_large: u64,
    /// [`DropReason::QueueFull`].
    pub queue_full: u64,
    /// [`DropReason::HandshakeTimeout`].
    pub handshake_timeout: u64,
}

impl Drops {
    fn slot(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::BadMac1 => &mut self.bad_mac1,
            DropReason::RateLimited => &mut self.rate_limited,
            DropReason::UnknownPeer => &mut self.unknown_peer,
            DropReason::UnknownReceiver => &mut self.unknown_receiver,
            DropReason::HandshakeDecryptFailed => &mut self.handshake_decrypt_failed,
            DropReason::StaleTimestamp => &mut self.stale_timestamp,
            DropReason::HandshakeFlood => &mut self.handshake_flood,
            DropReason::UnexpectedMessage => &mut self.unexpected_message,
            DropReason::DecryptFailed => &mut self.decrypt_failed,
            DropReason::Replay => &mut self.replay,
            DropReason::ExpiredKey => &mut self.expired_key,
            DropReason::CounterExhausted => &mut self.counter_exhausted,
            DropReason::BadInnerPacket => &mut self.bad_inner_packet,
            DropReason::AllowedIpsMismatch => &mut self.allowed_ips_mismatch,
            DropReason::NoRoute => &mut self.no_route,
            DropReason::NoEndpoint => &mut self.no_endpoint,
            DropReason::TooLarge => &mut self.too_large,
            DropReason::QueueFull => &mut self.queue_full,
            DropReason::HandshakeTimeout => &mut self.handshake_timeout,
        }
    }

    /// How many packets were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Malformed => self.malformed,
            DropReason::BadMac1 => self.bad_mac1,
            DropReason::RateLimited => self.rate_limited,
            DropReason::UnknownPeer => self.unknown_peer,
            DropReason::UnknownReceiver => self.unknown_receiver,
            DropReason::HandshakeDecryptFailed => self.handshake_decrypt_failed,
            DropReason::StaleTimestamp => self.stale_timestamp,
            DropReason::HandshakeFlood => self.handshake_flood,
            DropReason::UnexpectedMessage => self.unexpected_message,
            DropReason::DecryptFailed => self.decrypt_failed,
            DropReason::Replay => self.replay,
            DropReason::ExpiredKey => self.expired_key,
            DropReason::CounterExhausted => self.counter_exhausted,
            DropReason::BadInnerPacket => self.bad_inner_packet,
            DropReason::AllowedIpsMismatch => self.allowed_ips_mismatch,
            DropReason::NoRoute => self.no_route,
            DropReason::NoEndpoint => self.no_endpoint,
            DropReason::TooLarge => self.too_large,
            DropReason::QueueFull => self.queue_full,
            DropReason::HandshakeTimeout => self.handshake_timeout,
        }
    }

    /// Total drops for all reasons.
    pub fn total(&self) -> u64 {
        ALL_DROP_REASONS.iter().map(|r| self.get(*r)).sum()
    }
}

impl Counters {
    /// Counts one drop.
    pub fn record(&mut self, reason: DropReason) {
        *self.drops.slot(reason) += 1;
    }

    /// Counts `n` drops.
    pub fn record_n(&mut self, reason: DropReason, n: u64) {
        *self.drops.slot(reason) += n;
    }

    /// How many packets were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason)
    }

    /// Adds `other` into `self` (to sum per-peer counters into a device total).
    pub fn accumulate(&mut self, other: &Counters) {
        self.rx_data += other.rx_data;
        self.rx_bytes += other.rx_bytes;
        self.rx_keepalive += other.rx_keepalive;
        self.tx_data += other.tx_data;
        self.tx_bytes += other.tx_bytes;
        self.tx_keepalive += other.tx_keepalive;
        self.tx_initiation += other.tx_initiation;
        self.tx_response += other.tx_response;
        self.tx_cookie_reply += other.tx_cookie_reply;
        self.rx_cookie_reply += other.rx_cookie_reply;
        self.handshakes_completed += other.handshakes_completed;
        self.queued += other.queued;
        self.keys_zeroed += other.keys_zeroed;
        for r in ALL_DROP_REASONS {
            *self.drops.slot(r) += other.drops.get(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_slot() {
        let mut c = Counters::default();
        c.record(DropReason::Replay);
        c.record(DropReason::Replay);
        c.record(DropReason::HandshakeTimeout);
        assert_eq!(c.dropped(DropReason::Replay), 2);
        assert_eq!(c.dropped(DropReason::HandshakeTimeout), 1);
        assert_eq!(c.drops.total(), 3);
        for r in ALL_DROP_REASONS {
            let mut one = Counters::default();
            one.record(r);
            assert_eq!(one.drops.total(), 1);
            assert_eq!(one.dropped(r), 1);
        }
    }
}
