//! virtio-net, over PCI (pc, q35) or virtio-mmio (microvm), through `virtio-drivers`.
//!
//! The driver owns a fixed pool of frame buffers per NIC, allocated once: receiving and
//! sending a frame allocates nothing.

use crate::net::NetDevice;
use crate::pci::{Cam, VirtioFunction};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::vec;
use core::ptr::NonNull;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceType, SomeTransport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Descriptors per virtqueue, and so frames in flight per direction.
pub const QUEUE_SIZE: usize = 128;
/// Bytes per frame buffer: the virtio-net header plus a 1514-byte frame, rounded up.
const BUF_LEN: usize = 2048;
/// Largest Ethernet frame (without FCS) the driver passes.
pub const MAX_FRAME: usize = 1514;

/// Where QEMU's `microvm` machine puts its virtio-mmio transports.
pub const MICROVM_MMIO_BASE: usize = 0xfeb0_0000;
/// Size of one virtio-mmio transport window on `microvm`.
pub const MICROVM_MMIO_SIZE: usize = 0x200;
/// Number of virtio-mmio transports on `microvm`.
pub const MICROVM_MMIO_SLOTS: usize = 24;

/// DMA for virtio-drivers on an identity-mapped kernel: physical address = virtual address.
pub struct IdentityHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory from the global allocator that
// stays valid until `dma_dealloc`; the whole of RAM and the MMIO hole are identity-mapped by
// boot, so a virtual address is the physical address the device sees, and `share` can hand
// the buffer's own address to the device (no bounce buffers are needed: the guest has no
// IOMMU and no memory encryption).
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE)
            .expect("DMA layout is a whole number of pages");
        // SAFETY: the layout has a non-zero size (virtio-drivers never asks for 0 pages).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).expect("out of memory for virtio queues");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE)
            .expect("DMA layout is a whole number of pages");
        // SAFETY: the caller passes back a pointer `dma_alloc` returned for `pages` pages.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).expect("MMIO at physical address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Why a NIC could not be brought up.
#[derive(Debug)]
pub enum NicError {
    Pci(virtio_drivers::transport::pci::VirtioPciError),
    Mmio(virtio_drivers::transport::mmio::MmioError),
    Driver(virtio_drivers::Error),
}

/// Counters a NIC keeps about frames it could not pass on.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Completions the device reported that carried no usable frame.
    pub rx_errors: u64,
    /// Frames longer than [`MAX_FRAME`] the device handed us.
    pub rx_oversize: u64,
    pub tx_errors: u64,
}

/// One virtio-net NIC with its own receive and transmit buffer pools.
pub struct VirtioNic {
    // Declared first so it is dropped (and the device reset) before the buffers it uses.
    raw: VirtIONetRaw<IdentityHal, SomeTransport<'static>, QUEUE_SIZE>,
    rx: Box<[[u8; BUF_LEN]]>,
    /// Buffer index of the receive request with each token (descriptor head).
    rx_of_token: [u8; QUEUE_SIZE],
    tx: Box<[[u8; BUF_LEN]]>,
    /// (buffer index, length) of the transmit request with each token.
    tx_of_token: [(u8, u16); QUEUE_SIZE],
    tx_free: heapless::Vec<u8, QUEUE_SIZE>,
    counters: NicCounters,
    /// Where the NIC's interrupt arrives, if anywhere.
    irq: Option<Irq>,
}

/// Where a NIC's interrupt line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irq {
    /// An 8259 line (PCI INTx as routed by the firmware).
    Pic(u8),
    /// A global system interrupt on an I/O APIC (virtio-mmio on microvm).
    Gsi(u32),
}

