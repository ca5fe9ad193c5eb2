//! Framing behaviour: modes, families, IPv6 extension headers, UDP
//! encapsulation and classification, padding, TFC, sequence numbers,
//! ESN, lifetimes, and the typed errors for each rejection.

mod common;

use common::*;
use ripsec_esp::*;

const ALGS: [AeadAlg; 3] = [
    AeadAlg::Aes128Gcm,
    AeadAlg::Aes256Gcm,
    AeadAlg::ChaCha20Poly1305,
];

fn pair(c: &SaConfig<'_>) -> (Sa, Sa) {
    (Sa::new(c).unwrap(), Sa::new(c).unwrap())
}

#[test]
fn transport_v4_roundtrip_all_algs() {
    for alg in ALGS {
        let km = keymat(alg, 1);
        let (mut tx, mut rx) = pair(&cfg(0x1000, alg, &km, Mode::Transport, Encap::None, false));
        for len in [0usize, 1, 2, 3, 4, 5, 100, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let pkt = ipv4_packet(v4(10, 1, 1, 1), v4(10, 1, 1, 2), 6, &payload);
            let esp = encap(&mut tx, &pkt);
            assert_eq!(esp[9], PROTO_ESP);
            assert_eq!((esp.len() - 20 - 8 - 8 - 16) % 4, 0, "ciphertext 4-aligned");
            assert_eq!(&esp[12..20], &pkt[12..20]);
            if len >= 4 {
                assert_ne!(
                    &esp[36..36 + len.min(16)],
                    &payload[..len.min(16)],
                    "payload encrypted"
                );
            }
            let (back, d) = decap(&mut rx, &esp).unwrap();
            assert_eq!(back, pkt, "{alg:?} len {len}");
            assert_eq!(d.next_header, 6);
        }
    }
}

