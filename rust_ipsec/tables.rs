// SPDX-License-Identifier: GPL-2.0
//! The per-namespace SA and policy databases: `ripsec_esp`'s allocation-free
//! tables over storage this file allocates with `kvmalloc` and owns.

use core::net::IpAddr;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::alloc::{flags::{GFP_ATOMIC, GFP_KERNEL}, KBox, KVVec, KVec};
use kernel::prelude::*;
use crate::events::{self, Event, Limiter};
use crate::ffi;
use crate::fpu::{self, FpuBox};
use crate::kaead::KernelAead;
use crate::lock::{BhLock, RcuGuard, RcuRef};
use crate::netns::NetState;
use ripsec_esp::{
    Decapsulated, Error as EspError, EspCipher, EspTransform, InboundEsp, Lifetime, LifetimeEvent, OwnerId,
    PacketBuf, Policy, PolicyId, PolicySlot, ReplayWindow, Result as EspResult, Sad, SadBucket, SadEntry, SeqCounter,
    Spd,
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

/// Per-SA statistics beyond what `ripsec_esp` counts; atomics, so the
/// datapath bumps them without the SA's lock.
#[derive(Default)]
pub(crate) struct SaStats {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) auth_fail: AtomicU64,
}

impl SaStats {
    fn count(&self, bytes: u64) {
        self.packets.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// What changes per packet, under the SA's own lock.
pub(crate) struct SaState {
    /// Outbound sequence counter.
    pub(crate) seq: SeqCounter,
    /// Inbound anti-replay window.
    pub(crate) replay: ReplayWindow,
    pub(crate) lifetime: Lifetime,
}

/// Link of the namespace's list of removed SAs awaiting a grace period.
///
/// # Invariants
/// Read and written only under the namespace lock, by the holder of the
/// SA's ownership (the `KBox` or, once retired, the list).
struct RetiredLink(*mut KSa);

// SAFETY: per the invariant, only one context touches the link at a time.
unsafe impl Send for RetiredLink {}
// SAFETY: `&RetiredLink` is never dereferenced (readers of a shared `KSa`
// do not look at it).
unsafe impl Sync for RetiredLink {}

/// An installed SA with what the control plane needs to describe it.
///
/// The datapath uses an SA without the namespace lock: it finds it under
/// that lock, keeps it alive with an RCU read section ([`Tables::sa_rcu`]),
/// encrypts or decrypts with the immutable `xfrm` and `kaead`, and takes the
/// SA's own lock only to reserve a sequence number, or to check and then
/// commit the replay window. Removal ([`Tables::remove`]) unpublishes the SA
/// and hands it to a worker that frees it after `synchronize_rcu()`.
pub(crate) struct KSa {
    /// Keys and framing. Boxed apart: key schedules are large, are built on
    /// a worker's stack inside an FPU section, and are dropped inside one.
    pub(crate) xfrm: FpuBox<EspTransform>,
    /// The kernel crypto API transform with the same key, when the `aead=`
    /// parameter chose it; the built-in code in `xfrm` is the fallback.
    pub(crate) kaead: Option<KernelAead>,
    pub(crate) state: BhLock<SaState>,
    pub(crate) stats: SaStats,
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
    /// Time limits as `events::now_ms()` instants (`u64::MAX`: none),
    /// checked by the namespace's once-a-second sweep.
    soft_at: u64,
    hard_at: u64,
    soft_time_sent: AtomicBool,
    retired: RetiredLink,
}

impl KSa {
    /// Assembles an SA from its built parts (`state` carries the SA's lock).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        xfrm: FpuBox<EspTransform>,
        kaead: Option<KernelAead>,
        state: BhLock<SaState>,
        dir: SaDir,
        addrs: (IpAddr, IpAddr),
        desc: SaDesc,
    ) -> Self {
        KSa {
            xfrm,
            kaead,
            state,
            stats: SaStats::default(),
            dir,
            spi: desc.spi,
            src: addrs.0,
            dst: addrs.1,
            alg: desc.alg,
            tunnel: desc.tunnel,
            encap: desc.encap,
            esn: desc.esn,
            replay_window: desc.replay_window,
            reqid: desc.reqid,
            owner: desc.owner,
            soft_at: desc.soft_at,
            hard_at: desc.hard_at,
            soft_time_sent: AtomicBool::new(false),
            retired: RetiredLink(core::ptr::null_mut()),
        }
    }

    /// The EXPIRE event for this SA.
    pub(crate) fn expire_event(&self, hard: bool) -> Event {
        Event::Expire { spi: self.spi, dst: self.dst, dir_out: self.dir == SaDir::Out, reqid: self.reqid, owner: self.owner, hard }
    }

    /// Runs `f` with the SA's cipher: the kernel crypto API, or the built-in
    /// code inside an FPU section.
    fn with_cipher<R>(&self, f: impl FnOnce(Option<&dyn EspCipher>) -> EspResult<R>) -> EspResult<R> {
        match self.kaead.as_ref().filter(|k| k.usable()) {
            Some(k) => f(Some(k as &dyn EspCipher)),
            None => fpu::section(|| f(None)).unwrap_or(Err(EspError::CipherFailed)),
        }
    }

    /// Encapsulates `pkt`. The sequence number and the lifetime are taken
    /// under the SA's lock before encrypting, so concurrent senders never
    /// share a number and the hard limit is never overrun; a packet that then
    /// fails to encrypt has used its number (RFC 4303 tolerates gaps). The
    /// lifetime event is returned whatever happened to the packet.
    pub(crate) fn encapsulate(&self, pkt: &mut PacketBuf<'_>) -> (EspResult<()>, LifetimeEvent) {
        let plain = pkt.len() as u64;
        let (seq, ev) = {
            let mut s = self.state.lock();
            if s.lifetime.hard_expired() {
                return (Err(EspError::HardExpired), LifetimeEvent::None);
            }
            match s.seq.next_seq() {
                Ok(q) => (q, s.lifetime.account(plain)),
                Err(e) => return (Err(e), LifetimeEvent::None),
            }
        };
        let r = self.with_cipher(|c| self.xfrm.encapsulate_using(pkt, seq, seq.to_be_bytes(), c));
        if r.is_ok() {
            self.stats.count(plain);
        }
        (r, ev)
    }

    /// Verifies and decrypts `pkt`: replay check, then decryption without
    /// the lock, then the window commit, which rejects a copy of the packet
    /// that another CPU committed meanwhile.
    pub(crate) fn decapsulate(&self, pkt: &mut PacketBuf<'_>, info: &InboundEsp) -> EspResult<(Decapsulated, LifetimeEvent)> {
        if info.spi != self.spi {
            return Err(EspError::UnknownSpi);
        }
        let seq = {
            let mut s = self.state.lock();
            if s.lifetime.hard_expired() {
                return Err(EspError::HardExpired);
            }
            s.replay.check(info.seq_lo)?
        };
        let out = self.with_cipher(|c| self.xfrm.decapsulate_using(pkt, info, seq, c));
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if e == EspError::AuthFailed {
                    self.stats.auth_fail.fetch_add(1, Relaxed);
                }
                return Err(e);
            }
        };
        let ev = {
            let mut s = self.state.lock();
            s.replay.commit(seq)?;
            s.lifetime.account(out.payload_len as u64)
        };
        self.stats.count(out.payload_len as u64);
        Ok((out, ev))
    }
}

