// SPDX-License-Identifier: GPL-2.0
//! Generic netlink commands: SA and policy add / delete / get / dump / flush.
//! Requests arrive validated against the family's `nla_policy`; what the
//! policy cannot express (address families, key lengths, combinations) is
//! checked here, and every rejection carries an extended-ack message.

use core::ffi::c_void;
use core::net::IpAddr;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::prelude::*;
use ripsec_esp::{
    AeadAlg, Direction, Encap, EspTransform, Lifetime, LifetimeLimits, Mode, Policy, PolicyAction, PortRange,
    Prefix, ProtectTemplate, ReplayWindow, SaConfig, MAX_REPLAY_WINDOW, Selector, SeqCounter, TemplateEncap, TemplateMode,
};

use crate::abi;
use crate::ffi;
use crate::fpu::{self, FpuBox};
use crate::kaead::{self, KernelAead};
use crate::netns::{self, Counter, NetState};
use crate::nlmsg::{Attrs, Msg, EOPNOTSUPP};
use crate::lock::BhLock;
use crate::tables::{self, KSa, SaDesc, SaDir, SaState, Tables};

/// A rejection: errno plus the extended-ack text (static: extack keeps the pointer).
struct Reject(Error, &'static CStr);

type CtlResult<T = ()> = core::result::Result<T, Reject>;

macro_rules! reject {
    ($err:expr, $msg:literal) => {
        Reject($err, kernel::c_str!($msg))
    };
}

fn alg_of(v: u8) -> Option<AeadAlg> {
    match v {
        abi::ALG_AES128_GCM16 => Some(AeadAlg::Aes128Gcm),
        abi::ALG_AES256_GCM16 => Some(AeadAlg::Aes256Gcm),
        abi::ALG_CHACHA20_POLY1305 => Some(AeadAlg::ChaCha20Poly1305),
        _ => None,
    }
}

fn alg_id(a: AeadAlg) -> u8 {
    match a {
        AeadAlg::Aes128Gcm => abi::ALG_AES128_GCM16,
        AeadAlg::Aes256Gcm => abi::ALG_AES256_GCM16,
        AeadAlg::ChaCha20Poly1305 => abi::ALG_CHACHA20_POLY1305,
    }
}

fn req_addr(a: &Attrs, ty: u16, missing: Reject) -> CtlResult<IpAddr> {
    match a.addr(ty) {
        Ok(Some(x)) => Ok(x),
        Ok(None) => Err(missing),
        Err(()) => Err(reject!(EINVAL, "addresses are 4 (IPv4) or 16 (IPv6) bytes")),
    }
}

fn encap_of(a: &Attrs) -> CtlResult<Option<(u16, u16)>> {
    match (a.u16(abi::A_ENCAP_SPORT), a.u16(abi::A_ENCAP_DPORT)) {
        (None, None) => Ok(None),
        (Some(s), Some(d)) => Ok(Some((s, d))),
        _ => Err(reject!(EINVAL, "ESP-in-UDP needs both ENCAP_SPORT and ENCAP_DPORT")),
    }
}

/// Allocates the namespace's tables and hooks on first use (process context).
fn ensure_tables(st: &NetState) -> CtlResult {
    if st.active.load(core::sync::atomic::Ordering::Acquire) {
        return Ok(());
    }
    let fresh = Tables::new(st.seed).map_err(|_| reject!(ENOMEM, "out of memory for the SA tables"))?;
    {
        let mut g = st.locked.lock();
        if g.tables.is_none() {
            g.tables = Some(fresh);
        }
    }
    // SAFETY: `st.net` is the namespace this state belongs to; process context.
    if unsafe { ffi::ripsec_glue_hooks_enable(st.net) } != 0 {
        return Err(reject!(ENOMEM, "could not register the netfilter hooks"));
    }
    st.active.store(true, core::sync::atomic::Ordering::Release);
    // SAFETY: `st.net` is the live namespace; process context.
    unsafe { ffi::ripsec_glue_sweep_start(st.net) };
    Ok(())
}

/// SA add, or with `update` the replacement of an existing SA (same SPI and
/// destination) as a whole: new keys and parameters, counters from zero. The
/// datapath sees the old SA or the new one, never neither.
#[inline(never)]
fn sa_add(st: &NetState, a: &Attrs, update: bool) -> CtlResult {
    let spi = a.u32(abi::A_SPI).ok_or(reject!(EINVAL, "SPI is required"))?;
    let dir = match a.u8(abi::A_DIR) {
        Some(abi::DIR_IN) => SaDir::In,
        Some(abi::DIR_OUT) => SaDir::Out,
        Some(_) => return Err(reject!(EINVAL, "an SA is inbound or outbound")),
        None => return Err(reject!(EINVAL, "DIR is required")),
    };
    let src = req_addr(a, abi::A_SRC, reject!(EINVAL, "SRC is required"))?;
    let dst = req_addr(a, abi::A_DST, reject!(EINVAL, "DST is required"))?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(reject!(EINVAL, "SRC and DST must be of one address family"));
    }
    let alg = a.u8(abi::A_ALG).and_then(alg_of).ok_or(reject!(EINVAL, "ALG is required"))?;
    let key = a.get(abi::A_KEY).ok_or(reject!(EINVAL, "KEY is required"))?;
    if key.len() != alg.keymat_len() {
        return Err(reject!(EINVAL, "KEY length must be the algorithm's key plus a 4-byte salt"));
    }
    let tunnel = match a.u8(abi::A_MODE) {
        Some(abi::MODE_TUNNEL) => true,
        Some(_) | None => false,
    };
    let encap = encap_of(a)?;
    let reqid = a.u32(abi::A_REQID).unwrap_or(0);
    if dir == SaDir::Out && reqid == u32::MAX {
        return Err(reject!(EINVAL, "REQID 0xffffffff is reserved"));
    }
    let replay_window = a.u32(abi::A_REPLAY_WINDOW).unwrap_or(64);
    if replay_window > u32::from(MAX_REPLAY_WINDOW) {
        return Err(reject!(EINVAL, "REPLAY_WINDOW is at most 4096"));
    }
    let limit = |ty| a.u64(ty).filter(|&v| v != 0).unwrap_or(u64::MAX);
    // Time limits count from now, in the clock the sweep reads.
    let now = crate::events::now_ms();
    let at = |ty| a.u64(ty).filter(|&v| v != 0).map_or(u64::MAX, |s: u64| now.saturating_add(s.saturating_mul(1000)));
    let (soft_at, hard_at) = (at(abi::A_LIFE_SOFT_SECS), at(abi::A_LIFE_HARD_SECS));
    let cfg = SaConfig {
        spi,
        alg,
        keymat: key,
        mode: if tunnel { Mode::Tunnel { src, dst } } else { Mode::Transport },
        encap: match encap {
            Some((sport, dport)) => Encap::Udp { sport, dport },
            None => Encap::None,
        },
        esn: a.has(abi::A_ESN),
        replay_window: replay_window as u16,
        tfc_pad: u16::try_from(a.u32(abi::A_TFC_PAD).unwrap_or(0)).map_err(|_| reject!(EINVAL, "TFC_PAD is at most 65535"))?,
        ttl: 64,
        lifetime: LifetimeLimits {
            soft_bytes: limit(abi::A_LIFE_SOFT_BYTES),
            hard_bytes: limit(abi::A_LIFE_HARD_BYTES),
            soft_packets: limit(abi::A_LIFE_SOFT_PACKETS),
            hard_packets: limit(abi::A_LIFE_HARD_PACKETS),
        },
    };
    let (xfrm, kaead) = build_sa(&cfg)?;
    let replay = ReplayWindow::new(cfg.replay_window, cfg.esn).map_err(|_| reject!(EINVAL, "REPLAY_WINDOW is at most 4096"))?;
    let state = SaState { seq: SeqCounter::new(cfg.esn), replay, lifetime: Lifetime::new(cfg.lifetime) };
    let state = BhLock::new_owned(state).map_err(|_| reject!(ENOMEM, "out of memory"))?;
    let desc = SaDesc {
        spi,
        alg: alg_id(alg),
        tunnel,
        encap,
        esn: cfg.esn,
        replay_window,
        reqid,
        owner: a.u64(abi::A_OWNER).unwrap_or(0),
        soft_at,
        hard_at,
    };
    let ksa = KSa::new(xfrm, kaead, state, dir, (src, dst), desc);
    let ksa = KBox::new(ksa, GFP_KERNEL).map_err(|_| reject!(ENOMEM, "out of memory"))?;
    ensure_tables(st)?;
    // Growing allocates, so it happens outside the lock; another writer may
    // have grown the indexes meanwhile, which `grow` tolerates.
    let need = st.locked.lock().tables.as_ref().and_then(Tables::growth_needed);
    let growth = match need {
        Some(n) => Some(Tables::alloc_growth(n, st.seed).map_err(|_| reject!(ENOMEM, "out of memory growing the SA tables"))?),
        None => None,
    };
    let failed = {
        let mut g = st.locked.lock();
        let t = g.tables.as_mut().ok_or(reject!(ENODEV, "namespace is going away"))?;
        if let (Some(gr), Some(_)) = (growth, t.growth_needed()) {
            t.grow(gr).map_err(|_| reject!(ENOMEM, "out of memory growing the SA tables"))?;
        }
        if update {
            let old = t.find(spi, &dst).ok_or(reject!(ENOENT, "no SA with this SPI and destination to update"))?;
            t.remove(old);
        }
        t.insert(ksa).err()
    };
    if update {
        tables::reap_later(st);
    }
    match failed {
        None => {
            if dir == SaDir::In && !update {
                // SAFETY: process context, no lock held: held packets are
                // received anew from here.
                let n = unsafe { ffi::ripsec_skb_hold_release(st.net, spi) };
                st.add(Counter::InHeldReceived, u64::from(n));
            }
            Ok(())
        }
        // The rejected SA (and its keys) is freed here, outside the lock.
        Some((e, _sa)) if e == EEXIST => Err(reject!(EEXIST, "an SA with this SPI and destination exists")),
        Some((_, _sa)) => Err(reject!(ENOSPC, "the SA table is full")),
    }
}

