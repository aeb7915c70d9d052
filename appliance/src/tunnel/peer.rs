//! One peer's protocol state and the per-peer API: `encapsulate`, the `handle_*` steps of
//! `decapsulate`, `update_timers` and `dequeue` (whitepaper sections 5 and 6).
//!
//! A [`Peer`] owns the handshake state, the previous/current/next keypairs, the timers, the
//! bounded queue of packets waiting for a handshake, the cookie jar for messages it sends,
//! its counters and the endpoint (the authenticated source of the last valid packet, for
//! roaming). It never reads a clock and never allocates after creation. Incoming messages
//! reach it already parsed and, for handshakes, already screened by mac1/mac2 (see
//! `Tunnel` and `Device`, which also route them here).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};

use super::cookie::CookieJar;
use super::counters::{Counters, DropReason};
use super::handshake::{HalfInitiation, Handshake};
use super::inner::InnerHeader;
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::messages::{CookieReply, Data, Initiation, Response, INITIATION_LEN, RESPONSE_LEN};
use super::queue::PacketQueue;
use super::session::Keypair;
use super::timers::{
    Timers, KEEPALIVE_TIMEOUT, NEW_HANDSHAKE_AFTER_SILENCE, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME,
    REKEY_ATTEMPT_TIME, REKEY_ON_RECEIVE_AGE, REKEY_TIMEOUT_JITTER_MAX_MS, ZERO_KEYS_AFTER,
};

/// The time inputs of every call: the monotonic clock, and wall time for TAI64N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (all protocol timers run on this).
    pub instant: Instant,
    /// Wall-clock nanoseconds since the Unix epoch (from the RTC); used only to stamp
    /// handshake initiations.
    pub wall_ns: u64,
}

impl Now {
    /// Both clocks.
    pub fn new(instant: Instant, wall_ns: u64) -> Self {
        Self { instant, wall_ns }
    }
}

/// What the caller should do with the result of a call.
#[derive(Debug)]
pub enum TunnelResult<'a> {
    /// Nothing to send or deliver.
    Done,
    /// Send this datagram: to the source of the datagram just decapsulated, or, for
    /// `encapsulate`, `update_timers` and `dequeue`, to the peer's endpoint.
    WriteToNetwork(&'a mut [u8]),
    /// Deliver this decrypted IPv4 packet, whose source address is given.
    WriteToTunnelV4(&'a mut [u8], Ipv4Addr),
    /// Deliver this decrypted IPv6 packet, whose source address is given.
    WriteToTunnelV6(&'a mut [u8], Ipv6Addr),
    /// The datagram or packet was dropped for this reason (already counted).
    Err(DropReason),
}

/// How to set up one peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Optional preshared key.
    pub preshared_key: Option<PresharedKey>,
    /// Initial endpoint; updated from authenticated packets (roaming).
    pub endpoint: Option<SocketAddr>,
    /// Persistent keepalive interval in seconds, if any.
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with just a public key and an endpoint.
    pub fn new(public_key: PublicKey, endpoint: Option<SocketAddr>) -> Self {
        Self {
            public_key,
            preshared_key: None,
            endpoint,
            persistent_keepalive: None,
        }
    }
}

/// A [`TunnelResult`] without the borrow of `out` (every result is a prefix of `out`), so
/// internal steps can be chained and returned conditionally.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Out {
    Done,
    Net(usize),
    V4(usize, Ipv4Addr),
    V6(usize, Ipv6Addr),
    Err(DropReason),
}

impl Out {
    pub(crate) fn attach(self, out: &mut [u8]) -> TunnelResult<'_> {
        match self {
            Out::Done => TunnelResult::Done,
            Out::Net(n) => TunnelResult::WriteToNetwork(&mut out[..n]),
            Out::V4(n, a) => TunnelResult::WriteToTunnelV4(&mut out[..n], a),
            Out::V6(n, a) => TunnelResult::WriteToTunnelV6(&mut out[..n], a),
            Out::Err(e) => TunnelResult::Err(e),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
    Next,
}

/// One peer's protocol state.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct Peer {
    handshake: Handshake,
    jar: CookieJar,
    current: Option<Keypair>,
    previous: Option<Keypair>,
    next: Option<Keypair>,
    timers: Timers,
    queue: PacketQueue,
    /// Upper 24 bits of every index we hand out for this peer.
    index_base: u32,
    index_counter: u8,
    endpoint: Option<SocketAddr>,
    counters: Counters,
    /// A rekey is due; `update_timers` sends the initiation.
    want_handshake: bool,
}

