//! Security Association Database index: SPI (+ destination) → caller value,
//! with per-owner and per-peer grouping for bulk flushes.
//!
//! # Storage
//! No allocation: the caller passes a bucket array (power-of-two length;
//! about one bucket per expected SA) and an entry slab sized for the
//! maximum number of SAs. For 1M SAs with `V = u32` that is ~12 MiB of
//! buckets plus 64 MiB of entries (64-byte entries); the kernel allocates both with
//! `kvmalloc`. The table stores a small `Copy` value per SA — typically an
//! index or pointer to the kernel's SA object — rather than the SA itself,
//! so the slab stays dense and lookups touch two cache lines.
//!
//! # Layout
//! Entries are chained through `u32` indices in three independent hash
//! chains: by SPI (lookups), by owner (IKE SA) and by peer address
//! (flushes). A flush walks only the one owner or peer bucket, so
//! "flush everything of owner Y / peer X" is a single call whose cost is
//! the number of SAs in that bucket, not in the table.
//!
//! # Concurrency (kernel)
//! Writers serialise on a spinlock. Readers (packet receive) only follow
//! `SadBucket::spi` heads and `next_spi` links and read `spi`, `dst`,
//! `value`, so the table can be read under RCU:
//! * insert fills the entry completely before publishing it with a single
//!   store to the bucket head (`rcu_assign_pointer` / release store);
//! * remove unlinks with a single store to the predecessor's link and does
//!   not touch the removed entry's own `next_spi`, so a reader standing on
//!   it still reaches the rest of the chain;
//! * with [`Sad::set_deferred_reclaim`] removed slots go to a retired list
//!   instead of the free list and are reused only after the kernel calls
//!   [`Sad::reclaim`] following `synchronize_rcu()` (or from an RCU
//!   callback), so a slot is never recycled under a reader.
//!
//! [`Sad::generation`] changes on every modification, which lets a reader
//! use a seqcount instead of RCU (retry if it changed).

use core::net::IpAddr;
use core::ops::DerefMut;

use crate::{Error, Result};

const NIL: u32 = u32::MAX;

/// Opaque owner of an SA (e.g. the IKE SA or peer identity that created
/// it); used by [`Sad::flush_owner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OwnerId(pub u64);

/// Index of a live SAD entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaHandle(u32);

impl SaHandle {
    /// Slot index in the entry slab.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One hash bucket: heads of the three chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SadBucket {
    spi: u32,
    owner: u32,
    peer: u32,
}

impl SadBucket {
    /// An empty bucket (initial value for the storage array).
    pub const EMPTY: SadBucket = SadBucket {
        spi: NIL,
        owner: NIL,
        peer: NIL,
    };
}

impl Default for SadBucket {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Live,
    Retired,
}

/// One slot of the entry slab.
#[derive(Clone, Copy, Debug)]
pub struct SadEntry<V> {
    spi: u32,
    next_spi: u32,
    next_owner: u32,
    next_peer: u32,
    dst: IpAddr,
    peer: IpAddr,
    owner: OwnerId,
    state: SlotState,
    value: V,
}

impl<V: Copy> SadEntry<V> {
    /// A vacant slot (initial value for the storage array); `fill` is never
    /// returned.
    pub const fn vacant(fill: V) -> Self {
        SadEntry {
            spi: 0,
            next_spi: NIL,
            next_owner: NIL,
            next_peer: NIL,
            dst: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            peer: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            owner: OwnerId(0),
            state: SlotState::Free,
            value: fill,
        }
    }

    /// SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }
    /// Destination address of the SA.
    pub fn dst(&self) -> IpAddr {
        self.dst
    }
    /// Peer address (flush key).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }
    /// Owner (flush key).
    pub fn owner(&self) -> OwnerId {
        self.owner
    }
    /// Stored value.
    pub fn value(&self) -> &V {
        &self.value
    }
}