type Built = (FpuBox<EspTransform>, Option<KernelAead>);

struct BuildJob<'a, 'k> {
    cfg: &'a SaConfig<'k>,
    out: Option<CtlResult<Built>>,
}

#[inline(never)]
fn build_sa_here(cfg: &SaConfig<'_>) -> CtlResult<Built> {
    let room = KBox::<EspTransform>::new_uninit(GFP_KERNEL).map_err(|_| reject!(ENOMEM, "out of memory"))?;
    // Key setup runs the built-in AEAD's SIMD code.
    let sa = fpu::section(|| EspTransform::new(cfg).map(|x| KBox::write(room, x)))
        .ok_or(reject!(EBUSY, "the FPU is not usable here"))?
        .map_err(|_| reject!(EINVAL, "the SA parameters are inconsistent"))?;
    let sa = FpuBox::new(sa);
    let kaead = kaead::for_sa(cfg.alg, cfg.keymat)
        .map_err(|e| reject!(e, "aead=kernel: the kernel crypto API cannot provide this algorithm"))?;
    Ok((sa, kaead))
}

extern "C" fn build_job(arg: *mut c_void) {
    // SAFETY: `build_sa` passes its own `BuildJob` and waits for this call.
    let job = unsafe { &mut *arg.cast::<BuildJob<'_, '_>>() };
    job.out = Some(build_sa_here(job.cfg));
}

