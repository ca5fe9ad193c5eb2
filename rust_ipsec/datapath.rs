// SPDX-License-Identifier: GPL-2.0
//! The netfilter hooks: outbound policy lookup and ESP encapsulation after
//! routing; inbound ESP (raw and UDP-encapsulated) decapsulation and the
//! inbound policy check before local delivery.
//!
//! Locking: the namespace's spinlock (BHs off) covers only the policy and SA
//! lookups. The SA found is then used under an RCU read section (removed SAs
//! are freed after a grace period), GSO segmentation and the crypto run
//! without any lock, and the SA's own lock is held just long enough to take
//! a sequence number or to check and commit the replay window. Two CPUs can
//! so encrypt for one SA, or for different SAs of one namespace, at once.

use core::ffi::c_void;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use ripsec_esp::{
    parse_inbound, Direction, Error as EspError, Flow, LifetimeEvent, PacketBuf, PolicyAction,
    TemplateMode, NAT_T_PORT, PROTO_ESP, PROTO_UDP,
};

use crate::events::{self, Event};
use crate::ffi::{self, SkBuff, NF_ACCEPT, NF_DROP, NF_STOLEN};
use crate::lock::RcuGuard;
use crate::netns::{self, Counter, NetState};
use crate::tables::{self, KSa, SaDir};

const PROTO_TCP: u8 = 6;
const PROTO_SCTP: u8 = 132;
const PROTO_ICMPV6: u8 = 58;

/// The first bytes of the packet from its network header, copied out (the
/// skb may be non-linear).
fn peek(skb: *mut SkBuff, buf: &mut [u8]) -> usize {
    let mut view = ffi::SkbView::default();
    // SAFETY: `skb` is the packet the hook is processing; `view` is writable.
    unsafe { ffi::ripsec_skb_view(skb, &mut view) };
    let avail = (view.len as usize).saturating_sub((view.network as usize).saturating_sub(view.data as usize));
    let n = core::cmp::min(buf.len(), avail);
    // SAFETY: copies `n <= avail` bytes from the network header into `buf`.
    if unsafe { ffi::ripsec_skb_copy(skb, 0, buf.as_mut_ptr(), n as u32) } != 0 {
        return 0;
    }
    n
}

fn be16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.saturating_add(2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// Addresses, protocol and ports of a packet's headers, for policy lookup.
fn flow_of(h: &[u8]) -> Option<Flow> {
    let version = h.first()? >> 4;
    let (src, dst, proto, l4) = if version == 4 {
        let ihl = usize::from(h.first()? & 0xf) * 4;
        let frag = be16(h, 6) & 0x1fff != 0;
        let src = IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(h.get(12..16)?).ok()?));
        let dst = IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(h.get(16..20)?).ok()?));
        // Ports are only in the first fragment.
        (src, dst, *h.get(9)?, if frag { None } else { Some(ihl) })
    } else if version == 6 {
        let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(h.get(8..24)?).ok()?));
        let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(h.get(24..40)?).ok()?));
        (src, dst, *h.get(6)?, Some(40))
    } else {
        return None;
    };
    let (sport, dport) = match (proto, l4) {
        (PROTO_TCP | PROTO_UDP | PROTO_SCTP, Some(o)) => (be16(h, o), be16(h, o.saturating_add(2))),
        _ => (0, 0),
    };
    Some(Flow { src, dst, proto, sport, dport })
}

/// IPv6 neighbour and router discovery (ICMPv6 types 133 to 137) is never
/// subject to IPsec policy, as libreswan's default bypass policies have it:
/// the link-layer address of a peer must be resolvable before any SA exists,
/// and after a failover the package address answers from a node that holds
/// none of the old SAs. (Without extension headers: ND never carries them.)
fn is_neighbour_discovery(h: &[u8], flow: &Flow) -> bool {
    flow.proto == PROTO_ICMPV6 && flow.src.is_ipv6() && matches!(h.get(40), Some(133..=137))
}

/// RFC 3948 demultiplexing on port 4500, as Linux does it: ESP when the
/// payload is longer than an ESP header and does not start with the 4-byte
/// zero non-ESP marker; anything else (IKE, keepalives) goes to the socket.
fn udp_carries_esp(h: &[u8]) -> bool {
    let l4 = match h.first().map(|b| b >> 4) {
        Some(4) => h.first().map_or(0, |b| usize::from(b & 0xf) * 4),
        Some(6) => 40,
        _ => return false,
    };
    let udp_len = usize::from(be16(h, l4.saturating_add(4)));
    let payload = udp_len.saturating_sub(8);
    let marker = h.get(l4.saturating_add(8)..l4.saturating_add(12));
    payload > 8 && marker.is_some_and(|m| m != [0, 0, 0, 0])
}

