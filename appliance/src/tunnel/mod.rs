//! The WireGuard protocol, sans-I/O (whitepaper sections 5 and 6).
//!
//! Time and randomness come from the caller: every call takes [`Now`] (the monotonic
//! [`smoltcp::time::Instant`] plus wall-clock nanoseconds for TAI64N), and the tunnel owns
//! an `R: rand_core::CryptoRngCore` given at creation. Nothing here reads a clock, touches
//! a device or allocates after a peer is created.
//!
//! Two entry points:
//! - [`Device`]: many peers behind one static key, with cryptokey routing (AllowedIPs),
//!   handshake load detection and per-source rate limiting. This is what the image uses.
//! - [`Tunnel`]: one peer, in the spirit of boringtun's `Tunn`: a one-peer [`Device`]
//!   whose AllowedIPs are everything (used by the differential tests and benchmarks
//!   against boringtun).
//!
//! Both return what to do: send a datagram, deliver a decrypted packet, or nothing; and
//! count every dropped packet by [`DropReason`] in [`Counters`].
//!
//! Layout, one concern per file: `messages` (wire formats), `crypto` (HASH/HMAC/KDF/AEAD),
//! `keys`, `tai64n`, `handshake` (Noise IKpsk2), `cookie` (mac1/mac2/cookie replies),
//! `rate_limiter`, `admission`, `replay`, `session` (keypairs), `timers`, `queue`,
//! `inner` (inner IP header), `peer` (per-peer state machine), `point_to_point`
//! ([`Tunnel`]), `allowed_ips`, `device` ([`Device`]), `counters`.

mod admission;
pub mod allowed_ips;
mod cookie;
pub mod counters;
mod crypto;
pub mod device;
mod handshake;
pub mod inner;
pub mod keys;
pub mod messages;
pub mod peer;
pub mod point_to_point;
mod queue;
pub mod rate_limiter;
mod replay;
mod session;
pub mod tai64n;
pub mod timers;

pub use allowed_ips::{AllowedIp, AllowedIps, AllowedIpsError};
pub use counters::{Counters, DropReason, Drops};
pub use device::{Device, DeviceConfig, DeviceError, DeviceResult, PeerId, MAX_PEERS};
pub use keys::{PresharedKey, PrivateKey, PublicKey};
pub use messages::Message;
pub use peer::{Now, Peer, PeerConfig, TunnelResult};
pub use point_to_point::Tunnel;
pub use queue::{QUEUE_SLOTS, QUEUE_SLOT_LEN};
pub use replay::WINDOW_SIZE as REPLAY_WINDOW;

/// The data-path AEAD on its own, for `benches/tunnel.rs` to measure against the crate
/// called directly and against ring (boringtun's). Not part of the tunnel's API.
#[doc(hidden)]
pub mod aead {
    pub use super::crypto::{aead_cipher, aead_open, aead_seal, AeadKey};
}
