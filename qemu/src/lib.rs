//! The host side of vdcnet: build the appliance image and run it under QEMU.
//!
//! - [`image()`] builds the image once per process (cargo, `x86_64-unknown-none`,
//!   release) and returns the ELF's path; `VDCNET_IMAGE` overrides it.
//! - [`Vm::builder`] describes a VM (machine, memory, config, command line, NICs) and
//!   [`VmBuilder::spawn`] starts it. The running [`Vm`] keeps every console line and every
//!   decoded defmt line; [`Vm::wait_for_line`] waits for one with a deadline, and each
//!   error carries the console's tail. The VM dies with its `Vm`.
//! - A NIC ([`Nic`]) is QEMU user-mode networking with host forwards, a port on a
//!   [`Wire`] (a software switch shared by several VMs), or a [`Tap`] whose far end is a
//!   fresh network namespace ([`Netns`]) where real tools run.
//! - [`tcp_echo`] and [`Netns::ping`] talk to an appliance's services.
//! - [`iso::build`] makes a hybrid BIOS/UEFI image (CD, USB stick, disk) with the node
//!   file in a FAT partition that can be edited afterwards; [`VmBuilder::boot_from`] and
//!   [`VmBuilder::firmware`] boot such a [`Medium`] under SeaBIOS or OVMF.
//! - [`mesh::MeshPlan`] generates the node files of a WireGuard full mesh, and
//!   [`lab::Lab`] boots one from a topology: an underlay wire with per-node
//!   [`LinkPolicy`] (cut, delay, jitter, loss, reordering) and a workload namespace behind
//!   every node's segment, configured by DHCP and SLAAC.
//!
//! TCG is the default accelerator; `VDCNET_ACCEL=kvm` selects KVM. `VDCNET_ECHO=1` copies
//! every VM's console to stderr as it comes; `VDCNET_KEEP=1` keeps each VM's directory.
//!
//! ```no_run
//! use vdcnet_qemu::{tcp_echo, Nic, Vm, ECHO_PORT};
//! use std::time::Duration;
//!
//! let vm = Vm::builder("a").nic(Nic::user()).spawn()?;
//! vm.wait_ready()?;
//! let back = tcp_echo(vm.forwarded(ECHO_PORT).unwrap(), b"hi", Duration::from_secs(5))?;
//! assert_eq!(back, b"hi");
//! # Ok::<(), vdcnet_qemu::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod defmt_log;
mod drive;
mod error;
mod host;
mod image;
pub mod iso;
pub mod lab;
mod lines;
mod machine;
pub mod mesh;
mod netns;
mod nic;
mod probe;
mod underlay_host;
mod vm;
mod wire;

pub use defmt_log::LogTable;
pub use drive::{Firmware, Medium};
pub use error::{Error, ErrorKind, Result};
pub use host::{
    find_mycelium, free_tcp_port, free_udp_port, is_root, run, run_command, TempDir, MYCELIUMD_ARGS,
};
pub use image::{
    build_image, image, workspace_root, BuildOutput, IMAGE_BIN, IMAGE_PACKAGE, IMAGE_TARGET,
};
pub use lines::{Lines, WaitError};
pub use machine::{Accel, Machine};
pub use netns::{Netns, Tap};
pub use nic::{Mac, Nic, ECHO_PORT};
pub use probe::{tcp_echo, tcp_echo_retry};
pub use underlay_host::UnderlayHost;
pub use vm::{Echo, Vm, VmBuilder, APPLIANCE_FAILED, DEFAULT_CPU, DEFAULT_TIMEOUT, READY};
pub use wire::{LinkPolicy, PortIo, PortStats, Wire, WirePort};
