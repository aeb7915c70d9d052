//! virtio-rng (virtio-entropy, device type 4) over PCI (pc, q35) or virtio-mmio (microvm),
//! as an [`EntropySource`] for the mixer.
//!
//! Built on `virtio-drivers`' transports and `VirtQueue`, not its `device::rng` driver:
//! that one spins until the device answers, and a device that never does would hang the
//! boot. Here every request has a deadline (TSC-timed); a buffer the device still holds
//! when the deadline passes stays owned by the driver and is collected by a later request,
//! so a slow device is never handed a buffer that was freed. The device's length is never
//! trusted: 0 bytes is a failure, more than the buffer holds a device error.

use crate::entropy::{EntropySource, SourceError};
use crate::pci::{Cam, VirtioFunction};
use crate::virtio::{
    mmio_device_id, IdentityHal, MICROVM_MMIO_BASE, MICROVM_MMIO_SIZE, MICROVM_MMIO_SLOTS,
};
use alloc::boxed::Box;
use core::ptr::NonNull;
use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, SomeTransport, Transport};

/// The device's one queue (requestq).
const QUEUE: u16 = 0;
/// Descriptors in the queue: one request is in flight at a time.
const QUEUE_SIZE: usize = 4;
/// Bytes asked per request.
pub const REQUEST_BYTES: usize = 64;
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT_MS: u64 = 100;

/// Why the device could not be brought up.
#[derive(Debug)]
pub enum RngError {
    Pci(virtio_drivers::transport::pci::VirtioPciError),
    Driver(virtio_drivers::Error),
}

/// Counters the device keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngCounters {
    pub requests: u64,
    pub bytes: u64,
    pub timeouts: u64,
    pub empty: u64,
    pub errors: u64,
}

/// A virtio-rng device.
pub struct VirtioRng {
    transport: SomeTransport<'static>,
    queue: VirtQueue<IdentityHal, QUEUE_SIZE>,
    /// The buffer the device writes; a heap allocation that never moves.
    buf: Box<[u8; REQUEST_BYTES]>,
    /// The token of the request the device still holds, if any.
    pending: Option<u16>,
    /// TSC ticks per request deadline.
    timeout_ticks: u64,
    name: &'static str,
    counters: RngCounters,
}

impl VirtioRng {
    /// Brings up the virtio-rng PCI function `f` (found by
    /// [`find_virtio`](crate::pci::find_virtio)); `tsc_hz` times the requests.
    pub fn new_pci(
        root: &mut PciRoot<Cam>,
        f: &VirtioFunction,
        tsc_hz: u64,
    ) -> Result<VirtioRng, RngError> {
        let t = PciTransport::new::<IdentityHal, _>(root, f.function).map_err(RngError::Pci)?;
        Self::new(SomeTransport::from(t), "virtio-rng (PCI)", tsc_hz)
    }

    /// Finds the first virtio-rng device among `microvm`'s virtio-mmio windows and brings
    /// it up; `None` if there is none.
    ///
    /// # Safety
    /// As for [`VirtioNic::probe_microvm`](crate::virtio::VirtioNic::probe_microvm); the
    /// window found is driven by nobody else (the NIC probe leaves non-network windows alone).
    pub unsafe fn probe_microvm(tsc_hz: u64) -> Option<Result<VirtioRng, RngError>> {
        for slot in (0..MICROVM_MMIO_SLOTS).rev() {
            let addr = MICROVM_MMIO_BASE + slot * MICROVM_MMIO_SIZE;
            // SAFETY: forwarded from the caller. Only the entropy device's window gets a
            // transport: dropping one made for a NIC's window would reset that NIC.
            if unsafe { mmio_device_id(addr) } != Some(DeviceType::EntropySource as u32) {
                continue;
            }
            let header = NonNull::new(addr as *mut VirtIOHeader).expect("non-null MMIO base");
            // SAFETY: the caller guarantees a virtio-mmio window of MICROVM_MMIO_SIZE bytes at
            // `addr`, identity-mapped for the life of the kernel; reading its magic and device
            // ID has no side effect.
            let t = match unsafe { MmioTransport::new(header, MICROVM_MMIO_SIZE) } {
                Ok(t) => t,
                Err(_) => continue,
            };
            return Some(Self::new(
                SomeTransport::from(t),
                "virtio-rng (virtio-mmio)",
                tsc_hz,
            ));
        }
        None
    }

