//! Traffic selectors (RFC 4301 §4.4.1.1): address prefixes, protocol and
//! port ranges, and the match of a packet's flow against them.

use core::net::IpAddr;

use crate::{Error, Result};

/// An address prefix. Host bits are cleared on construction so equal
/// prefixes compare equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

impl Prefix {
    /// `addr/len`; `len` at most 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self> {
        let addr = match addr {
            IpAddr::V4(a) if len <= 32 => IpAddr::V4((u32::from(a) & v4_mask(len)).into()),
            IpAddr::V6(a) if len <= 128 => IpAddr::V6((u128::from(a) & v6_mask(len)).into()),
            _ => return Err(Error::BadConfig),
        };
        Ok(Prefix { addr, len })
    }

    /// A single host (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    /// 0.0.0.0/0.
    pub const fn any_v4() -> Self {
        Prefix {
            addr: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            len: 0,
        }
    }

    /// ::/0.
    pub const fn any_v6() -> Self {
        Prefix {
            addr: IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
            len: 0,
        }
    }

    /// Network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for a /0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True for /32 or /128.
    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Does the prefix contain `a`? Never across families.
    pub fn contains(&self, a: &IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(*a) & v4_mask(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(*a) & v6_mask(self.len) == u128::from(p),
            _ => false,
        }
    }
}

/// Inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// All ports.
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    /// Exactly one port.
    pub const fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    /// Contains `p`?
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// Is this the full range?
    pub fn is_any(&self) -> bool {
        *self == Self::ANY
    }
}

/// The fields of a packet that selectors look at. Protocols without ports
/// carry 0 in `sport`/`dport` (so only range-including-0 selectors match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol of the transport header.
    pub proto: u8,
    /// Source port, or 0.
    pub sport: u16,
    /// Destination port, or 0.
    pub dport: u16,
}

/// A traffic selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source prefix.
    pub src: Prefix,
    /// Destination prefix (same family as `src`).
    pub dst: Prefix,
    /// Protocol, or `None` for any.
    pub proto: Option<u8>,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
}

impl Selector {
    /// Matches everything of one family (chosen by `src`).
    pub fn any(v6: bool) -> Self {
        let p = if v6 {
            Prefix::any_v6()
        } else {
            Prefix::any_v4()
        };
        Selector {
            src: p,
            dst: p,
            proto: None,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
        }
    }

    /// Both ends single hosts, all ports: eligible for the SPD hash index.
    pub fn is_exact_host(&self) -> bool {
        self.src.is_host() && self.dst.is_host() && self.sport.is_any() && self.dport.is_any()
    }

    /// Does `f` match?
    pub fn matches(&self, f: &Flow) -> bool {
        self.src.contains(&f.src)
            && self.dst.contains(&f.dst)
            && self.proto.is_none_or(|p| p == f.proto)
            && self.sport.contains(f.sport)
            && self.dport.contains(f.dport)
    }
}
