//! Encrypted (SK) payload protection, §3.14 with RFC 5282 (AES-GCM) and
//! RFC 7634 (ChaCha20-Poly1305).
//!
//! Layout: IKE header | SK generic header | IV | ciphertext | ICV.
//! AEAD: IV is 8 bytes, nonce = salt | IV, AAD = everything before the IV.
//! CBC: IV is 16 random bytes, ICV = HMAC over everything before the ICV.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;

use super::{EncrAlg, IntegAlg};
use crate::consts::{payload, IKE_HEADER_LEN};
use crate::error::{Error, Result};
use crate::message::{decode_chain, encode_chain, Header, Message, Payload};

/// Keys for one direction.
pub struct SkKeys<'a> {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    /// Encryption key followed, for AEADs, by the 4-byte salt.
    pub ke: &'a [u8],
    pub ka: &'a [u8],
}

const TAG: usize = 16;

fn iv_len(e: EncrAlg) -> usize {
    if e.is_aead() {
        8
    } else {
        16
    }
}

fn icv_len(k: &SkKeys<'_>) -> usize {
    if k.encr.is_aead() {
        TAG
    } else {
        k.integ.map_or(0, |i| i.icv_len())
    }
}

fn aead_seal(k: &SkKeys<'_>, iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG]> {
    let (key, salt) = k.ke.split_at(k.ke.len().checked_sub(4).ok_or(Error::Integrity)?);
    let nonce = [salt, iv].concat();
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    let tag = match k.encr {
        EncrAlg::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .encrypt_in_place_detached(nonce, aad, buf),
        EncrAlg::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .encrypt_in_place_detached(nonce, aad, buf),
        EncrAlg::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .encrypt_in_place_detached(nonce, aad, buf),
        _ => return Err(Error::Integrity),
    }
    .map_err(|_| Error::Integrity)?;
    Ok(tag.into())
}

fn aead_open(k: &SkKeys<'_>, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<()> {
    let (key, salt) = k.ke.split_at(k.ke.len().checked_sub(4).ok_or(Error::Integrity)?);
    let nonce = [salt, iv].concat();
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    let tag = aes_gcm::Tag::from_slice(tag);
    match k.encr {
        EncrAlg::AesGcm16_128 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        EncrAlg::AesGcm16_256 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        EncrAlg::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| Error::Integrity)?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        _ => return Err(Error::Integrity),
    }
    .map_err(|_| Error::Integrity)
}

fn hmac256(key: &[u8], data: &[u8]) -> Result<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| Error::Integrity)?;
    m.update(data);
    Ok(m)
}

