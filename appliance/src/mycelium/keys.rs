//! A node's identity: its X25519 key pair, and the overlay address derived from the key.
//!
//! A node's address is the first 16 octets of BLAKE3(public key) with the first octet
//! replaced by `0x04 | (popcount(that octet) & 1)`: always inside `400::/7`. The node
//! owns the /64 holding it and announces only that. `mycelium inspect --json KEY` prints
//! the same address for a key.
//!
//! The key file of `mycelium --key-file` is the 32 raw octets of the secret key (what
//! [`SecretKey::from_key_file`] reads). Secrets are zeroized on drop and print as
//! `<redacted>`; public keys print as lowercase hex, as mycelium prints them.

use core::fmt;
use core::net::Ipv6Addr;

use rand_core::CryptoRngCore;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::wire::Subnet;

/// Octets of every key.
pub const KEY_LEN: usize = 32;

/// The overlay's address space, `400::/7`.
pub fn global_subnet() -> Subnet {
    Subnet::new(Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 0), 7)
        .unwrap_or(Subnet::slash64(Ipv6Addr::UNSPECIFIED))
}

/// A node's X25519 secret key.
#[derive(Clone)]
pub struct SecretKey(StaticSecret);

/// Why a key file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyFileError {
    /// Not exactly 32 octets.
    Length(usize),
}

impl SecretKey {
    /// Wraps raw key octets (clamping happens inside the scalar multiplication).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// Reads mycelium's key file format: the 32 raw octets of the secret key.
    pub fn from_key_file(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let raw: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyFileError::Length(bytes.len()))?;
        let raw = Zeroizing::new(raw);
        Ok(Self::from_bytes(*raw))
    }

    /// Draws a fresh key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(StaticSecret::random_from_rng(rng))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// The raw octets, as a key file holds them (handle with care).
    pub fn to_key_file(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The raw X25519 shared secret with `peer` (what Mycelium keys AES-256-GCM with),
    /// or `None` for a low-order public key, whose shared secret anyone can compute.
    pub(crate) fn shared_secret(&self, peer: &PublicKey) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let shared = self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if shared.was_contributory() {
            Some(Zeroizing::new(shared.to_bytes()))
        } else {
            None
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A node's X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The raw 32 octets.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses 64 hex digits (either case), mycelium's form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.trim().as_bytes();
        if s.len() != 2 * KEY_LEN {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut k = [0u8; KEY_LEN];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
        }
        Some(Self(k))
    }

    /// The node's overlay address.
    pub fn address(&self) -> Ipv6Addr {
        let hash = blake3::hash(&self.0);
        let mut a = [0u8; 16];
        a.copy_from_slice(&hash.as_bytes()[..16]);
        a[0] = 0x04 | (a[0].count_ones() as u8 & 1);
        Ipv6Addr::from(a)
    }

    /// The /64 the node owns (and announces).
    pub fn subnet(&self) -> Subnet {
        Subnet::slash64(self.address())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_redacted() {
        let k = SecretKey::from_bytes([7; 32]);
        assert_eq!(std::format!("{k:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn key_files_are_32_raw_octets() {
        let k = SecretKey::from_key_file(&[9; 32]).unwrap();
        assert_eq!(*k.to_key_file(), [9; 32]);
        assert_eq!(
            SecretKey::from_key_file(&[9; 33]).unwrap_err(),
            KeyFileError::Length(33)
        );
        assert!(SecretKey::from_key_file(&[]).is_err());
    }

    #[test]
    fn hex_round_trip() {
        let pk = SecretKey::from_bytes([3; 32]).public_key();
        let s = std::format!("{pk}");
        assert_eq!(s.len(), 64);
        assert_eq!(PublicKey::from_hex(&s), Some(pk));
        assert_eq!(PublicKey::from_hex(&s.to_uppercase()), Some(pk));
        assert_eq!(PublicKey::from_hex(&s[1..]), None);
        assert_eq!(PublicKey::from_hex(&std::format!("{}g", &s[1..])), None);
    }

    /// The address rule, spelled out on one key: BLAKE3's first 16 octets, the first
    /// replaced by 0x04 or 0x05 by the parity of its bits.
    #[test]
    fn address_is_blake3_with_the_parity_rule() {
        for seed in 0..32u8 {
            let pk = SecretKey::from_bytes([seed; 32]).public_key();
            let hash = *blake3::hash(&pk.0).as_bytes();
            let a = pk.address().octets();
            assert_eq!(a[1..], hash[1..16]);
            assert_eq!(a[0], 0x04 + (hash[0].count_ones() as u8 % 2));
            assert!(global_subnet().contains(pk.address()));
            assert!(pk.subnet().contains(pk.address()));
            assert_eq!(pk.subnet().prefix_len(), 64);
        }
    }

    /// Fixtures printed by `mycelium inspect --json KEY` (0.7.10); the interop test
    /// checks fresh keys against the real binary as well.
    #[test]
    fn address_matches_mycelium_inspect() {
        for (key, address) in [
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "528:e957:9803:7df4:1054:3d9f:31e3:96ec",
            ),
            (
                "d5a8b2b3a1f6e0c9e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0ff",
                "4f6:1b52:4d:e4e0:4729:378b:e25e:ba13",
            ),
        ] {
            let pk = PublicKey::from_hex(key).unwrap();
            assert_eq!(std::format!("{}", pk.address()), address, "{key}");
        }
    }

    #[test]
    fn low_order_keys_have_no_shared_secret() {
        let k = SecretKey::from_bytes([5; 32]);
        assert!(k.shared_secret(&PublicKey([0; 32])).is_none());
        let other = SecretKey::from_bytes([6; 32]);
        let a = k.shared_secret(&other.public_key()).unwrap();
        let b = other.shared_secret(&k.public_key()).unwrap();
        assert_eq!(*a, *b);
    }
}
