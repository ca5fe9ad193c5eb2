//! A small synchronous generic netlink client for the `rust_ipsec` family:
//! family resolution through the controller, one request, its replies.

use std::fmt;
use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_packet_utils::nla::{DefaultNla, Nla, NlaBuffer, NlasIterator};
use netlink_packet_utils::{DecodeError, Emitable, Parseable, ParseableParametrized};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::abi;

/// Why a request to the module failed. Each kind maps to one CLI exit code.
#[derive(Debug)]
pub enum Error {
    /// The generic netlink family is not registered: the module is not loaded.
    ModuleNotLoaded,
    /// The kernel refused the caller (CAP_NET_ADMIN missing).
    PermissionDenied,
    /// The kernel answered with another errno and, usually, an extended-ack message.
    Kernel(i32, Option<String>),
    /// Socket-level failure.
    Io(io::Error),
    /// The reply did not parse.
    Malformed(String),
    /// The command line asked for something impossible.
    Usage(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ModuleNotLoaded => write!(
                f,
                "the rust_ipsec kernel module is not loaded (generic netlink family \
                 \"{}\" not found); load it with: insmod rust_ipsec.ko",
                abi::GENL_NAME
            ),
            Error::PermissionDenied => {
                write!(f, "permission denied: talking to rust_ipsec needs CAP_NET_ADMIN")
            }
            Error::Kernel(errno, msg) => {
                let e = io::Error::from_raw_os_error(*errno);
                match msg {
                    Some(m) => write!(f, "rust_ipsec refused the request: {m} ({e})"),
                    None => write!(f, "rust_ipsec refused the request: {e}"),
                }
            }
            Error::Io(e) => write!(f, "netlink socket error: {e}"),
            Error::Malformed(m) => write!(f, "malformed reply from rust_ipsec: {m}"),
            Error::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// One message of the `rust_ipsec` family: a command and its attributes.
#[derive(Debug, Clone)]
pub struct RipsecMsg {
    pub cmd: u8,
    pub attrs: Vec<DefaultNla>,
}

impl GenlFamily for RipsecMsg {
    fn family_name() -> &'static str {
        abi::GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        abi::GENL_VERSION
    }
}

impl Emitable for RipsecMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for RipsecMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(RipsecMsg { cmd: header.cmd, attrs: parse_attrs(buf)? })
    }
}

/// Parses a run of attributes (a message body or a nested attribute's value).
pub fn parse_attrs(buf: &[u8]) -> Result<Vec<DefaultNla>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|b: NlaBuffer<&[u8]>| DefaultNla::parse(&b)))
        .collect()
}

/// The attribute type without the NESTED / NET_BYTEORDER flags, which
/// `DefaultNla` keeps in its kind.
pub fn attr_kind(nla: &DefaultNla) -> u16 {
    nla.kind() & netlink_packet_utils::nla::NLA_TYPE_MASK
}

/// Reads an attribute value as a native-endian u64.
pub fn attr_u64(nla: &DefaultNla) -> Result<u64, Error> {
    let mut v = vec![0u8; nla.value_len()];
    nla.emit_value(&mut v);
    let bytes: [u8; 8] =
        v.as_slice().try_into().map_err(|_| Error::Malformed(format!("attribute {} is not a u64", nla.kind())))?;
    Ok(u64::from_ne_bytes(bytes))
}

/// Reads an attribute value as a NUL-terminated string.
pub fn attr_string(nla: &DefaultNla) -> Result<String, Error> {
    let mut v = vec![0u8; nla.value_len()];
    nla.emit_value(&mut v);
    if v.last() == Some(&0) {
        v.pop();
    }
    String::from_utf8(v).map_err(|_| Error::Malformed(format!("attribute {} is not UTF-8", nla.kind())))
}

/// Attribute builders for requests.
pub fn nla(kind: u16, value: Vec<u8>) -> DefaultNla {
    DefaultNla::new(kind, value)
}

pub fn nla_u8(kind: u16, v: u8) -> DefaultNla {
    nla(kind, vec![v])
}

pub fn nla_u16(kind: u16, v: u16) -> DefaultNla {
    nla(kind, v.to_ne_bytes().to_vec())
}

pub fn nla_u32(kind: u16, v: u32) -> DefaultNla {
    nla(kind, v.to_ne_bytes().to_vec())
}

pub fn nla_u64(kind: u16, v: u64) -> DefaultNla {
    nla(kind, v.to_ne_bytes().to_vec())
}

pub fn nla_addr(kind: u16, a: std::net::IpAddr) -> DefaultNla {
    match a {
        std::net::IpAddr::V4(v) => nla(kind, v.octets().to_vec()),
        std::net::IpAddr::V6(v) => nla(kind, v.octets().to_vec()),
    }
}

/// Reads an address attribute (4 or 16 bytes).
pub fn attr_addr(nla: &DefaultNla) -> Result<std::net::IpAddr, Error> {
    let b = attr_bytes(nla);
    match b.len() {
        4 => Ok(std::net::IpAddr::from(<[u8; 4]>::try_from(b.as_slice()).unwrap_or_default())),
        16 => Ok(std::net::IpAddr::from(<[u8; 16]>::try_from(b.as_slice()).unwrap_or_default())),
        n => Err(Error::Malformed(format!("address attribute of {n} bytes"))),
    }
}