/// The skb's linear buffer as a `PacketBuf` starting at the network header.
///
/// # Safety
/// The skb must be linear and private (`ripsec_skb_prepare`), and nothing
/// else may touch its data while the result lives.
unsafe fn packet_buf<'a>(skb: *mut SkBuff) -> Option<PacketBuf<'a>> {
    let mut v = ffi::SkbView::default();
    // SAFETY: `skb` is a live packet.
    unsafe { ffi::ripsec_skb_view(skb, &mut v) };
    let before = (v.network as usize).checked_sub(v.data as usize)?;
    let len = (v.len as usize).checked_sub(before)?;
    // SAFETY: head..head+end is the skb's buffer, exclusively ours per the contract.
    let buf = unsafe { core::slice::from_raw_parts_mut(v.head as *mut u8, v.end as usize) };
    PacketBuf::new(buf, v.network as usize, len).ok()
}

fn expire_event(sa: &KSa, ev: LifetimeEvent) -> Option<Event> {
    match ev {
        LifetimeEvent::None => None,
        LifetimeEvent::Soft => Some(sa.expire_event(false)),
        LifetimeEvent::Hard | LifetimeEvent::SoftAndHard => Some(sa.expire_event(true)),
    }
}

/// Removes an SA whose hard lifetime ran out, unless something else did.
fn retire_expired(st: &NetState, slot: u32, sa: *const KSa) {
    let removed = st.locked.lock().tables.as_mut().is_some_and(|t| t.remove_if(slot, sa));
    if removed {
        tables::reap_later(st);
    }
}

/// Encapsulates the packets of `list` (one packet, or GSO segments) with
/// `sa`. Returns the encapsulated ones, linked, and whether the SA's hard
/// lifetime ran out.
fn encapsulate_list(st: &NetState, sa: &KSa, mut list: *mut SkBuff, ev: &mut Option<Event>) -> (*mut SkBuff, bool) {
    let (mut head, mut tail): (*mut SkBuff, *mut SkBuff) = (core::ptr::null_mut(), core::ptr::null_mut());
    let mut hard = false;
    while !list.is_null() {
        let skb = list;
        // SAFETY: `skb` is on our private list.
        list = unsafe { ffi::ripsec_skb_unlink_next(skb) };
        let mut v = ffi::SkbView::default();
        // SAFETY: live packet.
        unsafe { ffi::ripsec_skb_view(skb, &mut v) };
        let hr = sa.xfrm.headroom_needed();
        let tr = sa.xfrm.tailroom_needed(v.len as usize);
        let overhead = hr.saturating_add(tr) as u32;
        // SAFETY: live packet, owned by this hook.
        let ok = unsafe { ffi::ripsec_skb_prepare(skb, hr as u32, tr as u32) } == 0;
        if !ok {
            st.bump(Counter::OutErrors);
            // SAFETY: ours to free.
            unsafe { ffi::ripsec_skb_free(skb) };
            continue;
        }
        // SAFETY: live packet with a route.
        unsafe { ffi::ripsec_skb_lower_pmtu(skb, overhead) };
        // SAFETY: prepared above: linear and private; we hold the only reference.
        let Some(mut pkt) = (unsafe { packet_buf(skb) }) else {
            st.bump(Counter::OutErrors);
            // SAFETY: ours to free.
            unsafe { ffi::ripsec_skb_free(skb) };
            continue;
        };
        let plain = pkt.len() as u64;
        let (res, lev) = sa.encapsulate(&mut pkt);
        if lev != LifetimeEvent::None {
            hard |= matches!(lev, LifetimeEvent::Hard | LifetimeEvent::SoftAndHard);
            *ev = expire_event(sa, lev).or(ev.take());
        }
        match res {
            Ok(()) => {
                st.bump(Counter::OutPackets);
                st.add(Counter::OutBytes, plain);
                let (start, len) = (pkt.start() as u32, pkt.len() as u32);
                // SAFETY: the packet now spans head+start..+len.
                unsafe { ffi::ripsec_skb_output_prepare(skb, start, len) };
                if tail.is_null() {
                    head = skb;
                } else {
                    // SAFETY: `tail` is on our output list.
                    unsafe { ffi::ripsec_skb_set_next(tail, skb) };
                }
                tail = skb;
            }
            Err(e) => {
                st.bump(if e == EspError::SeqWouldWrap || e == EspError::HardExpired {
                    Counter::OutSeqExhausted
                } else {
                    Counter::OutErrors
                });
                // SAFETY: ours to free.
                unsafe { ffi::ripsec_skb_free(skb) };
            }
        }
    }
    (head, hard)
}

