//! IKE_SA_INIT + IKE_AUTH between two engines: proposals, authentication,
//! traffic selectors, modes, INVALID_KE, COOKIE and NAT traversal.

mod common;

use std::time::Duration;

use common::*;
use ripsec_ike::consts::notify;
use ripsec_ike::*;

#[test]
fn establishes_with_defaults() {
    let mut net = pair(1, |_, _| {});
    let id = net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].id, id);
    assert!(st[0].initiator);
    assert_eq!(st[0].remote_id, Some(fqdn("server")));
    assert_eq!(st[0].suite.unwrap().encr, EncrAlg::AesGcm16_256);
    assert_eq!(st[0].children.len(), 1);
    assert!(!st[0].nat_detected);
    let sst = net.nodes[1].established(net.now);
    assert_eq!(sst.len(), 1);
    assert_eq!(sst[0].spi_i, st[0].spi_i);
    assert_eq!(sst[0].spi_r, st[0].spi_r);
    assert_eq!(net.nodes[0].kernel.len(), 1);
    net.assert_children_match(0, 1);
    let k = net.nodes[0].kernel.values().next().unwrap();
    assert_eq!(k.mode, Mode::Tunnel);
    assert_eq!(k.encap, None);
    assert!(k.esn, "ESN preferred when both allow it");
    assert_eq!(k.owner.remote_id, fqdn("server"));
    // Keys never show up in Debug output.
    let dbg = format!("{k:?}");
    assert!(dbg.contains("redacted"));
    // Exactly IKE_SA_INIT + IKE_AUTH, no retransmission.
    assert_eq!(net.nodes[0].sent.len(), 2);
    assert_eq!(net.nodes[1].sent.len(), 2);
    assert!(net.nodes[0].actions.iter().any(|a| matches!(a, Action::IkeSaUp { initiator: true, .. })));
}

#[test]
fn every_proposal_combination() {
    let groups = [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048];
    let ciphers = [
        (EncrAlg::AesGcm16_128, None),
        (EncrAlg::AesGcm16_256, None),
        (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128)),
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha256_128)),
    ];
    let prfs = [PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512];
    let esps = [EspAlg::AesGcm16_128, EspAlg::AesGcm16_256, EspAlg::ChaCha20Poly1305];
    let mut n = 0;
    let mut seed = 100;
    for g in groups {
        for (e, i) in ciphers {
            for p in prfs {
                // Pair each IKE suite with one ESP cipher (rotating), and run
                // all ESP ciphers for the cheapest group: covers every value
                // of every dimension and every ESP cipher with every group.
                let esp_set: Vec<EspAlg> = if g == DhGroup::Curve25519 { esps.to_vec() } else { vec![esps[n % 3]] };
                for esp in esp_set {
                    seed += 1;
                    let prop = IkeProposal { encr: vec![e], integ: i.into_iter().collect(), prf: vec![p], dh: vec![g] };
                    let mut net = pair(seed, |a, b| {
                        a.ike_proposals = vec![prop.clone()];
                        a.esp_proposals = vec![EspProposal { encr: vec![esp], esn: EsnPolicy::No, pfs: vec![] }];
                        // The responder accepts everything.
                        b.ike_proposals = vec![
                            IkeProposal::default(),
                            IkeProposal::cbc(
                                vec![EncrAlg::AesCbc256, EncrAlg::AesCbc128],
                                vec![IntegAlg::HmacSha256_128],
                                prfs.to_vec(),
                                groups.to_vec(),
                            ),
                        ];
                    });
                    net.nodes[0].engine.connect("c", net.now).unwrap();
                    net.settle();
                    let st = net.nodes[0].established(net.now);
                    assert_eq!(st.len(), 1, "{g:?} {e:?} {p:?} {esp:?}");
                    let s = st[0].suite.unwrap();
                    assert_eq!((s.dh, s.encr, s.prf, s.integ), (g, e, p, i));
                    assert_eq!(net.nodes[1].established(net.now)[0].suite, Some(s));
                    assert_eq!(net.nodes[0].kernel.values().next().unwrap().alg, esp);
                    assert!(!net.nodes[0].kernel.values().next().unwrap().esn);
                    net.assert_children_match(0, 1);
                    n += 1;
                }
            }
        }
    }
    // X25519: 4 ciphers × 3 PRFs × 3 ESP; ECP-256 and MODP-2048: 4 × 3 each.
    assert_eq!(n, 36 + 12 + 12);
}

