//! IKE SA key derivation (§2.14, §2.18), Child SA keying material (§2.17)
//! and the shared-key AUTH payload (§2.15).

use super::{EspAlg, IkeSuite, PrfAlg};
use crate::secret::SecretBytes;

/// SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr. SK_a* are empty with AEAD.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    pub sk_d: SecretBytes,
    pub sk_ai: SecretBytes,
    pub sk_ar: SecretBytes,
    pub sk_ei: SecretBytes,
    pub sk_er: SecretBytes,
    pub sk_pi: SecretBytes,
    pub sk_pr: SecretBytes,
}

/// SKEYSEED = prf(Ni | Nr, g^ir) for a fresh IKE SA.
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], shared: &[u8]) -> SecretBytes {
    let key = [ni, nr].concat();
    SecretBytes::new(prf.prf(&key, &[shared]))
}

/// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) when rekeying, with the
/// old SA's PRF (§2.18).
pub fn skeyseed_rekey(old_prf: PrfAlg, old_sk_d: &[u8], shared: &[u8], ni: &[u8], nr: &[u8]) -> SecretBytes {
    SecretBytes::new(old_prf.prf(old_sk_d, &[shared, ni, nr]))
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
///     = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
pub fn derive_ike_keys(suite: &IkeSuite, skeyseed: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
    let prf_len = suite.prf.output_len();
    let a_len = suite.integ.map_or(0, |i| i.key_len());
    let e_len = suite.encr.keymat_len();
    let total = 3 * prf_len + 2 * a_len + 2 * e_len;
    let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
    let km = suite.prf.prf_plus(skeyseed, &seed, total);
    let mut off = 0;
    let mut take = |n: usize| {
        let s = SecretBytes::from_slice(km.expose().get(off..off + n).unwrap_or_default());
        off += n;
        s
    };
    IkeKeys {
        sk_d: take(prf_len),
        sk_ai: take(a_len),
        sk_ar: take(a_len),
        sk_ei: take(e_len),
        sk_er: take(e_len),
        sk_pi: take(prf_len),
        sk_pr: take(prf_len),
    }
}

/// Child SA keys: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); the
/// initiator-to-responder key comes first (§2.17). Returns (i→r, r→i).
pub fn child_keymat(
    prf: PrfAlg,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    alg: EspAlg,
) -> (SecretBytes, SecretBytes) {
    let n = alg.keymat_len();
    let seed = [shared.unwrap_or_default(), ni, nr].concat();
    let km = prf.prf_plus(sk_d, &seed, 2 * n);
    let e = km.expose();
    (
        SecretBytes::from_slice(e.get(..n).unwrap_or_default()),
        SecretBytes::from_slice(e.get(n..2 * n).unwrap_or_default()),
    )
}

/// AUTH for shared keys: prf(prf(Shared Secret, "Key Pad for IKEv2"),
/// RealMessage | Nonce(peer) | prf(SK_p, RestOfIDPayload)).
pub fn psk_auth(prf: PrfAlg, psk: &[u8], real_message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id_body: &[u8]) -> Vec<u8> {
    let maced_id = prf.prf(sk_p, &[id_body]);
    let pad_key = zeroize::Zeroizing::new(prf.prf(psk, &[b"Key Pad for IKEv2"]));
    prf.prf(&pad_key, &[real_message, peer_nonce, &maced_id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DhGroup, EncrAlg, IntegAlg};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // Expected values computed independently with Python's hmac/hashlib
    // following §2.13/§2.14 (testdata/kdf_gen.py).
    #[test]
    fn kdf_known_answer() {
        let ni = [0x11u8; 32];
        let nr = [0x22u8; 32];
        let shared = [0x33u8; 32];
        let suite = IkeSuite {
            encr: EncrAlg::AesCbc128,
            integ: Some(IntegAlg::HmacSha256_128),
            prf: PrfAlg::HmacSha256,
            dh: DhGroup::Curve25519,
        };
        let seed = skeyseed(suite.prf, &ni, &nr, &shared);
        assert_eq!(seed.expose(), hex(include_str!("testdata/kdf_skeyseed.hex").trim()));
        let k = derive_ike_keys(&suite, seed.expose(), &ni, &nr, 0x0102030405060708, 0x1112131415161718);
        let all = [
            k.sk_d.expose(),
            k.sk_ai.expose(),
            k.sk_ar.expose(),
            k.sk_ei.expose(),
            k.sk_er.expose(),
            k.sk_pi.expose(),
            k.sk_pr.expose(),
        ]
        .concat();
        assert_eq!(all, hex(include_str!("testdata/kdf_keys.hex").trim()));
        let (i2r, r2i) = child_keymat(suite.prf, k.sk_d.expose(), None, &ni, &nr, EspAlg::AesGcm16_256);
        assert_eq!([i2r.expose(), r2i.expose()].concat(), hex(include_str!("testdata/kdf_child.hex").trim()));
        let auth = psk_auth(suite.prf, b"secret", b"message1", &nr, k.sk_pi.expose(), &[2, 0, 0, 0, b'a']);
        assert_eq!(auth, hex(include_str!("testdata/kdf_auth.hex").trim()));
    }

    #[test]
    fn key_lengths_follow_suite() {
        let suite = IkeSuite {
            encr: EncrAlg::AesGcm16_256,
            integ: None,
            prf: PrfAlg::HmacSha384,
            dh: DhGroup::Ecp256,
        };
        let k = derive_ike_keys(&suite, &[1; 48], &[2; 16], &[3; 16], 1, 2);
        assert_eq!(k.sk_d.len(), 48);
        assert_eq!(k.sk_ai.len(), 0);
        assert_eq!(k.sk_ei.len(), 36);
        assert_eq!(k.sk_pr.len(), 48);
        assert_ne!(k.sk_ei, k.sk_er);
    }
}
