// SPDX-License-Identifier: GPL-2.0
//! Kernel FPU sections for the built-in RustCrypto AEAD.
//!
//! The RustCrypto crates in this module pick AES-NI, PCLMULQDQ, SSE2 or AVX2
//! at run time (see kcrates/build.sh), and the kernel saves no user FPU state
//! for kernel code: every use of a built-in [`Aead`](ripsec_esp::Aead) (key
//! setup, seal, open, and the key wipe on drop) runs inside
//! `kernel_fpu_begin()` / `kernel_fpu_end()`. The kernel crypto API backend
//! opens its own sections and must not be called inside one.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use kernel::alloc::KBox;
use kernel::prelude::*;

use crate::ffi;

/// Runs `f` in a kernel FPU section; `None` (and `f` not run) where this
/// context may not use the FPU, which in this module's contexts (process
/// context, softirq) only a bug could cause.
pub(crate) fn section<R>(f: impl FnOnce() -> R) -> Option<R> {
    // SAFETY: plain C; it opens a section exactly when it returns non-zero.
    if unsafe { ffi::ripsec_glue_fpu_begin() } == 0 {
        return None;
    }
    let r = f();
    // SAFETY: closes the section opened above, on the same CPU (a section
    // disables preemption).
    unsafe { ffi::ripsec_glue_fpu_end() };
    Some(r)
}

/// A box whose contents hold built-in AEAD state and so are dropped inside
/// an FPU section.
pub(crate) struct FpuBox<T>(ManuallyDrop<KBox<T>>);

impl<T> FpuBox<T> {
    /// `b` must have been built inside a section (or hold no SIMD state).
    pub(crate) fn new(b: KBox<T>) -> Self {
        FpuBox(ManuallyDrop::new(b))
    }
}

impl<T> Deref for FpuBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for FpuBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for FpuBox<T> {
    fn drop(&mut self) {
        let done = section(|| {
            // SAFETY: dropped exactly once, here; `self.0` is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.0) }
        });
        if done.is_none() {
            // Running the wipe without a section would corrupt the FPU state
            // of whatever this CPU interrupted; leaking is the lesser harm.
            pr_err!("FPU unusable while freeing an SA: its memory is leaked\n");
        }
    }
}