#[test]
fn psk_mismatch_is_authentication_failed() {
    let mut net = pair(2, |_, b| b.psk = SecretBytes::from("other"));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].established(net.now).is_empty());
    assert!(net.nodes[1].established(net.now).is_empty());
    assert_eq!(net.nodes[0].downs().iter().map(|d| d.1).collect::<Vec<_>>(), vec![Reason::AuthenticationFailed]);
    assert!(net.nodes[1].downs().iter().all(|d| d.1 == Reason::AuthenticationFailed));
    assert!(net.nodes[0].kernel.is_empty() && net.nodes[1].kernel.is_empty());
    assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
}

#[test]
fn wrong_identity_is_authentication_failed() {
    let mut net = pair(3, |a, _| a.local_id = fqdn("mallory"));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].downs()[0].1, Reason::AuthenticationFailed);
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
}

#[test]
fn ts_mismatch_is_ts_unacceptable() {
    let mut net = pair(4, |a, _| {
        a.remote_ts = vec![TrafficSelector::host(ip("203.0.113.77"))];
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    // The IKE SA stands (§1.2), without a Child SA.
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    assert!(net.nodes[0].kernel.is_empty() && net.nodes[1].kernel.is_empty());
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::ChildSaFailed { notify: notify::TS_UNACCEPTABLE, .. })));
    assert!(net.nodes[1].events().any(|e| matches!(e, Event::ChildSaFailed { notify: notify::TS_UNACCEPTABLE, .. })));
}

#[test]
fn responder_narrows_traffic_selectors() {
    let mut net = pair(5, |a, b| {
        a.local_ts = vec![TrafficSelector::range(ip("192.0.2.0"), ip("192.0.2.255"))];
        a.remote_ts = vec![TrafficSelector::range(ip("198.51.100.0"), ip("198.51.100.255"))];
        b.remote_ts = vec![TrafficSelector::range(ip("192.0.2.0"), ip("192.0.2.15"))];
        let mut web = TrafficSelector::host(ip("198.51.100.10"));
        web.ip_proto = 6;
        web.start_port = 443;
        web.end_port = 443;
        b.local_ts = vec![web];
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let k = net.nodes[0].kernel.values().next().expect("child installed");
    assert_eq!(k.ts_local, vec![TrafficSelector::range(ip("192.0.2.0"), ip("192.0.2.15"))]);
    assert_eq!(k.ts_remote.len(), 1);
    assert_eq!(k.ts_remote[0].ip_proto, 6);
    assert_eq!((k.ts_remote[0].start_port, k.ts_remote[0].end_port), (443, 443));
    net.assert_children_match(0, 1);
}

#[test]
fn no_common_proposal() {
    let mut net = pair(6, |a, b| {
        a.ike_proposals = vec![IkeProposal::aead(vec![EncrAlg::AesGcm16_128], vec![PrfAlg::HmacSha256], vec![DhGroup::Curve25519])];
        b.ike_proposals = vec![IkeProposal::aead(vec![EncrAlg::AesGcm16_256], vec![PrfAlg::HmacSha256], vec![DhGroup::Curve25519])];
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].downs()[0].1, Reason::PeerError(notify::NO_PROPOSAL_CHOSEN));
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty(), "responder keeps no state");
}

#[test]
fn esp_no_proposal_chosen() {
    let mut net = pair(7, |a, b| {
        a.esp_proposals = vec![EspProposal { encr: vec![EspAlg::ChaCha20Poly1305], ..EspProposal::default() }];
        b.esp_proposals = vec![EspProposal { encr: vec![EspAlg::AesGcm16_128], ..EspProposal::default() }];
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::ChildSaFailed { notify: notify::NO_PROPOSAL_CHOSEN, .. })));
    assert!(net.nodes[0].kernel.is_empty());
}

