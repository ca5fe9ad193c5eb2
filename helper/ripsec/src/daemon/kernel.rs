//! Engine actions → rust_ipsec netlink requests. The attribute builders are
//! pure functions (unit-tested without a kernel); [`Kernel`] keeps what the
//! daemon installed: Child SAs, and reference-counted policies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_utils::nla::DefaultNla;
use ripsec_ike::{EspAlg, InstallChildSa, Mode, TrafficSelector};
use tracing::{debug, info, warn};

use crate::abi;
use crate::genl::{self, Client, Error};

/// Priority of the daemon's IKE bypass policies (lower wins; protect
/// policies use the module's default 1000).
pub const BYPASS_PRIORITY: u32 = 1;

pub fn alg_id(a: EspAlg) -> u8 {
    match a {
        EspAlg::AesGcm16_128 => abi::ALG_AES128_GCM16,
        EspAlg::AesGcm16_256 => abi::ALG_AES256_GCM16,
        EspAlg::ChaCha20Poly1305 => abi::ALG_CHACHA20_POLY1305,
    }
}

fn mode_id(m: Mode) -> u8 {
    match m {
        Mode::Transport => abi::MODE_TRANSPORT,
        Mode::Tunnel => abi::MODE_TUNNEL,
    }
}

/// The module removes a Child SA on its own this long after the daemon's
/// hard lifetime: a daemon that died or hangs leaves no SA alive for ever
/// (the module's hard EXPIRE reaches the daemon if it is still there).
pub const KERNEL_HARD_BACKSTOP: Duration = Duration::from_secs(30);

/// Attributes of the two SA_ADD requests of a Child SA: (inbound, outbound).
pub fn sa_add_attrs(c: &InstallChildSa, reqid: u32, owner: u64, replay_window: u32) -> [Vec<DefaultNla>; 2] {
    let one = |spi: u32, dir: u8, src: IpAddr, dst: IpAddr, key: &[u8], ports: Option<(u16, u16)>| {
        let mut v = vec![
            genl::nla_u32(abi::A_SPI, spi),
            genl::nla_u8(abi::A_DIR, dir),
            genl::nla_addr(abi::A_SRC, src),
            genl::nla_addr(abi::A_DST, dst),
            genl::nla_u8(abi::A_MODE, mode_id(c.mode)),
            genl::nla_u8(abi::A_ALG, alg_id(c.alg)),
            genl::nla(abi::A_KEY, key.to_vec()),
            genl::nla_u32(abi::A_REQID, reqid),
            genl::nla_u64(abi::A_OWNER, owner),
        ];
        if let Some((s, d)) = ports {
            v.push(genl::nla_u16(abi::A_ENCAP_SPORT, s));
            v.push(genl::nla_u16(abi::A_ENCAP_DPORT, d));
        }
        if c.esn {
            v.push(genl::nla(abi::A_ESN, Vec::new()));
        }
        if dir == abi::DIR_IN {
            v.push(genl::nla_u32(abi::A_REPLAY_WINDOW, replay_window));
        }
        if !c.lifetime_hard.is_zero() {
            v.push(genl::nla_u64(abi::A_LIFE_HARD_SECS, (c.lifetime_hard + KERNEL_HARD_BACKSTOP).as_secs()));
        }
        v
    };
    let enc_in = c.encap.map(|e| (e.remote_port, e.local_port));
    let enc_out = c.encap.map(|e| (e.local_port, e.remote_port));
    [
        one(c.spi_in, abi::DIR_IN, c.remote, c.local, c.key_in.expose(), enc_in),
        one(c.spi_out, abi::DIR_OUT, c.local, c.remote, c.key_out.expose(), enc_out),
    ]
}

/// SA_DEL of one SA.
pub fn sa_del_attrs(spi: u32, dst: IpAddr) -> Vec<DefaultNla> {
    vec![genl::nla_u32(abi::A_SPI, spi), genl::nla_addr(abi::A_DST, dst)]
}

