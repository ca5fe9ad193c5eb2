//! ESP protocol core for rust_ipsec: framing, AEAD, anti-replay, lifetimes
//! and the SA / policy tables.
//!
//! This crate is compiled twice: on the host for tests, fuzzing and
//! benchmarks, and unchanged into the Linux 6.12 kernel module. The kernel
//! only offers `core`, so there is no `alloc` here at all: every table works
//! over storage the caller hands in, and the per-packet path neither
//! allocates nor locks.
//!
//! Per-packet flow (what the kernel side calls):
//!
//! * outbound: [`Sa::encapsulate`] (or, split for a lockless fast path,
//!   [`SeqCounter::next_seq`] under the SA lock, [`EspTransform::encapsulate`]
//!   without it, then [`Lifetime::account`]).
//! * inbound: [`parse_inbound`] → SPI lookup in [`Sad`] →
//!   [`ReplayWindow::check`] → [`EspTransform::decapsulate`] (ICV verified
//!   here) → [`ReplayWindow::commit`] → [`Lifetime::account`]; or all of it
//!   via [`Sa::decapsulate`].
//! * UDP port 4500 payloads: [`classify_udp`].
//!
//! Tables: [`Sad`] (SPI → caller value, flush by owner / peer) and [`Spd`]
//! (ordered policies, exact-host hash index) take their storage as anything
//! that derefs to a mutable slice, so the kernel hands in `KVec`s it
//! allocated with `kvmalloc` and the host passes `&mut [T]`. Writers must
//! be serialised by the caller; see the [`Sad`] docs for RCU readers.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic
    )
)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use ripsec_aead as aead;
mod cipher;
mod error;
mod esp;
mod ip;
mod lifetime;
mod replay;
mod sa;
mod sad;
mod selector;
mod seq;
mod spd;
mod udp_encap;

pub use aead::{backend, Aead, AeadAlg, ICV_LEN, IV_LEN, SALT_LEN};
pub use cipher::{AadWindow, EspCipher};
pub use error::Error;
pub use esp::{
    parse_inbound, Decapsulated, Encap, EspTransform, InboundEsp, Mode, PacketBuf, ESP_HDR_LEN,
};
pub use ip::{
    ipv4_header_checksum, PROTO_DSTOPTS, PROTO_ESP, PROTO_FRAGMENT, PROTO_HOPOPT, PROTO_IPIP,
    PROTO_IPV6, PROTO_NONE, PROTO_ROUTING, PROTO_UDP,
};
pub use lifetime::{Lifetime, LifetimeEvent, LifetimeLimits};
pub use replay::{ReplayWindow, MAX_REPLAY_WINDOW};
pub use sa::{Sa, SaConfig};
pub use sad::{OwnerId, SaHandle, Sad, SadBucket, SadEntry};
pub use selector::{Flow, PortRange, Prefix, Selector};
pub use seq::SeqCounter;
pub use spd::{
    Direction, Policy, PolicyAction, PolicyId, PolicySlot, ProtectTemplate, Spd, TemplateEncap,
    TemplateMode,
};
pub use udp_encap::{classify_udp, UdpClass, NAT_T_PORT, UDP_HDR_LEN};

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
