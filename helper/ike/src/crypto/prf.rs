//! PRF (HMAC-SHA2, RFC 4868) and prf+ (RFC 7296 §2.13).

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use crate::consts::transform as t;
use crate::secret::SecretBytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

macro_rules! hmac_parts {
    ($h:ty, $key:expr, $parts:expr) => {{
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut m = match <Hmac<$h> as Mac>::new_from_slice($key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes any key length"),
        };
        for p in $parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }};
}

impl PrfAlg {
    pub fn id(self) -> u16 {
        match self {
            PrfAlg::HmacSha256 => t::PRF_HMAC_SHA2_256,
            PrfAlg::HmacSha384 => t::PRF_HMAC_SHA2_384,
            PrfAlg::HmacSha512 => t::PRF_HMAC_SHA2_512,
        }
    }

    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            t::PRF_HMAC_SHA2_256 => Some(PrfAlg::HmacSha256),
            t::PRF_HMAC_SHA2_384 => Some(PrfAlg::HmacSha384),
            t::PRF_HMAC_SHA2_512 => Some(PrfAlg::HmacSha512),
            _ => None,
        }
    }

    /// Output length; also the preferred key length, which is what SK_d,
    /// SK_pi and SK_pr get (§2.14).
    pub fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }

    /// `prf(key, parts[0] | parts[1] | ...)`.
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            PrfAlg::HmacSha256 => hmac_parts!(Sha256, key, parts),
            PrfAlg::HmacSha384 => hmac_parts!(Sha384, key, parts),
            PrfAlg::HmacSha512 => hmac_parts!(Sha512, key, parts),
        }
    }

    /// prf+(K, S) = T1 | T2 | ... with T1 = prf(K, S | 0x01) and
    /// Tn = prf(K, Tn-1 | S | n), truncated to `len`. §2.13 caps n at 255;
    /// every caller asks for far less, so exceeding it is a programming error
    /// and yields a shorter result that the callers' length checks reject.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> SecretBytes {
        let mut out = Vec::with_capacity(len + self.output_len());
        let mut prev: Vec<u8> = Vec::new();
        let mut n: u8 = 1;
        while out.len() < len {
            let block = self.prf(key, &[&prev, seed, &[n]]);
            out.extend_from_slice(&block);
            prev = block;
            match n.checked_add(1) {
                Some(v) => n = v,
                None => break,
            }
        }
        out.truncate(len);
        zeroize::Zeroize::zeroize(&mut prev);
        SecretBytes::new(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // RFC 4868 §2.7.1 (= RFC 4231 test case 1 and 2) PRF test vectors.
    #[test]
    fn rfc4868_vectors() {
        let key = [0x0b; 20];
        assert_eq!(
            PrfAlg::HmacSha256.prf(&key, &[b"Hi There"]),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        assert_eq!(
            PrfAlg::HmacSha384.prf(&key, &[b"Hi ", b"There"]),
            hex("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
        );
        assert_eq!(
            PrfAlg::HmacSha512.prf(&key, &[b"Hi There"]),
            hex("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
        );
        assert_eq!(
            PrfAlg::HmacSha256.prf(b"Jefe", &[b"what do ya want for nothing?"]),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    // prf+ against the §2.13 definition spelled out block by block.
    #[test]
    fn prf_plus_matches_definition() {
        let k = b"key";
        let s = b"seed";
        let p = PrfAlg::HmacSha256;
        let t1 = p.prf(k, &[s, &[1]]);
        let t2 = p.prf(k, &[&t1, s, &[2]]);
        let t3 = p.prf(k, &[&t2, s, &[3]]);
        let want: Vec<u8> = [t1, t2, t3].concat();
        assert_eq!(p.prf_plus(k, s, 70).expose(), &want[..70]);
        assert_eq!(p.prf_plus(k, s, 32).expose(), &want[..32]);
    }
}