fn output(st: &NetState, skb: *mut SkBuff, pf: u8, sk: *mut ffi::Sock) -> u32 {
    // SAFETY: live packet.
    if unsafe { ffi::ripsec_skb_transformed(skb, pf) } != 0 {
        return NF_ACCEPT;
    }
    let mut hdr = [0u8; 64];
    let n = peek(skb, &mut hdr);
    let Some(flow) = hdr.get(..n).and_then(flow_of) else { return NF_ACCEPT };
    if is_neighbour_discovery(hdr.get(..n).unwrap_or(&[]), &flow) {
        return NF_ACCEPT;
    }
    let rcu = RcuGuard::new();
    let (slot, sa, tunnel) = {
        let mut g = st.locked.lock();
        let now = events::now_ms();
        let locked = &mut *g;
        let Some(t) = locked.tables.as_mut() else { return NF_ACCEPT };
        let Some((pid, policy)) = t.policies.spd.lookup(Direction::Out, &flow) else { return NF_ACCEPT };
        let tmpl = match policy.action {
            PolicyAction::Bypass => return NF_ACCEPT,
            PolicyAction::Discard => {
                st.bump(Counter::OutPolicyDrop);
                return NF_DROP;
            }
            PolicyAction::Protect(tmpl) => tmpl,
        };
        let (peer, tunnel) = match tmpl.mode {
            TemplateMode::Tunnel { remote, .. } => (remote, true),
            TemplateMode::Transport => (flow.dst, false),
        };
        let Some((slot, sa)) = t.find_out(tmpl.reqid, &peer).and_then(|s| Some((s, t.sa_rcu(s, &rcu)?))) else {
            // No SA yet: the packet is dropped (not queued) and the daemon told,
            // at most once a second per policy and peer.
            st.bump(Counter::OutNoSa);
            let pid = pid.index() as u32;
            let due = t.limiter.allow_acquire(&peer, pid, now).is_some();
            drop(g);
            if due {
                events::send(st, Event::Acquire { policy: pid, reqid: tmpl.reqid, src: flow.src, dst: flow.dst });
            }
            return NF_DROP;
        };
        (slot, sa, tunnel)
    };
    // Segmenting and encrypting happen without the namespace lock.
    // GSO packets are segmented first: each segment gets its own ESP header.
    // SAFETY: live packet, ours from here on (the hook returns NF_STOLEN).
    let list = if unsafe { ffi::ripsec_skb_is_gso(skb) } != 0 {
        // SAFETY: consumes `skb`, returns the segments or null.
        unsafe { ffi::ripsec_skb_segment(skb) }
    } else {
        skb
    };
    let mut event = None;
    let (list, hard) = encapsulate_list(st, &sa, list, &mut event);
    if hard {
        retire_expired(st, slot, sa.as_ptr());
    }
    drop(sa);
    drop(rcu);
    if let Some(ev) = event {
        events::send(st, ev);
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: our output list.
        let next = unsafe { ffi::ripsec_skb_unlink_next(cur) };
        // SAFETY: `st.net` is this namespace; consumes `cur`.
        if unsafe { ffi::ripsec_skb_output(st.net, sk, cur, i32::from(tunnel)) } < 0 {
            st.bump(Counter::OutErrors);
        }
        cur = next;
    }
    NF_STOLEN
}