#[test]
fn ipv4_options_kept_before_esp() {
    let km = keymat(AeadAlg::Aes128Gcm, 2);
    let (mut tx, mut rx) = pair(&cfg(
        0x1001,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    ));
    let mut pkt = ipv4_packet(v4(10, 0, 0, 1), v4(10, 0, 0, 2), 17, b"payload!");
    // Add 4 bytes of options (NOP NOP NOP EOL): IHL 6.
    pkt.splice(20..20, [1u8, 1, 1, 0]);
    pkt[0] = 0x46;
    let tl = pkt.len() as u16;
    pkt[2..4].copy_from_slice(&tl.to_be_bytes());
    let c = ipv4_header_checksum(&pkt[..24]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    let esp = encap(&mut tx, &pkt);
    assert_eq!(&esp[20..24], &[1, 1, 1, 0]);
    assert_eq!(&esp[24..28], &0x1001u32.to_be_bytes());
    assert_eq!(decap(&mut rx, &esp).unwrap().0, pkt);
}

#[test]
fn transport_v6_extension_headers() {
    let km = keymat(AeadAlg::ChaCha20Poly1305, 3);
    let c = cfg(
        0x2000,
        AeadAlg::ChaCha20Poly1305,
        &km,
        Mode::Transport,
        Encap::None,
        true,
    );
    let (mut tx, mut rx) = pair(&c);
    // HBH, dstopts (before routing), routing, dstopts (final): ESP goes
    // after the routing header, the final dstopts get encrypted.
    let exts = [PROTO_HOPOPT, PROTO_DSTOPTS, PROTO_ROUTING, PROTO_DSTOPTS];
    let pkt = ipv6_packet(v6(1), v6(2), 58, &exts, b"icmpv6 echo payload");
    let esp = encap(&mut tx, &pkt);
    assert_eq!(esp[6], PROTO_HOPOPT);
    assert_eq!(esp[40], PROTO_DSTOPTS);
    assert_eq!(esp[48], PROTO_ROUTING);
    assert_eq!(esp[56], PROTO_ESP, "routing header now names ESP");
    assert_eq!(&esp[64..68], &0x2000u32.to_be_bytes());
    let plen = u16::from_be_bytes([esp[4], esp[5]]) as usize;
    assert_eq!(plen + 40, esp.len());
    let (back, d) = decap(&mut rx, &esp).unwrap();
    assert_eq!(d.next_header, PROTO_DSTOPTS);
    assert_eq!(back, pkt);

    // No extension headers.
    let pkt = ipv6_packet(v6(1), v6(2), 6, &[], &[9u8; 33]);
    let esp = encap(&mut tx, &pkt);
    assert_eq!(esp[6], PROTO_ESP);
    assert_eq!(decap(&mut rx, &esp).unwrap().0, pkt);

    // Fragment headers must not exist before IPsec on output.
    let pkt = ipv6_packet(v6(1), v6(2), 6, &[PROTO_FRAGMENT], &[1u8; 8]);
    let mut b = framed(&pkt);
    let mut pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(tx.encapsulate(&mut pb), Err(Error::Unsupported));
}

fn inner_packet(v6_inner: bool, n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
    if v6_inner {
        ipv6_packet(v6(10), v6(11), 17, &[], &payload)
    } else {
        ipv4_packet(v4(172, 16, 0, 1), v4(172, 16, 0, 2), 17, &payload)
    }
}

#[test]
fn tunnel_all_family_combinations_raw_and_udp() {
    for alg in ALGS {
        for outer6 in [false, true] {
            for inner6 in [false, true] {
                for udp in [false, true] {
                    let km = keymat(alg, 4);
                    let (s, d) = if outer6 {
                        (v6(100), v6(200))
                    } else {
                        (v4(192, 0, 2, 1), v4(192, 0, 2, 2))
                    };
                    let encap_cfg = if udp {
                        Encap::Udp {
                            sport: 4500,
                            dport: 4500,
                        }
                    } else {
                        Encap::None
                    };
                    let c = cfg(
                        0x3000,
                        alg,
                        &km,
                        Mode::Tunnel { src: s, dst: d },
                        encap_cfg,
                        false,
                    );
                    let (mut tx, mut rx) = pair(&c);
                    let inner = inner_packet(inner6, 77);
                    let out = encap(&mut tx, &inner);
                    let hl = if outer6 { 40 } else { 20 };
                    let proto = if udp { PROTO_UDP } else { PROTO_ESP };
                    if outer6 {
                        assert_eq!(out[0] >> 4, 6);
                        assert_eq!(out[6], proto);
                        assert_eq!(
                            u16::from_be_bytes([out[4], out[5]]) as usize + 40,
                            out.len()
                        );
                    } else {
                        assert_eq!(out[0], 0x45);
                        assert_eq!(out[9], proto);
                        assert_eq!(
                            ipv4_header_checksum(&out[..20]),
                            u16::from_be_bytes([out[10], out[11]])
                        );
                    }
                    if udp {
                        assert_eq!(&out[hl..hl + 4], &[0x11, 0x94, 0x11, 0x94]);
                        assert_eq!(
                            u16::from_be_bytes([out[hl + 4], out[hl + 5]]) as usize,
                            out.len() - hl
                        );
                        let ck = u16::from_be_bytes([out[hl + 6], out[hl + 7]]);
                        if outer6 {
                            assert_ne!(ck, 0, "IPv6 UDP checksum required")
                        } else {
                            assert_eq!(ck, 0)
                        }
                    }
                    let (back, dd) = decap(&mut rx, &out).unwrap();
                    assert_eq!(
                        back, inner,
                        "{alg:?} outer6={outer6} inner6={inner6} udp={udp}"
                    );
                    assert_eq!(dd.next_header, if inner6 { PROTO_IPV6 } else { PROTO_IPIP });
                    assert_eq!(dd.udp, udp.then_some((4500, 4500)));
                }
            }
        }
    }
}

#[test]
fn ipv6_udp_checksum_is_verified() {
    let km = keymat(AeadAlg::Aes128Gcm, 5);
    let c = cfg(
        0x3100,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Tunnel {
            src: v6(1),
            dst: v6(2),
        },
        Encap::Udp {
            sport: 4500,
            dport: 4500,
        },
        false,
    );
    let (mut tx, mut rx) = pair(&c);
    let mut out = encap(&mut tx, &inner_packet(false, 20));
    out[46] ^= 0xff; // UDP checksum
    assert_eq!(decap(&mut rx, &out).unwrap_err(), Error::BadUdp);
    out[46] = 0;
    out[47] = 0;
    assert_eq!(
        decap(&mut rx, &out).unwrap_err(),
        Error::BadUdp,
        "zero checksum refused on IPv6"
    );
}

#[test]
fn transport_udp_encap() {
    let km = keymat(AeadAlg::Aes256Gcm, 6);
    for six in [false, true] {
        let c = cfg(
            0x3200,
            AeadAlg::Aes256Gcm,
            &km,
            Mode::Transport,
            Encap::Udp {
                sport: 40000,
                dport: 4500,
            },
            false,
        );
        let (mut tx, mut rx) = pair(&c);
        let pkt = if six {
            ipv6_packet(v6(1), v6(2), 6, &[], b"tcp segment")
        } else {
            ipv4_packet(v4(1, 2, 3, 4), v4(5, 6, 7, 8), 6, b"tcp segment")
        };
        let out = encap(&mut tx, &pkt);
        let hl = if six { 40 } else { 20 };
        assert_eq!(out[if six { 6 } else { 9 }], PROTO_UDP);
        assert_eq!(u16::from_be_bytes([out[hl], out[hl + 1]]), 40000);
        let (back, d) = decap(&mut rx, &out).unwrap();
        assert_eq!(back, pkt);
        assert_eq!(d.udp, Some((40000, 4500)));
    }
}

#[test]
fn udp_classifier() {
    assert_eq!(classify_udp(&[0xff]), Ok(UdpClass::Keepalive));
    assert_eq!(classify_udp(&[]), Err(Error::BadUdp));
    assert_eq!(classify_udp(&[0x00]), Err(Error::BadUdp));
    assert_eq!(classify_udp(&[0xff, 0xff]), Err(Error::BadUdp));
    assert_eq!(classify_udp(&[0, 0, 0]), Err(Error::BadUdp));
    let mut ike = vec![0u8; 4 + 28];
    ike[4] = 0x11;
    assert_eq!(classify_udp(&ike), Ok(UdpClass::Ike));
    assert_eq!(
        classify_udp(&ike[..20]),
        Err(Error::BadUdp),
        "marker but no IKE header"
    );
    let mut esp = vec![0u8; 36];
    esp[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    assert_eq!(classify_udp(&esp), Ok(UdpClass::Esp { spi: 0x1234_5678 }));
    assert_eq!(
        classify_udp(&esp[..35]),
        Err(Error::BadUdp),
        "shorter than minimal ESP"
    );
    esp[..4].copy_from_slice(&200u32.to_be_bytes());
    assert_eq!(classify_udp(&esp), Err(Error::BadUdp), "reserved SPI");
}

#[test]
fn ike_and_keepalive_inside_udp_are_reported() {
    let mut ike = vec![0u8; 4 + 28];
    ike[5] = 1;
    for (payload, err) in [(ike, Error::IkeMarker), (vec![0xff], Error::NatKeepalive)] {
        let mut udp = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
        udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&payload);
        let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(2, 2, 2, 2), PROTO_UDP, &udp);
        let mut b = framed(&pkt);
        let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
        assert_eq!(parse_inbound(&pb), Err(err));
    }
    let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(2, 2, 2, 2), 6, &[0u8; 64]);
    let mut b = framed(&pkt);
    let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(parse_inbound(&pb), Err(Error::NotEsp));
}

