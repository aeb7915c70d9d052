//! The narrow interface between a NIC driver and the appliance.
//!
//! A driver exposes whole Ethernet frames (destination MAC first, no FCS). The appliance
//! never sees descriptors or DMA, and the driver never sees the network stack.

/// An Ethernet NIC as the appliance sees it.
pub trait NetDevice {
    /// The NIC's hardware address.
    fn mac_address(&self) -> [u8; 6];

    /// Whether the NIC reports its link as up.
    fn link_up(&self) -> bool {
        true
    }

    /// Largest frame (without FCS) this NIC sends or receives.
    fn max_frame_len(&self) -> usize {
        1514
    }

    /// If a received frame is waiting, lend it to `f` and return what `f` returns. The frame
    /// buffer goes back to the NIC when `f` returns.
    fn receive_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R>;

    /// If there is room to send a frame, let `f` fill exactly `len` bytes, send them, and
    /// return what `f` returns. Returns `None` without calling `f` when the transmit ring is
    /// full or `len` exceeds [`NetDevice::max_frame_len`]: nothing is queued then, so `f` is
    /// never called for a frame that is not sent.
    fn transmit_with<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R>;

    /// Whether [`NetDevice::transmit_with`] would find room now.
    fn can_transmit(&mut self) -> bool;

    /// Called right before the CPU sleeps: acknowledge the NIC's interrupt so that the next
    /// frame raises a new one. Returns `true` if a frame is already waiting, in which case
    /// the caller must poll again instead of sleeping. A NIC without interrupts does nothing
    /// and returns `false` (the caller's timer tick is its only wake-up).
    fn arm_interrupt(&mut self) -> bool {
        false
    }
}
