//! Security Policy Database (RFC 4301 §4.4.1) over caller storage.
//!
//! Policies are ordered by `(priority, insertion order)`, lower first; the
//! first matching policy wins. To stay fast with many per-host policies
//! (typical for HA clusters: one per peer pair), policies whose selectors
//! are single hosts on both sides with any ports go into a hash index
//! keyed by (direction, src, dst), each bucket chain kept sorted. All
//! other policies live in one sorted index array that is scanned in
//! order. A lookup takes the best candidate from the hash chain, then
//! scans the ordered array only while its entries could still beat it.
//!
//! Like the SAD, writers are expected to be serialised by the caller; the
//! sorted array is updated with `copy_within`, so a kernel using RCU
//! readers would publish a rebuilt copy instead (or use a seqcount around
//! lookups, retrying on change).

use core::net::IpAddr;
use core::ops::DerefMut;

use crate::aead::AeadAlg;
use crate::sad::{addr_key, mix};
use crate::selector::{Flow, Selector};
use crate::{Error, Result};

const NIL: u32 = u32::MAX;

/// Policy direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Inbound, to this host.
    In,
    /// Outbound, from this host.
    Out,
    /// Forwarded through this host.
    Fwd,
}

/// Mode of SAs created for a protect policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateMode {
    /// Transport mode.
    Transport,
    /// Tunnel mode between these endpoints.
    Tunnel {
        /// Local tunnel endpoint.
        local: IpAddr,
        /// Remote tunnel endpoint.
        remote: IpAddr,
    },
}

/// Encapsulation of SAs created for a protect policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateEncap {
    /// Raw ESP.
    Raw,
    /// ESP-in-UDP with these ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
}

/// SA template of a protect policy: what IKE must negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProtectTemplate {
    /// Transport or tunnel.
    pub mode: TemplateMode,
    /// IKE peer.
    pub peer: IpAddr,
    /// AEAD.
    pub alg: AeadAlg,
    /// Raw or UDP.
    pub encap: TemplateEncap,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Request id tying SAs to this policy.
    pub reqid: u32,
}

/// What to do with matching traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Pass in clear.
    Bypass,
    /// Drop.
    Discard,
    /// Require ESP per the template.
    Protect(ProtectTemplate),
}

/// One policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Lower is more important; ties go to the earlier insert.
    pub priority: u32,
    /// Direction.
    pub dir: Direction,
    /// Traffic selector.
    pub sel: Selector,
    /// Action.
    pub action: PolicyAction,
}

/// Id of an installed policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyId(u32);

impl PolicyId {
    /// Slot index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Storage slot of the SPD.
#[derive(Clone, Copy, Debug)]
pub struct PolicySlot {
    policy: Policy,
    seq: u64,
    next: u32,
    live: bool,
    exact: bool,
}

impl PolicySlot {
    /// A vacant slot (initial value for the storage array).
    pub const VACANT: PolicySlot = PolicySlot {
        policy: Policy {
            priority: 0,
            dir: Direction::In,
            sel: Selector {
                src: crate::selector::Prefix::any_v4(),
                dst: crate::selector::Prefix::any_v4(),
                proto: None,
                sport: crate::selector::PortRange::ANY,
                dport: crate::selector::PortRange::ANY,
            },
            action: PolicyAction::Discard,
        },
        seq: 0,
        next: NIL,
        live: false,
        exact: false,
    };
}

/// The policy database over caller storage: anything that derefs to a
/// mutable slice (`&mut [T]` on the host, a `KVec<T>` in the kernel).
pub struct Spd<S, O, B>
where
    S: DerefMut<Target = [PolicySlot]>,
    O: DerefMut<Target = [u32]>,
    B: DerefMut<Target = [u32]>,
{
    slots: S,
    order: O,
    n_order: usize,
    buckets: B,
    mask: u64,
    free: u32,
    seq: u64,
    len: usize,
    seed: u64,
}

impl<S, O, B> core::fmt::Debug for Spd<S, O, B>
where
    S: DerefMut<Target = [PolicySlot]>,
    O: DerefMut<Target = [u32]>,
    B: DerefMut<Target = [u32]>,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Spd")
            .field("len", &self.len)
            .field("ordered", &self.n_order)
            .finish_non_exhaustive()
    }
}

fn dir_key(d: Direction) -> u64 {
    match d {
        Direction::In => 1,
        Direction::Out => 2,
        Direction::Fwd => 3,
    }
}

