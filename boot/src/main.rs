//! The vdcnet image: boots (PVH or multiboot2), sets up the CPU, memory and devices, reads
//! the node config from the first boot module, and runs the appliance's event loop.
//!
//! On the host this binary only explains itself; the image is built for
//! `x86_64-unknown-none` by `cargo vdcnet build`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]
// `&mut *(&raw mut STATIC)` is how the image takes its one reference to a `static mut`
// (descriptor tables, the config buffer); clippy's suggestion would trip `static_mut_refs`.
#![allow(clippy::deref_addrof)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vdcnet-image is the appliance image, not a host program: build it with `cargo vdcnet build`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image;
