// SPDX-License-Identifier: GPL-2.0
//! Spinlocks taken with bottom halves disabled, and RCU read sections.
//!
//! Tables and SAs are touched from process context (netlink, local output)
//! and from softirq (receive), so the `kernel` crate's plain `SpinLock` would
//! deadlock. The namespace's `spinlock_t` lives in the C per-netns struct;
//! each SA's is allocated by the glue (its size depends on lockdep).
//!
//! Lock order: the namespace lock, then an SA's lock. The datapath takes an
//! SA's lock only after dropping the namespace lock.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use kernel::prelude::*;

use crate::ffi;

/// Data guarded by a C `spinlock_t` taken with `spin_lock_bh`.
///
/// # Invariants
/// `lock` points to an initialised `spinlock_t` that outlives `self` (or,
/// when `owned`, that `self` allocated and frees), and `data` is only
/// reached through a [`BhGuard`].
pub(crate) struct BhLock<T> {
    lock: *mut ffi::SpinLockT,
    owned: bool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by the spinlock (type invariant).
unsafe impl<T: Send> Send for BhLock<T> {}
// SAFETY: as above: `&BhLock` only hands out data under the lock.
unsafe impl<T: Send> Sync for BhLock<T> {}

impl<T> BhLock<T> {
    /// # Safety
    /// `lock` must be an initialised `spinlock_t` that outlives the result.
    pub(crate) unsafe fn new(lock: *mut ffi::SpinLockT, data: T) -> Self {
        BhLock { lock, owned: false, data: UnsafeCell::new(data) }
    }

    /// A lock of its own (process context: allocates).
    pub(crate) fn new_owned(data: T) -> Result<Self> {
        // SAFETY: plain C allocation of an initialised spinlock.
        let lock = unsafe { ffi::ripsec_glue_lock_new() };
        if lock.is_null() {
            return Err(ENOMEM);
        }
        Ok(BhLock { lock, owned: true, data: UnsafeCell::new(data) })
    }

    pub(crate) fn lock(&self) -> BhGuard<'_, T> {
        // SAFETY: `self.lock` is a valid spinlock (type invariant).
        unsafe { ffi::ripsec_glue_lock(self.lock) };
        BhGuard { owner: self }
    }
}

impl<T> Drop for BhLock<T> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: allocated in `new_owned`; `&mut self` means no guard
            // (and so no holder) exists.
            unsafe { ffi::ripsec_glue_lock_free(self.lock) };
        }
    }
}

pub(crate) struct BhGuard<'a, T> {
    owner: &'a BhLock<T>,
}

impl<T> Deref for BhGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held.
        unsafe { &*self.owner.data.get() }
    }
}

impl<T> DerefMut for BhGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while the lock is held, and `&mut self`
        // makes this the only reference.
        unsafe { &mut *self.owner.data.get() }
    }
}

impl<T> Drop for BhGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: taken in `BhLock::lock`, released exactly once here.
        unsafe { ffi::ripsec_glue_unlock(self.owner.lock) };
    }
}

/// An RCU read-side critical section; objects the tables unpublish are freed
/// only after every such section that could have seen them has ended.
pub(crate) struct RcuGuard {
    /// Not `Send`: the section belongs to this CPU/task.
    _not_send: PhantomData<*mut ()>,
}

impl RcuGuard {
    pub(crate) fn new() -> Self {
        // SAFETY: plain C; paired with the unlock in `drop`.
        unsafe { ffi::ripsec_glue_rcu_read_lock() };
        RcuGuard { _not_send: PhantomData }
    }
}

impl Drop for RcuGuard {
    fn drop(&mut self) {
        // SAFETY: closes the section `new` opened.
        unsafe { ffi::ripsec_glue_rcu_read_unlock() };
    }
}

/// A pointer to an object that stays alive while an [`RcuGuard`] is held:
/// it was read from a table under the table's lock, and the table frees what
/// it unpublishes only after a grace period.
pub(crate) struct RcuRef<'g, T> {
    ptr: NonNull<T>,
    _guard: PhantomData<&'g RcuGuard>,
}

impl<'g, T> RcuRef<'g, T> {
    /// # Safety
    /// `ptr` must point to a live object, reached under its table's lock
    /// within the section `_g` holds, that is freed only after an RCU grace
    /// period following its removal from the table.
    pub(crate) unsafe fn new(ptr: NonNull<T>, _g: &'g RcuGuard) -> Self {
        RcuRef { ptr, _guard: PhantomData }
    }

    pub(crate) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }
}

impl<T> Deref for RcuRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: alive for the guard's lifetime (constructor contract); only
        // shared access is given out.
        unsafe { self.ptr.as_ref() }
    }
}
