//! The data path's crypto: AES-256-GCM under the raw X25519 shared secret of two nodes.
//!
//! A data body is `E(01 TT 00 00 | payload) | tag(16) | nonce(12)`: the 4-octet inner
//! header (version 1; type 0 an IPv6 packet, 1 a message fragment, 2 an out-of-band
//! ICMP), sealed with no associated data under a random 96-bit nonce, tag and nonce
//! appended. The key is the X25519 output itself, not hashed, the same for both
//! directions and for ever: Mycelium has no forward secrecy and no replay protection, and
//! the outer addresses and hop limit are not authenticated. This module reproduces that
//! to interoperate; what bounds the damage is in the node (inner addresses must match the
//! outer ones, and the key is only ever looked up from the route to the claimed source).
//!
//! [`Secrets`] caches one expanded cipher per remote public key, bounded; the least
//! recently used entry is evicted (and counted) when it is full. Ciphers zeroize their
//! key schedules on drop (the `aes` and `polyval` crates' `zeroize` features) and print
//! as `<redacted>`.

use alloc::collections::BTreeMap;
use core::fmt;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use smoltcp::time::Instant;

use super::keys::{PublicKey, SecretKey};

/// Octets of the random nonce, appended last.
pub const NONCE_LEN: usize = 12;
/// Octets of the GCM tag, before the nonce.
pub const TAG_LEN: usize = 16;
/// Octets of the inner header inside the seal.
pub const INNER_HEADER_LEN: usize = 4;
/// What sealing adds to a payload.
pub const OVERHEAD: usize = INNER_HEADER_LEN + TAG_LEN + NONCE_LEN;
/// Inner header version.
pub const INNER_VERSION: u8 = 1;
/// Inner type: an IPv6 packet.
pub const KIND_IP: u8 = 0;
/// Inner type: a fragment of Mycelium's message API.
pub const KIND_MESSAGE: u8 = 1;
/// Inner type: an ICMP error about a packet sealed to someone else.
pub const KIND_OOB_ICMP: u8 = 2;

/// AES-256-GCM under one shared secret.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    /// The cipher for the raw shared secret `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// Seals in place: `buf` holds the inner header and payload, then `TAG_LEN +
    /// NONCE_LEN` spare octets at its end that receive tag and nonce. The inner header is
    /// written here (`kind`).
    pub fn seal(&self, kind: u8, nonce: [u8; NONCE_LEN], buf: &mut [u8]) -> Option<()> {
        let plain_len = buf.len().checked_sub(TAG_LEN + NONCE_LEN)?;
        if plain_len < INNER_HEADER_LEN {
            return None;
        }
        buf[..INNER_HEADER_LEN].copy_from_slice(&[INNER_VERSION, kind, 0, 0]);
        let (plain, rest) = buf.split_at_mut(plain_len);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], plain)
            .ok()?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        rest[TAG_LEN..].copy_from_slice(&nonce);
        Some(())
    }

    /// Opens a sealed body in place; returns the inner type and the payload, or `None`
    /// if it is too short, does not authenticate, or is not inner version 1.
    pub fn open<'a>(&self, body: &'a mut [u8]) -> Option<(u8, &'a mut [u8])> {
        let plain_len = body.len().checked_sub(TAG_LEN + NONCE_LEN)?;
        if plain_len < INNER_HEADER_LEN {
            return None;
        }
        let (plain, rest) = body.split_at_mut(plain_len);
        let (tag, nonce) = rest.split_at(TAG_LEN);
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &[], plain, Tag::from_slice(tag))
            .ok()?;
        if plain[0] != INNER_VERSION {
            return None;
        }
        let kind = plain[1];
        Some((kind, &mut plain[INNER_HEADER_LEN..]))
    }
}

struct Entry {
    cipher: Cipher,
    used: Instant,
}

/// Why no cipher could be had for a remote key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoCipher {
    /// A low-order public key: its shared secret is public.
    WeakKey,
}

/// Bounded cache of ciphers, one per remote public key.
pub struct Secrets {
    map: BTreeMap<PublicKey, Entry>,
    capacity: usize,
    /// Entries evicted to make room.
    pub evicted: u64,
}

