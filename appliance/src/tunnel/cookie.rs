//! mac1, mac2 and cookies: the DoS-mitigation layer of whitepaper section 5.3 and 5.4.7.
//!
//! - [`CookieChecker`] is the receiving side, keyed by *our* public key: it verifies mac1 on
//!   every handshake message, and under load verifies mac2 against the cookie for the
//!   sender's address, or writes a cookie reply. The cookie is `MAC(R, ip || port)` with a
//!   random secret `R` replaced every two minutes.
//! - [`CookieJar`] is the sending side, keyed by the *peer's* public key: it appends mac1
//!   (and mac2 while it holds a fresh cookie) to the handshake messages we send and opens
//!   the cookie replies the peer sends us.

use core::net::{IpAddr, SocketAddr};

use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::counters::DropReason;
use super::crypto::{hash, mac, xaead_open, xaead_seal, TAG_LEN, XNONCE_LEN};
use super::keys::PublicKey;
use super::messages::{field, macs_split, CookieReply, COOKIE_REPLY_LEN, TYPE_COOKIE_REPLY};

/// `LABEL-MAC1`.
const LABEL_MAC1: &[u8] = b"mac1----";
/// `LABEL-COOKIE`.
const LABEL_COOKIE: &[u8] = b"cookie--";
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// The responder's cookie secret is replaced this often; a cookie is valid as long.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// A received cookie is used for mac2 only while younger than this (allowing for latency).
const COOKIE_USABLE_FOR: Duration = Duration::from_secs(120 - 5);

fn mac1_key(public: &PublicKey) -> [u8; 32] {
    hash(&[LABEL_MAC1, public.as_bytes()])
}

fn cookie_key(public: &PublicKey) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hash(&[LABEL_COOKIE, public.as_bytes()]))
}

/// The cookie for `src` under `secret`: the address bytes then the port, big-endian.
fn cookie_for(secret: &[u8; 32], src: SocketAddr) -> Zeroizing<[u8; COOKIE_LEN]> {
    let port = src.port().to_be_bytes();
    Zeroizing::new(match src.ip() {
        IpAddr::V4(a) => mac(secret, &[&a.octets(), &port]),
        IpAddr::V6(a) => mac(secret, &[&a.octets(), &port]),
    })
}

/// Verifies mac1/mac2 of handshake messages sent to us, and writes cookie replies.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: Zeroizing<[u8; 32]>,
    secret: Zeroizing<[u8; 32]>,
    secret_born: Option<Instant>,
}

impl core::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CookieChecker(<redacted>)")
    }
}

impl CookieChecker {
    /// A checker for messages addressed to `ours`.
    pub fn new(ours: &PublicKey) -> Self {
        Self {
            mac1_key: mac1_key(ours),
            cookie_key: cookie_key(ours),
            secret: Zeroizing::new([0; 32]),
            secret_born: None,
        }
    }

    /// Whether a handshake message (initiation or response) carries a valid mac1.
    pub fn check_mac1(&self, msg: &[u8]) -> bool {
        let (covered, mac1, _, _) = macs_split(msg);
        bool::from(mac(&self.mac1_key, &[covered]).ct_eq(mac1))
    }

    fn current_secret(&mut self, now: Instant, rng: &mut impl CryptoRngCore) -> &[u8; 32] {
        let stale = match self.secret_born {
            Some(born) => now >= born + COOKIE_SECRET_MAX_AGE || now < born,
            None => true,
        };
        if stale {
            rng.fill_bytes(&mut self.secret[..]);
            self.secret_born = Some(now);
        }
        &self.secret
    }

    /// Whether a handshake message from `src` carries the mac2 of its current cookie.
    pub fn check_mac2(
        &mut self,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        src: SocketAddr,
        msg: &[u8],
    ) -> bool {
        let cookie = cookie_for(self.current_secret(now, rng), src);
        let (_, _, covered, mac2) = macs_split(msg);
        bool::from(mac(&cookie[..], &[covered]).ct_eq(mac2))
    }

    /// Writes into `out` the cookie reply to the handshake message `msg` (whose sender
    /// index is `receiver`) from `src`.
    pub fn write_reply(
        &mut self,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        src: SocketAddr,
        receiver: u32,
        msg: &[u8],
        out: &mut [u8; COOKIE_REPLY_LEN],
    ) {
        let cookie = cookie_for(self.current_secret(now, rng), src);
        let (_, mac1, _, _) = macs_split(msg);
        out[field::TYPE].copy_from_slice(&u32::from(TYPE_COOKIE_REPLY).to_le_bytes());
        out[field::cookie_reply::RECEIVER].copy_from_slice(&receiver.to_le_bytes());
        let mut nonce = [0u8; XNONCE_LEN];
        rng.fill_bytes(&mut nonce);
        out[field::cookie_reply::NONCE].copy_from_slice(&nonce);
        let sealed = &mut out[field::cookie_reply::COOKIE];
        sealed[..COOKIE_LEN].copy_from_slice(&cookie[..]);
        xaead_seal(&self.cookie_key, &nonce, sealed, mac1);
    }
}

/// Adds mac1/mac2 to the handshake messages we send to one peer; holds its cookie.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct CookieJar {
    mac1_key: [u8; 32],
    cookie_key: Zeroizing<[u8; 32]>,
    cookie: Option<(Zeroizing<[u8; COOKIE_LEN]>, Instant)>,
    /// mac1 of the last handshake message we sent: the AAD of the cookie reply to it.
    last_mac1: Option<[u8; TAG_LEN]>,
}

