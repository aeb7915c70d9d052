//! [`Tunnel`]: one peer on its own, in the spirit of boringtun's `Tunn` but sans-I/O.
//!
//! It wraps a [`Peer`] with what a receiver needs before routing: our static key for
//! decrypting initiations, mac1/mac2 checking and cookie replies, and the handshake rate
//! limiter. The multi-peer [`Device`](super::device::Device) does the same for many peers.

use core::net::SocketAddr;

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;

use super::admission::{admit, Admission};
use super::cookie::CookieChecker;
use super::counters::{Counters, DropReason};
use super::handshake::{consume_initiation_anon, initial_hash};
use super::keys::{PrivateKey, PublicKey};
use super::messages::{Message, COOKIE_REPLY_LEN};
use super::peer::{Now, Peer, PeerConfig, TunnelResult};
use super::rate_limiter::{HandshakeLimiter, DEFAULT_HANDSHAKES_PER_SECOND};

/// A point-to-point tunnel to one peer. `R` supplies randomness (RDRAND on the image).
pub struct Tunnel<R> {
    peer: Peer,
    ours: PrivateKey,
    responder_hash: [u8; 32],
    checker: CookieChecker,
    limiter: HandshakeLimiter,
    rng: R,
    counters: Counters,
}

impl<R> core::fmt::Debug for Tunnel<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tunnel")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRngCore> Tunnel<R> {
    /// A tunnel from `ours` to the peer in `config`. `index` (24 bits) becomes the upper
    /// bits of every receiver index this tunnel hands out.
    pub fn new(ours: PrivateKey, config: PeerConfig, index: u32, mut rng: R) -> Self {
        let public = ours.public_key();
        Self {
            peer: Peer::new(ours.clone(), config, index, &mut rng),
            responder_hash: initial_hash(&public),
            checker: CookieChecker::new(&public),
            limiter: HandshakeLimiter::new(DEFAULT_HANDSHAKES_PER_SECOND, &mut rng),
            ours,
            rng,
            counters: Counters::default(),
        }
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.ours.public_key()
    }

    /// The peer state (endpoint, counters, session status).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Mutable peer state (e.g. to change the endpoint).
    pub fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }

    /// Forces the under-load behaviour (cookie replies instead of responses without mac2).
    pub fn set_under_load(&mut self, under_load: bool) {
        self.limiter.set_under_load(under_load);
    }

    /// All counters: the tunnel's own (malformed, bad mac1, ...) plus the peer's.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.accumulate(self.peer.counters());
        c
    }

    /// See [`Peer::encapsulate`]; send the result to [`Peer::endpoint`].
    pub fn encapsulate<'a>(
        &mut self,
        now: Now,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        self.peer.encapsulate(now, &mut self.rng, packet, out)
    }

    /// See [`Peer::update_timers`]; send the result to [`Peer::endpoint`].
    pub fn update_timers<'a>(&mut self, now: Now, out: &'a mut [u8]) -> TunnelResult<'a> {
        self.peer.update_timers(now, &mut self.rng, out)
    }

    /// See [`Peer::dequeue`]; send the result to [`Peer::endpoint`]. Call after a handshake
    /// completes until it returns `Done`.
    pub fn dequeue<'a>(&mut self, now: Instant, out: &'a mut [u8]) -> TunnelResult<'a> {
        self.peer.dequeue(now, out)
    }

    /// When to call `update_timers` next.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.peer.poll_at(now)
    }

    fn fail<'a>(&mut self, reason: DropReason) -> TunnelResult<'a> {
        self.counters.record(reason);
        TunnelResult::Err(reason)
    }

    /// Processes one datagram received from `src`. A `WriteToNetwork` result goes back to
    /// `src`. `out` must be at least as long as the datagram (and 148 bytes).
    pub fn decapsulate<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> TunnelResult<'a> {
        let msg = match Message::parse(datagram) {
            Ok(m) => m,
            Err(e) => return self.fail(e),
        };
        if let Some(sender) = msg.handshake_sender() {
            match admit(
                &mut self.checker,
                &mut self.limiter,
                now,
                &mut self.rng,
                src,
                datagram,
                sender,
                out,
            ) {
                Admission::Accept => {}
                Admission::CookieReply => {
                    self.counters.tx_cookie_reply += 1;
                    return TunnelResult::WriteToNetwork(&mut out[..COOKIE_REPLY_LEN]);
                }
                Admission::Drop(e) => return self.fail(e),
            }
        }
        match msg {
            Message::Initiation(i) => {
                let half = match consume_initiation_anon(&self.ours, &self.responder_hash, &i) {
                    Ok(h) => h,
                    Err(e) => return self.fail(e),
                };
                if half.peer != *self.peer.public_key() {
                    return self.fail(DropReason::UnknownPeer);
                }
                self.peer
                    .handle_initiation(now, &mut self.rng, half, &i, src, out)
            }
            Message::Response(r) => {
                if !self.peer.owns_index(r.receiver()) {
                    return self.fail(DropReason::UnknownReceiver);
                }
                self.peer.handle_response(now, &r, src, out)
            }
            Message::CookieReply(c) => self.peer.handle_cookie_reply(now, &c),
            Message::Data(d) => self.peer.handle_data(now, &d, src, out),
        }
    }
}
