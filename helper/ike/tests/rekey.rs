//! CREATE_CHILD_SA: additional Child SAs, Child SA rekey (with and without
//! PFS), IKE SA rekey, simultaneous Child SA rekey (§2.8.1).

mod common;

use common::*;
use ripsec_ike::*;

fn established(seed: u64, tweak: impl Fn(&mut Connection, &mut Connection)) -> (Net, IkeSaId) {
    let mut net = pair(seed, tweak);
    let id = net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].kernel.len(), 1);
    (net, id)
}

#[test]
fn child_rekey_from_either_side() {
    for who in [0usize, 1] {
        let (mut net, _) = established(50 + who as u64, |_, _| {});
        let old = net.nodes[who].kernel.values().next().unwrap().clone();
        net.nodes[who].engine.child_expired(old.spi_in, false, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1);
        assert_eq!(net.nodes[1].kernel.len(), 1);
        let new = net.nodes[who].kernel.values().next().unwrap().clone();
        assert_ne!(new.spi_in, old.spi_in);
        assert_ne!(new.key_in, old.key_in);
        assert_eq!(new.replaces, Some(old.spi_in));
        assert_eq!(new.ts_local, old.ts_local);
        net.assert_children_match(0, 1);
        assert_eq!(net.nodes[who].child_deletes(), vec![(old.spi_in, Reason::Rekeyed)]);
        assert_eq!(net.nodes[1 - who].child_deletes()[0].1, Reason::Rekeyed);
        assert!(net.nodes[who].downs().is_empty());
    }
}

#[test]
fn child_rekey_with_pfs() {
    for g in [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048] {
        let (mut net, _) = established(53, |a, b| {
            a.esp_proposals[0].pfs = vec![g];
            b.esp_proposals[0].pfs = vec![DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048];
        });
        let old = *net.nodes[0].kernel.keys().next().unwrap();
        net.nodes[0].engine.rekey_child(old, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1, "{g:?}");
        assert!(!net.nodes[0].kernel.contains_key(&old));
        net.assert_children_match(0, 1);
    }
}

#[test]
fn pfs_mismatch_fails_rekey_but_keeps_old_child() {
    let (mut net, _) = established(54, |a, _| a.esp_proposals[0].pfs = vec![DhGroup::Curve25519]);
    let old = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.rekey_child(old, net.now).unwrap();
    net.settle();
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::ChildSaFailed { .. })));
    assert!(net.nodes[0].kernel.contains_key(&old));
    net.assert_children_match(0, 1);
}

#[test]
fn additional_child_sa() {
    let (mut net, id) = established(55, |_, _| {});
    net.nodes[0].engine.create_child(id, net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].kernel.len(), 2);
    net.assert_children_match(0, 1);
    assert!(net.nodes[1].engine.create_child(IkeSaId(12345), net.now).is_err());
}

#[test]
fn ike_rekey_moves_children() {
    for who in [0usize, 1] {
        let (mut net, _) = established(56 + who as u64, |_, _| {});
        let old = net.nodes[who].established(net.now)[0].clone();
        let children: Vec<u32> = net.nodes[0].kernel.keys().copied().collect();
        net.nodes[who].engine.rekey_ike(old.id, net.now).unwrap();
        net.settle();
        for n in [0, 1] {
            let st = net.nodes[n].established(net.now);
            assert_eq!(st.len(), 1, "node {n} after rekey by {who}");
            assert_ne!((st[0].spi_i, st[0].spi_r), (old.spi_i, old.spi_r));
            assert_eq!(st[0].children.len(), 1);
            assert!(net.nodes[n].child_deletes().is_empty(), "children survive an IKE rekey");
            assert!(net.nodes[n].downs().iter().all(|d| d.1 == Reason::Rekeyed));
            assert_eq!(net.nodes[n].engine.status(net.now).ike_sas.len(), 1, "old SA deleted");
        }
        assert_eq!(net.nodes[0].kernel.keys().copied().collect::<Vec<_>>(), children);
        let a = net.nodes[0].established(net.now)[0].clone();
        let b = net.nodes[1].established(net.now)[0].clone();
        assert_eq!((a.spi_i, a.spi_r), (b.spi_i, b.spi_r));
        assert_eq!(a.initiator, who == 0, "rekey initiator is the new SA's initiator");
        // The new SA works: rekey a child and delete over it.
        let spi = *net.nodes[0].kernel.keys().next().unwrap();
        net.nodes[0].engine.rekey_child(spi, net.now).unwrap();
        net.settle();
        net.assert_children_match(0, 1);
        net.nodes[1].engine.rekey_ike(b.id, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].established(net.now).len(), 1);
        net.assert_children_match(0, 1);
    }
}