/// Builds an SA (key schedules included) on a worker's stack.
fn build_sa(cfg: &SaConfig<'_>) -> CtlResult<Built> {
    let mut job = BuildJob { cfg, out: None };
    // SAFETY: `job` outlives the call: the glue waits for the worker to finish.
    unsafe { ffi::ripsec_glue_call_on_worker(build_job, (&mut job as *mut BuildJob<'_, '_>).cast()) };
    job.out.unwrap_or(Err(reject!(ENOMEM, "could not run SA setup")))
}

#[inline(never)]
fn sa_key(a: &Attrs) -> CtlResult<(u32, IpAddr)> {
    let spi = a.u32(abi::A_SPI).ok_or(reject!(EINVAL, "SPI is required"))?;
    let dst = req_addr(a, abi::A_DST, reject!(EINVAL, "DST is required"))?;
    Ok((spi, dst))
}

fn sa_del(st: &NetState, a: &Attrs) -> CtlResult {
    let (spi, dst) = sa_key(a)?;
    {
        let mut g = st.locked.lock();
        let t = g.tables.as_mut().ok_or(reject!(ENOENT, "no SA with this SPI and destination"))?;
        let slot = t.find(spi, &dst).ok_or(reject!(ENOENT, "no SA with this SPI and destination"))?;
        t.remove(slot);
    }
    tables::reap_later(st);
    Ok(())
}

