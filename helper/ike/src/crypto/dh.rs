//! Diffie-Hellman groups 31 (Curve25519, RFC 8031), 19 (ECP-256, RFC 5903)
//! and 14 (MODP-2048, RFC 3526).

use p256::elliptic_curve::sec1::ToEncodedPoint;
use crypto_bigint::modular::constant_mod::ResidueParams;
use crypto_bigint::{const_residue, impl_modulus, Encoding, U2048};
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::consts::transform as t;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    Modp2048,
    Ecp256,
    Curve25519,
}

impl DhGroup {
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp2048 => t::DH_MODP_2048,
            DhGroup::Ecp256 => t::DH_ECP_256,
            DhGroup::Curve25519 => t::DH_CURVE25519,
        }
    }

    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            t::DH_MODP_2048 => Some(DhGroup::Modp2048),
            t::DH_ECP_256 => Some(DhGroup::Ecp256),
            t::DH_CURVE25519 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Ecp256 => 64,
            DhGroup::Curve25519 => 32,
        }
    }

    pub fn generate(self, rng: &mut dyn CryptoRngCore) -> DhPrivate {
        match self {
            DhGroup::Curve25519 => {
                let s = x25519_dalek::StaticSecret::random_from_rng(&mut *rng);
                DhPrivate::X25519(Box::new(s))
            }
            DhGroup::Ecp256 => {
                let mut r = rng;
                DhPrivate::P256(p256::ecdh::EphemeralSecret::random(&mut r))
            },
            DhGroup::Modp2048 => {
                // A 256-bit exponent gives ~128-bit security for a 2048-bit
                // group (RFC 3526 §8 asks for at least twice the strength).
                let mut e = Zeroizing::new([0u8; 256]);
                loop {
                    rng.fill_bytes(&mut e[224..]);
                    if e.iter().any(|b| *b != 0) {
                        break;
                    }
                }
                DhPrivate::Modp(Box::new(Zeroizing::new(U2048::from_be_bytes(*e))))
            }
        }
    }
}

impl_modulus!(
    Modp2048,
    U2048,
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF"
);

/// An ephemeral DH private value. Zeroized on drop by the underlying types.
pub enum DhPrivate {
    X25519(Box<x25519_dalek::StaticSecret>),
    P256(p256::ecdh::EphemeralSecret),
    Modp(Box<Zeroizing<U2048>>),
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate({:?})", self.group())
    }
}

/// Modular exponentiation with a fixed 256-bit exponent bound; crypto-bigint's
/// Montgomery `pow_bounded_exp` runs in time independent of the exponent value.
fn modp_pow(base: &U2048, exp: &U2048) -> U2048 {
    { let b = *base; const_residue!(b, Modp2048) }.pow_bounded_exp(exp, 256).retrieve()
}

impl DhPrivate {
    pub fn group(&self) -> DhGroup {
        match self {
            DhPrivate::X25519(_) => DhGroup::Curve25519,
            DhPrivate::P256(_) => DhGroup::Ecp256,
            DhPrivate::Modp(_) => DhGroup::Modp2048,
        }
    }

    /// The KE payload data.
    pub fn public(&self) -> Vec<u8> {
        match self {
            DhPrivate::X25519(s) => x25519_dalek::PublicKey::from(&**s).as_bytes().to_vec(),
            DhPrivate::P256(s) => {
                // RFC 5903 §7: x | y without the SEC1 0x04 prefix.
                let pt = s.public_key().to_encoded_point(false);
                pt.as_bytes().get(1..).unwrap_or_default().to_vec()
            }
            DhPrivate::Modp(e) => modp_pow(&U2048::from_u8(2), e).to_be_bytes().to_vec(),
        }
    }

    /// g^ir from the peer's KE data. Rejects malformed and degenerate values.
    pub fn shared(&self, peer: &[u8]) -> Result<SecretBytes> {
        match self {
            DhPrivate::X25519(s) => {
                let p: [u8; 32] = peer.try_into().map_err(|_| Error::InvalidKe)?;
                let ss = s.diffie_hellman(&x25519_dalek::PublicKey::from(p));
                // RFC 8031 §2.3: an all-zero result means a small-order point.
                if bool::from(ss.as_bytes().ct_eq(&[0u8; 32])) {
                    return Err(Error::InvalidKe);
                }
                Ok(SecretBytes::from_slice(ss.as_bytes()))
            }
            DhPrivate::P256(s) => {
                if peer.len() != 64 {
                    return Err(Error::InvalidKe);
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                // from_sec1_bytes checks that the point is on the curve.
                let pk = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidKe)?;
                let ss = s.diffie_hellman(&pk);
                Ok(SecretBytes::from_slice(ss.raw_secret_bytes().as_slice()))
            }
            DhPrivate::Modp(e) => {
                if peer.len() != 256 {
                    return Err(Error::InvalidKe);
                }
                let y = U2048::from_be_slice(peer);
                // RFC 7296 §2.12 / SP 800-56A: 1 < y < p-1.
                let p_minus_1 = Modp2048::MODULUS.wrapping_sub(&U2048::ONE);
                if y <= U2048::ONE || y >= p_minus_1 {
                    return Err(Error::InvalidKe);
                }
                let z = Zeroizing::new(modp_pow(&y, e));
                Ok(SecretBytes::new(z.to_be_bytes().to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn all_groups_agree() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for g in [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048] {
            let a = g.generate(&mut rng);
            let b = g.generate(&mut rng);
            assert_eq!(a.public().len(), g.public_len());
            let s1 = a.shared(&b.public()).unwrap();
            let s2 = b.shared(&a.public()).unwrap();
            assert_eq!(s1, s2, "{g:?}");
            assert!(s1.expose().iter().any(|b| *b != 0));
        }
    }

    #[test]
    fn degenerate_values_rejected() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let m = DhGroup::Modp2048.generate(&mut rng);
        let mut one = [0u8; 256];
        one[255] = 1;
        assert_eq!(m.shared(&one), Err(Error::InvalidKe));
        assert_eq!(m.shared(&[0u8; 256]), Err(Error::InvalidKe));
        assert_eq!(m.shared(&[0xffu8; 256]), Err(Error::InvalidKe));
        assert_eq!(m.shared(&[2u8; 255]), Err(Error::InvalidKe));
        let x = DhGroup::Curve25519.generate(&mut rng);
        assert_eq!(x.shared(&[0u8; 32]), Err(Error::InvalidKe));
        let p = DhGroup::Ecp256.generate(&mut rng);
        assert_eq!(p.shared(&[1u8; 64]), Err(Error::InvalidKe));
    }

    // RFC 7748 §6.1 X25519 test vector.
    #[test]
    fn x25519_rfc7748() {
        let h = |s: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
            v.try_into().unwrap()
        };
        let a = DhPrivate::X25519(Box::new(x25519_dalek::StaticSecret::from(h(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))));
        let bpub = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        assert_eq!(
            a.public(),
            h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a").to_vec()
        );
        assert_eq!(
            a.shared(&bpub).unwrap().expose(),
            &h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }
}
