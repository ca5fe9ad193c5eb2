//! Arbitrary bytes through the receive path under fixed SAs.
//!
//! Byte 0 picks the SA (algorithm, mode, family, encapsulation, ESN) and
//! what to do with the rest:
//! * raw: the bytes are a received packet (outer IP header first);
//! * sealed: the bytes are an ESP *plaintext* (payload ‖ trailer) that we
//!   encrypt with a valid ICV, so trailer, next-header and inner-packet
//!   parsing after authentication get fuzzed too;
//! * roundtrip: the bytes are a packet to send; if encapsulation accepts
//!   it, decapsulation must give it back unchanged.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use ripsec_esp::*;

const HEAD: usize = 96;

fn sa_config(sel: u8, key: &[u8]) -> SaConfig<'_> {
    let alg = match sel & 3 {
        0 => AeadAlg::Aes128Gcm,
        1 => AeadAlg::Aes256Gcm,
        _ => AeadAlg::ChaCha20Poly1305,
    };
    let v6 = sel & 4 != 0;
    let (a, b) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        )
    };
    SaConfig {
        spi: 0x0102_0304,
        alg,
        keymat: &key[..alg.keymat_len()],
        mode: if sel & 8 != 0 {
            Mode::Tunnel { src: a, dst: b }
        } else {
            Mode::Transport
        },
        encap: if sel & 16 != 0 {
            Encap::Udp {
                sport: 4500,
                dport: 4500,
            }
        } else {
            Encap::None
        },
        esn: sel & 32 != 0,
        replay_window: 64,
        tfc_pad: if sel & 8 != 0 && sel & 1 != 0 { 128 } else { 0 },
        ttl: 64,
        lifetime: LifetimeLimits::UNLIMITED,
    }
}

fn outer(v6: bool, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p;
    if v6 {
        p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p[6] = proto;
        p[7] = 64;
        p[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        p[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
    } else {
        p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[192, 0, 2, 1]);
        p[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let c = ipv4_header_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}

fn decap_bytes(sa: &mut Sa, pkt: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; HEAD + pkt.len() + 64];
    buf[HEAD..HEAD + pkt.len()].copy_from_slice(pkt);
    let mut pb = PacketBuf::new(&mut buf, HEAD, pkt.len()).ok()?;
    let r = sa.decapsulate(&mut pb);
    if r.is_ok() {
        // Whatever came out must lie inside the buffer.
        assert!(pb.start() + pb.len() <= HEAD + pkt.len() + 64);
    }
    r.ok().map(|_| pb.data().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let key: Vec<u8> = (0..36u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(7))
        .collect();
    let cfg = sa_config(sel, &key);
    let v6 = sel & 4 != 0;
    let mut rx = Sa::new(&cfg).unwrap();
    match sel >> 6 {
        0 | 1 => {
            let _ = decap_bytes(&mut rx, rest);
        }
        2 => {
            // Seal `rest` as an ESP plaintext with seq 1 and a valid ICV.
            let aead = Aead::new(cfg.alg, cfg.keymat).unwrap();
            let mut aad = cfg.spi.to_be_bytes().to_vec();
            if cfg.esn {
                aad.extend_from_slice(&0u32.to_be_bytes());
            }
            aad.extend_from_slice(&1u32.to_be_bytes());
            let iv = 1u64.to_be_bytes();
            let mut ct = rest.to_vec();
            let tag = aead.seal(&iv, &aad, &mut ct).unwrap();
            let mut esp = cfg.spi.to_be_bytes().to_vec();
            esp.extend_from_slice(&1u32.to_be_bytes());
            esp.extend_from_slice(&iv);
            esp.extend_from_slice(&ct);
            esp.extend_from_slice(&tag);
            let pkt = match cfg.encap {
                Encap::None => outer(v6, PROTO_ESP, &esp),
                Encap::Udp { .. } => {
                    let mut udp = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
                    udp[4..6].copy_from_slice(&((8 + esp.len()) as u16).to_be_bytes());
                    udp.extend_from_slice(&esp);
                    if v6 {
                        // Let the receiver compute what the checksum must be.
                        let o = outer(true, PROTO_UDP, &udp);
                        let mut sum: u64 = 0;
                        for c in o[8..40].chunks(2) {
                            sum += u16::from_be_bytes([c[0], c[1]]) as u64;
                        }
                        sum += 17 + udp.len() as u64;
                        for c in udp.chunks(2) {
                            sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
                        }
                        while sum >> 16 != 0 {
                            sum = (sum & 0xffff) + (sum >> 16);
                        }
                        let ck = match !(sum as u16) {
                            0 => 0xffff,
                            c => c,
                        };
                        udp[6..8].copy_from_slice(&ck.to_be_bytes());
                    }
                    outer(v6, PROTO_UDP, &udp)
                }
            };
            if pkt.len() <= 65535 {
                let _ = decap_bytes(&mut rx, &pkt);
            }
        }
        _ => {
            let mut tx = Sa::new(&cfg).unwrap();
            let mut buf = vec![0u8; HEAD + rest.len() + 256];
            buf[HEAD..HEAD + rest.len()].copy_from_slice(rest);
            let mut pb = PacketBuf::new(&mut buf, HEAD, rest.len()).unwrap();
            if tx.encapsulate(&mut pb).is_ok() {
                let esp = pb.data().to_vec();
                let back = decap_bytes(&mut rx, &esp).expect("own packet must decapsulate");
                // What went in comes out; transport mode recomputes the
                // IPv4 header checksum, so compare against a fixed one.
                let mut want = rest.to_vec();
                if matches!(cfg.mode, Mode::Transport) && want[0] >> 4 == 4 {
                    let ihl = usize::from(want[0] & 15) * 4;
                    let c = ipv4_header_checksum(&want[..ihl]);
                    want[10..12].copy_from_slice(&c.to_be_bytes());
                }
                assert_eq!(back, want);
            }
        }
    }
});