/// The covering prefixes of an address range (at most `max`; None if more
/// are needed).
pub fn range_to_prefixes(start: IpAddr, end: IpAddr, max: usize) -> Option<Vec<(IpAddr, u8)>> {
    let (bits, mut lo, hi, v4) = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (32u32, u128::from(u32::from(a)), u128::from(u32::from(b)), true),
        (IpAddr::V6(a), IpAddr::V6(b)) => (128u32, u128::from(a), u128::from(b), false),
        _ => return None,
    };
    let mk = |v: u128| -> IpAddr {
        if v4 {
            IpAddr::from((v as u32).to_be_bytes())
        } else {
            IpAddr::from(v.to_be_bytes())
        }
    };
    let mut out = Vec::new();
    if lo > hi {
        return Some(out);
    }
    loop {
        // Largest block starting at lo that stays within hi.
        let mut size_log = if lo == 0 { bits } else { lo.trailing_zeros().min(bits) };
        while size_log > 0 {
            let span = if size_log >= 128 { u128::MAX } else { (1u128 << size_log) - 1 };
            if lo.checked_add(span).is_some_and(|e| e <= hi) {
                break;
            }
            size_log -= 1;
        }
        out.push((mk(lo), (bits - size_log) as u8));
        if out.len() > max {
            return None;
        }
        let span = if size_log >= 128 { u128::MAX } else { (1u128 << size_log) - 1 };
        let last = lo + span;
        if last >= hi {
            return Some(out);
        }
        lo = last + 1;
    }
}

/// One policy as the module stores it; also the key for sharing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicySpec {
    pub dir: u8,
    pub action: u8,
    pub src: (IpAddr, u8),
    pub dst: (IpAddr, u8),
    pub proto: u8,
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    pub mode: u8,
    pub tunnel: Option<(IpAddr, IpAddr)>,
    pub reqid: u32,
    pub priority: Option<u32>,
}

impl PolicySpec {
    pub fn attrs(&self) -> Vec<DefaultNla> {
        let mut v = vec![
            genl::nla_u8(abi::A_DIR, self.dir),
            genl::nla_addr(abi::A_SEL_SRC, self.src.0),
            genl::nla_u8(abi::A_SEL_SRC_PLEN, self.src.1),
            genl::nla_addr(abi::A_SEL_DST, self.dst.0),
            genl::nla_u8(abi::A_SEL_DST_PLEN, self.dst.1),
            genl::nla_u8(abi::A_ACTION, self.action),
            genl::nla_u32(abi::A_REQID, self.reqid),
            genl::nla_u8(abi::A_MODE, self.mode),
        ];
        if self.proto != 0 {
            v.push(genl::nla_u8(abi::A_SEL_PROTO, self.proto));
        }
        if self.sport != (0, 65535) {
            v.push(genl::nla_u16(abi::A_SEL_SPORT_LO, self.sport.0));
            v.push(genl::nla_u16(abi::A_SEL_SPORT_HI, self.sport.1));
        }
        if self.dport != (0, 65535) {
            v.push(genl::nla_u16(abi::A_SEL_DPORT_LO, self.dport.0));
            v.push(genl::nla_u16(abi::A_SEL_DPORT_HI, self.dport.1));
        }
        if let Some((s, d)) = self.tunnel {
            v.push(genl::nla_addr(abi::A_TMPL_TUN_SRC, s));
            v.push(genl::nla_addr(abi::A_TMPL_TUN_DST, d));
        }
        if let Some(p) = self.priority {
            v.push(genl::nla_u32(abi::A_PRIORITY, p));
        }
        v
    }
}

/// Policies that let IKE through whatever protect policies say: UDP from
/// our ports 500/4500 outbound, to them inbound, both families.
pub fn ike_bypass_policies() -> Vec<PolicySpec> {
    let mut v = Vec::new();
    for any in [IpAddr::from([0u8; 4]), IpAddr::from([0u8; 16])] {
        for port in [500u16, 4500] {
            for dir in [abi::DIR_OUT, abi::DIR_IN] {
                let (sport, dport) = if dir == abi::DIR_OUT { ((port, port), (0, 65535)) } else { ((0, 65535), (port, port)) };
                v.push(PolicySpec {
                    dir,
                    action: abi::ACTION_BYPASS,
                    src: (any, 0),
                    dst: (any, 0),
                    proto: 17,
                    sport,
                    dport,
                    mode: abi::MODE_TRANSPORT,
                    tunnel: None,
                    reqid: 0,
                    priority: Some(BYPASS_PRIORITY),
                });
            }
        }
    }
    v
}

