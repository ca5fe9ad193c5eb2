//! `ripsec daemon`: the IO around the sans-IO IKEv2 engine.
//!
//! One thread, one poll(2) loop over: the IKE UDP sockets (500 and 4500,
//! IPv4 and IPv6), the module's event multicast (ACQUIRE, SPI_MISS,
//! EXPIRE), rtnetlink address events, the control socket, and timers
//! (engine deadlines, Child SA lifetimes, the per-SA counter poll).
//!
//! Connections are grouped: connections that could answer the same
//! IKE_SA_INIT (same local address, overlapping peers) share one engine;
//! every other connection has its own. A reload rebuilds only the groups
//! whose connections changed, so SAs of unchanged connections survive.

pub mod addrs;
pub mod kernel;
pub mod net;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use rand_core::OsRng;
use ripsec_ike::{Action, Engine, Event, IkeSaState, Mode, SpiMiss, Status, TrafficSelector};
use serde_json::{json, Value};
use tracing::{debug, error, info, warn};

use crate::abi;
use crate::config::{self, ConnConfig, DaemonConfig, StartAction};
use crate::ctl::Request;
use crate::exit;
use crate::genl::{self, Client, RipsecMsg};
use addrs::{AddrWatch, Change};
use kernel::{Holder, Kernel, SaCounters};
use net::UdpSock;

const NON_ESP_MARKER: [u8; 4] = [0; 4];
const IKE_SA_INIT: u8 = 34;
const FLAG_INITIATOR: u8 = 0x08;
const FLAG_RESPONSE: u8 = 0x20;
/// First reqid the daemon hands out (the CLI's static SAs default to 1).
const FIRST_REQID: u32 = 100;

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        SHUTDOWN.store(true, Ordering::SeqCst);
    }
}

/// Connections sharing one engine.
struct Group {
    names: Vec<String>,
    engine: Engine<OsRng>,
}

/// Everything but the engines, so a group and the IO can be borrowed together.
struct Io {
    kernel: Kernel,
    socks: Vec<UdpSock>,
    reqids: HashMap<String, u32>,
    ike_index: HashMap<u64, usize>,
}

pub struct Daemon {
    cfg: DaemonConfig,
    groups: Vec<Group>,
    io: Io,
    events: netlink_sys::Socket,
    addrs: AddrWatch,
    ctl: UnixListener,
    socket_path: PathBuf,
    next_stats: Instant,
    /// Local addresses that disappeared, and when their connections' SAs
    /// are dropped if the address has not come back.
    releasing: HashMap<IpAddr, Instant>,
}

/// Whether two connections could both answer an IKE_SA_INIT.
fn overlap(a: &ConnConfig, b: &ConnConfig) -> bool {
    let (a, b) = (&a.engine, &b.engine);
    a.local_addr == b.local_addr
        && (a.remote_addrs.is_empty()
            || b.remote_addrs.is_empty()
            || a.remote_addrs.iter().any(|r| b.remote_addrs.contains(r)))
}

/// Partition of the connections into groups (sorted names each).
fn grouping(cfg: &DaemonConfig) -> Vec<Vec<String>> {
    let n = cfg.connections.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while p[r] != r {
            r = p[r];
        }
        p[i] = r;
        r
    }
    for i in 0..n {
        for j in i + 1..n {
            if overlap(&cfg.connections[i], &cfg.connections[j]) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut root_of: HashMap<usize, usize> = HashMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        let gi = *root_of.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[gi].push(cfg.connections[i].engine.name.clone());
    }
    for g in &mut groups {
        g.sort();
    }
    groups
}

fn build_engine(cfg: &DaemonConfig, names: &[String]) -> Result<Engine<OsRng>, String> {
    let connections = names.iter().filter_map(|n| cfg.connection(n)).map(|c| c.engine.clone()).collect();
    let ec = ripsec_ike::Config { connections, ..Default::default() };
    Engine::new(ec, OsRng).map_err(|e| e.to_string())
}

fn fmt_ts(t: &TrafficSelector) -> String {
    let mut s = if t.start_addr == t.end_addr {
        t.start_addr.to_string()
    } else {
        match kernel::range_to_prefixes(t.start_addr, t.end_addr, 1) {
            Some(p) if p.len() == 1 => format!("{}/{}", p[0].0, p[0].1),
            _ => format!("{}-{}", t.start_addr, t.end_addr),
        }
    };
    if t.ip_proto != 0 {
        s.push_str(&format!(" proto {}", t.ip_proto));
    }
    if (t.start_port, t.end_port) != (0, 65535) {
        s.push_str(&format!(" port {}-{}", t.start_port, t.end_port));
    }
    s
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Transport => "transport",
        Mode::Tunnel => "tunnel",
    }
}

/// The module's counters of SA (`spi`, `dir`) as status fields (absent
/// when the module did not answer or does not know the SA).
fn counter_fields(counters: Option<&HashMap<(u32, u8), SaCounters>>, spi: u32, dir: u8, name: &str) -> Vec<(String, Value)> {
    match counters.and_then(|m| m.get(&(spi, dir))) {
        Some(c) => vec![(format!("packets_{name}"), json!(c.packets)), (format!("bytes_{name}"), json!(c.bytes))],
        None => Vec::new(),
    }
}

