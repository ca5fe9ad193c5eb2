//! IKEv2 message and payload codec (RFC 7296 §3).
//!
//! Decoding is strict: every length field must agree exactly with its
//! container, nothing is indexed without a bounds check, and unknown payloads
//! are kept (non-critical) or rejected with the payload type (critical) so the
//! caller can answer UNSUPPORTED_CRITICAL_PAYLOAD. The SK payload is only
//! located here; [`crate::crypto::sk`] decrypts it and decodes the inner chain
//! with [`decode_chain`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consts::{
    id_type, payload, ts_type, FLAG_INITIATOR, FLAG_RESPONSE, IKEV2_VERSION, IKE_HEADER_LEN,
};
use crate::error::{Error, Result};

/// The fixed IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: u8,
    pub version: u8,
    pub exchange: u8,
    pub flags: u8,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    pub fn new(spi_i: u64, spi_r: u64, exchange: u8, flags: u8, message_id: u32) -> Self {
        Header {
            spi_i,
            spi_r,
            next_payload: payload::NONE,
            version: IKEV2_VERSION,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Sender is the original initiator of the IKE SA.
    pub fn from_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }

    pub fn decode(b: &[u8]) -> Result<Header> {
        let h = Header::decode_any_version(b).ok_or(Error::Truncated)?;
        if h.version >> 4 != 2 {
            return Err(Error::BadVersion(h.version));
        }
        Ok(h)
    }

    /// The header fields whatever the version says (to answer a message of
    /// another major version, §2.5). None when too short.
    pub fn decode_any_version(b: &[u8]) -> Option<Header> {
        let b: &[u8; IKE_HEADER_LEN] = b.get(..IKE_HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            spi_i: u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            spi_r: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            next_payload: b[16],
            version: b[17],
            exchange: b[18],
            flags: b[19],
            message_id: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
            length: u32::from_be_bytes([b[24], b[25], b[26], b[27]]),
        })
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// One transform inside a proposal. Only the Key Length attribute is known;
/// a transform with any other attribute is kept but flagged so that proposal
/// selection skips it (RFC 7296 §3.3.6: unknown attributes reject the transform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub ty: u8,
    pub id: u16,
    pub key_len: Option<u16>,
    pub unknown_attrs: bool,
}

