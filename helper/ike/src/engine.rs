//! The engine: SA manager, message dispatch, timers and the public API.
//!
//! Each IKE SA is checked out of the table while a message or timer is
//! handled for it (as libcharon's ike_sa_manager does), so task code can
//! freely touch the rest of the table (INITIAL_CONTACT, IKE rekey).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use tracing::debug;

use crate::action::{
    Action, ChildSaStatus, DeleteChildSa, Event, IkeSaId, IkeSaStatus, Owner, Reason, Status, Transmit,
};
use crate::config::{Config, Connection, Retransmit};
use crate::consts::{exchange, notify, FLAG_INITIATOR, FLAG_RESPONSE};
use crate::crypto::sk::{self, SkKeys};
use crate::error::{Error, Result};
use crate::message::{classify_natt, encode_plain, Header, Message, NattDatagram, Notify, Payload};
use crate::sa::{ChildState, IkeSa, IkeState, Outstanding, Pending, Task};
use crate::tasks::cookie::CookieJar;

/// Whether an activity report concerns an inbound or an outbound SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// An ESP packet arrived for an SPI the kernel does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiMiss {
    /// Our address the packet was sent to.
    pub local: IpAddr,
    /// The sender.
    pub remote: IpAddr,
    pub spi: u32,
    /// (source port, destination port) when the ESP was UDP-encapsulated.
    pub udp: Option<(u16, u16)>,
}

/// The sans-IO IKEv2 engine.
pub struct Engine<R> {
    pub(crate) cfg: Config,
    pub(crate) rng: R,
    pub(crate) sas: BTreeMap<u64, IkeSa>,
    /// (peer's SPIi, peer address) → our SPI, to answer duplicate IKE_SA_INIT.
    pub(crate) half_open: HashMap<(u64, SocketAddr), u64>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) cookies: CookieJar,
    /// Rate limits for unprotected INVALID_SPI, received and sent.
    pub(crate) hint_seen: HashMap<IpAddr, Instant>,
    pub(crate) miss_sent: HashMap<IpAddr, Instant>,
    pub(crate) ike_spi_sent: HashMap<IpAddr, Instant>,
}

