//! IPv4 / IPv6 header parsing and the fix-ups ESP needs after it changes a
//! packet's length or protocol. Everything reads through `get()`: headers
//! come from the wire and may lie about their own size.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Error, Result};

/// IPv6 hop-by-hop options.
pub const PROTO_HOPOPT: u8 = 0;
/// IPv4-in-IP (tunnel mode next header for an IPv4 inner packet).
pub const PROTO_IPIP: u8 = 4;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// IPv6-in-IP (tunnel mode next header for an IPv6 inner packet).
pub const PROTO_IPV6: u8 = 41;
/// IPv6 routing header.
pub const PROTO_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const PROTO_FRAGMENT: u8 = 44;
/// ESP.
pub const PROTO_ESP: u8 = 50;
/// No next header; in ESP: a dummy (TFC) packet.
pub const PROTO_NONE: u8 = 59;
/// IPv6 destination options.
pub const PROTO_DSTOPTS: u8 = 60;

pub(crate) const IPV4_MIN_HDR: usize = 20;
pub(crate) const IPV6_HDR: usize = 40;

pub(crate) fn rd8(b: &[u8], off: usize) -> Result<u8> {
    b.get(off).copied().ok_or(Error::Truncated)
}

pub(crate) fn rd16(b: &[u8], off: usize) -> Result<u16> {
    let s = b.get(off..off.checked_add(2).ok_or(Error::Truncated)?);
    let s: [u8; 2] = s
        .ok_or(Error::Truncated)?
        .try_into()
        .map_err(|_| Error::Truncated)?;
    Ok(u16::from_be_bytes(s))
}

pub(crate) fn rd32(b: &[u8], off: usize) -> Result<u32> {
    let s = b.get(off..off.checked_add(4).ok_or(Error::Truncated)?);
    let s: [u8; 4] = s
        .ok_or(Error::Truncated)?
        .try_into()
        .map_err(|_| Error::Truncated)?;
    Ok(u32::from_be_bytes(s))
}

pub(crate) fn wr(b: &mut [u8], off: usize, v: &[u8]) -> Result<()> {
    let end = off.checked_add(v.len()).ok_or(Error::Truncated)?;
    b.get_mut(off..end)
        .ok_or(Error::Truncated)?
        .copy_from_slice(v);
    Ok(())
}

pub(crate) fn wr8(b: &mut [u8], off: usize, v: u8) -> Result<()> {
    *b.get_mut(off).ok_or(Error::Truncated)? = v;
    Ok(())
}

pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) -> Result<()> {
    wr(b, off, &v.to_be_bytes())
}

pub(crate) fn wr32(b: &mut [u8], off: usize, v: u32) -> Result<()> {
    wr(b, off, &v.to_be_bytes())
}

/// Adds `data` to a one's-complement running sum (RFC 1071). A u64
/// accumulator cannot overflow for any packet that fits in memory.
pub(crate) fn csum_add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        let w = match c {
            [a, b] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        };
        sum = sum.wrapping_add(u64::from(w));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u64::from(*last) << 8);
    }
    sum
}

pub(crate) fn csum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff).wrapping_add(sum >> 16);
    }
    !(sum as u16)
}

/// Internet checksum of an IPv4 header whose checksum field may hold any
/// value (it is treated as zero).
pub fn ipv4_header_checksum(hdr: &[u8]) -> u16 {
    let head = hdr.get(..10).unwrap_or(&[]);
    let tail = hdr.get(12..).unwrap_or(&[]);
    csum_fold(csum_add(csum_add(0, head), tail))
}

pub(crate) fn addr_bytes(a: &IpAddr) -> AddrBytes {
    match a {
        IpAddr::V4(v4) => AddrBytes::V4(v4.octets()),
        IpAddr::V6(v6) => AddrBytes::V6(v6.octets()),
    }
}

pub(crate) enum AddrBytes {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl AddrBytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            AddrBytes::V4(b) => b,
            AddrBytes::V6(b) => b,
        }
    }
}

pub(crate) fn v4_addr(b: &[u8], off: usize) -> Result<IpAddr> {
    Ok(IpAddr::V4(Ipv4Addr::from(rd32(b, off)?)))
}

pub(crate) fn v6_addr(b: &[u8], off: usize) -> Result<IpAddr> {
    let end = off.checked_add(16).ok_or(Error::Truncated)?;
    let s: [u8; 16] = b
        .get(off..end)
        .ok_or(Error::Truncated)?
        .try_into()
        .map_err(|_| Error::Truncated)?;
    Ok(IpAddr::V6(Ipv6Addr::from(s)))
}

