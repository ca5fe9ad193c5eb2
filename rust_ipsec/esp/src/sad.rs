//! Security Association Database index: (SPI, destination) → caller value,
//! with per-owner and per-peer grouping for bulk flushes.
//!
//! # Storage
//! No allocation: the caller passes two arrays and the table lives in them.
//! * The *index*, `[SadBucket]` (16 bytes each, power-of-two length, about
//!   one element per expected SA). Three quarters of it are cut into
//!   64-byte groups, one cache line each, holding ten `(tag, slot)` pairs
//!   and the head of an overflow chain; the last quarter holds the heads of
//!   the owner and peer chains.
//! * The *entries*, `[SadEntry<V>]` (one per SA: the capacity). An entry is
//!   96 bytes, 32-byte aligned, and keeps what a lookup reads (SPI,
//!   destination, state, value, overflow link) in its first 32 bytes, so a
//!   lookup touches one cache line of it (96 is a multiple of 32: the first
//!   32 bytes never straddle a line).
//!
//! For 1M SAs with `V = u32` that is 16 MiB of index (12 MiB of it groups)
//! plus 96 MiB of entries; the kernel allocates both with `kvmalloc`. The
//! table stores a small `Copy` value per SA, typically an index or pointer
//! to the kernel's SA object, rather than the SA itself.
//!
//! # Lookup
//! The SPI picks a group; a 16-bit tag hashed from SPI *and* destination
//! picks the candidate slots in it; each candidate's entry is compared in
//! full. An SA found in its group costs one index line and one entry line,
//! independent of the table size; an unknown SPI costs one index line. Only
//! SAs inserted while their group's ten slots were all taken go to the
//! group's overflow chain (linked through the entries), which a lookup
//! walks after the group. With the recommended sizing (index length =
//! capacity rounded up to a power of two) there are about two slots per SA,
//! so a full group is rare.
//!
//! Known limit: many SAs sharing one SPI (with different destinations) all
//! land in one group and then its overflow chain, so looking one of them up
//! walks that chain. The module's outbound index, keyed by (reqid + 1,
//! peer), does that for one policy with many peers.
//!
//! The hashes are keyed with a per-table secret, so that remote peers
//! choosing SPIs or addresses cannot aim for one group.
//!
//! # Flushes and removal
//! Entries are also chained by owner (IKE SA) and by peer address, each
//! chain rooted in the index's head region. A flush walks only one owner
//! or peer chain, so "flush everything of owner Y / peer X" costs the
//! length of that chain, not the size of the table. All three chains are
//! doubly linked, so removing one SA costs O(1) however many SAs share its
//! owner or peer (thousands of clients behind one NAT address share a
//! peer; removing the oldest of them must not walk all the others under
//! the writers' lock).
//!
//! # Concurrency (kernel)
//! Writers serialise on a lock. Readers read a group, the entries its slots
//! name and the overflow chain (`next` links), and accept an entry only
//! after comparing SPI, destination and state, so the index words are hints
//! and a stale one costs a wasted read, never a wrong answer. Writers order
//! their stores so that the table can be read under RCU:
//! * insert fills the entry completely before publishing it with a single
//!   store: the slot number into a free group slot (after its tag), or the
//!   overflow head;
//! * remove unpublishes with a single store (the group slot, or the
//!   predecessor's `next` / the head) and does not touch the removed
//!   entry's own `next`, so a reader standing on it still reaches the rest
//!   of the chain (the `prev` links are for writers only);
//! * with [`Sad::set_deferred_reclaim`] removed slots go to a retired list
//!   instead of the free list and are reused only after the kernel calls
//!   [`Sad::reclaim`] following `synchronize_rcu()` (or from an RCU
//!   callback), so an entry is never recycled under a reader;
//! * without deferred reclaim (every reader under the writers' lock) a
//!   remove also moves the head of the group's overflow chain into the
//!   freed group slot. That move is not done for RCU readers: one could scan
//!   the group before the move and the chain after it and miss the SA.
//!
//! The stores are plain memory writes (this crate has no `unsafe` and no
//! atomics in the table): the order above is what a lockless reader needs,
//! but going lockless also needs the publishing stores to become release
//! stores (`rcu_assign_pointer`) and the reader's loads `READ_ONCE`. The
//! module today looks SAs up under the writers' lock.
//!
//! [`Sad::generation`] changes on every modification, which lets a reader
//! use a seqcount instead of RCU (retry if it changed).