impl core::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieJar")
            .field("has_cookie", &self.cookie.is_some())
            .finish_non_exhaustive()
    }
}

impl CookieJar {
    /// A jar for messages addressed to `peer`.
    pub fn new(peer: &PublicKey) -> Self {
        Self {
            mac1_key: mac1_key(peer),
            cookie_key: cookie_key(peer),
            cookie: None,
            last_mac1: None,
        }
    }

    /// Fills in the last 32 bytes (mac1, mac2) of a handshake message we are about to send.
    pub fn add_macs(&mut self, now: Instant, msg: &mut [u8]) {
        let n = msg.len();
        let mac1 = mac(&self.mac1_key, &[&msg[..n - 32]]);
        msg[n - 32..n - 16].copy_from_slice(&mac1);
        self.last_mac1 = Some(mac1);
        let mac2 = match &self.cookie {
            Some((cookie, at)) if now >= *at && now < *at + COOKIE_USABLE_FOR => {
                mac(&cookie[..], &[&msg[..n - 16]])
            }
            _ => [0; TAG_LEN],
        };
        msg[n - 16..].copy_from_slice(&mac2);
    }

    /// Opens a cookie reply to our last handshake message and keeps the cookie.
    pub fn consume_reply(
        &mut self,
        now: Instant,
        reply: &CookieReply<'_>,
    ) -> Result<(), DropReason> {
        let aad = self.last_mac1.ok_or(DropReason::UnexpectedMessage)?;
        let mut buf = Zeroizing::new(*reply.encrypted_cookie());
        if !xaead_open(&self.cookie_key, reply.nonce(), &mut buf[..], &aad) {
            return Err(DropReason::HandshakeDecryptFailed);
        }
        let mut cookie = Zeroizing::new([0u8; COOKIE_LEN]);
        cookie.copy_from_slice(&buf[..COOKIE_LEN]);
        self.cookie = Some((cookie, now));
        Ok(())
    }

    /// Whether we hold a cookie usable at `now`.
    pub fn has_fresh_cookie(&self, now: Instant) -> bool {
        matches!(&self.cookie, Some((_, at)) if now < *at + COOKIE_USABLE_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::PrivateKey;
    use super::super::messages::{Message, INITIATION_LEN};
    use super::*;
    use rand_core::OsRng;

    fn addr() -> SocketAddr {
        "192.0.2.7:51820".parse().unwrap()
    }

    #[test]
    fn mac1_binds_the_message_to_the_receivers_public_key() {
        let responder = PrivateKey::from_bytes([9; 32]).public_key();
        let other = PrivateKey::from_bytes([8; 32]).public_key();
        let mut msg = [0u8; INITIATION_LEN];
        msg[0] = 1;
        CookieJar::new(&responder).add_macs(Instant::ZERO, &mut msg);
        assert!(CookieChecker::new(&responder).check_mac1(&msg));
        assert!(!CookieChecker::new(&other).check_mac1(&msg));
        msg[10] ^= 1;
        assert!(!CookieChecker::new(&responder).check_mac1(&msg));
    }

    #[test]
    fn cookie_reply_round_trip_makes_mac2_valid_for_that_address_only() {
        let responder = PrivateKey::from_bytes([9; 32]).public_key();
        let now = Instant::from_secs(10);
        let mut checker = CookieChecker::new(&responder);
        let mut jar = CookieJar::new(&responder);
        let mut msg = [0u8; INITIATION_LEN];
        msg[0] = 1;
        jar.add_macs(now, &mut msg);
        assert!(!checker.check_mac2(now, &mut OsRng, addr(), &msg));
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        checker.write_reply(now, &mut OsRng, addr(), 77, &msg, &mut reply);
        let Ok(Message::CookieReply(r)) = Message::parse(&reply) else {
            panic!()
        };
        assert_eq!(r.receiver(), 77);
        jar.consume_reply(now, &r).unwrap();
        jar.add_macs(now, &mut msg);
        assert!(checker.check_mac2(now, &mut OsRng, addr(), &msg));
        let other_port: SocketAddr = "192.0.2.7:51821".parse().unwrap();
        assert!(!checker.check_mac2(now, &mut OsRng, other_port, &msg));
        // After the secret rotates, the old cookie no longer works.
        let later = now + COOKIE_SECRET_MAX_AGE;
        assert!(!checker.check_mac2(later, &mut OsRng, addr(), &msg));
    }

    #[test]
    fn cookie_reply_for_another_message_is_rejected() {
        let responder = PrivateKey::from_bytes([9; 32]).public_key();
        let now = Instant::from_secs(10);
        let mut checker = CookieChecker::new(&responder);
        let mut jar = CookieJar::new(&responder);
        let mut msg = [0u8; INITIATION_LEN];
        msg[0] = 1;
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        checker.write_reply(now, &mut OsRng, addr(), 1, &msg, &mut reply);
        let Ok(Message::CookieReply(r)) = Message::parse(&reply) else {
            panic!()
        };
        // Nothing sent yet.
        assert_eq!(
            jar.consume_reply(now, &r),
            Err(DropReason::UnexpectedMessage)
        );
        jar.add_macs(now, &mut msg);
        // The reply was made for the message without mac1.
        assert_eq!(
            jar.consume_reply(now, &r),
            Err(DropReason::HandshakeDecryptFailed)
        );
        assert!(!jar.has_fresh_cookie(now));
    }
}
