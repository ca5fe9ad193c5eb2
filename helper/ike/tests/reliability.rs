//! Lossy networks, retransmission, duplicate handling, Delete and liveness.

mod common;

use std::time::Duration;

use common::*;
use ripsec_ike::*;

#[test]
fn converges_under_loss_duplication_and_reordering() {
    let mut converged = 0;
    for seed in 0..12u64 {
        let mut net = pair(1000 + seed, |_, _| {});
        net.loss = 0.25;
        net.dup = 0.25;
        net.reorder = 0.5;
        net.nodes[0].engine.connect("c", net.now).unwrap();
        net.run_for(Duration::from_secs(60));
        let a = net.nodes[0].established(net.now);
        let b = net.nodes[1].established(net.now);
        if a.is_empty() {
            // The whole schedule (1+2+4+8 s) may be lost at 25%: then the
            // initiator must have given up cleanly and the responder must
            // hold no established SA with child SAs that the initiator lacks.
            assert_eq!(net.nodes[0].downs()[0].1, Reason::RetransmitExhausted, "seed {seed}");
            continue;
        }
        converged += 1;
        assert_eq!(a.len(), 1, "seed {seed}");
        assert_eq!(b.len(), 1, "seed {seed}");
        assert_eq!((a[0].spi_i, a[0].spi_r), (b[0].spi_i, b[0].spi_r));
        // Duplicated requests were answered from the cache: one Child SA.
        assert_eq!(net.nodes[0].kernel.len(), 1, "seed {seed}");
        net.assert_children_match(0, 1);
        // Exercise an INFORMATIONAL exchange under the same conditions.
        let spi = *net.nodes[0].kernel.keys().next().unwrap();
        net.nodes[0].engine.delete_child(spi, net.now).unwrap();
        net.run_for(Duration::from_secs(60));
        if !net.nodes[0].established(net.now).is_empty() {
            assert!(net.nodes[0].kernel.is_empty(), "seed {seed}");
            assert!(net.nodes[1].kernel.is_empty(), "seed {seed}");
        }
    }
    assert!(converged >= 10, "only {converged} of 12 runs converged");
}

#[test]
fn duplicate_requests_answered_from_cache() {
    let mut net = pair(20, |_, _| {});
    net.dup = 1.0;
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].established(net.now).len(), 1);
    assert_eq!(net.nodes[1].established(net.now).len(), 1);
    assert_eq!(net.nodes[1].kernel.len(), 1);
    net.assert_children_match(0, 1);
    // The responder answered each duplicate: 2 requests × 2 copies.
    assert_eq!(net.nodes[1].sent.len(), 4);
    assert!(net.nodes[1].sent[0].bytes == net.nodes[1].sent[1].bytes);
}