fn sa_flush(st: &NetState, a: &Attrs) -> CtlResult<u32> {
    let peer = a.addr(abi::A_PEER).map_err(|()| reject!(EINVAL, "addresses are 4 or 16 bytes"))?;
    let owner = a.u64(abi::A_OWNER);
    let mut slots = KVec::new();
    {
        let g = st.locked.lock();
        if let Some(t) = g.tables.as_ref() {
            let n = t.sa_count();
            drop(g);
            // Room for the worst case, reserved outside the lock.
            slots.reserve(n + 16, GFP_KERNEL).map_err(|_| reject!(ENOMEM, "out of memory"))?;
        }
    }
    let removed = {
        let mut g = st.locked.lock();
        // With more SAs added since the reservation than it allows for, the
        // flush covers those that fit (a full scan is used then).
        g.tables.as_mut().map_or(0, |t| t.flush(peer, owner, &mut slots))
    };
    tables::reap_later(st);
    Ok(removed)
}

/// What a reply says about an SA, copied out so the reply can be built after
/// the lock is dropped (reply buffers are allocated with GFP_KERNEL).
#[derive(Clone, Copy)]
struct SaSnap {
    spi: u32,
    out: bool,
    src: IpAddr,
    dst: IpAddr,
    tunnel: bool,
    alg: u8,
    encap: Option<(u16, u16)>,
    esn: bool,
    replay_window: u32,
    reqid: u32,
    owner: u64,
    stats: [u64; abi::SA_STAT_COUNT],
}

impl From<&KSa> for SaSnap {
    fn from(sa: &KSa) -> Self {
        let out = sa.dir == SaDir::Out;
        let (seq, replayed, too_old) = {
            let s = sa.state.lock();
            let seq = if out { s.seq.peek().saturating_sub(1) } else { s.replay.top() };
            (seq, s.replay.replayed(), s.replay.too_old())
        };
        let stat = |c: &core::sync::atomic::AtomicU64| c.load(core::sync::atomic::Ordering::Relaxed);
        SaSnap {
            spi: sa.spi,
            out,
            src: sa.src,
            dst: sa.dst,
            tunnel: sa.tunnel,
            alg: sa.alg,
            encap: sa.encap,
            esn: sa.esn,
            replay_window: sa.replay_window,
            reqid: sa.reqid,
            owner: sa.owner,
            stats: [
                stat(&sa.stats.packets),
                stat(&sa.stats.bytes),
                stat(&sa.stats.auth_fail),
                replayed,
                too_old,
                seq,
            ],
        }
    }
}

fn put_sa(m: &Msg, sa: &SaSnap) -> Result {
    m.put_u32(abi::A_SPI, sa.spi)?;
    m.put_u8(abi::A_DIR, if sa.out { abi::DIR_OUT } else { abi::DIR_IN })?;
    m.put_addr(abi::A_SRC, &sa.src)?;
    m.put_addr(abi::A_DST, &sa.dst)?;
    m.put_u8(abi::A_MODE, if sa.tunnel { abi::MODE_TUNNEL } else { abi::MODE_TRANSPORT })?;
    m.put_u8(abi::A_ALG, sa.alg)?;
    if let Some((s, d)) = sa.encap {
        m.put_u16(abi::A_ENCAP_SPORT, s)?;
        m.put_u16(abi::A_ENCAP_DPORT, d)?;
    }
    if sa.esn {
        m.put_flag(abi::A_ESN)?;
    }
    m.put_u32(abi::A_REPLAY_WINDOW, sa.replay_window)?;
    m.put_u32(abi::A_REQID, sa.reqid)?;
    m.put_u64(abi::A_OWNER, sa.owner)?;
    m.put_nested_u64s(abi::A_STATS, &sa.stats)
}