/// Protect policies for local ↔ remote selectors: outbound (local → remote)
/// and, unless `out_only`, inbound (remote → local).
pub fn protect_policies(
    ts_local: &[TrafficSelector],
    ts_remote: &[TrafficSelector],
    mode: Mode,
    endpoints: (IpAddr, IpAddr),
    reqid: u32,
    out_only: bool,
) -> Vec<PolicySpec> {
    let mut v = Vec::new();
    let tunnel_out = (mode == Mode::Tunnel).then_some(endpoints);
    let tunnel_in = (mode == Mode::Tunnel).then_some((endpoints.1, endpoints.0));
    for l in ts_local {
        for r in ts_remote {
            if l.start_addr.is_ipv4() != r.start_addr.is_ipv4() {
                continue;
            }
            let proto = match (l.ip_proto, r.ip_proto) {
                (0, p) | (p, 0) => p,
                (a, b) if a == b => a,
                _ => continue,
            };
            let (Some(lp), Some(rp)) =
                (range_to_prefixes(l.start_addr, l.end_addr, 64), range_to_prefixes(r.start_addr, r.end_addr, 64))
            else {
                warn!("traffic selector range needs too many prefixes; skipped");
                continue;
            };
            if l.start_port > l.end_port || r.start_port > r.end_port {
                continue; // OPAQUE ports: not expressible.
            }
            let (lports, rports) = ((l.start_port, l.end_port), (r.start_port, r.end_port));
            for a in &lp {
                for b in &rp {
                    let base = PolicySpec {
                        dir: abi::DIR_OUT,
                        action: abi::ACTION_PROTECT,
                        src: *a,
                        dst: *b,
                        proto,
                        sport: lports,
                        dport: rports,
                        mode: mode_id(mode),
                        tunnel: tunnel_out,
                        reqid,
                        priority: None,
                    };
                    if !out_only {
                        v.push(PolicySpec {
                            dir: abi::DIR_IN,
                            src: *b,
                            dst: *a,
                            sport: rports,
                            dport: lports,
                            tunnel: tunnel_in,
                            ..base.clone()
                        });
                    }
                    v.push(base);
                }
            }
        }
    }
    v
}

/// Who holds a policy: a trap of a connection, a Child SA, or the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    Trap(String),
    Child(u32),
    Bypass,
}

/// One SA's traffic counters as the module reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// A Child SA the daemon installed.
#[derive(Debug, Clone)]
pub struct ChildEntry {
    pub conn: String,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub spi_in: u32,
    pub spi_out: u32,
    pub soft_at: Instant,
    pub hard_at: Instant,
    pub soft_fired: bool,
    pub hard_fired: bool,
    pub policies: Vec<PolicySpec>,
    /// Last seen packet counters (inbound, outbound).
    pub packets: (u64, u64),
    /// The outbound half, waiting for `activate_outbound` (rekey responder).
    pub pending_out: Option<(Box<InstallChildSa>, u32, u32)>,
}

/// The daemon's record of kernel state, and the netlink client.
pub struct Kernel {
    client: Client,
    pub children: BTreeMap<u32, ChildEntry>,
    policies: HashMap<PolicySpec, (u32, BTreeSet<Holder>)>,
}

impl Kernel {
    pub fn new() -> Result<Self, Error> {
        Ok(Kernel { client: Client::connect()?, children: BTreeMap::new(), policies: HashMap::new() })
    }

    /// Adds `holder` to the policy, installing it if new.
    pub fn hold_policy(&mut self, spec: &PolicySpec, holder: Holder) -> Result<(), Error> {
        if let Some((_, h)) = self.policies.get_mut(spec) {
            h.insert(holder);
            return Ok(());
        }
        let r = self.client.request(abi::CMD_POLICY_ADD, spec.attrs())?;
        let id = r
            .iter()
            .flat_map(|m| m.attrs.iter())
            .find(|a| genl::attr_kind(a) == abi::A_POLICY_ID)
            .map(genl::attr_uint)
            .transpose()?
            .ok_or_else(|| Error::Malformed("no POLICY_ID in the reply".into()))? as u32;
        debug!(id, ?spec, "policy installed");
        self.policies.insert(spec.clone(), (id, BTreeSet::from([holder])));
        Ok(())
    }

