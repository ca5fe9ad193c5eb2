//! Outbound sequence numbers (RFC 4303 §3.3.3): start at 1, never wrap.

use crate::{Error, Result};

/// The sender's sequence counter of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqCounter {
    /// Next value to hand out; 0 once exhausted is never handed out.
    next: u64,
    esn: bool,
}

impl SeqCounter {
    /// Fresh counter: the first packet gets sequence number 1.
    pub const fn new(esn: bool) -> Self {
        SeqCounter { next: 1, esn }
    }

    /// Counter whose next value is `next` (SA migration, tests).
    pub const fn starting_at(next: u64, esn: bool) -> Self {
        SeqCounter { next, esn }
    }

    /// Highest sequence number the SA may ever use.
    pub const fn limit(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }

    /// Takes the next sequence number. Once the last one was used this
    /// keeps failing with [`Error::SeqWouldWrap`]: the caller must report
    /// it (the SA needs rekeying) and drop the packet.
    pub fn next_seq(&mut self) -> Result<u64> {
        let s = self.next;
        if s == 0 || s > self.limit() {
            return Err(Error::SeqWouldWrap);
        }
        // u64::MAX + 1 wraps to 0, which is the exhausted marker.
        self.next = s.wrapping_add(1);
        Ok(s)
    }

    /// The value the next call to [`next_seq`](Self::next_seq) would return.
    pub const fn peek(&self) -> u64 {
        self.next
    }
}
