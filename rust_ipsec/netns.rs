// SPDX-License-Identifier: GPL-2.0
//! Per-network-namespace state. The C glue owns the `pernet_operations`
//! registration and keeps one opaque pointer per namespace; this file creates,
//! reads and frees what it points to.

use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::prelude::*;

use crate::ffi;

/// Mirrors `enum ripsec_counter` in `uapi/rust_ipsec.h`; `check_abi` verifies the count.
#[allow(dead_code)]
#[repr(usize)]
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    NlRequests,
    InPackets,
    InBytes,
    OutPackets,
    OutBytes,
    InNoSa,
    InAuthFail,
    InReplay,
    InTooOld,
    InMalformed,
    InPolicyDrop,
    OutNoSa,
    OutSeqExhausted,
    OutErrors,
    EventsDropped,
}

const COUNTERS: usize = Counter::EventsDropped as usize + 1;

/// State of one network namespace.
pub(crate) struct NetState {
    /// Identifies the namespace in logs and status replies.
    cookie: u64,
    counters: [AtomicU64; COUNTERS],
}

impl NetState {
    pub(crate) fn bump(&self, c: Counter) {
        self.add(c, 1);
    }

    pub(crate) fn add(&self, c: Counter, n: u64) {
        if let Some(slot) = self.counters.get(c as usize) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Refuses to load a module whose Rust and C halves disagree on the counter ABI.
pub(crate) fn check_abi() -> Result {
    // SAFETY: plain C function returning a constant.
    let c_max = unsafe { ffi::ripsec_glue_counter_max() };
    if c_max as usize != COUNTERS {
        pr_err!(
            "rust_ipsec: counter ABI mismatch (C {} vs Rust {})\n",
            c_max,
            COUNTERS
        );
        return Err(EINVAL);
    }
    Ok(())
}

#[no_mangle]
extern "C" fn ripsec_rs_net_init(cookie: u64) -> *mut c_void {
    let state = NetState {
        cookie,
        counters: [const { AtomicU64::new(0) }; COUNTERS],
    };
    match KBox::new(state, GFP_KERNEL) {
        Ok(b) => {
            pr_debug!("rust_ipsec: netns {} state created\n", cookie);
            KBox::into_raw(b).cast()
        }
        Err(_) => core::ptr::null_mut(),
    }
}

#[no_mangle]
extern "C" fn ripsec_rs_net_exit(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // SAFETY: `state` came from `KBox::into_raw` in `ripsec_rs_net_init` and the
    // glue calls this exactly once per namespace, after the last user is gone.
    let b = unsafe { KBox::from_raw(state.cast::<NetState>()) };
    pr_debug!("rust_ipsec: netns {} state freed\n", b.cookie);
    drop(b);
}

#[no_mangle]
extern "C" fn ripsec_rs_read_counters(state: *mut c_void, out: *mut u64, n: u32) -> u32 {
    if state.is_null() || out.is_null() {
        return 0;
    }
    // SAFETY: the glue passes the live state of the namespace it is serving;
    // namespace exit cannot run concurrently with a netlink request in that namespace.
    let st = unsafe { &*state.cast::<NetState>() };
    st.bump(Counter::NlRequests);
    let n = core::cmp::min(n as usize, COUNTERS);
    // SAFETY: the glue passes a buffer of at least `n` u64s.
    let out = unsafe { core::slice::from_raw_parts_mut(out, n) };
    for (dst, src) in out.iter_mut().zip(st.counters.iter()) {
        *dst = src.load(Ordering::Relaxed);
    }
    COUNTERS as u32
}

#[no_mangle]
extern "C" fn ripsec_rs_version() -> *const c_char {
    crate::VERSION.as_char_ptr()
}

#[no_mangle]
extern "C" fn ripsec_rs_backend() -> *const c_char {
    crate::selftest::BACKEND_C.as_char_ptr()
}
