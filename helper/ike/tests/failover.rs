//! Cluster failover: INITIAL_CONTACT flush, INVALID_SPI hints, liveness.
//!
//! The package address P moves from node1 to node2; both nodes authenticate
//! as the package identity "pkgA".

mod common;

use std::time::Duration;

use common::*;
use ripsec_ike::consts::exchange;
use ripsec_ike::message::Message;
use ripsec_ike::*;

const CLIENT: &str = "192.0.2.1";
const P: &str = "198.51.100.10";

fn client_conn() -> Connection {
    conn("pkg", CLIENT, &[P], fqdn("client"), fqdn("pkgA"), "cluster-psk")
}

fn node_conn(spi_miss_initiates: bool) -> Connection {
    let mut c = conn("client", P, &[CLIENT], fqdn("pkgA"), fqdn("client"), "cluster-psk");
    c.initiate_on_spi_miss = spi_miss_initiates;
    c
}

/// client(0) with an IKE SA and a Child SA to node1(1); node2(2) owns the
/// same address but is down.
fn cluster(seed: u64, spi_miss_initiates: bool) -> Net {
    cluster_with(seed, spi_miss_initiates, |_| {})
}

fn cluster_with(seed: u64, spi_miss_initiates: bool, tweak: impl Fn(&mut Connection)) -> Net {
    let mut net = Net::new(seed);
    let mut cc = client_conn();
    tweak(&mut cc);
    net.add("client", CLIENT, vec![cc]);
    net.add("node1", P, vec![node_conn(spi_miss_initiates)]);
    net.add("node2", P, vec![node_conn(spi_miss_initiates)]);
    net.nodes[2].up = false;
    net.nodes[0].engine.connect("pkg", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    net.assert_children_match(0, 1);
    net
}

fn fail_over(net: &mut Net) {
    net.nodes[1].up = false;
    net.nodes[2].up = true;
}

/// Protected INFORMATIONAL requests the client sent (Deletes, liveness).
fn client_informational_requests(net: &Net) -> usize {
    net.nodes[0]
        .sent
        .iter()
        .filter(|t| {
            let m = Message::decode(&t.bytes).unwrap();
            m.header.exchange == exchange::INFORMATIONAL && !m.header.is_response() && m.sk.is_some()
        })
        .count()
}

#[test]
fn initial_contact_flushes_old_sas_without_deletes() {
    // node2 comes up on a different address; the client accepts it as pkgA.
    let mut net = Net::new(40);
    let mut cc = client_conn();
    cc.remote_addrs.push(ip("198.51.100.20"));
    cc.remote_ts.push(TrafficSelector::host(ip("198.51.100.20")));
    net.add("client", CLIENT, vec![cc]);
    net.add("node1", P, vec![node_conn(false)]);
    let mut n2 = conn("client", "198.51.100.20", &[CLIENT], fqdn("pkgA"), fqdn("client"), "cluster-psk");
    n2.initiate_on_spi_miss = false;
    net.add("node2", "198.51.100.20", vec![n2]);
    net.nodes[0].engine.connect("pkg", net.now).unwrap();
    net.settle();
    let old = net.nodes[0].established(net.now)[0].clone();
    let old_spi = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[1].up = false;
    let sent_before = net.nodes[0].sent.len();

    net.nodes[2].engine.connect("client", net.now).unwrap();
    net.settle();

    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 1, "exactly one IKE SA left");
    assert_ne!(st[0].id, old.id);
    assert_eq!(st[0].remote.ip(), ip("198.51.100.20"));
    assert_eq!(st[0].children.len(), 1);
    assert_eq!(net.nodes[0].kernel.len(), 1, "exactly one Child SA pair");
    assert!(!net.nodes[0].kernel.contains_key(&old_spi));
    net.assert_children_match(0, 2);
    assert!(net.nodes[0].downs().contains(&(old.id, Reason::InitialContact)));
    assert!(net.nodes[0].child_deletes().contains(&(old_spi, Reason::InitialContact)));
    assert!(net.nodes[0]
        .events()
        .any(|e| matches!(e, Event::InitialContactFlush { flushed, .. } if *flushed == old.id)));
    // Only the two responses to node2: no Delete towards node1.
    assert_eq!(net.nodes[0].sent.len(), sent_before + 2);
    assert!(net.nodes[0].sent[sent_before..].iter().all(|t| t.remote.ip() == ip("198.51.100.20")));
    assert_eq!(client_informational_requests(&net), 0);
}