fn selector_of(a: &Attrs) -> CtlResult<Selector> {
    let src = req_addr(a, abi::A_SEL_SRC, reject!(EINVAL, "SEL_SRC is required"))?;
    let dst = req_addr(a, abi::A_SEL_DST, reject!(EINVAL, "SEL_DST is required"))?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(reject!(EINVAL, "selector addresses must be of one family"));
    }
    let full = if src.is_ipv4() { 32 } else { 128 };
    let sp = Prefix::new(src, a.u8(abi::A_SEL_SRC_PLEN).unwrap_or(full))
        .map_err(|_| reject!(EINVAL, "SEL_SRC_PLEN is longer than the address"))?;
    let dp = Prefix::new(dst, a.u8(abi::A_SEL_DST_PLEN).unwrap_or(full))
        .map_err(|_| reject!(EINVAL, "SEL_DST_PLEN is longer than the address"))?;
    let range = |lo, hi| -> CtlResult<PortRange> {
        let lo = a.u16(lo).unwrap_or(0);
        let hi = a.u16(hi).unwrap_or(if lo == 0 { u16::MAX } else { lo });
        if lo > hi {
            return Err(reject!(EINVAL, "port range low end is above its high end"));
        }
        Ok(PortRange { lo, hi })
    };
    Ok(Selector {
        src: sp,
        dst: dp,
        proto: a.u8(abi::A_SEL_PROTO),
        sport: range(abi::A_SEL_SPORT_LO, abi::A_SEL_SPORT_HI)?,
        dport: range(abi::A_SEL_DPORT_LO, abi::A_SEL_DPORT_HI)?,
    })
}

fn policy_add(st: &NetState, a: &Attrs) -> CtlResult<u32> {
    let dir = match a.u8(abi::A_DIR) {
        Some(abi::DIR_IN) => Direction::In,
        Some(abi::DIR_OUT) => Direction::Out,
        Some(_) => Direction::Fwd,
        None => return Err(reject!(EINVAL, "DIR is required")),
    };
    let sel = selector_of(a)?;
    let action = match a.u8(abi::A_ACTION) {
        Some(abi::ACTION_BYPASS) => PolicyAction::Bypass,
        Some(abi::ACTION_DISCARD) => PolicyAction::Discard,
        Some(_) => {
            let tunnel = a.u8(abi::A_MODE) == Some(abi::MODE_TUNNEL);
            let mode = if tunnel {
                let l = req_addr(a, abi::A_TMPL_TUN_SRC, reject!(EINVAL, "tunnel mode needs TMPL_TUN_SRC"))?;
                let r = req_addr(a, abi::A_TMPL_TUN_DST, reject!(EINVAL, "tunnel mode needs TMPL_TUN_DST"))?;
                if l.is_ipv4() != r.is_ipv4() {
                    return Err(reject!(EINVAL, "tunnel endpoints must be of one family"));
                }
                TemplateMode::Tunnel { local: l, remote: r }
            } else {
                TemplateMode::Transport
            };
            let reqid = a.u32(abi::A_REQID).unwrap_or(0);
            if reqid == u32::MAX {
                return Err(reject!(EINVAL, "REQID 0xffffffff is reserved"));
            }
            let peer = match mode {
                TemplateMode::Tunnel { remote, .. } => remote,
                TemplateMode::Transport => sel.dst.addr(),
            };
            PolicyAction::Protect(ProtectTemplate {
                mode,
                peer,
                alg: a.u8(abi::A_ALG).and_then(alg_of).unwrap_or(AeadAlg::Aes128Gcm),
                encap: match encap_of(a)? {
                    Some((sport, dport)) => TemplateEncap::Udp { sport, dport },
                    None => TemplateEncap::Raw,
                },
                esn: a.has(abi::A_ESN),
                reqid,
            })
        }
        None => return Err(reject!(EINVAL, "ACTION is required")),
    };
    let policy = Policy { priority: a.u32(abi::A_PRIORITY).unwrap_or(1000), dir, sel, action };
    ensure_tables(st)?;
    let mut g = st.locked.lock();
    let t = g.tables.as_mut().ok_or(reject!(ENODEV, "namespace is going away"))?;
    let id = t.policies.insert(policy).map_err(|e| {
        if e == EEXIST {
            reject!(EEXIST, "an identical policy exists")
        } else {
            reject!(ENOSPC, "the policy table is full")
        }
    })?;
    Ok(id.index() as u32)
}

fn policy_del(st: &NetState, a: &Attrs) -> CtlResult {
    let want = a.u32(abi::A_POLICY_ID).ok_or(reject!(EINVAL, "POLICY_ID is required"))?;
    let mut g = st.locked.lock();
    let t = g.tables.as_mut().ok_or(reject!(ENOENT, "no policy with this id"))?;
    let id = t
        .policies
        .spd
        .iter()
        .map(|(id, _)| id)
        .find(|id| id.index() as u32 == want)
        .ok_or(reject!(ENOENT, "no policy with this id"))?;
    t.policies.spd.remove(id).map_err(|_| reject!(ENOENT, "no policy with this id"))?;
    Ok(())
}