/// splitmix64 finaliser keyed with a per-table secret, so that remote
/// peers choosing SPIs or addresses cannot aim for one bucket.
pub(crate) fn mix(x: u64, seed: u64) -> u64 {
    let mut z = x ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn addr_key(a: &IpAddr, seed: u64) -> u64 {
    match a {
        IpAddr::V4(v4) => u64::from(u32::from(*v4)) | (1 << 63),
        IpAddr::V6(v6) => {
            let x = u128::from(*v6);
            mix((x >> 64) as u64, seed) ^ (x as u64)
        }
    }
}

#[derive(Clone, Copy)]
enum Chain {
    Spi,
    Owner,
    Peer,
}

/// The SA index over caller-provided storage: anything that derefs to a
/// mutable slice (`&mut [T]` on the host, a `KVec<T>` in the kernel).
pub struct Sad<V, B, E>
where
    B: DerefMut<Target = [SadBucket]>,
    E: DerefMut<Target = [SadEntry<V>]>,
{
    buckets: B,
    entries: E,
    mask: u64,
    free: u32,
    retired: u32,
    len: usize,
    seed: u64,
    defer: bool,
    generation: u64,
}

impl<V, B, E> core::fmt::Debug for Sad<V, B, E>
where
    B: DerefMut<Target = [SadBucket]>,
    E: DerefMut<Target = [SadEntry<V>]>,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sad")
            .field("len", &self.len)
            .field("capacity", &self.entries.len())
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl<V: Copy, B, E> Sad<V, B, E>
where
    B: DerefMut<Target = [SadBucket]>,
    E: DerefMut<Target = [SadEntry<V>]>,
{
    /// Takes over `buckets` (non-zero power-of-two length) and `entries`
    /// (capacity; fewer than 2^32 - 1) and resets them. `seed` keys the
    /// bucket hash and should be random.
    pub fn new(mut buckets: B, mut entries: E, seed: u64) -> Result<Self> {
        if !buckets.len().is_power_of_two() || entries.len() >= NIL as usize {
            return Err(Error::BadConfig);
        }
        buckets.fill(SadBucket::EMPTY);
        let n = entries.len();
        for (i, e) in entries.iter_mut().enumerate() {
            e.state = SlotState::Free;
            e.spi = 0;
            let next = i.wrapping_add(1);
            e.next_spi = if next < n { next as u32 } else { NIL };
            e.next_owner = NIL;
            e.next_peer = NIL;
        }
        Ok(Sad {
            mask: (buckets.len() as u64).wrapping_sub(1),
            buckets,
            free: if n > 0 { 0 } else { NIL },
            entries,
            retired: NIL,
            len: 0,
            seed,
            defer: false,
            generation: 0,
        })
    }

    /// Keep removed slots out of reuse until [`reclaim`](Self::reclaim)
    /// (for RCU readers; see the module docs).
    pub fn set_deferred_reclaim(&mut self, on: bool) {
        self.defer = on;
    }

    /// Number of live SAs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no SA is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slab size.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bumped by every insert / remove.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bucket_of(&self, key: u64) -> usize {
        (mix(key, self.seed) & self.mask) as usize
    }

    fn spi_bucket(&self, spi: u32) -> usize {
        self.bucket_of(u64::from(spi))
    }

    fn owner_bucket(&self, o: OwnerId) -> usize {
        self.bucket_of(o.0.rotate_left(17))
    }

    fn peer_bucket(&self, a: &IpAddr) -> usize {
        self.bucket_of(addr_key(a, self.seed).rotate_left(41))
    }

    fn entry(&self, i: u32) -> Option<&SadEntry<V>> {
        self.entries.get(i as usize)
    }

    fn next(&self, i: u32, c: Chain) -> u32 {
        self.entry(i).map_or(NIL, |e| match c {
            Chain::Spi => e.next_spi,
            Chain::Owner => e.next_owner,
            Chain::Peer => e.next_peer,
        })
    }

    fn set_next(&mut self, i: u32, c: Chain, v: u32) {
        if let Some(e) = self.entries.get_mut(i as usize) {
            match c {
                Chain::Spi => e.next_spi = v,
                Chain::Owner => e.next_owner = v,
                Chain::Peer => e.next_peer = v,
            }
        }
    }

    fn head(&self, b: usize, c: Chain) -> u32 {
        self.buckets.get(b).map_or(NIL, |h| match c {
            Chain::Spi => h.spi,
            Chain::Owner => h.owner,
            Chain::Peer => h.peer,
        })
    }

    fn set_head(&mut self, b: usize, c: Chain, v: u32) {
        if let Some(h) = self.buckets.get_mut(b) {
            match c {
                Chain::Spi => h.spi = v,
                Chain::Owner => h.owner = v,
                Chain::Peer => h.peer = v,
            }
        }
    }

    fn push(&mut self, b: usize, c: Chain, i: u32) {
        let h = self.head(b, c);
        self.set_next(i, c, h);
        self.set_head(b, c, i);
    }

    fn unlink(&mut self, b: usize, c: Chain, i: u32) {
        let mut prev = NIL;
        let mut cur = self.head(b, c);
        // Bounded walk: a corrupted chain must not hang the kernel.
        for _ in 0..self.entries.len() {
            if cur == NIL {
                return;
            }
            if cur == i {
                let n = self.next(i, c);
                if prev == NIL {
                    self.set_head(b, c, n);
                } else {
                    self.set_next(prev, c, n);
                }
                return;
            }
            prev = cur;
            cur = self.next(cur, c);
        }
    }

    /// Inserts an SA. Fails with [`Error::Duplicate`] if `(spi, dst)` is
    /// already present, [`Error::TableFull`] without a free slot and
    /// [`Error::BadSpi`] for SPI 0.
    pub fn insert(
        &mut self,
        spi: u32,
        dst: IpAddr,
        owner: OwnerId,
        peer: IpAddr,
        value: V,
    ) -> Result<SaHandle> {
        if spi == 0 {
            return Err(Error::BadSpi);
        }
        if self.lookup(spi, &dst).is_some() {
            return Err(Error::Duplicate);
        }
        let i = self.free;
        let e = self.entries.get_mut(i as usize).ok_or(Error::TableFull)?;
        self.free = e.next_spi;
        *e = SadEntry {
            spi,
            next_spi: NIL,
            next_owner: NIL,
            next_peer: NIL,
            dst,
            peer,
            owner,
            state: SlotState::Live,
            value,
        };
        let (sb, ob, pb) = (
            self.spi_bucket(spi),
            self.owner_bucket(owner),
            self.peer_bucket(&peer),
        );
        self.push(ob, Chain::Owner, i);
        self.push(pb, Chain::Peer, i);
        // Publish to readers last.
        self.push(sb, Chain::Spi, i);
        self.len = self.len.wrapping_add(1);
        self.generation = self.generation.wrapping_add(1);
        Ok(SaHandle(i))
    }

    fn find(&self, spi: u32, mut pred: impl FnMut(&SadEntry<V>) -> bool) -> Option<(SaHandle, &V)> {
        let mut cur = self.head(self.spi_bucket(spi), Chain::Spi);
        for _ in 0..self.entries.len() {
            let e = self.entry(cur)?;
            if e.spi == spi && e.state == SlotState::Live && pred(e) {
                return Some((SaHandle(cur), &e.value));
            }
            cur = e.next_spi;
        }
        None
    }

    /// Inbound lookup by SPI and destination address. O(1) expected.
    #[inline]
    pub fn lookup(&self, spi: u32, dst: &IpAddr) -> Option<(SaHandle, &V)> {
        self.find(spi, |e| e.dst == *dst)
    }

    /// Lookup by SPI alone (SPIs allocated unique per node).
    #[inline]
    pub fn lookup_spi(&self, spi: u32) -> Option<(SaHandle, &V)> {
        self.find(spi, |_| true)
    }

    /// The live entry behind `h`.
    pub fn get(&self, h: SaHandle) -> Option<&SadEntry<V>> {
        self.entry(h.0).filter(|e| e.state == SlotState::Live)
    }

    /// Removes the entry behind `h` and returns its value.
    pub fn remove(&mut self, h: SaHandle) -> Result<V> {
        let i = h.0;
        let e = *self.get(h).ok_or(Error::NotFound)?;
        let (sb, ob, pb) = (
            self.spi_bucket(e.spi),
            self.owner_bucket(e.owner),
            self.peer_bucket(&e.peer),
        );
        self.unlink(sb, Chain::Spi, i);
        self.unlink(ob, Chain::Owner, i);
        self.unlink(pb, Chain::Peer, i);
        if self.defer {
            // next_spi stays valid for readers still on this entry; the
            // retired list links through next_owner, which readers ignore.
            let r = self.retired;
            if let Some(s) = self.entries.get_mut(i as usize) {
                s.state = SlotState::Retired;
                s.next_owner = r;
            }
            self.retired = i;
        } else {
            let f = self.free;
            if let Some(s) = self.entries.get_mut(i as usize) {
                s.state = SlotState::Free;
                s.next_spi = f;
            }
            self.free = i;
        }
        self.len = self.len.saturating_sub(1);
        self.generation = self.generation.wrapping_add(1);
        Ok(e.value)
    }

    /// Returns retired slots to the free list. Call only when no reader can
    /// still hold a reference (after an RCU grace period).
    pub fn reclaim(&mut self) {
        let mut cur = self.retired;
        for _ in 0..self.entries.len() {
            if cur == NIL {
                break;
            }
            let f = self.free;
            let Some(s) = self.entries.get_mut(cur as usize) else {
                break;
            };
            let next = s.next_owner;
            s.state = SlotState::Free;
            s.next_spi = f;
            s.next_owner = NIL;
            self.free = cur;
            cur = next;
        }
        self.retired = NIL;
    }

    fn flush_chain(
        &mut self,
        b: usize,
        c: Chain,
        matches: impl Fn(&SadEntry<V>) -> bool,
        mut f: impl FnMut(SaHandle, V),
    ) -> usize {
        let mut n = 0usize;
        let mut cur = self.head(b, c);
        for _ in 0..self.entries.len() {
            let Some(e) = self.entry(cur) else { break };
            let next = self.next(cur, c);
            if e.state == SlotState::Live && matches(e) {
                if let Ok(v) = self.remove(SaHandle(cur)) {
                    f(SaHandle(cur), v);
                    n = n.wrapping_add(1);
                }
            }
            cur = next;
        }
        n
    }

    /// Removes every SA of `owner`, calling `f` for each removed value (to
    /// free the kernel object). Returns how many were removed.
    pub fn flush_owner(&mut self, owner: OwnerId, f: impl FnMut(SaHandle, V)) -> usize {
        let b = self.owner_bucket(owner);
        self.flush_chain(b, Chain::Owner, |e| e.owner == owner, f)
    }

    /// Removes every SA whose peer is `peer`; see [`flush_owner`](Self::flush_owner).
    pub fn flush_peer(&mut self, peer: &IpAddr, f: impl FnMut(SaHandle, V)) -> usize {
        let b = self.peer_bucket(peer);
        let p = *peer;
        self.flush_chain(b, Chain::Peer, |e| e.peer == p, f)
    }

    /// Live entries in slab order (for dumps).
    pub fn iter(&self) -> impl Iterator<Item = (SaHandle, &SadEntry<V>)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == SlotState::Live)
            .map(|(i, e)| (SaHandle(i as u32), e))
    }
}