/// The GSI of `microvm`'s virtio-mmio window 0 (window `n` uses base + n), as QEMU wires
/// them: with the second I/O APIC there are 24 windows on GSIs 24..48; otherwise 8 windows
/// on GSIs 16.. (with ACPI) or 5.. (without).
///
/// # Safety
/// As for [`VirtioNic::probe_microvm`].
unsafe fn microvm_gsi_base(acpi: bool) -> u32 {
    const MAGIC: u32 = 0x7472_6976; // "virt"
    let windows = (0..MICROVM_MMIO_SLOTS)
        .filter(|slot| {
            let p = (MICROVM_MMIO_BASE + slot * MICROVM_MMIO_SIZE) as *const u32;
            // SAFETY: the caller guarantees the windows are mapped; reading the magic
            // register has no side effect (an absent window reads as all ones or zero).
            unsafe { p.read_volatile() == MAGIC }
        })
        .count();
    match (windows > 8, acpi) {
        (true, _) => 24,
        (false, true) => 16,
        (false, false) => 5,
    }
}

/// The virtio device ID in the virtio-mmio window at `addr` (1 = network, 4 = entropy),
/// or `None` if the window holds no virtio device. Read from the registers directly:
/// making a `MmioTransport` just to look would reset the device when it is dropped.
///
/// # Safety
/// A virtio-mmio window (or nothing) is identity-mapped at `addr`.
pub unsafe fn mmio_device_id(addr: usize) -> Option<u32> {
    const MAGIC: u32 = 0x7472_6976; // "virt"
    let p = addr as *const u32;
    // SAFETY: the caller guarantees the window is mapped; the magic (offset 0) and device
    // ID (offset 8) registers are read-only and reading them has no side effect.
    let (magic, id) = unsafe { (p.read_volatile(), p.add(2).read_volatile()) };
    (magic == MAGIC && id != 0).then_some(id)
}

/// The virtio-mmio devices QEMU lists on the kernel command line (`microvm` adds
/// `virtio_mmio.device=512@0xfeb00e00:12` for each, unless `auto-kernel-cmdline=off`):
/// (window address, GSI) pairs.
pub fn mmio_devices_from_cmdline(cmdline: &str) -> heapless::Vec<(usize, u32), 24> {
    let mut out = heapless::Vec::new();
    for word in cmdline.split_ascii_whitespace() {
        let Some(spec) = word.strip_prefix("virtio_mmio.device=") else {
            continue;
        };
        let Some((_size, rest)) = spec.split_once('@') else {
            continue;
        };
        let mut parts = rest.split(':');
        let addr = parts
            .next()
            .and_then(|a| a.strip_prefix("0x"))
            .and_then(|a| usize::from_str_radix(a, 16).ok());
        let irq = parts.next().and_then(|i| i.parse::<u32>().ok());
        if let (Some(addr), Some(irq)) = (addr, irq) {
            let _ = out.push((addr, irq));
        }
    }
    out
}

impl VirtioNic {
    /// Brings up the virtio-net PCI function `nf`.
    pub fn new_pci(
        root: &mut PciRoot<Cam>,
        reader: &Cam,
        nf: &VirtioFunction,
    ) -> Result<VirtioNic, NicError> {
        let t = PciTransport::new::<IdentityHal, _>(root, nf.function).map_err(NicError::Pci)?;
        let mut nic = Self::new(SomeTransport::from(t))?;
        // Interrupt line register, as the firmware (SeaBIOS) routed INTx; 0xff = none.
        let line = reader.read_word(nf.function, 0x3c) as u8;
        nic.irq = (1..16).contains(&line).then_some(Irq::Pic(line));
        Ok(nic)
    }

