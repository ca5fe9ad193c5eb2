//! The daemon's configuration file (TOML): parsing, validation with
//! `FILE:LINE: field X: reason` errors, and translation into the engine's
//! [`ripsec_ike::Connection`]s. See `ripsec.example.toml` for the format.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ripsec_ike::{
    Connection, DhGroup, EncrAlg, EsnPolicy, EspAlg, EspProposal, Identity, IkeProposal, IntegAlg, Lifetimes, Mode,
    PrfAlg, Retransmit, SecretBytes, TrafficSelector,
};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::Spanned;

/// A configuration error, already located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the daemon does with a connection when it (re)loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAction {
    /// Initiate at once (and whenever the local address appears).
    Start,
    /// Install the outbound protect policies without SAs: traffic triggers
    /// an ACQUIRE and the negotiation.
    Trap,
    /// Only respond, or wait for `ripsec up`.
    None,
}

/// One connection as the daemon keeps it: the engine's view plus the
/// daemon's own knobs. Equality (ignoring nothing) decides what a reload
/// must rebuild.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub engine: Connection,
    pub start: StartAction,
    pub replay_window: u32,
    /// The textual form it was parsed from, for change detection (the
    /// engine's struct has no `PartialEq`). The PSK is included as read.
    fingerprint: String,
}

impl PartialEq for ConnConfig {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub path: PathBuf,
    pub connections: Vec<ConnConfig>,
    /// How often per-SA packet counters are polled for liveness.
    pub stats_interval: Duration,
    /// How long a connection's local (package) address may be absent before
    /// its SAs are dropped (None: never). A move between two interfaces of
    /// the node is shorter than this and keeps the SAs.
    pub release_grace: Option<Duration>,
}

impl DaemonConfig {
    pub fn connection(&self, name: &str) -> Option<&ConnConfig> {
        self.connections.iter().find(|c| c.engine.name == name)
    }
}

// ---- raw TOML shape ------------------------------------------------------

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default, rename = "connection")]
    connections: Vec<Spanned<RawConn>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    #[serde(default, deserialize_with = "de_opt_duration")]
    stats_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_opt_duration")]
    release_grace: Option<Option<Duration>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawRetransmit {
    #[serde(deserialize_with = "de_duration")]
    timeout: Duration,
    base: f64,
    tries: u32,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawConn {
    name: Spanned<String>,
    #[serde(deserialize_with = "de_ip")]
    local_addr: IpAddr,
    #[serde(default, deserialize_with = "de_ips")]
    remote_addrs: Vec<IpAddr>,
    #[serde(default, deserialize_with = "de_opt_identity")]
    local_id: Option<Identity>,
    #[serde(default, deserialize_with = "de_opt_identity")]
    remote_id: Option<Identity>,
    #[serde(default)]
    psk: Option<Spanned<String>>,
    #[serde(default)]
    psk_file: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "de_ike_proposals")]
    ike: Option<Vec<IkeProposal>>,
    #[serde(default, deserialize_with = "de_esp_proposals")]
    esp: Option<Vec<EspProposal>>,
    #[serde(default, deserialize_with = "de_selectors")]
    local_ts: Option<Vec<TrafficSelector>>,
    #[serde(default, deserialize_with = "de_selectors")]
    remote_ts: Option<Vec<TrafficSelector>>,
    #[serde(default, deserialize_with = "de_mode")]
    mode: Option<Mode>,
    #[serde(default)]
    start: Option<StartAction>,
    #[serde(default)]
    force_encap: bool,
    #[serde(default, deserialize_with = "de_opt_duration")]
    liveness_interval: Option<Duration>,
    #[serde(default)]
    retransmit: Option<RawRetransmit>,
    #[serde(default)]
    hint_retransmit: Option<RawRetransmit>,
    #[serde(default)]
    initiate_on_spi_miss: bool,
    /// Absent: the default; `"never"` / 0: Some(None).
    #[serde(default, deserialize_with = "de_opt_opt_duration")]
    ike_rekey: Option<Option<Duration>>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    child_rekey: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    child_lifetime: Option<Duration>,
    #[serde(default)]
    replay_window: Option<u32>,
}

