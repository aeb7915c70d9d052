//! `vdcnet keygen`: a WireGuard key pair from the OS's random source, printed as wg does
//! (standard base64, 44 characters), as the two lines an `[Interface]` and the other
//! nodes' `[Peer]` need. `vdcnet keygen --public` reads a private key on stdin and prints
//! its public key, like `wg pubkey`. The keys are the appliance's own (X25519 through
//! `x25519-dalek`, the node file's base64 parser).

use super::{CmdResult, UsageError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::io::Read;
use std::process::ExitCode;
use vdcnet_appliance::config::{self, KEY_LEN};
use vdcnet_appliance::tunnel::PrivateKey;

/// Longest stdin `--public` reads: a key and some whitespace.
const MAX_INPUT: u64 = 1024;

pub fn main(args: &[String]) -> CmdResult {
    match args {
        [] => {
            let (private, public) = generate();
            println!("PrivateKey = {private}");
            println!("PublicKey = {public}");
            Ok(ExitCode::SUCCESS)
        }
        [flag] if flag == "--public" => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_INPUT)
                .read_to_string(&mut text)
                .map_err(|e| format!("keygen --public: reading stdin: {e}"))?;
            let public = public_of(&text)
                .ok_or("keygen --public: stdin is not a base64 WireGuard private key")?;
            println!("{public}");
            Ok(ExitCode::SUCCESS)
        }
        [other, ..] => Err(UsageError(format!("keygen: unexpected argument `{other}`")).into()),
    }
}

/// A fresh private key (clamped, as `wg genkey` prints it) and its public key, in base64.
fn generate() -> (String, String) {
    let mut bytes = [0u8; KEY_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes[0] &= 248;
    bytes[31] = (bytes[31] & 127) | 64;
    let private = STANDARD.encode(bytes);
    let public = config::PublicKey(PrivateKey::from_bytes(bytes).public_key().0).to_string();
    (private, public)
}

/// The public key of a base64 private key (surrounding whitespace allowed).
fn public_of(text: &str) -> Option<String> {
    let secret = config::SecretKey::from_base64(text.trim())?;
    let public = PrivateKey::from_bytes(secret.0).public_key();
    Some(config::PublicKey(public.0).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_is_consistent_and_fresh() {
        let (a, a_pub) = generate();
        let (b, _) = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 44);
        assert_eq!(
            public_of(&format!("{a}\n")).as_deref(),
            Some(a_pub.as_str())
        );
        let raw = STANDARD.decode(&a).unwrap();
        assert_eq!(raw[0] & 7, 0);
        assert_eq!(raw[31] & 0xc0, 0x40);
    }

    #[test]
    fn the_public_key_of_rfc7748s_test_vector() {
        // RFC 7748 §6.1: Alice's private key and public key.
        let private = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(
            public_of(&STANDARD.encode(private)),
            Some(STANDARD.encode(public))
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert_eq!(public_of(""), None);
        assert_eq!(public_of("not base64 at all"), None);
        assert_eq!(public_of(&STANDARD.encode([1u8; 31])), None);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