/// Builds an ESP packet by hand with an arbitrary plaintext trailer, so
/// the ICV is valid and only the trailer is wrong.
fn handmade(alg: AeadAlg, km: &[u8], spi: u32, seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let a = Aead::new(alg, km).unwrap();
    let iv = (seq as u64).to_be_bytes();
    let mut aad = spi.to_be_bytes().to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    let mut ct = plaintext.to_vec();
    let tag = a.seal(&iv, &aad, &mut ct).unwrap();
    let mut esp = aad.clone();
    esp.extend_from_slice(&iv);
    esp.extend_from_slice(&ct);
    esp.extend_from_slice(&tag);
    ipv4_packet(v4(9, 9, 9, 1), v4(9, 9, 9, 2), PROTO_ESP, &esp)
}

#[test]
fn trailer_errors() {
    let alg = AeadAlg::Aes128Gcm;
    let km = keymat(alg, 7);
    let tun = Mode::Tunnel {
        src: v4(9, 9, 9, 1),
        dst: v4(9, 9, 9, 2),
    };
    let inner = inner_packet(false, 2); // 30 bytes
    let with = |pad: &[u8], nh: u8| {
        let mut p = inner.clone();
        p.extend_from_slice(pad);
        p.push(pad.len() as u8);
        p.push(nh);
        p
    };
    let mut rx = Sa::new(&cfg(0x4000, alg, &km, tun, Encap::None, false)).unwrap();
    // Valid reference first.
    assert!(decap(&mut rx, &handmade(alg, &km, 0x4000, 1, &with(&[], 4))).is_ok());
    // Non-monotonic pad bytes.
    let mut p = with(&[1, 2, 4, 3], 4);
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 2, &p)).unwrap_err(),
        Error::BadPadding
    );
    // Pad length beyond the payload.
    let n = p.len();
    p[n - 2] = 250;
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 3, &p)).unwrap_err(),
        Error::BadPadding
    );
    // Longer-than-needed but monotonic padding is fine (RFC 4303 allows up to 255).
    assert!(decap(
        &mut rx,
        &handmade(alg, &km, 0x4000, 4, &with(&[1, 2, 3, 4], 4))
    )
    .is_ok());
    // Wrong next header in tunnel mode, mismatching inner version, dummy.
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 5, &with(&[], 6))).unwrap_err(),
        Error::BadNextHeader
    );
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 6, &with(&[], 41))).unwrap_err(),
        Error::BadNextHeader
    );
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 7, &with(&[], 59))).unwrap_err(),
        Error::DummyPacket
    );
    // Ciphertext not a multiple of 4.
    let mut p = with(&[], 4);
    p.insert(0, 0);
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4000, 8, &p)).unwrap_err(),
        Error::BadLength
    );
    // Wrong key: authentication failure, window untouched.
    let other = keymat(alg, 8);
    assert_eq!(
        decap(&mut rx, &handmade(alg, &other, 0x4000, 9, &with(&[], 4))).unwrap_err(),
        Error::AuthFailed
    );
    assert_eq!(rx.replay.top(), 4);
    // Other SPI.
    assert_eq!(
        decap(&mut rx, &handmade(alg, &km, 0x4001, 10, &with(&[], 4))).unwrap_err(),
        Error::UnknownSpi
    );
    // Encapsulation mismatch: raw ESP to a UDP SA.
    let mut rxu = Sa::new(&cfg(
        0x4000,
        alg,
        &km,
        tun,
        Encap::Udp {
            sport: 4500,
            dport: 4500,
        },
        false,
    ))
    .unwrap();
    assert_eq!(
        decap(&mut rxu, &handmade(alg, &km, 0x4000, 1, &with(&[], 4))).unwrap_err(),
        Error::EncapMismatch
    );
}

