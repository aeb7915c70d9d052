//! The bounded queue of outbound packets waiting for a handshake to complete.
//!
//! All slots are allocated when the peer is created; queueing and dequeueing only copy.
//! When the queue is full the newest packet is dropped (and counted by the caller).

use alloc::vec;
use alloc::vec::Vec;

/// Packets held per peer while a handshake is in progress.
pub const QUEUE_SLOTS: usize = 4;
/// Largest packet that can be queued (a full 1500-byte MTU).
pub const QUEUE_SLOT_LEN: usize = 1500;

/// A FIFO of up to [`QUEUE_SLOTS`] packets of up to [`QUEUE_SLOT_LEN`] bytes.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct PacketQueue {
    storage: Vec<u8>,
    lens: [usize; QUEUE_SLOTS],
    head: usize,
    count: usize,
}

impl core::fmt::Debug for PacketQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketQueue")
            .field("count", &self.count)
            .finish()
    }
}

impl Default for PacketQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketQueue {
    /// An empty queue (allocates its slots).
    pub fn new() -> Self {
        Self {
            storage: vec![0; QUEUE_SLOTS * QUEUE_SLOT_LEN],
            lens: [0; QUEUE_SLOTS],
            head: 0,
            count: 0,
        }
    }

    /// Number of queued packets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Copies `packet` in; `false` if it is too large or the queue is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if packet.len() > QUEUE_SLOT_LEN || self.count == QUEUE_SLOTS {
            return false;
        }
        let slot = (self.head + self.count) % QUEUE_SLOTS;
        let start = slot * QUEUE_SLOT_LEN;
        self.storage[start..start + packet.len()].copy_from_slice(packet);
        self.lens[slot] = packet.len();
        self.count += 1;
        true
    }

    /// The oldest packet, if any (not removed).
    pub fn front(&self) -> Option<&[u8]> {
        if self.count == 0 {
            return None;
        }
        let start = self.head * QUEUE_SLOT_LEN;
        Some(&self.storage[start..start + self.lens[self.head]])
    }

    /// Removes the oldest packet.
    pub fn pop(&mut self) {
        if self.count > 0 {
            self.storage[self.head * QUEUE_SLOT_LEN..][..self.lens[self.head]].fill(0);
            self.head = (self.head + 1) % QUEUE_SLOTS;
            self.count -= 1;
        }
    }

    /// Drops everything; returns how many packets were dropped.
    pub fn clear(&mut self) -> usize {
        let n = self.count;
        while self.count > 0 {
            self.pop();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_bounds() {
        let mut q = PacketQueue::new();
        for i in 0..QUEUE_SLOTS as u8 {
            assert!(q.push(&[i; 3]));
        }
        assert!(!q.push(&[9]));
        assert_eq!(q.front(), Some(&[0u8; 3][..]));
        q.pop();
        assert!(q.push(&[7; 2]));
        assert_eq!(q.front(), Some(&[1u8; 3][..]));
        assert!(!q.push(&[0; QUEUE_SLOT_LEN + 1]));
        assert_eq!(q.clear(), QUEUE_SLOTS);
        assert!(q.is_empty() && q.front().is_none());
    }
}