// ---- value parsers (errors get the value's span from toml) --------------

fn de_ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| de::Error::custom(format!("'{s}' is not an IP address")))
}

fn de_ips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter().map(|s| s.parse().map_err(|_| de::Error::custom(format!("'{s}' is not an IP address")))).collect()
}

/// `"30s"`, `"5m"`, `"1h"`, `"500ms"`, a bare number of seconds, or
/// `"never"` / `0` for none.
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if s == "never" || s == "0" {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration (e.g. 30s, 5m, 1h, 500ms)"))?;
    let mult = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m, h, d)")),
    };
    let d = Duration::try_from_secs_f64(n * mult).map_err(|_| format!("'{s}' is out of range"))?;
    Ok((!d.is_zero()).then_some(d))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Secs(u64),
    Text(String),
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match DurationRepr::deserialize(d).map_err(|_| de::Error::custom("expected a duration: seconds or a string like \"30s\", \"5m\", \"never\""))? {
        DurationRepr::Secs(0) => Ok(None),
        DurationRepr::Secs(n) => Ok(Some(Duration::from_secs(n))),
        DurationRepr::Text(t) => parse_duration(&t).map_err(de::Error::custom),
    }
}

fn de_opt_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
    de_opt_duration(d).map(Some)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    de_opt_duration(d)?.ok_or_else(|| de::Error::custom("must be longer than zero"))
}

/// `192.0.2.1`, `2001:db8::1`, `fqdn:host.example`, `@host.example`,
/// `keyid:0a0b0c` (hex), or a name (FQDN).
pub fn parse_identity(s: &str) -> Result<Identity, String> {
    if let Some(h) = s.strip_prefix("keyid:") {
        let h = h.strip_prefix("0x").unwrap_or(h);
        if h.is_empty() || !h.len().is_multiple_of(2) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{s}': keyid: needs an even number of hex digits"));
        }
        let bytes = (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0)).collect();
        return Ok(Identity::KeyId(bytes));
    }
    let name = s.strip_prefix("fqdn:").or_else(|| s.strip_prefix('@'));
    if let Some(n) = name {
        if n.is_empty() {
            return Err("empty FQDN identity".into());
        }
        return Ok(Identity::Fqdn(n.to_owned()));
    }
    let ip = s.strip_prefix("ipv4:").or_else(|| s.strip_prefix("ipv6:")).unwrap_or(s);
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(Identity::Ipv4(a)),
        Ok(IpAddr::V6(a)) => Ok(Identity::Ipv6(a)),
        Err(_) if ip.len() != s.len() => Err(format!("'{s}' is not an IP address")),
        Err(_) if s.is_empty() => Err("empty identity".into()),
        Err(_) => Ok(Identity::Fqdn(s.to_owned())),
    }
}

fn de_opt_identity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Identity>, D::Error> {
    let s = String::deserialize(d)?;
    parse_identity(&s).map(Some).map_err(de::Error::custom)
}

fn dh_of(t: &str) -> Option<DhGroup> {
    match t {
        "x25519" | "curve25519" => Some(DhGroup::Curve25519),
        "ecp256" => Some(DhGroup::Ecp256),
        "modp2048" => Some(DhGroup::Modp2048),
        _ => None,
    }
}

