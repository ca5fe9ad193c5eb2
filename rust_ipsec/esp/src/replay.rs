//! Anti-replay window (RFC 4303 §3.4.3, ESN inference per Appendix A2).
//!
//! The bitmap is a ring of 65 64-bit words: one word more than the largest
//! window, so that clearing whole words when the window slides never wipes
//! bits that are still inside it (the RFC 6479 trick). Check and commit are
//! separate so the window only moves for packets whose ICV verified.

use crate::{Error, Result};

/// Largest supported window, in packets.
pub const MAX_REPLAY_WINDOW: u16 = 4096;
const WORDS: u64 = MAX_REPLAY_WINDOW as u64 / 64 + 1;

/// Receiver anti-replay state of one SA.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    bits: [u64; WORDS as usize],
    /// Highest authenticated sequence number (0: none yet).
    top: u64,
    size: u64,
    esn: bool,
    replayed: u64,
    too_old: u64,
}

impl ReplayWindow {
    /// Window of `size` packets (1..=4096, or 0 to disable replay checks).
    pub fn new(size: u16, esn: bool) -> Result<Self> {
        if size > MAX_REPLAY_WINDOW {
            return Err(Error::BadConfig);
        }
        Ok(ReplayWindow {
            bits: [0; WORDS as usize],
            top: 0,
            size: u64::from(size),
            esn,
            replayed: 0,
            too_old: 0,
        })
    }

    /// Highest committed sequence number.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Packets rejected as duplicates.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Packets rejected for being left of the window.
    pub fn too_old(&self) -> u64 {
        self.too_old
    }

    /// Reconstructs the full sequence number from its low 32 bits
    /// (RFC 4303 Appendix A2.2); identity without ESN.
    fn infer(&self, seq_lo: u32) -> Option<u64> {
        if !self.esn {
            return Some(u64::from(seq_lo));
        }
        // With checks disabled, keep inference working with a half-space
        // window, which tolerates any reordering short of 2^31 packets.
        let w = if self.size == 0 {
            1u64 << 31
        } else {
            self.size
        };
        let tl = self.top & 0xffff_ffff;
        let th = self.top >> 32;
        let lo = u64::from(seq_lo);
        // `bottom` is the low half of the lowest sequence in the window.
        let bottom = tl.wrapping_sub(w).wrapping_add(1) & 0xffff_ffff;
        let hi = if tl >= w.wrapping_sub(1) {
            // Window lies within one 2^32 subspace.
            if lo >= bottom {
                th
            } else {
                th.checked_add(1)?
            }
        } else if lo >= bottom {
            // Window straddles a subspace boundary: this is from the lower
            // one, unless there is none (top still in the first 2^32), in
            // which case it can only be ahead of the window.
            th.checked_sub(1).unwrap_or(th)
        } else {
            th
        };
        if hi > 0xffff_ffff {
            return None;
        }
        Some((hi << 32) | lo)
    }

    fn slot(seq: u64) -> (usize, u64) {
        (((seq >> 6) % WORDS) as usize, 1u64 << (seq & 63))
    }

    fn is_set(&self, seq: u64) -> bool {
        let (w, m) = Self::slot(seq);
        self.bits.get(w).is_some_and(|x| x & m != 0)
    }

    /// First step, before the ICV is verified: is `seq_lo` acceptable?
    /// Returns the full sequence number to authenticate (the ESN high half
    /// is inferred from the window) or [`Error::Replay`] /
    /// [`Error::TooOld`], which also bump the counters.
    pub fn check(&mut self, seq_lo: u32) -> Result<u64> {
        let Some(seq) = self.infer(seq_lo) else {
            self.too_old = self.too_old.wrapping_add(1);
            return Err(Error::TooOld);
        };
        self.check_full(seq)
    }

    fn check_full(&mut self, seq: u64) -> Result<u64> {
        if seq == 0 {
            self.too_old = self.too_old.wrapping_add(1);
            return Err(Error::TooOld);
        }
        if self.size == 0 || seq > self.top {
            return Ok(seq);
        }
        if self.top.wrapping_sub(seq) >= self.size {
            self.too_old = self.too_old.wrapping_add(1);
            return Err(Error::TooOld);
        }
        if self.is_set(seq) {
            self.replayed = self.replayed.wrapping_add(1);
            return Err(Error::Replay);
        }
        Ok(seq)
    }

    /// Second step, after the ICV verified: record `seq` (as returned by
    /// [`check`](Self::check)). Re-checks, so two CPUs that both passed
    /// `check` for the same packet cannot both commit it.
    pub fn commit(&mut self, seq: u64) -> Result<()> {
        self.check_full(seq)?;
        if seq > self.top {
            let old = self.top >> 6;
            let new = seq >> 6;
            if new.wrapping_sub(old) >= WORDS {
                self.bits = [0; WORDS as usize];
            } else {
                let mut w = old;
                while w != new {
                    w = w.wrapping_add(1);
                    if let Some(x) = self.bits.get_mut((w % WORDS) as usize) {
                        *x = 0;
                    }
                }
            }
            self.top = seq;
        }
        let (w, m) = Self::slot(seq);
        if let Some(x) = self.bits.get_mut(w) {
            *x |= m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_4096_window_keeps_every_bit() {
        let mut w = ReplayWindow::new(4096, false).unwrap();
        for s in 1..=4096u32 {
            let full = w.check(s).unwrap();
            w.commit(full).unwrap();
        }
        // All 4096 still inside the window and remembered.
        for s in 1..=4096u32 {
            assert_eq!(w.check(s), Err(Error::Replay), "{s}");
        }
        w.commit(4097).unwrap();
        assert_eq!(w.check(1), Err(Error::TooOld));
        assert_eq!(w.check(2), Err(Error::Replay));
        // A jump that clears some words but not all keeps the recent bits.
        w.commit(4097 + 100).unwrap();
        assert_eq!(w.check(4097), Err(Error::Replay));
        assert_eq!(w.check(4097 + 99), Ok(4097 + 99));
        assert_eq!(w.check(101), Err(Error::TooOld));
        assert_eq!(w.check(102), Err(Error::Replay));
    }

    #[test]
    fn esn_inference_rfc4303_appendix_a2() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        // Case A: window inside one subspace (top = 2^32 + 1000).
        w.commit((1 << 32) + 1000).unwrap();
        assert_eq!(w.check(990), Ok((1 << 32) + 990));
        assert_eq!(
            w.check(5),
            Ok((2 << 32) + 5),
            "below the window: next subspace"
        );
        // Case B: window straddles a boundary (top = 2^33 + 10).
        w.commit((2 << 32) + 10).unwrap();
        assert_eq!(w.check(0xffff_fff0), Ok((1 << 32) + 0xffff_fff0));
        assert_eq!(w.check(20), Ok((2 << 32) + 20));
        assert_eq!(w.replayed() + w.too_old(), 0);
    }
}
