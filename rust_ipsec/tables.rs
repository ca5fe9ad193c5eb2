// SPDX-License-Identifier: GPL-2.0
//! The per-namespace SA and policy databases: `ripsec_esp`'s allocation-free
//! tables over storage this file allocates with `kvmalloc` and owns.

use core::net::IpAddr;
use kernel::alloc::{flags::{GFP_ATOMIC, GFP_KERNEL}, KBox, KVVec, KVec};
use kernel::prelude::*;
use crate::events::Limiter;
use crate::fpu::{self, FpuBox};
use crate::kaead::KernelAead;
use ripsec_esp::{
    Decapsulated, Error as EspError, EspCipher, InboundEsp, LifetimeEvent, OwnerId, PacketBuf, Policy, PolicyId,
    PolicySlot, Result as EspResult, Sa, Sad, SadBucket, SadEntry, Spd,
};

type SadK = Sad<u32, KVVec<SadBucket>, KVVec<SadEntry<u32>>>;
type SpdK = Spd<KVVec<PolicySlot>, KVVec<u32>, KVVec<u32>>;

/// An SA index: `(key, address)` to a slot in [`Tables::sas`].
pub(crate) struct Index {
    sad: SadK,
}

impl Index {
    fn with_capacity(n: usize, seed: u64) -> Result<Self> {
        let b = KVVec::from_elem(SadBucket::EMPTY, n.next_power_of_two(), GFP_KERNEL)?;
        let e = KVVec::from_elem(SadEntry::vacant(0u32), n, GFP_KERNEL)?;
        let sad = Sad::new(b, e, seed).map_err(|_| EINVAL)?;
        Ok(Index { sad })
    }

    fn full(&self) -> bool {
        self.sad.len() >= self.sad.capacity()
    }

    /// Moves every entry into `bigger` (allocated outside the lock).
    fn move_into(&self, mut bigger: Index) -> Result<Index> {
        for (_, e) in self.sad.iter() {
            bigger
                .sad
                .insert(e.spi(), e.dst(), e.owner(), e.peer(), *e.value())
                .map_err(|_| ENOMEM)?;
        }
        Ok(bigger)
    }
}

/// Direction of an SA.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaDir {
    In,
    Out,
}

/// Per-SA statistics beyond what `ripsec_esp` counts.
#[derive(Default, Clone, Copy)]
pub(crate) struct SaStats {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) auth_fail: u64,
}

/// An installed SA with what the control plane needs to describe it.
pub(crate) struct KSa {
    /// Boxed apart: key schedules are large and are built on a worker's
    /// stack, inside an FPU section, as they are dropped.
    pub(crate) sa: FpuBox<Sa>,
    /// The kernel crypto API transform with the same key, when the `aead=`
    /// parameter chose it; the built-in code in `sa` is the fallback.
    pub(crate) kaead: Option<KernelAead>,
    pub(crate) dir: SaDir,
    pub(crate) spi: u32,
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) alg: u8,
    pub(crate) tunnel: bool,
    pub(crate) encap: Option<(u16, u16)>,
    pub(crate) esn: bool,
    pub(crate) replay_window: u32,
    pub(crate) reqid: u32,
    pub(crate) owner: u64,
    pub(crate) stats: SaStats,
}

impl KSa {
    /// Encapsulates `pkt` with the SA's backend: the kernel crypto API, or
    /// the built-in code inside an FPU section.
    pub(crate) fn encapsulate(&mut self, pkt: &mut PacketBuf<'_>) -> EspResult<LifetimeEvent> {
        match self.kaead.as_ref().filter(|k| k.usable()) {
            Some(k) => self.sa.encapsulate_using(pkt, Some(k as &dyn EspCipher)),
            None => fpu::section(|| self.sa.encapsulate_using(pkt, None)).unwrap_or(Err(EspError::CipherFailed)),
        }
    }

