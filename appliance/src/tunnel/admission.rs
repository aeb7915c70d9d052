//! Admission of incoming handshake messages: mac1 always, then under load mac2 (or a
//! cookie reply) and the per-source rate limit. Shared by `Tunnel` and `Device`, which each
//! own one [`CookieChecker`] and one [`HandshakeLimiter`] for their static key.

use core::net::SocketAddr;

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;

use super::cookie::CookieChecker;
use super::counters::DropReason;
use super::messages::COOKIE_REPLY_LEN;
use super::rate_limiter::HandshakeLimiter;

/// What to do with a handshake message.
pub enum Admission {
    /// Process it.
    Accept,
    /// We are under load and it had no valid mac2: send the cookie reply now in
    /// `out[..COOKIE_REPLY_LEN]` to the source.
    CookieReply,
    /// Drop it.
    Drop(DropReason),
}

/// Screens the handshake message `msg` (sender index `sender`) from `src`.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    checker: &mut CookieChecker,
    limiter: &mut HandshakeLimiter,
    now: Instant,
    rng: &mut impl CryptoRngCore,
    src: SocketAddr,
    msg: &[u8],
    sender: u32,
    out: &mut [u8],
) -> Admission {
    if !checker.check_mac1(msg) {
        return Admission::Drop(DropReason::BadMac1);
    }
    if limiter.note_handshake(now) {
        if !checker.check_mac2(now, rng, src, msg) {
            let Some(reply) = out
                .get_mut(..COOKIE_REPLY_LEN)
                .and_then(|b| <&mut [u8; COOKIE_REPLY_LEN]>::try_from(b).ok())
            else {
                return Admission::Drop(DropReason::TooLarge);
            };
            checker.write_reply(now, rng, src, sender, msg, reply);
            return Admission::CookieReply;
        }
        if !limiter.allow_source(now, src.ip()) {
            return Admission::Drop(DropReason::RateLimited);
        }
    }
    Admission::Accept
}
