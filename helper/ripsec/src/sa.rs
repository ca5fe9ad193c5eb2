//! `ripsec sa ...` and `ripsec policy ...`: static keying in the spirit of
//! `ip xfrm state` / `ip xfrm policy`, straight to the module.

use std::net::IpAddr;

use clap::{Args, Subcommand, ValueEnum};
use netlink_packet_utils::nla::DefaultNla;
use serde_json::{json, Map, Value};

use crate::abi;
use crate::genl::{self, Client, Error, RipsecMsg};

#[derive(Clone, Copy, ValueEnum)]
pub enum Dir {
    In,
    Out,
    Fwd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ModeArg {
    Transport,
    Tunnel,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Alg {
    #[value(name = "aes128gcm")]
    Aes128Gcm,
    #[value(name = "aes256gcm")]
    Aes256Gcm,
    #[value(name = "chacha20poly1305")]
    ChaCha20Poly1305,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Action {
    Protect,
    Bypass,
    Discard,
}

fn alg_id(a: Alg) -> u8 {
    match a {
        Alg::Aes128Gcm => abi::ALG_AES128_GCM16,
        Alg::Aes256Gcm => abi::ALG_AES256_GCM16,
        Alg::ChaCha20Poly1305 => abi::ALG_CHACHA20_POLY1305,
    }
}

fn alg_name(id: u64) -> &'static str {
    match id as u8 {
        abi::ALG_AES128_GCM16 => "aes128gcm",
        abi::ALG_AES256_GCM16 => "aes256gcm",
        abi::ALG_CHACHA20_POLY1305 => "chacha20poly1305",
        _ => "unknown",
    }
}

fn dir_id(d: Dir) -> u8 {
    match d {
        Dir::In => abi::DIR_IN,
        Dir::Out => abi::DIR_OUT,
        Dir::Fwd => abi::DIR_FWD,
    }
}

fn dir_name(id: u64) -> &'static str {
    match id as u8 {
        abi::DIR_IN => "in",
        abi::DIR_OUT => "out",
        _ => "fwd",
    }
}

/// Parses `0x1234` or decimal.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a 32-bit number (decimal or 0x hex)"))
}

/// Key material given in hex.
#[derive(Clone)]
pub struct HexKey(Vec<u8>);

fn parse_hex(s: &str) -> Result<HexKey, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if !h.len().is_multiple_of(2) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the key must be an even number of hex digits".into());
    }
    Ok(HexKey((0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0)).collect()))
}

/// `SPORT:DPORT`.
fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once(':').ok_or("expected SPORT:DPORT, e.g. 4500:4500")?;
    let p = |x: &str| x.parse::<u16>().ok().filter(|&v| v != 0).ok_or(format!("'{x}' is not a port (1-65535)"));
    Ok((p(a)?, p(b)?))
}

/// `ADDR[/LEN]`.
fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => l.parse::<u8>().ok().filter(|&v| v <= max).ok_or(format!("'/{l}' is not a prefix length (0-{max})"))?,
        None => max,
    };
    Ok((addr, len))
}

/// `PORT` or `LO-HI`.
fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let p = |x: &str| x.parse::<u16>().map_err(|_| format!("'{x}' is not a port"));
    match s.split_once('-') {
        Some((a, b)) => Ok((p(a)?, p(b)?)),
        None => {
            let v = p(s)?;
            Ok((v, v))
        }
    }
}

fn parse_proto(s: &str) -> Result<u8, String> {
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "ipv6-icmp" | "icmpv6" => Ok(58),
        "esp" => Ok(50),
        "sctp" => Ok(132),
        n => n.parse().map_err(|_| format!("'{n}' is not a protocol (tcp, udp, icmp, icmpv6, esp, or a number)")),
    }
}

