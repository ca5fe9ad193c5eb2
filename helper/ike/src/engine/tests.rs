//! Error notifies of RFC 7296 §3.10.1 in protected responses. These need
//! the IKE SA keys to build a request the peer accepts and to read its
//! answer, so they live inside the crate: a test request is sealed on the
//! initiator's IKE SA (as the engine would send it) and the responder's
//! answer is opened with the initiator's keys.

use std::time::Instant;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::Engine;
use crate::config::{Config, Connection, IkeProposal};
use crate::consts::{exchange, notify, payload, protocol};
use crate::crypto::DhGroup;
use crate::message::{Header, Identity, Message, Notify, Payload};
use crate::proposal::{esp_sa_payload, ike_sa_payload};
use crate::sa::IkeState;
use crate::secret::SecretBytes;
use crate::IkeSaId;

struct Pair {
    c: Engine<ChaCha20Rng>,
    s: Engine<ChaCha20Rng>,
    now: Instant,
    ike: u64,
}

fn mk(local: &str, remote: &str, lid: &str, rid: &str, seed: u64) -> Engine<ChaCha20Rng> {
    let c = Connection::new(
        "c",
        local.parse().unwrap(),
        vec![remote.parse().unwrap()],
        Identity::Fqdn(lid.into()),
        Identity::Fqdn(rid.into()),
        SecretBytes::from("psk-123"),
    );
    Engine::new(Config { connections: vec![c], ..Config::default() }, ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

impl Pair {
    /// An established IKE SA with one Child SA, the client its initiator.
    fn new(seed: u64) -> Pair {
        let mut p = Pair {
            c: mk("192.0.2.1", "198.51.100.1", "client", "server", seed),
            s: mk("198.51.100.1", "192.0.2.1", "server", "client", seed + 1000),
            now: Instant::now(),
            ike: 0,
        };
        p.ike = p.c.connect("c", p.now).unwrap().0;
        p.run();
        assert!(p.c.sas[&p.ike].is_established() && p.s.sas.values().any(|s| s.is_established()));
        assert_eq!(p.c.sas[&p.ike].children.len(), 1);
        p
    }

    fn c_to_s(&mut self) -> usize {
        let mut n = 0;
        while let Some(t) = self.c.poll_transmit() {
            self.s.handle_datagram(self.now, t.remote, t.local, &t.bytes);
            n += 1;
        }
        n
    }

    fn s_to_c(&mut self) -> usize {
        let mut n = 0;
        while let Some(t) = self.s.poll_transmit() {
            self.c.handle_datagram(self.now, t.remote, t.local, &t.bytes);
            n += 1;
        }
        n
    }

    fn run(&mut self) {
        while self.c_to_s() + self.s_to_c() > 0 {}
    }

    /// Seal `payloads` as a request of the client with message ID `msg_id`
    /// on IKE SA `ike`, hand it to the server and return the server's
    /// decrypted answer (header, payloads).
    fn inject_on(&mut self, ike: u64, exch: u8, msg_id: u32, payloads: &[Payload]) -> (Header, Vec<Payload>) {
        let mut sa = self.c.sas.remove(&ike).unwrap();
        let bytes = self.c.seal(&mut sa, exch, false, msg_id, payloads);
        let (local, remote) = (sa.local, sa.remote);
        self.c.sas.insert(ike, sa);
        self.s.handle_datagram(self.now, remote, local, &bytes);
        let t = self.s.poll_transmit().expect("the server answers");
        assert!(self.s.poll_transmit().is_none(), "one answer");
        let m = Message::decode(&t.bytes).unwrap();
        assert!(m.header.is_response());
        assert_eq!(m.header.message_id, msg_id);
        assert_eq!(m.header.exchange, exch);
        let p = Engine::<ChaCha20Rng>::open(&self.c.sas[&ike], &t.bytes, &m).expect("answer decrypts");
        (m.header, p)
    }

    fn inject(&mut self, exch: u8, payloads: &[Payload]) -> Vec<Payload> {
        let id = self.c.sas[&self.ike].next_req_id;
        let r = self.inject_on(self.ike, exch, id, payloads).1;
        // Keep the client's request window in step with the server's.
        self.c.sas.get_mut(&self.ike).unwrap().next_req_id += 1;
        r
    }

    /// The client's Child SA: (its inbound SPI, its outbound SPI).
    fn child(&self) -> (u32, u32) {
        let c = &self.c.sas[&self.ike].children[0];
        (c.spi_in, c.spi_out)
    }

    /// A well-formed CREATE_CHILD_SA request for a new Child SA
    /// (optionally a rekey of the client's inbound SPI `rekey`).
    fn child_request(&mut self, rekey: Option<u32>) -> Vec<Payload> {
        let conn = self.c.cfg.connections[0].clone();
        let mut p = Vec::new();
        if let Some(spi) = rekey {
            p.push(Payload::Notify(Notify { protocol: protocol::ESP, spi: spi.to_be_bytes().to_vec(), ty: notify::REKEY_SA, data: vec![] }));
        }
        let spi_in = self.c.alloc_spi();
        p.push(Payload::Sa(esp_sa_payload(&conn.esp_proposals, spi_in, true)));
        p.push(Payload::Nonce(self.c.nonce()));
        p.push(Payload::TsI(conn.local_ts.clone()));
        p.push(Payload::TsR(conn.remote_ts.clone()));
        p
    }
}

fn error_notifies(p: &[Payload]) -> Vec<u16> {
    p.iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.ty < notify::FIRST_STATUS => Some(n.ty),
            _ => None,
        })
        .collect()
}

