//! Shared helpers for the integration tests: hex, packet builders, SA setup.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ripsec_esp::*;

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    assert!(s.len() & 1 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// IPv4 packet with a correct header checksum.
pub fn ipv4_packet(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!("v4")
    };
    let total = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[1] = 0x10;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&s.octets());
    p[16..20].copy_from_slice(&d.octets());
    let c = ipv4_header_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// IPv6 packet; `ext` is a list of (header type, body length in 8-byte
/// units minus one) extension headers placed before the payload.
pub fn ipv6_packet(src: IpAddr, dst: IpAddr, proto: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!("v6")
    };
    let mut body = Vec::new();
    for (i, _) in ext.iter().enumerate() {
        let next = if i + 1 < ext.len() { ext[i + 1] } else { proto };
        let mut h = vec![0u8; 8];
        h[0] = next;
        h[1] = 0;
        h[2] = 0xa0 + i as u8;
        body.extend_from_slice(&h);
    }
    body.extend_from_slice(payload);
    let first_nh = if ext.is_empty() { proto } else { ext[0] };
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[1] = 0x20;
    p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    p[6] = first_nh;
    p[7] = 64;
    p[8..24].copy_from_slice(&s.octets());
    p[24..40].copy_from_slice(&d.octets());
    p.extend_from_slice(&body);
    p
}

pub const HEAD: usize = 128;
pub const TAIL: usize = 1024;

/// Buffer with HEAD bytes of headroom and TAIL of tailroom around `pkt`.
pub fn framed(pkt: &[u8]) -> Vec<u8> {
    let mut b = vec![0xeeu8; HEAD + pkt.len() + TAIL];
    b[HEAD..HEAD + pkt.len()].copy_from_slice(pkt);
    b
}

pub fn keymat(alg: AeadAlg, seed: u8) -> Vec<u8> {
    (0..alg.keymat_len())
        .map(|i| seed.wrapping_add(i as u8).wrapping_mul(7))
        .collect()
}

pub fn cfg<'k>(
    spi: u32,
    alg: AeadAlg,
    key: &'k [u8],
    mode: Mode,
    encap: Encap,
    esn: bool,
) -> SaConfig<'k> {
    SaConfig {
        spi,
        alg,
        keymat: key,
        mode,
        encap,
        esn,
        replay_window: 64,
        tfc_pad: 0,
        ttl: 64,
        lifetime: LifetimeLimits::UNLIMITED,
    }
}

/// Encapsulates `pkt` with `tx` and returns the ESP packet bytes.
pub fn encap(tx: &mut Sa, pkt: &[u8]) -> Vec<u8> {
    let mut b = framed(pkt);
    let mut pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    tx.encapsulate(&mut pb).unwrap();
    pb.data().to_vec()
}

/// Decapsulates an ESP packet with `rx`, returning the plaintext packet.
pub fn decap(rx: &mut Sa, esp: &[u8]) -> std::result::Result<(Vec<u8>, Decapsulated), Error> {
    let mut b = framed(esp);
    let mut pb = PacketBuf::new(&mut b, HEAD, esp.len()).unwrap();
    let (d, _) = rx.decapsulate(&mut pb)?;
    Ok((pb.data().to_vec(), d))
}