use core::mem::{align_of, offset_of, size_of};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::DerefMut;

use crate::{Error, Result};

const NIL: u32 = u32::MAX;

/// Index elements per group: 4 × 16 bytes = one 64-byte cache line.
const GROUP_ELEMS: usize = 4;
/// Words per group.
const GROUP_WORDS: usize = GROUP_ELEMS * 4;
/// `(tag, slot)` pairs per group: ten 16-bit tags (words 0..5), ten slot
/// numbers (words 5..15) and the overflow head (word 15) fill 16 words.
const GROUP_SLOTS: usize = 10;
const TAG_WORDS: usize = GROUP_SLOTS / 2;
const SLOT_WORD: usize = TAG_WORDS;
const OVERFLOW_WORD: usize = SLOT_WORD + GROUP_SLOTS;
const ALL_SLOTS: u32 = (1 << GROUP_SLOTS) - 1;
const LINE: usize = 64;
/// The leading bytes of an entry that a lookup reads.
const HOT: usize = 32;
// The group arithmetic and the sizing figures in the module docs rely on
// these; the hot fields must end inside the first HOT bytes and the entry
// alignment must keep those bytes inside one cache line.
const _: () = assert!(OVERFLOW_WORD + 1 == GROUP_WORDS);
const _: () = assert!(size_of::<SadBucket>() == 16);
const _: () = assert!(size_of::<SadEntry<u32>>() == 96);
const _: () = assert!(align_of::<SadEntry<u32>>() == HOT && HOT <= LINE);
const _: () = assert!(offset_of!(SadEntry<u32>, fam) < HOT);

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

/// One 16-byte element of the index storage (four 32-bit words; see the
/// module docs for what the table keeps in them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct SadBucket {
    w: [u32; 4],
}

impl SadBucket {
    /// An empty element (initial value for the storage array).
    pub const EMPTY: SadBucket = SadBucket { w: [NIL; 4] };
}

impl Default for SadBucket {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum SlotState {
    Free,
    Live,
    Retired,
}

const DST_V6: u8 = 1;
const PEER_V6: u8 = 2;

/// One slot of the entry slab (96 bytes for `V` up to 4 bytes).
///
/// `repr(C)` fixes the order: what a lookup reads (SPI, overflow link,
/// destination, value, state, family) in the first 32 bytes, the flush
/// keys and the writers' links after it.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct SadEntry<V> {
    spi: u32,
    /// Overflow-chain link while live; free-list link while free.
    next: u32,
    dst: [u8; 16],
    value: V,
    state: SlotState,
    /// `DST_V6` / `PEER_V6`: the address families of `dst` and `peer`.
    fam: u8,
    peer: [u8; 16],
    owner: u64,
    next_owner: u32,
    prev_owner: u32,
    next_peer: u32,
    prev_peer: u32,
    /// Overflow-chain back link (writers only).
    prev: u32,
}

/// An address as the entries store it: 16 bytes (IPv4 in the first four)
/// plus a family flag, so one comparison covers both families.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AddrKey {
    b: [u8; 16],
    v6: bool,
}

impl AddrKey {
    #[inline]
    fn new(a: &IpAddr) -> Self {
        match a {
            IpAddr::V4(v4) => {
                let [x, y, z, w] = v4.octets();
                let mut b = [0u8; 16];
                if let Some(h) = b.first_chunk_mut::<4>() {
                    *h = [x, y, z, w];
                }
                AddrKey { b, v6: false }
            }
            IpAddr::V6(v6) => AddrKey {
                b: v6.octets(),
                v6: true,
            },
        }
    }

    fn addr(b: &[u8; 16], v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(*b))
        } else {
            let [x, y, z, w, ..] = *b;
            IpAddr::V4(Ipv4Addr::new(x, y, z, w))
        }
    }

    /// 64-bit hash input: the IPv4 address itself, or the IPv6 one folded
    /// with a keyed mix (as [`addr_key`] does for `IpAddr`).
    #[inline]
    fn hash(&self, seed: u64) -> u64 {
        if self.v6 {
            let x = u128::from_be_bytes(self.b);
            mix((x >> 64) as u64, seed) ^ (x as u64)
        } else {
            let [x, y, z, w, ..] = self.b;
            u64::from(u32::from_be_bytes([x, y, z, w])) | (1 << 63)
        }
    }
}