/// The control: a well-formed request gets a Child SA, no error.
#[test]
fn well_formed_create_child_sa_is_answered_without_error() {
    let mut p = Pair::new(1);
    let req = p.child_request(None);
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert!(error_notifies(&resp).is_empty(), "{resp:?}");
    assert!(resp.iter().any(|x| matches!(x, Payload::Sa(_))));
    assert_eq!(p.s.sas.values().find(|s| s.is_established()).unwrap().children.len(), 2);
}

#[test]
fn create_child_sa_without_traffic_selectors_is_invalid_syntax() {
    let mut p = Pair::new(2);
    let mut req = p.child_request(None);
    req.retain(|x| !matches!(x, Payload::TsI(_) | Payload::TsR(_)));
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert_eq!(error_notifies(&resp), vec![notify::INVALID_SYNTAX]);
    assert_eq!(resp.len(), 1);
    // Nothing was created, the IKE SA stands.
    let s = p.s.sas.values().find(|s| s.is_established()).unwrap();
    assert_eq!(s.children.len(), 1);
}

#[test]
fn ike_rekey_without_ke_is_invalid_syntax() {
    let mut p = Pair::new(3);
    let props = p.c.cfg.connections[0].ike_proposals.clone();
    let spi = p.c.random_u64();
    let req = vec![Payload::Sa(ike_sa_payload(&props, Some(spi))), Payload::Nonce(p.c.nonce())];
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert_eq!(error_notifies(&resp), vec![notify::INVALID_SYNTAX]);
    assert_eq!(p.s.sas.len(), 1, "no new IKE SA on the server");
}

/// A payload that decrypts but does not decode (an IPv4 ID with a 2-byte
/// address) inside an INFORMATIONAL request.
#[test]
fn malformed_payload_inside_sk_is_invalid_syntax() {
    let mut p = Pair::new(4);
    let bad = Payload::Unknown { ty: payload::IDI, body: vec![1, 0, 0, 0, 192, 0] };
    let resp = p.inject(exchange::INFORMATIONAL, &[bad]);
    assert_eq!(error_notifies(&resp), vec![notify::INVALID_SYNTAX]);
    // The request counted: the next one (a liveness check) is answered.
    let resp = p.inject(exchange::INFORMATIONAL, &[]);
    assert!(resp.is_empty(), "empty INFORMATIONAL answered empty: {resp:?}");
    assert!(p.s.sas.values().any(|s| s.is_established()));
}

/// IKE_AUTH again on an established IKE SA: a request of the wrong
/// exchange for the state.
#[test]
fn ike_auth_on_established_sa_is_invalid_syntax() {
    let mut p = Pair::new(5);
    let resp = p.inject(exchange::IKE_AUTH, &[Payload::IdI(Identity::Fqdn("client".into()))]);
    assert_eq!(error_notifies(&resp), vec![notify::INVALID_SYNTAX]);
}