    /// Probes the `microvm` virtio-mmio windows and brings up the network devices found, in
    /// the order QEMU created them (it fills the windows from the top down); `irqs` gives
    /// each window's GSI (see [`mmio_devices_from_cmdline`]).
    ///
    /// # Safety
    /// The machine is a `microvm` (or otherwise has virtio-mmio windows at
    /// [`MICROVM_MMIO_BASE`]), that range is identity-mapped, and nothing else drives it.
    pub unsafe fn probe_microvm(
        max: usize,
        irqs: &[(usize, u32)],
        acpi: bool,
    ) -> alloc::vec::Vec<Result<VirtioNic, NicError>> {
        let mut out = alloc::vec::Vec::new();
        // SAFETY: forwarded from the caller.
        let base = unsafe { microvm_gsi_base(acpi) };
        for slot in (0..MICROVM_MMIO_SLOTS).rev() {
            if out.len() >= max.min(8) {
                break;
            }
            let addr = MICROVM_MMIO_BASE + slot * MICROVM_MMIO_SIZE;
            // SAFETY: forwarded from the caller. Other devices' windows (virtio-rng) are left
            // alone: a transport made and dropped here would reset them.
            if unsafe { mmio_device_id(addr) } != Some(DeviceType::Network as u32) {
                continue;
            }
            let header = NonNull::new(addr as *mut VirtIOHeader).expect("non-null MMIO base");
            // SAFETY: the caller guarantees a virtio-mmio window of MICROVM_MMIO_SIZE bytes at
            // `addr`, identity-mapped for the life of the kernel; reading its magic and device
            // ID has no side effect.
            let t = match unsafe { MmioTransport::new(header, MICROVM_MMIO_SIZE) } {
                Ok(t) => t,
                Err(_) => continue, // not a transport virtio-drivers can drive
            };
            let gsi = irqs
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|&(_, g)| g)
                .unwrap_or(base + slot as u32);
            out.push(Self::new(SomeTransport::from(t)).map(|mut n| {
                n.irq = Some(Irq::Gsi(gsi));
                n
            }));
        }
        out
    }

    fn new(transport: SomeTransport<'static>) -> Result<VirtioNic, NicError> {
        let raw = VirtIONetRaw::new(transport).map_err(NicError::Driver)?;
        let mut nic = VirtioNic {
            raw,
            rx: vec![[0u8; BUF_LEN]; QUEUE_SIZE].into_boxed_slice(),
            rx_of_token: [0; QUEUE_SIZE],
            tx: vec![[0u8; BUF_LEN]; QUEUE_SIZE].into_boxed_slice(),
            tx_of_token: [(0, 0); QUEUE_SIZE],
            tx_free: (0..QUEUE_SIZE as u8).collect(),
            counters: NicCounters::default(),
            irq: None,
        };
        nic.raw.enable_interrupts();
        for i in 0..QUEUE_SIZE {
            nic.post_rx(i)?;
        }
        Ok(nic)
    }

    /// Hands receive buffer `i` to the device.
    fn post_rx(&mut self, i: usize) -> Result<(), NicError> {
        // SAFETY: buffer `i` lives in `self.rx`, a heap allocation that never moves and
        // outlives `self.raw` (field order); it is not touched again until the device
        // returns it through `receive_complete` with the same token.
        let token = unsafe { self.raw.receive_begin(&mut self.rx[i]) }.map_err(NicError::Driver)?;
        self.rx_of_token[token as usize % QUEUE_SIZE] = i as u8;
        Ok(())
    }

    /// Takes back transmit buffers the device has finished with.
    fn reclaim_tx(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let (i, len) = self.tx_of_token[token as usize % QUEUE_SIZE];
            // SAFETY: this is the same buffer slice `transmit_begin` got for `token`.
            let r = unsafe {
                self.raw
                    .transmit_complete(token, &self.tx[i as usize][..len as usize])
            };
            if r.is_err() {
                self.counters.tx_errors += 1;
            }
            let _ = self.tx_free.push(i);
        }
    }

    /// Where this NIC interrupts: an 8259 line (PCI INTx as routed by the firmware) or an
    /// I/O APIC GSI (virtio-mmio, from the command line QEMU passes); `None` if unknown, in
    /// which case the image polls it.
    pub fn irq(&self) -> Option<Irq> {
        self.irq
    }

    /// What this NIC has counted.
    pub fn counters(&self) -> NicCounters {
        self.counters
    }
}