    fn new(
        mut transport: SomeTransport<'static>,
        name: &'static str,
        tsc_hz: u64,
    ) -> Result<VirtioRng, RngError> {
        let _features = transport.begin_init(Feature::VERSION_1);
        let queue =
            VirtQueue::new(&mut transport, QUEUE, false, false).map_err(RngError::Driver)?;
        transport.finish_init();
        let mut rng = VirtioRng {
            transport,
            queue,
            buf: Box::new([0; REQUEST_BYTES]),
            pending: None,
            timeout_ticks: (tsc_hz / 1000).max(1) * REQUEST_TIMEOUT_MS,
            name,
            counters: RngCounters::default(),
        };
        // Polled: no used-buffer interrupts.
        rng.queue.set_dev_notify(false);
        Ok(rng)
    }

    /// What the device has done.
    pub fn counters(&self) -> RngCounters {
        self.counters
    }

    /// One request: waits (at most the timeout) for the device to fill the buffer, then
    /// copies what it wrote to `dst`.
    fn request(&mut self, dst: &mut [u8]) -> Result<usize, SourceError> {
        let token = match self.pending {
            Some(t) => t,
            None => {
                self.counters.requests += 1;
                // SAFETY: `self.buf` is a heap allocation owned by `self` that is not
                // read or written until `pop_used` returns it (below, or in a later call);
                // `Drop` resets the device before the buffer is freed.
                let t = unsafe { self.queue.add(&[], &mut [&mut self.buf[..]]) }.map_err(|_| {
                    self.counters.errors += 1;
                    SourceError::Device
                })?;
                if self.queue.should_notify() {
                    self.transport.notify(QUEUE);
                }
                self.pending = Some(t);
                t
            }
        };
        let start = crate::cpu::rdtsc();
        while !self.queue.can_pop() {
            if crate::cpu::rdtsc().wrapping_sub(start) > self.timeout_ticks {
                self.counters.timeouts += 1;
                return Err(SourceError::Timeout);
            }
            core::hint::spin_loop();
        }
        // SAFETY: the same buffer `add` got for `token`.
        let popped = unsafe { self.queue.pop_used(token, &[], &mut [&mut self.buf[..]]) };
        self.pending = None;
        // The device was asked not to interrupt; should it raise its (possibly shared,
        // level-triggered) INTx line anyway, reading the ISR status lowers it.
        let _ = self.transport.ack_interrupt();
        let len = match popped {
            Ok(l) => l as usize,
            Err(_) => {
                self.counters.errors += 1;
                return Err(SourceError::Device);
            }
        };
        if len == 0 {
            self.counters.empty += 1;
            return Err(SourceError::Empty);
        }
        if len > REQUEST_BYTES {
            self.counters.errors += 1;
            return Err(SourceError::Device);
        }
        let n = len.min(dst.len());
        dst[..n].copy_from_slice(&self.buf[..n]);
        self.buf.fill(0);
        self.counters.bytes += n as u64;
        Ok(n)
    }
}

impl EntropySource for VirtioRng {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.request(buf)
    }
}

impl Drop for VirtioRng {
    fn drop(&mut self) {
        // Reset the device first: after this it no longer writes to the buffer it may
        // still hold, which is freed with `self`.
        self.transport.set_status(DeviceStatus::empty());
        self.transport.queue_unset(QUEUE);
    }
}
