//! Hardware for the vdcnet image, turned into small safe types.
//!
//! - [`serial`]: 16550 UARTs (the human console on COM1, defmt frames on COM2).
//! - [`pci`]: PCI configuration space through port I/O, and the virtio functions on it.
//! - [`virtio`]: virtio-net over PCI or virtio-mmio through the `virtio-drivers` crate,
//!   behind [`net::NetDevice`].
//! - [`clock`]: a monotonic clock from the TSC calibrated against the PIT, wall time from
//!   the CMOS RTC, and the periodic timer tick that wakes an idle CPU from `hlt`.
//! - [`rng`]: random numbers from RDSEED/RDRAND.
//! - [`virtio_rng`]: a virtio-rng device over PCI or virtio-mmio.
//! - [`entropy`]: every source present mixed into one ChaCha20 generator.
//! - [`net`]: the one narrow trait between a NIC and the appliance.
//!
//! Everything that touches hardware is `unsafe` inside this crate and nowhere else in the
//! image but `boot`; each block says why it holds.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

extern crate alloc;

pub mod acpi;
pub mod clock;
pub mod cpu;
pub mod entropy;
pub mod ioapic;
pub mod net;
pub mod pci;
pub mod pic;
pub mod port;
pub mod rng;
pub mod serial;
pub mod virtio;
pub mod virtio_rng;

/// Host unit tests of a workspace build: cargo unifies features, so `defmt` is on here
/// (the image turns it on) while nothing provides its logger; this one drops every frame.
#[cfg(all(test, feature = "defmt"))]
mod test_logger {
    #[defmt::global_logger]
    struct Discard;

    // SAFETY: every method does nothing, so none can race or leave a frame half-written.
    unsafe impl defmt::Logger for Discard {
        fn acquire() {}
        unsafe fn flush() {}
        unsafe fn release() {}
        unsafe fn write(_bytes: &[u8]) {}
    }

    defmt::timestamp!("");
}