#[test]
fn retransmission_backoff_and_exhaustion() {
    let mut net = pair(21, |_, _| {});
    net.nodes[1].up = false;
    let t0 = net.now;
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.run_for(Duration::from_secs(100));
    // 1 + 3 retransmissions with 1, 2, 4 s gaps, given up 8 s later.
    assert_eq!(net.nodes[0].sent.len(), 4);
    assert!(net.nodes[0].sent.windows(2).all(|w| w[0].bytes == w[1].bytes), "identical bytes");
    // Each retransmission is reported (the daemon logs it), numbered.
    let retx: Vec<(u32, u32)> = net.nodes[0]
        .events()
        .filter_map(|e| match e {
            Event::Retransmitted { message_id, attempt, .. } => Some((*message_id, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(retx, vec![(0, 1), (0, 2), (0, 3)]);
    let downs = net.nodes[0].downs();
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0].1, Reason::RetransmitExhausted);
    assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
    assert!(net.nodes[0].engine.poll_timeout().is_none());
    let _ = t0;
}

#[test]
fn established_sa_exhaustion_deletes_children() {
    let mut net = pair(22, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    net.nodes[1].up = false;
    let spi = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.rekey_child(spi, net.now).unwrap();
    net.run_for(Duration::from_secs(100));
    assert!(net.nodes[0].kernel.is_empty());
    assert_eq!(net.nodes[0].child_deletes(), vec![(spi, Reason::RetransmitExhausted)]);
    assert_eq!(net.nodes[0].downs()[0].1, Reason::RetransmitExhausted);
}

#[test]
fn delete_child_and_ike_sa_both_directions() {
    for initiator_deletes in [true, false] {
        let mut net = pair(23, |_, _| {});
        let id = net.nodes[0].engine.connect("c", net.now).unwrap();
        net.settle();
        net.nodes[0].engine.create_child(id, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 2);
        net.assert_children_match(0, 1);
        let who = if initiator_deletes { 0 } else { 1 };
        let other = 1 - who;
        let spi = *net.nodes[who].kernel.keys().next().unwrap();
        net.nodes[who].engine.delete_child(spi, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1);
        assert_eq!(net.nodes[1].kernel.len(), 1);
        net.assert_children_match(0, 1);
        assert_eq!(net.nodes[who].child_deletes(), vec![(spi, Reason::LocalDelete)]);
        assert_eq!(net.nodes[other].child_deletes()[0].1, Reason::PeerDeleted);

        let ike = net.nodes[who].established(net.now)[0].id;
        net.nodes[who].engine.delete_ike(ike, net.now).unwrap();
        net.settle();
        assert!(net.nodes[0].kernel.is_empty() && net.nodes[1].kernel.is_empty());
        assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
        assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
        assert_eq!(net.nodes[who].downs()[0].1, Reason::LocalDelete);
        assert_eq!(net.nodes[other].downs()[0].1, Reason::PeerDeleted);
    }
}

#[test]
fn terminate_connection() {
    let mut net = pair(24, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    net.nodes[0].engine.terminate("c", net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].engine.status(net.now).ike_sas.is_empty());
    assert!(net.nodes[1].engine.status(net.now).ike_sas.is_empty());
    assert!(matches!(net.nodes[0].engine.terminate("nope", net.now), Err(Error::UnknownConnection)));
}

#[test]
fn liveness_after_inbound_silence_success_and_failure() {
    let mut net = pair(25, |a, _| a.liveness_interval = Some(Duration::from_secs(30)));
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let k = net.nodes[0].kernel.values().next().unwrap().clone();
    // No outbound traffic: no check however long the silence.
    net.advance(Duration::from_secs(120));
    assert!(!net.nodes[0].events().any(|e| matches!(e, Event::LivenessOk { .. })));
    let sent_before = net.nodes[0].sent.len();
    // Outbound ESP with inbound silence: a check after 30 s, answered.
    net.nodes[0].engine.notify_activity(k.spi_out, Direction::Outbound, net.now);
    net.advance(Duration::from_secs(31));
    assert_eq!(net.nodes[0].sent.len(), sent_before + 1);
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::LivenessOk { .. })));
    // Inbound ESP keeps the check away.
    let sent_before = net.nodes[0].sent.len();
    net.nodes[0].engine.notify_inbound_activity(k.spi_in, net.now);
    net.nodes[0].engine.notify_activity(k.spi_out, Direction::Outbound, net.now);
    for _ in 0..5 {
        net.advance(Duration::from_secs(10));
        net.nodes[0].engine.notify_inbound_activity(k.spi_in, net.now);
    }
    assert_eq!(net.nodes[0].sent.len(), sent_before);
    // Peer dies: the check fails and everything goes.
    net.nodes[1].up = false;
    net.advance(Duration::from_secs(1));
    net.nodes[0].engine.notify_outbound_activity(k.spi_out, net.now);
    net.advance(Duration::from_secs(60));
    assert_eq!(net.nodes[0].downs()[0].1, Reason::LivenessFailed);
    assert!(net.nodes[0].kernel.is_empty());
    assert_eq!(net.nodes[0].child_deletes(), vec![(k.spi_in, Reason::LivenessFailed)]);
}

#[test]
fn manual_delete_peer_flushes_silently() {
    let mut net = pair(26, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let sent = net.nodes[0].sent.len();
    assert_eq!(net.nodes[0].engine.delete_peer(ip("198.51.100.1")), 1);
    net.pump();
    assert_eq!(net.nodes[0].sent.len(), sent, "nothing sent");
    assert!(net.nodes[0].kernel.is_empty());
    assert_eq!(net.nodes[0].downs()[0].1, Reason::ManualFlush);
}

#[test]
fn message_id_window_replays_and_stale_requests() {
    let mut net = pair(27, |_, _| {});
    let id = net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    net.nodes[0].engine.create_child(id, net.now).unwrap();
    net.settle();
    let (client, server) = ("192.0.2.1:500".parse().unwrap(), "198.51.100.1:500".parse().unwrap());
    let auth_req = net.nodes[0].sent[1].bytes.clone();
    let ccsa_req = net.nodes[0].sent[2].bytes.clone();
    let before = net.nodes[1].sent.len();
    let last_resp = net.nodes[1].sent[before - 1].bytes.clone();
    // Message ID 1 is stale (the window is at 3): silently ignored.
    let now = net.now;
    net.nodes[1].engine.handle_datagram(now, server, client, &auth_req);
    net.pump();
    assert_eq!(net.nodes[1].sent.len(), before);
    // Message ID 2 is the last one: answered from the cache, same bytes.
    net.nodes[1].engine.handle_datagram(now, server, client, &ccsa_req);
    net.pump();
    assert_eq!(net.nodes[1].sent.len(), before + 1);
    assert_eq!(net.nodes[1].sent[before].bytes, last_resp);
    // The duplicate created nothing.
    assert_eq!(net.nodes[1].kernel.len(), 2);
    // A corrupted copy is dropped without an answer.
    let mut bad = ccsa_req.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x40;
    net.nodes[1].engine.handle_datagram(now, server, client, &bad);
    net.pump();
    assert_eq!(net.nodes[1].sent.len(), before + 1);
    net.assert_children_match(0, 1);
}
