//! UDP encapsulation of ESP (RFC 3948): the 8-byte UDP header and the
//! demultiplexing of what arrives on port 4500.

use core::net::IpAddr;

use crate::aead::{ICV_LEN, IV_LEN};
use crate::esp::ESP_HDR_LEN;
use crate::ip::{addr_bytes, csum_add, csum_fold, rd16, rd32, wr16, PROTO_UDP};
use crate::{Error, Result};

/// Length of the UDP header.
pub const UDP_HDR_LEN: usize = 8;
/// The IKE/ESP NAT-traversal port.
pub const NAT_T_PORT: u16 = 4500;

/// Smallest ESP packet any of our transforms can produce: header, IV, one
/// 4-byte aligned block holding pad length and next header, ICV.
pub(crate) const MIN_ESP_LEN: usize = ESP_HDR_LEN + IV_LEN + 4 + ICV_LEN;

/// What a UDP payload received on port 4500 is (RFC 3948 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpClass {
    /// Starts with the 4-byte zero non-ESP marker: an IKE message follows
    /// at offset 4; hand the payload to the IKE daemon.
    Ike,
    /// Single 0xFF byte: NAT-keepalive, drop.
    Keepalive,
    /// An ESP packet (SPI is its first 4 bytes).
    Esp {
        /// The SPI, already checked to be outside the reserved range 0..=255.
        spi: u32,
    },
}

/// Smallest IKE header (RFC 7296 §3.1) after the non-ESP marker.
const IKE_HDR_LEN: usize = 28;

/// Classifies a UDP payload received on port 4500. Malformed payloads
/// (too short to be IKE or ESP, reserved SPI) return [`Error::BadUdp`].
pub fn classify_udp(payload: &[u8]) -> Result<UdpClass> {
    match payload {
        [0xff] => return Ok(UdpClass::Keepalive),
        [] | [_] | [_, _] | [_, _, _] => return Err(Error::BadUdp),
        _ => {}
    }
    let spi = rd32(payload, 0)?;
    if spi == 0 {
        return if payload.len() >= 4 + IKE_HDR_LEN {
            Ok(UdpClass::Ike)
        } else {
            Err(Error::BadUdp)
        };
    }
    // SPIs 1..=255 are reserved (RFC 4303 §2.1) and never assigned.
    if spi <= 255 || payload.len() < MIN_ESP_LEN {
        return Err(Error::BadUdp);
    }
    Ok(UdpClass::Esp { spi })
}

/// UDP checksum over the pseudo-header (RFC 768 / RFC 8200 §8.1) and the
/// UDP header plus payload in `seg` (checksum field must be zero).
pub(crate) fn udp_checksum(src: &IpAddr, dst: &IpAddr, seg: &[u8]) -> u16 {
    let mut s = csum_add(0, addr_bytes(src).as_slice());
    s = csum_add(s, addr_bytes(dst).as_slice());
    s = s.wrapping_add(u64::from(PROTO_UDP));
    s = s.wrapping_add(seg.len() as u64);
    s = csum_add(s, seg);
    match csum_fold(s) {
        // RFC 768: a computed 0 is sent as all ones.
        0 => 0xffff,
        c => c,
    }
}

/// Writes a UDP header at `seg[..8]` for a datagram of `seg.len()` bytes.
/// IPv4 uses checksum 0 (RFC 3948 §2.1); IPv6 requires a real checksum.
pub(crate) fn write_udp(
    seg: &mut [u8],
    sport: u16,
    dport: u16,
    v6_addrs: Option<(&IpAddr, &IpAddr)>,
) -> Result<()> {
    let len = u16::try_from(seg.len()).map_err(|_| Error::BadLength)?;
    wr16(seg, 0, sport)?;
    wr16(seg, 2, dport)?;
    wr16(seg, 4, len)?;
    wr16(seg, 6, 0)?;
    if let Some((s, d)) = v6_addrs {
        let c = udp_checksum(s, d, seg);
        wr16(seg, 6, c)?;
    }
    Ok(())
}

/// Parsed UDP header of an encapsulated ESP packet.
pub(crate) struct UdpHdr {
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// Validates the UDP header at `seg[..8]`; `seg` is the UDP datagram as
/// bounded by the IP header. IPv6 zero checksums are refused (RFC 8200
/// §8.1); a non-zero checksum is verified for both families.
pub(crate) fn parse_udp(seg: &[u8], src: &IpAddr, dst: &IpAddr) -> Result<UdpHdr> {
    if seg.len() < UDP_HDR_LEN {
        return Err(Error::Truncated);
    }
    let len = usize::from(rd16(seg, 4)?);
    if len != seg.len() {
        return Err(Error::BadUdp);
    }
    let csum = rd16(seg, 6)?;
    if csum == 0 {
        if matches!(src, IpAddr::V6(_)) {
            return Err(Error::BadUdp);
        }
    } else {
        let mut s = csum_add(0, addr_bytes(src).as_slice());
        s = csum_add(s, addr_bytes(dst).as_slice());
        s = s.wrapping_add(u64::from(PROTO_UDP));
        s = s.wrapping_add(seg.len() as u64);
        s = csum_add(s, seg);
        if csum_fold(s) != 0 {
            return Err(Error::BadUdp);
        }
    }
    Ok(UdpHdr {
        sport: rd16(seg, 0)?,
        dport: rd16(seg, 2)?,
    })
}
