//! Key types: our static private key, a peer's public key and the optional preshared key.
//!
//! Secrets are zeroized on drop and print as `<redacted>` in `Debug`. Public keys print as
//! base64, the form `wg` and the node file use.

use core::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every key in the protocol.
pub const KEY_LEN: usize = 32;

/// Decodes 32 bytes from standard base64 (44 characters); `None` if it is anything else.
fn decode_key(s: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut buf = Zeroizing::new([0u8; 33]);
    match STANDARD.decode_slice(s.trim().as_bytes(), &mut buf[..]) {
        Ok(KEY_LEN) => {
            let mut out = Zeroizing::new([0u8; KEY_LEN]);
            out.copy_from_slice(&buf[..KEY_LEN]);
            Some(out)
        }
        _ => None,
    }
}

/// An X25519 static private key (the interface key).
#[derive(Clone)]
pub struct PrivateKey(StaticSecret);

impl PrivateKey {
    /// Wraps raw key bytes (clamping happens inside the scalar multiplication).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// Parses the base64 form used by `wg genkey` and the node file.
    pub fn from_base64(s: &str) -> Option<Self> {
        decode_key(s).map(|k| Self::from_bytes(*k))
    }

    /// Draws a fresh key from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(StaticSecret::random_from_rng(rng))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// Raw bytes (for tests and key export; handle with care).
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// X25519(self, peer), or `None` if the result is all zeros (a low-order point).
    pub(crate) fn dh(&self, peer: &[u8; KEY_LEN]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        if shared.was_contributory() {
            Some(Zeroizing::new(shared.to_bytes()))
        } else {
            None
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Parses the base64 form used by `wg pubkey` and the node file.
    pub fn from_base64(s: &str) -> Option<Self> {
        decode_key(s).map(|k| Self(*k))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 44];
        let n = STANDARD
            .encode_slice(self.0, &mut buf)
            .expect("44 bytes hold 32 in base64");
        let s = core::str::from_utf8(&buf[..n]).unwrap_or("?");
        write!(f, "PublicKey({s})")
    }
}

/// The optional symmetric preshared key mixed into the handshake (`Q` in the whitepaper).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey(pub(crate) [u8; KEY_LEN]);

impl PresharedKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form used by `wg genpsk` and the node file.
    pub fn from_base64(s: &str) -> Option<Self> {
        decode_key(s).map(|k| Self(*k))
    }

    /// The all-zero key used when none is configured.
    pub fn zero() -> Self {
        Self([0; KEY_LEN])
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_redacted() {
        let k = PrivateKey::from_bytes([1; 32]);
        assert_eq!(std::format!("{k:?}"), "PrivateKey(<redacted>)");
        let p = PresharedKey::from_bytes([2; 32]);
        assert_eq!(std::format!("{p:?}"), "PresharedKey(<redacted>)");
    }

    #[test]
    fn base64_keys_round_trip() {
        // RFC 7748 section 6.1 Alice.
        let k = PrivateKey::from_base64("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=").unwrap();
        assert_eq!(
            std::format!("{:?}", k.public_key()),
            "PublicKey(hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=)"
        );
        assert!(PublicKey::from_base64("too short").is_none());
        assert!(PublicKey::from_base64("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmoA").is_none());
    }
}
