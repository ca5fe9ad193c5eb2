//! ESP framing (RFC 4303): building and taking apart the ESP header,
//! trailer and ICV in place, in transport and tunnel mode, raw or inside
//! UDP (RFC 3948).
//!
//! Everything works on a [`PacketBuf`]: a window `[start, start+len)` of a
//! larger buffer, so headers are prepended into headroom and the trailer is
//! appended into tailroom without copying the payload. The kernel maps an
//! skb onto it (`head..end` as the buffer, `data - head` as start) and
//! applies the new start/len with `skb_push`/`skb_pull`/`skb_put`/trim.

use core::net::IpAddr;

use crate::aead::{Aead, ICV_LEN, IV_LEN};
use crate::cipher::EspCipher;
use crate::ip::{
    self, fix_header, parse_for_input, parse_for_output, parse_inner, rd32, rd8, wr, wr32,
    IPV4_MIN_HDR, IPV6_HDR, L3, PROTO_ESP, PROTO_IPIP, PROTO_IPV6, PROTO_NONE, PROTO_UDP,
};
use crate::sa::SaConfig;
use crate::udp_encap::{classify_udp, parse_udp, write_udp, UdpClass, MIN_ESP_LEN, UDP_HDR_LEN};
use crate::{Error, Result};

/// Length of the ESP header (SPI + sequence number).
pub const ESP_HDR_LEN: usize = 8;

/// SA mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ESP inserted after the IP header of the original packet.
    Transport,
    /// The whole packet is encapsulated behind a new outer header with
    /// these endpoints (both of the same family).
    Tunnel {
        /// Outer source address.
        src: IpAddr,
        /// Outer destination address.
        dst: IpAddr,
    },
}

/// Outer encapsulation of ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// Raw ESP (IP protocol 50).
    None,
    /// ESP-in-UDP (RFC 3948) with these ports on the outbound side.
    Udp {
        /// UDP source port.
        sport: u16,
        /// UDP destination port (normally 4500).
        dport: u16,
    },
}

/// A packet inside a larger buffer with head- and tailroom.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> PacketBuf<'a> {
    /// Packet occupies `buf[start..start + len]`.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Result<Self> {
        match start.checked_add(len) {
            Some(end) if end <= buf.len() => Ok(PacketBuf { buf, start, len }),
            _ => Err(Error::BadLength),
        }
    }

    /// Offset of the first packet byte in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Packet length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes before the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf
            .len()
            .saturating_sub(self.start.saturating_add(self.len))
    }

    /// The packet bytes.
    pub fn data(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start.saturating_add(self.len))
            .unwrap_or(&[])
    }

    /// The packet bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.start.saturating_add(self.len);
        self.buf.get_mut(self.start..end).unwrap_or(&mut [])
    }
}

/// Moves `len` bytes from `src` to `dst` inside `buf` (ranges may overlap).
fn move_within(buf: &mut [u8], src: usize, len: usize, dst: usize) -> Result<()> {
    let src_end = src.checked_add(len).ok_or(Error::BadLength)?;
    let dst_end = dst.checked_add(len).ok_or(Error::BadLength)?;
    if src_end > buf.len() || dst_end > buf.len() {
        return Err(Error::BadLength);
    }
    buf.copy_within(src..src_end, dst);
    Ok(())
}

fn add(a: usize, b: usize) -> Result<usize> {
    a.checked_add(b).ok_or(Error::BadLength)
}

fn range_mut(buf: &mut [u8], off: usize, len: usize) -> Result<&mut [u8]> {
    let end = off.checked_add(len).ok_or(Error::BadLength)?;
    buf.get_mut(off..end).ok_or(Error::BadLength)
}

/// The result of parsing the outer headers of a received ESP packet: what
/// the SA lookup needs (SPI, destination) plus where things are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundEsp {
    /// SPI from the ESP header (non-zero).
    pub spi: u32,
    /// Low 32 bits of the sequence number from the ESP header.
    pub seq_lo: u32,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// `(source port, destination port)` when UDP-encapsulated.
    pub udp: Option<(u16, u16)>,
    v6: bool,
    hdr_len: usize,
    nh_off: usize,
    total_len: usize,
    esp_off: usize,
}