    /// Drops `holder` from the policy; removes it when nobody holds it.
    pub fn release_policy(&mut self, spec: &PolicySpec, holder: &Holder) {
        let Some((id, h)) = self.policies.get_mut(spec) else { return };
        h.remove(holder);
        if h.is_empty() {
            let id = *id;
            self.policies.remove(spec);
            if let Err(e) = self.client.request(abi::CMD_POLICY_DEL, vec![genl::nla_u32(abi::A_POLICY_ID, id)]) {
                warn!(id, "removing policy: {e}");
            } else {
                debug!(id, "policy removed");
            }
        }
    }

    /// Releases every policy `holder` holds.
    pub fn release_all(&mut self, holder: &Holder) {
        let specs: Vec<PolicySpec> =
            self.policies.iter().filter(|(_, (_, h))| h.contains(holder)).map(|(s, _)| s.clone()).collect();
        for s in specs {
            self.release_policy(&s, holder);
        }
    }

    /// Installs both SAs of a Child SA and its policies.
    pub fn install_child(
        &mut self,
        c: &InstallChildSa,
        reqid: u32,
        replay_window: u32,
        now: Instant,
    ) -> Result<(), Error> {
        let t0 = Instant::now();
        let owner = c.owner.ike.0;
        let [inb, outb] = sa_add_attrs(c, reqid, owner, replay_window);
        self.client.request(abi::CMD_SA_ADD, inb)?;
        if !c.defer_outbound {
            if let Err(e) = self.client.request(abi::CMD_SA_ADD, outb) {
                let _ = self.client.request(abi::CMD_SA_DEL, sa_del_attrs(c.spi_in, c.local));
                return Err(e);
            }
        }
        let policies = protect_policies(&c.ts_local, &c.ts_remote, c.mode, (c.local, c.remote), reqid, false);
        for p in &policies {
            if let Err(e) = self.hold_policy(p, Holder::Child(c.spi_in)) {
                warn!(spi_in = format!("{:08x}", c.spi_in), "installing policy: {e}");
            }
        }
        info!(
            conn = c.owner.conn,
            spi_in = format!("{:08x}", c.spi_in),
            spi_out = format!("{:08x}", c.spi_out),
            alg = ?c.alg,
            "Child SA installed ({} <-> {}, {} policies{}) in {:.1} ms",
            c.local,
            c.remote,
            policies.len(),
            if c.defer_outbound { ", outbound SA deferred" } else { "" },
            t0.elapsed().as_secs_f64() * 1e3
        );
        self.children.insert(
            c.spi_in,
            ChildEntry {
                conn: c.owner.conn.clone(),
                local: c.local,
                remote: c.remote,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                soft_at: now + c.lifetime_soft,
                hard_at: now + c.lifetime_hard,
                soft_fired: false,
                hard_fired: false,
                policies,
                packets: (0, 0),
                pending_out: c.defer_outbound.then(|| (Box::new(c.clone()), reqid, replay_window)),
            },
        );
        Ok(())
    }

    /// Installs the deferred outbound SA of a Child SA: from now on it
    /// carries the traffic of its policies (the module prefers the newest
    /// outbound SA of a reqid and peer).
    pub fn activate_outbound(&mut self, spi_in: u32) -> Result<(), Error> {
        let Some(e) = self.children.get_mut(&spi_in) else { return Ok(()) };
        let Some((c, reqid, window)) = e.pending_out.take() else { return Ok(()) };
        // The owner the inbound half got, even if the IKE SA was rekeyed
        // since: both halves of a Child SA are flushed together.
        let [_, outb] = sa_add_attrs(&c, reqid, c.owner.ike.0, window);
        self.client.request(abi::CMD_SA_ADD, outb)?;
        info!(conn = c.owner.conn, spi_in = format!("{spi_in:08x}"), spi_out = format!("{:08x}", c.spi_out), "outbound SA activated");
        Ok(())
    }

