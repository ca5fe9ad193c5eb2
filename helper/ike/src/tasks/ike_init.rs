//! IKE_SA_INIT (RFC 7296 §1.2): SA, KE, nonces, NAT detection, COOKIE and
//! INVALID_KE_PAYLOAD retries.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_core::CryptoRngCore;

use crate::action::{Action, Event, IkeSaId, Reason};
use crate::consts::{exchange, notify, FLAG_INITIATOR, FLAG_RESPONSE};
use crate::crypto::keys::{derive_ike_keys, skeyseed};
use crate::crypto::DhGroup;
use crate::engine::Engine;
use crate::message::{encode_plain, Header, Message, Notify, Payload};
use crate::proposal::{accept_ike, ike_sa_payload, select_ike};
use crate::sa::{IkeSa, IkeState, Outstanding, Pending};
use crate::tasks::natd;

/// Bound on COOKIE / INVALID_KE_PAYLOAD round trips for one IKE SA.
const MAX_INIT_RETRIES: u32 = 4;

/// SA proposals, KE (group, data) and nonce of a message.
pub(crate) type SaKeNonce<'a> = (Option<&'a Vec<crate::message::Proposal>>, Option<(u16, &'a Vec<u8>)>, Option<&'a Vec<u8>>);

pub(crate) fn parts(payloads: &[Payload]) -> SaKeNonce<'_> {
    let mut sa = None;
    let mut ke = None;
    let mut nonce = None;
    for p in payloads {
        match p {
            Payload::Sa(x) if sa.is_none() => sa = Some(x),
            Payload::Ke { group, data } if ke.is_none() => ke = Some((*group, data)),
            Payload::Nonce(n) if nonce.is_none() => nonce = Some(n),
            _ => {}
        }
    }
    (sa, ke, nonce)
}

impl<R: CryptoRngCore> Engine<R> {
    pub(crate) fn initiate(&mut self, ci: usize, remote_ip: IpAddr, now: Instant) -> IkeSaId {
        let c = self.conn(ci).clone();
        let spi_i = self.random_u64();
        let group = c.ike_proposals.first().and_then(|p| p.dh.first()).copied().unwrap_or(DhGroup::Curve25519);
        let dh = group.generate(&mut self.rng);
        let ni = self.nonce();
        let mut sa = IkeSa {
            id: spi_i,
            conn: ci,
            initiator: true,
            spi_i,
            spi_r: 0,
            local: SocketAddr::new(c.local_addr, c.ike_port),
            remote: SocketAddr::new(remote_ip, c.ike_port),
            natt: false,
            nat_local: false,
            nat_remote: false,
            state: IkeState::InitSent,
            announced: false,
            suite: None,
            keys: None,
            ni,
            nr: Vec::new(),
            init_req: Vec::new(),
            init_resp: Vec::new(),
            dh: Some(dh),
            cookie: None,
            init_retries: 0,
            local_id: c.local_id.clone(),
            remote_id: None,
            next_req_id: 0,
            next_peer_req_id: 0,
            outstanding: None,
            cached: None,
            tasks: VecDeque::new(),
            children: Vec::new(),
            created: now,
            established_at: None,
            last_inbound: now,
            last_outbound: None,
            iv_counter: 0,
            rekey_at: None,
            pfs_hint: None,
        };
        self.send_init_request(&mut sa, now);
        let id = IkeSaId(sa.id);
        self.sas.insert(sa.id, sa);
        id
    }

    fn send_init_request(&mut self, sa: &mut IkeSa, now: Instant) {
        let c = self.conn(sa.conn);
        let mut payloads = Vec::new();
        if let Some(ck) = &sa.cookie {
            // §2.6: the COOKIE notify goes first.
            payloads.push(Payload::Notify(Notify::new(notify::COOKIE, ck.clone())));
        }
        payloads.push(Payload::Sa(ike_sa_payload(&c.ike_proposals, None)));
        if let Some(dh) = &sa.dh {
            payloads.push(Payload::Ke { group: dh.group().id(), data: dh.public() });
        }
        payloads.push(Payload::Nonce(sa.ni.clone()));
        payloads.extend(natd::payloads(sa.spi_i, 0, sa.local, sa.remote, c.force_encap));
        let h = Header::new(sa.spi_i, 0, exchange::IKE_SA_INIT, FLAG_INITIATOR, 0);
        let bytes = encode_plain(&h, &payloads);
        let schedule = c.retransmit;
        sa.init_req = bytes.clone();
        self.send_raw(sa, bytes.clone());
        sa.outstanding = Some(Outstanding { msg_id: 0, bytes, sent: 1, deadline: now + schedule.delay(1), schedule, pending: Pending::IkeInit });
    }