/// The descriptive part of an SA, as the control plane reports it.
pub(crate) struct SaDesc {
    pub(crate) spi: u32,
    pub(crate) alg: u8,
    pub(crate) tunnel: bool,
    pub(crate) encap: Option<(u16, u16)>,
    pub(crate) esn: bool,
    pub(crate) replay_window: u32,
    pub(crate) reqid: u32,
    pub(crate) owner: u64,
    /// Time limits as `events::now_ms()` instants (`u64::MAX`: none).
    pub(crate) soft_at: u64,
    pub(crate) hard_at: u64,
}

/// Removed SAs, linked through [`KSa::retired`], owned by the list.
pub(crate) struct Retired {
    head: *mut KSa,
}

// SAFETY: the list owns its SAs (which are `Send`); the pointers are private.
unsafe impl Send for Retired {}

impl Retired {
    const fn new() -> Self {
        Retired { head: core::ptr::null_mut() }
    }

    fn push(&mut self, sa: KBox<KSa>) {
        let sa = KBox::into_raw(sa);
        // SAFETY: `sa` came from `KBox::into_raw` just above and is ours.
        unsafe { (*sa).retired.0 = self.head };
        self.head = sa;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }
}

impl Drop for Retired {
    /// Frees the SAs (keys wiped). The owner makes sure no reader is left:
    /// the reaper after `synchronize_rcu()`, namespace exit after the hooks
    /// were unregistered.
    fn drop(&mut self) {
        while !self.head.is_null() {
            // SAFETY: every pointer on the list came from `KBox::into_raw` in
            // `push` and is on the list exactly once.
            let sa = unsafe { KBox::from_raw(self.head) };
            self.head = sa.retired.0;
            drop(sa);
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
    /// Removed SAs waiting for the reaper.
    retired: Retired,
    /// Earliest time limit of any SA (`u64::MAX`: none): the sweep scans
    /// the SAs only once something is due.
    next_due: u64,
}

/// EXPIRE events one sweep sends at most; the rest wait for the next second.
pub(crate) const SWEEP_EVENTS: usize = 64;

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
            retired: Retired::new(),
            next_due: u64::MAX,
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
        let due = if sa.soft_time_sent.load(Relaxed) { sa.hard_at } else { sa.soft_at.min(sa.hard_at) };
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
        self.next_due = self.next_due.min(due);
        Ok(slot)
    }