    /// Removes both SAs of a Child SA and releases its policies.
    pub fn delete_child(&mut self, spi_in: u32, spi_out: u32, local: IpAddr, remote: IpAddr) {
        let entry = self.children.remove(&spi_in);
        for (spi, dst) in [(spi_in, local), (spi_out, remote)] {
            match self.client.request(abi::CMD_SA_DEL, sa_del_attrs(spi, dst)) {
                Ok(_) => {}
                // Already gone (hard expiry in the kernel, manual flush).
                Err(Error::Kernel(2, _)) => {}
                Err(e) => warn!(spi = format!("{spi:08x}"), "removing SA: {e}"),
            }
        }
        if let Some(e) = entry {
            for p in &e.policies {
                self.release_policy(p, &Holder::Child(spi_in));
            }
        }
        info!(spi_in = format!("{spi_in:08x}"), spi_out = format!("{spi_out:08x}"), "Child SA removed");
    }

    /// Removes every Child SA of a connection (engine dropped).
    pub fn delete_conn_children(&mut self, conn: &str) {
        let list: Vec<ChildEntry> = self.children.values().filter(|c| c.conn == conn).cloned().collect();
        for c in list {
            self.delete_child(c.spi_in, c.spi_out, c.local, c.remote);
        }
    }

    /// Per-SA packet counters from the module: spi → packets, by direction.
    pub fn sa_packets(&mut self) -> Result<HashMap<(u32, u8), u64>, Error> {
        Ok(self.sa_counters()?.into_iter().map(|(k, c)| (k, c.packets)).collect())
    }