    /// Decapsulates `pkt` as [`encapsulate`](Self::encapsulate) encapsulates.
    pub(crate) fn decapsulate(&mut self, pkt: &mut PacketBuf<'_>, info: &InboundEsp) -> EspResult<(Decapsulated, LifetimeEvent)> {
        match self.kaead.as_ref().filter(|k| k.usable()) {
            Some(k) => self.sa.decapsulate_using(pkt, info, Some(k as &dyn EspCipher)),
            None => fpu::section(|| self.sa.decapsulate_using(pkt, info, None)).unwrap_or(Err(EspError::CipherFailed)),
        }
    }
}

pub(crate) const INITIAL_SAS: usize = 256;
pub(crate) const MAX_POLICIES: usize = 16384;

/// Everything under the namespace lock once the namespace is configured.
pub(crate) struct Tables {
    /// All SAs by `(spi, outer destination)`.
    pub(crate) by_spi: Index,
    /// Outbound SAs by `(reqid + 1, peer)`: what protect policies resolve to.
    pub(crate) out: Index,
    pub(crate) sas: KVec<Option<KBox<KSa>>>,
    free: KVec<u32>,
    pub(crate) policies: Policies,
    /// Event rate limits (a few KiB: kept off the kernel stack).
    pub(crate) limiter: KBox<Limiter>,
}

/// Storage for a grown pair of indexes, allocated before taking the lock.
pub(crate) struct Growth {
    by_spi: Index,
    out: Index,
}

impl Tables {
    pub(crate) fn new(seed: u64) -> Result<Self> {
        Ok(Tables {
            by_spi: Index::with_capacity(INITIAL_SAS, seed)?,
            out: Index::with_capacity(INITIAL_SAS, seed.rotate_left(17))?,
            sas: KVec::new(),
            free: KVec::new(),
            policies: Policies::new(seed.rotate_left(33))?,
            limiter: KBox::new(Limiter::new(), GFP_KERNEL)?,
        })
    }

    /// Capacity the indexes would need for one more SA, if they are full.
    pub(crate) fn growth_needed(&self) -> Option<usize> {
        if self.by_spi.full() || self.out.full() {
            Some(self.by_spi.sad.capacity().saturating_mul(2))
        } else {
            None
        }
    }

    pub(crate) fn alloc_growth(n: usize, seed: u64) -> Result<Growth> {
        Ok(Growth {
            by_spi: Index::with_capacity(n, seed)?,
            out: Index::with_capacity(n, seed.rotate_left(17))?,
        })
    }

    pub(crate) fn grow(&mut self, g: Growth) -> Result {
        let by_spi = self.by_spi.move_into(g.by_spi)?;
        let out = self.out.move_into(g.out)?;
        self.by_spi = by_spi;
        self.out = out;
        Ok(())
    }

    pub(crate) fn sa(&self, slot: u32) -> Option<&KSa> {
        self.sas.as_slice().get(slot as usize)?.as_deref()
    }

    pub(crate) fn sa_mut(&mut self, slot: u32) -> Option<&mut KSa> {
        self.sas.as_mut_slice().get_mut(slot as usize)?.as_deref_mut()
    }

    /// Installs `sa`. The caller has grown the indexes if they were full.
    pub(crate) fn insert(&mut self, sa: KBox<KSa>) -> core::result::Result<u32, (Error, KBox<KSa>)> {
        let slot = match self.pop_free() {
            Some(s) => s,
            None => {
                let s = self.sas.len() as u32;
                if self.sas.push(None, GFP_ATOMIC).is_err() {
                    return Err((ENOMEM, sa));
                }
                s
            }
        };
        let (spi, dst, src, owner, dir, reqid) = (sa.spi, sa.dst, sa.src, sa.owner, sa.dir, sa.reqid);
        let peer = if dir == SaDir::Out { dst } else { src };
        if let Err(e) = self.by_spi.sad.insert(spi, dst, OwnerId(owner), peer, slot) {
            // A failed push only loses the slot number, never memory.
            let _ = self.free.push(slot, GFP_ATOMIC);
            let err = match e {
                ripsec_esp::Error::Duplicate => EEXIST,
                _ => ENOSPC,
            };
            return Err((err, sa));
        }
        if dir == SaDir::Out {
            // A newer outbound SA for the same policy and peer (a rekey) takes over.
            let key = reqid.wrapping_add(1);
            if let Some((h, _)) = self.out.sad.lookup(key, &peer) {
                let _ = self.out.sad.remove(h);
            }
            let _ = self.out.sad.insert(key, peer, OwnerId(owner), peer, slot);
        }
        if let Some(s) = self.sas.as_mut_slice().get_mut(slot as usize) {
            *s = Some(sa);
        }
        Ok(slot)
    }