/// Build a protected message. `iv_counter` feeds the AEAD IV so it never
/// repeats under a key; CBC takes its IV from the RNG as it must be
/// unpredictable.
pub fn seal(
    header: &Header,
    payloads: &[Payload],
    k: &SkKeys<'_>,
    iv_counter: u64,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<u8>> {
    let (first, mut pt) = encode_chain(payloads);
    let ivl = iv_len(k.encr);
    let icvl = icv_len(k);
    // Pad so that payloads | padding | pad length fills whole blocks (CBC);
    // AEADs need no padding.
    let block = if k.encr.is_aead() { 1 } else { 16 };
    let pad = (block - (pt.len() + 1) % block) % block;
    pt.extend(std::iter::repeat_n(0u8, pad));
    pt.push(pad as u8);

    let sk_len = 4 + ivl + pt.len() + icvl;
    let mut h = *header;
    h.next_payload = payload::SK;
    h.length = u32::try_from(IKE_HEADER_LEN + sk_len).map_err(|_| Error::BadLength)?;
    let sk_len16 = u16::try_from(sk_len).map_err(|_| Error::BadLength)?;
    let mut out = Vec::with_capacity(h.length as usize);
    h.encode_into(&mut out);
    out.push(first);
    out.push(0);
    out.extend_from_slice(&sk_len16.to_be_bytes());

    let iv: Vec<u8> = if k.encr.is_aead() {
        iv_counter.to_be_bytes().to_vec()
    } else {
        let mut v = vec![0u8; ivl];
        rng.fill_bytes(&mut v);
        v
    };
    if k.encr.is_aead() {
        let aad = out.clone();
        out.extend_from_slice(&iv);
        let tag = aead_seal(k, &iv, &aad, &mut pt)?;
        out.extend_from_slice(&pt);
        out.extend_from_slice(&tag);
    } else {
        let ct = match k.encr {
            EncrAlg::AesCbc128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(k.ke, &iv)
                .map_err(|_| Error::Integrity)?
                .encrypt_padded_vec_mut::<NoPadding>(&pt),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(k.ke, &iv)
                .map_err(|_| Error::Integrity)?
                .encrypt_padded_vec_mut::<NoPadding>(&pt),
        };
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        let mac = hmac256(k.ka, &out)?.finalize().into_bytes();
        out.extend_from_slice(mac.get(..icvl).ok_or(Error::Integrity)?);
    }
    Ok(out)
}

/// Verify and decrypt the SK payload of `msg` (decoded from `bytes`) and
/// decode the inner payloads.
pub fn open(bytes: &[u8], msg: &Message, k: &SkKeys<'_>) -> Result<Vec<Payload>> {
    let sk = msg.sk.ok_or(Error::Malformed("no SK payload"))?;
    let ivl = iv_len(k.encr);
    let icvl = icv_len(k);
    let data_start = sk.offset + 4;
    let ct_start = data_start + ivl;
    let ct_end = bytes.len().checked_sub(icvl).ok_or(Error::Truncated)?;
    if ct_end < ct_start {
        return Err(Error::Truncated);
    }
    let iv = bytes.get(data_start..ct_start).ok_or(Error::Truncated)?;
    let icv = bytes.get(ct_end..).ok_or(Error::Truncated)?;
    let mut pt = bytes.get(ct_start..ct_end).ok_or(Error::Truncated)?.to_vec();
    if k.encr.is_aead() {
        let aad = bytes.get(..data_start).ok_or(Error::Truncated)?;
        aead_open(k, iv, aad, &mut pt, icv)?;
    } else {
        // Integrity before decryption.
        let covered = bytes.get(..ct_end).ok_or(Error::Truncated)?;
        hmac256(k.ka, covered)?.verify_truncated_left(icv).map_err(|_| Error::Integrity)?;
        if pt.is_empty() || pt.len() % 16 != 0 {
            return Err(Error::Malformed("CBC ciphertext not block aligned"));
        }
        pt = match k.encr {
            EncrAlg::AesCbc128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(k.ke, iv)
                .map_err(|_| Error::Integrity)?
                .decrypt_padded_vec_mut::<NoPadding>(&pt),
            _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(k.ke, iv)
                .map_err(|_| Error::Integrity)?
                .decrypt_padded_vec_mut::<NoPadding>(&pt),
        }
        .map_err(|_| Error::Malformed("CBC"))?;
    }
    let pad = *pt.last().ok_or(Error::Malformed("empty plaintext"))? as usize;
    let inner_len = pt.len().checked_sub(pad + 1).ok_or(Error::Malformed("pad length"))?;
    decode_chain(sk.first_inner, pt.get(..inner_len).ok_or(Error::Truncated)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::exchange;
    use crate::message::Notify;
    use rand_chacha::rand_core::SeedableRng;

    fn run(encr: EncrAlg) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let ke = vec![7u8; encr.keymat_len()];
        let ka = vec![9u8; 32];
        let integ = (!encr.is_aead()).then_some(IntegAlg::HmacSha256_128);
        let k = SkKeys { encr, integ, ke: &ke, ka: &ka };
        let h = Header::new(1, 2, exchange::INFORMATIONAL, 0, 5);
        let payloads = vec![Payload::Notify(Notify::new(16384, vec![])), Payload::Nonce(vec![1; 33])];
        let bytes = seal(&h, &payloads, &k, 42, &mut rng).unwrap();
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(open(&bytes, &m, &k).unwrap(), payloads);
        // Any flipped bit is caught.
        for i in [0, 20, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            if let Ok(m) = Message::decode(&b) {
                assert!(open(&b, &m, &k).is_err(), "{encr:?} bit flip at {i} accepted");
            }
        }
        // Wrong key fails.
        let ke2 = vec![8u8; encr.keymat_len()];
        let ka2 = vec![10u8; 32];
        let k2 = SkKeys { encr, integ, ke: &ke2, ka: &ka2 };
        assert_eq!(open(&bytes, &m, &k2), Err(Error::Integrity));
    }

    #[test]
    fn seal_open_all_ciphers() {
        for e in [
            EncrAlg::AesCbc128,
            EncrAlg::AesCbc256,
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm16_256,
            EncrAlg::ChaCha20Poly1305,
        ] {
            run(e);
        }
    }
}