#[test]
fn transport_mode_and_esn_negotiation() {
    let mut net = pair(8, |a, b| {
        a.mode = Mode::Transport;
        b.mode = Mode::Transport;
        a.esp_proposals[0].esn = EsnPolicy::Yes;
        b.esp_proposals[0].esn = EsnPolicy::Either;
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let k = net.nodes[0].kernel.values().next().unwrap();
    assert_eq!(k.mode, Mode::Transport);
    assert!(k.esn);
    net.assert_children_match(0, 1);

    // Responder configured for tunnel declines transport.
    let mut net = pair(9, |a, _| a.mode = Mode::Transport);
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].kernel.values().next().unwrap().mode, Mode::Tunnel);
    net.assert_children_match(0, 1);
}

#[test]
fn invalid_ke_retry_with_requested_group() {
    let mut net = pair(10, |a, b| {
        a.ike_proposals[0].dh = vec![DhGroup::Curve25519, DhGroup::Ecp256];
        b.ike_proposals[0].dh = vec![DhGroup::Ecp256];
    });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::InvalidKeRetry { group: 19, .. })));
    let st = net.nodes[0].established(net.now);
    assert_eq!(st[0].suite.unwrap().dh, DhGroup::Ecp256);
    net.assert_children_match(0, 1);
}

#[test]
fn cookie_when_half_open_exceeds_threshold() {
    let mut a = conn("c", "192.0.2.1", &["198.51.100.1"], fqdn("client"), fqdn("server"), "k");
    a.ike_proposals[0].dh = vec![DhGroup::Curve25519];
    let mut b = conn("c", "198.51.100.1", &[], fqdn("server"), fqdn("client"), "k");
    b.remote_ts = vec![TrafficSelector::host(ip("192.0.2.1"))];
    let mut net = Net::new(11);
    net.add("client", "192.0.2.1", vec![a]);
    net.add_cfg("server", "198.51.100.1", Config { connections: vec![b], cookie_threshold: 0, ..Config::default() });
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert!(net.nodes[1].events().any(|e| matches!(e, Event::CookieChallenge { .. })));
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    assert_eq!(net.nodes[1].established(net.now).len(), 1);
    net.assert_children_match(0, 1);
    // 3 requests: INIT, INIT with cookie, AUTH.
    assert_eq!(net.nodes[0].sent.len(), 3);
}

#[test]
fn nat_detected_floats_to_4500_and_encapsulates() {
    let mut net = pair(12, |_, b| {
        b.remote_addrs = vec![];
        b.remote_ts = vec![TrafficSelector::host(ip("192.0.2.1"))];
    });
    net.nat = Some((ip("192.0.2.1"), ip("203.0.113.5")));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 1);
    assert!(st[0].nat_detected && st[0].udp_encap);
    assert_eq!(st[0].local.port(), 4500);
    assert_eq!(st[0].remote.port(), 4500);
    // IKE_AUTH went out with the non-ESP marker.
    assert!(net.nodes[0].sent[1].non_esp_marker);
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::NatDetected { local_behind_nat: true, .. })));
    assert!(net.nodes[1].events().any(|e| matches!(e, Event::NatDetected { remote_behind_nat: true, .. })));
    let ks = net.nodes[1].kernel.values().next().unwrap();
    assert_eq!(ks.encap, Some(UdpEncap { local_port: 4500, remote_port: 34500 }));
    assert_eq!(ks.remote, ip("203.0.113.5"));
    assert!(net.nodes[0].kernel.values().next().unwrap().encap.is_some());
    net.assert_children_match(0, 1);
}

#[test]
fn forced_encapsulation_without_nat() {
    let mut net = pair(13, |a, _| a.force_encap = true);
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert!(st[0].udp_encap);
    assert_eq!(net.nodes[0].kernel.values().next().unwrap().encap, Some(UdpEncap { local_port: 4500, remote_port: 4500 }));
    assert_eq!(net.nodes[1].kernel.values().next().unwrap().encap, Some(UdpEncap { local_port: 4500, remote_port: 4500 }));
}