/// Parses a received packet that starts with its outer IP header: IPv4
/// (options allowed, checksum verified) or IPv6 (hop-by-hop, routing and
/// destination options headers skipped), then raw ESP or UDP-encapsulated
/// ESP. IKE and keepalive payloads inside UDP are reported as
/// [`Error::IkeMarker`] / [`Error::NatKeepalive`].
pub fn parse_inbound(pkt: &PacketBuf<'_>) -> Result<InboundEsp> {
    let p = pkt.data();
    let l3 = parse_for_input(p)?;
    let p = p.get(..l3.total_len).ok_or(Error::BadLength)?;
    let (udp, esp_off) = match l3.nh {
        PROTO_ESP => (None, l3.hdr_len),
        PROTO_UDP => {
            let seg = p.get(l3.hdr_len..).ok_or(Error::Truncated)?;
            let u = parse_udp(seg, &l3.src, &l3.dst)?;
            match classify_udp(seg.get(UDP_HDR_LEN..).ok_or(Error::Truncated)?)? {
                UdpClass::Ike => return Err(Error::IkeMarker),
                UdpClass::Keepalive => return Err(Error::NatKeepalive),
                UdpClass::Esp { .. } => {}
            }
            let off = l3
                .hdr_len
                .checked_add(UDP_HDR_LEN)
                .ok_or(Error::BadLength)?;
            (Some((u.sport, u.dport)), off)
        }
        _ => return Err(Error::NotEsp),
    };
    let esp_len = l3.total_len.checked_sub(esp_off).ok_or(Error::Truncated)?;
    if esp_len < MIN_ESP_LEN {
        return Err(Error::Truncated);
    }
    let spi = rd32(p, esp_off)?;
    if spi == 0 {
        return Err(Error::BadSpi);
    }
    Ok(InboundEsp {
        spi,
        seq_lo: rd32(p, esp_off.checked_add(4).ok_or(Error::Truncated)?)?,
        src: l3.src,
        dst: l3.dst,
        udp,
        v6: l3.v6,
        hdr_len: l3.hdr_len,
        nh_off: l3.nh_off,
        total_len: l3.total_len,
        esp_off,
    })
}

/// What decapsulation produced, besides the rewritten packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    /// Next header from the ESP trailer (4 / 41 in tunnel mode).
    pub next_header: u8,
    /// Full (ESN-expanded) sequence number that was authenticated.
    pub seq: u64,
    /// Outer source address (for NAT-T peer address change detection).
    pub outer_src: IpAddr,
    /// Outer destination address.
    pub outer_dst: IpAddr,
    /// UDP ports if the packet was UDP-encapsulated.
    pub udp: Option<(u16, u16)>,
    /// Bytes of payload (before TFC trimming) that were decrypted.
    pub payload_len: usize,
}

/// The immutable, per-SA part of ESP: keys and framing parameters.
/// Shareable between CPUs without locking: all methods take `&self`.
#[derive(Debug)]
pub struct EspTransform {
    aead: Aead,
    spi: u32,
    mode: Mode,
    encap: Encap,
    esn: bool,
    tfc_pad: u16,
    ttl: u8,
}

/// Pad length so that `payload ‖ pad ‖ padlen ‖ nh` is a multiple of 4
/// (RFC 4106 §3.2: GCM is a stream mode, only 4-byte alignment matters).
fn pad_len(payload: usize) -> usize {
    let r = payload.wrapping_add(2) & 3;
    4usize.wrapping_sub(r) & 3
}

