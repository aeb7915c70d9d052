//! The QEMU machine types the image boots on and the accelerator to use.

use std::fmt;
use std::str::FromStr;

/// A QEMU x86 machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// i440FX + PIIX, legacy PCI (port I/O config space).
    Pc,
    /// Q35 + ICH9, PCIe with ECAM.
    Q35,
    /// microvm: no PCI, virtio-mmio devices, one ISA serial port by default.
    Microvm,
}

impl Machine {
    /// Every machine, in the order tests and benchmarks walk them.
    pub const ALL: [Machine; 3] = [Machine::Pc, Machine::Q35, Machine::Microvm];

    /// The name QEMU and the `vdcnet` command use.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
            Machine::Microvm => "microvm",
        }
    }

    /// The `-M` argument. microvm keeps its legacy devices on (serial, RTC, PIT, PIC):
    /// the image calibrates its clock against the PIT and reads wall time from the RTC.
    pub fn qemu_machine_arg(self) -> &'static str {
        match self {
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
            Machine::Microvm => "microvm,isa-serial=on,rtc=on,pit=on,pic=on",
        }
    }

    /// The virtio-net device model: PCI on pc/q35, virtio-mmio on microvm.
    pub fn virtio_net_device(self) -> &'static str {
        match self {
            Machine::Microvm => "virtio-net-device",
            Machine::Pc | Machine::Q35 => "virtio-net-pci",
        }
    }

    /// The virtio-rng device model: PCI on pc/q35, virtio-mmio on microvm.
    pub fn virtio_rng_device(self) -> &'static str {
        match self {
            Machine::Microvm => "virtio-rng-device",
            Machine::Pc | Machine::Q35 => "virtio-rng-pci",
        }
    }

    /// Arguments that attach `chardev` as the second serial port (COM2, 0x2f8, IRQ 3).
    /// microvm creates only one ISA serial port from `-serial`, so the second is explicit.
    pub fn second_serial_args(self, chardev: &str) -> Vec<String> {
        match self {
            Machine::Microvm => vec![
                "-device".into(),
                format!("isa-serial,chardev={chardev},iobase=0x2f8,irq=3"),
            ],
            Machine::Pc | Machine::Q35 => vec!["-serial".into(), format!("chardev:{chardev}")],
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Machine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Machine::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown machine `{s}` (expected pc, q35 or microvm)"))
    }
}

/// How QEMU runs the guest's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Tiny Code Generator: works everywhere, the default.
    Tcg,
    /// Hardware virtualization; opt in with `VDCNET_ACCEL=kvm`.
    Kvm,
}

impl Accel {
    /// `VDCNET_ACCEL=kvm` selects KVM; anything else (or nothing) selects TCG.
    pub fn from_env() -> Accel {
        match std::env::var("VDCNET_ACCEL") {
            Ok(v) if v.eq_ignore_ascii_case("kvm") => Accel::Kvm,
            _ => Accel::Tcg,
        }
    }

    /// The `-accel` argument.
    pub fn qemu_arg(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_round_trip() {
        for m in Machine::ALL {
            assert_eq!(m.name().parse::<Machine>(), Ok(m));
        }
        assert!("virt".parse::<Machine>().is_err());
    }

    #[test]
    fn microvm_uses_mmio_and_an_explicit_second_serial() {
        assert_eq!(Machine::Microvm.virtio_net_device(), "virtio-net-device");
        assert_eq!(Machine::Microvm.virtio_rng_device(), "virtio-rng-device");
        assert_eq!(Machine::Pc.virtio_rng_device(), "virtio-rng-pci");
        assert_eq!(
            Machine::Microvm.second_serial_args("log"),
            ["-device", "isa-serial,chardev=log,iobase=0x2f8,irq=3"]
        );
        assert_eq!(
            Machine::Q35.second_serial_args("log"),
            ["-serial", "chardev:log"]
        );
    }
}