#[test]
fn acquire_reuses_ike_sa() {
    let mut net = pair(14, |_, _| {});
    net.nodes[0].engine.acquire("c", ip("198.51.100.1"), net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].kernel.len(), 1);
    // Child deleted, a new ACQUIRE creates one on the same IKE SA.
    let spi = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.delete_child(spi, net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].kernel.is_empty() && net.nodes[1].kernel.is_empty());
    net.nodes[0].engine.acquire("c", ip("198.51.100.1"), net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    assert_eq!(net.nodes[0].kernel.len(), 1);
    net.assert_children_match(0, 1);
    let _ = Duration::ZERO;
}

#[test]
fn unsupported_critical_payload_in_ike_sa_init() {
    use ripsec_ike::consts::{exchange, FLAG_INITIATOR, IKE_HEADER_LEN};
    use ripsec_ike::message::{encode_plain, Header, Message, Payload};
    let mut net = pair(15, |_, _| {});
    let h = Header::new(0x1122, 0, exchange::IKE_SA_INIT, FLAG_INITIATOR, 0);
    let mut b = encode_plain(&h, &[Payload::Unknown { ty: 200, body: vec![1, 2, 3, 4] }]);
    b[IKE_HEADER_LEN + 1] = 0x80;
    let now = net.now;
    net.nodes[1].engine.handle_datagram(now, "198.51.100.1:500".parse().unwrap(), "192.0.2.1:500".parse().unwrap(), &b);
    let t = net.nodes[1].engine.poll_transmit().expect("an error answer");
    let m = Message::decode(&t.bytes).unwrap();
    assert!(m.header.is_response());
    assert_eq!(m.header.spi_i, 0x1122);
    assert_eq!(m.header.spi_r, 0);
    assert_eq!(m.notify(notify::UNSUPPORTED_CRITICAL_PAYLOAD).unwrap().data, vec![200]);
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
    // Garbage gets nothing back.
    net.nodes[1].engine.handle_datagram(now, "198.51.100.1:500".parse().unwrap(), "192.0.2.1:500".parse().unwrap(), &[1, 2, 3]);
    assert!(net.nodes[1].engine.poll_transmit().is_none());
}