impl<S, O, B> Spd<S, O, B>
where
    S: DerefMut<Target = [PolicySlot]>,
    O: DerefMut<Target = [u32]>,
    B: DerefMut<Target = [u32]>,
{
    /// `slots`: capacity for all policies. `order`: capacity for policies
    /// that are not exact-host. `buckets`: non-zero power-of-two hash index
    /// for exact-host policies. `seed` keys the hash.
    pub fn new(mut slots: S, order: O, mut buckets: B, seed: u64) -> Result<Self> {
        if !buckets.len().is_power_of_two() || slots.len() >= NIL as usize {
            return Err(Error::BadConfig);
        }
        buckets.fill(NIL);
        let n = slots.len();
        for (i, s) in slots.iter_mut().enumerate() {
            *s = PolicySlot::VACANT;
            let next = i.wrapping_add(1);
            s.next = if next < n { next as u32 } else { NIL };
        }
        Ok(Spd {
            mask: (buckets.len() as u64).wrapping_sub(1),
            slots,
            order,
            n_order: 0,
            buckets,
            free: if n > 0 { 0 } else { NIL },
            seq: 0,
            len: 0,
            seed,
        })
    }

    /// Number of installed policies.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bucket(&self, dir: Direction, src: &IpAddr, dst: &IpAddr) -> usize {
        let k = addr_key(src, self.seed) ^ mix(addr_key(dst, self.seed), dir_key(dir));
        (mix(k, self.seed) & self.mask) as usize
    }

    fn slot(&self, i: u32) -> Option<&PolicySlot> {
        self.slots.get(i as usize)
    }

    fn key(&self, i: u32) -> (u32, u64) {
        self.slot(i)
            .map_or((u32::MAX, u64::MAX), |s| (s.policy.priority, s.seq))
    }

    fn set_next(&mut self, i: u32, v: u32) {
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.next = v;
        }
    }

    /// Installs a policy. Fails with [`Error::FamilyMismatch`] if source
    /// and destination prefixes differ in family, [`Error::TableFull`]
    /// without room.
    pub fn insert(&mut self, policy: Policy) -> Result<PolicyId> {
        if policy.sel.src.addr().is_ipv4() != policy.sel.dst.addr().is_ipv4() {
            return Err(Error::FamilyMismatch);
        }
        let exact = policy.sel.is_exact_host();
        if !exact && self.n_order >= self.order.len() {
            return Err(Error::TableFull);
        }
        let i = self.free;
        let seq = self.seq;
        let s = self.slots.get_mut(i as usize).ok_or(Error::TableFull)?;
        let next_free = s.next;
        *s = PolicySlot {
            policy,
            seq,
            next: NIL,
            live: true,
            exact,
        };
        self.free = next_free;
        self.seq = seq.wrapping_add(1);
        let key = (policy.priority, seq);
        if exact {
            let b = self.bucket(policy.dir, &policy.sel.src.addr(), &policy.sel.dst.addr());
            let mut prev = NIL;
            let mut cur = self.buckets.get(b).copied().unwrap_or(NIL);
            while cur != NIL && self.key(cur) <= key {
                prev = cur;
                cur = self.slot(cur).map_or(NIL, |s| s.next);
            }
            self.set_next(i, cur);
            if prev == NIL {
                if let Some(h) = self.buckets.get_mut(b) {
                    *h = i;
                }
            } else {
                self.set_next(prev, i);
            }
        } else {
            let n = self.n_order;
            let pos = {
                let ord = self.order.get(..n).unwrap_or(&[]);
                ord.partition_point(|&j| self.key(j) <= key)
            };
            let end = n.wrapping_add(1);
            let o = self.order.get_mut(pos..end).ok_or(Error::TableFull)?;
            o.rotate_right(1);
            if let Some(x) = o.first_mut() {
                *x = i;
            }
            self.n_order = end;
        }
        self.len = self.len.wrapping_add(1);
        Ok(PolicyId(i))
    }

    /// The policy behind `id`.
    pub fn get(&self, id: PolicyId) -> Option<&Policy> {
        self.slot(id.0).filter(|s| s.live).map(|s| &s.policy)
    }

    /// Removes a policy and returns it.
    pub fn remove(&mut self, id: PolicyId) -> Result<Policy> {
        let i = id.0;
        let s = *self.slot(i).filter(|s| s.live).ok_or(Error::NotFound)?;
        if s.exact {
            let p = &s.policy;
            let b = self.bucket(p.dir, &p.sel.src.addr(), &p.sel.dst.addr());
            let mut prev = NIL;
            let mut cur = self.buckets.get(b).copied().unwrap_or(NIL);
            for _ in 0..self.slots.len() {
                if cur == NIL {
                    break;
                }
                let next = self.slot(cur).map_or(NIL, |x| x.next);
                if cur == i {
                    if prev == NIL {
                        if let Some(h) = self.buckets.get_mut(b) {
                            *h = next;
                        }
                    } else {
                        self.set_next(prev, next);
                    }
                    break;
                }
                prev = cur;
                cur = next;
            }
        } else {
            let key = (s.policy.priority, s.seq);
            let n = self.n_order;
            let pos = {
                let ord = self.order.get(..n).unwrap_or(&[]);
                ord.partition_point(|&j| self.key(j) < key)
            };
            let o = self.order.get_mut(pos..n).ok_or(Error::NotFound)?;
            if o.first() != Some(&i) {
                return Err(Error::NotFound);
            }
            o.rotate_left(1);
            self.n_order = n.saturating_sub(1);
        }
        let f = self.free;
        if let Some(x) = self.slots.get_mut(i as usize) {
            x.live = false;
            x.next = f;
        }
        self.free = i;
        self.len = self.len.saturating_sub(1);
        Ok(s.policy)
    }

    /// First policy (by priority, then insertion) of direction `dir` whose
    /// selector matches `flow`.
    pub fn lookup(&self, dir: Direction, flow: &Flow) -> Option<(PolicyId, &Policy)> {
        let mut best: Option<(u32, (u32, u64))> = None;
        let mut cur = self
            .buckets
            .get(self.bucket(dir, &flow.src, &flow.dst))
            .copied()
            .unwrap_or(NIL);
        for _ in 0..self.slots.len() {
            let Some(s) = self.slot(cur) else { break };
            if s.policy.dir == dir && s.policy.sel.matches(flow) {
                best = Some((cur, (s.policy.priority, s.seq)));
                break;
            }
            cur = s.next;
        }
        for &j in self.order.get(..self.n_order).unwrap_or(&[]) {
            let Some(s) = self.slot(j) else { continue };
            if let Some((_, bk)) = best {
                if (s.policy.priority, s.seq) >= bk {
                    break;
                }
            }
            if s.policy.dir == dir && s.policy.sel.matches(flow) {
                return Some((PolicyId(j), &s.policy));
            }
        }
        best.and_then(|(i, _)| self.slot(i).map(|s| (PolicyId(i), &s.policy)))
    }

    /// Installed policies in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (PolicyId, &Policy)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (PolicyId(i as u32), &s.policy))
    }
}