/// `aes128gcm16-prfsha256-x25519`, `aes256-sha256-modp2048`, ...
pub fn parse_ike_proposal(s: &str) -> Result<IkeProposal, String> {
    let (mut encr, mut integ, mut prf, mut dh) = (vec![], vec![], vec![], vec![]);
    for t in s.split('-') {
        match t {
            "aes128gcm16" | "aes128gcm" => encr.push(EncrAlg::AesGcm16_128),
            "aes256gcm16" | "aes256gcm" => encr.push(EncrAlg::AesGcm16_256),
            "chacha20poly1305" => encr.push(EncrAlg::ChaCha20Poly1305),
            "aes128" | "aes128cbc" => encr.push(EncrAlg::AesCbc128),
            "aes256" | "aes256cbc" => encr.push(EncrAlg::AesCbc256),
            "sha256" | "sha2_256" => integ.push(IntegAlg::HmacSha256_128),
            "prfsha256" => prf.push(PrfAlg::HmacSha256),
            "prfsha384" => prf.push(PrfAlg::HmacSha384),
            "prfsha512" => prf.push(PrfAlg::HmacSha512),
            other => match dh_of(other) {
                Some(g) => dh.push(g),
                None => return Err(format!("'{s}': unknown algorithm '{other}'")),
            },
        }
    }
    if prf.is_empty() {
        prf.push(PrfAlg::HmacSha256);
    }
    if dh.is_empty() {
        return Err(format!("'{s}': no DH group (x25519, ecp256, modp2048)"));
    }
    let p = IkeProposal { encr, integ, prf, dh };
    p.validate().map_err(|e| format!("'{s}': {e}"))?;
    Ok(p)
}

/// `aes256gcm16`, `chacha20poly1305-esn`, `aes128gcm16-x25519` (PFS group).
pub fn parse_esp_proposal(s: &str) -> Result<EspProposal, String> {
    let (mut encr, mut pfs, mut esn) = (vec![], vec![], EsnPolicy::Either);
    for t in s.split('-') {
        match t {
            "aes128gcm16" | "aes128gcm" => encr.push(EspAlg::AesGcm16_128),
            "aes256gcm16" | "aes256gcm" => encr.push(EspAlg::AesGcm16_256),
            "chacha20poly1305" => encr.push(EspAlg::ChaCha20Poly1305),
            "esn" => esn = EsnPolicy::Yes,
            "noesn" => esn = EsnPolicy::No,
            other => match dh_of(other) {
                Some(g) => pfs.push(g),
                None => return Err(format!("'{s}': unknown algorithm '{other}' (ESP: aes128gcm16, aes256gcm16, chacha20poly1305)")),
            },
        }
    }
    if encr.is_empty() {
        return Err(format!("'{s}': no cipher"));
    }
    Ok(EspProposal { encr, esn, pfs })
}

fn de_ike_proposals<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<IkeProposal>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom("empty proposal list"));
    }
    v.iter().map(|s| parse_ike_proposal(s)).collect::<Result<_, _>>().map(Some).map_err(de::Error::custom)
}

fn de_esp_proposals<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<EspProposal>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom("empty proposal list"));
    }
    v.iter().map(|s| parse_esp_proposal(s)).collect::<Result<_, _>>().map(Some).map_err(de::Error::custom)
}

fn prefix_range(a: IpAddr, len: u8) -> Result<(IpAddr, IpAddr), String> {
    match a {
        IpAddr::V4(v) => {
            if len > 32 {
                return Err(format!("/{len} is longer than 32"));
            }
            let bits = u32::from(v);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Ok((IpAddr::from((bits & mask).to_be_bytes()), IpAddr::from((bits | !mask).to_be_bytes())))
        }
        IpAddr::V6(v) => {
            if len > 128 {
                return Err(format!("/{len} is longer than 128"));
            }
            let bits = u128::from(v);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            Ok((IpAddr::from((bits & mask).to_be_bytes()), IpAddr::from((bits | !mask).to_be_bytes())))
        }
    }
}

fn proto_of(s: &str) -> Result<u8, String> {
    match s {
        "any" => Ok(0),
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "ipv6-icmp" => Ok(58),
        "sctp" => Ok(132),
        n => n.parse().map_err(|_| format!("'{n}' is not a protocol (tcp, udp, icmp, icmpv6, sctp, or a number)")),
    }
}