#[test]
fn ike_rekey_by_lifetime() {
    let (mut net, id) = established(58, |a, _| a.lifetimes.ike_rekey = Some(std::time::Duration::from_secs(600)));
    net.advance(std::time::Duration::from_secs(601));
    let st = net.nodes[0].established(net.now);
    assert_eq!(st.len(), 1);
    assert_ne!(st[0].id, id);
    assert!(net.nodes[0].events().any(|e| matches!(e, Event::IkeSaRekeyed { old, .. } if *old == id)));
    net.assert_children_match(0, 1);
}

#[test]
fn simultaneous_child_rekey_leaves_exactly_one() {
    for seed in 60..70u64 {
        let (mut net, _) = established(seed, |_, _| {});
        let a = net.nodes[0].kernel.values().next().unwrap().clone();
        // Both ends rekey the same Child SA at the same instant.
        net.nodes[0].engine.rekey_child(a.spi_in, net.now).unwrap();
        net.nodes[1].engine.rekey_child(a.spi_out, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1, "seed {seed}: {:?}", net.nodes[0].kernel.keys());
        assert_eq!(net.nodes[1].kernel.len(), 1, "seed {seed}");
        assert!(!net.nodes[0].kernel.contains_key(&a.spi_in));
        net.assert_children_match(0, 1);
        for n in 0..2 {
            assert_eq!(net.nodes[n].established(net.now)[0].children.len(), 1);
            // Three installs were torn down to one: old + redundant deleted.
            assert_eq!(net.nodes[n].child_deletes().len(), 2, "seed {seed}");
        }
    }
}

#[test]
fn simultaneous_child_rekey_with_reordering() {
    for seed in 70..150u64 {
        let (mut net, _) = established(seed, |_, _| {});
        net.reorder = 0.5;
        net.dup = if seed % 2 == 0 { 0.3 } else { 0.0 };
        let a = net.nodes[0].kernel.values().next().unwrap().clone();
        net.nodes[0].engine.rekey_child(a.spi_in, net.now).unwrap();
        net.nodes[1].engine.rekey_child(a.spi_out, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1, "seed {seed}");
        assert_eq!(net.nodes[1].kernel.len(), 1, "seed {seed}");
        net.assert_children_match(0, 1);
    }
}


#[test]
fn child_pfs_invalid_ke_retry() {
    let (mut net, id) = established(59, |a, b| {
        a.esp_proposals[0].pfs = vec![DhGroup::Curve25519, DhGroup::Ecp256];
        b.esp_proposals[0].pfs = vec![DhGroup::Ecp256];
    });
    let old = *net.nodes[0].kernel.keys().next().unwrap();
    let sent = net.nodes[0].sent.len();
    net.nodes[0].engine.rekey_child(old, net.now).unwrap();
    net.settle();
    assert!(!net.nodes[0].events().any(|e| matches!(e, Event::ChildSaFailed { .. })));
    assert_eq!(net.nodes[0].kernel.len(), 1);
    assert!(!net.nodes[0].kernel.contains_key(&old));
    net.assert_children_match(0, 1);
    // Rekey request, retried with group 19, then the Delete of the old SA.
    assert_eq!(net.nodes[0].sent.len(), sent + 3);
    // A new Child SA goes the same way.
    net.nodes[0].engine.create_child(id, net.now).unwrap();
    net.settle();
    assert_eq!(net.nodes[0].kernel.len(), 2);
    net.assert_children_match(0, 1);
}

#[test]
fn simultaneous_ike_rekey_leaves_exactly_one() {
    for seed in 200..260u64 {
        let (mut net, _) = established(seed, |_, _| {});
        net.reorder = if seed % 2 == 0 { 0.5 } else { 0.0 };
        let children: Vec<u32> = net.nodes[0].kernel.keys().copied().collect();
        let a = net.nodes[0].established(net.now)[0].id;
        let b = net.nodes[1].established(net.now)[0].id;
        net.nodes[0].engine.rekey_ike(a, net.now).unwrap();
        net.nodes[1].engine.rekey_ike(b, net.now).unwrap();
        net.settle();
        for n in 0..2 {
            let all = net.nodes[n].engine.status(net.now).ike_sas;
            assert_eq!(all.len(), 1, "seed {seed} node {n}: {all:?}");
            assert_eq!(all[0].state, IkeSaState::Established);
            assert_ne!(all[0].id, [a, b][n]);
            assert_eq!(all[0].children.len(), 1, "seed {seed} node {n}");
            assert!(net.nodes[n].child_deletes().is_empty(), "seed {seed}: children survive");
        }
        let sa = &net.nodes[0].established(net.now)[0];
        let sb = &net.nodes[1].established(net.now)[0];
        assert_eq!((sa.spi_i, sa.spi_r), (sb.spi_i, sb.spi_r), "seed {seed}");
        assert_eq!(net.nodes[0].kernel.keys().copied().collect::<Vec<_>>(), children);
        net.assert_children_match(0, 1);
        // The survivor works.
        let spi = children[0];
        net.nodes[0].engine.rekey_child(spi, net.now).unwrap();
        net.settle();
        assert_eq!(net.nodes[0].kernel.len(), 1, "seed {seed}");
        net.assert_children_match(0, 1);
    }
}