#[test]
fn no_initial_contact_when_another_sa_exists() {
    let mut net = pair(41, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 2);
    assert_eq!(net.nodes[1].established(net.now).len(), 2);
    assert_eq!(net.nodes[0].kernel.len(), 2);
    net.assert_children_match(0, 1);
}

#[test]
fn invalid_spi_hint_liveness_failure_flush_and_reconnect() {
    let mut net = cluster(42, false);
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    let old = net.nodes[0].established(net.now)[0].id;
    fail_over(&mut net);
    // Client's ESP reaches node2, which does not know the SPI.
    net.nodes[2].engine.spi_miss(SpiMiss { local: ip(P), remote: ip(CLIENT), spi: k.spi_out, udp: None }, net.now);
    net.pump();
    let hint = net.nodes[2].sent.last().unwrap().clone();
    let m = Message::decode(&hint.bytes).unwrap();
    assert!(m.sk.is_none() && m.header.spi_r == 0 && m.header.from_initiator());
    assert_eq!(hint.remote, "192.0.2.1:500".parse().unwrap());
    net.run_for(Duration::from_secs(10));
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::InvalidSpiHint { spi, probing, .. } if *spi == k.spi_out && probing == &vec![old])));
    // The short hint schedule (0.5 s × 3 sends + 0.5 s) ran out.
    assert_eq!(net.nodes[0].downs(), vec![(old, Reason::LivenessFailed)]);
    assert!(net.nodes[0].kernel.is_empty());
    assert_eq!(client_informational_requests(&net), 3, "only the liveness request and its retransmissions");
    // The next packet to the package address negotiates new SAs.
    net.nodes[0].engine.acquire("pkg", ip(P), net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    net.assert_children_match(0, 2);
}

#[test]
fn spi_miss_initiates_with_initial_contact() {
    let mut net = cluster(43, true);
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    let old = net.nodes[0].established(net.now)[0].id;
    fail_over(&mut net);
    net.nodes[2].engine.spi_miss(SpiMiss { local: ip(P), remote: ip(CLIENT), spi: k.spi_out, udp: None }, net.now);
    // A burst of misses is rate limited: one hint, one IKE SA.
    net.nodes[2].engine.spi_miss(SpiMiss { local: ip(P), remote: ip(CLIENT), spi: k.spi_out, udp: None }, net.now);
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 1);
    assert!(!st[0].initiator, "node2 initiated");
    assert_eq!(net.nodes[0].kernel.len(), 1);
    assert!(!net.nodes[0].kernel.contains_key(&k.spi_in));
    net.assert_children_match(0, 2);
    assert!(net.nodes[0].downs().contains(&(old, Reason::InitialContact)));
    assert_eq!(net.nodes[2].established(net.now).len(), 1);
    assert_eq!(net.nodes[2].events().filter(|e| matches!(e, Event::InvalidSpiSent { .. })).count(), 1);
}

/// ESP with an unknown SPI from an address no connection allows (nor an IKE
/// SA has) gets no hint and starts nothing; from an allowed one it does.
#[test]
fn spi_miss_from_a_peer_the_package_does_not_allow_is_ignored() {
    let mut net = cluster(45, true);
    fail_over(&mut net);
    let stranger = ip("203.0.113.77");
    for spi in 0x1000..0x1010 {
        net.nodes[2].engine.spi_miss(SpiMiss { local: ip(P), remote: stranger, spi, udp: None }, net.now);
    }
    net.settle();
    assert!(net.nodes[2].sent.iter().all(|t| t.remote.ip() != stranger), "nothing sent to a stranger");
    assert_eq!(net.nodes[2].events().filter(|e| matches!(e, Event::InvalidSpiSent { .. })).count(), 0);
    assert!(net.nodes[2].engine.status(net.now).ike_sas.is_empty(), "no IKE SA started");
    // A miss on another local address is not the package's either.
    net.nodes[2].engine.spi_miss(SpiMiss { local: ip("192.0.2.99"), remote: ip(CLIENT), spi: 0x2000, udp: None }, net.now);
    net.settle();
    assert!(net.nodes[2].engine.status(net.now).ike_sas.is_empty());
    // The client the package allows: hint and a new IKE SA.
    net.nodes[2].engine.spi_miss(SpiMiss { local: ip(P), remote: ip(CLIENT), spi: 0x3000, udp: None }, net.now);
    net.settle();
    assert_eq!(net.nodes[2].events().filter(|e| matches!(e, Event::InvalidSpiSent { .. })).count(), 1);
    assert_eq!(net.nodes[2].established(net.now).len(), 1);
}