/// `ADDR[/LEN]` or `START-END`, then optionally a protocol and a port or
/// port range: `192.0.2.0/24`, `10.0.0.1-10.0.0.9 tcp 443`, `::/0 udp 1000-2000`.
pub fn parse_selector(s: &str) -> Result<TrafficSelector, String> {
    let mut parts = s.split_whitespace();
    let addr = parts.next().ok_or("empty traffic selector")?;
    let bad = |a: &str| format!("'{a}' is not an address, prefix or range");
    let (start, end) = if let Some((a, l)) = addr.split_once('/') {
        let ip: IpAddr = a.parse().map_err(|_| bad(addr))?;
        prefix_range(ip, l.parse().map_err(|_| bad(addr))?)?
    } else if let Some((a, b)) = addr.split_once('-') {
        let (x, y): (IpAddr, IpAddr) = (a.parse().map_err(|_| bad(addr))?, b.parse().map_err(|_| bad(addr))?);
        if x.is_ipv4() != y.is_ipv4() || x > y {
            return Err(format!("'{addr}': range ends must be of one family and ordered"));
        }
        (x, y)
    } else {
        let ip: IpAddr = addr.parse().map_err(|_| bad(addr))?;
        (ip, ip)
    };
    let mut ts = TrafficSelector::range(start, end);
    if let Some(p) = parts.next() {
        ts.ip_proto = proto_of(p)?;
    }
    if let Some(r) = parts.next() {
        let port = |x: &str| x.parse::<u16>().map_err(|_| format!("'{x}' is not a port"));
        let (lo, hi) = match r.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(r)?, port(r)?),
        };
        if lo > hi {
            return Err(format!("port range '{r}' is reversed"));
        }
        ts.start_port = lo;
        ts.end_port = hi;
    }
    if let Some(extra) = parts.next() {
        return Err(format!("unexpected '{extra}' in traffic selector '{s}'"));
    }
    Ok(ts)
}

fn de_selectors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<TrafficSelector>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom("empty selector list"));
    }
    v.iter().map(|s| parse_selector(s)).collect::<Result<_, _>>().map(Some).map_err(de::Error::custom)
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "transport" => Ok(Some(Mode::Transport)),
        "tunnel" => Ok(Some(Mode::Tunnel)),
        o => Err(de::Error::custom(format!("'{o}' is not a mode (transport, tunnel)"))),
    }
}

// ---- locating errors -------------------------------------------------------

struct Locator<'a> {
    file: &'a Path,
    src: &'a str,
}

impl Locator<'_> {
    fn line_of(&self, off: usize) -> usize {
        self.src[..off.min(self.src.len())].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// The key whose value covers `off`: the nearest `key =` at or before it.
    fn key_at(&self, off: usize) -> Option<String> {
        let head = &self.src[..off.min(self.src.len())];
        for line in head.lines().rev() {
            let t = line.trim_start();
            if t.starts_with('[') {
                return Some(t.trim_matches(|c| c == '[' || c == ']').to_owned());
            }
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c)) {
                    return Some(k.trim_matches('"').to_owned());
                }
            }
        }
        None
    }

    fn at(&self, span: Range<usize>, field: &str, reason: &str) -> ConfigError {
        ConfigError(format!("{}:{}: field {}: {}", self.file.display(), self.line_of(span.start), field, reason))
    }

    fn toml(&self, e: &toml::de::Error) -> ConfigError {
        let msg = e.message().trim().to_owned();
        let quoted = |pfx: &str| {
            msg.find(pfx).and_then(|i| {
                let rest = &msg[i + pfx.len()..];
                rest.find('`').map(|j| rest[..j].to_owned())
            })
        };
        let span = e.span().unwrap_or(0..0);
        let line = self.line_of(span.start);
        let file = self.file.display();
        if let Some(f) = quoted("missing field `") {
            return ConfigError(format!("{file}:{line}: field {f}: missing"));
        }
        if let Some(f) = quoted("unknown field `") {
            return ConfigError(format!("{file}:{line}: field {f}: unknown field"));
        }
        match self.key_at(span.end.max(span.start + 1)) {
            Some(k) => ConfigError(format!("{file}:{line}: field {k}: {msg}")),
            None => ConfigError(format!("{file}:{line}: {msg}")),
        }
    }
}

