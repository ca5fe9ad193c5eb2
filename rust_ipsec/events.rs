// SPDX-License-Identifier: GPL-2.0
//! Events to userspace on the `events` multicast group, and the rate limits
//! that keep a flood (random SPIs from many sources, a busy unprotected flow)
//! to bounded CPU and event bandwidth.

use core::net::IpAddr;

use crate::abi;
use crate::ffi;
use crate::netns::{Counter, NetState};
use crate::nlmsg::Msg;

/// Remembered sources (SPI misses) and flows (acquires); older ones are evicted.
const SLOTS: usize = 32;
/// Minimum interval between two events for one source or one policy and peer.
const MISS_INTERVAL_MS: u64 = 200;
const ACQUIRE_INTERVAL_MS: u64 = 1000;
/// Global budget: at most this many events per second per namespace, in bursts
/// of at most `BURST`.
const EVENTS_PER_SEC: u64 = 100;
const BURST: u64 = 32;

#[derive(Clone, Copy)]
struct Slot {
    key: Option<(IpAddr, u32)>,
    last_ms: u64,
    pending: u32,
}

const EMPTY: Slot = Slot { key: None, last_ms: 0, pending: 0 };

/// Per-namespace limiter state, kept under the namespace lock.
pub(crate) struct Limiter {
    miss: [Slot; SLOTS],
    acquire: [Slot; SLOTS],
    tokens: u64,
    refill_ms: u64,
}

fn slot_index(a: &IpAddr, k: u32) -> usize {
    let mut h: u64 = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match a {
        IpAddr::V4(v) => h ^= u64::from(u32::from_be_bytes(v.octets())),
        IpAddr::V6(v) => {
            for c in v.octets().chunks(8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                h = (h ^ u64::from_ne_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            }
        }
    }
    (h.rotate_left(29) as usize) % SLOTS
}

impl Limiter {
    pub(crate) const fn new() -> Self {
        Limiter { miss: [EMPTY; SLOTS], acquire: [EMPTY; SLOTS], tokens: BURST, refill_ms: 0 }
    }

    fn take_token(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.refill_ms).saturating_mul(EVENTS_PER_SEC) / 1000;
        if earned > 0 {
            self.tokens = core::cmp::min(BURST, self.tokens.saturating_add(earned));
            self.refill_ms = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn table(&mut self, acquire: bool) -> &mut [Slot; SLOTS] {
        if acquire {
            &mut self.acquire
        } else {
            &mut self.miss
        }
    }

    /// Counts one occurrence for `(addr, key)`; returns how many occurrences
    /// the event should report when one is due now.
    fn allow(&mut self, acquire: bool, addr: &IpAddr, key: u32, interval: u64, now: u64) -> Option<u32> {
        let idx = slot_index(addr, key);
        let due = {
            let slot = self.table(acquire).get_mut(idx)?;
            if slot.key != Some((*addr, key)) {
                *slot = Slot { key: Some((*addr, key)), last_ms: 0, pending: 0 };
            }
            slot.pending = slot.pending.saturating_add(1);
            slot.last_ms == 0 || now.saturating_sub(slot.last_ms) >= interval
        };
        if !due || !self.take_token(now) {
            return None;
        }
        let slot = self.table(acquire).get_mut(idx)?;
        slot.last_ms = now.max(1);
        Some(core::mem::take(&mut slot.pending))
    }

    pub(crate) fn allow_miss(&mut self, src: &IpAddr, now: u64) -> Option<u32> {
        self.allow(false, src, 0, MISS_INTERVAL_MS, now)
    }

    pub(crate) fn allow_acquire(&mut self, peer: &IpAddr, policy: u32, now: u64) -> Option<u32> {
        self.allow(true, peer, policy, ACQUIRE_INTERVAL_MS, now)
    }
}

pub(crate) fn now_ms() -> u64 {
    // SAFETY: plain C call.
    unsafe { ffi::ripsec_glue_now_ms() }
}

/// An event decided under the lock and sent after it is released.
pub(crate) enum Event {
    SpiMiss { spi: u32, src: IpAddr, dst: IpAddr, udp: Option<(u16, u16)>, count: u32 },
    Acquire { policy: u32, reqid: u32, src: IpAddr, dst: IpAddr },
    Expire { spi: u32, dst: IpAddr, dir_out: bool, reqid: u32, owner: u64, hard: bool },
}

pub(crate) fn send(st: &NetState, ev: Event) {
    let (cmd, counter) = match ev {
        Event::SpiMiss { .. } => (abi::CMD_EV_SPI_MISS, Counter::SpiMissEvents),
        Event::Acquire { .. } => (abi::CMD_EV_ACQUIRE, Counter::Acquires),
        Event::Expire { .. } => (abi::CMD_EV_EXPIRE, Counter::Expires),
    };
    let mut hdr = core::ptr::null_mut();
    // SAFETY: plain C call; returns null or a message with its header.
    let skb = unsafe { ffi::ripsec_glue_event_new(cmd, &mut hdr) };
    if skb.is_null() {
        st.bump(Counter::EventsDropped);
        return;
    }
    let m = Msg { skb };
    let built = match ev {
        Event::SpiMiss { spi, src, dst, udp, count } => (|| {
            m.put_u32(abi::A_SPI, spi)?;
            m.put_addr(abi::A_SRC, &src)?;
            m.put_addr(abi::A_DST, &dst)?;
            if let Some((s, d)) = udp {
                m.put_u16(abi::A_ENCAP_SPORT, s)?;
                m.put_u16(abi::A_ENCAP_DPORT, d)?;
            }
            m.put_u32(abi::A_MISS_COUNT, count)
        })(),
        Event::Acquire { policy, reqid, src, dst } => (|| {
            m.put_u32(abi::A_POLICY_ID, policy)?;
            m.put_u32(abi::A_REQID, reqid)?;
            m.put_addr(abi::A_SRC, &src)?;
            m.put_addr(abi::A_DST, &dst)
        })(),
        Event::Expire { spi, dst, dir_out, reqid, owner, hard } => (|| {
            m.put_u32(abi::A_SPI, spi)?;
            m.put_addr(abi::A_DST, &dst)?;
            m.put_u8(abi::A_DIR, if dir_out { abi::DIR_OUT } else { abi::DIR_IN })?;
            m.put_u32(abi::A_REQID, reqid)?;
            m.put_u64(abi::A_OWNER, owner)?;
            if hard {
                m.put_flag(abi::A_HARD)?;
            }
            Ok(())
        })(),
    };
    if built.is_err() {
        // SAFETY: the message was never sent.
        unsafe { ffi::ripsec_glue_msg_free(skb) };
        st.bump(Counter::EventsDropped);
        return;
    }
    // SAFETY: `st.net` is this namespace; the call consumes the message.
    if unsafe { ffi::ripsec_glue_event_send(st.net, skb, hdr) } != 0 {
        st.bump(Counter::EventsDropped);
    } else {
        st.bump(counter);
    }
}
