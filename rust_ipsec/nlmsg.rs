// SPDX-License-Identifier: GPL-2.0
//! Reading validated netlink attributes and writing replies, dumps and events
//! through the glue.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use kernel::prelude::*;

use crate::ffi;

/// `EMSGSIZE`: the 6.12 `kernel` crate has no constant for it.
#[allow(non_snake_case)]
pub(crate) fn EMSGSIZE() -> Error {
    Error::from_errno(-90)
}

/// `EOPNOTSUPP`, likewise.
#[allow(non_snake_case)]
pub(crate) fn EOPNOTSUPP() -> Error {
    Error::from_errno(-95)
}

/// The attribute table generic netlink parsed and validated against the
/// family's `nla_policy` (types, integer ranges, maximum lengths).
///
/// # Invariants
/// `attrs` has `RIPSEC_A_MAX + 1` entries, each null or pointing to a
/// well-formed attribute, for the duration of the request.
pub(crate) struct Attrs {
    attrs: *mut *mut ffi::NlAttr,
}

impl Attrs {
    /// # Safety
    /// `attrs` must be `info->attrs` of the request being served.
    pub(crate) unsafe fn new(attrs: *mut *mut ffi::NlAttr) -> Self {
        Attrs { attrs }
    }

    /// The payload of attribute `ty`, if present.
    pub(crate) fn get(&self, ty: u16) -> Option<&[u8]> {
        if self.attrs.is_null() || ty > crate::abi::A_MAX {
            return None;
        }
        // SAFETY: `ty <= RIPSEC_A_MAX`, within the table (type invariant).
        let nla = unsafe { *self.attrs.add(ty as usize) };
        if nla.is_null() {
            return None;
        }
        // SAFETY: a validated attribute: a 4-byte header {len: u16, type: u16}
        // followed by `len - 4` bytes of payload (type invariant).
        unsafe {
            let hdr = nla.cast::<u16>();
            let len = usize::from(hdr.read_unaligned());
            let payload = len.checked_sub(4)?;
            Some(core::slice::from_raw_parts(nla.cast::<u8>().add(4), payload))
        }
    }

    pub(crate) fn has(&self, ty: u16) -> bool {
        self.get(ty).is_some()
    }

    pub(crate) fn u8(&self, ty: u16) -> Option<u8> {
        self.get(ty)?.first().copied()
    }

    pub(crate) fn u16(&self, ty: u16) -> Option<u16> {
        Some(u16::from_ne_bytes(self.get(ty)?.get(..2)?.try_into().ok()?))
    }

    pub(crate) fn u32(&self, ty: u16) -> Option<u32> {
        Some(u32::from_ne_bytes(self.get(ty)?.get(..4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&self, ty: u16) -> Option<u64> {
        Some(u64::from_ne_bytes(self.get(ty)?.get(..8)?.try_into().ok()?))
    }

    /// An address attribute: exactly 4 or 16 bytes, else `Err`.
    pub(crate) fn addr(&self, ty: u16) -> core::result::Result<Option<IpAddr>, ()> {
        match self.get(ty) {
            None => Ok(None),
            Some(b) => addr_from(b).map(Some).ok_or(()),
        }
    }
}

pub(crate) fn addr_from(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(a)))
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::V6(Ipv6Addr::from(a)))
    } else {
        None
    }
}

/// A message being built: a reply, one dump entry, or an event.
pub(crate) struct Msg {
    pub(crate) skb: *mut ffi::SkBuff,
}

impl Msg {
    pub(crate) fn put(&self, ty: u16, data: &[u8]) -> Result {
        // SAFETY: `skb`/`hdr` are a message under construction.
        match unsafe { ffi::ripsec_glue_put(self.skb, ty, data.len() as u32, data.as_ptr()) } {
            0 => Ok(()),
            _ => Err(EMSGSIZE()),
        }
    }

    pub(crate) fn put_u8(&self, ty: u16, v: u8) -> Result {
        self.put(ty, &[v])
    }

    pub(crate) fn put_u16(&self, ty: u16, v: u16) -> Result {
        self.put(ty, &v.to_ne_bytes())
    }

    pub(crate) fn put_u32(&self, ty: u16, v: u32) -> Result {
        self.put(ty, &v.to_ne_bytes())
    }

    pub(crate) fn put_u64(&self, ty: u16, v: u64) -> Result {
        // SAFETY: as in `put`.
        match unsafe { ffi::ripsec_glue_put_u64(self.skb, ty, v) } {
            0 => Ok(()),
            _ => Err(EMSGSIZE()),
        }
    }

    pub(crate) fn put_flag(&self, ty: u16) -> Result {
        self.put(ty, &[])
    }

    pub(crate) fn put_addr(&self, ty: u16, a: &IpAddr) -> Result {
        match a {
            IpAddr::V4(v4) => self.put(ty, &v4.octets()),
            IpAddr::V6(v6) => self.put(ty, &v6.octets()),
        }
    }

    /// Writes `(attribute type = index + 1, value)` pairs in a nested attribute.
    pub(crate) fn put_nested_u64s(&self, ty: u16, values: &[u64]) -> Result {
        // SAFETY: as in `put`.
        let nest = unsafe { ffi::ripsec_glue_nest_start(self.skb, ty) };
        if nest.is_null() {
            return Err(EMSGSIZE());
        }
        for (i, v) in values.iter().enumerate() {
            self.put_u64(i as u16 + 1, *v)?;
        }
        // SAFETY: `nest` was started on this message above.
        unsafe { ffi::ripsec_glue_nest_end(self.skb, nest) };
        Ok(())
    }
}
