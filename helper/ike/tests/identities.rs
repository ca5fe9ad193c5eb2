//! IKE_AUTH with every identity type the engine supports besides FQDN
//! (which the other tests use): IPv6 address and key ID, and an identity
//! whose type differs from the configured one.

mod common;

use common::*;
use ripsec_ike::*;

fn keyid(b: &[u8]) -> Identity {
    Identity::KeyId(b.to_vec())
}

fn ipv6_id(s: &str) -> Identity {
    Identity::Ipv6(s.parse().unwrap())
}

/// Client and server on IPv6 addresses, identities given by the test.
fn pair_with(seed: u64, a_addr: &str, b_addr: &str, a_ids: (Identity, Identity), b_ids: (Identity, Identity)) -> Net {
    let a = conn("c", a_addr, &[b_addr], a_ids.0, a_ids.1, "psk-123");
    let b = conn("c", b_addr, &[a_addr], b_ids.0, b_ids.1, "psk-123");
    let mut net = Net::new(seed);
    net.add("client", a_addr, vec![a]);
    net.add("server", b_addr, vec![b]);
    net
}

fn assert_established_with(net: &Net, local: &Identity, remote: &Identity) {
    let c = net.nodes[0].established(net.now);
    let s = net.nodes[1].established(net.now);
    assert_eq!(c.len(), 1, "initiator has one established IKE SA");
    assert_eq!(s.len(), 1, "responder has one established IKE SA");
    assert_eq!((&c[0].local_id, c[0].remote_id.as_ref()), (local, Some(remote)));
    assert_eq!((&s[0].local_id, s[0].remote_id.as_ref()), (remote, Some(local)));
    assert_eq!(c[0].children.len(), 1);
    assert_eq!(net.nodes[0].kernel.len(), 1);
    net.assert_children_match(0, 1);
    let k = net.nodes[0].kernel.values().next().unwrap();
    assert_eq!((&k.owner.local_id, &k.owner.remote_id), (local, remote));
    let k = net.nodes[1].kernel.values().next().unwrap();
    assert_eq!((&k.owner.local_id, &k.owner.remote_id), (remote, local));
}

#[test]
fn ipv6_address_identities_authenticate() {
    let (ca, sa) = ("2001:db8:1::1", "2001:db8:2::1");
    let (cid, sid) = (ipv6_id(ca), ipv6_id(sa));
    let mut net = pair_with(501, ca, sa, (cid.clone(), sid.clone()), (sid.clone(), cid.clone()));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_established_with(&net, &cid, &sid);
    // IPv6 traffic selectors for the IPv6 hosts.
    let k = net.nodes[0].kernel.values().next().unwrap();
    assert_eq!(k.ts_local, vec![TrafficSelector::host(ip(ca))]);
    assert_eq!(k.ts_remote, vec![TrafficSelector::host(ip(sa))]);
}

#[test]
fn ipv6_identities_over_ipv4_transport() {
    // The identity need not be the address the IKE SA runs on.
    let (cid, sid) = (ipv6_id("2001:db8::c"), ipv6_id("2001:db8::5"));
    let mut net = pair_with(502, "192.0.2.1", "198.51.100.1", (cid.clone(), sid.clone()), (sid.clone(), cid.clone()));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_established_with(&net, &cid, &sid);
}

#[test]
fn key_id_identities_authenticate() {
    // Opaque bytes, including non-UTF-8 and a zero byte.
    let (cid, sid) = (keyid(b"client-key\x00\xff"), keyid(&[0xde, 0xad, 0xbe, 0xef]));
    let mut net = pair_with(503, "192.0.2.1", "198.51.100.1", (cid.clone(), sid.clone()), (sid.clone(), cid.clone()));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_established_with(&net, &cid, &sid);
    // A Child SA rekey on that IKE SA keeps the identities.
    let spi = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.rekey_child(spi, net.now).unwrap();
    net.settle();
    assert!(!net.nodes[0].kernel.contains_key(&spi), "old Child SA removed after the rekey");
    assert_established_with(&net, &cid, &sid);
}

/// The responder wants a key ID; the initiator presents an FQDN with the
/// same bytes. Identities are compared with their type, so no connection
/// matches: the responder answers AUTHENTICATION_FAILED and keeps nothing.
#[test]
fn identity_type_mismatch_is_authentication_failed() {
    let mut net = pair_with(
        504,
        "192.0.2.1",
        "198.51.100.1",
        (fqdn("client"), fqdn("server")),
        (fqdn("server"), keyid(b"client")),
    );
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    // The responder took its AUTHENTICATION_FAILED path (the only one that
    // kills the SA with this reason answers with that notify) ...
    assert_eq!(net.nodes[1].downs().iter().map(|d| d.1).collect::<Vec<_>>(), vec![Reason::AuthenticationFailed]);
    // ... and the initiator saw that notify in the IKE_AUTH response.
    assert_eq!(net.nodes[0].downs().iter().map(|d| d.1).collect::<Vec<_>>(), vec![Reason::AuthenticationFailed]);
    assert!(!net.nodes[0].actions.iter().any(|a| matches!(a, Action::IkeSaUp { .. })));
    assert!(!net.nodes[1].actions.iter().any(|a| matches!(a, Action::IkeSaUp { .. })));
    assert!(net.nodes[0].kernel.is_empty() && net.nodes[1].kernel.is_empty());
    assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
    // One IKE_AUTH request, no retransmission: the error answer ended it.
    assert_eq!(net.nodes[0].sent.len(), 2);
}

/// The other direction: the initiator expects the responder's IPv4
/// address as its identity, the responder presents the same address as an
/// IPv6-mapped one. The responder accepts the initiator and establishes;
/// the initiator rejects the response's IDr and tears its side down
/// locally. It sends nothing (no INFORMATIONAL with AUTHENTICATION_FAILED
/// or Delete, which §2.21.2 suggests), so the responder keeps its
/// established IKE SA and Child SA until liveness or a Delete removes them.
#[test]
fn responder_identity_type_mismatch_fails_on_initiator() {
    let v4 = Identity::Ipv4("198.51.100.1".parse().unwrap());
    let mapped = ipv6_id("::ffff:198.51.100.1");
    let mut net = pair_with(505, "192.0.2.1", "198.51.100.1", (fqdn("client"), v4), (mapped, fqdn("client")));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.run_for(std::time::Duration::from_secs(1));
    assert_eq!(net.nodes[0].downs().iter().map(|d| d.1).collect::<Vec<_>>(), vec![Reason::AuthenticationFailed]);
    assert!(net.nodes[0].kernel.is_empty(), "initiator installs no Child SA");
    assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
    assert_eq!(net.nodes[0].sent.len(), 2, "IKE_SA_INIT and IKE_AUTH, nothing after the failure");
    assert_eq!(net.nodes[1].established(net.now).len(), 1, "the responder is not told");
    assert_eq!(net.nodes[1].kernel.len(), 1);
}
