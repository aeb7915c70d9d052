//! The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake (whitepaper section 5.4.2-5.4.5).
//!
//! Creating and consuming initiations and responses, deriving the transport keypair.
//! mac1/mac2 are not handled here (see `cookie.rs`): a message reaching this module has
//! already passed them. Consuming an initiation is split in two so that a multi-peer
//! device can identify the peer from the decrypted static key
//! ([`consume_initiation_anon`]) before the peer's own state finishes the job
//! ([`Handshake::consume_initiation`]), without computing any DH twice.

use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::counters::DropReason;
use super::crypto::{hash, kdf1, kdf2, kdf3, open_once, seal_once, HASH_LEN};
use super::keys::{PresharedKey, PrivateKey, PublicKey, KEY_LEN};
use super::messages::{
    field, Initiation, Response, INITIATION_LEN, RESPONSE_LEN, TYPE_INITIATION, TYPE_RESPONSE,
};
use super::session::Keypair;
use super::tai64n::{Tai64n, TaiClock, TAI64N_LEN};

/// The Noise protocol name.
const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// The WireGuard identifier mixed into the initial hash.
const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// At most one initiation per peer is consumed per this interval (50 per second).
const MIN_INITIATION_INTERVAL: Duration = Duration::from_millis(20);

/// `Ci = HASH(CONSTRUCTION)`, the initial chaining key.
fn initial_chaining_key() -> [u8; HASH_LEN] {
    hash(&[CONSTRUCTION])
}

/// `Hi = HASH(HASH(Ci || IDENTIFIER) || responder_public)`, the initial hash of a handshake
/// whose responder has key `responder`.
pub fn initial_hash(responder: &PublicKey) -> [u8; HASH_LEN] {
    let h = hash(&[&initial_chaining_key(), IDENTIFIER]);
    hash(&[&h, responder.as_bytes()])
}

fn public_of(secret: &StaticSecret) -> [u8; KEY_LEN] {
    x25519_dalek::PublicKey::from(secret).to_bytes()
}

fn dh(
    secret: &StaticSecret,
    public: &[u8; KEY_LEN],
) -> Result<Zeroizing<[u8; KEY_LEN]>, DropReason> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    if shared.was_contributory() {
        Ok(Zeroizing::new(shared.to_bytes()))
    } else {
        Err(DropReason::HandshakeDecryptFailed)
    }
}

/// An initiation whose static key has been decrypted with our private key.
pub struct HalfInitiation {
    /// The initiator's static public key.
    pub peer: PublicKey,
    chaining_key: Zeroizing<[u8; HASH_LEN]>,
    hash: [u8; HASH_LEN],
}

/// Decrypts the initiator's static key with our private key (one DH). `responder_hash` is
/// [`initial_hash`] of our own public key.
pub fn consume_initiation_anon(
    ours: &PrivateKey,
    responder_hash: &[u8; HASH_LEN],
    msg: &Initiation<'_>,
) -> Result<HalfInitiation, DropReason> {
    let e_i = msg.ephemeral();
    let ck = kdf1(&initial_chaining_key(), e_i);
    let h = hash(&[responder_hash, e_i]);
    let shared = ours.dh(e_i).ok_or(DropReason::HandshakeDecryptFailed)?;
    let (ck, key) = kdf2(&ck, &shared[..]);
    let mut static_buf = *msg.encrypted_static();
    if !open_once(&key, &mut static_buf, &h) {
        return Err(DropReason::HandshakeDecryptFailed);
    }
    let mut peer = [0u8; KEY_LEN];
    peer.copy_from_slice(&static_buf[..KEY_LEN]);
    let h = hash(&[&h, msg.encrypted_static()]);
    Ok(HalfInitiation {
        peer: PublicKey(peer),
        chaining_key: ck,
        hash: h,
    })
}

/// An initiation fully authenticated and accepted; ready to be answered.
pub struct ConsumedInitiation {
    chaining_key: Zeroizing<[u8; HASH_LEN]>,
    hash: [u8; HASH_LEN],
    peer_ephemeral: [u8; KEY_LEN],
    peer_index: u32,
}

#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
struct InitiationSent {
    local_index: u32,
    chaining_key: Zeroizing<[u8; HASH_LEN]>,
    hash: [u8; HASH_LEN],
    ephemeral: StaticSecret,
}

