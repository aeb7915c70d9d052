//! The vdcnet appliance: everything the image does that is not hardware.
//!
//! This crate is `no_std` (with `alloc`) and contains no `unsafe`; it builds and tests on
//! the host. Protocol cores here are *sans-I/O*: they take `now` and bytes and return
//! what to do; they never read a clock or touch a device.
//!
//! - [`config`]: parse the node file (`[Link]`, `[Interface]`, `[Peer]`), collecting every
//!   error with its line number.
//! - [`runtime`]: the appliance proper: one port per NIC, ARP/NDP, ICMP echo and TCP echo.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cmdline;
pub mod config;
pub mod runtime;
pub mod tunnel;