#[test]
fn rekey_of_unknown_child_sa_is_child_sa_not_found() {
    let mut p = Pair::new(6);
    let req = p.child_request(Some(0xdead_beef));
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert_eq!(error_notifies(&resp), vec![notify::CHILD_SA_NOT_FOUND]);
    assert_eq!(p.s.sas.values().find(|s| s.is_established()).unwrap().children.len(), 1);
}

/// End to end: the server lost the Child SA (say, a restart of its kernel
/// state); the client's rekey of it gets CHILD_SA_NOT_FOUND and the client
/// drops its copy.
#[test]
fn child_sa_not_found_makes_the_initiator_drop_its_child_sa() {
    let mut p = Pair::new(7);
    let (spi_in, spi_out) = p.child();
    let sid = *p.s.sas.keys().next().unwrap();
    p.s.sas.get_mut(&sid).unwrap().children.clear();
    p.c.rekey_child(spi_in, p.now).unwrap();
    while p.c.poll_action().is_some() {}
    assert_eq!(p.c_to_s(), 1);
    // Read the answer before the client gets it.
    let t = p.s.poll_transmit().unwrap();
    let m = Message::decode(&t.bytes).unwrap();
    let resp = Engine::<ChaCha20Rng>::open(&p.c.sas[&p.ike], &t.bytes, &m).unwrap();
    assert_eq!(error_notifies(&resp), vec![notify::CHILD_SA_NOT_FOUND]);
    p.c.handle_datagram(p.now, t.remote, t.local, &t.bytes);
    assert!(p.c.sas[&p.ike].children.is_empty());
    let dels: Vec<_> = std::iter::from_fn(|| p.c.poll_action())
        .filter_map(|a| match a {
            crate::Action::DeleteChildSa(d) => Some((d.spi_in, d.spi_out, d.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(dels, vec![(spi_in, spi_out, crate::Reason::PeerInvalidSpi)]);
}

/// A second rekey of a Child SA whose rekey the server has answered but
/// whose old SA is not deleted yet.
#[test]
fn rekey_of_child_sa_being_rekeyed_is_temporary_failure() {
    let mut p = Pair::new(8);
    let (spi_in, _) = p.child();
    p.c.rekey_child(spi_in, p.now).unwrap();
    assert_eq!(p.c_to_s(), 1);
    let _held = p.s.poll_transmit().expect("rekey answered");
    let first = p.c.sas[&p.ike].outstanding.as_ref().unwrap().msg_id;
    // Same REKEY_SA target, next message ID.
    let req = p.child_request(Some(spi_in));
    let (_, resp) = p.inject_on(p.ike, exchange::CREATE_CHILD_SA, first + 1, &req);
    assert_eq!(error_notifies(&resp), vec![notify::TEMPORARY_FAILURE]);
    // Only the first rekey created a Child SA on the server.
    assert_eq!(p.s.sas.values().find(|s| s.is_established()).unwrap().children.len(), 2);
}

/// An IKE SA rekey while the server has a request of its own in flight
/// (here a CREATE_CHILD_SA): refused with TEMPORARY_FAILURE, as the rekey
/// would move the Child SAs under that exchange.
/// The client's IKE SA rekey request (SA with a fresh SPI, nonce, KE), as the
/// payloads to seal.
fn ike_rekey_request(p: &mut Pair, props: &[IkeProposal]) -> Vec<Payload> {
    let spi = p.c.random_u64();
    let dh = DhGroup::Curve25519.generate(&mut p.c.rng);
    vec![
        Payload::Sa(ike_sa_payload(props, Some(spi))),
        Payload::Nonce(p.c.nonce()),
        Payload::Ke { group: dh.group().id(), data: dh.public() },
    ]
}

#[test]
fn ike_rekey_while_peer_request_in_flight_is_temporary_failure() {
    let mut p = Pair::new(9);
    let sid = *p.s.sas.keys().next().unwrap();
    p.s.create_child(IkeSaId(sid), p.now).unwrap();
    let _pending = p.s.poll_transmit().expect("server's CREATE_CHILD_SA request");
    let props = p.c.cfg.connections[0].ike_proposals.clone();
    let req = ike_rekey_request(&mut p, &props);
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert_eq!(error_notifies(&resp), vec![notify::TEMPORARY_FAILURE]);
    assert_eq!(p.s.sas.len(), 1, "no new IKE SA on the server");
    // Control: once the server's exchange is done, the same rekey is accepted.
    p.s.sas.get_mut(&sid).unwrap().outstanding = None;
    let req = ike_rekey_request(&mut p, &props);
    let resp = p.inject(exchange::CREATE_CHILD_SA, &req);
    assert!(error_notifies(&resp).is_empty(), "{resp:?}");
    assert_eq!(p.s.sas.len(), 2, "new IKE SA on the server");
}

/// CREATE_CHILD_SA on an IKE SA the server has already rekeyed (its
/// successor exists, the Delete of the old one has not come yet).
#[test]
fn create_child_sa_on_rekeyed_ike_sa_is_temporary_failure() {
    let mut p = Pair::new(10);
    p.c.rekey_ike(IkeSaId(p.ike), p.now).unwrap();
    assert_eq!(p.c_to_s(), 1);
    let _held = p.s.poll_transmit().expect("IKE rekey answered");
    let sid = p.c.sas[&p.ike].spi_r;
    assert_eq!(p.s.sas[&sid].state, IkeState::Rekeyed);
    let first = p.c.sas[&p.ike].outstanding.as_ref().unwrap().msg_id;
    let req = p.child_request(None);
    let (_, resp) = p.inject_on(p.ike, exchange::CREATE_CHILD_SA, first + 1, &req);
    assert_eq!(error_notifies(&resp), vec![notify::TEMPORARY_FAILURE]);
}

/// IKE_SA_INIT with major version 3: answered (unprotected) with
/// INVALID_MAJOR_VERSION in a version 2.0 header (§2.5, §3.10.1).
#[test]
fn ike_sa_init_with_major_version_3_is_invalid_major_version() {
    use crate::consts::{FLAG_INITIATOR, IKE_HEADER_LEN};
    use crate::message::encode_plain;
    let mut s = mk("198.51.100.1", "192.0.2.1", "server", "client", 11);
    let mut c = mk("192.0.2.1", "198.51.100.1", "client", "server", 12);
    let now = Instant::now();
    c.connect("c", now).unwrap();
    let mut init = c.poll_transmit().unwrap();
    // Version byte: major 3, minor 0.
    init.bytes[17] = 0x30;
    s.handle_datagram(now, init.remote, init.local, &init.bytes);
    let t = s.poll_transmit().expect("an INVALID_MAJOR_VERSION answer");
    assert_eq!((t.local, t.remote), (init.remote, init.local));
    let m = Message::decode(&t.bytes).unwrap();
    assert_eq!(m.header.version, 0x20, "the version we support");
    assert!(m.header.is_response());
    assert_eq!(m.header.exchange, exchange::IKE_SA_INIT);
    assert_eq!((m.header.spi_i, m.header.spi_r, m.header.message_id), (c.sas.values().next().unwrap().spi_i, 0, 0));
    assert!(m.notify(notify::INVALID_MAJOR_VERSION).is_some());
    assert!(s.sas.is_empty(), "no state kept");
    // Minor versions are ignored (§2.5): 2.1 is processed as 2.0.
    init.bytes[17] = 0x21;
    s.handle_datagram(now, init.remote, init.local, &init.bytes);
    let t = s.poll_transmit().unwrap();
    let m = Message::decode(&t.bytes).unwrap();
    assert!(m.notify(notify::INVALID_MAJOR_VERSION).is_none());
    assert_ne!(m.header.spi_r, 0, "a regular IKE_SA_INIT response");
    // Responses and other exchanges with a bad version get nothing.
    let mut h = Header::new(7, 0, exchange::INFORMATIONAL, FLAG_INITIATOR, 0);
    h.version = 0x30;
    let mut b = encode_plain(&h, &[]);
    b[17] = 0x30;
    assert_eq!(b.len(), IKE_HEADER_LEN);
    s.handle_datagram(now, init.remote, init.local, &b);
    assert!(s.poll_transmit().is_none());
}