/// The handshake state we keep for one peer.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct Handshake {
    ours: PrivateKey,
    our_public: PublicKey,
    peer: PublicKey,
    /// DH(our static, peer static), computed once; `None` if the peer key is low-order.
    static_static: Option<Zeroizing<[u8; KEY_LEN]>>,
    psk: PresharedKey,
    /// [`initial_hash`] of the peer's key (we are the initiator).
    initiator_hash: [u8; HASH_LEN],
    pending: Option<InitiationSent>,
    tai: TaiClock,
    /// Greatest timestamp accepted from the peer.
    latest_timestamp: Option<Tai64n>,
    last_initiation_consumed: Option<Instant>,
}

impl core::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handshake")
            .field("peer", &self.peer)
            .field("pending", &self.pending.as_ref().map(|p| p.local_index))
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Handshake state between `ours` and `peer`.
    pub fn new(ours: PrivateKey, peer: PublicKey, psk: Option<PresharedKey>) -> Self {
        let static_static = ours.dh(peer.as_bytes());
        Self {
            our_public: ours.public_key(),
            ours,
            initiator_hash: initial_hash(&peer),
            peer,
            static_static,
            psk: psk.unwrap_or_else(PresharedKey::zero),
            pending: None,
            tai: TaiClock::default(),
            latest_timestamp: None,
            last_initiation_consumed: None,
        }
    }

    /// The peer's static public key.
    pub fn peer(&self) -> &PublicKey {
        &self.peer
    }

    /// Our index of the initiation we are waiting on, if any.
    pub fn pending_index(&self) -> Option<u32> {
        self.pending.as_ref().map(|p| p.local_index)
    }

    /// Forgets the pending initiation (its ephemeral key is zeroized on drop).
    pub fn clear(&mut self) {
        self.pending = None;
    }

    /// Writes an initiation (without macs) into `out` and remembers its state.
    pub fn create_initiation(
        &mut self,
        wall_ns: u64,
        rng: &mut impl CryptoRngCore,
        local_index: u32,
        out: &mut [u8; INITIATION_LEN],
    ) -> Result<(), DropReason> {
        let ss = self
            .static_static
            .as_ref()
            .ok_or(DropReason::HandshakeDecryptFailed)?;
        let ephemeral = StaticSecret::random_from_rng(&mut *rng);
        let e_i = public_of(&ephemeral);
        out[field::TYPE].copy_from_slice(&u32::from(TYPE_INITIATION).to_le_bytes());
        out[field::initiation::SENDER].copy_from_slice(&local_index.to_le_bytes());
        out[field::initiation::EPHEMERAL].copy_from_slice(&e_i);

        let ck = kdf1(&initial_chaining_key(), &e_i);
        let h = hash(&[&self.initiator_hash, &e_i]);
        let (ck, key) = kdf2(&ck, &dh(&ephemeral, self.peer.as_bytes())?[..]);
        let sealed = &mut out[field::initiation::STATIC];
        sealed[..KEY_LEN].copy_from_slice(self.our_public.as_bytes());
        seal_once(&key, sealed, &h);
        let h = hash(&[&h, &out[field::initiation::STATIC]]);
        let (ck, key) = kdf2(&ck, &ss[..]);
        let sealed = &mut out[field::initiation::TIMESTAMP];
        sealed[..TAI64N_LEN].copy_from_slice(&self.tai.stamp(wall_ns).0);
        seal_once(&key, sealed, &h);
        let h = hash(&[&h, &out[field::initiation::TIMESTAMP]]);

        self.pending = Some(InitiationSent {
            local_index,
            chaining_key: ck,
            hash: h,
            ephemeral,
        });
        Ok(())
    }

    /// Finishes an initiation from this peer: decrypts and checks the timestamp (replay)
    /// and the arrival rate (flood), and records both.
    pub fn consume_initiation(
        &mut self,
        now: Instant,
        half: HalfInitiation,
        msg: &Initiation<'_>,
    ) -> Result<ConsumedInitiation, DropReason> {
        let ss = self
            .static_static
            .as_ref()
            .ok_or(DropReason::HandshakeDecryptFailed)?;
        let (ck, key) = kdf2(&half.chaining_key, &ss[..]);
        let mut ts = *msg.encrypted_timestamp();
        if !open_once(&key, &mut ts, &half.hash) {
            return Err(DropReason::HandshakeDecryptFailed);
        }
        let h = hash(&[&half.hash, msg.encrypted_timestamp()]);
        let mut stamp = [0u8; TAI64N_LEN];
        stamp.copy_from_slice(&ts[..TAI64N_LEN]);
        let stamp = Tai64n(stamp);
        if self.latest_timestamp.is_some_and(|t| stamp <= t) {
            return Err(DropReason::StaleTimestamp);
        }
        if self
            .last_initiation_consumed
            .is_some_and(|t| now < t + MIN_INITIATION_INTERVAL)
        {
            return Err(DropReason::HandshakeFlood);
        }
        self.latest_timestamp = Some(stamp);
        self.last_initiation_consumed = Some(now);
        Ok(ConsumedInitiation {
            chaining_key: ck,
            hash: h,
            peer_ephemeral: *msg.ephemeral(),
            peer_index: msg.sender(),
        })
    }

    /// Writes the response (without macs) to `init` into `out` and returns the new keypair
    /// (we are the responder).
    pub fn create_response(
        &mut self,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        init: ConsumedInitiation,
        local_index: u32,
        out: &mut [u8; RESPONSE_LEN],
    ) -> Result<Keypair, DropReason> {
        let ephemeral = StaticSecret::random_from_rng(&mut *rng);
        let e_r = public_of(&ephemeral);
        out[field::TYPE].copy_from_slice(&u32::from(TYPE_RESPONSE).to_le_bytes());
        out[field::response::SENDER].copy_from_slice(&local_index.to_le_bytes());
        out[field::response::RECEIVER].copy_from_slice(&init.peer_index.to_le_bytes());
        out[field::response::EPHEMERAL].copy_from_slice(&e_r);

        let ck = kdf1(&init.chaining_key, &e_r);
        let h = hash(&[&init.hash, &e_r]);
        let ck = kdf1(&ck, &dh(&ephemeral, &init.peer_ephemeral)?[..]);
        let ck = kdf1(&ck, &dh(&ephemeral, self.peer.as_bytes())?[..]);
        let (ck, tau, key) = kdf3(&ck, &self.psk.0);
        let h = hash(&[&h, &tau[..]]);
        let sealed = &mut out[field::response::EMPTY];
        sealed.fill(0);
        seal_once(&key, sealed, &h);
        let (t_send_i, t_recv_i) = kdf2(&ck, &[]);
        Ok(Keypair::new(
            &t_recv_i,
            &t_send_i,
            local_index,
            init.peer_index,
            now,
            false,
        ))
    }

    /// Consumes a response to our pending initiation and returns the new keypair (we are
    /// the initiator). A response that does not authenticate leaves the pending state.
    pub fn consume_response(
        &mut self,
        now: Instant,
        msg: &Response<'_>,
    ) -> Result<Keypair, DropReason> {
        let pending = match &self.pending {
            Some(p) if p.local_index == msg.receiver() => p,
            _ => return Err(DropReason::UnexpectedMessage),
        };
        let e_r = msg.ephemeral();
        let ck = kdf1(&pending.chaining_key, e_r);
        let h = hash(&[&pending.hash, e_r]);
        let ck = kdf1(&ck, &dh(&pending.ephemeral, e_r)?[..]);
        let shared = self
            .ours
            .dh(e_r)
            .ok_or(DropReason::HandshakeDecryptFailed)?;
        let ck = kdf1(&ck, &shared[..]);
        let (ck, tau, key) = kdf3(&ck, &self.psk.0);
        let h = hash(&[&h, &tau[..]]);
        let mut empty = *msg.encrypted_empty();
        if !open_once(&key, &mut empty, &h) {
            return Err(DropReason::HandshakeDecryptFailed);
        }
        let (t_send, t_recv) = kdf2(&ck, &[]);
        let keypair = Keypair::new(
            &t_send,
            &t_recv,
            pending.local_index,
            msg.sender(),
            now,
            true,
        );
        self.pending = None;
        Ok(keypair)
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::Message;
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn initial_hash_and_chaining_key_follow_the_protocol_strings() {
        // HASH(CONSTRUCTION) as printed by the WireGuard reference implementations.
        assert_eq!(initial_chaining_key()[..4], [0x60, 0xe2, 0x6d, 0xae]);
        assert_eq!(
            hash(&[&initial_chaining_key(), IDENTIFIER])[..4],
            [0x22, 0x11, 0xb3, 0x61]
        );
    }

    #[test]
    fn initiator_and_responder_derive_mirrored_transport_keys() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let psk = PresharedKey::from_bytes([5; 32]);
        let mut ha = Handshake::new(a.clone(), b.public_key(), Some(psk.clone()));
        let mut hb = Handshake::new(b.clone(), a.public_key(), Some(psk));
        let now = Instant::from_secs(1);

        let mut init = [0u8; INITIATION_LEN];
        ha.create_initiation(1, &mut OsRng, 0x100, &mut init)
            .unwrap();
        let Ok(Message::Initiation(im)) = Message::parse(&init) else {
            panic!()
        };
        let half = consume_initiation_anon(&b, &initial_hash(&b.public_key()), &im).unwrap();
        assert_eq!(half.peer, a.public_key());
        let consumed = hb.consume_initiation(now, half, &im).unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        let mut kb = hb
            .create_response(now, &mut OsRng, consumed, 0x200, &mut resp)
            .unwrap();
        let Ok(Message::Response(rm)) = Message::parse(&resp) else {
            panic!()
        };
        let mut ka = ha.consume_response(now, &rm).unwrap();
        assert_eq!((ka.local_index, ka.remote_index), (0x100, 0x200));
        assert_eq!((kb.local_index, kb.remote_index), (0x200, 0x100));

        let mut wire = [0u8; 64];
        let mut plain = [0u8; 64];
        let n = ka.encrypt(b"ping", &mut wire).unwrap();
        let Ok(Message::Data(d)) = Message::parse(&wire[..n]) else {
            panic!()
        };
        kb.decrypt(&d, &mut plain).unwrap();
        assert_eq!(&plain[..4], b"ping");
        let n = kb.encrypt(b"pong", &mut wire).unwrap();
        let Ok(Message::Data(d)) = Message::parse(&wire[..n]) else {
            panic!()
        };
        ka.decrypt(&d, &mut plain).unwrap();
        assert_eq!(&plain[..4], b"pong");
    }

    #[test]
    fn replayed_initiation_is_rejected_by_timestamp() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let mut ha = Handshake::new(a.clone(), b.public_key(), None);
        let mut hb = Handshake::new(b.clone(), a.public_key(), None);
        let mut init = [0u8; INITIATION_LEN];
        ha.create_initiation(1_000, &mut OsRng, 1, &mut init)
            .unwrap();
        let Ok(Message::Initiation(im)) = Message::parse(&init) else {
            panic!()
        };
        let rh = initial_hash(&b.public_key());
        let half = consume_initiation_anon(&b, &rh, &im).unwrap();
        hb.consume_initiation(Instant::from_secs(1), half, &im)
            .ok()
            .unwrap();
        let half = consume_initiation_anon(&b, &rh, &im).unwrap();
        assert_eq!(
            hb.consume_initiation(Instant::from_secs(2), half, &im)
                .err(),
            Some(DropReason::StaleTimestamp)
        );
    }

    #[test]
    fn initiation_for_another_responder_does_not_decrypt() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let c = PrivateKey::generate(&mut OsRng);
        let mut ha = Handshake::new(a, b.public_key(), None);
        let mut init = [0u8; INITIATION_LEN];
        ha.create_initiation(1, &mut OsRng, 1, &mut init).unwrap();
        let Ok(Message::Initiation(im)) = Message::parse(&init) else {
            panic!()
        };
        assert_eq!(
            consume_initiation_anon(&c, &initial_hash(&c.public_key()), &im).err(),
            Some(DropReason::HandshakeDecryptFailed)
        );
    }

    #[test]
    fn mismatched_preshared_keys_fail_the_response() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let mut ha = Handshake::new(
            a.clone(),
            b.public_key(),
            Some(PresharedKey::from_bytes([1; 32])),
        );
        let mut hb = Handshake::new(
            b.clone(),
            a.public_key(),
            Some(PresharedKey::from_bytes([2; 32])),
        );
        let mut init = [0u8; INITIATION_LEN];
        ha.create_initiation(1, &mut OsRng, 1, &mut init).unwrap();
        let Ok(Message::Initiation(im)) = Message::parse(&init) else {
            panic!()
        };
        let half = consume_initiation_anon(&b, &initial_hash(&b.public_key()), &im).unwrap();
        let consumed = hb
            .consume_initiation(Instant::ZERO, half, &im)
            .ok()
            .unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        hb.create_response(Instant::ZERO, &mut OsRng, consumed, 2, &mut resp)
            .unwrap();
        let Ok(Message::Response(rm)) = Message::parse(&resp) else {
            panic!()
        };
        assert_eq!(
            ha.consume_response(Instant::ZERO, &rm).err(),
            Some(DropReason::HandshakeDecryptFailed)
        );
        assert_eq!(ha.pending_index(), Some(1));
    }
}