/// Where the upper-layer payload starts in an IP packet, and which byte
/// holds the protocol / next-header value that precedes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct L3 {
    pub(crate) v6: bool,
    /// Header bytes before the payload (IPv4 options / IPv6 ext headers included).
    pub(crate) hdr_len: usize,
    /// Offset of the protocol / next-header byte that names the payload.
    pub(crate) nh_off: usize,
    /// Value of that byte.
    pub(crate) nh: u8,
    /// Packet length according to the IP header (<= buffer length).
    pub(crate) total_len: usize,
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
}

/// Parses an IPv4 header. `verify_csum` is for the receive path.
fn parse_v4(p: &[u8], verify_csum: bool) -> Result<L3> {
    let vihl = rd8(p, 0)?;
    let ihl = usize::from(vihl & 0x0f)
        .checked_mul(4)
        .ok_or(Error::BadIpHeader)?;
    if vihl >> 4 != 4 || ihl < IPV4_MIN_HDR {
        return Err(Error::BadIpHeader);
    }
    let hdr = p.get(..ihl).ok_or(Error::Truncated)?;
    let total = usize::from(rd16(p, 2)?);
    if total < ihl || total > p.len() {
        return Err(Error::BadLength);
    }
    if verify_csum && csum_fold(csum_add(0, hdr)) != 0 {
        return Err(Error::BadIpHeader);
    }
    let frag = rd16(p, 6)?;
    if frag & 0x3fff != 0 {
        return Err(Error::Fragmented);
    }
    Ok(L3 {
        v6: false,
        hdr_len: ihl,
        nh_off: 9,
        nh: rd8(p, 9)?,
        total_len: total,
        src: v4_addr(p, 12)?,
        dst: v4_addr(p, 16)?,
    })
}

fn v6_ext_len(p: &[u8], off: usize) -> Result<usize> {
    let l = usize::from(rd8(p, off.checked_add(1).ok_or(Error::Truncated)?)?);
    l.checked_add(1)
        .and_then(|x| x.checked_mul(8))
        .ok_or(Error::BadIpHeader)
}

fn parse_v6_fixed(p: &[u8]) -> Result<L3> {
    if rd8(p, 0)? >> 4 != 6 {
        return Err(Error::BadIpHeader);
    }
    if p.len() < IPV6_HDR {
        return Err(Error::Truncated);
    }
    let plen = usize::from(rd16(p, 4)?);
    if plen == 0 && rd8(p, 6)? == PROTO_HOPOPT {
        // Possibly a jumbogram (RFC 2675): not ours to handle.
        return Err(Error::Unsupported);
    }
    let total = plen.checked_add(IPV6_HDR).ok_or(Error::BadLength)?;
    if total > p.len() {
        return Err(Error::BadLength);
    }
    Ok(L3 {
        v6: true,
        hdr_len: IPV6_HDR,
        nh_off: 6,
        nh: rd8(p, 6)?,
        total_len: total,
        src: v6_addr(p, 8)?,
        dst: v6_addr(p, 24)?,
    })
}

/// Outbound transport mode: find where ESP goes. RFC 4303 §3.1.1 puts it
/// after hop-by-hop, routing and fragment headers; destination options may
/// go either side, and we keep them before ESP only when a routing header
/// follows (they are then meant for intermediate hops).
pub(crate) fn parse_for_output(p: &[u8]) -> Result<L3> {
    match rd8(p, 0)? >> 4 {
        4 => parse_v4(p, false),
        6 => {
            let mut l3 = parse_v6_fixed(p)?;
            loop {
                let off = l3.hdr_len;
                let advance = match l3.nh {
                    PROTO_HOPOPT => l3.nh_off == 6,
                    PROTO_ROUTING => true,
                    PROTO_DSTOPTS => rd8(p, off)? == PROTO_ROUTING,
                    // Fragmentation happens after IPsec on output.
                    PROTO_FRAGMENT => return Err(Error::Unsupported),
                    _ => false,
                };
                if !advance {
                    return Ok(l3);
                }
                let len = v6_ext_len(p, off)?;
                let end = off.checked_add(len).ok_or(Error::BadIpHeader)?;
                if end > l3.total_len {
                    return Err(Error::BadIpHeader);
                }
                l3.nh = rd8(p, off)?;
                l3.nh_off = off;
                l3.hdr_len = end;
            }
        }
        _ => Err(Error::BadIpHeader),
    }
}