fn input(st: &NetState, skb: *mut SkBuff) -> u32 {
    let mut hdr = [0u8; 64];
    let n = peek(skb, &mut hdr);
    let Some(flow) = hdr.get(..n).and_then(flow_of) else { return NF_ACCEPT };
    let is_esp = flow.proto == PROTO_ESP || (flow.proto == PROTO_UDP && flow.dport == NAT_T_PORT);
    if is_neighbour_discovery(hdr.get(..n).unwrap_or(&[]), &flow) {
        return NF_ACCEPT;
    }
    if !is_esp {
        return cleartext_in(st, skb, &flow);
    }
    if flow.proto == PROTO_UDP && !udp_carries_esp(hdr.get(..n).unwrap_or(&[])) {
        // IKE (non-ESP marker) and keepalives belong to the daemon's socket,
        // whatever their length: userspace judges IKE, as with Linux XFRM.
        return NF_ACCEPT;
    }
    // SAFETY: live packet, owned by this hook.
    if unsafe { ffi::ripsec_skb_prepare(skb, 0, 0) } != 0 {
        st.bump(Counter::InMalformed);
        return NF_DROP;
    }
    // SAFETY: prepared: linear and private; we hold the only reference.
    let Some(mut pkt) = (unsafe { packet_buf(skb) }) else {
        st.bump(Counter::InMalformed);
        return NF_DROP;
    };
    let info = match parse_inbound(&pkt) {
        Ok(i) => i,
        // IKE and NAT keepalives on port 4500 belong to the daemon's socket.
        Err(EspError::IkeMarker | EspError::NatKeepalive | EspError::NotEsp) => return NF_ACCEPT,
        Err(_) => {
            st.bump(Counter::InMalformed);
            return NF_DROP;
        }
    };
    let rcu = RcuGuard::new();
    let (slot, sa) = {
        let mut g = st.locked.lock();
        let now = events::now_ms();
        let locked = &mut *g;
        let Some(t) = locked.tables.as_mut() else { return NF_ACCEPT };
        if t.is_empty() {
            return NF_ACCEPT;
        }
        let Some((slot, sa)) = t.find(info.spi, &info.dst).and_then(|s| Some((s, t.sa_rcu(s, &rcu)?))) else {
            st.bump(Counter::InNoSa);
            let event = t
                .limiter
                .allow_miss(&info.src, now)
                .map(|count| Event::SpiMiss { spi: info.spi, src: info.src, dst: info.dst, udp: info.udp, count });
            drop(g);
            if let Some(ev) = event {
                events::send(st, ev);
            }
            return hold(st, skb, info.spi);
        };
        (slot, sa)
    };
    if sa.dir != SaDir::In {
        st.bump(Counter::InNoSa);
        return NF_DROP;
    }
    let (d, lev) = match sa.decapsulate(&mut pkt, &info) {
        Ok(x) => x,
        Err(e) => {
            st.bump(match e {
                EspError::AuthFailed => Counter::InAuthFail,
                EspError::Replay => Counter::InReplay,
                EspError::TooOld => Counter::InTooOld,
                _ => Counter::InMalformed,
            });
            return NF_DROP;
        }
    };
    st.bump(Counter::InPackets);
    st.add(Counter::InBytes, d.payload_len as u64);
    let tunnel = sa.tunnel;
    let event = expire_event(&sa, lev);
    if matches!(lev, LifetimeEvent::Hard | LifetimeEvent::SoftAndHard) {
        retire_expired(st, slot, sa.as_ptr());
    }
    drop(sa);
    drop(rcu);
    let (start, len) = (pkt.start() as u32, pkt.len() as u32);
    if let Some(ev) = event {
        events::send(st, ev);
    }
    if tunnel {
        // SAFETY: consumes `skb`: the inner packet is received anew.
        if unsafe { ffi::ripsec_skb_input_tunnel(skb, start, len) } != 0 {
            st.bump(Counter::InMalformed);
        }
        NF_STOLEN
    } else {
        // SAFETY: the decrypted packet spans head+start..+len.
        unsafe { ffi::ripsec_skb_input_transport(skb, start, len) };
        NF_ACCEPT
    }
}

/// ESP with an unknown SPI: held for a moment in case its SA is being
/// installed (see `ripsec_skb_hold` in the glue), else dropped.
fn hold(st: &NetState, skb: *mut SkBuff, spi: u32) -> u32 {
    // SAFETY: live, unmodified packet owned by this hook; on success the
    // glue owns it and we return NF_STOLEN.
    let r = unsafe { ffi::ripsec_skb_hold(st.net, skb, spi) };
    if r < 0 {
        return NF_DROP;
    }
    st.bump(Counter::InHeld);
    st.add(Counter::InHeldDropped, r as u64);
    NF_STOLEN
}

/// Cleartext that an inbound protect policy covers must have come through an
/// SA (a tunnel-mode inner packet is received while the glue marks this CPU as
/// decapsulating); anything else is dropped.
fn cleartext_in(st: &NetState, skb: *mut SkBuff, flow: &Flow) -> u32 {
    let g = st.locked.lock();
    let Some(t) = g.tables.as_ref() else { return NF_ACCEPT };
    match t.policies.spd.lookup(Direction::In, flow).map(|(_, p)| p.action) {
        Some(PolicyAction::Protect(_)) => {
            drop(g);
            // SAFETY: live packet.
            if unsafe { ffi::ripsec_skb_decapsulated(skb) } != 0 {
                NF_ACCEPT
            } else {
                st.bump(Counter::InPolicyDrop);
                NF_DROP
            }
        }
        Some(PolicyAction::Discard) => {
            st.bump(Counter::InPolicyDrop);
            NF_DROP
        }
        _ => NF_ACCEPT,
    }
}

#[no_mangle]
extern "C" fn ripsec_rs_hook(
    state: *mut c_void,
    skb: *mut SkBuff,
    pf: u8,
    hooknum: u8,
    sk: *mut ffi::Sock,
    _net: *mut ffi::Net,
) -> u32 {
    // SAFETY: the glue passes this namespace's live state (hooks are
    // unregistered before it is freed).
    let st = unsafe { netns::from_ptr(state) };
    if !st.active.load(core::sync::atomic::Ordering::Acquire) {
        return NF_ACCEPT;
    }
    match hooknum {
        ffi::NF_INET_POST_ROUTING => output(st, skb, pf, sk),
        ffi::NF_INET_LOCAL_IN => input(st, skb),
        _ => NF_ACCEPT,
    }
}