fn policy_flush(st: &NetState) -> u32 {
    let mut g = st.locked.lock();
    let Some(t) = g.tables.as_mut() else { return 0 };
    let mut n = 0;
    // Removing the first live policy until none is left keeps this allocation-free.
    loop {
        let first = t.policies.spd.iter().map(|(id, _)| id).next();
        let Some(id) = first else { break };
        if t.policies.spd.remove(id).is_err() {
            break;
        }
        n += 1;
    }
    n
}

fn put_policy(m: &Msg, id: u32, p: &Policy) -> Result {
    m.put_u32(abi::A_POLICY_ID, id)?;
    m.put_u32(abi::A_PRIORITY, p.priority)?;
    m.put_u8(
        abi::A_DIR,
        match p.dir {
            Direction::In => abi::DIR_IN,
            Direction::Out => abi::DIR_OUT,
            Direction::Fwd => abi::DIR_FWD,
        },
    )?;
    m.put_addr(abi::A_SEL_SRC, &p.sel.src.addr())?;
    m.put_u8(abi::A_SEL_SRC_PLEN, p.sel.src.len())?;
    m.put_addr(abi::A_SEL_DST, &p.sel.dst.addr())?;
    m.put_u8(abi::A_SEL_DST_PLEN, p.sel.dst.len())?;
    if let Some(proto) = p.sel.proto {
        m.put_u8(abi::A_SEL_PROTO, proto)?;
    }
    m.put_u16(abi::A_SEL_SPORT_LO, p.sel.sport.lo)?;
    m.put_u16(abi::A_SEL_SPORT_HI, p.sel.sport.hi)?;
    m.put_u16(abi::A_SEL_DPORT_LO, p.sel.dport.lo)?;
    m.put_u16(abi::A_SEL_DPORT_HI, p.sel.dport.hi)?;
    match p.action {
        PolicyAction::Bypass => m.put_u8(abi::A_ACTION, abi::ACTION_BYPASS),
        PolicyAction::Discard => m.put_u8(abi::A_ACTION, abi::ACTION_DISCARD),
        PolicyAction::Protect(t) => {
            m.put_u8(abi::A_ACTION, abi::ACTION_PROTECT)?;
            m.put_u32(abi::A_REQID, t.reqid)?;
            m.put_u8(abi::A_ALG, alg_id(t.alg))?;
            if let TemplateMode::Tunnel { local, remote } = t.mode {
                m.put_u8(abi::A_MODE, abi::MODE_TUNNEL)?;
                m.put_addr(abi::A_TMPL_TUN_SRC, &local)?;
                m.put_addr(abi::A_TMPL_TUN_DST, &remote)?;
            } else {
                m.put_u8(abi::A_MODE, abi::MODE_TRANSPORT)?;
            }
            if let TemplateEncap::Udp { sport, dport } = t.encap {
                m.put_u16(abi::A_ENCAP_SPORT, sport)?;
                m.put_u16(abi::A_ENCAP_DPORT, dport)?;
            }
            Ok(())
        }
    }
}

/// Replies with one message built by `fill`.
fn reply(info: *mut ffi::GenlInfo, cmd: u8, fill: impl FnOnce(&Msg) -> Result) -> i32 {
    let mut hdr = core::ptr::null_mut();
    // SAFETY: `info` is the request being served.
    let skb = unsafe { ffi::ripsec_glue_reply_new(info, cmd, &mut hdr) };
    if skb.is_null() {
        return ENOMEM.to_errno();
    }
    let m = Msg { skb };
    if let Err(e) = fill(&m) {
        // SAFETY: never sent.
        unsafe { ffi::ripsec_glue_msg_free(skb) };
        return e.to_errno();
    }
    // SAFETY: consumes the message.
    unsafe { ffi::ripsec_glue_reply_send(info, skb, hdr) }
}

fn sa_get(st: &NetState, a: &Attrs, info: *mut ffi::GenlInfo) -> CtlResult<i32> {
    let (spi, dst) = sa_key(a)?;
    let snap = {
        let g = st.locked.lock();
        let t = g.tables.as_ref().ok_or(reject!(ENOENT, "no SA with this SPI and destination"))?;
        let sa = t.find(spi, &dst).and_then(|s| t.sa(s)).ok_or(reject!(ENOENT, "no SA with this SPI and destination"))?;
        SaSnap::from(sa)
    };
    Ok(reply(info, abi::CMD_SA_GET, |m| put_sa(m, &snap)))
}