#[test]
fn unprotected_invalid_spi_never_deletes_a_live_peer() {
    let mut net = cluster(44, false);
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    let old = net.nodes[0].established(net.now)[0].id;
    // Forged hints from an off-path address, many of them.
    let forger = "203.0.113.66:500".parse().unwrap();
    let local = "192.0.2.1:500".parse().unwrap();
    for i in 0..20u64 {
        let now = net.now;
        net.nodes[0].engine.handle_datagram(now, local, forger, &invalid_spi_message(i + 1, k.spi_out));
    }
    net.settle();
    // Rate limited to one liveness check, which node1 answers.
    assert_eq!(net.nodes[0].events().filter(|e| matches!(e, Event::InvalidSpiHint { .. })).count(), 1);
    assert_eq!(net.nodes[0].events().filter(|e| matches!(e, Event::LivenessOk { .. })).count(), 1);
    assert!(net.nodes[0].downs().is_empty());
    assert!(net.nodes[0].child_deletes().is_empty());
    assert_eq!(net.nodes[0].established(net.now)[0].id, old);
    assert!(net.nodes[0].kernel.contains_key(&k.spi_in));
    // Nothing was sent to the forger.
    assert!(net.nodes[0].sent.iter().all(|t| t.remote.ip() != ip("203.0.113.66")));
    net.assert_children_match(0, 1);
}

#[test]
fn spi_miss_inside_ike_sa_is_protected_and_deletes_child() {
    let mut net = pair(45, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    // The server's kernel lost the inbound SA the client sends on.
    net.nodes[1].engine.spi_miss(SpiMiss { local: ip("198.51.100.1"), remote: ip("192.0.2.1"), spi: k.spi_out, udp: None }, net.now);
    net.settle();
    assert_eq!(net.nodes[0].child_deletes(), vec![(k.spi_in, Reason::PeerInvalidSpi)]);
    assert_eq!(net.nodes[0].established(net.now).len(), 1, "IKE SA unaffected");
}

#[test]
fn spi_miss_over_udp_answers_on_the_encapsulation_ports() {
    let mut net = Net::new(46);
    net.add("node2", P, vec![node_conn(false)]);
    net.nodes[0].engine.spi_miss(SpiMiss { local: ip(P), remote: ip(CLIENT), spi: 0x1234, udp: Some((31000, 4500)) }, net.now);
    let t = net.nodes[0].engine.poll_transmit().unwrap();
    assert!(t.non_esp_marker);
    assert_eq!(t.local, format!("{P}:4500").parse().unwrap());
    assert_eq!(t.remote, "192.0.2.1:31000".parse().unwrap());
    let m = Message::decode(&t.bytes).unwrap();
    let n = m.notify(ripsec_ike::consts::notify::INVALID_SPI).unwrap();
    assert_eq!(n.data, 0x1234u32.to_be_bytes());
}

#[test]
fn invalid_ike_spi_answer_shortens_a_liveness_check() {
    let mut net = cluster_with(47, false, |c| {
        c.liveness_interval = Some(Duration::from_secs(30));
        c.retransmit = Retransmit { timeout: Duration::from_secs(4), base: 1.8, tries: 5 };
    });
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    let old = net.nodes[0].established(net.now)[0].id;
    fail_over(&mut net);
    net.advance(Duration::from_secs(1));
    // Only outbound traffic flows (the failover case): a check after 30 s.
    net.nodes[0].engine.notify_outbound_activity(k.spi_out, net.now);
    let t0 = net.now;
    net.run_for(Duration::from_secs(200));
    let down_at = net.nodes[0].downs();
    assert_eq!(down_at, vec![(old, Reason::LivenessFailed)]);
    // node2 answered the protected check with an unprotected INVALID_IKE_SPI.
    let answer = net.nodes[2].sent.iter().find_map(|t| {
        let m = Message::decode(&t.bytes).ok()?;
        m.notify(ripsec_ike::consts::notify::INVALID_IKE_SPI).map(|_| m.header)
    });
    let h = answer.expect("INVALID_IKE_SPI sent by node2");
    assert!(h.is_response());
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::InvalidIkeSpiHint { ike, .. } if *ike == old)));
    // With the default-like schedule the check would take 4+7.2+13+23+42+75 s;
    // the hint schedule (0.5 s × 3 + 0.5 s) ends it within seconds of the check.
    let sends = net.nodes[0].sent.iter().filter(|t| t.remote.ip() == ip(P)).count();
    assert!(sends <= 2 + 3, "IKE_SA_INIT, IKE_AUTH and at most 3 liveness sends, got {sends}");
    assert!(net.nodes[0].kernel.is_empty());
    let _ = t0;
}