/// IKE SAs and their Child SAs for `ripsec status`; with the module's
/// `counters`, each Child SA gets packets_in/bytes_in (its inbound SA) and
/// packets_out/bytes_out (its outbound SA).
fn status_json(st: &Status, counters: Option<&HashMap<(u32, u8), SaCounters>>) -> Vec<Value> {
    st.ike_sas
        .iter()
        .map(|sa| {
            let state = match sa.state {
                IkeSaState::Connecting => "connecting",
                IkeSaState::Authenticating => "authenticating",
                IkeSaState::Established => "established",
                IkeSaState::Rekeyed => "rekeyed",
                IkeSaState::Deleting => "deleting",
            };
            let suite = sa.suite.map(|s| {
                let mut v = vec![format!("{:?}", s.encr)];
                if let Some(i) = s.integ {
                    v.push(format!("{i:?}"));
                }
                v.push(format!("{:?}", s.prf));
                v.push(format!("{:?}", s.dh));
                v.join("/")
            });
            json!({
                "id": format!("{:016x}", sa.id.0),
                "conn": sa.conn,
                "state": state,
                "initiator": sa.initiator,
                "local": sa.local.to_string(),
                "remote": sa.remote.to_string(),
                "local_id": sa.local_id.to_string(),
                "remote_id": sa.remote_id.as_ref().map(|i| i.to_string()),
                "spi_i": format!("{:016x}", sa.spi_i),
                "spi_r": format!("{:016x}", sa.spi_r),
                "suite": suite,
                "nat_detected": sa.nat_detected,
                "udp_encap": sa.udp_encap,
                "age_s": sa.age.as_secs(),
                "children": sa.children.iter().map(|c| {
                    let mut v = json!({
                        "spi_in": format!("0x{:08x}", c.spi_in),
                        "spi_out": format!("0x{:08x}", c.spi_out),
                        "alg": format!("{:?}", c.alg),
                        "esn": c.esn,
                        "mode": mode_name(c.mode),
                        "encap": c.encap,
                        "ts_local": c.ts_local.iter().map(fmt_ts).collect::<Vec<_>>(),
                        "ts_remote": c.ts_remote.iter().map(fmt_ts).collect::<Vec<_>>(),
                        "age_s": c.age.as_secs(),
                    });
                    if let Some(o) = v.as_object_mut() {
                        o.extend(counter_fields(counters, c.spi_in, abi::DIR_IN, "in"));
                        o.extend(counter_fields(counters, c.spi_out, abi::DIR_OUT, "out"));
                    }
                    v
                }).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Peeks at an IKE header: (SPIi, SPIr, exchange, flags).
fn ike_header(data: &[u8]) -> Option<(u64, u64, u8, u8)> {
    if data.len() < 28 {
        return None;
    }
    let spi_i = u64::from_be_bytes(data[0..8].try_into().ok()?);
    let spi_r = u64::from_be_bytes(data[8..16].try_into().ok()?);
    Some((spi_i, spi_r, data[18], data[19]))
}

/// The control socket: refuses to replace a live daemon's socket, creates
/// a missing parent directory 0700 and the socket 0600.
fn bind_control(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("another ripsec daemon is listening on {}", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("removing stale {}: {e}", path.display()))?;
    }
    // SAFETY: umask(2) has no memory effects; restored right after bind.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = l.map_err(|e| format!("binding {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

/// Runs the daemon until SIGTERM/SIGINT; returns the process exit code.
pub fn run(config_path: &Path, socket: &Path) -> u8 {
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            eprintln!("ripsec: {e}");
            return exit::CONFIG_INVALID;
        }
    };
    let mut d = match Daemon::new(cfg, socket) {
        Ok(d) => d,
        Err((code, msg)) => {
            error!("{msg}");
            eprintln!("ripsec: {msg}");
            return code;
        }
    };
    // SAFETY: installing an async-signal-safe handler (atomic stores only).
    unsafe {
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(s, on_signal as *const () as libc::sighandler_t);
        }
    }
    info!("ripsec daemon running: {} connection(s), control socket {}", d.cfg.connections.len(), socket.display());
    let rc = d.run_loop();
    d.shutdown();
    rc
}

impl Daemon {
    fn new(cfg: DaemonConfig, socket: &Path) -> Result<Self, (u8, String)> {
        let gerr = |e: genl::Error| {
            let code = match e {
                genl::Error::ModuleNotLoaded => exit::MODULE_NOT_LOADED,
                genl::Error::PermissionDenied => exit::PERMISSION_DENIED,
                _ => exit::ERROR,
            };
            (code, e.to_string())
        };
        let kernel = Kernel::new().map_err(gerr)?;
        let events = Client::connect().and_then(Client::subscribe).map_err(gerr)?;
        events.set_non_blocking(true).map_err(|e| (exit::ERROR, e.to_string()))?;
        let addrs = AddrWatch::new().map_err(|e| (exit::ERROR, format!("rtnetlink: {e}")))?;
        let mut socks = Vec::new();
        for v6 in [false, true] {
            for port in [500, 4500] {
                match UdpSock::bind(v6, port) {
                    Ok(s) => socks.push(s),
                    Err(e) if v6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                        warn!("IPv6 unavailable: no IKE over IPv6");
                    }
                    Err(e) => {
                        let fam = if v6 { "IPv6" } else { "IPv4" };
                        return Err((exit::ERROR, format!("binding UDP port {port} ({fam}): {e}")));
                    }
                }
            }
        }
        let ctl = bind_control(socket).map_err(|e| (exit::ERROR, e))?;
        let mut d = Daemon {
            cfg: DaemonConfig {
                path: cfg.path.clone(),
                connections: Vec::new(),
                stats_interval: cfg.stats_interval,
                release_grace: cfg.release_grace,
            },
            groups: Vec::new(),
            io: Io { kernel, socks, reqids: HashMap::new(), ike_index: HashMap::new() },
            events,
            addrs,
            ctl,
            socket_path: socket.to_owned(),
            next_stats: Instant::now(),
            releasing: HashMap::new(),
        };
        info!("local addresses: {:?}", d.addrs.current);
        for p in kernel::ike_bypass_policies() {
            if let Err(e) = d.io.kernel.hold_policy(&p, Holder::Bypass) {
                let _ = std::fs::remove_file(socket);
                d.io.kernel.cleanup();
                return Err((exit::ERROR, format!("installing the IKE bypass policies: {e}")));
            }
        }
        if let Err(e) = d.apply(cfg) {
            let _ = std::fs::remove_file(socket);
            d.io.kernel.cleanup();
            return Err((exit::CONFIG_INVALID, e));
        }
        Ok(d)
    }

    fn reqid(&mut self, conn: &str) -> u32 {
        if let Some(r) = self.io.reqids.get(conn) {
            return *r;
        }
        let used: BTreeSet<u32> = self.io.reqids.values().copied().collect();
        let r = (FIRST_REQID..).find(|r| !used.contains(r)).unwrap_or(FIRST_REQID);
        self.io.reqids.insert(conn.to_owned(), r);
        r
    }

    fn group_of(&self, conn: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.names.iter().any(|n| n == conn))
    }

    /// Applies a (new) configuration: keeps unchanged groups, retires and
    /// rebuilds the others. Returns (added, removed, changed, unchanged).
    fn apply(&mut self, new: DaemonConfig) -> Result<[Vec<String>; 4], String> {
        let now = Instant::now();
        let new_groups = grouping(&new);
        // Build every new engine first so a failure leaves everything as it was.
        let mut built: Vec<Option<Engine<OsRng>>> = Vec::new();
        for names in &new_groups {
            built.push(Some(build_engine(&new, names)?));
        }
        let same = |n: &String| self.cfg.connection(n).is_some() && self.cfg.connection(n) == new.connection(n);
        // Each new group carries on the old engine holding most of its
        // unchanged connections, whose SAs survive; an old engine serves one
        // new group at most. Connections regrouped away from their engine
        // (a reload that merges or splits groups) are restarted.
        let mut reuse: Vec<Option<usize>> = Vec::new();
        let mut taken = vec![false; self.groups.len()];
        for names in &new_groups {
            let best = (0..self.groups.len())
                .filter(|&i| !taken[i])
                .map(|i| (i, names.iter().filter(|n| self.groups[i].names.contains(n) && same(n)).count()))
                .filter(|&(_, k)| k > 0)
                .max_by_key(|&(i, k)| (k, std::cmp::Reverse(i)))
                .map(|(i, _)| i);
            if let Some(i) = best {
                taken[i] = true;
            }
            reuse.push(best);
        }
        let mut survivors: BTreeSet<String> = BTreeSet::new();
        for (names, r) in new_groups.iter().zip(&reuse) {
            if let Some(i) = *r {
                survivors.extend(names.iter().filter(|n| self.groups[i].names.contains(n) && same(n)).cloned());
            }
        }
        let old_names: BTreeSet<String> = self.cfg.connections.iter().map(|c| c.engine.name.clone()).collect();
        let new_names: BTreeSet<String> = new.connections.iter().map(|c| c.engine.name.clone()).collect();
        let mut report: [Vec<String>; 4] = Default::default();
        for n in &new_names {
            if !old_names.contains(n) {
                report[0].push(n.clone());
            } else if survivors.contains(n) {
                report[3].push(n.clone());
            } else {
                report[2].push(n.clone());
            }
        }
        report[1] = old_names.difference(&new_names).cloned().collect();
        // Tear down, under the old configuration, every connection that does
        // not survive: Deletes sent once, module SAs and traps removed.
        let mut old_groups: Vec<Option<Group>> = std::mem::take(&mut self.groups).into_iter().map(Some).collect();
        for (i, slot) in old_groups.iter_mut().enumerate() {
            let Some(g) = slot.as_mut() else { continue };
            let doomed: Vec<String> = g.names.iter().filter(|n| !(taken[i] && survivors.contains(*n))).cloned().collect();
            if doomed.is_empty() {
                continue;
            }
            info!("retiring connection(s) {:?}", doomed);
            for n in &doomed {
                let _ = g.engine.terminate(n, now);
            }
            drain(g, &mut self.io, &self.cfg, now);
            for n in &doomed {
                self.io.kernel.delete_conn_children(n);
                self.io.kernel.release_all(&Holder::Trap(n.clone()));
            }
        }
        let mut groups = Vec::new();
        let mut fresh: Vec<String> = Vec::new();
        for (k, names) in new_groups.into_iter().enumerate() {
            let g = match reuse[k].and_then(|i| old_groups.get_mut(i)).and_then(Option::take) {
                Some(mut g) => {
                    let conns = names.iter().filter_map(|n| new.connection(n)).map(|c| c.engine.clone()).collect();
                    // Validated above with the same connections.
                    g.engine.reconfigure(conns, |n| survivors.contains(n)).map_err(|e| e.to_string())?;
                    drain(&mut g, &mut self.io, &self.cfg, now);
                    fresh.extend(names.iter().filter(|n| !survivors.contains(*n)).cloned());
                    Group { names, engine: g.engine }
                }
                None => {
                    fresh.extend(names.iter().cloned());
                    Group { names, engine: built[k].take().ok_or("engine built above")? }
                }
            };
            groups.push(g);
        }
        // Old engines that no new group carries on are dropped with whatever
        // they still hold (all of it terminated above).
        drop(old_groups);
        self.groups = groups;
        self.cfg = new;
        for n in report[1].iter() {
            self.io.reqids.remove(n);
        }
        for n in fresh {
            self.start_conn(&n, now);
        }
        self.io.ike_index.clear();
        self.reindex();
        Ok(report)
    }

    /// Start action of a (new) connection.
    fn start_conn(&mut self, name: &str, now: Instant) {
        let Some(c) = self.cfg.connection(name).cloned() else { return };
        let reqid = self.reqid(name);
        match c.start {
            StartAction::None => {}
            StartAction::Trap => {
                let e = &c.engine;
                let remote = e.remote_addrs.first().copied().unwrap_or(e.local_addr);
                let specs = kernel::protect_policies(&e.local_ts, &e.remote_ts, e.mode, (e.local_addr, remote), reqid, true);
                for p in &specs {
                    if let Err(err) = self.io.kernel.hold_policy(p, Holder::Trap(name.to_owned())) {
                        warn!(conn = name, "installing trap policy: {err}");
                    }
                }
                info!(conn = name, "trap installed ({} policies, reqid {reqid})", specs.len());
            }
            StartAction::Start => self.initiate(name, now),
        }
    }

    fn initiate(&mut self, name: &str, now: Instant) {
        let Some(c) = self.cfg.connection(name) else { return };
        if !self.addrs.has(&c.engine.local_addr) {
            info!(conn = name, "local address {} not assigned: waiting for it", c.engine.local_addr);
            return;
        }
        let Some(gi) = self.group_of(name) else { return };
        match self.groups[gi].engine.connect(name, now) {
            Ok(id) => info!(conn = name, ike = format!("{:016x}", id.0), "initiating"),
            Err(e) => warn!(conn = name, "initiate: {e}"),
        }
    }

    fn reindex(&mut self) {
        self.io.ike_index.clear();
        let now = Instant::now();
        for (gi, g) in self.groups.iter().enumerate() {
            for sa in g.engine.status(now).ike_sas {
                self.io.ike_index.insert(sa.id.0, gi);
            }
        }
    }

    /// The group that answers for (local, remote) addresses, if any.
    fn group_by_addr(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.groups.iter().position(|g| {
            g.names.iter().filter_map(|n| self.cfg.connection(n)).any(|c| {
                c.engine.local_addr == local && (c.engine.remote_addrs.is_empty() || c.engine.remote_addrs.contains(&remote))
            })
        })
    }

    fn route_datagram(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> Option<usize> {
        let ike = if local.port() == 4500 {
            data.strip_prefix(&NON_ESP_MARKER[..])?
        } else {
            data
        };
        let (spi_i, spi_r, exch, flags) = ike_header(ike)?;
        if !self.addrs.has(&local.ip()) {
            debug!(%local, "IKE for an address not assigned here: ignored");
            return None;
        }
        if exch == IKE_SA_INIT && flags & FLAG_RESPONSE == 0 {
            return self.group_by_addr(local.ip(), remote.ip());
        }
        let ours = if flags & FLAG_INITIATOR != 0 { spi_r } else { spi_i };
        if let Some(gi) = self.io.ike_index.get(&ours) {
            return Some(*gi);
        }
        self.reindex();
        if let Some(gi) = self.io.ike_index.get(&ours) {
            return Some(*gi);
        }
        self.group_by_addr(local.ip(), remote.ip()).or(if self.groups.is_empty() { None } else { Some(0) })
    }

    fn run_loop(&mut self) -> u8 {
        let mut buf = vec![0u8; 65536];
        loop {
            if SHUTDOWN.load(Ordering::SeqCst) {
                info!("shutting down");
                return exit::OK;
            }
            if RELOAD.swap(false, Ordering::SeqCst) {
                let v = self.reload();
                info!("SIGHUP reload: {v}");
            }
            let now = Instant::now();
            let mut deadline = self.next_stats;
            for g in &self.groups {
                if let Some(t) = g.engine.poll_timeout() {
                    deadline = deadline.min(t);
                }
            }
            for t in self.releasing.values() {
                deadline = deadline.min(*t);
            }
            for c in self.io.kernel.children.values() {
                if !c.soft_fired {
                    deadline = deadline.min(c.soft_at);
                }
                if !c.hard_fired {
                    deadline = deadline.min(c.hard_at);
                }
            }
            let wait = deadline.saturating_duration_since(now).min(Duration::from_secs(1));
            let mut fds: Vec<RawFd> = self.io.socks.iter().map(UdpSock::raw_fd).collect();
            let nsocks = fds.len();
            fds.push(self.events.as_raw_fd());
            fds.push(self.addrs.fd());
            fds.push(self.ctl.as_raw_fd());
            let ready = match net::poll_readable(&fds, wait.as_millis().min(1000) as i32 + 1) {
                Ok(r) => r,
                Err(e) => {
                    error!("poll: {e}");
                    return exit::ERROR;
                }
            };
            for i in ready {
                if i < nsocks {
                    self.read_udp(i, &mut buf);
                } else if i == nsocks {
                    self.read_events(&mut buf);
                } else if i == nsocks + 1 {
                    self.read_addrs();
                } else {
                    self.accept_control();
                }
            }
            let now = Instant::now();
            for g in &mut self.groups {
                if g.engine.poll_timeout().is_some_and(|t| t <= now) {
                    g.engine.handle_timeout(now);
                }
            }
            self.child_timers(now);
            self.release_addrs(now);
            if now >= self.next_stats {
                self.next_stats = now + self.cfg.stats_interval;
                self.poll_stats(now);
            }
            self.drain_all(now);
        }
    }

    fn drain_all(&mut self, now: Instant) {
        for g in &mut self.groups {
            drain(g, &mut self.io, &self.cfg, now);
        }
    }

    fn read_udp(&mut self, i: usize, buf: &mut [u8]) {
        loop {
            let r = self.io.socks[i].recv(buf);
            let (n, local, remote) = match r {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => {
                    warn!("IKE socket: {e}");
                    return;
                }
            };
            let data = &buf[..n];
            if let Some(gi) = self.route_datagram(local, remote, data) {
                let now = Instant::now();
                self.groups[gi].engine.handle_datagram(now, local, remote, data);
                // Install what this message completed at once, before other
                // sockets, timers or the stats dump: a peer that answered
                // our rekey may already be sending on the new Child SA, and
                // the module drops that ESP until its inbound SA is in.
                drain(&mut self.groups[gi], &mut self.io, &self.cfg, now);
            } else {
                debug!(%local, %remote, len = n, "datagram not for any connection");
            }
        }
    }

    fn read_events(&mut self, buf: &mut [u8]) {
        loop {
            let n = match self.events.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("module events: {e} (events lost)");
                    return;
                }
            };
            let mut off = 0;
            let mut msgs = Vec::new();
            while off < n {
                let Ok(msg) = NetlinkMessage::<GenlMessage<RipsecMsg>>::deserialize(&buf[off..n]) else { break };
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if let NetlinkPayload::InnerMessage(m) = msg.payload {
                    msgs.push(m.payload);
                }
            }
            for m in msgs {
                self.module_event(&m);
            }
        }
    }

    fn module_event(&mut self, m: &RipsecMsg) {
        let now = Instant::now();
        let (mut spi, mut src, mut dst, mut reqid, mut dir, mut hard, mut sport, mut dport) =
            (None, None, None, None, None, false, None, None);
        for a in &m.attrs {
            match genl::attr_kind(a) {
                abi::A_SPI => spi = genl::attr_uint(a).ok().map(|v| v as u32),
                abi::A_SRC => src = genl::attr_addr(a).ok(),
                abi::A_DST => dst = genl::attr_addr(a).ok(),
                abi::A_REQID => reqid = genl::attr_uint(a).ok().map(|v| v as u32),
                abi::A_DIR => dir = genl::attr_uint(a).ok().map(|v| v as u8),
                abi::A_HARD => hard = true,
                abi::A_ENCAP_SPORT => sport = genl::attr_uint(a).ok().map(|v| v as u16),
                abi::A_ENCAP_DPORT => dport = genl::attr_uint(a).ok().map(|v| v as u16),
                _ => {}
            }
        }
        match m.cmd {
            abi::CMD_EV_ACQUIRE => {
                let Some(r) = reqid else { return };
                let Some(conn) = self.io.reqids.iter().find(|(_, v)| **v == r).map(|(k, _)| k.clone()) else {
                    debug!(reqid = r, "ACQUIRE for a reqid that is not ours");
                    return;
                };
                let Some(c) = self.cfg.connection(&conn) else { return };
                if !self.addrs.has(&c.engine.local_addr) {
                    info!(conn, "ACQUIRE ignored: local address {} not assigned", c.engine.local_addr);
                    return;
                }
                let Some(remote) = c.engine.remote_addrs.first().copied() else { return };
                let Some(gi) = self.group_of(&conn) else { return };
                info!(conn, ?src, ?dst, "ACQUIRE: negotiating");
                if let Err(e) = self.groups[gi].engine.acquire(&conn, remote, now) {
                    warn!(conn, "acquire: {e}");
                }
            }
            abi::CMD_EV_SPI_MISS => {
                let (Some(spi), Some(src), Some(dst)) = (spi, src, dst) else { return };
                let udp = sport.zip(dport);
                let gi = match self.group_by_addr(dst, src) {
                    Some(gi) => gi,
                    None if self.groups.is_empty() => return,
                    None => 0,
                };
                if !self.addrs.has(&dst) {
                    return;
                }
                info!(spi = format!("{spi:08x}"), %src, %dst, "ESP for an unknown SPI");
                self.groups[gi].engine.spi_miss(SpiMiss { local: dst, remote: src, spi, udp }, now);
            }
            abi::CMD_EV_EXPIRE => {
                let Some(spi) = spi else { return };
                let spi_in = if dir == Some(abi::DIR_IN) {
                    Some(spi)
                } else {
                    self.io.kernel.children.values().find(|c| c.spi_out == spi).map(|c| c.spi_in)
                };
                let Some(spi_in) = spi_in else { return };
                let Some(conn) = self.io.kernel.children.get(&spi_in).map(|c| c.conn.clone()) else { return };
                let Some(gi) = self.group_of(&conn) else { return };
                info!(conn, spi_in = format!("{spi_in:08x}"), hard, "Child SA expired (kernel)");
                let _ = self.groups[gi].engine.child_expired(spi_in, hard, now);
            }
            _ => {}
        }
    }

    fn read_addrs(&mut self) {
        let now = Instant::now();
        for c in self.addrs.read() {
            match c {
                Change::Added(a) => {
                    self.releasing.remove(&a);
                    let conns: Vec<String> =
                        self.cfg.connections.iter().filter(|c| c.engine.local_addr == a).map(|c| c.engine.name.clone()).collect();
                    info!("address {a} added{}", if conns.is_empty() { String::new() } else { format!(": serving {conns:?}") });
                    for n in conns {
                        let start = self.cfg.connection(&n).map(|c| c.start);
                        let has_sa = self.group_of(&n).is_some_and(|gi| {
                            self.groups[gi].engine.status(now).ike_sas.iter().any(|s| s.conn == n)
                        });
                        if start == Some(StartAction::Start) && !has_sa {
                            self.initiate(&n, now);
                        }
                    }
                }
                Change::Removed(a) => {
                    let conns: Vec<String> =
                        self.cfg.connections.iter().filter(|c| c.engine.local_addr == a).map(|c| c.engine.name.clone()).collect();
                    info!("address {a} removed{}", if conns.is_empty() { String::new() } else { format!(": no longer serving {conns:?}") });
                    if !conns.is_empty() {
                        if let Some(g) = self.cfg.release_grace {
                            self.releasing.insert(a, now + g);
                        }
                    }
                }
            }
        }
    }

    /// Drops the SAs of connections whose local address stayed absent for
    /// the grace period (the package moved away): nothing can be sent from
    /// an address we no longer hold, so they go without Deletes.
    fn release_addrs(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self.releasing.iter().filter(|(_, t)| **t <= now).map(|(a, _)| *a).collect();
        for a in due {
            self.releasing.remove(&a);
            if self.addrs.has(&a) {
                continue;
            }
            let conns: Vec<String> =
                self.cfg.connections.iter().filter(|c| c.engine.local_addr == a).map(|c| c.engine.name.clone()).collect();
            for n in conns {
                let Some(gi) = self.group_of(&n) else { continue };
                let remotes: BTreeSet<IpAddr> =
                    self.groups[gi].engine.status(now).ike_sas.iter().filter(|s| s.conn == n).map(|s| s.remote.ip()).collect();
                let mut dropped = 0;
                for r in remotes {
                    dropped += self.groups[gi].engine.delete_peer(r);
                }
                if dropped > 0 {
                    info!(conn = n, "address {a} still absent: dropped {dropped} IKE SA(s) and their Child SAs");
                }
            }
        }
    }

    fn child_timers(&mut self, now: Instant) {
        let mut due = Vec::new();
        for c in self.io.kernel.children.values_mut() {
            if !c.hard_fired && c.hard_at <= now {
                c.hard_fired = true;
                c.soft_fired = true;
                due.push((c.conn.clone(), c.spi_in, true));
            } else if !c.soft_fired && c.soft_at <= now {
                c.soft_fired = true;
                due.push((c.conn.clone(), c.spi_in, false));
            }
        }
        for (conn, spi_in, hard) in due {
            if let Some(gi) = self.group_of(&conn) {
                info!(conn, spi_in = format!("{spi_in:08x}"), "Child SA lifetime {}: {}", if hard { "hard" } else { "soft" }, if hard { "deleting" } else { "rekeying" });
                if let Err(e) = self.groups[gi].engine.child_expired(spi_in, hard, now) {
                    debug!("child_expired: {e}");
                }
            }
        }
    }

    /// Reports SAs whose packet counters grew (the module counts inbound
    /// packets only after the ICV verified).
    fn poll_stats(&mut self, now: Instant) {
        if self.io.kernel.children.is_empty() {
            return;
        }
        let counters = match self.io.kernel.sa_packets() {
            Ok(c) => c,
            Err(e) => {
                warn!("reading SA counters: {e}");
                return;
            }
        };
        let mut report = Vec::new();
        for c in self.io.kernel.children.values_mut() {
            let pin = counters.get(&(c.spi_in, abi::DIR_IN)).copied().unwrap_or(0);
            let pout = counters.get(&(c.spi_out, abi::DIR_OUT)).copied().unwrap_or(0);
            report.push((c.conn.clone(), c.spi_in, c.spi_out, pin > c.packets.0, pout > c.packets.1));
            c.packets = (pin, pout);
        }
        for (conn, spi_in, spi_out, inb, outb) in report {
            let Some(gi) = self.group_of(&conn) else { continue };
            if inb {
                self.groups[gi].engine.notify_inbound_activity(spi_in, now);
            }
            if outb {
                self.groups[gi].engine.notify_outbound_activity(spi_out, now);
            }
        }
    }

    fn accept_control(&mut self) {
        loop {
            let (stream, _) = match self.ctl.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("control socket: {e}");
                    return;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let answer = match serde_json::from_str::<Request>(line.trim()) {
                Ok(r) => self.control(r),
                Err(e) => json!({ "ok": false, "error": format!("bad request: {e}") }),
            };
            let mut out = answer.to_string();
            out.push('\n');
            let _ = (&stream).write_all(out.as_bytes());
        }
    }

    fn reload(&mut self) -> Value {
        match config::load(&self.cfg.path) {
            Err(e) => {
                warn!("reload refused, keeping the running configuration: {e}");
                json!({ "ok": false, "error": e.to_string() })
            }
            Ok(new) => match self.apply(new) {
                Ok([added, removed, changed, unchanged]) => {
                    info!(?added, ?removed, ?changed, "configuration reloaded");
                    json!({ "ok": true, "added": added, "removed": removed, "changed": changed, "unchanged": unchanged })
                }
                Err(e) => json!({ "ok": false, "error": format!("{}: {e}", self.cfg.path.display()) }),
            },
        }
    }

    fn control(&mut self, r: Request) -> Value {
        let now = Instant::now();
        let v = match r {
            Request::Up { conn } => {
                let Some(c) = self.cfg.connection(&conn) else {
                    return json!({ "ok": false, "error": format!("no connection '{conn}'") });
                };
                if !self.addrs.has(&c.engine.local_addr) {
                    return json!({ "ok": false, "error": format!("connection '{conn}': local address {} is not assigned on this node", c.engine.local_addr) });
                }
                let Some(gi) = self.group_of(&conn) else { return json!({ "ok": false, "error": "internal: no engine" }) };
                match self.groups[gi].engine.connect(&conn, now) {
                    Ok(id) => {
                        info!(conn, ike = format!("{:016x}", id.0), "initiating (control)");
                        json!({ "ok": true, "ike": format!("{:016x}", id.0) })
                    }
                    Err(e) => json!({ "ok": false, "error": e.to_string() }),
                }
            }
            Request::Down { conn } => {
                let Some(gi) = self.group_of(&conn) else {
                    return json!({ "ok": false, "error": format!("no connection '{conn}'") });
                };
                match self.groups[gi].engine.terminate(&conn, now) {
                    Ok(()) => {
                        info!(conn, "terminating (control)");
                        json!({ "ok": true })
                    }
                    Err(e) => json!({ "ok": false, "error": e.to_string() }),
                }
            }
            Request::Status => {
                // The module's counters, when it answers; status works
                // without them.
                let counters = if self.io.kernel.children.is_empty() {
                    None
                } else {
                    match self.io.kernel.sa_counters() {
                        Ok(c) => Some(c),
                        Err(e) => {
                            debug!("status without SA counters: {e}");
                            None
                        }
                    }
                };
                let mut sas = Vec::new();
                for g in &self.groups {
                    sas.extend(status_json(&g.engine.status(now), counters.as_ref()));
                }
                let conns: Vec<Value> = self
                    .cfg
                    .connections
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.engine.name,
                            "local_addr": c.engine.local_addr.to_string(),
                            "remote_addrs": c.engine.remote_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "local_id": c.engine.local_id.to_string(),
                            "remote_id": c.engine.remote_id.to_string(),
                            "mode": mode_name(c.engine.mode),
                            "start": format!("{:?}", c.start).to_lowercase(),
                            "reqid": self.io.reqids.get(&c.engine.name),
                            "local_addr_present": self.addrs.has(&c.engine.local_addr),
                        })
                    })
                    .collect();
                json!({ "ok": true, "connections": conns, "ike_sas": sas })
            }
            Request::Reload => self.reload(),
            Request::FlushPeer { peer } => match peer.parse::<IpAddr>() {
                Ok(addr) => {
                    let n: usize = self.groups.iter_mut().map(|g| g.engine.delete_peer(addr)).sum();
                    info!(%addr, "manual flush: forgot {n} IKE SA(s) with the peer");
                    json!({ "ok": true, "ike_sas": n })
                }
                Err(e) => json!({ "ok": false, "error": format!("bad peer address '{peer}': {e}") }),
            },
        };
        self.drain_all(now);
        v
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        for g in &mut self.groups {
            for n in g.names.clone() {
                let _ = g.engine.terminate(&n, now);
            }
        }
        self.drain_all(now);
        self.io.kernel.cleanup();
        let _ = std::fs::remove_file(&self.socket_path);
        info!("stopped");
    }
}