/// Reads a PSK file: refused when group or others may read it.
pub fn read_psk_file(path: &Path) -> Result<SecretBytes, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is accessible by group or others (mode {:03o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = data;
    while text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretBytes::new(text))
}

fn retransmit(r: Option<&RawRetransmit>, default: Retransmit) -> Retransmit {
    r.map_or(default, |r| Retransmit { timeout: r.timeout, base: r.base, tries: r.tries })
}

/// Parses a configuration file.
pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    parse(path, &src)
}

/// Parses configuration text; `path` names it in errors and anchors
/// relative `psk_file`s.
pub fn parse(path: &Path, src: &str) -> Result<DaemonConfig, ConfigError> {
    let loc = Locator { file: path, src };
    let raw: RawFile = toml::from_str(src).map_err(|e| loc.toml(&e))?;
    let mut names = HashSet::new();
    let mut connections = Vec::new();
    for sc in &raw.connections {
        let span = sc.span();
        let rc = sc.get_ref();
        let name = rc.name.get_ref().clone();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(loc.at(rc.name.span(), "name", "must be non-empty without spaces"));
        }
        if !names.insert(name.clone()) {
            return Err(loc.at(rc.name.span(), "name", &format!("duplicate connection name '{name}'")));
        }
        let psk = match (&rc.psk, &rc.psk_file) {
            (Some(_), Some(f)) => return Err(loc.at(f.span(), "psk_file", "give either psk or psk_file, not both")),
            (None, None) => return Err(loc.at(span, "psk", &format!("connection '{name}' needs psk or psk_file"))),
            (Some(p), None) if p.get_ref().is_empty() => return Err(loc.at(p.span(), "psk", "empty")),
            (Some(p), None) => SecretBytes::from(p.get_ref().as_str()),
            (None, Some(f)) => {
                let p = Path::new(f.get_ref());
                let full = if p.is_relative() { path.parent().unwrap_or(Path::new(".")).join(p) } else { p.to_owned() };
                read_psk_file(&full).map_err(|e| loc.at(f.span(), "psk_file", &e))?
            }
        };
        let local_id = rc.local_id.clone().unwrap_or(match rc.local_addr {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        });
        let remote_id = match (&rc.remote_id, rc.remote_addrs.first()) {
            (Some(i), _) => i.clone(),
            (None, Some(IpAddr::V4(a))) => Identity::Ipv4(*a),
            (None, Some(IpAddr::V6(a))) => Identity::Ipv6(*a),
            (None, None) => return Err(loc.at(span, "remote_id", "needed when remote_addrs is empty")),
        };
        if rc.remote_addrs.iter().any(|a| a.is_ipv4() != rc.local_addr.is_ipv4()) {
            return Err(loc.at(span, "remote_addrs", "must be of the local_addr's address family"));
        }
        let mut c = Connection::new(&name, rc.local_addr, rc.remote_addrs.clone(), local_id, remote_id, psk);
        if let Some(p) = &rc.ike {
            c.ike_proposals = p.clone();
        }
        if let Some(p) = &rc.esp {
            c.esp_proposals = p.clone();
        }
        if let Some(t) = &rc.local_ts {
            c.local_ts = t.clone();
        }
        if let Some(t) = &rc.remote_ts {
            c.remote_ts = t.clone();
        } else if rc.remote_addrs.is_empty() {
            return Err(loc.at(span, "remote_ts", "needed when remote_addrs is empty"));
        }
        c.mode = rc.mode.unwrap_or(Mode::Transport);
        c.force_encap = rc.force_encap;
        c.liveness_interval = rc.liveness_interval;
        c.retransmit = retransmit(rc.retransmit.as_ref(), c.retransmit);
        c.hint_retransmit = retransmit(rc.hint_retransmit.as_ref(), c.hint_retransmit);
        for (k, r) in [("retransmit", &c.retransmit), ("hint_retransmit", &c.hint_retransmit)] {
            if !(1.0..=10.0).contains(&r.base) || r.tries > 20 {
                return Err(loc.at(span, k, "base must be 1.0..=10.0 and tries at most 20"));
            }
        }
        c.initiate_on_spi_miss = rc.initiate_on_spi_miss;
        let d = Lifetimes::default();
        let hard = rc.child_lifetime.unwrap_or(d.child_hard);
        let soft = rc.child_rekey.unwrap_or_else(|| hard.mul_f64(0.9));
        if soft >= hard {
            return Err(loc.at(span, "child_rekey", "must be shorter than child_lifetime"));
        }
        c.lifetimes = Lifetimes { ike_rekey: rc.ike_rekey.unwrap_or(d.ike_rekey), child_soft: soft, child_hard: hard };
        let replay_window = rc.replay_window.unwrap_or(64);
        if replay_window > 4096 {
            return Err(loc.at(span, "replay_window", "at most 4096"));
        }
        if c.mode == Mode::Transport {
            let fam = rc.local_addr.is_ipv4();
            if c.local_ts.iter().chain(&c.remote_ts).all(|t| t.start_addr.is_ipv4() != fam) {
                return Err(loc.at(span, "local_ts", "no selector of the outer address family in transport mode"));
            }
        }
        let start = rc.start.unwrap_or(StartAction::None);
        if start != StartAction::None && c.remote_addrs.is_empty() {
            return Err(loc.at(span, "start", "start and trap need a remote address"));
        }
        let one = ripsec_ike::Config { connections: vec![c.clone()], ..Default::default() };
        one.validate().map_err(|e| loc.at(span.clone(), "connection", e))?;
        let fingerprint = format!("{:?}|{:?}|{}|{:?}", c, start, replay_window, c.psk.expose());
        connections.push(ConnConfig { engine: c, start, replay_window, fingerprint });
    }
    let stats_interval = raw.daemon.stats_interval.unwrap_or(Duration::from_secs(1));
    let release_grace = raw.daemon.release_grace.unwrap_or(Some(Duration::from_secs(2)));
    Ok(DaemonConfig { path: path.to_owned(), connections, stats_interval, release_grace })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const GOOD: &str = r#"
