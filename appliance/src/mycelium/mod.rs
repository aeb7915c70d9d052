//! A Mycelium node (the Planetary Network overlay, wire-compatible with Mycelium 0.7.10),
//! sans-I/O.
//!
//! Mycelium nodes peer over plain TCP (port 9651 by convention; no handshake) and run a
//! Babel variant of their own over those streams to find each other's /64s inside
//! `400::/7`. A node's address is derived from its X25519 public key; IPv6 packets between
//! two nodes are sealed with AES-256-GCM under the raw X25519 shared secret of their keys
//! and travel hop by hop along the selected routes.
//!
//! The node takes `now` (a monotonic [`smoltcp::time::Instant`]) and bytes, and returns bytes; it never
//! reads a clock or touches a socket, and owns an `R: rand_core::CryptoRngCore` for the
//! nonces and its router-id. One call per event:
//! - [`Node::add_peer`] / [`Node::remove_peer`]: a TCP connection opened or closed
//!   (either direction: peers are symmetric).
//! - [`Node::receive`]: bytes read from a peer's connection, in any chunking; opened IPv6
//!   packets for our /64 come out of its `deliver` callback. An `Err` means the stream
//!   lost its framing: the peer is dropped (and counted) and the caller closes it.
//! - [`Node::send`]: an IPv6 packet from our /64 to another node's address.
//! - [`Node::transmit`] / [`Node::transmitted`]: the bytes each peer's connection should
//!   be written, and how many were.
//! - [`Node::poll`] runs the timers, [`Node::poll_at`] says when next; [`Node::drain_dead`]
//!   names the peers it gave up on.
//! - Status: [`Node::routes`], [`Node::peers`], [`Node::queried`], [`Node::counters`].
//!
//! Mycelium's design has no forward secrecy, no replay protection and unauthenticated
//! links and updates; this node interoperates with it as it is and bounds the damage on
//! its side: every table and buffer has a bound ([`Settings`]), updates pass Mycelium's
//! own filters (a router-id's key must own the prefix it announces), low-order keys are
//! refused, and an opened packet must carry the addresses it was routed by.
//!
//! Layout, one concern per file: `wire` (the control TLVs), `frame` (the peer stream),
//! `keys` (key pair, address derivation, key file), `seal` (AES-256-GCM, the cipher
//! cache), `peer` (Hello/IHU link cost, send buffer), `table` (routes and feasibility
//! distances), `node` (the control plane: what to do on each TLV and timer), `data` (the
//! data path), `counters`.

pub mod counters;
mod data;
pub mod frame;
pub mod keys;
mod node;
pub mod peer;
pub mod seal;
mod table;
pub mod wire;

#[cfg(test)]
mod tests;

pub use counters::Counters;
pub use data::{SendError, Sent, MAX_IP_PACKET, MTU};
pub use frame::{Frame, FrameError, Framer};
pub use keys::{global_subnet, KeyFileError, PublicKey, SecretKey};
pub use node::{centis, Error, Node, PeerError, PeerStatus, RouteStatus, Settings};
pub use peer::{PeerId, DEFAULT_LINK_COST, TCP_V4_COST, TCP_V6_COST};
pub use wire::{RouterId, Subnet, INFINITY};

/// The TCP port Mycelium nodes listen on.
pub const PORT: u16 = 9651;