    /// Packet and byte counters of every SA in the module, by (SPI, direction).
    pub fn sa_counters(&mut self) -> Result<HashMap<(u32, u8), SaCounters>, Error> {
        let mut out = HashMap::new();
        for m in self.client.dump(abi::CMD_SA_GET)? {
            let (mut spi, mut dir, mut packets, mut bytes) = (None, None, None, None);
            for a in &m.attrs {
                match genl::attr_kind(a) {
                    abi::A_SPI => spi = Some(genl::attr_uint(a)? as u32),
                    abi::A_DIR => dir = Some(genl::attr_uint(a)? as u8),
                    abi::A_STATS => {
                        // Nested: attribute type = counter index + 1.
                        for s in genl::parse_attrs(&genl::attr_bytes(a)).map_err(|e| Error::Malformed(e.to_string()))? {
                            let k = genl::attr_kind(&s);
                            if k == u16::from(abi::SA_STAT_PACKETS) + 1 {
                                packets = Some(genl::attr_u64(&s)?);
                            } else if k == u16::from(abi::SA_STAT_BYTES) + 1 {
                                bytes = Some(genl::attr_u64(&s)?);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let (Some(s), Some(d), Some(p)) = (spi, dir, packets) {
                out.insert((s, d), SaCounters { packets: p, bytes: bytes.unwrap_or(0) });
            }
        }
        Ok(out)
    }

    /// Removes everything the daemon installed (shutdown).
    pub fn cleanup(&mut self) {
        let list: Vec<ChildEntry> = self.children.values().cloned().collect();
        for c in list {
            self.delete_child(c.spi_in, c.spi_out, c.local, c.remote);
        }
        let all: Vec<(PolicySpec, u32)> = self.policies.iter().map(|(s, (id, _))| (s.clone(), *id)).collect();
        for (s, id) in all {
            let _ = self.client.request(abi::CMD_POLICY_DEL, vec![genl::nla_u32(abi::A_POLICY_ID, id)]);
            self.policies.remove(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_utils::nla::Nla;
    use ripsec_ike::{IkeSaId, Identity, Owner, SecretBytes, UdpEncap};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn find(v: &[DefaultNla], kind: u16) -> Option<Vec<u8>> {
        v.iter().find(|a| genl::attr_kind(a) == kind).map(|a| {
            let mut b = vec![0u8; a.value_len()];
            a.emit_value(&mut b);
            b
        })
    }

    fn child(encap: bool) -> InstallChildSa {
        InstallChildSa {
            owner: Owner {
                ike: IkeSaId(0x1122_3344_5566_7788),
                conn: "c".into(),
                local_id: Identity::Fqdn("a".into()),
                remote_id: Identity::Fqdn("b".into()),
            },
            local: ip("192.0.2.1"),
            remote: ip("192.0.2.2"),
            spi_in: 0x1000,
            spi_out: 0x2000,
            alg: EspAlg::AesGcm16_128,
            key_in: SecretBytes::from_slice(&[1; 20]),
            key_out: SecretBytes::from_slice(&[2; 20]),
            mode: Mode::Transport,
            ts_local: vec![TrafficSelector::host(ip("192.0.2.1"))],
            ts_remote: vec![TrafficSelector::host(ip("192.0.2.2"))],
            encap: encap.then_some(UdpEncap { local_port: 4500, remote_port: 31000 }),
            esn: true,
            lifetime_soft: Duration::from_secs(10),
            lifetime_hard: Duration::from_secs(20),
            replaces: None,
            defer_outbound: false,
        }
    }

    #[test]
    fn install_builds_both_sas() {
        let [inb, outb] = sa_add_attrs(&child(true), 7, 0xabc, 128);
        assert_eq!(find(&inb, abi::A_SPI).unwrap(), 0x1000u32.to_ne_bytes());
        assert_eq!(find(&inb, abi::A_DIR).unwrap(), [abi::DIR_IN]);
        assert_eq!(find(&inb, abi::A_SRC).unwrap(), [192, 0, 2, 2]);
        assert_eq!(find(&inb, abi::A_DST).unwrap(), [192, 0, 2, 1]);
        assert_eq!(find(&inb, abi::A_KEY).unwrap(), [1; 20]);
        assert_eq!(find(&inb, abi::A_ENCAP_SPORT).unwrap(), 31000u16.to_ne_bytes());
        assert_eq!(find(&inb, abi::A_ENCAP_DPORT).unwrap(), 4500u16.to_ne_bytes());
        assert_eq!(find(&inb, abi::A_REPLAY_WINDOW).unwrap(), 128u32.to_ne_bytes());
        assert_eq!(find(&inb, abi::A_ESN).unwrap(), Vec::<u8>::new());
        assert_eq!(find(&inb, abi::A_OWNER).unwrap(), 0xabcu64.to_ne_bytes());
        assert_eq!(find(&inb, abi::A_REQID).unwrap(), 7u32.to_ne_bytes());
        assert_eq!(find(&outb, abi::A_SPI).unwrap(), 0x2000u32.to_ne_bytes());
        assert_eq!(find(&outb, abi::A_DIR).unwrap(), [abi::DIR_OUT]);
        assert_eq!(find(&outb, abi::A_SRC).unwrap(), [192, 0, 2, 1]);
        assert_eq!(find(&outb, abi::A_DST).unwrap(), [192, 0, 2, 2]);
        assert_eq!(find(&outb, abi::A_KEY).unwrap(), [2; 20]);
        assert_eq!(find(&outb, abi::A_ENCAP_SPORT).unwrap(), 4500u16.to_ne_bytes());
        assert_eq!(find(&outb, abi::A_ENCAP_DPORT).unwrap(), 31000u16.to_ne_bytes());
        assert_eq!(find(&outb, abi::A_MODE).unwrap(), [abi::MODE_TRANSPORT]);
        assert_eq!(find(&outb, abi::A_ALG).unwrap(), [abi::ALG_AES128_GCM16]);
        assert!(find(&outb, abi::A_REPLAY_WINDOW).is_none());
        // The module's backstop: the hard lifetime (20 s) plus 30 s, on both halves.
        assert_eq!(find(&inb, abi::A_LIFE_HARD_SECS).unwrap(), 50u64.to_ne_bytes());
        assert_eq!(find(&outb, abi::A_LIFE_HARD_SECS).unwrap(), 50u64.to_ne_bytes());
        assert!(find(&inb, abi::A_LIFE_SOFT_SECS).is_none(), "the daemon rekeys on its own timers");
        let [inb, _] = sa_add_attrs(&child(false), 7, 1, 64);
        assert!(find(&inb, abi::A_ENCAP_SPORT).is_none());
        let del = sa_del_attrs(0x1000, ip("192.0.2.1"));
        assert_eq!(find(&del, abi::A_SPI).unwrap(), 0x1000u32.to_ne_bytes());
        assert_eq!(find(&del, abi::A_DST).unwrap(), [192, 0, 2, 1]);
    }

    #[test]
    fn policies_for_selectors() {
        let c = child(false);
        let p = protect_policies(&c.ts_local, &c.ts_remote, Mode::Transport, (c.local, c.remote), 7, false);
        assert_eq!(p.len(), 2);
        let inp = p.iter().find(|x| x.dir == abi::DIR_IN).unwrap();
        let out = p.iter().find(|x| x.dir == abi::DIR_OUT).unwrap();
        assert_eq!(out.src, (ip("192.0.2.1"), 32));
        assert_eq!(out.dst, (ip("192.0.2.2"), 32));
        assert_eq!(inp.src, (ip("192.0.2.2"), 32));
        let a = out.attrs();
        assert_eq!(find(&a, abi::A_ACTION).unwrap(), [abi::ACTION_PROTECT]);
        assert!(find(&a, abi::A_SEL_PROTO).is_none() && find(&a, abi::A_SEL_SPORT_LO).is_none());
        assert!(find(&a, abi::A_TMPL_TUN_SRC).is_none());
        // Tunnel mode, ports, trap (outbound only).
        let mut l = TrafficSelector::range(ip("10.1.0.0"), ip("10.1.255.255"));
        l.ip_proto = 6;
        l.start_port = 443;
        l.end_port = 443;
        let r = TrafficSelector::range(ip("10.2.0.0"), ip("10.2.0.255"));
        let t = protect_policies(&[l], &[r], Mode::Tunnel, (c.local, c.remote), 9, true);
        assert_eq!(t.len(), 1);
        let a = t[0].attrs();
        assert_eq!(find(&a, abi::A_SEL_SRC_PLEN).unwrap(), [16]);
        assert_eq!(find(&a, abi::A_SEL_DST_PLEN).unwrap(), [24]);
        assert_eq!(find(&a, abi::A_SEL_PROTO).unwrap(), [6]);
        assert_eq!(find(&a, abi::A_SEL_SPORT_LO).unwrap(), 443u16.to_ne_bytes());
        assert!(find(&a, abi::A_SEL_DPORT_LO).is_none());
        assert_eq!(find(&a, abi::A_TMPL_TUN_SRC).unwrap(), [192, 0, 2, 1]);
        assert_eq!(find(&a, abi::A_TMPL_TUN_DST).unwrap(), [192, 0, 2, 2]);
        // Families never mix.
        let v6 = TrafficSelector::host(ip("2001:db8::1"));
        assert!(protect_policies(&[v6], &c.ts_remote, Mode::Transport, (c.local, c.remote), 1, false).is_empty());
    }

    #[test]
    fn ranges_to_prefixes() {
        assert_eq!(range_to_prefixes(ip("10.0.0.0"), ip("10.0.0.255"), 8).unwrap(), vec![(ip("10.0.0.0"), 24)]);
        assert_eq!(range_to_prefixes(ip("0.0.0.0"), ip("255.255.255.255"), 8).unwrap(), vec![(ip("0.0.0.0"), 0)]);
        assert_eq!(range_to_prefixes(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 8).unwrap(), vec![(ip("::"), 0)]);
        assert_eq!(
            range_to_prefixes(ip("10.0.0.1"), ip("10.0.0.6"), 8).unwrap(),
            vec![(ip("10.0.0.1"), 32), (ip("10.0.0.2"), 31), (ip("10.0.0.4"), 31), (ip("10.0.0.6"), 32)]
        );
        assert!(range_to_prefixes(ip("10.0.0.1"), ip("10.0.0.6"), 2).is_none());
    }

    #[test]
    fn bypass_policies_cover_ike() {
        let b = ike_bypass_policies();
        assert_eq!(b.len(), 8);
        assert!(b.iter().all(|p| p.action == abi::ACTION_BYPASS && p.proto == 17 && p.priority == Some(1)));
        let out500 = b.iter().find(|p| p.dir == abi::DIR_OUT && p.sport == (500, 500) && p.src.0.is_ipv4()).unwrap();
        let a = out500.attrs();
        assert_eq!(find(&a, abi::A_SEL_SRC_PLEN).unwrap(), [0]);
        assert_eq!(find(&a, abi::A_PRIORITY).unwrap(), 1u32.to_ne_bytes());
    }
}
