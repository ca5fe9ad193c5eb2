//! Algorithms: PRF and prf+, Diffie-Hellman groups, IKE SA key derivation,
//! SK payload protection, Child SA keying material.

pub mod dh;
pub mod keys;
pub mod prf;
pub mod sk;

use crate::consts::transform as t;

pub use dh::{DhGroup, DhPrivate};
pub use prf::PrfAlg;

/// Encryption algorithm of the IKE SA (SK payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    AesGcm16_128,
    AesGcm16_256,
    ChaCha20Poly1305,
}

impl EncrAlg {
    pub fn is_aead(self) -> bool {
        !matches!(self, EncrAlg::AesCbc128 | EncrAlg::AesCbc256)
    }

    /// Key bytes (without the AEAD salt).
    pub fn key_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesGcm16_128 => 16,
            EncrAlg::AesCbc256 | EncrAlg::AesGcm16_256 | EncrAlg::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material taken from prf+: AEADs take a 4-byte salt after the key
    /// (RFC 5282 §7.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        self.key_len() + if self.is_aead() { 4 } else { 0 }
    }

    pub fn transform(self) -> (u16, Option<u16>) {
        match self {
            EncrAlg::AesCbc128 => (t::ENCR_AES_CBC, Some(128)),
            EncrAlg::AesCbc256 => (t::ENCR_AES_CBC, Some(256)),
            EncrAlg::AesGcm16_128 => (t::ENCR_AES_GCM_16, Some(128)),
            EncrAlg::AesGcm16_256 => (t::ENCR_AES_GCM_16, Some(256)),
            EncrAlg::ChaCha20Poly1305 => (t::ENCR_CHACHA20_POLY1305, None),
        }
    }

    pub fn from_transform(id: u16, key_len: Option<u16>) -> Option<Self> {
        Some(match (id, key_len) {
            (t::ENCR_AES_CBC, Some(128)) => EncrAlg::AesCbc128,
            (t::ENCR_AES_CBC, Some(256)) => EncrAlg::AesCbc256,
            (t::ENCR_AES_GCM_16, Some(128)) => EncrAlg::AesGcm16_128,
            (t::ENCR_AES_GCM_16, Some(256)) => EncrAlg::AesGcm16_256,
            (t::ENCR_CHACHA20_POLY1305, None) => EncrAlg::ChaCha20Poly1305,
            _ => return None,
        })
    }
}

/// Integrity algorithm of the IKE SA (only with non-AEAD ciphers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    HmacSha256_128,
}

impl IntegAlg {
    pub fn key_len(self) -> usize {
        32
    }
    pub fn icv_len(self) -> usize {
        16
    }
    pub fn id(self) -> u16 {
        t::AUTH_HMAC_SHA2_256_128
    }
    pub fn from_id(id: u16) -> Option<Self> {
        (id == t::AUTH_HMAC_SHA2_256_128).then_some(IntegAlg::HmacSha256_128)
    }
}

/// ESP algorithms the kernel module implements (AEAD only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspAlg {
    AesGcm16_128,
    AesGcm16_256,
    ChaCha20Poly1305,
}

impl EspAlg {
    /// Key bytes handed to the kernel: key followed by the 4-byte salt
    /// (RFC 4106 §8.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        match self {
            EspAlg::AesGcm16_128 => 20,
            EspAlg::AesGcm16_256 | EspAlg::ChaCha20Poly1305 => 36,
        }
    }

    pub fn transform(self) -> (u16, Option<u16>) {
        match self {
            EspAlg::AesGcm16_128 => (t::ENCR_AES_GCM_16, Some(128)),
            EspAlg::AesGcm16_256 => (t::ENCR_AES_GCM_16, Some(256)),
            EspAlg::ChaCha20Poly1305 => (t::ENCR_CHACHA20_POLY1305, None),
        }
    }

    pub fn from_transform(id: u16, key_len: Option<u16>) -> Option<Self> {
        Some(match (id, key_len) {
            (t::ENCR_AES_GCM_16, Some(128)) => EspAlg::AesGcm16_128,
            (t::ENCR_AES_GCM_16, Some(256)) => EspAlg::AesGcm16_256,
            (t::ENCR_CHACHA20_POLY1305, None) => EspAlg::ChaCha20Poly1305,
            _ => return None,
        })
    }
}

/// The negotiated algorithms of an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub prf: PrfAlg,
    pub dh: DhGroup,
}