impl<V: Copy> SadEntry<V> {
    /// A vacant slot (initial value for the storage array); `fill` is never
    /// returned.
    pub const fn vacant(fill: V) -> Self {
        SadEntry {
            spi: 0,
            next: NIL,
            dst: [0; 16],
            value: fill,
            state: SlotState::Free,
            fam: 0,
            peer: [0; 16],
            owner: 0,
            next_owner: NIL,
            prev_owner: NIL,
            next_peer: NIL,
            prev_peer: NIL,
            prev: NIL,
        }
    }

    /// SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }
    /// Destination address of the SA.
    pub fn dst(&self) -> IpAddr {
        AddrKey::addr(&self.dst, self.fam & DST_V6 != 0)
    }
    /// Peer address (flush key).
    pub fn peer(&self) -> IpAddr {
        AddrKey::addr(&self.peer, self.fam & PEER_V6 != 0)
    }
    /// Owner (flush key).
    pub fn owner(&self) -> OwnerId {
        OwnerId(self.owner)
    }
    /// Stored value.
    pub fn value(&self) -> &V {
        &self.value
    }

    #[inline]
    fn is(&self, spi: u32, dst: &AddrKey) -> bool {
        self.spi == spi
            && self.dst == dst.b
            && (self.fam & DST_V6 != 0) == dst.v6
            && self.state == SlotState::Live
    }

    fn dst_key(&self) -> AddrKey {
        AddrKey {
            b: self.dst,
            v6: self.fam & DST_V6 != 0,
        }
    }

    fn peer_key(&self) -> AddrKey {
        AddrKey {
            b: self.peer,
            v6: self.fam & PEER_V6 != 0,
        }
    }
}

/// splitmix64 finaliser keyed with a per-table secret.
pub(crate) fn mix(x: u64, seed: u64) -> u64 {
    let mut z = x ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn addr_key(a: &IpAddr, seed: u64) -> u64 {
    AddrKey::new(a).hash(seed)
}

/// `x`'s high 32 bits scaled onto `0..n` (Lemire's multiply-shift), so `n`
/// need not be a power of two.
#[inline]
fn scale(x: u64, n: u32) -> usize {
    ((x >> 32).wrapping_mul(u64::from(n)) >> 32) as usize
}

#[derive(Clone, Copy)]
enum Chain {
    Overflow,
    Owner,
    Peer,
}

/// Where an SA's overflow chain is rooted: its group, or (when the index is
/// too small to hold a single group) one chain for the whole table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Home {
    Group(usize),
    Spill,
}