/// Reads an attribute value as a native-endian integer of 1, 2, 4 or 8 bytes.
pub fn attr_uint(nla: &DefaultNla) -> Result<u64, Error> {
    let b = attr_bytes(nla);
    Ok(match b.len() {
        1 => u64::from(b[0]),
        2 => u64::from(u16::from_ne_bytes([b[0], b[1]])),
        4 => u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        8 => u64::from_ne_bytes(b.as_slice().try_into().unwrap_or_default()),
        n => return Err(Error::Malformed(format!("integer attribute of {n} bytes"))),
    })
}

/// Raw value bytes of an attribute.
pub fn attr_bytes(nla: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0u8; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

/// A connected generic netlink socket with the family id resolved.
pub struct Client {
    sock: Socket,
    family_id: u16,
    seq: u32,
}

impl Client {
    /// Opens a socket and resolves the `rust_ipsec` family in the caller's namespace.
    pub fn connect() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_GENERIC)?;
        // Extended acks carry the module's reason for a rejection.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let mut client = Client { sock, family_id: 0, seq: 0 };
        client.family_id = client.resolve_family()?;
        Ok(client)
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(abi::GENL_NAME.to_string())],
        };
        let replies = match self.transact(GenlMessage::from_payload(ctrl), 0) {
            Err(Error::Kernel(libc_enoent, _)) if libc_enoent == ENOENT => {
                return Err(Error::ModuleNotLoaded)
            }
            other => other?,
        };
        for msg in replies {
            for nla in msg.payload.nlas {
                if let GenlCtrlAttrs::FamilyId(id) = nla {
                    return Ok(id);
                }
            }
        }
        Err(Error::ModuleNotLoaded)
    }

    /// Sends one `rust_ipsec` request and returns the reply messages.
    pub fn request(&mut self, cmd: u8, attrs: Vec<DefaultNla>) -> Result<Vec<RipsecMsg>, Error> {
        let mut msg = GenlMessage::from_payload(RipsecMsg { cmd, attrs });
        msg.set_resolved_family_id(self.family_id);
        let replies = self.transact(msg, 0)?;
        Ok(replies.into_iter().map(|m| m.payload).collect())
    }

    /// A dump request: every object of the kind `cmd` names.
    pub fn dump(&mut self, cmd: u8) -> Result<Vec<RipsecMsg>, Error> {
        let mut msg = GenlMessage::from_payload(RipsecMsg { cmd, attrs: Vec::new() });
        msg.set_resolved_family_id(self.family_id);
        let replies = self.transact(msg, NLM_F_DUMP)?;
        Ok(replies.into_iter().map(|m| m.payload).collect())
    }

    /// Joins the family's `events` multicast group and returns the socket.
    pub fn subscribe(mut self) -> Result<Socket, Error> {
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(abi::GENL_NAME.to_string())],
        };
        let replies = self.transact(GenlMessage::from_payload(ctrl), 0)?;
        let mut group = None;
        for msg in replies {
            for nla in msg.payload.nlas {
                if let GenlCtrlAttrs::McastGroups(groups) = nla {
                    for g in groups {
                        let mut name = None;
                        let mut id = None;
                        for a in g {
                            match a {
                                netlink_packet_generic::ctrl::nlas::McastGrpAttrs::Name(n) => name = Some(n),
                                netlink_packet_generic::ctrl::nlas::McastGrpAttrs::Id(i) => id = Some(i),
                            }
                        }
                        if name.as_deref() == Some(abi::MCGRP_EVENTS) {
                            group = id;
                        }
                    }
                }
            }
        }
        let group = group.ok_or_else(|| Error::Malformed("no events multicast group".into()))?;
        self.sock.add_membership(group).map_err(|e| match e.raw_os_error() {
            Some(EPERM) | Some(EACCES) => Error::PermissionDenied,
            _ => Error::Io(e),
        })?;
        Ok(self.sock)
    }

    fn transact<F>(&mut self, payload: GenlMessage<F>, extra_flags: u16) -> Result<Vec<GenlMessage<F>>, Error>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send(&buf, 0)?;

        let mut out = Vec::new();
        let mut rx = vec![0u8; 65536];
        loop {
            let n = self.sock.recv(&mut &mut rx[..], 0)?;
            let mut off = 0;
            while off < n {
                let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&rx[off..n])
                    .map_err(|e| Error::Malformed(e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(Error::Malformed("zero-length netlink message".into()));
                }
                off += len;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => match -code.get() {
                                EPERM | EACCES => Err(Error::PermissionDenied),
                                errno => Err(Error::Kernel(errno, extack_msg(&rx[off - len..off]))),
                            },
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

/// The NLMSGERR_ATTR_MSG text of an error message with extended ack:
/// nlmsghdr, errno, the echoed request header (capped: NLM_F_CAPPED), TLVs.
fn extack_msg(msg: &[u8]) -> Option<String> {
    const NLMSG_HDR: usize = 16;
    let flags = u16::from_ne_bytes(msg.get(6..8)?.try_into().ok()?);
    let capped = flags & 0x100 != 0;
    let echoed = u32::from_ne_bytes(msg.get(20..24)?.try_into().ok()?) as usize;
    let tlv_start = NLMSG_HDR + 4 + if capped { NLMSG_HDR } else { (echoed + 3) & !3 };
    let mut tlvs = msg.get(tlv_start..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes(tlvs[0..2].try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(tlvs[2..4].try_into().ok()?);
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if ty == 1 {
            let v = &tlvs[4..len];
            let v = v.split(|&b| b == 0).next()?;
            return String::from_utf8(v.to_vec()).ok();
        }
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