[daemon]
stats_interval = "2s"

[[connection]]
name = "web"
local_addr = "192.0.2.1"
remote_addrs = ["192.0.2.2"]
local_id = "fqdn:node.example"
remote_id = "@client.example"
psk = "secret"
ike = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"]
esp = ["aes256gcm16", "chacha20poly1305-esn"]
local_ts = ["192.0.2.1/32 tcp 443"]
remote_ts = ["192.0.2.0/24"]
mode = "tunnel"
start = "trap"
force_encap = true
liveness_interval = "30s"
retransmit = { timeout = "2s", base = 1.5, tries = 3 }
initiate_on_spi_miss = true
ike_rekey = "never"
child_lifetime = "1h"
child_rekey = "50m"

[[connection]]
name = "v6"
local_addr = "2001:db8::1"
remote_addrs = ["2001:db8::2"]
local_id = "keyid:0a0b"
psk = "x"
"#;

    fn p(src: &str) -> Result<DaemonConfig, ConfigError> {
        parse(Path::new("/etc/ripsec.toml"), src)
    }

    #[test]
    fn release_grace_default_value_and_never() {
        assert_eq!(p(GOOD).unwrap().release_grace, Some(Duration::from_secs(2)));
        let g = GOOD.replace("stats_interval = \"2s\"", "stats_interval = \"2s\"\nrelease_grace = \"500ms\"");
        assert_eq!(p(&g).unwrap().release_grace, Some(Duration::from_millis(500)));
        let g = GOOD.replace("stats_interval = \"2s\"", "stats_interval = \"2s\"\nrelease_grace = \"never\"");
        assert_eq!(p(&g).unwrap().release_grace, None);
    }

    #[test]
    fn good_file() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.stats_interval, Duration::from_secs(2));
        assert_eq!(c.connections.len(), 2);
        let w = &c.connections[0];
        assert_eq!(w.start, StartAction::Trap);
        let e = &w.engine;
        assert_eq!(e.local_id, Identity::Fqdn("node.example".into()));
        assert_eq!(e.remote_id, Identity::Fqdn("client.example".into()));
        assert_eq!(e.ike_proposals.len(), 2);
        assert_eq!(e.ike_proposals[0].dh, vec![DhGroup::Curve25519]);
        assert_eq!(e.ike_proposals[1].integ, vec![IntegAlg::HmacSha256_128]);
        assert_eq!(e.esp_proposals[1].esn, EsnPolicy::Yes);
        assert_eq!(e.local_ts[0].ip_proto, 6);
        assert_eq!((e.local_ts[0].start_port, e.local_ts[0].end_port), (443, 443));
        assert_eq!(e.remote_ts[0].end_addr, "192.0.2.255".parse::<IpAddr>().unwrap());
        assert_eq!(e.mode, Mode::Tunnel);
        assert!(e.force_encap && e.initiate_on_spi_miss);
        assert_eq!(e.liveness_interval, Some(Duration::from_secs(30)));
        assert_eq!(e.retransmit.tries, 3);
        assert_eq!(e.lifetimes.ike_rekey, None);
        assert_eq!(e.lifetimes.child_soft, Duration::from_secs(3000));
        let v6 = &c.connections[1];
        assert_eq!(v6.engine.local_id, Identity::KeyId(vec![10, 11]));
        assert_eq!(v6.engine.remote_id, Identity::Ipv6("2001:db8::2".parse().unwrap()));
        assert_eq!(v6.engine.mode, Mode::Transport);
        assert_eq!(v6.start, StartAction::None);
        assert_eq!(v6.engine.lifetimes.ike_rekey, Lifetimes::default().ike_rekey);
        // Equality drives reload.
        assert_eq!(p(GOOD).unwrap(), c);
        let changed = p(&GOOD.replace("psk = \"x\"", "psk = \"y\"")).unwrap();
        assert_eq!(changed.connections[0], c.connections[0]);
        assert_ne!(changed.connections[1], c.connections[1]);
    }

    fn err(src: &str) -> String {
        p(src).unwrap_err().0
    }

    const BASE: &str = "[[connection]]\nname = \"c\"\nlocal_addr = \"192.0.2.1\"\nremote_addrs = [\"192.0.2.2\"]\npsk = \"k\"\n";

    #[test]
    fn syntax_error_has_line() {
        let e = err(&format!("{BASE}mode = \n"));
        assert!(e.starts_with("/etc/ripsec.toml:6:"), "{e}");
    }

    #[test]
    fn bad_value_names_file_line_field() {
        let e = err(&format!("{BASE}mode = \"tunel\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field mode: 'tunel' is not a mode"), "{e}");
        let e = err(&format!("{BASE}esp = [\"aes256gcm16\", \"des\"]\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field esp: 'des': unknown algorithm"), "{e}");
        let e = err(&format!("{BASE}ike = [\"aes128gcm16-prfsha256\"]\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field ike: "), "{e}");
        assert!(e.contains("no DH group"), "{e}");
        let e = err(&BASE.replace("\"192.0.2.1\"", "\"192.0.2.300\""));
        assert!(e.starts_with("/etc/ripsec.toml:3: field local_addr: '192.0.2.300' is not an IP address"), "{e}");
        let e = err(&format!("{BASE}local_ts = [\"192.0.2.1/33\"]\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field local_ts: "), "{e}");
        let e = err(&format!("{BASE}liveness_interval = \"3 parsecs\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field liveness_interval: "), "{e}");
        let e = err(&format!("{BASE}start = \"maybe\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field start: "), "{e}");
        let e = err(&format!("{BASE}force_encap = \"yes\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field force_encap: "), "{e}");
    }

    #[test]
    fn missing_and_unknown_fields() {
        let e = err("[[connection]]\nname = \"c\"\nremote_addrs = [\"192.0.2.2\"]\npsk = \"k\"\n");
        assert!(e.starts_with("/etc/ripsec.toml:1: field local_addr: missing"), "{e}");
        let e = err(&format!("{BASE}colour = \"blue\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field colour: unknown field"), "{e}");
        let e = err(&BASE.replace("psk = \"k\"\n", ""));
        assert!(e.starts_with("/etc/ripsec.toml:1: field psk: connection 'c' needs psk or psk_file"), "{e}");
    }

    #[test]
    fn semantic_errors() {
        let e = err(&format!("{BASE}\n{BASE}"));
        assert!(e.starts_with("/etc/ripsec.toml:8: field name: duplicate connection name 'c'"), "{e}");
        let e = err(&format!("{BASE}child_rekey = \"2h\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:1: field child_rekey: must be shorter"), "{e}");
        let e = err(&BASE.replace("remote_addrs = [\"192.0.2.2\"]\n", "start = \"start\"\nremote_id = \"@x\"\nremote_ts = [\"0.0.0.0/0\"]\n"));
        assert!(e.contains("field start: "), "{e}");
        let e = err(&format!("{BASE}psk_file = \"/nonexistent\"\n"));
        assert!(e.starts_with("/etc/ripsec.toml:6: field psk_file: give either"), "{e}");
    }

    #[test]
    fn psk_file_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.psk");
        std::fs::write(&f, "filesecret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let src = BASE.replace("psk = \"k\"", "psk_file = \"k.psk\"");
        let cfg_path = dir.path().join("ripsec.toml");
        let e = parse(&cfg_path, &src).unwrap_err().0;
        assert!(e.contains(":5: field psk_file: "), "{e}");
        assert!(e.contains("accessible by group or others (mode 640)"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = parse(&cfg_path, &src).unwrap();
        assert_eq!(c.connections[0].engine.psk.expose(), b"filesecret");
        let e = parse(&cfg_path, &src.replace("k.psk", "missing.psk")).unwrap_err().0;
        assert!(e.contains("field psk_file: cannot read"), "{e}");
    }

    #[test]
    fn example_file_parses() {
        let src = include_str!("../ripsec.example.toml");
        let c = p(src).unwrap();
        assert_eq!(c.connections.len(), 1);
        assert_eq!(c.connections[0].start, StartAction::Trap);
    }

    #[test]
    fn selectors_and_identities() {
        let t = parse_selector("10.0.0.1-10.0.0.9 udp 1000-2000").unwrap();
        assert_eq!((t.ip_proto, t.start_port, t.end_port), (17, 1000, 2000));
        assert!(parse_selector("10.0.0.9-10.0.0.1").is_err());
        assert!(parse_selector("::/0").is_ok());
        assert_eq!(parse_identity("192.0.2.1").unwrap(), Identity::Ipv4("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_identity("host.example").unwrap(), Identity::Fqdn("host.example".into()));
        assert!(parse_identity("ipv4:nope").is_err());
        assert!(parse_identity("keyid:abc").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("never").unwrap(), None);
    }
}
