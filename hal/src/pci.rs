//! PCI configuration space through the legacy port I/O mechanism (0xcf8/0xcfc), which every
//! PC-compatible machine has (i440fx `pc` and `q35` alike), and the virtio-net functions
//! found on it.

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

/// A virtio-net function found on the bus.
#[derive(Clone, Debug)]
pub struct NetFunction {
    pub function: DeviceFunction,
    pub info: DeviceFunctionInfo,
}

/// A second handle on the configuration ports, for reads alongside a [`PciRoot`].
///
/// # Safety
/// Only for reads of read-only registers while no write through the root is in progress.
unsafe fn root_cam() -> PortCam {
    PortCam { _private: () }
}

/// Walks bus 0 and every bus behind a PCI-to-PCI bridge, and returns the virtio-net
/// functions in PCI order (bus, device, function), at most `max` of them, with memory space
/// and bus mastering enabled.
pub fn find_virtio_net(root: &mut PciRoot<PortCam>, max: usize) -> heapless::Vec<NetFunction, 8> {
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
            if virtio_device_type(&info) == Some(DeviceType::Network) && found.len() < max.min(8) {
                root.set_command(
                    function,
                    Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER,
                );
                let _ = found.push(NetFunction { function, info });
            }
        }
        for bridge in bridges {
            // Bus numbers register: primary, secondary, subordinate.
            // SAFETY: PortCam is stateless; this reads a read-only register while `root`
            // is not in use.
            let cam = unsafe { root_cam() };
            let secondary = (cam.read_word(bridge, 0x18) >> 8) as u8;
            if secondary != 0 && !buses.contains(&secondary) {
                let _ = buses.push(secondary);
            }
        }
    }
    found
}