    /// Unlinks the SA in `slot` from every index and returns it, to be freed
    /// (and its keys wiped) after the lock is dropped.
    pub(crate) fn take(&mut self, slot: u32) -> Option<KBox<KSa>> {
        let sa = self.sas.as_mut_slice().get_mut(slot as usize)?.take()?;
        if let Some((h, _)) = self.by_spi.sad.lookup(sa.spi, &sa.dst) {
            let _ = self.by_spi.sad.remove(h);
        }
        if sa.dir == SaDir::Out {
            let key = sa.reqid.wrapping_add(1);
            if let Some((h, &v)) = self.out.sad.lookup(key, &sa.dst) {
                if v == slot {
                    let _ = self.out.sad.remove(h);
                }
            }
        }
        let _ = self.free.push(slot, GFP_ATOMIC);
        Some(sa)
    }

    fn pop_free(&mut self) -> Option<u32> {
        let n = self.free.len().checked_sub(1)?;
        let v = *self.free.as_slice().get(n)?;
        // SAFETY: shrinking to `n < len` leaves initialised elements only.
        unsafe { self.free.set_len(n) };
        Some(v)
    }

    /// Slot of the SA with this SPI and outer destination.
    pub(crate) fn find(&self, spi: u32, dst: &IpAddr) -> Option<u32> {
        self.by_spi.sad.lookup(spi, dst).map(|(_, &v)| v)
    }

    /// Slot of the outbound SA a protect policy with `reqid` uses towards `peer`.
    pub(crate) fn find_out(&self, reqid: u32, peer: &IpAddr) -> Option<u32> {
        self.out.sad.lookup(reqid.wrapping_add(1), peer).map(|(_, &v)| v)
    }

    /// Slots of the SAs matching a flush (all, by peer, or by owner).
    pub(crate) fn select(&self, peer: Option<IpAddr>, owner: Option<u64>, out: &mut KVec<u32>) -> Result {
        for (_, e) in self.by_spi.sad.iter() {
            let hit = peer.map_or(true, |p| e.peer() == p) && owner.map_or(true, |o| e.owner() == OwnerId(o));
            if hit {
                out.push(*e.value(), GFP_ATOMIC)?;
            }
        }
        Ok(())
    }

    pub(crate) fn sa_count(&self) -> usize {
        self.by_spi.sad.len()
    }

    /// No SA and no policy: the namespace behaves as if rust_ipsec were not
    /// there, so another IPsec stack (XFRM) can own its ESP.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_spi.sad.is_empty() && self.policies.spd.is_empty()
    }
}

/// The security policy database.
pub(crate) struct Policies {
    pub(crate) spd: SpdK,
}

impl Policies {
    fn new(seed: u64) -> Result<Self> {
        let slots = KVVec::from_elem(PolicySlot::VACANT, MAX_POLICIES, GFP_KERNEL)?;
        let order = KVVec::from_elem(0u32, MAX_POLICIES, GFP_KERNEL)?;
        let buckets = KVVec::from_elem(0u32, MAX_POLICIES, GFP_KERNEL)?;
        let spd = Spd::new(slots, order, buckets, seed).map_err(|_| EINVAL)?;
        Ok(Policies { spd })
    }

    pub(crate) fn insert(&mut self, p: Policy) -> Result<PolicyId> {
        self.spd.insert(p).map_err(|e| match e {
            ripsec_esp::Error::TableFull => ENOSPC,
            ripsec_esp::Error::Duplicate => EEXIST,
            _ => EINVAL,
        })
    }
}