/// Sends a group's datagrams and applies its actions.
fn drain(g: &mut Group, io: &mut Io, cfg: &DaemonConfig, now: Instant) {
    loop {
        let mut progress = false;
        // Kernel first, then the wire: an SA must be in the module before
        // the message that lets the peer use it leaves (our CREATE_CHILD_SA
        // or IKE_AUTH response, the Delete of the SA a rekey replaced).
        while let Some(a) = g.engine.poll_action() {
            progress = true;
            match a {
                Action::InstallChildSa(c) => {
                    let conn = cfg.connection(&c.owner.conn);
                    let reqid = io.reqids.get(&c.owner.conn).copied().unwrap_or(FIRST_REQID);
                    let window = conn.map_or(64, |c| c.replay_window);
                    if let Err(e) = io.kernel.install_child(&c, reqid, window, now) {
                        error!(conn = c.owner.conn, spi_in = format!("{:08x}", c.spi_in), "installing Child SA: {e}");
                        let _ = g.engine.delete_child(c.spi_in, now);
                    }
                }
                Action::ActivateOutbound { owner, spi_in, .. } => {
                    if let Err(e) = io.kernel.activate_outbound(spi_in) {
                        error!(conn = owner.conn, spi_in = format!("{spi_in:08x}"), "installing the outbound SA: {e}");
                        let _ = g.engine.delete_child(spi_in, now);
                    }
                }
                Action::DeleteChildSa(d) => {
                    debug!(conn = d.owner.conn, reason = ?d.reason, "delete Child SA");
                    io.kernel.delete_child(d.spi_in, d.spi_out, d.local, d.remote);
                }
                Action::IkeSaUp { ike, conn, local, remote, local_id, remote_id, initiator } => {
                    info!(
                        conn,
                        ike = format!("{:016x}", ike.0),
                        "IKE SA established {local} [{local_id}] <-> {remote} [{remote_id}] as {}",
                        if initiator { "initiator" } else { "responder" }
                    );
                }
                Action::IkeSaDown { ike, conn, remote, reason, established, .. } => {
                    io.ike_index.remove(&ike.0);
                    if established {
                        info!(conn, ike = format!("{:016x}", ike.0), %remote, ?reason, "IKE SA down");
                    } else {
                        warn!(conn, ike = format!("{:016x}", ike.0), %remote, ?reason, "IKE SA setup failed");
                    }
                }
                Action::Event(e) => match e {
                    Event::ChildSaFailed { .. }
                    | Event::InvalidSpiHint { .. }
                    | Event::InitialContactFlush { .. }
                    | Event::Retransmitted { .. } => {
                        info!(?e, "event")
                    }
                    _ => debug!(?e, "event"),
                },
            }
        }
        while let Some(t) = g.engine.poll_transmit() {
            progress = true;
            let natt = t.non_esp_marker || t.local.port() == 4500;
            let port = if natt { 4500 } else { 500 };
            let Some(s) = io.socks.iter().find(|s| s.port == port && s.v6 == t.local.is_ipv6()) else {
                warn!(local = %t.local, "no socket to send from");
                continue;
            };
            let marker: &[u8] = if t.non_esp_marker { &NON_ESP_MARKER } else { &[] };
            if let Err(e) = s.send(t.local.ip(), t.remote, &[marker, &t.bytes]) {
                warn!(local = %t.local, remote = %t.remote, "send: {e}");
            }
        }
        if !progress {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_by_overlap() {
        let src = r#"
[[connection]]
name = "a"
local_addr = "192.0.2.1"
remote_addrs = ["192.0.2.2"]
psk = "k"
[[connection]]
name = "b"
local_addr = "192.0.2.1"
remote_addrs = []
remote_id = "@any"
remote_ts = ["0.0.0.0/0"]
psk = "k"
[[connection]]
name = "c"
local_addr = "192.0.2.9"
remote_addrs = ["192.0.2.2"]
psk = "k"
"#;
        let cfg = config::parse(Path::new("t.toml"), src).unwrap();
        let g = grouping(&cfg);
        assert_eq!(g, vec![vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]);
    }

    #[test]
    fn header_peek() {
        let mut h = [0u8; 28];
        h[7] = 1;
        h[15] = 2;
        h[18] = IKE_SA_INIT;
        h[19] = FLAG_INITIATOR;
        assert_eq!(ike_header(&h), Some((1, 2, IKE_SA_INIT, FLAG_INITIATOR)));
        assert_eq!(ike_header(&h[..20]), None);
    }

    fn one_child_status() -> Status {
        use ripsec_ike::{ChildSaStatus, EspAlg, Identity, IkeSaId, IkeSaStatus};
        let child = |spi_in: u32, spi_out: u32| ChildSaStatus {
            spi_in,
            spi_out,
            alg: EspAlg::AesGcm16_128,
            esn: true,
            mode: Mode::Tunnel,
            encap: false,
            ts_local: vec![TrafficSelector::host("192.0.2.1".parse().unwrap())],
            ts_remote: vec![TrafficSelector::host("192.0.2.2".parse().unwrap())],
            age: Duration::from_secs(7),
        };
        Status {
            ike_sas: vec![IkeSaStatus {
                id: IkeSaId(1),
                conn: "c".into(),
                state: IkeSaState::Established,
                initiator: true,
                local: "192.0.2.1:500".parse().unwrap(),
                remote: "192.0.2.2:500".parse().unwrap(),
                local_id: Identity::Fqdn("a".into()),
                remote_id: Some(Identity::Fqdn("b".into())),
                spi_i: 1,
                spi_r: 2,
                suite: None,
                nat_detected: false,
                udp_encap: false,
                age: Duration::from_secs(9),
                children: vec![child(0x1000, 0x2000), child(0x1001, 0x2001)],
            }],
        }
    }

    #[test]
    fn status_child_counters_from_the_module() {
        let st = one_child_status();
        let mut k = HashMap::new();
        k.insert((0x1000, abi::DIR_IN), SaCounters { packets: 5, bytes: 640 });
        k.insert((0x2000, abi::DIR_OUT), SaCounters { packets: 4, bytes: 512 });
        // Same SPI, other direction: must not be taken for the inbound SA.
        k.insert((0x1001, abi::DIR_OUT), SaCounters { packets: 99, bytes: 99 });
        let v = status_json(&st, Some(&k));
        let c = &v[0]["children"][0];
        assert_eq!((c["packets_in"].as_u64(), c["bytes_in"].as_u64()), (Some(5), Some(640)));
        assert_eq!((c["packets_out"].as_u64(), c["bytes_out"].as_u64()), (Some(4), Some(512)));
        assert_eq!(c["spi_in"], "0x00001000");
        // The second Child SA: the module knows neither of its SAs in
        // their directions, so no counters rather than zeros.
        let c2 = v[0]["children"][1].as_object().unwrap();
        assert!(!c2.keys().any(|k| k.starts_with("packets_") || k.starts_with("bytes_")), "{c2:?}");
        // Without the module's answer, status has no counter fields at all.
        let v = status_json(&st, None);
        for c in v[0]["children"].as_array().unwrap() {
            assert!(!c.as_object().unwrap().keys().any(|k| k.starts_with("packets_") || k.starts_with("bytes_")));
            assert_eq!(c["age_s"], 7);
        }
    }

    /// bind_control changes the process umask for a moment: the tests
    /// that call it (and check modes) must not overlap.
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode()
    }

    /// The control socket is 0600 in a new directory 0700, whatever the
    /// process umask; the umask is restored.
    #[test]
    fn control_socket_permissions() {
        use std::os::unix::fs::FileTypeExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run").join("ripsec");
        let sock = dir.join("ripsec.sock");
        let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        // A permissive umask (0): modes must not come from it.
        // SAFETY: umask(2) has no memory effects.
        let before = unsafe { libc::umask(0) };
        let l = bind_control(&sock);
        // SAFETY: as above.
        let during = unsafe { libc::umask(before) };
        let l = l.unwrap();
        assert_eq!(during, 0, "bind_control restores the umask it found");
        assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
        assert_eq!(mode(&sock) & 0o777, 0o600, "socket mode");
        assert_eq!(mode(&dir) & 0o777, 0o700, "directory mode");
        assert!(std::fs::symlink_metadata(&dir).unwrap().is_dir());
        // It is a working listener.
        let _c = UnixStream::connect(&sock).unwrap();
        assert!(l.accept().is_ok());
        // A second daemon on the same path is refused while the first listens.
        let e = bind_control(&sock).unwrap_err();
        assert!(e.contains("another ripsec daemon is listening"), "{e}");
        assert_eq!(mode(&sock) & 0o777, 0o600);
        drop(l);
        // A stale socket (no listener) is replaced, again 0600.
        std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let l2 = bind_control(&sock).unwrap();
        assert_eq!(mode(&sock) & 0o777, 0o600);
        drop(l2);
    }

    /// An existing directory keeps its mode (the administrator's choice).
    #[test]
    fn control_socket_in_existing_directory() {
        use std::os::unix::fs::PermissionsExt;
        let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        let sock = tmp.path().join("ctl.sock");
        let _l = bind_control(&sock).unwrap();
        assert_eq!(mode(&sock) & 0o777, 0o600);
        assert_eq!(mode(tmp.path()) & 0o777, 0o750);
    }
}
