// SPDX-License-Identifier: GPL-2.0
//! The kernel crypto API as an ESP AEAD: `rfc4106(gcm(aes))` (AES-NI/VAES
//! in the test kernel) and `rfc7539esp(chacha20,poly1305)`, behind
//! `ripsec_esp`'s [`EspCipher`] seam so framing stays in the shared crate.
//!
//! Which implementation new SAs use is the `aead=` module parameter:
//! `auto` (the kernel's where it has the algorithm), `kernel` (required;
//! SA setup fails without it) or `rustcrypto` (the built-in portable code).
//! `make bench` measures both; on the test kernel the kernel's AES-GCM is
//! the faster one, hence `auto`.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, Ordering};

use kernel::prelude::*;
use kernel::str::CStr;
use ripsec_esp::{AadWindow, AeadAlg, EspCipher, Error as EspError, Result as EspResult, ICV_LEN};

use crate::ffi;

/// What the crypto API returns for a wrong ICV (the 6.12 `kernel` crate
/// has no constant for it).
const EBADMSG: i32 = -74;

/// Which AEAD new SAs get, from the `aead=` module parameter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    Auto,
    Kernel,
    RustCrypto,
}

static CHOICE: AtomicI32 = AtomicI32::new(ffi::AEAD_AUTO);

impl Choice {
    /// Reads the module parameter once at load; `None` if it is not one
    /// of the accepted words.
    pub(crate) fn init() -> Option<Choice> {
        // SAFETY: plain C function reading a module parameter.
        let v = unsafe { ffi::ripsec_glue_aead_mode() };
        let c = match v {
            ffi::AEAD_AUTO => Choice::Auto,
            ffi::AEAD_KERNEL => Choice::Kernel,
            ffi::AEAD_RUSTCRYPTO => Choice::RustCrypto,
            _ => return None,
        };
        CHOICE.store(v, Ordering::Relaxed);
        Some(c)
    }

    pub(crate) fn set(c: Choice) {
        let v = match c {
            Choice::Auto => ffi::AEAD_AUTO,
            Choice::Kernel => ffi::AEAD_KERNEL,
            Choice::RustCrypto => ffi::AEAD_RUSTCRYPTO,
        };
        CHOICE.store(v, Ordering::Relaxed);
    }

    pub(crate) fn get() -> Choice {
        match CHOICE.load(Ordering::Relaxed) {
            ffi::AEAD_KERNEL => Choice::Kernel,
            ffi::AEAD_RUSTCRYPTO => Choice::RustCrypto,
            _ => Choice::Auto,
        }
    }
}

/// A keyed kernel AEAD transform. Freed (and its key schedule wiped by
/// `kfree_sensitive`) on drop.
pub(crate) struct KernelAead {
    tfm: NonNull<ffi::CryptoAead>,
    /// The transform is a SIMD implementation's internal algorithm, usable
    /// only where `crypto_simd_usable()`.
    needs_simd: bool,
}

// SAFETY: the crypto API allows concurrent requests on one transform; each
// call brings its own request, and the key is only set at creation.
unsafe impl Send for KernelAead {}
// SAFETY: as above; `&KernelAead` only issues requests.
unsafe impl Sync for KernelAead {}

impl KernelAead {
    /// Allocates and keys the transform for `alg` with IKE key material
    /// `key ‖ salt`. May sleep: SA setup context only.
    pub(crate) fn new(alg: AeadAlg, keymat: &[u8]) -> Result<Self> {
        let id = match alg {
            AeadAlg::Aes128Gcm | AeadAlg::Aes256Gcm => ffi::KAEAD_AES_GCM,
            AeadAlg::ChaCha20Poly1305 => ffi::KAEAD_CHACHA20_POLY1305,
        };
        if keymat.len() != alg.keymat_len() {
            return Err(EINVAL);
        }
        let len = u32::try_from(keymat.len()).map_err(|_| EINVAL)?;
        let mut needs_simd = 0i32;
        let mut err = 0i32;
        // SAFETY: `keymat` is valid for `len` bytes; the C side copies it into
        // the transform and keeps no reference.
        let tfm = unsafe { ffi::ripsec_kaead_new(id, keymat.as_ptr(), len, &mut needs_simd, &mut err) };
        match NonNull::new(tfm) {
            Some(tfm) => Ok(KernelAead { tfm, needs_simd: needs_simd != 0 }),
            None => Err(Error::from_errno(if err < 0 { err } else { -22 })),
        }
    }