#[no_mangle]
extern "C" fn ripsec_rs_nl(state: *mut c_void, cmd: u8, attrs: *mut *mut ffi::NlAttr, info: *mut ffi::GenlInfo) -> i32 {
    // SAFETY: the glue passes the live state of the requesting namespace.
    let st = unsafe { netns::from_ptr(state) };
    st.bump(netns::Counter::NlRequests);
    // SAFETY: `attrs` is `info->attrs` of this request.
    let a = unsafe { Attrs::new(attrs) };
    let r: CtlResult<i32> = match cmd {
        abi::CMD_SA_ADD => sa_add(st, &a, false).map(|()| 0),
        abi::CMD_SA_UPDATE => sa_add(st, &a, true).map(|()| 0),
        abi::CMD_SA_DEL => sa_del(st, &a).map(|()| 0),
        abi::CMD_SA_GET => sa_get(st, &a, info),
        abi::CMD_SA_FLUSH => sa_flush(st, &a).map(|n| reply(info, cmd, |m| m.put_u32(abi::A_FLUSHED, n))),
        abi::CMD_POLICY_ADD => policy_add(st, &a).map(|id| reply(info, cmd, |m| m.put_u32(abi::A_POLICY_ID, id))),
        abi::CMD_POLICY_DEL => policy_del(st, &a).map(|()| 0),
        abi::CMD_POLICY_FLUSH => {
            let n = policy_flush(st);
            Ok(reply(info, cmd, |m| m.put_u32(abi::A_FLUSHED, n)))
        }
        _ => Err(reject!(EOPNOTSUPP(), "unknown command")),
    };
    match r {
        Ok(rc) => rc,
        Err(Reject(e, msg)) => {
            // SAFETY: `msg` is a static C string, as extack requires.
            unsafe { ffi::ripsec_glue_set_err(info, msg.as_char_ptr()) };
            e.to_errno()
        }
    }
}

/// One dump step: entries from `*cursor` on, as many as fit; returns the bytes
/// written (0 ends the dump) or a negative errno.
#[no_mangle]
extern "C" fn ripsec_rs_nl_dump(
    state: *mut c_void,
    cmd: u8,
    skb: *mut ffi::SkBuff,
    cb: *mut ffi::NetlinkCallback,
    cursor: *mut u64,
) -> i32 {
    // SAFETY: the glue passes the live state of the requesting namespace.
    let st = unsafe { netns::from_ptr(state) };
    // SAFETY: `cursor` is `cb->args[0]`, private to this dump.
    let cur = unsafe { &mut *cursor };
    let start = *cur;
    let g = st.locked.lock();
    let Some(t) = g.tables.as_ref() else { return 0 };
    let mut written = 0;
    let mut emit = |index: u64, fill: &dyn Fn(&Msg) -> Result| -> bool {
        // SAFETY: `skb`/`cb` are this dump's buffer and callback.
        let hdr = unsafe { ffi::ripsec_glue_dump_begin(skb, cb, cmd) };
        if hdr.is_null() {
            return false;
        }
        let m = Msg { skb };
        if fill(&m).is_err() {
            // SAFETY: cancels the entry just begun.
            unsafe { ffi::ripsec_glue_msg_cancel(skb, hdr) };
            return false;
        }
        // SAFETY: ends the entry just filled.
        unsafe { ffi::ripsec_glue_msg_end(skb, hdr) };
        *cur = index + 1;
        written += 1;
        true
    };
    match cmd {
        abi::CMD_SA_GET => {
            for (i, s) in t.sas.as_slice().iter().enumerate().skip(start as usize) {
                if let Some(sa) = s.as_deref() {
                    let snap = SaSnap::from(sa);
                    if !emit(i as u64, &|m| put_sa(m, &snap)) {
                        break;
                    }
                }
            }
        }
        abi::CMD_POLICY_GET => {
            for (id, p) in t.policies.spd.iter() {
                let i = id.index() as u64;
                if i < start {
                    continue;
                }
                if !emit(i, &|m| put_policy(m, i as u32, p)) {
                    break;
                }
            }
        }
        _ => return EOPNOTSUPP().to_errno(),
    }
    written
}