impl Transform {
    pub fn new(ty: u8, id: u16, key_len: Option<u16>) -> Self {
        Transform { ty, id, key_len, unknown_attrs: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    KeyId(Vec<u8>),
}

impl Identity {
    /// The ID payload body after the generic header ("RestOfIDPayload" of
    /// §2.15, which is what the AUTH computation MACs).
    pub fn encode_body(&self) -> Vec<u8> {
        let (ty, data): (u8, Vec<u8>) = match self {
            Identity::Ipv4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
            Identity::Ipv6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
            Identity::Fqdn(s) => (id_type::FQDN, s.as_bytes().to_vec()),
            Identity::KeyId(k) => (id_type::KEY_ID, k.clone()),
        };
        let mut out = vec![ty, 0, 0, 0];
        out.extend_from_slice(&data);
        out
    }

    fn decode_body(b: &[u8]) -> Result<Identity> {
        let ty = *b.first().ok_or(Error::Truncated)?;
        let data = b.get(4..).ok_or(Error::Truncated)?;
        match ty {
            id_type::IPV4_ADDR => {
                let a: [u8; 4] = data.try_into().map_err(|_| Error::BadLength)?;
                Ok(Identity::Ipv4(a.into()))
            }
            id_type::IPV6_ADDR => {
                let a: [u8; 16] = data.try_into().map_err(|_| Error::BadLength)?;
                Ok(Identity::Ipv6(a.into()))
            }
            id_type::FQDN => {
                let s = std::str::from_utf8(data).map_err(|_| Error::Malformed("FQDN not UTF-8"))?;
                if s.is_empty() {
                    return Err(Error::Malformed("empty FQDN"));
                }
                Ok(Identity::Fqdn(s.to_owned()))
            }
            id_type::KEY_ID => Ok(Identity::KeyId(data.to_vec())),
            _ => Err(Error::Malformed("unsupported ID type")),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "{s}"),
            Identity::KeyId(k) => {
                write!(f, "keyid:")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// An address and port range selector (§3.13.1). Start and end address are
/// always of the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

impl TrafficSelector {
    /// Everything to and from one host.
    pub fn host(addr: IpAddr) -> Self {
        TrafficSelector { ip_proto: 0, start_port: 0, end_port: 65535, start_addr: addr, end_addr: addr }
    }

    /// A whole address range, all protocols and ports.
    pub fn range(start: IpAddr, end: IpAddr) -> Self {
        TrafficSelector { ip_proto: 0, start_port: 0, end_port: 65535, start_addr: start, end_addr: end }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub ty: u16,
    pub data: Vec<u8>,
}

impl Notify {
    pub fn new(ty: u16, data: Vec<u8>) -> Self {
        Notify { protocol: 0, spi: Vec::new(), ty, data }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: u8,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke { group: u16, data: Vec<u8> },
    IdI(Identity),
    IdR(Identity),
    Auth { method: u8, data: Vec<u8> },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// A non-critical payload this engine does not interpret.
    Unknown { ty: u8, body: Vec<u8> },
}

impl Payload {
    pub fn ty(&self) -> u8 {
        match self {
            Payload::Sa(_) => payload::SA,
            Payload::Ke { .. } => payload::KE,
            Payload::IdI(_) => payload::IDI,
            Payload::IdR(_) => payload::IDR,
            Payload::Auth { .. } => payload::AUTH,
            Payload::Nonce(_) => payload::NONCE,
            Payload::Notify(_) => payload::NOTIFY,
            Payload::Delete(_) => payload::DELETE,
            Payload::VendorId(_) => payload::VENDOR_ID,
            Payload::TsI(_) => payload::TSI,
            Payload::TsR(_) => payload::TSR,
            Payload::Unknown { ty, .. } => *ty,
        }
    }
}

/// Where the SK payload sits inside a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkLocation {
    /// Type of the first payload inside the encrypted data.
    pub first_inner: u8,
    /// Offset of the SK payload's generic header in the datagram.
    pub offset: usize,
}

/// A decoded datagram. Payloads before an SK payload are in `payloads`; the
/// protected ones are decoded after decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub sk: Option<SkLocation>,
}

/// Bounds-checked reader over a byte slice.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

impl Message {
    /// Decode a datagram (without non-ESP marker).
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let header = Header::decode(bytes)?;
        if header.length as usize != bytes.len() {
            return Err(Error::BadLength);
        }
        let body = bytes.get(IKE_HEADER_LEN..).ok_or(Error::Truncated)?;
        let (payloads, sk) = decode_chain_inner(header.next_payload, body, true)?;
        let sk = sk.map(|(first_inner, off)| SkLocation { first_inner, offset: off + IKE_HEADER_LEN });
        Ok(Message { header, payloads, sk })
    }

    pub fn notify(&self, ty: u16) -> Option<&Notify> {
        find_notify(&self.payloads, ty)
    }
}

pub fn find_notify(payloads: &[Payload], ty: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

/// Decode a chain of payloads (the inside of an SK payload).
pub fn decode_chain(first: u8, b: &[u8]) -> Result<Vec<Payload>> {
    decode_chain_inner(first, b, false).map(|(p, _)| p)
}

type Chain = (Vec<Payload>, Option<(u8, usize)>);

fn decode_chain_inner(first: u8, b: &[u8], allow_sk: bool) -> Result<Chain> {
    let mut r = Reader::new(b);
    let mut next = first;
    let mut out = Vec::new();
    let mut consumed = 0usize;
    while next != payload::NONE {
        let ty = next;
        next = r.u8()?;
        let critical = r.u8()? & 0x80 != 0;
        let len = r.u16()? as usize;
        let body = r.take(len.checked_sub(4).ok_or(Error::BadLength)?)?;
        if ty == payload::SK {
            // §3.14: SK must be the last payload; its Next Payload names the
            // first inner payload and its data runs to the end of the message.
            if !allow_sk || !r.is_empty() {
                return Err(Error::Malformed("SK payload not last"));
            }
            return Ok((out, Some((next, consumed))));
        }
        consumed += len;
        match decode_payload(ty, body)? {
            Some(p) => out.push(p),
            None if critical => return Err(Error::UnsupportedCriticalPayload(ty)),
            None => out.push(Payload::Unknown { ty, body: body.to_vec() }),
        }
    }
    if !r.is_empty() {
        return Err(Error::BadLength);
    }
    Ok((out, None))
}

fn decode_payload(ty: u8, b: &[u8]) -> Result<Option<Payload>> {
    let mut r = Reader::new(b);
    let p = match ty {
        payload::SA => Payload::Sa(decode_proposals(b)?),
        payload::KE => {
            let group = r.u16()?;
            r.take(2)?;
            let data = r.rest();
            if data.is_empty() {
                return Err(Error::Malformed("empty KE"));
            }
            Payload::Ke { group, data: data.to_vec() }
        }
        payload::IDI => Payload::IdI(Identity::decode_body(b)?),
        payload::IDR => Payload::IdR(Identity::decode_body(b)?),
        payload::AUTH => {
            let method = r.u8()?;
            r.take(3)?;
            Payload::Auth { method, data: r.rest().to_vec() }
        }
        payload::NONCE => {
            // §3.9: 16..=256 octets.
            if !(16..=256).contains(&b.len()) {
                return Err(Error::BadLength);
            }
            Payload::Nonce(b.to_vec())
        }
        payload::NOTIFY => {
            let protocol = r.u8()?;
            let spi_size = r.u8()?;
            let nty = r.u16()?;
            let spi = r.take(spi_size as usize)?.to_vec();
            Payload::Notify(Notify { protocol, spi, ty: nty, data: r.rest().to_vec() })
        }
        payload::DELETE => {
            let protocol = r.u8()?;
            let spi_size = r.u8()?;
            let n = r.u16()? as usize;
            let spis = (0..n)
                .map(|_| r.take(spi_size as usize).map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>>>()?;
            if !r.is_empty() {
                return Err(Error::BadLength);
            }
            Payload::Delete(Delete { protocol, spi_size, spis })
        }
        payload::VENDOR_ID => Payload::VendorId(b.to_vec()),
        payload::TSI => Payload::TsI(decode_ts(b)?),
        payload::TSR => Payload::TsR(decode_ts(b)?),
        _ => return Ok(None),
    };
    Ok(Some(p))
}

fn decode_proposals(b: &[u8]) -> Result<Vec<Proposal>> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    loop {
        let last = r.u8()?;
        r.u8()?;
        let len = r.u16()? as usize;
        let body = r.take(len.checked_sub(4).ok_or(Error::BadLength)?)?;
        let mut pr = Reader::new(body);
        let num = pr.u8()?;
        let protocol = pr.u8()?;
        let spi_size = pr.u8()?;
        let ntrans = pr.u8()?;
        let spi = pr.take(spi_size as usize)?.to_vec();
        let mut transforms = Vec::with_capacity(ntrans as usize);
        for i in 0..ntrans {
            let tlast = pr.u8()?;
            pr.u8()?;
            let tlen = pr.u16()? as usize;
            let tb = pr.take(tlen.checked_sub(4).ok_or(Error::BadLength)?)?;
            let expect_more = i + 1 < ntrans;
            if (tlast == 3) != expect_more || !(tlast == 0 || tlast == 3) {
                return Err(Error::Malformed("transform Last Substruc"));
            }
            transforms.push(decode_transform(tb)?);
        }
        if !pr.is_empty() {
            return Err(Error::BadLength);
        }
        out.push(Proposal { num, protocol, spi, transforms });
        match last {
            0 => break,
            2 => continue,
            _ => return Err(Error::Malformed("proposal Last Substruc")),
        }
    }
    if !r.is_empty() {
        return Err(Error::BadLength);
    }
    Ok(out)
}

fn decode_transform(b: &[u8]) -> Result<Transform> {
    let mut r = Reader::new(b);
    let ty = r.u8()?;
    r.u8()?;
    let id = r.u16()?;
    let mut t = Transform::new(ty, id, None);
    while !r.is_empty() {
        let at = r.u16()?;
        if at & 0x8000 != 0 {
            let v = r.u16()?;
            if at & 0x7fff == crate::consts::transform::ATTR_KEY_LENGTH && t.key_len.is_none() {
                t.key_len = Some(v);
            } else {
                t.unknown_attrs = true;
            }
        } else {
            let l = r.u16()? as usize;
            r.take(l)?;
            t.unknown_attrs = true;
        }
    }
    Ok(t)
}

fn decode_ts(b: &[u8]) -> Result<Vec<TrafficSelector>> {
    let mut r = Reader::new(b);
    let n = r.u8()?;
    r.take(3)?;
    if n == 0 {
        return Err(Error::Malformed("no traffic selectors"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ty = r.u8()?;
        let ip_proto = r.u8()?;
        let len = r.u16()? as usize;
        let body = r.take(len.checked_sub(4).ok_or(Error::BadLength)?)?;
        let mut tr = Reader::new(body);
        let start_port = tr.u16()?;
        let end_port = tr.u16()?;
        let alen = match ty {
            ts_type::IPV4_ADDR_RANGE => 4,
            ts_type::IPV6_ADDR_RANGE => 16,
            _ => return Err(Error::Malformed("unsupported TS type")),
        };
        let start = ip_from(tr.take(alen)?)?;
        let end = ip_from(tr.take(alen)?)?;
        if !tr.is_empty() {
            return Err(Error::BadLength);
        }
        out.push(TrafficSelector { ip_proto, start_port, end_port, start_addr: start, end_addr: end });
    }
    if !r.is_empty() {
        return Err(Error::BadLength);
    }
    Ok(out)
}

fn ip_from(b: &[u8]) -> Result<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).map(IpAddr::from).map_err(|_| Error::BadLength)
}

fn ip_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn encode_body(p: &Payload) -> Vec<u8> {
    let mut o = Vec::new();
    match p {
        Payload::Sa(props) => {
            for (i, pr) in props.iter().enumerate() {
                let mut body = vec![pr.num, pr.protocol, pr.spi.len() as u8, pr.transforms.len() as u8];
                body.extend_from_slice(&pr.spi);
                for (j, t) in pr.transforms.iter().enumerate() {
                    let mut tb = vec![t.ty, 0];
                    tb.extend_from_slice(&t.id.to_be_bytes());
                    if let Some(kl) = t.key_len {
                        tb.extend_from_slice(&(0x8000 | crate::consts::transform::ATTR_KEY_LENGTH).to_be_bytes());
                        tb.extend_from_slice(&kl.to_be_bytes());
                    }
                    let last = if j + 1 < pr.transforms.len() { 3 } else { 0 };
                    body.push(last);
                    body.push(0);
                    body.extend_from_slice(&((tb.len() + 4) as u16).to_be_bytes());
                    body.extend_from_slice(&tb);
                }
                o.push(if i + 1 < props.len() { 2 } else { 0 });
                o.push(0);
                o.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
                o.extend_from_slice(&body);
            }
        }
        Payload::Ke { group, data } => {
            o.extend_from_slice(&group.to_be_bytes());
            o.extend_from_slice(&[0, 0]);
            o.extend_from_slice(data);
        }
        Payload::IdI(id) | Payload::IdR(id) => o = id.encode_body(),
        Payload::Auth { method, data } => {
            o.extend_from_slice(&[*method, 0, 0, 0]);
            o.extend_from_slice(data);
        }
        Payload::Nonce(n) => o.extend_from_slice(n),
        Payload::Notify(n) => {
            o.push(n.protocol);
            o.push(n.spi.len() as u8);
            o.extend_from_slice(&n.ty.to_be_bytes());
            o.extend_from_slice(&n.spi);
            o.extend_from_slice(&n.data);
        }
        Payload::Delete(d) => {
            o.push(d.protocol);
            o.push(d.spi_size);
            o.extend_from_slice(&(d.spis.len() as u16).to_be_bytes());
            for s in &d.spis {
                o.extend_from_slice(s);
            }
        }
        Payload::VendorId(v) => o.extend_from_slice(v),
        Payload::TsI(ts) | Payload::TsR(ts) => {
            o.extend_from_slice(&[ts.len() as u8, 0, 0, 0]);
            for t in ts {
                let (ty, len) = match t.start_addr {
                    IpAddr::V4(_) => (ts_type::IPV4_ADDR_RANGE, 16u16),
                    IpAddr::V6(_) => (ts_type::IPV6_ADDR_RANGE, 40u16),
                };
                o.push(ty);
                o.push(t.ip_proto);
                o.extend_from_slice(&len.to_be_bytes());
                o.extend_from_slice(&t.start_port.to_be_bytes());
                o.extend_from_slice(&t.end_port.to_be_bytes());
                o.extend_from_slice(&ip_bytes(&t.start_addr));
                o.extend_from_slice(&ip_bytes(&t.end_addr));
            }
        }
        Payload::Unknown { body, .. } => o.extend_from_slice(body),
    }
    o
}

/// Encode a payload chain. Returns the type of the first payload (for the
/// preceding Next Payload field) and the bytes.
pub fn encode_chain(payloads: &[Payload]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(payload::NONE, Payload::ty);
        let body = encode_body(p);
        out.push(next);
        out.push(0);
        out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    (payloads.first().map_or(payload::NONE, Payload::ty), out)
}

/// Encode an unprotected message; the header's next payload and length are
/// filled in.
pub fn encode_plain(header: &Header, payloads: &[Payload]) -> Vec<u8> {
    let (first, body) = encode_chain(payloads);
    let mut h = *header;
    h.next_payload = first;
    h.length = (IKE_HEADER_LEN + body.len()) as u32;
    let mut out = Vec::with_capacity(h.length as usize);
    h.encode_into(&mut out);
    out.extend_from_slice(&body);
    out
}

/// RFC 3948 non-ESP marker carried before IKE messages on the NAT-T port.
pub const NON_ESP_MARKER: [u8; 4] = [0, 0, 0, 0];

/// What a datagram received on the NAT-T port (4500) is, per RFC 3948 §2.2:
/// a single 0xff byte is a NAT keepalive, four zero bytes introduce IKE,
/// anything else starts with a non-zero ESP SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NattDatagram<'a> {
    Keepalive,
    Ike(&'a [u8]),
    Esp(&'a [u8]),
    Invalid,
}

/// Classify a UDP payload received on the NAT-T port. The daemon uses this
/// when it owns the port-4500 socket itself; [`crate::Engine::handle_datagram`]
/// applies the same rule when called with a local port equal to the
/// connection's NAT-T port.
pub fn classify_natt(b: &[u8]) -> NattDatagram<'_> {
    match b {
        [0xff] => NattDatagram::Keepalive,
        [0, 0, 0, 0, rest @ ..] => NattDatagram::Ike(rest),
        [_, _, _, _, ..] => NattDatagram::Esp(b),
        _ => NattDatagram::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{exchange, notify, protocol, transform};

    fn sample() -> Vec<Payload> {
        vec![
            Payload::Sa(vec![
                Proposal {
                    num: 1,
                    protocol: protocol::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform::new(transform::ENCR, transform::ENCR_AES_GCM_16, Some(256)),
                        Transform::new(transform::PRF, transform::PRF_HMAC_SHA2_256, None),
                        Transform::new(transform::DH, transform::DH_CURVE25519, None),
                    ],
                },
                Proposal {
                    num: 2,
                    protocol: protocol::ESP,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![Transform::new(transform::ESN, 0, None)],
                },
            ]),
            Payload::Ke { group: 31, data: vec![7; 32] },
            Payload::Nonce(vec![9; 32]),
            Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, vec![1; 20])),
            Payload::Notify(Notify { protocol: 3, spi: vec![0, 0, 1, 0], ty: notify::REKEY_SA, data: vec![] }),
            Payload::IdI(Identity::Fqdn("pkgA.example".into())),
            Payload::IdR(Identity::Ipv6("2001:db8::1".parse().unwrap())),
            Payload::IdR(Identity::Ipv4("192.0.2.1".parse().unwrap())),
            Payload::IdR(Identity::KeyId(vec![1, 2])),
            Payload::Auth { method: 2, data: vec![3; 32] },
            Payload::Delete(Delete { protocol: 3, spi_size: 4, spis: vec![vec![0, 0, 1, 1], vec![0, 0, 2, 2]] }),
            Payload::Delete(Delete { protocol: 1, spi_size: 0, spis: vec![] }),
            Payload::VendorId(b"ripsec".to_vec()),
            Payload::TsI(vec![TrafficSelector::host("192.0.2.1".parse().unwrap())]),
            Payload::TsR(vec![TrafficSelector {
                ip_proto: 17,
                start_port: 500,
                end_port: 500,
                start_addr: "2001:db8::".parse().unwrap(),
                end_addr: "2001:db8::ffff".parse().unwrap(),
            }]),
            Payload::Unknown { ty: 200, body: vec![1, 2, 3] },
        ]
    }

    #[test]
    fn round_trip_all_payloads() {
        let h = Header::new(1, 2, exchange::IKE_AUTH, FLAG_INITIATOR, 7);
        let bytes = encode_plain(&h, &sample());
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.payloads, sample());
        assert_eq!(m.header.spi_i, 1);
        assert_eq!(m.header.spi_r, 2);
        assert_eq!(m.header.message_id, 7);
        assert_eq!(m.header.exchange, exchange::IKE_AUTH);
        assert!(m.header.from_initiator());
        assert!(!m.header.is_response());
        assert!(m.sk.is_none());
        // Re-encoding the decoded message gives identical bytes.
        assert_eq!(encode_plain(&m.header, &m.payloads), bytes);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let h = Header::new(1, 2, exchange::IKE_AUTH, 0, 7);
        let bytes = encode_plain(&h, &sample());
        for n in 0..bytes.len() {
            assert!(Message::decode(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn length_field_must_match() {
        let h = Header::new(1, 2, exchange::INFORMATIONAL, 0, 0);
        let mut bytes = encode_plain(&h, &[Payload::Nonce(vec![1; 16])]);
        bytes.push(0);
        assert_eq!(Message::decode(&bytes), Err(Error::BadLength));
    }

    #[test]
    fn critical_unknown_payload_is_reported() {
        let h = Header::new(1, 2, exchange::INFORMATIONAL, 0, 0);
        let mut bytes = encode_plain(&h, &[Payload::Unknown { ty: 201, body: vec![0; 4] }]);
        bytes[IKE_HEADER_LEN + 1] = 0x80;
        assert_eq!(Message::decode(&bytes), Err(Error::UnsupportedCriticalPayload(201)));
    }

    #[test]
    fn bad_version_rejected() {
        let h = Header::new(1, 2, exchange::INFORMATIONAL, 0, 0);
        let mut bytes = encode_plain(&h, &[]);
        bytes[17] = 0x30;
        assert_eq!(Message::decode(&bytes), Err(Error::BadVersion(0x30)));
    }

    #[test]
    fn sk_must_be_last_and_is_located() {
        let h = Header::new(1, 2, exchange::INFORMATIONAL, 0, 0);
        let mut bytes = encode_plain(&h, &[Payload::Unknown { ty: payload::SK, body: vec![0; 24] }]);
        // Inner first payload type in SK's Next Payload field.
        bytes[IKE_HEADER_LEN] = payload::NOTIFY;
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.sk, Some(SkLocation { first_inner: payload::NOTIFY, offset: IKE_HEADER_LEN }));
        let bad = encode_plain(
            &h,
            &[Payload::Unknown { ty: payload::SK, body: vec![0; 24] }, Payload::Nonce(vec![0; 16])],
        );
        assert!(Message::decode(&bad).is_err());
    }

    #[test]
    fn natt_classification() {
        assert_eq!(classify_natt(&[0xff]), NattDatagram::Keepalive);
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1]), NattDatagram::Ike(&[1]));
        assert_eq!(classify_natt(&[0, 0, 1, 0, 1]), NattDatagram::Esp(&[0, 0, 1, 0, 1]));
        assert_eq!(classify_natt(&[1]), NattDatagram::Invalid);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = Message::decode(&b);
            let _ = decode_chain(33, &b);
        }

        #[test]
        fn decode_never_panics_with_valid_header(
            first in 0u8..60,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let mut h = Header::new(1, 2, exchange::IKE_AUTH, 0, 0);
            h.next_payload = first;
            h.length = (IKE_HEADER_LEN + body.len()) as u32;
            let mut b = Vec::new();
            h.encode_into(&mut b);
            b.extend_from_slice(&body);
            let _ = Message::decode(&b);
        }
    }
}
