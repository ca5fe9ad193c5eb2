// SPDX-License-Identifier: GPL-2.0
//! Kernel FPU sections for the built-in RustCrypto AEAD.
//!
//! The RustCrypto crates in this module pick AES-NI, PCLMULQDQ, SSE2 or AVX2
//! at run time (see kcrates/build.sh), and the kernel saves no user FPU state
//! for kernel code: every use of a built-in [`Aead`](ripsec_esp::Aead) (key
//! setup, seal, open, and the key wipe on drop) runs inside
//! `kernel_fpu_begin()` / `kernel_fpu_end()`, on a stack aligned as that SIMD
//! code assumes (the glue's `ripsec_glue_fpu_call`). The kernel crypto API backend
//! opens its own sections and must not be called inside one.

use core::ffi::c_void;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use kernel::alloc::KBox;
use kernel::prelude::*;

use crate::ffi;

/// Runs `f` in a kernel FPU section, on a 16-byte-aligned stack, with bottom
/// halves off; `None` (and `f` not run) where this context may not use the
/// FPU, which in this module's contexts (process context, softirq) only a
/// bug could cause.
pub(crate) fn section<R>(f: impl FnOnce() -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    let mut run = || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    };
    let mut job: &mut dyn FnMut() = &mut run;
    // SAFETY: the glue calls `ripsec_rs_fpu_run` with this pointer before it
    // returns, or not at all; `job` outlives the call.
    let ran = unsafe { ffi::ripsec_glue_fpu_call((&mut job as *mut &mut dyn FnMut()).cast()) } != 0;
    if !ran {
        return None;
    }
    out
}

#[no_mangle]
extern "C" fn ripsec_rs_fpu_run(arg: *mut c_void) {
    // SAFETY: `section` passes a live `&mut &mut dyn FnMut()` and waits.
    let job = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
    job();
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