#[test]
fn status_snapshot() {
    let mut net = pair(16, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    net.advance(Duration::from_secs(5));
    let s = net.nodes[0].engine.status(net.now);
    let ike = &s.ike_sas[0];
    assert_eq!(ike.conn, "c");
    assert_eq!(ike.state, IkeSaState::Established);
    assert_eq!(ike.local, "192.0.2.1:500".parse().unwrap());
    assert_eq!(ike.remote, "198.51.100.1:500".parse().unwrap());
    assert_eq!(ike.local_id, fqdn("client"));
    assert!(ike.age >= Duration::from_secs(5));
    assert_eq!(ike.children.len(), 1);
    assert_eq!(ike.children[0].spi_in, *net.nodes[0].kernel.keys().next().unwrap());
}

/// Two connections to one peer address (different identities and
/// selectors): an ACQUIRE for the second negotiates the second. It used to
/// pick the first connection with that remote address.
#[test]
fn acquire_negotiates_the_named_connection_among_several_to_one_peer() {
    let (me, peer) = ("192.0.2.1", "198.51.100.1");
    let mk = host_conn;
    let mut net = Net::new(16);
    net.add(
        "client",
        me,
        vec![
            mk("one", me, peer, "client1", "server1", "198.51.100.101", "203.0.113.101"),
            mk("two", me, peer, "client2", "server2", "198.51.100.102", "203.0.113.102"),
        ],
    );
    net.add(
        "server",
        peer,
        vec![
            mk("one", peer, me, "server1", "client1", "203.0.113.101", "198.51.100.101"),
            mk("two", peer, me, "server2", "client2", "203.0.113.102", "198.51.100.102"),
        ],
    );
    net.nodes[0].engine.acquire("two", ip(peer), net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.iter().map(|s| s.conn.as_str()).collect::<Vec<_>>(), vec!["two"]);
    let k = net.nodes[0].kernel.values().next().unwrap();
    assert_eq!(k.ts_remote, vec![TrafficSelector::host(ip("203.0.113.102"))]);
    net.assert_children_match(0, 1);
    assert!(net.nodes[0].engine.acquire("nope", ip(peer), net.now).is_err());
    assert!(net.nodes[0].engine.acquire("one", ip("203.0.113.9"), net.now).is_err(), "not a remote address of 'one'");
}

/// A reload that changes one of two connections to the same peer (one
/// engine) drops only that connection's SAs: the other IKE SA and its Child
/// SA carry on with the same SPIs, and the changed connection can be
/// negotiated anew under its new definition.
#[test]
fn reconfigure_keeps_the_sas_of_unchanged_connections() {
    let (me, peer) = ("192.0.2.1", "198.51.100.1");
    let mk = host_conn;
    let client = |two_lts: &str| {
        vec![
            mk("one", me, peer, "client1", "server1", "198.51.100.101", "203.0.113.101"),
            mk("two", me, peer, "client2", "server2", two_lts, "203.0.113.102"),
        ]
    };
    let mut net = Net::new(17);
    net.add("client", me, client("198.51.100.102"));
    net.add(
        "server",
        peer,
        vec![
            mk("one", peer, me, "server1", "client1", "203.0.113.101", "198.51.100.101"),
            {
                let mut c = mk("two", peer, me, "server2", "client2", "203.0.113.102", "198.51.100.102");
                c.remote_ts = vec![TrafficSelector::range(ip("198.51.100.100"), ip("198.51.100.110"))];
                c
            },
        ],
    );
    net.nodes[0].engine.connect("one", net.now).unwrap();
    net.nodes[0].engine.connect("two", net.now).unwrap();
    net.settle();
    let before = net.nodes[0].established(net.now);
    assert_eq!(before.len(), 2);
    let one = before.iter().find(|s| s.conn == "one").unwrap().clone();
    let two = before.iter().find(|s| s.conn == "two").unwrap().clone();
    net.nodes[0].actions.clear();

    // "two" changes (another local selector); "one" does not.
    let now = net.now;
    net.nodes[0].engine.terminate("two", now).unwrap();
    net.nodes[0].engine.reconfigure(client("198.51.100.103"), |n| n == "one").unwrap();
    net.settle();
    let after = net.nodes[0].established(net.now);
    assert_eq!(after.iter().map(|s| s.conn.as_str()).collect::<Vec<_>>(), vec!["one"]);
    assert_eq!(after[0].id, one.id, "the unchanged connection keeps its IKE SA");
    assert_eq!(after[0].children.len(), 1);
    assert_eq!(after[0].children[0].spi_in, one.children[0].spi_in, "and its Child SA");
    let downs = net.nodes[0].downs();
    assert_eq!(downs, vec![(two.id, Reason::LocalDelete)], "only the changed connection's IKE SA went down");
    let deleted: Vec<u32> = net.nodes[0].child_deletes().into_iter().map(|(spi, _)| spi).collect();
    assert_eq!(deleted, vec![two.children[0].spi_in]);
    assert!(net.nodes[1].established(net.now).iter().all(|s| s.conn != "two"), "the peer got the Delete");

    // The changed connection negotiates with its new selector.
    net.nodes[0].engine.connect("two", net.now).unwrap();
    net.settle();
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 2);
    let spi = st.iter().find(|s| s.conn == "two").unwrap().children[0].spi_in;
    assert_eq!(net.nodes[0].kernel[&spi].ts_local, vec![TrafficSelector::host(ip("198.51.100.103"))]);
    net.assert_children_match(0, 1);

    // An invalid set changes nothing.
    let mut bad = client("198.51.100.103");
    bad[1].psk = SecretBytes::from("");
    assert!(net.nodes[0].engine.reconfigure(bad, |_| true).is_err());
    assert_eq!(net.nodes[0].established(net.now).len(), 2);
}
