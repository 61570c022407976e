//! The anti-replay window of RFC 4303 §3.4.3 and Appendix A, kept as the
//! block bitmap of RFC 6479: a ring of 64-bit words plus one spare word, so
//! advancing clears whole words and never shifts the bitmap.

/// The default window, in packets.
pub const DEFAULT_WINDOW: u32 = 1024;
/// The largest window we accept (8 KiB of bitmap).
pub const MAX_WINDOW: u32 = 1 << 16;

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Replayed,
    /// Older than the window (or zero, which is never sent).
    OutsideWindow,
}

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    /// Highest sequence number accepted so far (0: none yet).
    top: u64,
    words: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets, 1 ..= [`MAX_WINDOW`].
    pub fn new(size: u32) -> Self {
        let size = size.clamp(1, MAX_WINDOW);
        ReplayWindow {
            size: u64::from(size),
            top: 0,
            words: vec![0; size.div_ceil(64) as usize + 1],
        }
    }

    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// The highest sequence number accepted.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let word = (seq >> 6) % self.words.len() as u64;
        (word as usize, 1 << (seq & 63))
    }

    /// Whether `seq` may be accepted; call before the ICV check, and
    /// [`ReplayWindow::accept`] after it passes (RFC 4303 §3.4.3).
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 || seq.saturating_add(self.size) <= self.top {
            return Err(ReplayError::OutsideWindow);
        }
        if seq > self.top {
            return Ok(());
        }
        let (w, bit) = self.slot(seq);
        if self.words[w] & bit != 0 {
            Err(ReplayError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `seq`, sliding the window if it is the new highest.
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            let old_block = self.top >> 6;
            let new_block = seq >> 6;
            let n = self.words.len() as u64;
            // Clear the words that the window slides into.
            for b in (old_block + 1)..=new_block.min(old_block + n) {
                self.words[(b % n) as usize] = 0;
            }
            self.top = seq;
        }
        let (w, bit) = self.slot(seq);
        self.words[w] |= bit;
    }

    /// The high 32 bits of an extended sequence number whose low bits are
    /// `low`, guessed from the window as in RFC 4303 Appendix A2.2.
    pub fn esn_high(&self, low: u32) -> u32 {
        let w = self.size as u32;
        let top_low = self.top as u32;
        let top_high = (self.top >> 32) as u32;
        let bottom = top_low.wrapping_sub(w - 1);
        if top_low >= w - 1 {
            // The window lies within one 2^32 subspace.
            if low >= bottom {
                top_high
            } else {
                top_high.wrapping_add(1)
            }
        } else if low >= bottom {
            // The window spans two subspaces and `low` is in the lower one
            // (none below the first: a fresh SA starts there).
            top_high.saturating_sub(1)
        } else {
            top_high
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn accepts_each_number_once_within_the_window() {
        let mut w = ReplayWindow::new(1024);
        assert_eq!(w.check(0), Err(ReplayError::OutsideWindow));
        for seq in [1, 5, 3, 2000, 1500, 977] {
            w.check(seq).unwrap();
            w.accept(seq);
            assert_eq!(w.check(seq), Err(ReplayError::Replayed));
        }
        // 2000 - 1024 = 976 is the last one out of the window.
        assert_eq!(w.check(976), Err(ReplayError::OutsideWindow));
        assert_eq!(w.check(5), Err(ReplayError::OutsideWindow));
        assert_eq!(w.check(978), Ok(()));
        assert_eq!(w.top(), 2000);
    }

    #[test]
    fn a_long_jump_clears_stale_bits() {
        let mut w = ReplayWindow::new(128);
        for seq in 1..=300 {
            w.accept(seq);
        }
        w.accept(300 + 64 * 10 + 3);
        // Every number still in the window that was never received passes.
        for seq in (943 - 127)..943 {
            assert_eq!(w.check(seq), Ok(()), "{seq}");
        }
    }

    #[test]
    fn window_size_is_respected_exactly() {
        for size in [64, 100, 1024, 4096] {
            let mut w = ReplayWindow::new(size);
            w.accept(10_000);
            let size = u64::from(size);
            assert_eq!(w.check(10_000 - size + 1), Ok(()));
            assert_eq!(w.check(10_000 - size), Err(ReplayError::OutsideWindow));
        }
    }

    #[test]
    fn esn_high_bits_follow_appendix_a2() {
        let mut w = ReplayWindow::new(1024);
        w.accept((3 << 32) | 5000);
        assert_eq!(w.esn_high(4000), 3);
        assert_eq!(w.esn_high(6000), 3);
        // Below the window: it must be the next subspace.
        assert_eq!(w.esn_high(10), 4);
        // Window spanning the boundary: top low = 100.
        let mut w = ReplayWindow::new(1024);
        w.accept((3 << 32) | 100);
        assert_eq!(w.esn_high(50), 3);
        assert_eq!(w.esn_high(u32::MAX - 10), 2);
        assert_eq!(w.esn_high(200_000), 3);
    }
}
