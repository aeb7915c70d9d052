//! Sliding replay window for data-message counters (RFC 6479 style, whitepaper 5.4.6).
//!
//! The window is a ring of `u64` blocks. Moving the window forward clears whole blocks
//! instead of shifting bits, so an update costs O(1) amortised. The caller checks a counter
//! only after the packet's AEAD tag verified, so a forged packet can never move the window.

/// Number of `u64` blocks in the ring.
const BLOCKS: usize = 64;
const BLOCK_BITS: u64 = 64;
/// Counters this far behind the greatest one seen are still accepted once: 4032.
pub const WINDOW_SIZE: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

/// The replay window of one receiving keypair.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Greatest counter accepted so far; meaningless while `empty`.
    top: u64,
    empty: bool,
    bitmap: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("top", &self.top)
            .field("empty", &self.empty)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub const fn new() -> Self {
        Self {
            top: 0,
            empty: true,
            bitmap: [0; BLOCKS],
        }
    }

    /// Accepts `counter` (and remembers it) if it is new and inside the window; `false` if
    /// it is a duplicate or too old. `limit` is the first counter that is never valid.
    pub fn check_and_update(&mut self, counter: u64, limit: u64) -> bool {
        if counter >= limit {
            return false;
        }
        let block = counter / BLOCK_BITS;
        if self.empty || counter > self.top {
            let top_block = self.top / BLOCK_BITS;
            if self.empty {
                self.bitmap = [0; BLOCKS];
            } else {
                // Clear the blocks the window slides over (at most the whole ring).
                let advance = (block - top_block).min(BLOCKS as u64);
                for i in 1..=advance {
                    self.bitmap[((top_block + i) % BLOCKS as u64) as usize] = 0;
                }
            }
            self.top = counter;
            self.empty = false;
        } else if self.top - counter >= WINDOW_SIZE {
            return false;
        }
        let slot = &mut self.bitmap[(block % BLOCKS as u64) as usize];
        let bit = 1u64 << (counter % BLOCK_BITS);
        if *slot & bit != 0 {
            return false;
        }
        *slot |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = u64::MAX - (1 << 13);

    #[test]
    fn accepts_in_order_and_rejects_duplicates() {
        let mut w = ReplayWindow::new();
        for c in 0..10_000 {
            assert!(w.check_and_update(c, LIMIT), "{c}");
        }
        for c in 10_000 - WINDOW_SIZE..10_000 {
            assert!(!w.check_and_update(c, LIMIT), "{c}");
        }
    }

    #[test]
    fn accepts_reordered_packets_within_the_window_once() {
        let mut w = ReplayWindow::new();
        assert!(w.check_and_update(5000, LIMIT));
        // Oldest still inside the window.
        assert!(w.check_and_update(5000 - WINDOW_SIZE + 1, LIMIT));
        assert!(!w.check_and_update(5000 - WINDOW_SIZE + 1, LIMIT));
        // Just outside.
        assert!(!w.check_and_update(5000 - WINDOW_SIZE, LIMIT));
        // A window of at least 2048.
        assert!(w.check_and_update(5000 - 2048, LIMIT));
        assert!(w.check_and_update(4999, LIMIT));
        assert_eq!(w.check_and_update(1000, LIMIT), 5000 - 1000 < WINDOW_SIZE);
    }

    #[test]
    fn a_big_jump_forgets_everything_behind_the_window() {
        let mut w = ReplayWindow::new();
        for c in 0..100 {
            assert!(w.check_and_update(c, LIMIT));
        }
        assert!(w.check_and_update(1_000_000, LIMIT));
        assert!(!w.check_and_update(50, LIMIT));
        // Counters just behind the new top that were never seen are accepted.
        assert!(w.check_and_update(1_000_000 - 64, LIMIT));
        assert!(w.check_and_update(1_000_000 - 1, LIMIT));
        assert!(!w.check_and_update(1_000_000, LIMIT));
    }

    #[test]
    fn blocks_reused_after_wrapping_are_cleared() {
        let mut w = ReplayWindow::new();
        assert!(w.check_and_update(3, LIMIT));
        // Same ring slot as counter 3, one ring later.
        let same_slot = 3 + BLOCKS as u64 * 64;
        assert!(w.check_and_update(same_slot, LIMIT));
        assert!(!w.check_and_update(same_slot, LIMIT));
        assert!(!w.check_and_update(3, LIMIT));
    }

    #[test]
    fn counters_at_or_above_the_limit_are_rejected() {
        let mut w = ReplayWindow::new();
        assert!(!w.check_and_update(LIMIT, LIMIT));
        assert!(!w.check_and_update(u64::MAX, LIMIT));
        assert!(w.check_and_update(LIMIT - 1, LIMIT));
    }
}
