//! The port-4500 demultiplexer on arbitrary payloads, plus the full
//! inbound parser on those payloads wrapped in IPv4/UDP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripsec_esp::*;

fuzz_target!(|data: &[u8]| {
    match classify_udp(data) {
        Ok(UdpClass::Keepalive) => assert_eq!(data, &[0xff]),
        Ok(UdpClass::Ike) => assert!(data.len() >= 32 && data[..4] == [0, 0, 0, 0]),
        Ok(UdpClass::Esp { spi }) => {
            assert!(spi > 255);
            assert_eq!(spi.to_be_bytes(), data[..4]);
        }
        Err(e) => assert_eq!(e, Error::BadUdp),
    }
    if data.len() > 65000 {
        return;
    }
    let mut pkt = vec![0u8; 28];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&((28 + data.len()) as u16).to_be_bytes());
    pkt[8] = 64;
    pkt[9] = PROTO_UDP;
    pkt[12..16].copy_from_slice(&[198, 51, 100, 1]);
    pkt[16..20].copy_from_slice(&[198, 51, 100, 2]);
    let c = ipv4_header_checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt[20..24].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
    pkt[24..26].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    pkt.extend_from_slice(data);
    let mut buf = pkt.clone();
    let n = buf.len();
    let pb = PacketBuf::new(&mut buf, 0, n).unwrap();
    match (parse_inbound(&pb), classify_udp(data)) {
        (Ok(info), Ok(UdpClass::Esp { spi })) => {
            assert_eq!(info.spi, spi);
            assert_eq!(info.udp, Some((4500, 4500)));
        }
        (Err(Error::IkeMarker), Ok(UdpClass::Ike))
        | (Err(Error::NatKeepalive), Ok(UdpClass::Keepalive)) => {}
        (Err(_), Err(_)) => {}
        (Err(Error::Truncated), Ok(UdpClass::Esp { .. })) => {}
        (a, b) => panic!("parser and classifier disagree: {a:?} vs {b:?}"),
    }
});