impl<R: CryptoRngCore> Engine<R> {
    pub fn new(cfg: Config, rng: R) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        Ok(Engine {
            cfg,
            rng,
            sas: BTreeMap::new(),
            half_open: HashMap::new(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            cookies: CookieJar::default(),
            hint_seen: HashMap::new(),
            miss_sent: HashMap::new(),
            ike_spi_sent: HashMap::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ---- public API -----------------------------------------------------

    /// Initiate an IKE SA (with its first Child SA) for a connection, to its
    /// first remote address.
    pub fn connect(&mut self, conn: &str, now: Instant) -> Result<IkeSaId> {
        let ci = self.conn_index(conn)?;
        let remote = *self.cfg.connections[ci].remote_addrs.first().ok_or(Error::Config("no remote address"))?;
        Ok(self.initiate(ci, remote, now))
    }

    /// Kernel ACQUIRE: traffic of connection `conn` (the kernel names it by
    /// the policy's reqid) to `remote` needs an SA. Reuses an established
    /// IKE SA of that connection (CREATE_CHILD_SA) or starts one; does
    /// nothing while one is being set up. The connection is named, not
    /// looked up by `remote`: several connections may share a peer address
    /// (different selectors or identities).
    pub fn acquire(&mut self, conn: &str, remote: IpAddr, now: Instant) -> Result<()> {
        let ci = self.conn_index(conn)?;
        if !self.cfg.connections[ci].remote_addrs.contains(&remote) {
            return Err(Error::Config("ACQUIRE for an address that is not among the connection's remote addresses"));
        }
        let existing: Vec<u64> = self.sas.values().filter(|s| s.conn == ci && s.state != IkeState::Rekeyed).map(|s| s.id).collect();
        if existing.is_empty() {
            self.initiate(ci, remote, now);
            return Ok(());
        }
        if let Some(id) = existing.into_iter().find(|id| self.sas.get(id).is_some_and(|s| s.is_established())) {
            self.with_sa(id, now, |e, sa, now| {
                let has_child = sa.children.iter().any(|c| c.state == ChildState::Installed);
                if !has_child && !sa.tasks.contains(&Task::CreateChild) {
                    sa.tasks.push_back(Task::CreateChild);
                }
                e.kick(sa, now);
            });
        }
        Ok(())
    }

    /// Feed a received UDP payload. When `local` is a NAT-T port the payload
    /// must start with the non-ESP marker (ESP and keepalives are ignored:
    /// the kernel handles those).
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
        let natt = self.cfg.connections.iter().any(|c| c.natt_port == local.port());
        let data = if natt {
            match classify_natt(bytes) {
                NattDatagram::Ike(b) => b,
                _ => return,
            }
        } else {
            bytes
        };
        let header = match Header::decode(data) {
            Ok(h) => h,
            // A higher major version (§2.5): the header is still readable,
            // and an IKE_SA_INIT request gets INVALID_MAJOR_VERSION.
            Err(e @ Error::BadVersion(v)) if v >> 4 > 2 => {
                if let Some(h) = Header::decode_any_version(data) {
                    self.answer_decode_error(&h, e, local, remote);
                }
                return;
            }
            Err(_) => return,
        };
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                debug!(?e, "undecodable IKE message");
                self.answer_decode_error(&header, e, local, remote);
                return;
            }
        };
        if msg.header.exchange == exchange::IKE_SA_INIT {
            if msg.header.is_response() {
                self.handle_init_response(now, local, remote, data, msg);
            } else {
                self.handle_init_request(now, local, remote, data, msg);
            }
            return;
        }
        if msg.sk.is_none() {
            if msg.header.is_response() {
                self.handle_unprotected_response(now, remote, &msg);
            } else if msg.header.exchange == exchange::INFORMATIONAL {
                self.handle_unprotected_informational(now, remote, &msg);
            }
            return;
        }
        let local_spi = if msg.header.from_initiator() { msg.header.spi_r } else { msg.header.spi_i };
        let Some(mut sa) = self.sas.remove(&local_spi) else {
            if !msg.header.is_response() {
                self.send_invalid_ike_spi(now, &msg.header, local, remote);
            }
            return;
        };
        if sa.spi_i != msg.header.spi_i || sa.spi_r != msg.header.spi_r || sa.keys.is_none() {
            self.sas.insert(local_spi, sa);
            return;
        }
        self.handle_protected(&mut sa, now, local, remote, data, msg);
        self.check_in(sa, now);
    }