#[test]
fn tfc_padding_pads_and_is_trimmed() {
    let alg = AeadAlg::ChaCha20Poly1305;
    let km = keymat(alg, 9);
    let mut c = cfg(
        0x5000,
        alg,
        &km,
        Mode::Tunnel {
            src: v4(1, 0, 0, 1),
            dst: v4(1, 0, 0, 2),
        },
        Encap::None,
        false,
    );
    c.tfc_pad = 256;
    let (mut tx, mut rx) = pair(&c);
    for n in [0usize, 50, 236, 300] {
        let inner = inner_packet(false, n);
        let out = encap(&mut tx, &inner);
        let expect_pt = inner.len().max(256);
        let expect = 20 + 16 + expect_pt + (4 - (expect_pt + 2) % 4) % 4 + 2 + 16;
        assert_eq!(out.len(), expect, "inner {}", inner.len());
        let (back, _) = decap(&mut rx, &out).unwrap();
        assert_eq!(back, inner);
    }
    let x = EspTransform::new(&c).unwrap();
    assert_eq!(x.headroom_needed(), 36);
    assert!(x.tailroom_needed(20) >= 236 + 2 + 16);
}

#[test]
fn no_room_errors_leave_packet_alone() {
    let km = keymat(AeadAlg::Aes128Gcm, 10);
    let mut tx = Sa::new(&cfg(
        0x6000,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Tunnel {
            src: v4(1, 0, 0, 1),
            dst: v4(1, 0, 0, 2),
        },
        Encap::None,
        false,
    ))
    .unwrap();
    let inner = inner_packet(false, 10);
    let mut b = vec![0u8; 30 + inner.len() + 64];
    b[30..30 + inner.len()].copy_from_slice(&inner);
    let mut pb = PacketBuf::new(&mut b, 30, inner.len()).unwrap();
    assert_eq!(tx.encapsulate(&mut pb), Err(Error::NoHeadroom));
    let mut b = vec![0u8; 64 + inner.len() + 10];
    b[64..64 + inner.len()].copy_from_slice(&inner);
    let mut pb = PacketBuf::new(&mut b, 64, inner.len()).unwrap();
    assert_eq!(tx.encapsulate(&mut pb), Err(Error::NoTailroom));
    assert_eq!(pb.data(), inner.as_slice());
    assert_eq!(
        tx.seq.peek(),
        1,
        "failed encapsulation does not burn a sequence number"
    );
}

