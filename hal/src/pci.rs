//! PCI configuration space, through ECAM (memory-mapped, where ACPI's MCFG table says the
//! machine has it, as on `q35`) or else the legacy port I/O mechanism (0xcf8/0xcfc) that
//! every PC-compatible machine has; and the virtio functions (NICs, RNGs) found on it.

use crate::port::{inl, outl};
use virtio_drivers::transport::pci::bus::{
    Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};
use virtio_drivers::transport::pci::virtio_device_type;
use virtio_drivers::transport::DeviceType;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration access mechanism #1 (port I/O).
pub struct PortCam {
    _private: (),
}

impl PortCam {
    /// # Safety
    /// The caller owns ports 0xcf8..0xd00 and nothing else uses them concurrently.
    pub unsafe fn new() -> PortCam {
        PortCam { _private: () }
    }
}

fn address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | (df.bus as u32) << 16
        | (df.device as u32 & 0x1f) << 11
        | (df.function as u32 & 0x7) << 8
        | (offset as u32 & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        // SAFETY: `PortCam::new`'s caller gave us the configuration ports; the address
        // write and data read form one configuration cycle, and the kernel is single-threaded
        // with no interrupt handler touching PCI.
        unsafe {
            outl(CONFIG_ADDRESS, address(df, offset));
            inl(CONFIG_DATA)
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        // SAFETY: as in `read_word`.
        unsafe {
            outl(CONFIG_ADDRESS, address(df, offset));
            outl(CONFIG_DATA, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam { _private: () }
    }
}

/// Configuration access the image uses: ECAM where available, else port I/O.
pub enum Cam {
    Port(PortCam),
    Ecam { base: usize },
}

impl Cam {
    /// ECAM at `base` (covering buses 0..=255 of segment 0).
    ///
    /// # Safety
    /// `base` is the segment-0 ECAM window from MCFG, identity-mapped (256 MiB), and
    /// nothing else uses it.
    pub unsafe fn ecam(base: u64) -> Cam {
        Cam::Ecam {
            base: base as usize,
        }
    }

    fn ecam_addr(base: usize, df: DeviceFunction, offset: u8) -> *mut u32 {
        let off = (df.bus as usize) << 20
            | (df.device as usize & 0x1f) << 15
            | (df.function as usize & 0x7) << 12
            | (offset as usize & 0xfc);
        (base + off) as *mut u32
    }

    /// Whether a host bridge answers at 00:00.0 (false on machines without PCI, such as
    /// QEMU's `microvm`).
    pub fn present(&self) -> bool {
        let id = self.read_word(
            DeviceFunction {
                bus: 0,
                device: 0,
                function: 0,
            },
            0,
        );
        id != 0xffff_ffff && id != 0
    }

    /// Which mechanism this is, for the boot log.
    pub fn kind(&self) -> &'static str {
        match self {
            Cam::Port(_) => "port I/O",
            Cam::Ecam { .. } => "ECAM",
        }
    }
}

impl ConfigurationAccess for Cam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        match self {
            Cam::Port(p) => p.read_word(df, offset),
            // SAFETY: `Cam::ecam`'s caller guarantees the window is mapped ECAM; the address
            // stays inside it (bus < 256, device < 32, function < 8, offset < 256).
            Cam::Ecam { base } => unsafe { Self::ecam_addr(*base, df, offset).read_volatile() },
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        match self {
            Cam::Port(p) => p.write_word(df, offset, data),
            // SAFETY: as in `read_word`.
            Cam::Ecam { base } => unsafe {
                Self::ecam_addr(*base, df, offset).write_volatile(data)
            },
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        match self {
            Cam::Port(_) => Cam::Port(PortCam { _private: () }),
            Cam::Ecam { base } => Cam::Ecam { base: *base },
        }
    }
}

/// A virtio function found on the bus.
#[derive(Clone, Debug)]
pub struct VirtioFunction {
    pub function: DeviceFunction,
    pub info: DeviceFunctionInfo,
}

/// Walks bus 0 and every bus behind a PCI-to-PCI bridge, and returns the virtio-net
/// functions in PCI order (bus, device, function), at most `max` of them, with memory space
/// and bus mastering enabled.
pub fn find_virtio_net(
    root: &mut PciRoot<Cam>,
    reader: &Cam,
    max: usize,
) -> heapless::Vec<VirtioFunction, 8> {
    find_virtio(root, reader, DeviceType::Network, max)
}

/// As [`find_virtio_net`], for the virtio functions of any type `kind` (virtio-rng is
/// [`DeviceType::EntropySource`]).
pub fn find_virtio(
    root: &mut PciRoot<Cam>,
    reader: &Cam,
    kind: DeviceType,
    max: usize,
) -> heapless::Vec<VirtioFunction, 8> {
    let mut found = heapless::Vec::new();
    let mut buses: heapless::Vec<u8, 32> = heapless::Vec::new();
    let _ = buses.push(0);
    let mut next = 0;
    while next < buses.len() {
        let bus = buses[next];
        next += 1;
        let mut bridges: heapless::Vec<DeviceFunction, 32> = heapless::Vec::new();
        for (function, info) in root.enumerate_bus(bus) {
            if info.header_type == HeaderType::PciPciBridge {
                let _ = bridges.push(function);
            }
            if virtio_device_type(&info) == Some(kind) && found.len() < max.min(8) {
                root.set_command(
                    function,
                    Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
                );
                let _ = found.push(VirtioFunction { function, info });
            }
        }
        for bridge in bridges {
            // Bus numbers register: primary, secondary, subordinate.
            let secondary = (reader.read_word(bridge, 0x18) >> 8) as u8;
            if secondary != 0 && !buses.contains(&secondary) {
                let _ = buses.push(secondary);
            }
        }
    }
    found
}