/// The SA index over caller-provided storage: anything that derefs to a
/// mutable slice (`&mut [T]` on the host, a `KVVec<T>` in the kernel).
pub struct Sad<V, B, E>
where
    B: DerefMut<Target = [SadBucket]>,
    E: DerefMut<Target = [SadEntry<V>]>,
{
    buckets: B,
    entries: E,
    /// First word of group 0 (chosen so groups are cache lines).
    origin: usize,
    groups: u32,
    /// First word of the head region: the spill head, then `owner_heads`
    /// owner heads, then `peer_heads` peer heads.
    heads: usize,
    owner_heads: u32,
    peer_heads: u32,
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
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl<V: Copy, B, E> Sad<V, B, E>
where
    B: DerefMut<Target = [SadBucket]>,
    E: DerefMut<Target = [SadEntry<V>]>,
{
    /// Takes over `buckets` (non-zero power-of-two length; about one
    /// element per SA) and `entries` (capacity; fewer than 2^32 - 1) and
    /// resets them. `seed` keys the hashes and should be random.
    pub fn new(mut buckets: B, mut entries: E, seed: u64) -> Result<Self> {
        if !buckets.len().is_power_of_two() || entries.len() >= NIL as usize {
            return Err(Error::BadConfig);
        }
        buckets.fill(SadBucket::EMPTY);
        let n = entries.len();
        for (i, e) in entries.iter_mut().enumerate() {
            let next = i.wrapping_add(1);
            *e = SadEntry {
                next: if next < n { next as u32 } else { NIL },
                ..SadEntry::vacant(e.value)
            };
        }
        let total = buckets.len();
        // A quarter of the index holds chain heads (at least one element:
        // the spill head and one owner and two peer heads), the rest groups.
        // Skip up to three elements so each group is exactly one cache line
        // (host allocators align large blocks to 16 bytes, kvmalloc to a
        // page); this is fixed here, so moving the storage later would only
        // cost speed.
        let misalign = (buckets.as_ptr() as usize) % LINE;
        let origin_elems = if total > 2 * GROUP_ELEMS && misalign != 0 {
            LINE.wrapping_sub(misalign) / 16
        } else {
            0
        };
        let head_elems = (total / 4).max(1);
        let heads_elem = total.saturating_sub(head_elems);
        let group_elems = heads_elem.saturating_sub(origin_elems);
        let groups = u32::try_from(group_elems / GROUP_ELEMS).unwrap_or(u32::MAX);
        let head_words = head_elems.saturating_mul(4).saturating_sub(1);
        let owner_heads = u32::try_from(head_words / 2).unwrap_or(u32::MAX / 2);
        let peer_heads = u32::try_from(head_words.saturating_sub(head_words / 2))
            .unwrap_or(u32::MAX / 2);
        Ok(Sad {
            origin: origin_elems.saturating_mul(4),
            groups,
            heads: heads_elem.saturating_mul(4),
            owner_heads,
            peer_heads,
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

    // --- index words ---------------------------------------------------
    // Words are addressed by their absolute number in the index (element
    // `w / 4`, word `w % 4`); a word outside it reads as NIL and ignores
    // writes, which can only happen if the layout arithmetic were wrong.

    #[inline]
    fn word(&self, w: usize) -> u32 {
        self.buckets
            .get(w / 4)
            .and_then(|b| b.w.get(w % 4))
            .copied()
            .unwrap_or(NIL)
    }

    fn set_word(&mut self, w: usize, v: u32) {
        if let Some(x) = self.buckets.get_mut(w / 4).and_then(|b| b.w.get_mut(w % 4)) {
            *x = v;
        }
    }

    /// First word of group `g`.
    #[inline]
    fn group_word(&self, g: usize) -> usize {
        self.origin.wrapping_add(g.wrapping_mul(GROUP_WORDS))
    }

    /// Group `g`'s cache line, copied out in one bounds check.
    #[inline]
    fn group(&self, g: usize) -> Option<[u32; GROUP_WORDS]> {
        let e = self.group_word(g) / 4;
        let line: &[SadBucket; GROUP_ELEMS] =
            self.buckets.get(e..e.checked_add(GROUP_ELEMS)?)?.try_into().ok()?;
        let [a, b, c, d] = *line;
        let ([w0, w1, w2, w3], [w4, w5, w6, w7]) = (a.w, b.w);
        let ([w8, w9, w10, w11], [w12, w13, w14, w15]) = (c.w, d.w);
        Some([
            w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15,
        ])
    }

    #[inline]
    fn spi_hash(&self, spi: u32) -> u64 {
        mix(u64::from(spi), self.seed)
    }

    #[inline]
    fn home(&self, h: u64) -> Home {
        if self.groups == 0 {
            Home::Spill
        } else {
            Home::Group(scale(h, self.groups))
        }
    }

    /// The tag of `(spi, dst)` given the SPI's hash: 16 bits that depend on
    /// the destination too, so SAs sharing an SPI are told apart cheaply.
    #[inline]
    fn tag(&self, h: u64, dst: &AddrKey) -> u32 {
        (mix(h ^ dst.hash(self.seed), self.seed.rotate_left(29)) & 0xffff) as u32
    }

    fn slot(&self, g: usize, j: usize) -> u32 {
        self.word(self.group_word(g).wrapping_add(SLOT_WORD).wrapping_add(j))
    }

    /// Writes the tag first and the slot number second: a reader acts on
    /// the slot number only, and checks the entry whatever the tag said.
    fn set_slot(&mut self, g: usize, j: usize, tag: u32, slot: u32) {
        let base = self.group_word(g);
        let tw = base.wrapping_add(j / 2);
        let sh = if j & 1 == 0 { 0 } else { 16 };
        let old = self.word(tw);
        let mask = 0xffffu32.wrapping_shl(sh);
        self.set_word(tw, (old & !mask) | ((tag & 0xffff).wrapping_shl(sh)));
        self.set_word(base.wrapping_add(SLOT_WORD).wrapping_add(j), slot);
    }

    /// The word holding the head of a chain: the overflow chain of `home`,
    /// or owner / peer chain `b`.
    fn root(&self, c: Chain, home: Home, b: usize) -> usize {
        match (c, home) {
            (Chain::Overflow, Home::Group(g)) => self.group_word(g).wrapping_add(OVERFLOW_WORD),
            (Chain::Overflow, Home::Spill) => self.heads,
            (Chain::Owner, _) => self.heads.wrapping_add(1).wrapping_add(b),
            (Chain::Peer, _) => self
                .heads
                .wrapping_add(1)
                .wrapping_add(self.owner_heads as usize)
                .wrapping_add(b),
        }
    }

    fn owner_root(&self, o: OwnerId) -> usize {
        let b = scale(mix(o.0.rotate_left(17), self.seed), self.owner_heads);
        self.root(Chain::Owner, Home::Spill, b)
    }

    fn peer_root(&self, a: &AddrKey) -> usize {
        let b = scale(mix(a.hash(self.seed).rotate_left(41), self.seed), self.peer_heads);
        self.root(Chain::Peer, Home::Spill, b)
    }

    fn overflow_root(&self, home: Home) -> usize {
        self.root(Chain::Overflow, home, 0)
    }

    // --- entries and chains --------------------------------------------

    #[inline]
    fn entry(&self, i: u32) -> Option<&SadEntry<V>> {
        self.entries.get(i as usize)
    }

    /// `(next, prev)` of `i` on chain `c`.
    fn links(&self, i: u32, c: Chain) -> (u32, u32) {
        self.entry(i).map_or((NIL, NIL), |e| match c {
            Chain::Overflow => (e.next, e.prev),
            Chain::Owner => (e.next_owner, e.prev_owner),
            Chain::Peer => (e.next_peer, e.prev_peer),
        })
    }

    fn set_next(&mut self, i: u32, c: Chain, v: u32) {
        if let Some(e) = self.entries.get_mut(i as usize) {
            match c {
                Chain::Overflow => e.next = v,
                Chain::Owner => e.next_owner = v,
                Chain::Peer => e.next_peer = v,
            }
        }
    }

    fn set_prev(&mut self, i: u32, c: Chain, v: u32) {
        if let Some(e) = self.entries.get_mut(i as usize) {
            match c {
                Chain::Overflow => e.prev = v,
                Chain::Owner => e.prev_owner = v,
                Chain::Peer => e.prev_peer = v,
            }
        }
    }

    /// Pushes `i` at the head of the chain rooted at word `root`; the
    /// store to the root, which publishes `i`, comes last.
    fn push(&mut self, root: usize, c: Chain, i: u32) {
        let h = self.word(root);
        self.set_next(i, c, h);
        self.set_prev(i, c, NIL);
        if h != NIL {
            self.set_prev(h, c, i);
        }
        self.set_word(root, i);
    }

    /// Unlinks `i` from the chain rooted at `root` in O(1); false (and no
    /// change) if the links say `i` is not on it. `i`'s own links are left
    /// as they are for readers standing on it.
    fn unlink(&mut self, root: usize, c: Chain, i: u32) -> bool {
        let (n, p) = self.links(i, c);
        if p == NIL {
            if self.word(root) != i {
                return false;
            }
            self.set_word(root, n);
        } else {
            if self.links(p, c).0 != i {
                return false;
            }
            self.set_next(p, c, n);
        }
        if n != NIL {
            self.set_prev(n, c, p);
        }
        true
    }

    // --- operations ----------------------------------------------------

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
        let (dk, pk) = (AddrKey::new(&dst), AddrKey::new(&peer));
        let i = self.free;
        let e = self.entries.get_mut(i as usize).ok_or(Error::TableFull)?;
        self.free = e.next;
        *e = SadEntry {
            spi,
            dst: dk.b,
            value,
            state: SlotState::Live,
            fam: if dk.v6 { DST_V6 } else { 0 } | if pk.v6 { PEER_V6 } else { 0 },
            peer: pk.b,
            owner: owner.0,
            ..SadEntry::vacant(value)
        };
        let (or, pr) = (self.owner_root(owner), self.peer_root(&pk));
        self.push(or, Chain::Owner, i);
        self.push(pr, Chain::Peer, i);
        // Publish to readers last.
        let h = self.spi_hash(spi);
        let home = self.home(h);
        let tag = self.tag(h, &dk);
        self.publish(home, tag, i);
        self.len = self.len.wrapping_add(1);
        self.generation = self.generation.wrapping_add(1);
        Ok(SaHandle(i))
    }

    /// Makes entry `i` reachable from `home`: a free group slot, else the
    /// head of the overflow chain.
    fn publish(&mut self, home: Home, tag: u32, i: u32) {
        if let Home::Group(g) = home {
            if let Some(j) = (0..GROUP_SLOTS).find(|&j| self.slot(g, j) == NIL) {
                self.set_slot(g, j, tag, i);
                return;
            }
        }
        let root = self.overflow_root(home);
        self.push(root, Chain::Overflow, i);
    }

    /// Searches the group of SPI hash `h` (slots whose tag is `tag`, or
    /// all with `None`) and then its overflow chain for an entry `pred`
    /// accepts.
    #[inline]
    fn find(
        &self,
        h: u64,
        tag: Option<u32>,
        pred: impl Fn(&SadEntry<V>) -> bool,
    ) -> Option<(SaHandle, &V)> {
        let home = self.home(h);
        let head = match home {
            Home::Group(g) => {
                let words = self.group(g)?;
                // Candidate slots as a bit mask, computed without branches
                // so that where the SA sits in its group is not a branch
                // to mispredict.
                let mut mask = ALL_SLOTS;
                if let Some(t) = tag {
                    mask = 0;
                    for (k, w) in words.iter().take(TAG_WORDS).enumerate() {
                        let lo = u32::from(*w & 0xffff == t);
                        let hi = u32::from(*w >> 16 == t);
                        mask |= (lo | (hi << 1)).wrapping_shl((k as u32).wrapping_mul(2));
                    }
                }
                let slots = words.get(SLOT_WORD..OVERFLOW_WORD)?;
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask.wrapping_sub(1);
                    let Some(&s) = slots.get(j) else { break };
                    if let Some(e) = self.entry(s) {
                        if pred(e) {
                            return Some((SaHandle(s), &e.value));
                        }
                    }
                }
                words.get(OVERFLOW_WORD).copied().unwrap_or(NIL)
            }
            Home::Spill => self.word(self.overflow_root(home)),
        };
        let mut cur = head;
        // Bounded walk: a corrupted chain must not hang the kernel.
        for _ in 0..self.entries.len() {
            let e = self.entry(cur)?;
            if pred(e) {
                return Some((SaHandle(cur), &e.value));
            }
            cur = e.next;
        }
        None
    }

    /// Inbound lookup by SPI and destination address. O(1) expected: one
    /// index line and one entry line when the SA is in its group.
    #[inline]
    pub fn lookup(&self, spi: u32, dst: &IpAddr) -> Option<(SaHandle, &V)> {
        let k = AddrKey::new(dst);
        let h = self.spi_hash(spi);
        self.find(h, Some(self.tag(h, &k)), |e| e.is(spi, &k))
    }

    /// Lookup by SPI alone (SPIs allocated unique per node). O(1) expected
    /// but slower than [`lookup`](Self::lookup): tags depend on the
    /// destination, so every SA of the SPI's group is read.
    pub fn lookup_spi(&self, spi: u32) -> Option<(SaHandle, &V)> {
        self.find(self.spi_hash(spi), None, |e| {
            e.spi == spi && e.state == SlotState::Live
        })
    }

    /// The live entry behind `h`.
    pub fn get(&self, h: SaHandle) -> Option<&SadEntry<V>> {
        self.entry(h.0).filter(|e| e.state == SlotState::Live)
    }

    /// Removes the entry behind `h` and returns its value. O(1).
    pub fn remove(&mut self, h: SaHandle) -> Result<V> {
        let i = h.0;
        let e = *self.get(h).ok_or(Error::NotFound)?;
        let home = self.home(self.spi_hash(e.spi));
        let mut freed = None;
        if let Home::Group(g) = home {
            freed = (0..GROUP_SLOTS).find(|&j| self.slot(g, j) == i);
            if let Some(j) = freed {
                // The tag stays: a slot of NIL is what marks it free.
                let base = self.group_word(g);
                self.set_word(base.wrapping_add(SLOT_WORD).wrapping_add(j), NIL);
            }
        }
        if freed.is_none() {
            let root = self.overflow_root(home);
            self.unlink(root, Chain::Overflow, i);
        }
        let (or, pr) = (self.owner_root(OwnerId(e.owner)), self.peer_root(&e.peer_key()));
        self.unlink(or, Chain::Owner, i);
        self.unlink(pr, Chain::Peer, i);
        if self.defer {
            // `next` stays valid for readers still on this entry; the
            // retired list links through next_owner, which readers ignore
            // and which the unlink above has finished with.
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
                s.next = f;
            }
            self.free = i;
            // No reader runs concurrently (see the module docs), so the
            // freed group slot can take an SA from the overflow chain.
            if let (Home::Group(g), Some(j)) = (home, freed) {
                self.refill(g, j);
            }
        }
        self.len = self.len.saturating_sub(1);
        self.generation = self.generation.wrapping_add(1);
        Ok(e.value)
    }

    /// Moves the head of group `g`'s overflow chain into its free slot `j`.
    fn refill(&mut self, g: usize, j: usize) {
        let root = self.overflow_root(Home::Group(g));
        let k = self.word(root);
        let Some(e) = self.entry(k) else { return };
        let tag = self.tag(self.spi_hash(e.spi), &e.dst_key());
        if self.unlink(root, Chain::Overflow, k) {
            self.set_next(k, Chain::Overflow, NIL);
            self.set_prev(k, Chain::Overflow, NIL);
            self.set_slot(g, j, tag, k);
        }
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
            s.next = f;
            s.next_owner = NIL;
            self.free = cur;
            cur = next;
        }
        self.retired = NIL;
    }

    fn flush_chain(
        &mut self,
        c: Chain,
        root: usize,
        matches: impl Fn(&SadEntry<V>) -> bool,
        mut f: impl FnMut(SaHandle, V),
    ) -> usize {
        let mut n = 0usize;
        let mut cur = self.word(root);
        for _ in 0..self.entries.len() {
            let Some(e) = self.entry(cur) else { break };
            // Read before remove(), which may reuse the link (retired list).
            let next = self.links(cur, c).0;
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
        let root = self.owner_root(owner);
        self.flush_chain(Chain::Owner, root, |e| e.owner == owner.0, f)
    }

    /// Removes every SA whose peer is `peer`; see [`flush_owner`](Self::flush_owner).
    pub fn flush_peer(&mut self, peer: &IpAddr, f: impl FnMut(SaHandle, V)) -> usize {
        let p = AddrKey::new(peer);
        let root = self.peer_root(&p);
        self.flush_chain(Chain::Peer, root, |e| e.peer_key() == p, f)
    }

    /// Live entries in slab order (for dumps).
    pub fn iter(&self) -> impl Iterator<Item = (SaHandle, &SadEntry<V>)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == SlotState::Live)
            .map(|(i, e)| (SaHandle(i as u32), e))
    }

    /// How many live SAs sit on overflow chains rather than in their group
    /// (for tests and statistics; walks every chain).
    pub fn overflowed(&self) -> usize {
        let mut n = 0usize;
        let homes = (0..self.groups as usize)
            .map(Home::Group)
            .chain(core::iter::once(Home::Spill));
        for home in homes {
            let mut cur = self.word(self.overflow_root(home));
            for _ in 0..self.entries.len() {
                let Some(e) = self.entry(cur) else { break };
                n = n.wrapping_add(1);
                cur = e.next;
            }
        }
        n
    }
}
