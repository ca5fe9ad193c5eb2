// SPDX-License-Identifier: GPL-2.0
//! A spinlock taken with bottom halves disabled. Tables are touched from
//! process context (netlink, local output) and from softirq (receive), so the
//! `kernel` crate's plain `SpinLock` would deadlock; the `spinlock_t` lives in
//! the C per-netns struct and this wrapper gives the data behind it.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use crate::ffi;

/// Data guarded by a C `spinlock_t` taken with `spin_lock_bh`.
///
/// # Invariants
/// `lock` points to an initialised `spinlock_t` that outlives `self`, and
/// `data` is only reached through a [`BhGuard`].
pub(crate) struct BhLock<T> {
    lock: *mut ffi::SpinLockT,
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
        BhLock { lock, data: UnsafeCell::new(data) }
    }

    pub(crate) fn lock(&self) -> BhGuard<'_, T> {
        // SAFETY: `self.lock` is a valid spinlock (type invariant).
        unsafe { ffi::ripsec_glue_lock(self.lock) };
        BhGuard { owner: self }
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
