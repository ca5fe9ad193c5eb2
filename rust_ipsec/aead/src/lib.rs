//! The AEAD transforms ESP uses: AES-GCM (RFC 4106) and ChaCha20-Poly1305
//! (RFC 7634), behind one concrete, non-generic type.
//!
//! This crate is apart from `ripsec-esp` for the kernel build: it and the
//! RustCrypto crates are the only code of rust_ipsec.ko compiled with SSE,
//! AES-NI, PCLMULQDQ and AVX2 enabled, and the module reaches it only inside
//! kernel FPU sections. Everything else (framing, tables, the module's own
//! code) keeps the kernel's soft-float code generation, so it may run
//! anywhere. Hence a public API free of generics (every instantiation of the
//! RustCrypto crates happens here) and `#[inline(never)]` entry points (they
//! must not be inlined into code built without those target features).

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic
    )
)]
#![warn(missing_docs)]

use core::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why an AEAD operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Key material has the wrong length for the algorithm.
    BadKeyLength,
    /// The buffer is too long for the algorithm.
    BadLength,
    /// ICV verification failed.
    AuthFailed,
}

/// Result of an AEAD operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Length of the ESP IV carried in each packet (RFC 4106 §3.1, RFC 7634 §2).
pub const IV_LEN: usize = 8;
/// Length of the ICV appended to each packet.
pub const ICV_LEN: usize = 16;
/// Length of the salt at the end of the key material.
pub const SALT_LEN: usize = 4;

/// AEAD algorithm of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AeadAlg {
    /// AES-128-GCM with 16-byte ICV (IKEv2 transform ENCR_AES_GCM_16, 128-bit key).
    Aes128Gcm,
    /// AES-256-GCM with 16-byte ICV.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
}

impl AeadAlg {
    /// Cipher key length in bytes, without the salt.
    pub const fn key_len(self) -> usize {
        match self {
            AeadAlg::Aes128Gcm => 16,
            AeadAlg::Aes256Gcm | AeadAlg::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material length as negotiated by IKE: key ‖ 4-byte salt.
    pub const fn keymat_len(self) -> usize {
        match self {
            AeadAlg::Aes128Gcm => 16 + SALT_LEN,
            AeadAlg::Aes256Gcm | AeadAlg::ChaCha20Poly1305 => 32 + SALT_LEN,
        }
    }
}

// No alloc means no Box: the enum is as large as the AES-256 state, which
// is fine since SAs are allocated individually by the caller.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Aes128(Aes128Gcm),
    Aes256(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
}

/// A keyed AEAD instance. Key schedule and salt are wiped on drop and never
/// printed by `Debug`.
pub struct Aead {
    alg: AeadAlg,
    cipher: Cipher,
    salt: [u8; SALT_LEN],
}

impl fmt::Debug for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aead")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Aead {
    /// Builds an AEAD from IKE key material `key ‖ salt`
    /// (RFC 4106 §8.1, RFC 7634 §2): 20 bytes for AES-128-GCM, 36 bytes for
    /// AES-256-GCM and ChaCha20-Poly1305.
    #[inline(never)]
    pub fn new(alg: AeadAlg, keymat: &[u8]) -> Result<Self> {
        if keymat.len() != alg.keymat_len() {
            return Err(Error::BadKeyLength);
        }
        let (key, salt) = keymat
            .split_at_checked(alg.key_len())
            .ok_or(Error::BadKeyLength)?;
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| Error::BadKeyLength)?;
        let cipher = match alg {
            AeadAlg::Aes128Gcm => {
                Cipher::Aes128(Aes128Gcm::new_from_slice(key).map_err(|_| Error::BadKeyLength)?)
            }
            AeadAlg::Aes256Gcm => {
                Cipher::Aes256(Aes256Gcm::new_from_slice(key).map_err(|_| Error::BadKeyLength)?)
            }
            AeadAlg::ChaCha20Poly1305 => Cipher::ChaCha(
                ChaCha20Poly1305::new_from_slice(key).map_err(|_| Error::BadKeyLength)?,
            ),
        };
        Ok(Aead { alg, cipher, salt })
    }

    /// The algorithm of this instance.
    pub fn alg(&self) -> AeadAlg {
        self.alg
    }

    fn nonce(&self, iv: &[u8; IV_LEN]) -> [u8; 12] {
        let mut n = [0u8; 12];
        let (s, i) = n.split_at_mut(SALT_LEN);
        s.copy_from_slice(&self.salt);
        i.copy_from_slice(iv);
        n
    }

    /// Encrypts `buf` in place and returns the 16-byte ICV.
    /// The nonce is `salt ‖ iv`; the caller must never reuse an IV under one
    /// key (ESP uses the sequence number).
    #[inline(never)]
    pub fn seal(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> Result<[u8; ICV_LEN]> {
        let nonce = self.nonce(iv);
        let tag = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt_in_place_detached((&nonce).into(), aad, buf),
            Cipher::Aes256(c) => c.encrypt_in_place_detached((&nonce).into(), aad, buf),
            Cipher::ChaCha(c) => c.encrypt_in_place_detached((&nonce).into(), aad, buf),
        }
        .map_err(|_| Error::BadLength)?;
        Ok(tag.into())
    }

    /// Verifies `icv` and decrypts `buf` in place. On failure `buf` is left
    /// unchanged (both backends authenticate before decrypting).
    #[inline(never)]
    pub fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> Result<()> {
        let nonce = self.nonce(iv);
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt_in_place_detached((&nonce).into(), aad, buf, icv.into()),
            Cipher::Aes256(c) => c.decrypt_in_place_detached((&nonce).into(), aad, buf, icv.into()),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached((&nonce).into(), aad, buf, icv.into()),
        }
        .map_err(|_| Error::AuthFailed)
    }
}

impl Drop for Aead {
    fn drop(&mut self) {
        self.salt.zeroize();
        // The `aes` key schedule and the ChaCha key zeroize themselves on
        // drop, but ghash/polyval 0.5/0.6 keep H = E_K(0) in plain memory.
        // Overwriting the whole cipher in place with an all-zero-key instance
        // scrubs every byte of the old state without `unsafe`; black_box
        // keeps the store from being elided as dead.
        let zero = [0u8; 32];
        let blank = match self.alg {
            AeadAlg::Aes128Gcm => Aes128Gcm::new_from_slice(zero.get(..16).unwrap_or(&[]))
                .ok()
                .map(Cipher::Aes128),
            AeadAlg::Aes256Gcm => Aes256Gcm::new_from_slice(&zero).ok().map(Cipher::Aes256),
            AeadAlg::ChaCha20Poly1305 => ChaCha20Poly1305::new_from_slice(&zero)
                .ok()
                .map(Cipher::ChaCha),
        };
        if let Some(b) = blank {
            self.cipher = b;
        }
        core::hint::black_box(&self.cipher);
    }
}

impl ZeroizeOnDrop for Aead {}

/// Which implementation the AES-GCM code runs on this CPU, for benchmark
/// and log output: `"aes-ni+pclmulqdq"` or `"soft"`.
pub fn backend() -> &'static str {
    #[cfg(all(
        any(target_arch = "x86_64", target_arch = "x86"),
        not(aes_force_soft),
        not(polyval_force_soft)
    ))]
    {
        cpufeatures::new!(aes_clmul, "aes", "pclmulqdq");
        if aes_clmul::get() {
            return "aes-ni+pclmulqdq";
        }
    }
    "soft"
}
