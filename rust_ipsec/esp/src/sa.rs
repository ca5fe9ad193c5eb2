//! A complete SA: the immutable transform plus the mutable per-SA state
//! (sequence counter, replay window, lifetime).
//!
//! [`Sa`]'s methods run the whole per-packet sequence with `&mut self`,
//! which is what a kernel holding a per-SA spinlock around the call needs.
//! A kernel that wants crypto outside the lock uses the parts directly:
//! `seq.next_seq()` under the lock, `xfrm.encapsulate()` outside it; inbound
//! `replay.check()` under the lock, `xfrm.decapsulate()` outside,
//! `replay.commit()` under it again.

use core::fmt;

use crate::aead::AeadAlg;
use crate::cipher::EspCipher;
use crate::esp::{parse_inbound, Decapsulated, Encap, EspTransform, InboundEsp, Mode, PacketBuf};
use crate::lifetime::{Lifetime, LifetimeEvent, LifetimeLimits};
use crate::replay::ReplayWindow;
use crate::seq::SeqCounter;
use crate::{Error, Result};

/// Everything needed to instantiate an SA.
#[derive(Clone, Copy)]
pub struct SaConfig<'k> {
    /// SPI (non-zero).
    pub spi: u32,
    /// AEAD algorithm.
    pub alg: AeadAlg,
    /// Key material `key ‖ salt` as derived by IKE.
    pub keymat: &'k [u8],
    /// Transport or tunnel (with endpoints).
    pub mode: Mode,
    /// Raw or UDP-encapsulated.
    pub encap: Encap,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Replay window size (0 disables replay checks), at most 4096.
    pub replay_window: u16,
    /// Tunnel mode: pad inner packets shorter than this many bytes up to it
    /// (RFC 4303 §2.4 TFC padding); 0 disables.
    pub tfc_pad: u16,
    /// TTL / hop limit of the outer header in tunnel mode.
    pub ttl: u8,
    /// Lifetime limits.
    pub lifetime: LifetimeLimits,
}

impl fmt::Debug for SaConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("alg", &self.alg)
            .field("mode", &self.mode)
            .field("encap", &self.encap)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .field("tfc_pad", &self.tfc_pad)
            .field("ttl", &self.ttl)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// One unidirectional SA. An outbound SA uses `seq`, an inbound one
/// `replay`; both account `lifetime`.
#[derive(Debug)]
pub struct Sa {
    /// Keys and framing (immutable, shareable).
    pub xfrm: EspTransform,
    /// Outbound sequence counter.
    pub seq: SeqCounter,
    /// Inbound anti-replay window.
    pub replay: ReplayWindow,
    /// Usage and limits.
    pub lifetime: Lifetime,
}

impl Sa {
    /// Builds an SA.
    pub fn new(cfg: &SaConfig<'_>) -> Result<Self> {
        Ok(Sa {
            xfrm: EspTransform::new(cfg)?,
            seq: SeqCounter::new(cfg.esn),
            replay: ReplayWindow::new(cfg.replay_window, cfg.esn)?,
            lifetime: Lifetime::new(cfg.lifetime),
        })
    }

    /// Outbound: takes a sequence number, encapsulates, accounts the
    /// plaintext length. Fails with [`Error::HardExpired`] after the hard
    /// limit and [`Error::SeqWouldWrap`] when sequence numbers ran out;
    /// in both cases nothing in `pkt` changed.
    pub fn encapsulate(&mut self, pkt: &mut PacketBuf<'_>) -> Result<LifetimeEvent> {
        self.encapsulate_using(pkt, None)
    }

    /// As [`encapsulate`](Self::encapsulate) with `cipher` (keyed with
    /// this SA's key) instead of the built-in AEAD when given.
    pub fn encapsulate_using(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        cipher: Option<&dyn EspCipher>,
    ) -> Result<LifetimeEvent> {
        if self.lifetime.hard_expired() {
            return Err(Error::HardExpired);
        }
        let len = pkt.len() as u64;
        let mut next = self.seq;
        let seq = next.next_seq()?;
        self.xfrm.encapsulate_using(pkt, seq, seq.to_be_bytes(), cipher)?;
        // Only burn the number once the packet exists; a failed
        // encapsulation did not expose it.
        self.seq = next;
        Ok(self.lifetime.account(len))
    }

    /// Inbound: parses, checks the SPI, replay-checks, verifies and
    /// decrypts, commits to the replay window, accounts. `pkt` starts at
    /// the outer IP header.
    pub fn decapsulate(
        &mut self,
        pkt: &mut PacketBuf<'_>,
    ) -> Result<(Decapsulated, LifetimeEvent)> {
        let info = parse_inbound(pkt)?;
        self.decapsulate_parsed(pkt, &info)
    }

    /// As [`decapsulate`](Self::decapsulate) for a packet the caller
    /// already parsed (to look the SA up).
    pub fn decapsulate_parsed(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        info: &InboundEsp,
    ) -> Result<(Decapsulated, LifetimeEvent)> {
        self.decapsulate_using(pkt, info, None)
    }

    /// As [`decapsulate_parsed`](Self::decapsulate_parsed) with `cipher`
    /// (keyed with this SA's key) instead of the built-in AEAD when given.
    pub fn decapsulate_using(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        info: &InboundEsp,
        cipher: Option<&dyn EspCipher>,
    ) -> Result<(Decapsulated, LifetimeEvent)> {
        if info.spi != self.xfrm.spi() {
            return Err(Error::UnknownSpi);
        }
        if self.lifetime.hard_expired() {
            return Err(Error::HardExpired);
        }
        let seq = self.replay.check(info.seq_lo)?;
        let out = self.xfrm.decapsulate_using(pkt, info, seq, cipher)?;
        self.replay.commit(seq)?;
        let ev = self.lifetime.account(out.payload_len as u64);
        Ok((out, ev))
    }
}