#[derive(Args)]
pub struct SaAdd {
    #[arg(long, value_parser = parse_u32)]
    spi: u32,
    #[arg(long, value_enum)]
    dir: Dir,
    /// Outer source address.
    #[arg(long)]
    src: IpAddr,
    /// Outer destination address.
    #[arg(long)]
    dst: IpAddr,
    #[arg(long, value_enum, default_value = "transport")]
    mode: ModeArg,
    #[arg(long, value_enum)]
    alg: Alg,
    /// Key material in hex: the key followed by the 4-byte salt (RFC 4106 / 7634).
    #[arg(long, value_parser = parse_hex)]
    key: HexKey,
    /// ESP-in-UDP ports, SPORT:DPORT (RFC 3948).
    #[arg(long, value_parser = parse_ports)]
    encap: Option<(u16, u16)>,
    #[arg(long)]
    esn: bool,
    #[arg(long)]
    replay_window: Option<u32>,
    /// Ties an outbound SA to the protect policies with the same reqid.
    #[arg(long, default_value_t = 1)]
    reqid: u32,
    #[arg(long)]
    owner: Option<u64>,
    #[arg(long)]
    tfc_pad: Option<u32>,
    #[arg(long)]
    soft_bytes: Option<u64>,
    #[arg(long)]
    hard_bytes: Option<u64>,
    #[arg(long)]
    soft_packets: Option<u64>,
    #[arg(long)]
    hard_packets: Option<u64>,
    /// Soft time limit in seconds from now: an EXPIRE event (rekey).
    #[arg(long)]
    soft_secs: Option<u64>,
    /// Hard time limit in seconds from now: the module removes the SA.
    #[arg(long)]
    hard_secs: Option<u64>,
}

#[derive(Args)]
pub struct SaKey {
    #[arg(long, value_parser = parse_u32)]
    spi: u32,
    /// Outer destination address of the SA.
    #[arg(long)]
    dst: IpAddr,
}