#[test]
fn sequence_numbers_never_wrap() {
    let mut s = SeqCounter::new(false);
    assert_eq!(s.next_seq(), Ok(1));
    let mut s = SeqCounter::starting_at(u32::MAX as u64, false);
    assert_eq!(s.next_seq(), Ok(u32::MAX as u64));
    assert_eq!(s.next_seq(), Err(Error::SeqWouldWrap));
    assert_eq!(s.next_seq(), Err(Error::SeqWouldWrap));
    let mut s = SeqCounter::starting_at(u64::MAX, true);
    assert_eq!(s.next_seq(), Ok(u64::MAX));
    assert_eq!(s.next_seq(), Err(Error::SeqWouldWrap));

    let km = keymat(AeadAlg::Aes128Gcm, 11);
    let c = cfg(
        0x7000,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    );
    let mut tx = Sa::new(&c).unwrap();
    tx.seq = SeqCounter::starting_at(u32::MAX as u64, false);
    let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(1, 1, 1, 2), 6, b"x");
    encap(&mut tx, &pkt);
    let mut b = framed(&pkt);
    let mut pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(tx.encapsulate(&mut pb), Err(Error::SeqWouldWrap));
    assert_eq!(pb.data(), pkt.as_slice());
}

#[test]
fn esn_crosses_the_32_bit_boundary() {
    let km = keymat(AeadAlg::Aes256Gcm, 12);
    let c = cfg(
        0x8000,
        AeadAlg::Aes256Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        true,
    );
    let (mut tx, mut rx) = pair(&c);
    tx.seq = SeqCounter::starting_at(0xffff_fff0, true);
    let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(1, 1, 1, 2), 6, b"esn");
    let pkts: Vec<Vec<u8>> = (0..40).map(|_| encap(&mut tx, &pkt)).collect();
    // Deliver with local reordering: pairs swapped.
    let mut order: Vec<usize> = (0..40).collect();
    for ch in order.chunks_mut(2) {
        ch.swap(0, 1);
    }
    for &i in &order {
        let (back, d) = decap(&mut rx, &pkts[i]).unwrap();
        assert_eq!(back, pkt);
        assert_eq!(d.seq, 0xffff_fff0 + i as u64);
    }
    assert_eq!(rx.replay.top(), 0xffff_fff0 + 39);
    assert_eq!(decap(&mut rx, &pkts[30]).unwrap_err(), Error::Replay);
    // Same low bits one subspace later is not a replay: it is authenticated
    // with a different seq-hi and therefore fails the ICV instead.
    assert_eq!(decap(&mut rx, &pkts[0]).unwrap_err(), Error::Replay);
}