    /// The implementation the kernel chose, e.g. `__rfc4106-gcm-aesni`.
    pub(crate) fn driver(&self) -> &CStr {
        // SAFETY: the transform is live; the name is a static string of its
        // algorithm, which lives as long as the transform holds a reference.
        unsafe { CStr::from_char_ptr(ffi::ripsec_kaead_driver(self.tfm.as_ptr())) }
    }

    /// Whether this transform may run here and now (softirq that
    /// interrupted a kernel FPU section: no; the caller then uses the
    /// built-in code with the same key).
    pub(crate) fn usable(&self) -> bool {
        // SAFETY: plain C predicate on the current CPU's state.
        !self.needs_simd || unsafe { ffi::ripsec_kaead_simd_usable() } != 0
    }

    fn crypt(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>, enc: bool) -> EspResult<()> {
        let w = AadWindow::open(buf, esp, seq_hi)?;
        let r = self.crypt_window(buf, &w, text_len, enc);
        w.restore(buf);
        r
    }

    fn crypt_window(&self, buf: &mut [u8], w: &AadWindow, text_len: usize, enc: bool) -> EspResult<()> {
        let len = w
            .assoclen
            .checked_add(text_len)
            .and_then(|x| x.checked_add(ICV_LEN))
            .ok_or(EspError::BadLength)?;
        let end = w.start.checked_add(len).ok_or(EspError::BadLength)?;
        let region = buf.get_mut(w.start..end).ok_or(EspError::Truncated)?;
        let assoclen = u32::try_from(w.assoclen).map_err(|_| EspError::BadLength)?;
        let textlen = u32::try_from(text_len).map_err(|_| EspError::BadLength)?;
        // SAFETY: `region` is an exclusively borrowed, writable slice of
        // `assoclen + textlen + 16` bytes (AAD ‖ IV ‖ text ‖ ICV), which is
        // exactly what the C side maps into one scatterlist entry; it checks
        // that the memory is directly mapped (skb data or kmalloc) and
        // refuses stack or vmalloc memory. The call is synchronous: nothing
        // keeps the pointer afterwards.
        let err = unsafe {
            ffi::ripsec_kaead_crypt(self.tfm.as_ptr(), region.as_mut_ptr(), assoclen, textlen, i32::from(enc))
        };
        match err {
            0 => Ok(()),
            EBADMSG => Err(EspError::AuthFailed),
            _ => Err(EspError::CipherFailed),
        }
    }
}

impl EspCipher for KernelAead {
    fn seal(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> EspResult<()> {
        self.crypt(buf, esp, text_len, seq_hi, true)
    }

    fn open(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> EspResult<()> {
        self.crypt(buf, esp, text_len, seq_hi, false)
    }
}

impl Drop for KernelAead {
    fn drop(&mut self) {
        // SAFETY: the transform was allocated by `ripsec_kaead_new` and is
        // freed exactly once, here; no request is in flight (calls are
        // synchronous and borrow `self`).
        unsafe { ffi::ripsec_kaead_free(self.tfm.as_ptr()) };
    }
}

/// The kernel transform for a new SA, per the `aead=` parameter: `None`
/// means the SA uses the built-in code.
pub(crate) fn for_sa(alg: AeadAlg, keymat: &[u8]) -> Result<Option<KernelAead>> {
    match Choice::get() {
        Choice::RustCrypto => Ok(None),
        Choice::Kernel => KernelAead::new(alg, keymat).map(Some),
        Choice::Auto => Ok(KernelAead::new(alg, keymat).ok()),
    }
}