impl core::fmt::Debug for Peer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Peer")
            .field("public_key", self.handshake.peer())
            .field("endpoint", &self.endpoint)
            .field("current", &self.current)
            .field("previous", &self.previous)
            .field("next", &self.next)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer talking to `config.public_key` with our key `ours`. Every index this peer
    /// hands out has `index_base` (a 24-bit value) in its upper 24 bits.
    pub fn new(
        ours: PrivateKey,
        config: PeerConfig,
        index_base: u32,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let timers = Timers {
            persistent_keepalive: config
                .persistent_keepalive
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
            ..Timers::default()
        };
        Self {
            jar: CookieJar::new(&config.public_key),
            handshake: Handshake::new(ours, config.public_key, config.preshared_key),
            current: None,
            previous: None,
            next: None,
            timers,
            queue: PacketQueue::new(),
            index_base: (index_base & 0x00ff_ffff) << 8,
            index_counter: (rng.next_u32() & 0xff) as u8,
            endpoint: config.endpoint,
            counters: Counters::default(),
            want_handshake: false,
        }
    }

    /// The peer's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.handshake.peer()
    }

    /// Where to send: the configured endpoint, or the authenticated source of the last
    /// valid packet from this peer (roaming).
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }

    /// Overrides the endpoint (configuration change).
    pub fn set_endpoint(&mut self, endpoint: Option<SocketAddr>) {
        self.endpoint = endpoint;
    }

    /// This peer's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// When the last handshake completed.
    pub fn last_handshake(&self) -> Option<Instant> {
        self.timers.last_handshake
    }

    /// Whether a keypair is ready to send on at `now`.
    pub fn has_session(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|k| k.can_send(now))
    }

    /// Whether we hold a fresh cookie from this peer (it was under load), used for mac2.
    pub fn has_cookie(&self, now: Instant) -> bool {
        self.jar.has_fresh_cookie(now)
    }

    /// Whether a handshake initiation of ours is waiting for a response.
    pub fn handshake_pending(&self) -> bool {
        self.handshake.pending_index().is_some()
    }

    /// Number of packets waiting for a handshake.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The send counter of the current keypair (for tests and status).
    pub fn current_send_counter(&self) -> Option<u64> {
        self.current.as_ref().map(Keypair::send_counter)
    }

    /// Whether `index` is one of ours (a keypair's or the pending initiation's).
    pub fn owns_index(&self, index: u32) -> bool {
        self.handshake.pending_index() == Some(index)
            || [&self.current, &self.previous, &self.next]
                .iter()
                .any(|k| k.as_ref().is_some_and(|k| k.local_index == index))
    }

    /// When `update_timers` next has something to do (`None`: only on new traffic).
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        let pending = self.handshake.pending_index().is_some();
        if self.want_handshake && !pending {
            let t = self
                .timers
                .last_initiation_sent
                .map_or(now, |t| (t + super::timers::REKEY_TIMEOUT).max(now));
            return Some(
                self.timers
                    .next_deadline(pending, self.has_session(now))
                    .map_or(t, |d| d.min(t)),
            );
        }
        self.timers.next_deadline(pending, self.has_session(now))
    }

    fn fail(&mut self, reason: DropReason) -> Out {
        self.counters.record(reason);
        Out::Err(reason)
    }

    fn next_local_index(&mut self) -> u32 {
        loop {
            self.index_counter = self.index_counter.wrapping_add(1);
            let index = self.index_base | u32::from(self.index_counter);
            if !self.owns_index(index) {
                return index;
            }
        }
    }

    /// Sends an initiation now (first attempt or retry).
    fn send_initiation(&mut self, now: Now, rng: &mut impl CryptoRngCore, out: &mut [u8]) -> Out {
        if out.len() < INITIATION_LEN {
            return self.fail(DropReason::TooLarge);
        }
        if self.handshake.pending_index().is_none() {
            self.timers.attempts_started = Some(now.instant);
        }
        let index = self.next_local_index();
        let msg: &mut [u8; INITIATION_LEN] = (&mut out[..INITIATION_LEN])
            .try_into()
            .expect("length checked");
        if let Err(e) = self
            .handshake
            .create_initiation(now.wall_ns, rng, index, msg)
        {
            return self.fail(e);
        }
        self.jar.add_macs(now.instant, msg);
        self.timers.last_initiation_sent = Some(now.instant);
        self.timers.retry_jitter =
            Duration::from_millis(u64::from(rng.next_u32() % REKEY_TIMEOUT_JITTER_MAX_MS));
        self.timers.packet_sent(now.instant);
        self.want_handshake = false;
        self.counters.tx_initiation += 1;
        Out::Net(INITIATION_LEN)
    }

    /// Starts a handshake unless one is pending or one was sent within REKEY_TIMEOUT.
    fn initiate_if_allowed(
        &mut self,
        now: Now,
        rng: &mut impl CryptoRngCore,
        out: &mut [u8],
    ) -> Out {
        if self.handshake.pending_index().is_some() || !self.timers.may_initiate(now.instant) {
            return Out::Done;
        }
        self.send_initiation(now, rng, out)
    }

    /// Encrypts with the current keypair; `None` if there is no usable one.
    fn send_with_current(&mut self, now: Instant, packet: &[u8], out: &mut [u8]) -> Option<Out> {
        let kp = self.current.as_mut().filter(|k| k.can_send(now))?;
        let n = match kp.encrypt(packet, out) {
            Ok(n) => n,
            Err(e) => return Some(self.fail(e)),
        };
        if (kp.initiator && now >= kp.created + REKEY_AFTER_TIME)
            || kp.send_counter() >= REKEY_AFTER_MESSAGES
        {
            self.want_handshake = true;
        }
        if packet.is_empty() {
            self.timers.packet_sent(now);
            self.counters.tx_keepalive += 1;
        } else {
            self.timers.data_sent(now);
            self.counters.tx_data += 1;
            self.counters.tx_bytes += packet.len() as u64;
        }
        Some(Out::Net(n))
    }

    /// Encrypts an IP packet (or a keepalive if empty) for this peer. Without a session the
    /// packet is queued and the result is the handshake initiation to send, if one is due.
    /// `out` must hold `packet.len()` + 32 bytes (plus up to 15 of padding), and at least
    /// 148.
    pub fn encapsulate<'a>(
        &mut self,
        now: Now,
        rng: &mut impl CryptoRngCore,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.encapsulate_raw(now, rng, packet, out).attach(out)
    }

    fn encapsulate_raw(
        &mut self,
        now: Now,
        rng: &mut impl CryptoRngCore,
        packet: &[u8],
        out: &mut [u8],
    ) -> Out {
        if self.endpoint.is_none() {
            return self.fail(DropReason::NoEndpoint);
        }
        if let Some(r) = self.send_with_current(now.instant, packet, out) {
            return r;
        }
        let mut queued = true;
        if !packet.is_empty() {
            if self.queue.push(packet) {
                self.counters.queued += 1;
            } else {
                self.counters.record(DropReason::QueueFull);
                queued = false;
            }
        }
        match self.initiate_if_allowed(now, rng, out) {
            Out::Done if !queued => Out::Err(DropReason::QueueFull),
            r => r,
        }
    }

    /// Sends the oldest queued packet if a session is up.
    pub fn dequeue<'a>(&mut self, now: Instant, out: &'a mut [u8]) -> TunnelResult<'a> {
        self.dequeue_raw(now, out).attach(out)
    }

    fn dequeue_raw(&mut self, now: Instant, out: &mut [u8]) -> Out {
        if self.queue.is_empty() {
            return Out::Done;
        }
        let Some(kp) = self.current.as_mut().filter(|k| k.can_send(now)) else {
            return Out::Done;
        };
        let Some(packet) = self.queue.front() else {
            return Out::Done;
        };
        let len = packet.len();
        let r = match kp.encrypt(packet, out) {
            Ok(n) => n,
            Err(e) => {
                self.queue.pop();
                return self.fail(e);
            }
        };
        self.queue.pop();
        self.timers.data_sent(now);
        self.counters.tx_data += 1;
        self.counters.tx_bytes += len as u64;
        Out::Net(r)
    }

    /// Answers an initiation from this peer (already screened and half-consumed).
    pub fn handle_initiation<'a>(
        &mut self,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        half: HalfInitiation,
        msg: &Initiation<'_>,
        src: SocketAddr,
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.handle_initiation_raw(now, rng, half, msg, src, out)
            .attach(out)
    }

    fn handle_initiation_raw(
        &mut self,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        half: HalfInitiation,
        msg: &Initiation<'_>,
        src: SocketAddr,
        out: &mut [u8],
    ) -> Out {
        if out.len() < RESPONSE_LEN {
            return self.fail(DropReason::TooLarge);
        }
        let consumed = match self.handshake.consume_initiation(now, half, msg) {
            Ok(c) => c,
            Err(e) => return self.fail(e),
        };
        let index = self.next_local_index();
        let resp: &mut [u8; RESPONSE_LEN] = (&mut out[..RESPONSE_LEN])
            .try_into()
            .expect("length checked");
        let keypair = match self
            .handshake
            .create_response(now, rng, consumed, index, resp)
        {
            Ok(k) => k,
            Err(e) => return self.fail(e),
        };
        self.jar.add_macs(now, resp);
        // The new keypair waits in `next` until the initiator uses it; the previous one
        // goes, so at most three keypairs exist.
        self.next = Some(keypair);
        self.previous = None;
        self.timers.keys_derived = Some(now);
        self.timers.packet_received(now);
        self.timers.packet_sent(now);
        self.endpoint = Some(src);
        self.counters.tx_response += 1;
        Out::Net(RESPONSE_LEN)
    }

    /// Completes our handshake with a response; sends the first queued packet or a
    /// keepalive so the responder can start using the keypair.
    pub fn handle_response<'a>(
        &mut self,
        now: Instant,
        msg: &Response<'_>,
        src: SocketAddr,
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.handle_response_raw(now, msg, src, out).attach(out)
    }

    fn handle_response_raw(
        &mut self,
        now: Instant,
        msg: &Response<'_>,
        src: SocketAddr,
        out: &mut [u8],
    ) -> Out {
        let keypair = match self.handshake.consume_response(now, msg) {
            Ok(k) => k,
            Err(e) => return self.fail(e),
        };
        if let Some(next) = self.next.take() {
            self.previous = Some(next);
        } else {
            self.previous = self.current.take();
        }
        self.current = Some(keypair);
        self.timers.handshake_completed(now);
        self.timers.packet_received(now);
        self.endpoint = Some(src);
        self.want_handshake = false;
        self.counters.handshakes_completed += 1;
        match self.dequeue_raw(now, out) {
            Out::Done => self.send_with_current(now, &[], out).unwrap_or(Out::Done),
            r => r,
        }
    }

    /// Takes the cookie from a reply to one of our handshake messages.
    pub fn handle_cookie_reply<'a>(
        &mut self,
        now: Instant,
        msg: &CookieReply<'_>,
    ) -> TunnelResult<'a> {
        if !self.owns_index(msg.receiver()) {
            self.counters.record(DropReason::UnexpectedMessage);
            return TunnelResult::Err(DropReason::UnexpectedMessage);
        }
        match self.jar.consume_reply(now, msg) {
            Ok(()) => {
                self.counters.rx_cookie_reply += 1;
                TunnelResult::Done
            }
            Err(e) => {
                self.counters.record(e);
                TunnelResult::Err(e)
            }
        }
    }

    /// Decrypts a data message addressed to one of our keypairs into `out`.
    pub fn handle_data<'a>(
        &mut self,
        now: Instant,
        msg: &Data<'_>,
        src: SocketAddr,
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.handle_data_raw(now, msg, src, out).attach(out)
    }

    fn handle_data_raw(
        &mut self,
        now: Instant,
        msg: &Data<'_>,
        src: SocketAddr,
        out: &mut [u8],
    ) -> Out {
        let index = msg.receiver();
        let slot = if self
            .current
            .as_ref()
            .is_some_and(|k| k.local_index == index)
        {
            Slot::Current
        } else if self.next.as_ref().is_some_and(|k| k.local_index == index) {
            Slot::Next
        } else if self
            .previous
            .as_ref()
            .is_some_and(|k| k.local_index == index)
        {
            Slot::Previous
        } else {
            return self.fail(DropReason::UnknownReceiver);
        };
        let kp = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Next => self.next.as_mut(),
            Slot::Previous => self.previous.as_mut(),
        }
        .expect("slot checked above");
        if !kp.is_fresh(now) {
            return self.fail(DropReason::ExpiredKey);
        }
        let n = match kp.decrypt(msg, out) {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        // Authenticated from here on.
        self.endpoint = Some(src);
        self.timers.packet_received(now);
        if slot == Slot::Next {
            // The initiator has started using the keypair we answered with.
            self.previous = self.current.take();
            self.current = self.next.take();
            self.timers.last_handshake = Some(now);
            self.counters.handshakes_completed += 1;
        }
        if let Some(cur) = &self.current {
            if cur.local_index == index
                && cur.initiator
                && now >= cur.created + REKEY_ON_RECEIVE_AGE
                && self.handshake.pending_index().is_none()
            {
                self.want_handshake = true;
            }
        }
        if n == 0 {
            self.counters.rx_keepalive += 1;
            return Out::Done;
        }
        let Some(header) = InnerHeader::parse(&out[..n]) else {
            return self.fail(DropReason::BadInnerPacket);
        };
        self.timers.data_received(now);
        let len = header.total_len();
        self.counters.rx_data += 1;
        self.counters.rx_bytes += len as u64;
        match header {
            InnerHeader::V4 { src, .. } => Out::V4(len, src),
            InnerHeader::V6 { src, .. } => Out::V6(len, src),
        }
    }

    /// Erases every keypair, the pending handshake and the queue.
    fn zero_keys(&mut self) {
        self.current = None;
        self.previous = None;
        self.next = None;
        self.handshake.clear();
        self.queue.clear();
        self.timers.keys_derived = None;
        self.timers.attempts_started = None;
        self.timers.last_initiation_sent = None;
        self.timers.data_sent_unanswered = None;
        self.timers.data_received_unanswered = None;
        self.want_handshake = false;
        self.counters.keys_zeroed += 1;
    }

    /// Runs the timers (whitepaper section 6): erases old keys, retries or gives up on
    /// handshakes, starts rekeys, sends passive and persistent keepalives. Returns at most
    /// one datagram per call: call again until `Done`.
    pub fn update_timers<'a>(
        &mut self,
        now: Now,
        rng: &mut impl CryptoRngCore,
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.update_timers_raw(now, rng, out).attach(out)
    }

    fn update_timers_raw(&mut self, now: Now, rng: &mut impl CryptoRngCore, out: &mut [u8]) -> Out {
        let t = now.instant;
        if self
            .timers
            .keys_derived
            .is_some_and(|d| t >= d + ZERO_KEYS_AFTER)
        {
            self.zero_keys();
        }

        if self.handshake.pending_index().is_some() {
            if self.timers.retry_at().is_some_and(|r| t >= r) {
                if self
                    .timers
                    .attempts_started
                    .is_some_and(|s| t >= s + REKEY_ATTEMPT_TIME)
                {
                    self.handshake.clear();
                    let dropped = self.queue.clear() as u64;
                    self.counters
                        .record_n(DropReason::HandshakeTimeout, dropped);
                    self.timers.attempts_started = None;
                    self.timers.last_initiation_sent = None;
                    self.timers.data_sent_unanswered = None;
                    self.want_handshake = false;
                } else if self.endpoint.is_some() {
                    return self.send_initiation(now, rng, out);
                }
            }
        } else {
            if self
                .timers
                .data_sent_unanswered
                .is_some_and(|d| t >= d + NEW_HANDSHAKE_AFTER_SILENCE)
            {
                self.timers.data_sent_unanswered = None;
                self.want_handshake = true;
            }
            if self.want_handshake && self.endpoint.is_some() && self.timers.may_initiate(t) {
                return self.send_initiation(now, rng, out);
            }
        }

        if self
            .timers
            .data_received_unanswered
            .is_some_and(|d| t >= d + KEEPALIVE_TIMEOUT)
        {
            match self.send_with_current(t, &[], out) {
                Some(r) => return r,
                None => self.timers.data_received_unanswered = None,
            }
        }

        if let Some(interval) = self.timers.persistent_keepalive {
            let due = self.timers.last_traversal.is_none_or(|l| t >= l + interval);
            if due && self.endpoint.is_some() {
                if let Some(r) = self.send_with_current(t, &[], out) {
                    return r;
                }
                if self.handshake.pending_index().is_none() && self.timers.may_initiate(t) {
                    return self.send_initiation(now, rng, out);
                }
            }
        }
        Out::Done
    }
}