/// Inbound: find the ESP (or UDP) header after IPv4 options / IPv6
/// extension headers.
pub(crate) fn parse_for_input(p: &[u8]) -> Result<L3> {
    match rd8(p, 0)? >> 4 {
        4 => parse_v4(p, true),
        6 => {
            let mut l3 = parse_v6_fixed(p)?;
            loop {
                let off = l3.hdr_len;
                match l3.nh {
                    PROTO_HOPOPT if l3.nh_off == 6 => {}
                    PROTO_ROUTING | PROTO_DSTOPTS => {}
                    PROTO_FRAGMENT => return Err(Error::Fragmented),
                    _ => return Ok(l3),
                }
                let len = v6_ext_len(p, off)?;
                let end = off.checked_add(len).ok_or(Error::BadIpHeader)?;
                if end > l3.total_len {
                    return Err(Error::BadIpHeader);
                }
                l3.nh = rd8(p, off)?;
                l3.nh_off = off;
                l3.hdr_len = end;
            }
        }
        _ => Err(Error::BadIpHeader),
    }
}

/// Minimal view of an inner packet for tunnel mode: IP version, its length
/// per header, and the DS field / DF bit to copy to the outer header.
pub(crate) struct Inner {
    pub(crate) v6: bool,
    pub(crate) len: usize,
    pub(crate) tos: u8,
    pub(crate) df: bool,
}

pub(crate) fn parse_inner(p: &[u8]) -> Result<Inner> {
    match rd8(p, 0)? >> 4 {
        4 => {
            if p.len() < IPV4_MIN_HDR {
                return Err(Error::Truncated);
            }
            let len = usize::from(rd16(p, 2)?);
            if len < IPV4_MIN_HDR || len > p.len() {
                return Err(Error::BadLength);
            }
            Ok(Inner {
                v6: false,
                len,
                tos: rd8(p, 1)?,
                df: rd16(p, 6)? & 0x4000 != 0,
            })
        }
        6 => {
            if p.len() < IPV6_HDR {
                return Err(Error::Truncated);
            }
            let plen = usize::from(rd16(p, 4)?);
            if plen == 0 && rd8(p, 6)? == PROTO_HOPOPT {
                return Err(Error::Unsupported);
            }
            let len = plen.checked_add(IPV6_HDR).ok_or(Error::BadLength)?;
            if len > p.len() {
                return Err(Error::BadLength);
            }
            let tc = (rd16(p, 0)? >> 4) as u8;
            Ok(Inner {
                v6: true,
                len,
                tos: tc,
                df: false,
            })
        }
        _ => Err(Error::BadIpHeader),
    }
}

/// After the payload of a packet changed: set the protocol byte, the
/// length field and (IPv4) the header checksum.
pub(crate) fn fix_header(p: &mut [u8], l3: &L3, new_total: usize, nh: u8) -> Result<()> {
    wr8(p, l3.nh_off, nh)?;
    if l3.v6 {
        let plen = new_total.checked_sub(IPV6_HDR).ok_or(Error::BadLength)?;
        wr16(p, 4, u16::try_from(plen).map_err(|_| Error::BadLength)?)
    } else {
        wr16(
            p,
            2,
            u16::try_from(new_total).map_err(|_| Error::BadLength)?,
        )?;
        let c = ipv4_header_checksum(p.get(..l3.hdr_len).ok_or(Error::Truncated)?);
        wr16(p, 10, c)
    }
}

/// Writes an outer IPv4 header (20 bytes, no options) at `p[..20]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_v4(
    p: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    total: usize,
    proto: u8,
    tos: u8,
    df: bool,
    id: u16,
    ttl: u8,
) -> Result<()> {
    let total = u16::try_from(total).map_err(|_| Error::BadLength)?;
    let h = p.get_mut(..IPV4_MIN_HDR).ok_or(Error::NoHeadroom)?;
    h.fill(0);
    wr8(h, 0, 0x45)?;
    wr8(h, 1, tos)?;
    wr16(h, 2, total)?;
    wr16(h, 4, id)?;
    wr16(h, 6, if df { 0x4000 } else { 0 })?;
    wr8(h, 8, ttl)?;
    wr8(h, 9, proto)?;
    wr(h, 12, &src.octets())?;
    wr(h, 16, &dst.octets())?;
    let c = ipv4_header_checksum(h);
    wr16(h, 10, c)
}

/// Writes an outer IPv6 header (40 bytes) at `p[..40]`.
pub(crate) fn write_v6(
    p: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    total: usize,
    nh: u8,
    tc: u8,
    hop_limit: u8,
) -> Result<()> {
    let plen = total.checked_sub(IPV6_HDR).ok_or(Error::BadLength)?;
    let plen = u16::try_from(plen).map_err(|_| Error::BadLength)?;
    let h = p.get_mut(..IPV6_HDR).ok_or(Error::NoHeadroom)?;
    let first = 0x6000_0000u32 | (u32::from(tc) << 20);
    wr32(h, 0, first)?;
    wr16(h, 4, plen)?;
    wr8(h, 6, nh)?;
    wr8(h, 7, hop_limit)?;
    wr(h, 8, &src.octets())?;
    wr(h, 24, &dst.octets())
}
