// SPDX-License-Identifier: GPL-2.0
//! Per-network-namespace state. The C glue owns the `pernet_operations`
//! registration, the namespace's spinlock and one opaque pointer per
//! namespace; this file creates, reads and frees what it points to.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::prelude::*;

use crate::ffi;
use crate::lock::BhLock;
use crate::tables::Tables;

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
    Acquires,
    SpiMissEvents,
    Expires,
    OutPolicyDrop,
    InHeld,
    InHeldReceived,
    InHeldDropped,
}

const COUNTERS: usize = Counter::InHeldDropped as usize + 1;

/// What the namespace lock guards.
pub(crate) struct Locked {
    /// `None` until the namespace gets its first SA or policy.
    pub(crate) tables: Option<Tables>,
}

/// State of one network namespace.
pub(crate) struct NetState {
    /// Identifies the namespace in logs and status replies.
    pub(crate) cookie: u64,
    pub(crate) net: *mut ffi::Net,
    /// Keys the table hashes: SPIs come from the network.
    pub(crate) seed: u64,
    /// Set once tables exist: the hooks' fast exit for unconfigured namespaces.
    pub(crate) active: AtomicBool,
    counters: [AtomicU64; COUNTERS],
    pub(crate) locked: BhLock<Locked>,
}

// SAFETY: `net` is only passed back to C functions that are safe to call from
// any context; everything else is Sync by construction.
unsafe impl Send for NetState {}
// SAFETY: as above.
unsafe impl Sync for NetState {}

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
        pr_err!("counter ABI mismatch (C {} vs Rust {})\n", c_max, COUNTERS);
        return Err(EINVAL);
    }
    Ok(())
}

/// The state behind the glue's opaque pointer.
///
/// # Safety
/// `state` must be a pointer `ripsec_rs_net_init` returned and the namespace
/// must not have been torn down (the glue guarantees this for hooks and
/// netlink requests running in that namespace).
pub(crate) unsafe fn from_ptr<'a>(state: *mut c_void) -> &'a NetState {
    // SAFETY: per the function's contract.
    unsafe { &*state.cast::<NetState>() }
}

#[no_mangle]
extern "C" fn ripsec_rs_net_init(net: *mut ffi::Net, cookie: u64, lock: *mut ffi::SpinLockT) -> *mut c_void {
    // SAFETY: plain C call.
    let seed = unsafe { ffi::ripsec_glue_random_u64() };
    let state = NetState {
        cookie,
        net,
        seed,
        active: AtomicBool::new(false),
        counters: [const { AtomicU64::new(0) }; COUNTERS],
        // SAFETY: the glue initialised `lock` in the per-netns struct, which
        // outlives this state (freed in `ripsec_rs_net_exit` first).
        locked: unsafe { BhLock::new(lock, Locked { tables: None }) },
    };
    match KBox::new(state, GFP_KERNEL) {
        Ok(b) => KBox::into_raw(b).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

#[no_mangle]
extern "C" fn ripsec_rs_net_exit(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // SAFETY: `state` came from `KBox::into_raw` in `ripsec_rs_net_init`; the glue
    // calls this once per namespace, from `.exit`: its hooks were unregistered
    // in `.pre_exit` and the namespace core waited for an RCU grace period
    // since, so no packet is still in them; no netlink request is left; the
    // reaper and the sweep were cancelled.
    let b = unsafe { KBox::from_raw(state.cast::<NetState>()) };
    pr_debug!("netns {} state freed\n", b.cookie);
    // Dropping the tables drops every SA; their keys are wiped on drop.
    drop(b);
}

/// Counts held packets the glue dropped (expired, evicted, or the namespace going away).
#[no_mangle]
extern "C" fn ripsec_rs_hold_expired(state: *mut c_void, n: u32) {
    if state.is_null() || n == 0 {
        return;
    }
    // SAFETY: the glue passes the live state of the namespace it serves.
    unsafe { from_ptr(state) }.add(Counter::InHeldDropped, u64::from(n));
}

#[no_mangle]
extern "C" fn ripsec_rs_read_counters(state: *mut c_void, out: *mut u64, n: u32) -> u32 {
    if state.is_null() || out.is_null() {
        return 0;
    }
    // SAFETY: the glue passes the live state of the namespace it serves.
    let st = unsafe { from_ptr(state) };
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
extern "C" fn ripsec_rs_version() -> *const u8 {
    crate::VERSION.as_char_ptr()
}

#[no_mangle]
extern "C" fn ripsec_rs_backend() -> *const u8 {
    crate::selftest::backend().as_char_ptr()
}
