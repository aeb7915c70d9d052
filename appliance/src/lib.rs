//! The vdcnet appliance: everything the image does that is not hardware.
//!
//! This crate is `no_std` (with `alloc`) and contains no `unsafe`; it builds and tests on
//! the host. Protocol cores here are *sans-I/O*: they take `now` and bytes and return
//! what to do; they never read a clock or touch a device.
//!
//! - [`config`]: parse the node file (`[Link]`, `[Interface]`, `[Peer]`, `[Metrics]`),
//!   collecting every error with its line number.
//! - [`dns`]: the gateway's authoritative DNS server, sans-I/O.
//! - [`metrics`]: the Prometheus metrics service (exposition renderer, HTTP on the local
//!   stack).
//! - [`mycelium`]: a Mycelium (Planetary Network) overlay node, sans-I/O.
//! - [`router`]: the forwarding plane over every NIC, the tunnel and the local stack.
//! - [`routing`]: Babel (RFC 8966) between appliances over the tunnels, sans-I/O.
//! - [`runtime`]: the appliance proper: the router, the local stack and its services.
//! - [`tunnel`]: the WireGuard protocol, sans-I/O.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod config;
pub mod dns;
pub mod gateway;
pub mod metrics;
pub mod mycelium;
pub mod router;
pub mod routing;
pub mod runtime;
pub mod tunnel;