    fn find_responder_conn(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.cfg
            .connections
            .iter()
            .position(|c| c.local_addr == local && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&remote)))
    }

    pub(crate) fn handle_init_request(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8], msg: Message) {
        let h = msg.header;
        if h.spi_r != 0 || h.message_id != 0 || !h.from_initiator() {
            return;
        }
        // A retransmitted request gets the same answer (§2.1).
        if let Some(id) = self.half_open.get(&(h.spi_i, remote)).copied() {
            if let Some(sa) = self.sas.get(&id) {
                if sa.init_req == bytes {
                    let t = crate::action::Transmit { local: sa.local, remote: sa.remote, bytes: sa.init_resp.clone(), non_esp_marker: sa.natt };
                    self.transmits.push_back(t);
                }
            }
            return;
        }
        let Some(ci) = self.find_responder_conn(local.ip(), remote.ip()) else { return };
        let (Some(props), Some((group, ke)), Some(ni)) = parts(&msg.payloads) else {
            self.send_unprotected_error(&h, Notify::new(notify::INVALID_SYNTAX, vec![]), local, remote);
            return;
        };
        // Cookies only under load: count half-open SAs.
        let half_open = self.sas.values().filter(|s| s.state == IkeState::InitDone).count();
        if half_open >= self.cfg.cookie_threshold {
            let lifetime = self.cfg.cookie_secret_lifetime;
            self.cookies.refresh(now, lifetime, &mut self.rng);
            let valid = match msg.payloads.first() {
                Some(Payload::Notify(n)) if n.ty == notify::COOKIE => self.cookies.verify(&n.data, ni, remote.ip(), h.spi_i),
                _ => false,
            };
            if !valid {
                let ck = self.cookies.make(ni, remote.ip(), h.spi_i);
                self.send_unprotected_error(&h, Notify::new(notify::COOKIE, ck), local, remote);
                self.actions.push_back(Action::Event(Event::CookieChallenge { remote }));
                return;
            }
        }
        let c = self.conn(ci).clone();
        let Some((chosen, suite)) = select_ike(&c.ike_proposals, props, Some(group)) else {
            self.send_unprotected_error(&h, Notify::new(notify::NO_PROPOSAL_CHOSEN, vec![]), local, remote);
            return;
        };
        if suite.dh.id() != group {
            let n = Notify::new(notify::INVALID_KE_PAYLOAD, suite.dh.id().to_be_bytes().to_vec());
            self.send_unprotected_error(&h, n, local, remote);
            return;
        }
        let dh = suite.dh.generate(&mut self.rng);
        let Ok(shared) = dh.shared(ke) else {
            self.send_unprotected_error(&h, Notify::new(notify::INVALID_SYNTAX, vec![]), local, remote);
            return;
        };
        let spi_r = self.random_u64();
        let nr = self.nonce();
        let seed = skeyseed(suite.prf, ni, &nr, shared.expose());
        let keys = derive_ike_keys(&suite, seed.expose(), ni, &nr, h.spi_i, spi_r);
        let nat = natd::check(&msg.payloads, h.spi_i, 0, local, remote);
        let (nat_local, nat_remote) = nat.unwrap_or((false, false));
        let mut resp = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke { group: suite.dh.id(), data: dh.public() },
            Payload::Nonce(nr.clone()),
        ];
        if nat.is_some() {
            resp.extend(natd::payloads(h.spi_i, spi_r, local, remote, c.force_encap));
        }
        let rh = Header::new(h.spi_i, spi_r, exchange::IKE_SA_INIT, FLAG_RESPONSE, 0);
        let resp_bytes = encode_plain(&rh, &resp);
        let natt = c.natt_port == local.port();
        let sa = IkeSa {
            id: spi_r,
            conn: ci,
            initiator: false,
            spi_i: h.spi_i,
            spi_r,
            local,
            remote,
            natt,
            nat_local,
            nat_remote,
            state: IkeState::InitDone,
            announced: false,
            suite: Some(suite),
            keys: Some(keys),
            ni: ni.clone(),
            nr,
            init_req: bytes.to_vec(),
            init_resp: resp_bytes.clone(),
            dh: None,
            cookie: None,
            init_retries: 0,
            local_id: c.local_id.clone(),
            remote_id: None,
            next_req_id: 0,
            next_peer_req_id: 1,
            outstanding: None,
            cached: Some((0, resp_bytes.clone())),
            tasks: VecDeque::new(),
            children: Vec::new(),
            created: now,
            established_at: None,
            last_inbound: now,
            last_outbound: None,
            iv_counter: 0,
            rekey_at: None,
            pfs_hint: None,
        };
        self.send_raw(&sa, resp_bytes);
        if nat_local || nat_remote {
            self.actions.push_back(Action::Event(Event::NatDetected { ike: IkeSaId(spi_r), local_behind_nat: nat_local, remote_behind_nat: nat_remote }));
        }
        self.half_open.insert((h.spi_i, remote), spi_r);
        self.sas.insert(spi_r, sa);
    }

    pub(crate) fn handle_init_response(&mut self, now: Instant, _local: SocketAddr, remote: SocketAddr, bytes: &[u8], msg: Message) {
        let h = msg.header;
        let Some(mut sa) = self.sas.remove(&h.spi_i) else { return };
        let expected = sa.initiator
            && sa.state == IkeState::InitSent
            && h.message_id == 0
            && !h.from_initiator()
            && remote == sa.remote
            && matches!(sa.outstanding.as_ref().map(|o| &o.pending), Some(Pending::IkeInit));
        if expected {
            self.process_init_response(&mut sa, now, bytes, &msg);
        }
        self.check_in(sa, now);
    }

    fn process_init_response(&mut self, sa: &mut IkeSa, now: Instant, bytes: &[u8], msg: &Message) {
        let h = msg.header;
        let c = self.conn(sa.conn).clone();
        // Unprotected errors and retry requests (§1.2, §2.6, §1.3.x).
        if let Some(n) = msg.notify(notify::COOKIE) {
            if sa.init_retries >= MAX_INIT_RETRIES || n.data.is_empty() || n.data.len() > 64 {
                self.kill(sa, Reason::PeerError(notify::COOKIE));
                return;
            }
            sa.init_retries += 1;
            sa.cookie = Some(n.data.clone());
            self.send_init_request(sa, now);
            return;
        }
        if let Some(n) = msg.notify(notify::INVALID_KE_PAYLOAD) {
            let group = n.data.first_chunk::<2>().map(|b| u16::from_be_bytes(*b));
            let ok = group
                .and_then(DhGroup::from_id)
                .filter(|g| c.ike_proposals.iter().any(|p| p.dh.contains(g)))
                .filter(|g| sa.dh.as_ref().map(|d| d.group()) != Some(*g));
            match ok {
                Some(g) if sa.init_retries < MAX_INIT_RETRIES => {
                    sa.init_retries += 1;
                    sa.dh = Some(g.generate(&mut self.rng));
                    self.actions.push_back(Action::Event(Event::InvalidKeRetry { ike: IkeSaId(sa.id), group: g.id() }));
                    self.send_init_request(sa, now);
                }
                _ => self.kill(sa, Reason::PeerError(notify::INVALID_KE_PAYLOAD)),
            }
            return;
        }
        if let Some(err) = msg.payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.ty < notify::FIRST_STATUS => Some(n.ty),
            _ => None,
        }) {
            self.kill(sa, Reason::PeerError(err));
            return;
        }
        let (Some(props), Some((group, ke)), Some(nr)) = parts(&msg.payloads) else {
            self.kill(sa, Reason::Protocol("IKE_SA_INIT response incomplete"));
            return;
        };
        let Some(suite) = accept_ike(&c.ike_proposals, props) else {
            self.kill(sa, Reason::Protocol("IKE_SA_INIT response proposal not offered"));
            return;
        };
        let Some(dh) = sa.dh.take() else { return };
        if group != suite.dh.id() || dh.group() != suite.dh || h.spi_r == 0 {
            self.kill(sa, Reason::Protocol("IKE_SA_INIT response KE mismatch"));
            return;
        }
        let Ok(shared) = dh.shared(ke) else {
            self.kill(sa, Reason::Protocol("invalid KE from responder"));
            return;
        };
        sa.spi_r = h.spi_r;
        sa.nr = nr.clone();
        let seed = skeyseed(suite.prf, &sa.ni, nr, shared.expose());
        sa.keys = Some(derive_ike_keys(&suite, seed.expose(), &sa.ni, nr, sa.spi_i, sa.spi_r));
        sa.suite = Some(suite);
        sa.init_resp = bytes.to_vec();
        sa.outstanding = None;
        sa.next_req_id = 1;
        if let Some((l, r)) = natd::check(&msg.payloads, sa.spi_i, sa.spi_r, sa.local, sa.remote) {
            sa.nat_local = l;
            sa.nat_remote = r;
            if l || r {
                self.actions.push_back(Action::Event(Event::NatDetected { ike: IkeSaId(sa.id), local_behind_nat: l, remote_behind_nat: r }));
            }
            // §2.23: float to the NAT-T port once a NAT is seen (or forced).
            if l || r || c.force_encap {
                sa.natt = true;
                sa.local.set_port(c.natt_port);
                sa.remote.set_port(c.natt_port);
            }
        }
        sa.state = IkeState::AuthSent;
        self.send_auth_request(sa, now);
    }
}

