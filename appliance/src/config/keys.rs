//! WireGuard keys as they appear in the node file: 32 bytes written as standard base64
//! (44 characters ending in `=`, as `wg genkey` and `wg pubkey` print them).
//!
//! [`SecretKey`] is zeroized on drop, compares in constant time and prints as `<redacted>`;
//! [`PublicKey`] prints as its base64 text.

use core::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a WireGuard key (private, public or preshared) in bytes.
pub const KEY_LEN: usize = 32;

/// Length of a key's base64 text: 32 bytes → 44 characters, the last one `=`.
pub const KEY_BASE64_LEN: usize = 44;

/// A secret 32-byte key: the interface's private key or a peer's preshared key.
///
/// Wiped when dropped; `Debug` never shows it; `==` runs in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub [u8; KEY_LEN]);

impl SecretKey {
    /// Decodes `wg genkey`-style base64. `None` unless it is exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<SecretKey> {
        let mut key = SecretKey([0; KEY_LEN]);
        // Decoding straight into the key leaves no stray copy of the secret behind;
        // `key` is wiped on drop if the text turns out to be wrong.
        decode_into(text, &mut key.0).then_some(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &SecretKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

/// A peer's public key (or our own, derived from the private key elsewhere).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Decodes `wg pubkey`-style base64. `None` unless it is exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<PublicKey> {
        let mut key = [0; KEY_LEN];
        decode_into(text, &mut key).then_some(PublicKey(key))
    }
}

/// Base64, as `wg pubkey` prints it.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; KEY_BASE64_LEN];
        match STANDARD.encode_slice(self.0, &mut text) {
            Ok(len) => match text.get(..len).and_then(|t| core::str::from_utf8(t).ok()) {
                Some(text) => f.write_str(text),
                None => Err(fmt::Error),
            },
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Decodes `text` into `out`; true only if it decodes to exactly `out.len()` bytes.
///
/// A longer decoding fails inside `decode_slice` (the output is too small), a shorter one
/// fails the length check, so nothing is ever truncated or padded.
fn decode_into(text: &str, out: &mut [u8; KEY_LEN]) -> bool {
    if text.len() != KEY_BASE64_LEN {
        return false;
    }
    match STANDARD.decode_slice(text, out) {
        Ok(len) if len == KEY_LEN => true,
        _ => {
            out.zeroize();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    // RFC 7748 §6.1 test vectors; `wg pubkey` agrees that these belong together.
    const ALICE_PRIVATE_B64: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
    const ALICE_PUBLIC_B64: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

    #[test]
    fn secret_key_debug_is_redacted() {
        let key = SecretKey::from_base64(ALICE_PRIVATE_B64).expect("valid key");
        assert_eq!(format!("{key:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(key)), "Some(<redacted>)");
    }

    #[test]
    fn public_key_prints_as_base64() {
        let key = PublicKey::from_base64(ALICE_PUBLIC_B64).expect("valid key");
        assert_eq!(format!("{key}"), ALICE_PUBLIC_B64);
        assert_eq!(format!("{key:?}"), format!("PublicKey({ALICE_PUBLIC_B64})"));
    }

    #[test]
    fn key_of_wrong_length_is_rejected() {
        // 31 bytes, 33 bytes, 32 bytes without padding, and not base64 at all.
        assert!(PublicKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==").is_none());
        assert!(PublicKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_none());
        assert!(PublicKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_none());
        assert!(SecretKey::from_base64("not base64 at all, but exactly 44 bytes long").is_none());
        assert!(SecretKey::from_base64("").is_none());
        let mut long = alloc::string::String::from(ALICE_PUBLIC_B64);
        long.push_str("AAAA");
        assert!(PublicKey::from_base64(&long).is_none());
    }

    #[test]
    fn secret_keys_compare_by_value() {
        let a = SecretKey::from_base64(ALICE_PRIVATE_B64).expect("valid key");
        let mut b = a.clone();
        assert_eq!(a, b);
        b.0[0] ^= 1;
        assert_ne!(a, b);
    }
}