    /// The SA in `slot`, usable after the namespace lock is dropped for as
    /// long as `g` is held.
    pub(crate) fn sa_rcu<'g>(&self, slot: u32, g: &'g RcuGuard) -> Option<RcuRef<'g, KSa>> {
        let sa = NonNull::from(self.sa(slot)?);
        // SAFETY: `&self` means the namespace lock is held, and an SA leaves
        // `sas` only through `remove`, which retires it to the reaper (freed
        // after a grace period), or when the tables are dropped at namespace
        // exit, after the hooks were unregistered.
        Some(unsafe { RcuRef::new(sa, g) })
    }

    /// Unlinks the SA in `slot` from every index and retires it: it is freed
    /// (keys wiped) by the reaper once no packet can still be using it. The
    /// caller then calls [`reap_later`].
    pub(crate) fn remove(&mut self, slot: u32) -> bool {
        let Some(sa) = self.sas.as_mut_slice().get_mut(slot as usize).and_then(Option::take) else { return false };
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
        self.retired.push(sa);
        true
    }

    /// Removes the SA in `slot` if it is still `sa` (the datapath's view
    /// after it dropped the lock).
    pub(crate) fn remove_if(&mut self, slot: u32, sa: *const KSa) -> bool {
        match self.sa(slot) {
            Some(cur) if core::ptr::eq(cur, sa) => self.remove(slot),
            _ => false,
        }
    }

    /// Time lifetimes: marks soft expiries and removes hard-expired SAs due
    /// at `now`, pushing their EXPIRE events to `out` (up to its spare
    /// capacity; what does not fit is handled next time). Returns whether
    /// something was removed.
    pub(crate) fn sweep_time(&mut self, now: u64, out: &mut KVec<Event>) -> bool {
        if now < self.next_due {
            return false;
        }
        let (mut next, mut removed, mut full) = (u64::MAX, false, false);
        for slot in 0..self.sas.len() as u32 {
            let Some(sa) = self.sa(slot) else { continue };
            let soft_pending = !sa.soft_time_sent.load(Relaxed);
            let hard = now >= sa.hard_at;
            let soft = soft_pending && now >= sa.soft_at && !hard;
            if (hard || soft) && out.len() >= out.capacity() {
                full = true;
                continue;
            }
            if hard {
                let _ = out.push(sa.expire_event(true), GFP_ATOMIC);
                removed |= self.remove(slot);
                continue;
            }
            if soft {
                sa.soft_time_sent.store(true, Relaxed);
                let _ = out.push(sa.expire_event(false), GFP_ATOMIC);
            }
            let due = if soft || !soft_pending { sa.hard_at } else { sa.soft_at.min(sa.hard_at) };
            next = next.min(due);
        }
        // Events that did not fit are due at once.
        self.next_due = if full { now } else { next };
        removed
    }

    /// The retired SAs, for the reaper to free after a grace period.
    pub(crate) fn take_retired(&mut self) -> Retired {
        core::mem::replace(&mut self.retired, Retired::new())
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

    /// Removes the SAs matching a flush (all, by peer, by owner, or both),
    /// using `scratch` (empty, reserved by the caller for every SA) for their slots;
    /// returns how many. A flush by peer or by owner walks only that peer's
    /// or owner's chain, so its cost under the lock is the SAs it removes.
    pub(crate) fn flush(&mut self, peer: Option<IpAddr>, owner: Option<u64>, scratch: &mut KVec<u32>) -> u32 {
        let room = scratch.capacity().saturating_sub(scratch.len()) >= self.sa_count();
        match (peer, owner) {
            // The chain walks unlink from the SPI index as they go, so every
            // slot they yield must fit: they run only when room was reserved.
            (Some(p), None) if room => {
                self.by_spi.sad.flush_peer(&p, |_, v| {
                    let _ = scratch.push(v, GFP_ATOMIC);
                });
            }
            (None, Some(o)) if room => {
                self.by_spi.sad.flush_owner(OwnerId(o), |_, v| {
                    let _ = scratch.push(v, GFP_ATOMIC);
                });
            }
            _ => {
                let _ = self.select(peer, owner, scratch);
            }
        }
        let mut n = 0u32;
        for &slot in scratch.as_slice() {
            n += u32::from(self.remove(slot));
        }
        n
    }

    /// Slots of the SAs matching a flush (all, by peer, or by owner).
    fn select(&self, peer: Option<IpAddr>, owner: Option<u64>, out: &mut KVec<u32>) -> Result {
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

/// Asks the namespace's reaper to free what was retired (call after
/// dropping the namespace lock).
pub(crate) fn reap_later(st: &NetState) {
    // SAFETY: `st.net` is the live namespace this state belongs to.
    unsafe { ffi::ripsec_glue_reap_later(st.net) };
}

#[no_mangle]
extern "C" fn ripsec_rs_reap(state: *mut core::ffi::c_void) {
    if state.is_null() {
        return;
    }
    // SAFETY: the glue runs the reaper only for a live namespace (namespace
    // exit cancels it before freeing the state).
    let st = unsafe { crate::netns::from_ptr(state) };
    let list = st.locked.lock().tables.as_mut().map(Tables::take_retired);
    let Some(list) = list else { return };
    if list.is_empty() {
        return;
    }
    // Every SA on the list was unpublished before this point, so once the
    // readers that might have found it are done, nothing refers to it.
    // SAFETY: plain C; the reaper is a worker (process context).
    unsafe { ffi::ripsec_glue_synchronize_rcu() };
    drop(list);
}

/// The once-a-second sweep of time lifetimes; returns whether to run again
/// (the namespace has tables).
#[no_mangle]
extern "C" fn ripsec_rs_sweep(state: *mut core::ffi::c_void) -> i32 {
    if state.is_null() {
        return 0;
    }
    // SAFETY: the glue runs the sweep only for a live namespace (namespace
    // exit cancels it before freeing the state).
    let st = unsafe { crate::netns::from_ptr(state) };
    let mut evs = KVec::new();
    // Room reserved outside the lock (process context: a worker).
    if evs.reserve(SWEEP_EVENTS, GFP_KERNEL).is_err() {
        return 1;
    }
    let removed = {
        let mut g = st.locked.lock();
        let Some(t) = g.tables.as_mut() else { return 0 };
        t.sweep_time(events::now_ms(), &mut evs)
    };
    if removed {
        reap_later(st);
    }
    for ev in evs {
        events::send(st, ev);
    }
    1
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