impl EspTransform {
    /// Builds the transform of an SA; checks key length and that tunnel
    /// endpoints share one address family.
    pub fn new(cfg: &SaConfig<'_>) -> Result<Self> {
        if cfg.spi == 0 {
            return Err(Error::BadSpi);
        }
        if let Mode::Tunnel { src, dst } = cfg.mode {
            if src.is_ipv4() != dst.is_ipv4() {
                return Err(Error::FamilyMismatch);
            }
        }
        Ok(EspTransform {
            aead: Aead::new(cfg.alg, cfg.keymat)?,
            spi: cfg.spi,
            mode: cfg.mode,
            encap: cfg.encap,
            esn: cfg.esn,
            tfc_pad: cfg.tfc_pad,
            ttl: cfg.ttl,
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The encapsulation.
    pub fn encap(&self) -> Encap {
        self.encap
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    fn udp_len(&self) -> usize {
        match self.encap {
            Encap::None => 0,
            Encap::Udp { .. } => UDP_HDR_LEN,
        }
    }

    /// Headroom [`encapsulate`](Self::encapsulate) needs in front of the packet.
    pub fn headroom_needed(&self) -> usize {
        let outer = match self.mode {
            Mode::Transport => 0,
            Mode::Tunnel {
                src: IpAddr::V4(_), ..
            } => IPV4_MIN_HDR,
            Mode::Tunnel { .. } => IPV6_HDR,
        };
        outer
            .saturating_add(self.udp_len())
            .saturating_add(ESP_HDR_LEN + IV_LEN)
    }

    /// Tailroom [`encapsulate`](Self::encapsulate) needs after a packet of
    /// `len` bytes (TFC padding, ESP padding, trailer, ICV).
    pub fn tailroom_needed(&self, len: usize) -> usize {
        let tfc = self.tfc_len(len);
        let payload = len.saturating_add(tfc);
        tfc.saturating_add(pad_len(payload))
            .saturating_add(2 + ICV_LEN)
    }

    fn tfc_len(&self, len: usize) -> usize {
        match self.mode {
            Mode::Tunnel { .. } => usize::from(self.tfc_pad).saturating_sub(len),
            Mode::Transport => 0,
        }
    }

    /// Encapsulates `pkt` with sequence number `seq` (used as the IV too,
    /// so it must come from this SA's [`SeqCounter`](crate::SeqCounter)).
    ///
    /// Transport mode: `pkt` is a full IP packet; ESP is inserted after its
    /// header. Tunnel mode: `pkt` is the inner IP packet; the outer header
    /// is prepended. On success `pkt` covers the ESP packet.
    #[inline(never)]
    pub fn encapsulate(&self, pkt: &mut PacketBuf<'_>, seq: u64) -> Result<()> {
        self.encapsulate_with_iv(pkt, seq, seq.to_be_bytes())
    }

    /// As [`encapsulate`](Self::encapsulate) with an explicit IV, for
    /// known-answer tests. The IV must never repeat under one key.
    pub fn encapsulate_with_iv(
        &self,
        pkt: &mut PacketBuf<'_>,
        seq: u64,
        iv: [u8; IV_LEN],
    ) -> Result<()> {
        self.encapsulate_using(pkt, seq, iv, None)
    }

    /// As [`encapsulate_with_iv`](Self::encapsulate_with_iv), protecting
    /// the packet with `cipher` (keyed with this SA's key) instead of the
    /// built-in AEAD when given.
    #[inline(never)]
    pub fn encapsulate_using(
        &self,
        pkt: &mut PacketBuf<'_>,
        seq: u64,
        iv: [u8; IV_LEN],
        cipher: Option<&dyn EspCipher>,
    ) -> Result<()> {
        if seq == 0 || (!self.esn && seq > u64::from(u32::MAX)) {
            return Err(Error::SeqWouldWrap);
        }
        let seq_lo = seq as u32;
        let seq_hi = (seq >> 32) as u32;
        let udp = self.udp_len();
        let start = pkt.start;
        let len = pkt.len;

        // Header room in front of the payload, the IP header we keep or
        // write (length and location), and the ESP next-header value.
        let (l3, outer_len, nh, payload_len, tfc, inner_tos_df) = match self.mode {
            Mode::Transport => {
                let l3 = parse_for_output(pkt.data())?;
                if l3.total_len != len {
                    return Err(Error::BadLength);
                }
                // In the ESP trailer 59 marks a dummy packet the receiver
                // drops; refuse rather than send something that vanishes.
                if l3.nh == PROTO_NONE {
                    return Err(Error::BadNextHeader);
                }
                let payload = len.checked_sub(l3.hdr_len).ok_or(Error::BadLength)?;
                (Some(l3), l3.hdr_len, l3.nh, payload, 0, (0, false))
            }
            Mode::Tunnel { src, .. } => {
                let inner = parse_inner(pkt.data())?;
                if inner.len != len {
                    return Err(Error::BadLength);
                }
                let outer = if src.is_ipv4() {
                    IPV4_MIN_HDR
                } else {
                    IPV6_HDR
                };
                let nh = if inner.v6 { PROTO_IPV6 } else { PROTO_IPIP };
                let tfc = self.tfc_len(len);
                let payload = len.checked_add(tfc).ok_or(Error::BadLength)?;
                (None, outer, nh, payload, tfc, (inner.tos, inner.df))
            }
        };
        let pad = pad_len(payload_len);
        let enc_len = payload_len
            .checked_add(pad)
            .and_then(|x| x.checked_add(2))
            .ok_or(Error::BadLength)?;
        let tail_needed = tfc
            .checked_add(pad)
            .and_then(|x| x.checked_add(2 + ICV_LEN))
            .ok_or(Error::BadLength)?;
        if pkt.tailroom() < tail_needed {
            return Err(Error::NoTailroom);
        }
        // Transport mode moves the kept header forward by this much; tunnel
        // mode writes a new header of outer_len in front of it.
        let shift = add(udp, ESP_HDR_LEN + IV_LEN)?;
        let head_needed = match self.mode {
            Mode::Transport => shift,
            Mode::Tunnel { .. } => shift.checked_add(outer_len).ok_or(Error::BadLength)?,
        };
        let new_start = start.checked_sub(head_needed).ok_or(Error::NoHeadroom)?;
        let new_total = outer_len
            .checked_add(shift)
            .and_then(|x| x.checked_add(enc_len))
            .and_then(|x| x.checked_add(ICV_LEN))
            .ok_or(Error::BadLength)?;
        if new_total > usize::from(u16::MAX) {
            return Err(Error::BadLength);
        }
        let buf = &mut *pkt.buf;
        if l3.is_some() {
            move_within(buf, start, outer_len, new_start)?;
        }
        let esp_off = new_start
            .checked_add(outer_len)
            .and_then(|x| x.checked_add(udp))
            .ok_or(Error::BadLength)?;

        // Trailer: TFC zeros (tunnel), pad 1, 2, 3..., pad length, next header.
        let trailer_off = start.checked_add(len).ok_or(Error::BadLength)?;
        let t = range_mut(buf, trailer_off, tail_needed)?;
        let mut i = 0usize;
        for b in t.iter_mut().take(tfc) {
            *b = 0;
            i = i.wrapping_add(1);
        }
        for (k, b) in t.iter_mut().skip(tfc).take(pad).enumerate() {
            *b = (k as u8).wrapping_add(1);
            i = i.wrapping_add(1);
        }
        wr(t, i, &[pad as u8, nh])?;

        wr32(buf, esp_off, self.spi)?;
        wr32(buf, add(esp_off, 4)?, seq_lo)?;
        wr(buf, add(esp_off, ESP_HDR_LEN)?, &iv)?;
        cipher
            .unwrap_or(&self.aead)
            .seal(buf, esp_off, enc_len, self.esn.then_some(seq_hi))?;

        let proto = if udp != 0 { PROTO_UDP } else { PROTO_ESP };
        let pkt_bytes = range_mut(buf, new_start, new_total)?;
        let (src, dst) = match (self.mode, l3) {
            (Mode::Transport, Some(l3)) => {
                fix_header(pkt_bytes, &l3, new_total, proto)?;
                (l3.src, l3.dst)
            }
            (Mode::Tunnel { src, dst }, _) => {
                let (tos, df) = inner_tos_df;
                match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        // The ID only has to be unique per (src, dst, proto)
                        // for non-atomic datagrams; the low sequence bits are.
                        ip::write_v4(
                            pkt_bytes, s, d, new_total, proto, tos, df, seq as u16, self.ttl,
                        )?
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        ip::write_v6(pkt_bytes, s, d, new_total, proto, tos, self.ttl)?
                    }
                    _ => return Err(Error::FamilyMismatch),
                }
                (src, dst)
            }
            (Mode::Transport, None) => return Err(Error::BadConfig),
        };
        if let Encap::Udp { sport, dport } = self.encap {
            let seg = pkt_bytes.get_mut(outer_len..).ok_or(Error::BadLength)?;
            let v6 = if src.is_ipv6() {
                Some((&src, &dst))
            } else {
                None
            };
            write_udp(seg, sport, dport, v6)?;
        }
        pkt.start = new_start;
        pkt.len = new_total;
        Ok(())
    }

    /// Verifies and decrypts a packet parsed by [`parse_inbound`], whose
    /// full sequence number `seq` came from
    /// [`ReplayWindow::check`](crate::ReplayWindow::check). Does not touch
    /// the replay window: commit `seq` only after this returns `Ok`.
    ///
    /// Tunnel mode: on success `pkt` covers the inner packet (TFC padding
    /// trimmed). Transport mode: `pkt` is the original packet with the
    /// protocol field restored and lengths/checksum fixed.
    pub fn decapsulate(
        &self,
        pkt: &mut PacketBuf<'_>,
        info: &InboundEsp,
        seq: u64,
    ) -> Result<Decapsulated> {
        self.decapsulate_using(pkt, info, seq, None)
    }

    /// As [`decapsulate`](Self::decapsulate), verifying and decrypting
    /// with `cipher` (keyed with this SA's key) instead of the built-in
    /// AEAD when given.
    #[inline(never)]
    pub fn decapsulate_using(
        &self,
        pkt: &mut PacketBuf<'_>,
        info: &InboundEsp,
        seq: u64,
        cipher: Option<&dyn EspCipher>,
    ) -> Result<Decapsulated> {
        if info.spi != self.spi {
            return Err(Error::UnknownSpi);
        }
        match (self.encap, info.udp) {
            (Encap::None, None) | (Encap::Udp { .. }, Some(_)) => {}
            _ => return Err(Error::EncapMismatch),
        }
        if seq as u32 != info.seq_lo || (!self.esn && seq >> 32 != 0) {
            return Err(Error::BadConfig);
        }
        if info.total_len > pkt.len {
            return Err(Error::BadLength);
        }
        let start = pkt.start;
        let esp_abs = start.checked_add(info.esp_off).ok_or(Error::BadLength)?;
        let esp_len = info
            .total_len
            .checked_sub(info.esp_off)
            .ok_or(Error::BadLength)?;
        let ct_len = esp_len
            .checked_sub(ESP_HDR_LEN + IV_LEN + ICV_LEN)
            .ok_or(Error::Truncated)?;
        if ct_len < 4 || ct_len % 4 != 0 {
            return Err(Error::BadLength);
        }
        let buf = &mut *pkt.buf;
        let ct_off = add(esp_abs, ESP_HDR_LEN + IV_LEN)?;
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        cipher.unwrap_or(&self.aead).open(buf, esp_abs, ct_len, seq_hi)?;
        let ct = range_mut(buf, ct_off, ct_len)?;

        let nh_pos = ct_len.checked_sub(1).ok_or(Error::BadLength)?;
        let nh = rd8(ct, nh_pos)?;
        let pad = usize::from(rd8(ct, nh_pos.checked_sub(1).ok_or(Error::BadLength)?)?);
        let payload_len = ct_len
            .checked_sub(2)
            .and_then(|x| x.checked_sub(pad))
            .ok_or(Error::BadPadding)?;
        let pad_bytes = ct
            .get(payload_len..payload_len.saturating_add(pad))
            .ok_or(Error::BadPadding)?;
        for (k, b) in pad_bytes.iter().enumerate() {
            if usize::from(*b) != k.wrapping_add(1) {
                return Err(Error::BadPadding);
            }
        }
        if nh == PROTO_NONE {
            return Err(Error::DummyPacket);
        }
        match self.mode {
            Mode::Tunnel { .. } => {
                if nh != PROTO_IPIP && nh != PROTO_IPV6 {
                    return Err(Error::BadNextHeader);
                }
                let inner_bytes = ct.get(..payload_len).ok_or(Error::BadLength)?;
                let inner = parse_inner(inner_bytes)?;
                if inner.v6 != (nh == PROTO_IPV6) {
                    return Err(Error::BadNextHeader);
                }
                pkt.start = ct_off;
                pkt.len = inner.len;
            }
            Mode::Transport => {
                let udp = info
                    .esp_off
                    .checked_sub(info.hdr_len)
                    .ok_or(Error::BadLength)?;
                let shift = add(udp, ESP_HDR_LEN + IV_LEN)?;
                let new_start = start.checked_add(shift).ok_or(Error::BadLength)?;
                move_within(buf, start, info.hdr_len, new_start)?;
                let new_total = info
                    .hdr_len
                    .checked_add(payload_len)
                    .ok_or(Error::BadLength)?;
                let l3 = L3 {
                    v6: info.v6,
                    hdr_len: info.hdr_len,
                    nh_off: info.nh_off,
                    nh,
                    total_len: new_total,
                    src: info.src,
                    dst: info.dst,
                };
                fix_header(range_mut(buf, new_start, new_total)?, &l3, new_total, nh)?;
                pkt.start = new_start;
                pkt.len = new_total;
            }
        }
        Ok(Decapsulated {
            next_header: nh,
            seq,
            outer_src: info.src,
            outer_dst: info.dst,
            udp: info.udp,
            payload_len,
        })
    }
}