    /// Drive retransmissions, liveness checks, rekeying and expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else { continue };
            self.sa_timers(&mut sa, now);
            self.check_in(sa, now);
        }
    }

    /// The earliest instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(|sa| self.sa_deadline(sa)).min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The daemon saw ESP traffic on an SA (kernel counters or XFRM
    /// events). Inbound traffic proves the peer alive; outbound traffic with
    /// inbound silence makes a liveness check due.
    pub fn notify_activity(&mut self, spi: u32, dir: Direction, now: Instant) {
        for sa in self.sas.values_mut() {
            let found = sa.children.iter().any(|c| match dir {
                Direction::Inbound => c.spi_in == spi,
                Direction::Outbound => c.spi_out == spi,
            });
            if found {
                match dir {
                    Direction::Inbound => sa.last_inbound = sa.last_inbound.max(now),
                    Direction::Outbound => sa.last_outbound = Some(now),
                }
            }
        }
    }

    pub fn notify_inbound_activity(&mut self, spi_in: u32, now: Instant) {
        self.notify_activity(spi_in, Direction::Inbound, now);
    }

    pub fn notify_outbound_activity(&mut self, spi_out: u32, now: Instant) {
        self.notify_activity(spi_out, Direction::Outbound, now);
    }

    /// Kernel EXPIRE for the Child SA with inbound SPI `spi_in`: soft → rekey,
    /// hard → delete.
    pub fn child_expired(&mut self, spi_in: u32, hard: bool, now: Instant) -> Result<()> {
        let id = self.sa_of_child(spi_in).ok_or(Error::UnknownSa)?;
        self.with_sa(id, now, |e, sa, now| {
            let task = if hard { Task::DeleteChild(vec![spi_in]) } else { Task::RekeyChild(spi_in) };
            if !sa.tasks.contains(&task) {
                sa.tasks.push_back(task);
            }
            e.kick(sa, now);
        });
        Ok(())
    }

    /// Rekey a Child SA now.
    pub fn rekey_child(&mut self, spi_in: u32, now: Instant) -> Result<()> {
        self.child_expired(spi_in, false, now)
    }

    /// Rekey an IKE SA now.
    pub fn rekey_ike(&mut self, ike: IkeSaId, now: Instant) -> Result<()> {
        if !self.sas.get(&ike.0).is_some_and(IkeSa::is_established) {
            return Err(Error::UnknownSa);
        }
        self.with_sa(ike.0, now, |e, sa, now| {
            sa.tasks.push_back(Task::RekeyIke);
            e.kick(sa, now);
        });
        Ok(())
    }

    /// Negotiate an additional Child SA on an established IKE SA.
    pub fn create_child(&mut self, ike: IkeSaId, now: Instant) -> Result<()> {
        if !self.sas.get(&ike.0).is_some_and(IkeSa::is_established) {
            return Err(Error::UnknownSa);
        }
        self.with_sa(ike.0, now, |e, sa, now| {
            sa.tasks.push_back(Task::CreateChild);
            e.kick(sa, now);
        });
        Ok(())
    }

    /// Delete one Child SA (sends a Delete).
    pub fn delete_child(&mut self, spi_in: u32, now: Instant) -> Result<()> {
        self.child_expired(spi_in, true, now)
    }

    /// Delete an IKE SA and its Child SAs (sends a Delete).
    pub fn delete_ike(&mut self, ike: IkeSaId, now: Instant) -> Result<()> {
        if !self.sas.contains_key(&ike.0) {
            return Err(Error::UnknownSa);
        }
        self.with_sa(ike.0, now, |e, sa, now| {
            if sa.is_established() {
                sa.tasks.clear();
                sa.tasks.push_back(Task::DeleteIke);
                e.kick(sa, now);
            } else {
                e.kill(sa, Reason::LocalDelete);
            }
        });
        Ok(())
    }

    /// Delete every IKE SA of a connection (sends Deletes).
    pub fn terminate(&mut self, conn: &str, now: Instant) -> Result<()> {
        let ci = self.conn_index(conn)?;
        let ids: Vec<u64> = self.sas.values().filter(|s| s.conn == ci).map(|s| s.id).collect();
        for id in ids {
            self.delete_ike(IkeSaId(id), now)?;
        }
        Ok(())
    }

    /// Replaces the connections (a configuration reload). IKE SAs of a
    /// connection that `keep` names and the new set still has carry on under
    /// the new definition; every other IKE SA is dropped here without a
    /// message (call `terminate` first for Deletes), its Child SAs reported
    /// as deleted. Nothing changes if the new configuration is invalid.
    pub fn reconfigure(&mut self, connections: Vec<Connection>, keep: impl Fn(&str) -> bool) -> Result<()> {
        let cfg = Config { connections, ..self.cfg.clone() };
        cfg.validate().map_err(Error::Config)?;
        let remap: Vec<Option<usize>> = self
            .cfg
            .connections
            .iter()
            .map(|old| if keep(&old.name) { cfg.connections.iter().position(|c| c.name == old.name) } else { None })
            .collect();
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else { continue };
            match remap.get(sa.conn).copied().flatten() {
                Some(ni) => {
                    sa.conn = ni;
                    self.sas.insert(id, sa);
                }
                None => {
                    // Still under the old configuration: `kill` names the connection.
                    self.kill(&mut sa, Reason::LocalDelete);
                    self.forget(&sa);
                }
            }
        }
        self.cfg = cfg;
        Ok(())
    }

    /// Forget everything with a peer address without sending anything (the
    /// operator's manual flush for a peer known dead). Returns how many IKE
    /// SAs were removed.
    pub fn delete_peer(&mut self, addr: IpAddr) -> usize {
        let ids: Vec<u64> = self.sas.values().filter(|s| s.remote.ip() == addr).map(|s| s.id).collect();
        for id in &ids {
            if let Some(mut sa) = self.sas.remove(id) {
                self.kill(&mut sa, Reason::ManualFlush);
                self.forget(&sa);
            }
        }
        ids.len()
    }

    pub fn status(&self, now: Instant) -> Status {
        let ike_sas = self
            .sas
            .values()
            .map(|sa| IkeSaStatus {
                id: IkeSaId(sa.id),
                conn: self.cfg.connections.get(sa.conn).map(|c| c.name.clone()).unwrap_or_default(),
                state: sa.public_state(),
                initiator: sa.initiator,
                local: sa.local,
                remote: sa.remote,
                local_id: sa.local_id.clone(),
                remote_id: sa.remote_id.clone(),
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                suite: sa.suite,
                nat_detected: sa.nat_local || sa.nat_remote,
                udp_encap: sa.natt,
                age: now.saturating_duration_since(sa.created),
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildSaStatus {
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                        alg: c.suite.alg,
                        esn: c.suite.esn,
                        mode: c.mode,
                        encap: c.encap,
                        ts_local: c.ts_local.clone(),
                        ts_remote: c.ts_remote.clone(),
                        age: now.saturating_duration_since(c.created),
                    })
                    .collect(),
            })
            .collect();
        Status { ike_sas }
    }

    // ---- internals shared by the tasks -----------------------------------

    pub(crate) fn conn_index(&self, name: &str) -> Result<usize> {
        self.cfg.connections.iter().position(|c| c.name == name).ok_or(Error::UnknownConnection)
    }

    pub(crate) fn conn(&self, i: usize) -> &Connection {
        &self.cfg.connections[i]
    }

    fn sa_of_child(&self, spi_in: u32) -> Option<u64> {
        self.sas.values().find(|s| s.children.iter().any(|c| c.spi_in == spi_in)).map(|s| s.id)
    }

    /// Check an SA out, run `f`, check it back in.
    pub(crate) fn with_sa(&mut self, id: u64, now: Instant, f: impl FnOnce(&mut Self, &mut IkeSa, Instant)) {
        if let Some(mut sa) = self.sas.remove(&id) {
            f(self, &mut sa, now);
            self.check_in(sa, now);
        }
    }

    pub(crate) fn check_in(&mut self, sa: IkeSa, _now: Instant) {
        if sa.state == IkeState::Dead {
            self.forget(&sa);
        } else {
            self.sas.insert(sa.id, sa);
        }
    }

    fn forget(&mut self, sa: &IkeSa) {
        self.half_open.retain(|_, v| *v != sa.id);
    }

    pub(crate) fn random_u64(&mut self) -> u64 {
        loop {
            let v = self.rng.next_u64();
            if v != 0 && !self.sas.contains_key(&v) {
                return v;
            }
        }
    }

    pub(crate) fn alloc_spi(&mut self) -> u32 {
        loop {
            // SPIs 1..=255 are reserved (RFC 4303 §2.1).
            let v = self.rng.next_u32();
            if v >= 256 && !self.sas.values().any(|s| s.children.iter().any(|c| c.spi_in == v)) {
                return v;
            }
        }
    }

    pub(crate) fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; self.cfg.nonce_len];
        self.rng.fill_bytes(&mut n);
        n
    }

    pub(crate) fn owner(&self, sa: &IkeSa) -> Owner {
        Owner {
            ike: IkeSaId(sa.id),
            conn: self.conn(sa.conn).name.clone(),
            local_id: sa.local_id.clone(),
            remote_id: sa.remote_id.clone().unwrap_or_else(|| self.conn(sa.conn).remote_id.clone()),
        }
    }

    pub(crate) fn send_raw(&mut self, sa: &IkeSa, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { local: sa.local, remote: sa.remote, bytes, non_esp_marker: sa.natt });
    }

    /// Encrypt a message on `sa` in our outbound direction.
    pub(crate) fn seal(&mut self, sa: &mut IkeSa, exch: u8, response: bool, msg_id: u32, payloads: &[Payload]) -> Vec<u8> {
        let mut flags = if sa.initiator { FLAG_INITIATOR } else { 0 };
        if response {
            flags |= FLAG_RESPONSE;
        }
        let h = Header::new(sa.spi_i, sa.spi_r, exch, flags, msg_id);
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else { return Vec::new() };
        let (ke, ka) = if sa.initiator { (&keys.sk_ei, &keys.sk_ai) } else { (&keys.sk_er, &keys.sk_ar) };
        let k = SkKeys { encr: suite.encr, integ: suite.integ, ke: ke.expose(), ka: ka.expose() };
        sa.iv_counter += 1;
        sk::seal(&h, payloads, &k, sa.iv_counter, &mut self.rng).unwrap_or_default()
    }

    fn open(sa: &IkeSa, bytes: &[u8], msg: &Message) -> Result<Vec<Payload>> {
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else { return Err(Error::InvalidState) };
        let (ke, ka) = if sa.initiator { (&keys.sk_er, &keys.sk_ar) } else { (&keys.sk_ei, &keys.sk_ai) };
        let k = SkKeys { encr: suite.encr, integ: suite.integ, ke: ke.expose(), ka: ka.expose() };
        sk::open(bytes, msg, &k)
    }

    /// Send a new request on `sa` and arm its retransmission.
    pub(crate) fn send_request(&mut self, sa: &mut IkeSa, exch: u8, payloads: &[Payload], pending: Pending, schedule: Retransmit, now: Instant) {
        let msg_id = sa.next_req_id;
        let bytes = self.seal(sa, exch, false, msg_id, payloads);
        self.send_raw(sa, bytes.clone());
        sa.outstanding = Some(Outstanding { msg_id, bytes, sent: 1, deadline: now + schedule.delay(1), schedule, pending });
    }

    /// Start the next queued task if the window is free.
    pub(crate) fn kick(&mut self, sa: &mut IkeSa, now: Instant) {
        while sa.outstanding.is_none() && matches!(sa.state, IkeState::Established | IkeState::Rekeyed) {
            let Some(task) = sa.tasks.pop_front() else { break };
            if sa.state == IkeState::Rekeyed && task != Task::DeleteIke {
                continue;
            }
            self.start_task(sa, task, now);
        }
    }

    fn start_task(&mut self, sa: &mut IkeSa, task: Task, now: Instant) {
        match task {
            Task::CreateChild => self.start_create_child(sa, None, now),
            Task::RekeyChild(spi) => self.start_create_child(sa, Some(spi), now),
            Task::RekeyIke => self.start_ike_rekey(sa, now),
            Task::DeleteChild(spis) => self.start_delete_child(sa, spis, now),
            Task::DeleteIke => self.start_delete_ike(sa, now),
            Task::Liveness { hint } => self.start_liveness(sa, hint, now),
            Task::InvalidSpi(spi) => {
                let n = Notify { protocol: crate::consts::protocol::ESP, spi: vec![], ty: notify::INVALID_SPI, data: spi.to_be_bytes().to_vec() };
                let sched = self.conn(sa.conn).retransmit;
                self.send_request(sa, exchange::INFORMATIONAL, &[Payload::Notify(n)], Pending::Notify, sched, now);
            }
        }
    }

    /// Tear an SA down locally: kernel deletes for its Child SAs, IkeSaDown,
    /// and mark it for removal. Sends nothing.
    pub(crate) fn kill(&mut self, sa: &mut IkeSa, reason: Reason) {
        if sa.state == IkeState::Dead {
            return;
        }
        let children = std::mem::take(&mut sa.children);
        for c in children {
            self.emit_child_delete(sa, c.spi_in, c.spi_out, reason);
        }
        self.actions.push_back(Action::IkeSaDown {
            ike: IkeSaId(sa.id),
            conn: self.conn(sa.conn).name.clone(),
            remote: sa.remote,
            remote_id: sa.remote_id.clone(),
            reason,
            established: sa.announced,
        });
        sa.state = IkeState::Dead;
        sa.outstanding = None;
        sa.tasks.clear();
    }

    pub(crate) fn emit_child_delete(&mut self, sa: &IkeSa, spi_in: u32, spi_out: u32, reason: Reason) {
        let owner = self.owner(sa);
        self.actions.push_back(Action::DeleteChildSa(DeleteChildSa {
            owner,
            local: sa.local.ip(),
            remote: sa.remote.ip(),
            spi_in,
            spi_out,
            reason,
        }));
    }

    fn answer_decode_error(&mut self, h: &Header, e: Error, local: SocketAddr, remote: SocketAddr) {
        // Only unprotected IKE_SA_INIT requests get an answer here; anything
        // else either is a response (never answered) or will be rejected
        // after decryption.
        if h.is_response() || h.exchange != exchange::IKE_SA_INIT {
            return;
        }
        let n = match e {
            Error::UnsupportedCriticalPayload(t) => Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]),
            Error::BadVersion(_) => Notify::new(notify::INVALID_MAJOR_VERSION, vec![]),
            _ => Notify::new(notify::INVALID_SYNTAX, vec![]),
        };
        self.send_unprotected_error(h, n, local, remote);
    }

    /// Unprotected error answer to an IKE_SA_INIT request (SPIr zero).
    pub(crate) fn send_unprotected_error(&mut self, req: &Header, n: Notify, local: SocketAddr, remote: SocketAddr) {
        let h = Header::new(req.spi_i, 0, req.exchange, FLAG_RESPONSE, req.message_id);
        let bytes = encode_plain(&h, &[Payload::Notify(n)]);
        let marker = self.cfg.connections.iter().any(|c| c.natt_port == local.port());
        self.transmits.push_back(Transmit { local, remote, bytes, non_esp_marker: marker });
    }

    fn handle_protected(&mut self, sa: &mut IkeSa, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8], msg: Message) {
        let h = msg.header;
        if h.is_response() {
            let Some(out) = sa.outstanding.as_ref() else { return };
            if out.msg_id != h.message_id {
                return; // Stale or forged; ignored (§2.3).
            }
            let Ok(payloads) = Self::open(sa, bytes, &msg) else { return };
            self.authenticated_from(sa, now, local, remote);
            let Some(out) = sa.outstanding.take() else { return };
            sa.next_req_id = sa.next_req_id.wrapping_add(1);
            self.handle_response(sa, h.exchange, out.pending, payloads, now);
        } else {
            // Requests: the expected ID is processed; the previous one is a
            // retransmission answered from the cache; anything else is
            // dropped silently (INVALID_MESSAGE_ID, §2.3).
            let is_dup = sa.next_peer_req_id.checked_sub(1) == Some(h.message_id);
            if h.message_id != sa.next_peer_req_id && !is_dup {
                return;
            }
            let payloads = match Self::open(sa, bytes, &msg) {
                Ok(p) => Ok(p),
                Err(Error::Integrity) | Err(Error::InvalidState) => return,
                Err(e) => Err(e),
            };
            self.authenticated_from(sa, now, local, remote);
            if is_dup {
                if let Some((id, b)) = sa.cached.clone() {
                    if id == h.message_id {
                        self.send_raw(sa, b);
                    }
                }
                return;
            }
            let resp = match payloads {
                Ok(p) => self.handle_request(sa, h.exchange, p, now),
                Err(Error::UnsupportedCriticalPayload(t)) => {
                    vec![Payload::Notify(Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]))]
                }
                Err(_) => vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))],
            };
            let bytes = self.seal(sa, h.exchange, true, h.message_id, &resp);
            self.send_raw(sa, bytes.clone());
            sa.cached = Some((h.message_id, bytes));
            sa.next_peer_req_id = sa.next_peer_req_id.wrapping_add(1);
        }
        self.kick(sa, now);
    }

    /// Bookkeeping for any message that decrypted correctly: it proves the
    /// peer alive, and its addresses are the ones to answer to (NAT mapping
    /// changes, floating to the NAT-T port).
    fn authenticated_from(&mut self, sa: &mut IkeSa, now: Instant, local: SocketAddr, remote: SocketAddr) {
        sa.last_inbound = sa.last_inbound.max(now);
        if sa.remote != remote || sa.local != local {
            sa.remote = remote;
            sa.local = local;
            sa.natt = self.conn(sa.conn).natt_port == local.port();
        }
    }

    fn handle_request(&mut self, sa: &mut IkeSa, exch: u8, payloads: Vec<Payload>, now: Instant) -> Vec<Payload> {
        match (exch, sa.state) {
            (exchange::IKE_AUTH, IkeState::InitDone) => self.handle_auth_request(sa, payloads, now),
            (exchange::CREATE_CHILD_SA, IkeState::Established) => self.handle_create_child_request(sa, payloads, now),
            (exchange::INFORMATIONAL, IkeState::Established | IkeState::Rekeyed | IkeState::AuthSent) => {
                self.handle_informational_request(sa, payloads, now)
            }
            (exchange::CREATE_CHILD_SA, IkeState::Rekeyed) => {
                vec![Payload::Notify(Notify::new(notify::TEMPORARY_FAILURE, vec![]))]
            }
            _ => vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))],
        }
    }

    fn handle_response(&mut self, sa: &mut IkeSa, exch: u8, pending: Pending, payloads: Vec<Payload>, now: Instant) {
        match (exch, pending) {
            (exchange::IKE_AUTH, Pending::IkeAuth(child)) => self.handle_auth_response(sa, child, payloads, now),
            (exchange::CREATE_CHILD_SA, Pending::CreateChild(child)) => {
                self.handle_create_child_response(sa, child, payloads, now)
            }
            (exchange::CREATE_CHILD_SA, Pending::RekeyIke(r)) => self.handle_ike_rekey_response(sa, r, payloads, now),
            (exchange::INFORMATIONAL, Pending::DeleteChild(spis)) => self.handle_delete_child_response(sa, spis),
            (exchange::INFORMATIONAL, Pending::DeleteIke) => {
                let reason = if sa.state == IkeState::Rekeyed { Reason::Rekeyed } else { Reason::LocalDelete };
                self.kill(sa, reason);
            }
            (exchange::INFORMATIONAL, Pending::Liveness) => {
                self.actions.push_back(Action::Event(crate::action::Event::LivenessOk { ike: IkeSaId(sa.id) }));
            }
            (exchange::INFORMATIONAL, Pending::Notify) => {}
            _ => self.kill(sa, Reason::Protocol("response of wrong exchange type")),
        }
    }

    fn sa_timers(&mut self, sa: &mut IkeSa, now: Instant) {
        if let Some(out) = sa.outstanding.as_mut() {
            if out.deadline <= now {
                if out.sent <= out.schedule.tries {
                    out.sent += 1;
                    out.deadline = now + out.schedule.delay(out.sent);
                    let (b, message_id, attempt) = (out.bytes.clone(), out.msg_id, out.sent - 1);
                    self.send_raw(sa, b);
                    self.actions.push_back(Action::Event(Event::Retransmitted { ike: IkeSaId(sa.id), message_id, attempt }));
                } else {
                    let reason = match out.pending {
                        Pending::Liveness => Reason::LivenessFailed,
                        _ => Reason::RetransmitExhausted,
                    };
                    self.kill(sa, reason);
                    return;
                }
            }
        }
        if sa.state == IkeState::Rekeyed && sa.outstanding.is_none() && sa.rekey_at.is_some_and(|t| t <= now) {
            let reason = Reason::Rekeyed;
            self.kill(sa, reason);
            return;
        }
        if sa.state == IkeState::InitDone && now >= sa.created + self.cfg.half_open_timeout {
            // Half-open responder SA that never authenticated: drop quietly.
            sa.state = IkeState::Dead;
            return;
        }
        self.activate_overdue(sa, now);
        if sa.is_established() {
            if sa.rekey_at.is_some_and(|t| t <= now) {
                sa.rekey_at = None;
                if !sa.tasks.contains(&Task::RekeyIke) {
                    sa.tasks.push_back(Task::RekeyIke);
                }
            }
            if let Some(due) = self.liveness_due(sa) {
                if due <= now {
                    sa.tasks.push_back(Task::Liveness { hint: false });
                }
            }
        }
        self.kick(sa, now);
    }

    /// When a liveness check is due: inbound silence for the configured
    /// interval while outbound traffic was seen since the last inbound.
    fn liveness_due(&self, sa: &IkeSa) -> Option<Instant> {
        let interval = self.conn(sa.conn).liveness_interval?;
        if !sa.is_established()
            || sa.outstanding.is_some()
            || sa.tasks.iter().any(|t| matches!(t, Task::Liveness { .. }))
        {
            return None;
        }
        let out = sa.last_outbound?;
        (out > sa.last_inbound).then(|| sa.last_inbound + interval)
    }

    fn sa_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        if let Some(o) = &sa.outstanding {
            t.push(o.deadline);
        }
        if sa.state == IkeState::InitDone {
            t.push(sa.created + self.cfg.half_open_timeout);
        }
        t.extend(sa.children.iter().filter_map(|c| c.out_deferred));
        if sa.state == IkeState::Rekeyed && sa.outstanding.is_none() {
            t.extend(sa.rekey_at);
        }
        if sa.is_established() {
            t.extend(sa.rekey_at);
            t.extend(self.liveness_due(sa));
        }
        t.into_iter().min()
    }

    /// Remove every other IKE SA between the same pair of identities, with
    /// their Child SAs, without sending anything (§2.4 INITIAL_CONTACT).
    pub(crate) fn initial_contact_flush(&mut self, sa: &IkeSa) {
        let Some(rid) = sa.remote_id.clone() else { return };
        let victims: Vec<u64> = self
            .sas
            .values()
            .filter(|o| o.id != sa.id && o.local_id == sa.local_id && o.remote_id.as_ref() == Some(&rid))
            .map(|o| o.id)
            .collect();
        for v in victims {
            if let Some(mut old) = self.sas.remove(&v) {
                self.kill(&mut old, Reason::InitialContact);
                self.forget(&old);
                self.actions.push_back(Action::Event(crate::action::Event::InitialContactFlush {
                    by: IkeSaId(sa.id),
                    flushed: IkeSaId(v),
                }));
            }
        }
    }

    /// Whether we hold another IKE SA with this peer identity, which decides
    /// whether our IKE_AUTH carries INITIAL_CONTACT.
    pub(crate) fn has_other_sa_with(&self, sa: &IkeSa) -> bool {
        let rid = &self.conn(sa.conn).remote_id;
        self.sas.values().any(|o| {
            o.id != sa.id && o.local_id == sa.local_id && o.remote_id.as_ref() == Some(rid) && o.state != IkeState::Dead
        })
    }

    pub(crate) fn sa_ids_with_remote_ip(&self, ip: IpAddr) -> Vec<u64> {
        self.sas.values().filter(|s| s.remote.ip() == ip && s.is_established()).map(|s| s.id).collect()
    }

    pub(crate) fn jitter(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(self.rng.next_u64() % ms)
    }
}

#[cfg(test)]
mod tests;