#[test]
fn forged_invalid_ike_spi_does_not_kill_a_live_peer() {
    let mut net = cluster_with(48, false, |c| c.liveness_interval = Some(Duration::from_secs(30)));
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    let st = net.nodes[0].established(net.now)[0].clone();
    // settle() left 60 s of inbound silence: outbound traffic makes the
    // check due at once. Start it, then inject a forged INVALID_IKE_SPI
    // "answer" before the real one is delivered.
    net.nodes[0].engine.notify_outbound_activity(k.spi_out, net.now);
    let sent = net.nodes[0].sent.len();
    let due = net.nodes[0].engine.poll_timeout().unwrap();
    assert!(due <= net.now);
    net.nodes[0].engine.handle_timeout(due);
    let check = net.nodes[0].engine.poll_transmit().expect("liveness request");
    net.nodes[0].sent.push(check.clone());
    assert_eq!(net.nodes[0].sent.len(), sent + 1);
    let req = Message::decode(&net.nodes[0].sent.last().unwrap().bytes).unwrap().header;
    let h = ripsec_ike::message::Header::new(req.spi_i, req.spi_r, req.exchange, 0x20, req.message_id);
    let forged = ripsec_ike::message::encode_plain(
        &h,
        &[ripsec_ike::message::Payload::Notify(ripsec_ike::message::Notify::new(ripsec_ike::consts::notify::INVALID_IKE_SPI, vec![]))],
    );
    let now = net.now;
    net.nodes[0].engine.handle_datagram(now, "192.0.2.1:500".parse().unwrap(), format!("{P}:500").parse().unwrap(), &forged);
    net.pump();
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::InvalidIkeSpiHint { .. })), "hint taken");
    // The real request was lost; the peer answers the first retransmission.
    net.settle();
    assert!(net.nodes[0].downs().is_empty());
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::LivenessOk { .. })));
    assert_eq!(net.nodes[0].established(net.now)[0].id, st.id);
    net.assert_children_match(0, 1);
}

#[test]
fn initial_contact_only_flushes_the_same_identity_pair() {
    // The client talks to two packages; "pkgB" restarting must not touch
    // the SAs with "pkgA".
    let mut net = Net::new(49);
    let mut a = client_conn();
    a.name = "pkgA".into();
    let b = conn("pkgB", CLIENT, &["198.51.100.30"], fqdn("client"), fqdn("pkgB"), "other-psk");
    net.add("client", CLIENT, vec![a, b]);
    net.add("nodeA", P, vec![node_conn(false)]);
    net.add("nodeB", "198.51.100.30", vec![conn("client", "198.51.100.30", &[CLIENT], fqdn("pkgB"), fqdn("client"), "other-psk")]);
    net.nodes[0].engine.connect("pkgA", net.now).unwrap();
    net.nodes[0].engine.connect("pkgB", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 2);
    // nodeB restarts (loses its state) and connects with INITIAL_CONTACT.
    net.nodes[2].engine = Engine::new(
        Config {
            connections: vec![conn("client", "198.51.100.30", &[CLIENT], fqdn("pkgB"), fqdn("client"), "other-psk")],
            ..Config::default()
        },
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(7),
    )
    .unwrap();
    net.nodes[2].kernel.clear();
    net.nodes[2].engine.connect("client", net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 2, "old pkgB SA flushed, pkgA SA kept, new pkgB SA up");
    assert_eq!(st.iter().filter(|s| s.remote_id == Some(fqdn("pkgA"))).count(), 1);
    assert_eq!(st.iter().filter(|s| s.remote_id == Some(fqdn("pkgB"))).count(), 1);
    assert_eq!(net.nodes[0].downs().len(), 1);
    assert_eq!(net.nodes[0].downs()[0].1, Reason::InitialContact);
    assert_eq!(net.nodes[0].kernel.len(), 2);
}