impl NetDevice for VirtioNic {
    fn mac_address(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    fn max_frame_len(&self) -> usize {
        MAX_FRAME
    }

    fn receive_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let mut f = Some(f);
        loop {
            let token = self.raw.poll_receive()?;
            let i = self.rx_of_token[token as usize % QUEUE_SIZE] as usize;
            // SAFETY: `i` is the buffer `receive_begin` got for `token` (recorded in
            // `post_rx`), passed back whole as the driver requires.
            let done = unsafe { self.raw.receive_complete(token, &mut self.rx[i]) };
            let result = match done {
                Ok((hdr, len)) if len <= MAX_FRAME && hdr + len <= BUF_LEN => {
                    self.counters.rx_frames += 1;
                    f.take().map(|f| f(&self.rx[i][hdr..hdr + len]))
                }
                Ok(_) => {
                    self.counters.rx_oversize += 1;
                    None
                }
                Err(_) => {
                    self.counters.rx_errors += 1;
                    None
                }
            };
            if self.post_rx(i).is_err() {
                self.counters.rx_errors += 1;
            }
            if result.is_some() {
                return result;
            }
        }
    }

    fn transmit_with<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.reclaim_tx();
        if len > MAX_FRAME || !self.raw.can_send() {
            return None;
        }
        let i = self.tx_free.pop()?;
        let buf = &mut self.tx[i as usize];
        let hdr = match self.raw.fill_buffer_header(buf) {
            Ok(h) => h,
            Err(_) => {
                let _ = self.tx_free.push(i);
                return None;
            }
        };
        let r = f(&mut buf[hdr..hdr + len]);
        let total = hdr + len;
        // SAFETY: the buffer lives in `self.tx` (stable heap allocation outliving `raw`) and
        // is not touched until `reclaim_tx` completes it with the same token and slice.
        match unsafe { self.raw.transmit_begin(&self.tx[i as usize][..total]) } {
            Ok(token) => {
                self.tx_of_token[token as usize % QUEUE_SIZE] = (i, total as u16);
                self.counters.tx_frames += 1;
                Some(r)
            }
            Err(_) => {
                self.counters.tx_errors += 1;
                let _ = self.tx_free.push(i);
                Some(r)
            }
        }
    }

    fn can_transmit(&mut self) -> bool {
        self.reclaim_tx();
        !self.tx_free.is_empty() && self.raw.can_send()
    }

    fn arm_interrupt(&mut self) -> bool {
        // Reading the ISR status deasserts the INTx line; a frame that completed before the
        // read is still in the used ring and is reported so the caller polls it now.
        let _ = self.raw.ack_interrupt();
        self.raw.poll_receive().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::{mmio_device_id, mmio_devices_from_cmdline};

    #[test]
    fn mmio_device_id_reads_the_registers_and_rejects_empty_windows() {
        // magic, version, device ID, vendor
        let rng = [0x7472_6976u32, 2, 4, 0x554d_4551];
        let empty = [0x7472_6976u32, 2, 0, 0x554d_4551];
        let junk = [0xffff_ffffu32; 4];
        // SAFETY: each array is a readable 16-byte window standing in for the registers.
        unsafe {
            assert_eq!(mmio_device_id(rng.as_ptr() as usize), Some(4));
            assert_eq!(mmio_device_id(empty.as_ptr() as usize), None);
            assert_eq!(mmio_device_id(junk.as_ptr() as usize), None);
        }
    }

    #[test]
    fn qemu_microvm_command_line_gives_window_and_gsi() {
        let c = "vdcnet.stats=5 virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 virtio_mmio.device=junk";
        let v = mmio_devices_from_cmdline(c);
        assert_eq!(&v[..], &[(0xfeb0_0e00, 12), (0xfeb0_0c00, 11)]);
    }
}
