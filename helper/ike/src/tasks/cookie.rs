//! Stateless cookies against half-open SA floods (RFC 7296 §2.6).
//!
//! `Cookie = <VersionIDofSecret> | HMAC-SHA256(<secret>, Ni | IPi | SPIi)`.
//! The secret is replaced every `cookie_secret_lifetime`; cookies made with
//! the previous secret stay valid for one more period so that an initiator
//! retrying across a rotation is not refused.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

#[derive(Default)]
pub struct CookieJar {
    current: Zeroizing<[u8; 32]>,
    previous: Option<Zeroizing<[u8; 32]>>,
    version: u32,
    rotated: Option<Instant>,
}

impl CookieJar {
    /// Make sure the secret is younger than `lifetime`.
    pub fn refresh(&mut self, now: Instant, lifetime: Duration, rng: &mut dyn CryptoRngCore) {
        if self.rotated.is_some_and(|t| now.saturating_duration_since(t) < lifetime) {
            return;
        }
        let mut fresh = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut fresh[..]);
        if self.rotated.is_some() {
            self.previous = Some(std::mem::replace(&mut self.current, fresh));
            self.version = self.version.wrapping_add(1);
        } else {
            self.current = fresh;
        }
        self.rotated = Some(now);
    }

    fn mac(secret: &[u8; 32], ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else { return Vec::new() };
        m.update(ni);
        match ip {
            IpAddr::V4(a) => m.update(&a.octets()),
            IpAddr::V6(a) => m.update(&a.octets()),
        }
        m.update(&spi_i.to_be_bytes());
        m.finalize().into_bytes().to_vec()
    }

    pub fn make(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let mut c = self.version.to_be_bytes().to_vec();
        c.extend(Self::mac(&self.current, ni, ip, spi_i));
        c
    }

    pub fn verify(&self, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let Some((ver, mac)) = cookie.split_first_chunk::<4>() else { return false };
        let ver = u32::from_be_bytes(*ver);
        let secret = if ver == self.version {
            &self.current
        } else if ver == self.version.wrapping_sub(1) {
            match &self.previous {
                Some(p) => p,
                None => return false,
            }
        } else {
            return false;
        };
        bool::from(Self::mac(secret, ni, ip, spi_i).ct_eq(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn rotation_keeps_previous_valid() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut j = CookieJar::default();
        let t0 = Instant::now();
        let life = Duration::from_secs(10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        j.refresh(t0, life, &mut rng);
        let c = j.make(&[1; 16], ip, 7);
        assert!(j.verify(&c, &[1; 16], ip, 7));
        assert!(!j.verify(&c, &[2; 16], ip, 7));
        assert!(!j.verify(&c, &[1; 16], "192.0.2.2".parse().unwrap(), 7));
        assert!(!j.verify(&c, &[1; 16], ip, 8));
        j.refresh(t0 + Duration::from_secs(11), life, &mut rng);
        assert!(j.verify(&c, &[1; 16], ip, 7), "previous secret still valid");
        j.refresh(t0 + Duration::from_secs(22), life, &mut rng);
        assert!(!j.verify(&c, &[1; 16], ip, 7), "two rotations later it is not");
        assert!(!j.verify(&[1, 2], &[1; 16], ip, 7));
    }
}