#[test]
fn lifetime_events_exactly_once() {
    let mut l = Lifetime::new(LifetimeLimits {
        soft_bytes: 250,
        hard_bytes: 500,
        soft_packets: u64::MAX,
        hard_packets: u64::MAX,
    });
    let evs: Vec<LifetimeEvent> = (0..8).map(|_| l.account(100)).collect();
    assert_eq!(
        evs,
        [
            LifetimeEvent::None,
            LifetimeEvent::None,
            LifetimeEvent::Soft,
            LifetimeEvent::None,
            LifetimeEvent::Hard,
            LifetimeEvent::None,
            LifetimeEvent::None,
            LifetimeEvent::None
        ]
    );
    assert!(l.hard_expired());
    let mut l = Lifetime::new(LifetimeLimits {
        soft_bytes: u64::MAX,
        hard_bytes: u64::MAX,
        soft_packets: 2,
        hard_packets: 2,
    });
    assert_eq!(l.account(1), LifetimeEvent::None);
    assert_eq!(l.account(1), LifetimeEvent::SoftAndHard);
    assert_eq!(l.account(1), LifetimeEvent::None);

    let km = keymat(AeadAlg::Aes128Gcm, 13);
    let mut c = cfg(
        0x9000,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    );
    c.lifetime = LifetimeLimits {
        soft_bytes: u64::MAX,
        hard_bytes: u64::MAX,
        soft_packets: 2,
        hard_packets: 3,
    };
    let (mut tx, mut rx) = pair(&c);
    let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(1, 1, 1, 2), 6, b"life");
    let mut evs = vec![];
    let mut esps = vec![];
    for _ in 0..3 {
        let mut b = framed(&pkt);
        let mut pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
        evs.push(tx.encapsulate(&mut pb).unwrap());
        esps.push(pb.data().to_vec());
    }
    assert_eq!(
        evs,
        [
            LifetimeEvent::None,
            LifetimeEvent::Soft,
            LifetimeEvent::Hard
        ]
    );
    let mut b = framed(&pkt);
    let mut pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(tx.encapsulate(&mut pb), Err(Error::HardExpired));
    let mut rx_evs = vec![];
    for e in &esps {
        let mut b = framed(e);
        let mut pb = PacketBuf::new(&mut b, HEAD, e.len()).unwrap();
        rx_evs.push(rx.decapsulate(&mut pb).unwrap().1);
    }
    assert_eq!(
        rx_evs,
        [
            LifetimeEvent::None,
            LifetimeEvent::Soft,
            LifetimeEvent::Hard
        ]
    );
}