impl Secrets {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: BTreeMap::new(),
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    /// The cipher shared with `remote`, computing (and caching) it on first use.
    pub fn get(
        &mut self,
        now: Instant,
        ours: &SecretKey,
        remote: &PublicKey,
    ) -> Result<&Cipher, NoCipher> {
        if !self.map.contains_key(remote) {
            let secret = ours.shared_secret(remote).ok_or(NoCipher::WeakKey)?;
            if self.map.len() >= self.capacity {
                let oldest = self.map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.map.remove(&k);
                    self.evicted += 1;
                }
            }
            self.map.insert(
                *remote,
                Entry {
                    cipher: Cipher::new(&secret),
                    used: now,
                },
            );
        }
        let e = self.map.get_mut(remote).ok_or(NoCipher::WeakKey)?;
        e.used = now;
        Ok(&e.cipher)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn sealed(c: &Cipher, payload: &[u8], nonce: u8) -> Vec<u8> {
        let mut b = std::vec![0u8; payload.len() + OVERHEAD];
        b[INNER_HEADER_LEN..INNER_HEADER_LEN + payload.len()].copy_from_slice(payload);
        c.seal(KIND_IP, [nonce; NONCE_LEN], &mut b).unwrap();
        b
    }

    #[test]
    fn seal_then_open() {
        let c = Cipher::new(&[1; 32]);
        let mut b = sealed(&c, b"hello", 9);
        assert_eq!(&b[b.len() - NONCE_LEN..], &[9; NONCE_LEN], "nonce last");
        let (kind, p) = c.open(&mut b).unwrap();
        assert_eq!(kind, KIND_IP);
        assert_eq!(p, b"hello");
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let c = Cipher::new(&[1; 32]);
        let b = sealed(&c, b"hello", 9);
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 1;
            assert!(c.open(&mut t).is_none(), "flip at {i}");
        }
        assert!(Cipher::new(&[2; 32]).open(&mut b.clone()).is_none());
        assert!(c.open(&mut [0u8; OVERHEAD - 1]).is_none());
    }

    /// The layout mycelium's crypto produces, checked on a known vector: AES-256-GCM of
    /// `01 00 00 00 | payload` under key 00..1f and nonce 00..0b, with no associated data,
    /// is ciphertext then tag then nonce.
    #[test]
    fn layout_is_ciphertext_tag_nonce() {
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = i as u8;
        }
        let mut nonce = [0u8; NONCE_LEN];
        for (i, n) in nonce.iter_mut().enumerate() {
            *n = i as u8;
        }
        let c = Cipher::new(&key);
        let mut b = std::vec![0u8; 4 + 3 + TAG_LEN + NONCE_LEN];
        b[4..7].copy_from_slice(b"abc");
        c.seal(KIND_IP, nonce, &mut b).unwrap();
        let mut plain = std::vec![1u8, 0, 0, 0, b'a', b'b', b'c'];
        let tag = Aes256Gcm::new((&key).into())
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], &mut plain)
            .unwrap();
        assert_eq!(&b[..7], &plain[..]);
        assert_eq!(&b[7..23], tag.as_slice());
        assert_eq!(&b[23..], &nonce);
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_least_recent() {
        let ours = SecretKey::from_bytes([1; 32]);
        let keys: Vec<PublicKey> = (2..6u8)
            .map(|s| SecretKey::from_bytes([s; 32]).public_key())
            .collect();
        let mut s = Secrets::new(2);
        let t = |ms| Instant::from_millis(ms);
        s.get(t(0), &ours, &keys[0]).unwrap();
        s.get(t(1), &ours, &keys[1]).unwrap();
        s.get(t(2), &ours, &keys[0]).unwrap();
        s.get(t(3), &ours, &keys[2]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.evicted, 1);
        assert!(s.map.contains_key(&keys[0]), "recently used survives");
        assert!(!s.map.contains_key(&keys[1]));
        assert_eq!(
            s.get(t(4), &ours, &PublicKey([0; 32])).unwrap_err(),
            NoCipher::WeakKey
        );
        assert_eq!(
            std::format!("{:?}", Cipher::new(&[0; 32])),
            "Cipher(<redacted>)"
        );
    }
}