#[derive(Subcommand)]
pub enum SaCmd {
    /// Install an SA.
    Add(SaAdd),
    /// Replace the SA with this SPI and destination as a whole (same
    /// arguments as add; its counters start again from zero).
    Update(SaAdd),
    /// Delete the SA with this SPI and destination.
    Del(SaKey),
    /// Show SAs (keys are never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete every SA, or those of one peer or owner. With --peer, the
    /// daemon (if one listens on --socket) first forgets its IKE and Child
    /// SAs with that peer, without sending anything, so that the next
    /// packet negotiates anew: the manual path for a peer that failed over.
    Flush {
        #[arg(long)]
        peer: Option<IpAddr>,
        /// The daemon's control socket (for --peer).
        #[arg(long, default_value = crate::ctl::DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
        #[arg(long)]
        owner: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct PolicyAdd {
    #[arg(long, value_enum)]
    dir: Dir,
    /// Source selector, ADDR[/LEN].
    #[arg(long, value_parser = parse_prefix)]
    src: (IpAddr, u8),
    /// Destination selector, ADDR[/LEN].
    #[arg(long, value_parser = parse_prefix)]
    dst: (IpAddr, u8),
    #[arg(long, value_parser = parse_proto)]
    proto: Option<u8>,
    #[arg(long, value_parser = parse_range)]
    sport: Option<(u16, u16)>,
    #[arg(long, value_parser = parse_range)]
    dport: Option<(u16, u16)>,
    #[arg(long, value_enum)]
    action: Action,
    #[arg(long, value_enum, default_value = "transport")]
    mode: ModeArg,
    /// Tunnel endpoints (tunnel mode).
    #[arg(long)]
    tun_src: Option<IpAddr>,
    #[arg(long)]
    tun_dst: Option<IpAddr>,
    #[arg(long, default_value_t = 1)]
    reqid: u32,
    #[arg(long, value_enum)]
    alg: Option<Alg>,
    #[arg(long, value_parser = parse_ports)]
    encap: Option<(u16, u16)>,
    /// Lower wins.
    #[arg(long)]
    priority: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Install a policy; prints its id.
    Add(PolicyAdd),
    /// Delete a policy by id.
    Del { id: u32 },
    /// Show policies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete every policy.
    Flush {
        #[arg(long)]
        json: bool,
    },
}

pub fn sa(cmd: SaCmd) -> Result<(), Error> {
    let mut c = Client::connect()?;
    let op = if matches!(cmd, SaCmd::Update(_)) { abi::CMD_SA_UPDATE } else { abi::CMD_SA_ADD };
    match cmd {
        SaCmd::Add(a) | SaCmd::Update(a) => {
            let mut v = vec![
                genl::nla_u32(abi::A_SPI, a.spi),
                genl::nla_u8(abi::A_DIR, dir_id(a.dir)),
                genl::nla_addr(abi::A_SRC, a.src),
                genl::nla_addr(abi::A_DST, a.dst),
                genl::nla_u8(abi::A_MODE, if a.mode == ModeArg::Tunnel { abi::MODE_TUNNEL } else { abi::MODE_TRANSPORT }),
                genl::nla_u8(abi::A_ALG, alg_id(a.alg)),
                genl::nla(abi::A_KEY, a.key.0),
                genl::nla_u32(abi::A_REQID, a.reqid),
            ];
            if let Some((s, d)) = a.encap {
                v.push(genl::nla_u16(abi::A_ENCAP_SPORT, s));
                v.push(genl::nla_u16(abi::A_ENCAP_DPORT, d));
            }
            if a.esn {
                v.push(genl::nla(abi::A_ESN, Vec::new()));
            }
            let opt32 = [(abi::A_REPLAY_WINDOW, a.replay_window), (abi::A_TFC_PAD, a.tfc_pad)];
            v.extend(opt32.into_iter().filter_map(|(k, x)| x.map(|x| genl::nla_u32(k, x))));
            let opt64 = [
                (abi::A_OWNER, a.owner),
                (abi::A_LIFE_SOFT_BYTES, a.soft_bytes),
                (abi::A_LIFE_HARD_BYTES, a.hard_bytes),
                (abi::A_LIFE_SOFT_PACKETS, a.soft_packets),
                (abi::A_LIFE_HARD_PACKETS, a.hard_packets),
                (abi::A_LIFE_SOFT_SECS, a.soft_secs),
                (abi::A_LIFE_HARD_SECS, a.hard_secs),
            ];
            v.extend(opt64.into_iter().filter_map(|(k, x)| x.map(|x| genl::nla_u64(k, x))));
            c.request(op, v)?;
        }
        SaCmd::Del(k) => {
            c.request(abi::CMD_SA_DEL, vec![genl::nla_u32(abi::A_SPI, k.spi), genl::nla_addr(abi::A_DST, k.dst)])?;
        }
        SaCmd::List { json } => {
            let sas = c.dump(abi::CMD_SA_GET)?;
            let list: Vec<Value> = sas.iter().map(describe).collect::<Result<_, _>>()?;
            if json {
                println!("{}", Value::Array(list));
            } else {
                for s in &list {
                    print_sa(s);
                }
            }
        }
        SaCmd::Flush { peer, owner, socket, json } => {
            let mut daemon_ike: Option<u64> = None;
            if let Some(p) = peer {
                let req = crate::ctl::Request::FlushPeer { peer: p.to_string() };
                match crate::ctl::call_timeout(&socket, &req, std::time::Duration::from_secs(5)) {
                    Ok(v) => daemon_ike = v.get("ike_sas").and_then(Value::as_u64),
                    Err(e) if e.code == crate::exit::DAEMON_NOT_RUNNING => {}
                    Err(e) => eprintln!("ripsec: warning: the daemon did not flush its state for {p}: {}", e.msg),
                }
            }
            let mut v = Vec::new();
            if let Some(p) = peer {
                v.push(genl::nla_addr(abi::A_PEER, p));
            }
            if let Some(o) = owner {
                v.push(genl::nla_u64(abi::A_OWNER, o));
            }
            let r = c.request(abi::CMD_SA_FLUSH, v)?;
            let n = flushed(&r)?;
            if json {
                println!("{}", json!({ "flushed": n, "daemon_ike_sas": daemon_ike }));
            } else if let Some(d) = daemon_ike {
                println!("flushed {n} SA(s); the daemon forgot {d} IKE SA(s)");
            } else {
                println!("flushed {n} SA(s)");
            }
        }
    }
    Ok(())
}

fn flushed(r: &[RipsecMsg]) -> Result<u64, Error> {
    for m in r {
        for a in &m.attrs {
            if genl::attr_kind(a) == abi::A_FLUSHED {
                return genl::attr_uint(a);
            }
        }
    }
    Err(Error::Malformed("no FLUSHED in the reply".into()))
}

/// An SA or policy message as a JSON object, names from the uapi.
pub fn describe(m: &RipsecMsg) -> Result<Value, Error> {
    let mut o = Map::new();
    for a in &m.attrs {
        let k = genl::attr_kind(a);
        let (name, v): (&str, Value) = match k {
            abi::A_SPI => ("spi", format!("0x{:08x}", genl::attr_uint(a)?).into()),
            abi::A_DIR => ("dir", dir_name(genl::attr_uint(a)?).into()),
            abi::A_SRC => ("src", genl::attr_addr(a)?.to_string().into()),
            abi::A_DST => ("dst", genl::attr_addr(a)?.to_string().into()),
            abi::A_MODE => ("mode", if genl::attr_uint(a)? == u64::from(abi::MODE_TUNNEL) { "tunnel" } else { "transport" }.into()),
            abi::A_ALG => ("alg", alg_name(genl::attr_uint(a)?).into()),
            abi::A_ENCAP_SPORT => ("encap_sport", genl::attr_uint(a)?.into()),
            abi::A_ENCAP_DPORT => ("encap_dport", genl::attr_uint(a)?.into()),
            abi::A_ESN => ("esn", true.into()),
            abi::A_REPLAY_WINDOW => ("replay_window", genl::attr_uint(a)?.into()),
            abi::A_REQID => ("reqid", genl::attr_uint(a)?.into()),
            abi::A_OWNER => ("owner", genl::attr_uint(a)?.into()),
            abi::A_POLICY_ID => ("id", genl::attr_uint(a)?.into()),
            abi::A_PRIORITY => ("priority", genl::attr_uint(a)?.into()),
            abi::A_ACTION => (
                "action",
                match genl::attr_uint(a)? as u8 {
                    abi::ACTION_BYPASS => "bypass",
                    abi::ACTION_DISCARD => "discard",
                    _ => "protect",
                }
                .into(),
            ),
            abi::A_SEL_SRC => ("sel_src", genl::attr_addr(a)?.to_string().into()),
            abi::A_SEL_SRC_PLEN => ("sel_src_len", genl::attr_uint(a)?.into()),
            abi::A_SEL_DST => ("sel_dst", genl::attr_addr(a)?.to_string().into()),
            abi::A_SEL_DST_PLEN => ("sel_dst_len", genl::attr_uint(a)?.into()),
            abi::A_SEL_PROTO => ("proto", genl::attr_uint(a)?.into()),
            abi::A_SEL_SPORT_LO => ("sport_lo", genl::attr_uint(a)?.into()),
            abi::A_SEL_SPORT_HI => ("sport_hi", genl::attr_uint(a)?.into()),
            abi::A_SEL_DPORT_LO => ("dport_lo", genl::attr_uint(a)?.into()),
            abi::A_SEL_DPORT_HI => ("dport_hi", genl::attr_uint(a)?.into()),
            abi::A_TMPL_TUN_SRC => ("tun_src", genl::attr_addr(a)?.to_string().into()),
            abi::A_TMPL_TUN_DST => ("tun_dst", genl::attr_addr(a)?.to_string().into()),
            abi::A_MISS_COUNT => ("count", genl::attr_uint(a)?.into()),
            abi::A_HARD => ("hard", true.into()),
            abi::A_PEER => ("peer", genl::attr_addr(a)?.to_string().into()),
            abi::A_STATS => {
                let names = ["packets", "bytes", "auth_fail", "replay", "too_old", "seq"];
                let mut st = Map::new();
                for c in genl::parse_attrs(&genl::attr_bytes(a)).map_err(|e| Error::Malformed(e.to_string()))? {
                    let i = usize::from(genl::attr_kind(&c)).wrapping_sub(1);
                    if let Some(n) = names.get(i) {
                        st.insert((*n).to_string(), genl::attr_u64(&c)?.into());
                    }
                }
                ("stats", Value::Object(st))
            }
            _ => continue,
        };
        o.insert(name.to_string(), v);
    }
    Ok(Value::Object(o))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(x) => x.to_string(),
        None => "-".into(),
    }
}

fn print_sa(v: &Value) {
    let encap = match (v.get("encap_sport"), v.get("encap_dport")) {
        (Some(a), Some(b)) => format!(" encap udp {a}:{b}"),
        _ => String::new(),
    };
    println!(
        "spi {} {} {} -> {} {} {}{} reqid {} owner {}{}",
        s(v, "spi"), s(v, "dir"), s(v, "src"), s(v, "dst"), s(v, "mode"), s(v, "alg"), encap,
        s(v, "reqid"), s(v, "owner"), if v.get("esn").is_some() { " esn" } else { "" }
    );
    if let Some(st) = v.get("stats") {
        println!(
            "    packets {} bytes {} auth-fail {} replay {} too-old {} seq {}",
            s(st, "packets"), s(st, "bytes"), s(st, "auth_fail"), s(st, "replay"), s(st, "too_old"), s(st, "seq")
        );
    }
}

fn print_policy(v: &Value) {
    let ports = |lo: &str, hi: &str| match (v.get(lo).and_then(Value::as_u64), v.get(hi).and_then(Value::as_u64)) {
        (Some(0), Some(65535)) | (None, _) | (_, None) => String::new(),
        (Some(a), Some(b)) if a == b => format!(":{a}"),
        (Some(a), Some(b)) => format!(":{a}-{b}"),
    };
    let tunnel = if s(v, "mode") == "tunnel" { format!(" tunnel {} -> {}", s(v, "tun_src"), s(v, "tun_dst")) } else { String::new() };
    println!(
        "id {} {} {}/{}{} -> {}/{}{} proto {} priority {} {}{}{}",
        s(v, "id"), s(v, "dir"), s(v, "sel_src"), s(v, "sel_src_len"), ports("sport_lo", "sport_hi"),
        s(v, "sel_dst"), s(v, "sel_dst_len"), ports("dport_lo", "dport_hi"),
        v.get("proto").map_or("any".to_string(), |p| p.to_string()), s(v, "priority"), s(v, "action"),
        if s(v, "action") == "protect" { format!(" reqid {} {}", s(v, "reqid"), s(v, "mode")) } else { String::new() },
        tunnel
    );
}

pub fn policy(cmd: PolicyCmd) -> Result<(), Error> {
    // Bad arguments are usage errors, whether or not the module is loaded.
    if let PolicyCmd::Add(p) = &cmd {
        if p.src.0.is_ipv4() != p.dst.0.is_ipv4() {
            return Err(Error::Usage("--src and --dst must be of one address family".into()));
        }
        if p.mode == ModeArg::Tunnel && (p.tun_src.is_none() || p.tun_dst.is_none()) {
            return Err(Error::Usage("tunnel mode needs --tun-src and --tun-dst".into()));
        }
    }
    let mut c = Client::connect()?;
    match cmd {
        PolicyCmd::Add(p) => {
            let mut v: Vec<DefaultNla> = vec![
                genl::nla_u8(abi::A_DIR, dir_id(p.dir)),
                genl::nla_addr(abi::A_SEL_SRC, p.src.0),
                genl::nla_u8(abi::A_SEL_SRC_PLEN, p.src.1),
                genl::nla_addr(abi::A_SEL_DST, p.dst.0),
                genl::nla_u8(abi::A_SEL_DST_PLEN, p.dst.1),
                genl::nla_u8(
                    abi::A_ACTION,
                    match p.action {
                        Action::Protect => abi::ACTION_PROTECT,
                        Action::Bypass => abi::ACTION_BYPASS,
                        Action::Discard => abi::ACTION_DISCARD,
                    },
                ),
                genl::nla_u32(abi::A_REQID, p.reqid),
                genl::nla_u8(abi::A_MODE, if p.mode == ModeArg::Tunnel { abi::MODE_TUNNEL } else { abi::MODE_TRANSPORT }),
            ];
            if let Some(x) = p.proto {
                v.push(genl::nla_u8(abi::A_SEL_PROTO, x));
            }
            if let Some((lo, hi)) = p.sport {
                v.push(genl::nla_u16(abi::A_SEL_SPORT_LO, lo));
                v.push(genl::nla_u16(abi::A_SEL_SPORT_HI, hi));
            }
            if let Some((lo, hi)) = p.dport {
                v.push(genl::nla_u16(abi::A_SEL_DPORT_LO, lo));
                v.push(genl::nla_u16(abi::A_SEL_DPORT_HI, hi));
            }
            if p.mode == ModeArg::Tunnel {
                match (p.tun_src, p.tun_dst) {
                    (Some(a), Some(b)) => {
                        v.push(genl::nla_addr(abi::A_TMPL_TUN_SRC, a));
                        v.push(genl::nla_addr(abi::A_TMPL_TUN_DST, b));
                    }
                    _ => return Err(Error::Usage("tunnel mode needs --tun-src and --tun-dst".into())),
                }
            }
            if let Some(a) = p.alg {
                v.push(genl::nla_u8(abi::A_ALG, alg_id(a)));
            }
            if let Some((s, d)) = p.encap {
                v.push(genl::nla_u16(abi::A_ENCAP_SPORT, s));
                v.push(genl::nla_u16(abi::A_ENCAP_DPORT, d));
            }
            if let Some(pr) = p.priority {
                v.push(genl::nla_u32(abi::A_PRIORITY, pr));
            }
            let r = c.request(abi::CMD_POLICY_ADD, v)?;
            let id = r
                .iter()
                .flat_map(|m| m.attrs.iter())
                .find(|a| genl::attr_kind(a) == abi::A_POLICY_ID)
                .map(genl::attr_uint)
                .transpose()?
                .ok_or_else(|| Error::Malformed("no POLICY_ID in the reply".into()))?;
            if p.json {
                println!("{}", json!({ "id": id }));
            } else {
                println!("{id}");
            }
        }
        PolicyCmd::Del { id } => {
            c.request(abi::CMD_POLICY_DEL, vec![genl::nla_u32(abi::A_POLICY_ID, id)])?;
        }
        PolicyCmd::List { json } => {
            let list: Vec<Value> = c.dump(abi::CMD_POLICY_GET)?.iter().map(describe).collect::<Result<_, _>>()?;
            if json {
                println!("{}", Value::Array(list));
            } else {
                for p in &list {
                    print_policy(p);
                }
            }
        }
        PolicyCmd::Flush { json } => {
            let n = flushed(&c.request(abi::CMD_POLICY_FLUSH, Vec::new())?)?;
            if json {
                println!("{}", json!({ "flushed": n }));
            } else {
                println!("flushed {n} policy(ies)");
            }
        }
    }
    Ok(())
}