#[test]
fn config_errors() {
    let km = keymat(AeadAlg::Aes128Gcm, 14);
    assert_eq!(
        Error::from(Aead::new(AeadAlg::Aes128Gcm, &km[..19]).unwrap_err()),
        Error::BadKeyLength
    );
    assert_eq!(
        Error::from(Aead::new(AeadAlg::Aes256Gcm, &km).unwrap_err()),
        Error::BadKeyLength
    );
    let c = cfg(
        0,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    );
    assert_eq!(Sa::new(&c).unwrap_err(), Error::BadSpi);
    let c = cfg(
        1000,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Tunnel {
            src: v4(1, 1, 1, 1),
            dst: v6(1),
        },
        Encap::None,
        false,
    );
    assert_eq!(Sa::new(&c).unwrap_err(), Error::FamilyMismatch);
    let mut c = cfg(
        1000,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    );
    c.replay_window = 4097;
    assert_eq!(Sa::new(&c).unwrap_err(), Error::BadConfig);
}

#[test]
fn keys_not_in_debug_output() {
    let km = vec![0xabu8; 20];
    let c = cfg(
        0x1234,
        AeadAlg::Aes128Gcm,
        &km,
        Mode::Transport,
        Encap::None,
        false,
    );
    let sa = Sa::new(&c).unwrap();
    for s in [
        format!("{sa:?}"),
        format!("{c:?}"),
        format!("{:?}", sa.xfrm),
    ] {
        assert!(!s.to_lowercase().contains("abab"), "{s}");
        assert!(!s.contains("171"), "{s}");
    }
    fn zod<T: zeroize::ZeroizeOnDrop>(_: &T) {}
    zod(&Aead::new(AeadAlg::Aes128Gcm, &km).unwrap());
}

#[test]
fn inbound_ipv4_fragments_and_bad_headers_rejected() {
    let esp = vec![0x11u8; 60];
    let mut pkt = ipv4_packet(v4(1, 1, 1, 1), v4(2, 2, 2, 2), PROTO_ESP, &esp);
    pkt[6] = 0x20; // MF
    let c = ipv4_header_checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    let mut b = framed(&pkt);
    let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(parse_inbound(&pb), Err(Error::Fragmented));
    let mut pkt = ipv4_packet(v4(1, 1, 1, 1), v4(2, 2, 2, 2), PROTO_ESP, &esp);
    pkt[8] ^= 1; // TTL without checksum update
    let mut b = framed(&pkt);
    let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(parse_inbound(&pb), Err(Error::BadIpHeader));
    let pkt = ipv4_packet(v4(1, 1, 1, 1), v4(2, 2, 2, 2), PROTO_ESP, &esp[..20]);
    let mut b = framed(&pkt);
    let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(parse_inbound(&pb), Err(Error::Truncated));
    let pkt = ipv6_packet(v6(1), v6(2), PROTO_ESP, &[PROTO_FRAGMENT], &esp);
    let mut b = framed(&pkt);
    let pb = PacketBuf::new(&mut b, HEAD, pkt.len()).unwrap();
    assert_eq!(parse_inbound(&pb), Err(Error::Fragmented));
}

#[test]
fn backend_is_reported() {
    let b = backend();
    assert!(b == "soft" || b == "aes-ni+pclmulqdq", "{b}");
}

#[test]
fn table_entry_sizes_stay_small() {
    // 1M SAs must fit in well under 100 MiB of kvmalloc'd storage.
    println!(
        "SadEntry<u32>={} SadBucket={} PolicySlot={} Sa={}",
        std::mem::size_of::<SadEntry<u32>>(),
        std::mem::size_of::<SadBucket>(),
        std::mem::size_of::<PolicySlot>(),
        std::mem::size_of::<Sa>()
    );
    // 96-byte entries, 32-byte aligned: the 32 bytes a lookup reads never
    // straddle a cache line. 16-byte index elements, four to a group.
    assert_eq!(std::mem::size_of::<SadEntry<u32>>(), 96);
    assert_eq!(std::mem::align_of::<SadEntry<u32>>(), 32);
    assert_eq!(std::mem::size_of::<SadBucket>(), 16);
}
